"""The API server's side: genomed's adapters registered under one id per
content, and an unload that also drops them from the engine.

Resolution. vLLM's OpenAIServingModels.resolve_lora (0.32.0) numbers every
adapter a resolver finds with a new id (one per name) and adds it to the
engine under it: two names with identical content would be built twice.
When genomed's resolver is the first vLLM would ask, the wrapper registers a
name genomed has first, under its content's id (registry.register, which
adds it to the engine as vLLM's resolution does), under vLLM's lock of the
name; vLLM's resolution then finds it registered. A name genomed lacks goes
on to vLLM's resolution, which asks genomed's resolver again (one more round
trip) and the other resolvers in their order.

Unload. vLLM's /v1/unload_lora_adapter (OpenAIServingModels.unload_lora_adapter)
forgets the name but leaves the adapter in the engine's cache until its LRU
evicts it: an unload that frees nothing. For a genomed adapter the cache
holds genomed's lease, so genomed could not unload or replace it either (its
UNLOAD would drain until vLLM evicted it). After a successful unload of one
of genomed's adapters its identity is retired (registry.retire): removed
from the engine (EngineClient.remove_lora), which drops the LoRAModel and so
the lease, once no other name is registered with it (a twin) and no request
in flight may use it. Other adapters keep vLLM's behaviour.
"""

from __future__ import annotations

from typing import Any

from . import identity, registry
from .resolver import GenomedResolver

_ORIGINAL_UNLOAD = "_genomed_original_unload"
_ORIGINAL_RESOLVE = "_genomed_original_resolve_lora"


def install() -> None:
    """Wraps OpenAIServingModels.unload_lora_adapter and resolve_lora (idempotent)."""
    from vllm.entrypoints.openai.models.serving import OpenAIServingModels

    if hasattr(OpenAIServingModels, _ORIGINAL_UNLOAD):
        return
    original_unload = OpenAIServingModels.unload_lora_adapter
    original_resolve = OpenAIServingModels.resolve_lora

    async def unload_lora_adapter(self, request):  # type: ignore[no-untyped-def]
        previous = self.lora_requests.get(request.lora_name)
        result = await original_unload(self, request)
        if (isinstance(result, str) and previous is not None
                and identity.parse(previous.lora_path) is not None):
            registry.of(self).retire(previous.lora_int_id)
        return result

    async def resolve_lora(self, lora_name: str) -> Any:
        first = self.lora_resolvers[0] if self.lora_resolvers else None
        if isinstance(first, GenomedResolver) and lora_name not in self.lora_requests:
            async with self.lora_resolver_lock[lora_name]:
                if lora_name not in self.lora_requests:
                    ref = await first.identity_of(lora_name)
                    if ref is not None:
                        await registry.of(self).register(lora_name, ref,
                                                         self.model_config.model)
        return await original_resolve(self, lora_name)

    setattr(OpenAIServingModels, _ORIGINAL_UNLOAD, original_unload)
    setattr(OpenAIServingModels, _ORIGINAL_RESOLVE, original_resolve)
    OpenAIServingModels.unload_lora_adapter = unload_lora_adapter
    OpenAIServingModels.resolve_lora = resolve_lora
