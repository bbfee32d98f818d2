"""The API server's unload: also drop a genomed adapter from the engine.

vLLM's /v1/unload_lora_adapter (OpenAIServingModels.unload_lora_adapter,
0.32.0) forgets the name but leaves the adapter in the engine's cache until
its LRU evicts it: an unload that frees nothing. For a genomed adapter the
cache holds genomed's lease, so genomed could not unload or replace it
either (its UNLOAD would drain until vLLM evicted it). After a successful
unload of one of genomed's adapters this also removes it from the engine
(EngineClient.remove_lora), which drops the LoRAModel and so the lease.
Other adapters keep vLLM's behaviour.
"""

from __future__ import annotations

from . import identity

_ORIGINAL = "_genomed_original_unload"


def install() -> None:
    """Wraps OpenAIServingModels.unload_lora_adapter (idempotent)."""
    from vllm.entrypoints.openai.models.serving import OpenAIServingModels

    if hasattr(OpenAIServingModels, _ORIGINAL):
        return
    original = OpenAIServingModels.unload_lora_adapter

    async def unload_lora_adapter(self, request):  # type: ignore[no-untyped-def]
        previous = self.lora_requests.get(request.lora_name)
        result = await original(self, request)
        if (isinstance(result, str) and previous is not None
                and identity.parse(previous.lora_path) is not None):
            await self.engine_client.remove_lora(previous.lora_int_id)
        return result

    setattr(OpenAIServingModels, _ORIGINAL, original)
    OpenAIServingModels.unload_lora_adapter = unload_lora_adapter
