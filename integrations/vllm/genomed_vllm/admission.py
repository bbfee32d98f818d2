"""The API server's admission of a request that names a genomed adapter.

vLLM's serving layer sends a request naming an adapter it has registered
straight to the engine (`BaseServing._check_model`, vLLM 0.32.0). If vLLM's
worker has evicted that adapter from its CPU cache (`--max-cpu-loras`), the
engine builds it again inside an engine step, where any exception ends the
engine: vLLM has no per-request handling of an adapter load failing there
(a vanished adapter directory does the same). For genomed's adapters that
build asks genomed, and fails when genomed is down or now holds other
content under the name.

So before such a request leaves the API server, admission makes sure genomed
serves that identity now: it acquires the adapter (in a thread: a cold load
never blocks vLLM's event loop) and compares the content digest, and on
failure fails only this request with genomed's code and message
(GenomedLoRAError: 503 `not_connected`, 404 `not_found`, ...). When genomed
holds new content under the name (a RELOAD published a new version), the
name is registered again under the new identity and its lora_int_id, and
the request is served with the new version (_follow_new_version); the old
identity leaves vLLM's engine once the requests that may use it have ended
(registry.py). Its lease is held until the HTTP request's task ends, so
genomed keeps exactly that content resident for as long as the engine may
build the adapter for this request: the worker's acquire is a cache hit
(never a cold load inside the engine step, never another content). For a
name this very request resolved, the resolver's lease is the one held
(resolver.py), which also keeps the content from changing between the
resolver's identity and the worker's build.

What remains (docs/vllm.md): genomed stopping for good after the check and
before the request ends, while vLLM evicts the adapter and builds it again
in that time, still ends the engine.

The patch: `_check_model` of BaseServing (completions, chat, responses, ...)
and of PoolingBaseServing (its own copy). The scope (`current()`) also tells
the resolver the server's --max-lora-rank. Requests naming a base model or
an adapter that is not genomed's pass unchanged.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from typing import Any, List, Optional

import genomed

from . import errors, identity, registry

_ORIGINAL = "_genomed_original_check_model"


@dataclass
class Scope:
    """The HTTP request being admitted: the server's limit the resolver checks
    against, and what the request holds until its task ends: leases, and
    the pin of the identities it may use (registry.py)."""

    max_lora_rank: Optional[int]
    leases: List[genomed.Lease] = field(default_factory=list)
    pin: Optional[registry.Pin] = None


_scope: contextvars.ContextVar[Optional[Scope]] = contextvars.ContextVar(
    "genomed_vllm_admission", default=None)


def current() -> Optional[Scope]:
    """The request being admitted on this task, if any."""
    return _scope.get()


def install() -> None:
    """Wraps _check_model of vLLM's serving classes (idempotent)."""
    from vllm.entrypoints.serve.engine.serving import BaseServing

    classes: List[type] = [BaseServing]
    try:
        from vllm.entrypoints.pooling.base.serving import PoolingBaseServing
        classes.append(PoolingBaseServing)
    except ImportError:  # a vLLM without pooling serving
        pass
    for cls in classes:
        if _ORIGINAL in cls.__dict__ or "_check_model" not in cls.__dict__:
            continue
        original = cls.__dict__["_check_model"]
        setattr(cls, _ORIGINAL, original)
        cls._check_model = _wrap(original)


def _wrap(original: Any) -> Any:
    async def _check_model(self, request):  # type: ignore[no-untyped-def]
        scope = Scope(_max_lora_rank(self.models))
        token = _scope.set(scope)
        model = getattr(request, "model", None)
        try:
            result = await original(self, request)
            if result is None:
                await _admit(self.models, model, scope)
        except BaseException:
            _release(scope.leases)
            raise
        finally:
            _scope.reset(token)
        if result is None:
            if model:
                scope.pin = registry.of(self.models).pin(model)
            _hold_until_task_ends(self.models, scope)
        else:
            _release(scope.leases)
        return result

    return _check_model


def _max_lora_rank(models: Any) -> Optional[int]:
    engine = getattr(models, "engine_client", None)
    lora_config = getattr(getattr(engine, "vllm_config", None), "lora_config", None)
    return getattr(lora_config, "max_lora_rank", None)


async def _admit(models: Any, model: Optional[str], scope: Scope) -> None:
    lora = getattr(models, "lora_requests", {}).get(model) if model else None
    ref = identity.parse(lora.lora_path) if lora is not None else None
    if ref is None or scope.leases:
        return  # not genomed's, or resolved by this request (its lease is held)
    try:
        lease, _ = await asyncio.to_thread(identity.acquire, ref)
    except errors.GenomedLoRAError as e:
        if e.code != "content_changed":
            raise
        await _follow_new_version(models, lora, scope)
        return
    except genomed.Error as e:
        raise errors.from_genomed(ref.name, e) from e
    scope.leases.append(lease)


async def _follow_new_version(models: Any, lora: Any, scope: Scope) -> None:
    """genomed now holds other content under the name (a RELOAD, or files
    changed and loaded again): register the name's new identity, with its own
    lora_int_id, so that this request and the next ones get the new version
    and vLLM never reuses state built for the old one (vllm #30931). The
    request holds the new content's lease (resolver.resolve checks it as it
    checks a first resolution: vLLM's limits, its rank). The old identity
    leaves vLLM's engine, and with it the worker's lease on the old version,
    once the requests admitted with it have ended (registry.py)."""
    from .resolver import resolve

    name = lora.lora_name
    ref = await asyncio.to_thread(resolve, name, None, max_lora_rank=scope.max_lora_rank,
                                  keep=scope.leases)
    async with models.lora_resolver_lock[name]:
        # The first request to see the new version registers it, concurrent ones
        # find it registered.
        current = models.lora_requests.get(name)
        if current is None or current.lora_path != ref.lora_path:
            await registry.of(models).register(name, ref, lora.base_model_name)


def _hold_until_task_ends(models: Any, scope: Scope) -> None:
    """The HTTP request's task ends once its response is sent (a stream's last
    chunk) or the client went away, when vLLM has finished or aborted it."""
    if scope.leases or scope.pin is not None:
        held, pin = list(scope.leases), scope.pin

        def end(_task: "asyncio.Task[Any]") -> None:
            _release(held)
            if pin is not None:
                registry.of(models).unpin(pin)

        asyncio.current_task().add_done_callback(end)


def _release(leases: List[genomed.Lease]) -> None:
    for lease in leases:
        lease.release()
    leases.clear()
