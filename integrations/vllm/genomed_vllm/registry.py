"""The API server's registrations of genomed adapters: one lora_int_id per
content, and an identity no name serves any more removed from vLLM's engine
once no request in flight may use it.

One id per content. vLLM's serving layer numbers the adapters it registers
itself, one id per name (`OpenAIServingModels.resolve_lora`, vLLM 0.32.0),
and vLLM's worker caches built adapters by that id (CPU LRU, GPU slots): two
names with identical content were built and held twice. `register` gives a
genomed adapter its content's id (identity.lora_int_id, as the offline API
does), adds it to the engine as vLLM's resolution does (EngineClient.add_lora:
vLLM's checks run outside an engine step, a failure fails this request only;
for content the engine already holds it only touches it) and registers the
name. server.py registers a name before vLLM's own resolution would;
admission.py registers a name's new version after a RELOAD.

Retirement. When a name moves to another identity (a new version) or is
unloaded, its old identity stays in vLLM's worker cache, holding the worker's
genomed lease on the old version (so genomed keeps a retired generation's
bytes in `bytes_resident`) until vLLM's LRU evicts it. `retire` removes it
(EngineClient.remove_lora, vLLM's supported call; LRUCacheLoRAModelManager
drops the LoRAModel, its views of genomed's arena go and with them the
lease) once no name is registered with it and no request that may use it is
in flight. Not before: the engine builds an identity a running request needs
and its cache lacks again inside an engine step, where a failure stops the
engine, and genomed no longer serves a replaced version under its name
(content_changed). A request pins (`pin`) the identity its name is
registered with at admission, and every identity the name gets while the
request lives (vLLM reads the registration again after an await,
`_maybe_get_adapters`), until its task ends: the task ends once vLLM has
finished the request or sent its abort, on the same channel to the engine
core as the remove_lora after it, which the engine core handles in order.
Requests vLLM serves without `_check_model` (a modality's default adapter)
are not pinned (docs/vllm.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Set

from . import errors, identity

logger = logging.getLogger("vllm.genomed_vllm")

_ATTRIBUTE = "_genomed_registry"


@dataclass(eq=False)
class Pin:
    """A request in flight naming `name`: the identities it may use."""

    name: str
    ids: Set[int] = field(default_factory=set)


class Registry:
    """The genomed adapters of one OpenAIServingModels (`models`). Runs on the
    API server's event loop only. Invariant: `_pins[i]` is the number of live
    Pins whose ids contain i, and `_live[name]` holds exactly the live Pins of
    `name`."""

    def __init__(self, models: Any) -> None:
        self._models = models
        self._pins: Counter = Counter()
        self._live: Dict[str, Set[Pin]] = {}
        self._removals: Set[asyncio.Task] = set()  # referenced until done

    async def register(self, name: str, ref: identity.AdapterRef,
                       base_model_name: Optional[str]) -> Any:
        """Registers `name` as genomed's content `ref` under the content's id and
        retires the identity it had. The caller holds vLLM's lock of the name
        (models.lora_resolver_lock[name]) and a genomed lease on `ref`'s content
        (so the engine's build is a genomed cache hit). Raises GenomedLoRAError
        `vllm_refused` when vLLM's engine cannot load the adapter."""
        from vllm.lora.request import LoRARequest

        lora = LoRARequest(lora_name=name, lora_int_id=identity.lora_int_id(ref.digest),
                           lora_path=ref.lora_path, base_model_name=base_model_name)
        try:
            await self._models.engine_client.add_lora(lora)
        except Exception as e:  # vLLM's checks at load: modules the model lacks, ...
            raise errors.refused(name, [f"vLLM's engine could not load it: {e}"]) from e
        previous = self._models.lora_requests.get(name)
        self._models.lora_requests[name] = lora
        logger.info("genomed: LoRA adapter '%s' registered as %s (id %d)", name,
                    ref.lora_path, lora.lora_int_id)
        for pin in self._live.get(name, ()):
            self._add(pin, lora.lora_int_id)
        if previous is not None and previous.lora_int_id != lora.lora_int_id:
            self.retire(previous.lora_int_id)
        return lora

    def pin(self, name: str) -> Optional[Pin]:
        """Pins the identity genomed's adapter `name` is registered with (None
        for other models) for a request just admitted; `unpin` when it ends."""
        lora = self._models.lora_requests.get(name)
        if lora is None or identity.parse(lora.lora_path) is None:
            return None
        pin = Pin(name)
        self._add(pin, lora.lora_int_id)
        self._live.setdefault(name, set()).add(pin)
        return pin

    def unpin(self, pin: Pin) -> None:
        live = self._live[pin.name]
        live.discard(pin)
        if not live:
            del self._live[pin.name]
        for i in pin.ids:
            self._pins[i] -= 1
            if not self._pins[i]:
                del self._pins[i]
                self.retire(i)

    def retire(self, lora_int_id: int) -> None:
        """Removes genomed's identity `lora_int_id` from vLLM's engine if no
        name is registered with it and no request pins it; otherwise the last
        unpin does."""
        if self._in_use(lora_int_id):
            return
        task = asyncio.get_running_loop().create_task(self._remove(lora_int_id))
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)

    def _add(self, pin: Pin, lora_int_id: int) -> None:
        if lora_int_id not in pin.ids:
            pin.ids.add(lora_int_id)
            self._pins[lora_int_id] += 1

    def _in_use(self, lora_int_id: int) -> bool:
        return bool(self._pins.get(lora_int_id)) or any(
            lora.lora_int_id == lora_int_id for lora in self._models.lora_requests.values())

    async def _remove(self, lora_int_id: int) -> None:
        if self._in_use(lora_int_id):  # registered or pinned again since retire
            return
        try:
            removed = await self._models.engine_client.remove_lora(lora_int_id)
        except Exception:  # the engine's own failure: it says so; vLLM's LRU evicts it later
            logger.exception("genomed: removing LoRA id %d from vLLM's engine failed",
                             lora_int_id)
            return
        logger.info("genomed: LoRA id %d retired (no name serves it, no request in flight "
                    "uses it): %s", lora_int_id,
                    "removed from vLLM's engine" if removed else "vLLM's engine had evicted it")


def of(models: Any) -> Registry:
    """The Registry of an OpenAIServingModels (made on first use)."""
    registry = getattr(models, _ATTRIBUTE, None)
    if registry is None:
        registry = Registry(models)
        setattr(models, _ATTRIBUTE, registry)
    return registry
