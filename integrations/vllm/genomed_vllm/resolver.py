"""The API server's side: a LoRA resolver that asks genomed.

vLLM's OpenAI server consults resolvers for a model name it does not know
(only with VLLM_ALLOW_RUNTIME_LORA_UPDATING=1). This one acquires the name
from genomed (which loads it on a miss, once for the whole node however many
engines ask), computes the content identity, refuses what vLLM's worker
would refuse (kinds, a rank above --max-lora-rank) and returns a LoRARequest
whose lora_path is `genomed://<name>@<digest>`; vLLM's worker then builds the
adapter from its own lease (worker.py). When it is the first resolver vLLM
would ask, server.py has already registered the name through it, under the
content's lora_int_id (registry.py), and vLLM's resolution finds it there.
Its lease goes to the HTTP request being admitted (admission.py), which
holds it until the request ends, so the content cannot change before the
worker builds it. The acquire runs in a
thread (asyncio.to_thread), so a cold load never blocks vLLM's event loop.

Errors are raised, not turned into None: vLLM would answer a bare 404 or a
generic 400; a GenomedLoRAError reaches the HTTP client with its status and
genomed's code and message. The one exception: a name genomed does not have
while other resolvers are registered gives None, so that vLLM asks them.
"""

from __future__ import annotations

import asyncio
from typing import List, Optional

import genomed
from vllm.lora.peft_helper import PEFTHelper
from vllm.lora.request import LoRARequest
from vllm.lora.resolver import LoRAResolver, LoRAResolverRegistry

from . import admission, connection, errors, identity


def resolve(name: str, socket: Optional[str] = None, *, max_lora_rank: Optional[int] = None,
            keep: Optional[List[genomed.Lease]] = None) -> identity.AdapterRef:
    """Loads `name` in genomed if needed and returns its identity. Raises
    GenomedLoRAError for genomed's errors, for kinds vLLM refuses and for a
    rank above `max_lora_rank` (the server's --max-lora-rank, when known).
    With `keep`, the lease is appended to it instead of released (the API
    server holds it while the request runs: admission.py)."""
    try:
        lease = connection.call(lambda client: client.acquire(name), socket)
    except genomed.Error as e:
        raise errors.from_genomed(name, e) from e
    try:
        ref, config = identity.ref_of(lease), lease.config
        _check_vllm_accepts(name, config, max_lora_rank)
        if keep is not None:
            keep.append(lease)
            lease = None
        return ref
    finally:
        if lease is not None:
            lease.release()


def _check_vllm_accepts(name: str, config: dict, max_lora_rank: Optional[int]) -> None:
    """What vLLM's worker would refuse, refused here with the reason: vLLM's
    resolver path answers a failed engine load with a bare 400 "could not be
    loaded" and puts the reason only in its log. The worker still runs the
    full check (PEFTHelper.validate_legal). (_validate_features is vLLM 0.32's;
    a vLLM without it leaves the check to the worker.)"""
    try:
        helper = PEFTHelper.from_dict(config)
        reasons = getattr(helper, "_validate_features", list)()
    except (ValueError, TypeError) as e:
        raise errors.refused(name, [str(e)]) from e
    if reasons:
        raise errors.refused(name, reasons)
    rank = max([helper.r, *(helper.rank_pattern or {}).values()])
    if max_lora_rank is not None and rank > max_lora_rank:
        raise errors.rank_too_high(name, rank, max_lora_rank)


class GenomedResolver(LoRAResolver):
    """Resolves unknown model names to genomed's adapters of that name."""

    def __init__(self, socket: Optional[str] = None) -> None:
        self.socket = socket

    async def identity_of(self, lora_name: str) -> Optional[identity.AdapterRef]:
        """resolve() in a thread, for the request being admitted if any (its
        limit, and it keeps the lease). None when genomed does not have the
        name and other resolvers are registered (it may be theirs)."""
        scope = admission.current()
        try:
            return await asyncio.to_thread(
                resolve, lora_name, self.socket,
                max_lora_rank=scope.max_lora_rank if scope else None,
                keep=scope.leases if scope else None)
        except errors.GenomedLoRAError as e:
            # A name genomed does not have may be another resolver's: with
            # others registered, step aside (vLLM then answers its bare 404).
            if e.code == "not_found" and len(LoRAResolverRegistry.get_supported_resolvers()) > 1:
                return None
            raise

    async def resolve_lora(self, base_model_name: str, lora_name: str) -> Optional[LoRARequest]:
        # vLLM's server registers genomed's names before it asks resolvers
        # (server.py) unless another resolver comes first: then vLLM numbers it.
        ref = await self.identity_of(lora_name)
        if ref is None:
            return None
        # lora_int_id is assigned by vLLM's serving layer (it overwrites it).
        return LoRARequest(lora_name=lora_name, lora_int_id=1, lora_path=ref.lora_path,
                           base_model_name=base_model_name)
