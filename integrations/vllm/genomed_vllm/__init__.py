"""genomed_vllm: vLLM serves LoRA adapters from genomed (docs/vllm.md).

Installed with pip, vLLM runs `register()` in each of its processes (the
`vllm.general_plugins` entry point). With GENOMED_SOCKET set it registers
the resolver (an unknown model name in an OpenAI request is looked up in
genomed, loaded on a miss), makes the API server check with genomed before a
request naming one of its adapters reaches the engine (admission.py), and
makes vLLM's worker build genomed's adapters from a lease instead of files.
Without GENOMED_SOCKET it does nothing.

Offline (`vllm.LLM`, which never consults resolvers):

    import genomed_vllm
    llm.generate(prompts, params, lora_request=genomed_vllm.lora_request("my-lora"))
"""

from __future__ import annotations

import logging
from typing import Optional

from .connection import ENV_SOCKET, socket_path

__all__ = ["register", "lora_request", "ENV_SOCKET", "RESOLVER_NAME"]
__version__ = "0.1.0"

RESOLVER_NAME = "genomed"
TESTED_VLLM = "0.32."
# Under "vllm." so that vLLM's logging configuration shows it beside its own lines.
logger = logging.getLogger("vllm.genomed_vllm")


def register() -> None:
    """vLLM's plugin entry point: a no-op unless GENOMED_SOCKET is set."""
    path = socket_path()
    if path is None:
        return
    import vllm
    from vllm.lora.resolver import LoRAResolverRegistry

    from . import admission, resolver, server, worker

    if not vllm.__version__.startswith(TESTED_VLLM):
        # The worker hook and the unload wrapper patch vLLM's internals.
        logger.warning("genomed: this plugin was tested with vLLM %s.x, not %s: check "
                       "docs/vllm.md before relying on it", TESTED_VLLM, vllm.__version__)

    worker.install()
    server.install()
    admission.install()
    if RESOLVER_NAME not in LoRAResolverRegistry.get_supported_resolvers():
        LoRAResolverRegistry.register_resolver(RESOLVER_NAME, resolver.GenomedResolver(path))
    logger.info("genomed: serving LoRA adapters from %s", path)


def lora_request(name: str, lora_int_id: Optional[int] = None, *,
                 socket: Optional[str] = None):
    """A vllm LoRARequest naming genomed's adapter `name`, for the offline API.

    Loads the adapter in genomed if needed (blocking) and names its current
    content (identity.py). `lora_int_id` defaults to one id per content digest
    in this process, and vLLM keys its adapter caches (CPU LRU, GPU slots) by
    that id: asking again for an unchanged adapter gives the same id, after a
    RELOAD with changed files a new id and path (never the stale state, vllm
    #30931), and two names whose content is identical share one id, so vLLM
    builds and holds that content once. The vLLM process must run with
    GENOMED_SOCKET set (the plugin's worker side builds the adapter).
    Raises genomed_vllm.errors.GenomedLoRAError."""
    from vllm.lora.request import LoRARequest

    from .identity import lora_int_id as id_of
    from .resolver import resolve

    ref = resolve(name, socket)
    if lora_int_id is None:
        lora_int_id = id_of(ref.digest)
    return LoRARequest(lora_name=name, lora_int_id=lora_int_id, lora_path=ref.lora_path)
