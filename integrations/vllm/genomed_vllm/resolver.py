"""The API server's side: a LoRA resolver that asks genomed.

vLLM's OpenAI server consults resolvers for a model name it does not know
(only with VLLM_ALLOW_RUNTIME_LORA_UPDATING=1). This one acquires the name
from genomed (which loads it on a miss, once for the whole node however many
engines ask), computes the content identity, releases its lease and returns
a LoRARequest whose lora_path is `genomed://<name>@<digest>`; vLLM's worker
then builds the adapter from its own lease (worker.py). The acquire runs in a
thread (asyncio.to_thread), so a cold load never blocks vLLM's event loop.

Errors are raised, not turned into None: vLLM would answer a bare 404 or a
generic 400; a GenomedLoRAError reaches the HTTP client with its status and
genomed's code and message. The one exception: a name genomed does not have
while other resolvers are registered gives None, so that vLLM asks them.
"""

from __future__ import annotations

import asyncio
from typing import Optional

import genomed
from vllm.lora.peft_helper import PEFTHelper
from vllm.lora.request import LoRARequest
from vllm.lora.resolver import LoRAResolver, LoRAResolverRegistry

from . import connection, errors, identity


def resolve(name: str, socket: Optional[str] = None) -> identity.AdapterRef:
    """Loads `name` in genomed if needed and returns its identity. Raises
    GenomedLoRAError for genomed's errors and for kinds vLLM refuses."""
    def acquire(client: genomed.Client) -> tuple:
        with client.acquire(name) as lease:
            return identity.ref_of(lease), lease.config

    try:
        ref, config = connection.call(acquire, socket)
    except genomed.Error as e:
        raise errors.from_genomed(name, e) from e
    # The worker runs the full check (PEFTHelper.validate_legal, with the
    # engine's max_lora_rank); refusing the kinds vLLM never serves here
    # gives the client vLLM's reason instead of a bare "could not be loaded".
    # (_validate_features is vLLM 0.32's; a vLLM without it leaves the check
    # to the worker.)
    try:
        helper = PEFTHelper.from_dict(config)
        reasons = getattr(helper, "_validate_features", list)()
    except (ValueError, TypeError) as e:
        reasons = [str(e)]
    if reasons:
        raise errors.refused(name, reasons)
    return ref


class GenomedResolver(LoRAResolver):
    """Resolves unknown model names to genomed's adapters of that name."""

    def __init__(self, socket: Optional[str] = None) -> None:
        self.socket = socket

    async def resolve_lora(self, base_model_name: str, lora_name: str) -> Optional[LoRARequest]:
        try:
            ref = await asyncio.to_thread(resolve, lora_name, self.socket)
        except errors.GenomedLoRAError as e:
            # A name genomed does not have may be another resolver's: with
            # others registered, step aside (vLLM then answers its bare 404).
            if e.code == "not_found" and len(LoRAResolverRegistry.get_supported_resolvers()) > 1:
                return None
            raise
        # lora_int_id is assigned by vLLM's serving layer (it overwrites it).
        return LoRARequest(lora_name=lora_name, lora_int_id=1, lora_path=ref.lora_path,
                           base_model_name=base_model_name)
