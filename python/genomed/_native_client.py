"""The genomed client: connect, Client and Lease over the C++ client library
(genomed._native), with the protocol, lease slots, the resident-layout
decoder, deadlines and the fork rules in C++ (client/,
include/genomed/client.h) once (docs/python-binding.md).

How memory stays valid: every array of a lease has as its base a capsule
that holds the C++ Lease (genomed._native), so the daemon's lease -- taken
over the socket or through a lease slot -- ends only once release() was
called and the last array of it is gone.

Views are cached per (generation, offset): a load's bytes never change
while any lease on it lives, so a new lease of the same load reuses the
arrays another live lease (or a live array) of it already built. The cache
holds them weakly: arrays kept only by the cache would keep their lease.
"""

from __future__ import annotations

import json
import threading
import weakref
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from . import _errors, _native, _publish
from ._arguments import (DEFAULT, DEFAULT_LOAD_TIMEOUT, DEFAULT_TIMEOUT, Timeout, _Default,
                         load_args)
from ._arguments import check_name as _check_name
from ._torch import torch_views
from .types import (AdapterInfo, Health, LoadInfo, LoraModule, PinInfo, ReloadInfo,
                    StatValue, UnloadInfo)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["connect", "Client", "Lease", "DEFAULT", "DEFAULT_TIMEOUT", "DEFAULT_LOAD_TIMEOUT"]

_native.set_error_factory(_errors.make, _errors.timeout_error)
_MAX_BATCH = 64  # names of one ACQUIRE (ipc/protocol.h kMaxBatch)
_PRIORITY = {"low": 0, "normal": 1, "high": 2}  # genomed::Priority
_NORMAL = _PRIORITY["normal"]


class _Views(Dict[str, np.ndarray]):
    """A lease's arrays (a dict subclass, so the per-load cache can refer to it weakly)."""

    __slots__ = ("__weakref__",)


def _load_args(keep_alive: Optional[float], priority: str) -> Tuple[Optional[int], int]:
    keep_ms, priority = load_args(keep_alive, priority)
    return keep_ms, _PRIORITY[priority]


class Lease:
    """One lease on one resident adapter: zero-copy, read-only views of its tensors.

    Use it as a context manager, or call :meth:`release`. Leaving the block
    (or releasing) ends the lease as soon as no array or tensor taken from it
    is referenced any more; until then the daemon keeps the memory as it is.
    After that, ``tensors``, ``modules`` and ``to_torch()`` raise
    :class:`genomed.LeaseReleasedError`; the metadata (``name``, ``dtypes``,
    ``config``, ...) stays readable.
    """

    __slots__ = ("_n", "_client", "_tensors", "_modules", "_lock", "__weakref__")

    def __init__(self, native: _native.NativeLease, client: "Client") -> None:
        self._n = native
        self._client = client
        self._tensors: Optional[_Views] = None
        self._modules: Optional[List[LoraModule]] = None
        self._lock = threading.Lock()

    name = property(lambda self: self._n.name, doc="the adapter's name")
    id = property(lambda self: self._n.id, doc="the daemon's lease id")
    generation = property(lambda self: self._n.generation, doc="which load this copy is")
    digest = property(lambda self: self._n.digest,
                      doc="the copy's content digest, 32 hex digits (as LoadInfo.digest)")
    offset = property(lambda self: self._n.offset, doc="the range's offset in the arena")
    nbytes = property(lambda self: self._n.nbytes, doc="the range's length")

    def _views_locked(self) -> _Views:
        if self._n.released:
            raise _errors.LeaseReleasedError(
                message=f"lease {self.id} on '{self.name}' was released: it hands out no new "
                        "views (keep the lease, or keep the arrays you took before releasing)")
        if self._tensors is None:
            self._tensors = self._client._views_of(self._n)
        return self._tensors

    @property
    def tensors(self) -> Dict[str, np.ndarray]:
        """Tensor name -> read-only numpy array over the shared memory (sorted by
        name). BF16 and the F8 types come as uint16/uint8 arrays of their raw bits
        (see ``dtypes``); ``to_torch()`` gives them their real dtype."""
        with self._lock:
            return self._views_locked()

    @property
    def modules(self) -> List[LoraModule]:
        """The LoRA modules, sorted by path, with views of their tensors."""
        with self._lock:
            t = self._views_locked()
            if self._modules is None:
                self._modules = [
                    LoraModule(path=path, a=t[a], b=t[b],
                               magnitude=None if mag is None else t[mag], rank=rank,
                               alpha=alpha, scaling=scaling, kind=kind,
                               lora_bias=None if bias is None else t[bias], a_name=a, b_name=b)
                    for path, kind, a, b, mag, bias, rank, alpha, scaling in self._n.module_info]
            return list(self._modules)

    def to_torch(self) -> Dict[str, "torch.Tensor"]:
        """Tensor name -> torch.Tensor over the same read-only memory, with the
        tensor's real dtype (BF16 -> torch.bfloat16, F8_E4M3 -> float8_e4m3fn,
        F8_E5M2 -> float8_e5m2, F8_E8M0 -> float8_e8m0fnu). **Never write to
        them**: the mapping is read-only. Needs ``pip install genomed[torch]``."""
        return torch_views(self.tensors, self.dtypes)

    def verify(self) -> None:
        """Hashes every tensor's bytes again (XXH3-64, in C++, without the GIL)
        and raises :class:`genomed.LayoutError` naming the first tensor that
        differs from the checksum its load recorded."""
        with self._lock:
            self._views_locked()  # refuses a released lease
            self._n.verify()

    @property
    def dtypes(self) -> Dict[str, str]:
        """Tensor name -> safetensors dtype name ("BF16", "F16", ...)."""
        return {name: dtype for name, dtype, _, _ in self._n.tensor_info}

    @property
    def shapes(self) -> Dict[str, Tuple[int, ...]]:
        return {name: tuple(shape) for name, _, shape, _ in self._n.tensor_info}

    @property
    def checksums(self) -> Dict[str, int]:
        return {name: checksum for name, _, _, checksum in self._n.tensor_info}

    @property
    def config(self) -> Dict[str, Any]:
        """The adapter's adapter_config.json as the daemon validated it (a new dict)."""
        config: Dict[str, Any] = json.loads(self._n.config_json)
        return config

    @property
    def contract(self) -> Dict[str, Any]:
        """The whole adapter contract (docs/protocol.md 8.1), as a new dict."""
        contract: Dict[str, Any] = self._n.contract()
        return contract

    @property
    def lora_r(self) -> int:
        return int(self._n.lora_r)

    @property
    def lora_alpha(self) -> float:
        return float(self._n.lora_alpha)

    @property
    def bias_tensors(self) -> List[str]:
        return list(self._n.bias_tensors)

    @property
    def saved_module_tensors(self) -> List[str]:
        return list(self._n.saved_module_tensors)

    @property
    def other_tensors(self) -> List[str]:
        return list(self._n.other_tensors)

    @property
    def released(self) -> bool:
        return bool(self._n.released)

    def release(self) -> None:
        """Ends the lease: at once if no view of it is referenced, otherwise as
        soon as the last one is gone. Idempotent."""
        with self._lock:
            self._tensors = None
            self._modules = None
            self._n.release()

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self.released else "active"
        return (f"<genomed.Lease {self.name!r} id={self.id} generation={self.generation} "
                f"tensors={len(self._n.tensor_info)} modules={len(self._n.module_info)} "
                f"nbytes={self.nbytes} {state}>")


class Client:
    """A connection to genomed. Create it with :func:`genomed.connect`.

    Thread-safe: calls from several threads are serialized on the connection.
    ``release()`` never blocks the caller, not even behind another thread's
    pending call, and the daemon applies a RELEASE as soon as it reads it,
    even while the connection's earlier request still waits: an ``acquire()``
    that needs exactly the memory another thread releases on the same client
    gets it. Requests are answered one at a time per connection, so threads
    that issue many requests concurrently do better with their own
    :func:`genomed.connect` (their loads then also run in parallel).
    """

    def __init__(self, native: _native.NativeClient, path: str, timeout: Optional[float],
                 load_timeout: Optional[float]) -> None:
        self._n = native
        self._path = path
        self._closed = False
        self.timeout = timeout
        self.load_timeout = load_timeout
        # (generation, offset) -> the arrays of that load, while any holder lives.
        self._cache: "weakref.WeakValueDictionary[Tuple[int, int], _Views]" = (
            weakref.WeakValueDictionary())

    def _views_of(self, native: _native.NativeLease) -> _Views:
        key = (native.generation, native.offset)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        views = _Views(native.views())
        self._cache[key] = views
        return views

    @property
    def path(self) -> str:
        return self._path

    @property
    def arena_bytes(self) -> int:
        return int(self._n.arena_bytes)

    @property
    def daemon_pid(self) -> int:
        return int(self._n.daemon_pid)

    @property
    def server(self) -> str:
        return str(self._n.server)

    @property
    def arena(self) -> np.ndarray:
        """The whole arena as a read-only uint8 array."""
        arena: np.ndarray = self._n.arena()
        return arena

    @property
    def closed(self) -> bool:
        return self._closed or bool(self._n.broken)

    def _timeout(self, timeout: Timeout, load: bool = False) -> Optional[float]:
        if isinstance(timeout, _Default):
            return self.load_timeout if load else self.timeout
        return timeout

    def acquire(self, name: str, *, timeout: Timeout = DEFAULT,
                keep_alive: Optional[float] = None, priority: str = "normal") -> Lease:
        """Makes `name` resident (loading it if needed) and leases it."""
        # The per-request path (a resident adapter through the lease slot is
        # ~1 us of C++): no list in or out, and the default load arguments
        # without a call (bench/python_bench.py --hot).
        name = _check_name(name)
        if keep_alive is None and priority == "normal":
            keep_ms, prio = None, _NORMAL
        else:
            keep_ms, prio = _load_args(keep_alive, priority)
        if isinstance(timeout, _Default):
            timeout = self.load_timeout
        return Lease(self._n.acquire_one(name, timeout, keep_ms, prio), self)

    def acquire_many(self, names: Iterable[str], *, timeout: Timeout = DEFAULT,
                     keep_alive: Optional[float] = None,
                     priority: str = "normal") -> List[Lease]:
        """Leases several adapters in one round trip, all or nothing."""
        if isinstance(names, str):
            raise TypeError("acquire_many() takes a list of names; use acquire(name) for one")
        names = [_check_name(n, "every name") for n in names]
        if not 1 <= len(names) <= _MAX_BATCH:
            raise _errors.make("bad_request", f"acquire_many: expected 1..{_MAX_BATCH} "
                                              f"names, got {len(names)}")
        keep_ms, prio = _load_args(keep_alive, priority)
        natives = self._n.acquire(names, self._timeout(timeout, load=True), keep_ms, prio)
        return [Lease(n, self) for n in natives]

    def load(self, name: str, *, timeout: Timeout = DEFAULT,
             keep_alive: Optional[float] = None, priority: str = "normal") -> LoadInfo:
        keep_ms, prio = _load_args(keep_alive, priority)
        r = self._n.load(_check_name(name), self._timeout(timeout, load=True), keep_ms, prio)
        return LoadInfo(*r)

    def prefetch(self, name: str, *, timeout: Timeout = DEFAULT) -> LoadInfo:
        r = self._n.prefetch(_check_name(name), self._timeout(timeout, load=True))
        return LoadInfo(*r)

    def reload(self, name: str, *, timeout: Timeout = DEFAULT) -> ReloadInfo:
        """Loads `name`'s current files as a new generation beside the one in
        use and swaps it in once verified: leases already held keep the old
        bytes until released; every acquire after this returns gets the new
        generation. A failed load leaves the old generation serving and raises
        its error. A name not resident is simply loaded. `timeout` defaults to
        the client's ``load_timeout``."""
        return ReloadInfo(*self._n.reload(_check_name(name), self._timeout(timeout, load=True)))

    def publish(self, name: str, tensors: Mapping[str, Any], config: Mapping[str, Any], *,
                timeout: Timeout = DEFAULT) -> ReloadInfo:
        """Publishes an adapter from memory, with no file: `tensors` (name ->
        torch tensor or numpy array, e.g. PEFT's
        ``get_peft_model_state_dict(model)``) and `config` (its
        adapter_config.json as a dict, e.g.
        ``model.peft_config[name].to_dict()``) are written into two sealed
        memfds (genomed/_publish.py), which genomed validates as files and
        swaps in as :meth:`reload` does. Only genomed's own user, and those
        given ``--publish-uid`` / ``--publish-gid``, may publish
        (``PermissionDenied`` otherwise). `timeout` defaults to
        ``load_timeout``."""
        name = _check_name(name)
        with _publish.sealed_adapter(tensors, config) as (config_fd, weights_fd):
            return ReloadInfo(*self._n.publish_fds(name, config_fd, weights_fd,
                                                   self._timeout(timeout, load=True)))

    def unload(self, name: str, *, timeout: Timeout = DEFAULT) -> UnloadInfo:
        r = self._n.unload(_check_name(name), self._timeout(timeout))
        return UnloadInfo(name=r[0], outcome=r[1], leases=r[2])

    def pin(self, name: str, *, timeout: Timeout = DEFAULT,
            keep_alive: Optional[float] = None, priority: str = "normal") -> PinInfo:
        keep_ms, prio = _load_args(keep_alive, priority)
        r = self._n.pin(_check_name(name), self._timeout(timeout, load=True), keep_ms, prio)
        return PinInfo(*r)

    def unpin(self, name: str, *, timeout: Timeout = DEFAULT) -> PinInfo:
        r = self._n.unpin(_check_name(name), self._timeout(timeout))
        return PinInfo(*r)

    def list(self, *, timeout: Timeout = DEFAULT) -> List[AdapterInfo]:
        return [AdapterInfo(name=a[0], state=a[1], bytes=a[2], leases=a[3], generation=a[4],
                            pinned=a[5], idle_ms=a[6], expires_in_ms=a[7], fill_total=a[8],
                            filled=a[9], digest=a[10])
                for a in self._n.list(self._timeout(timeout))]

    def stats(self, *, timeout: Timeout = DEFAULT) -> Dict[str, StatValue]:
        stats: Dict[str, StatValue] = self._n.stats(self._timeout(timeout))
        return stats

    def health(self, *, timeout: Timeout = DEFAULT) -> Health:
        healthy, reason, saturated = self._n.health(self._timeout(timeout))
        return Health(healthy=healthy, reason=reason, saturated=saturated)

    def close(self) -> None:
        """No more calls; the connection closes once no lease of it lives."""
        self._closed = True
        self._n.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<genomed.Client {self._path!r} (native) {'closed' if self.closed else 'open'}>"


def connect(path: str, timeout: Optional[float] = DEFAULT_TIMEOUT,
            client_name: str = "genomed-python", *,
            load_timeout: Optional[float] = DEFAULT_LOAD_TIMEOUT) -> Client:
    """Connects to genomed at the Unix socket `path`, exchanges HELLO, and maps
    the arena read-only.

    Args:
        path: the daemon's ``--socket``.
        timeout: seconds for connecting and for quick calls (unload, list,
            stats, health); ``None`` waits for ever. Each call also takes a
            ``timeout=`` of its own.
        client_name: shown in the daemon's log.
        load_timeout: seconds for load() and acquire(), which may have to
            read an adapter from disk (default 120 s); ``None`` waits for ever.

    A call that misses its deadline raises :class:`genomed.CallTimeoutError`
    (code ``"timeout"``) and closes the client; so does an exception a signal
    handler raises while a call waits (KeyboardInterrupt, a server's request
    timeout): it propagates, and later calls raise
    :class:`genomed.NotConnectedError`. Raises
    :class:`genomed.NotConnectedError` if no daemon listens at `path`.
    """
    import os
    path = os.fspath(path)
    native = _native.NativeClient.connect(path, client_name, timeout, timeout, load_timeout)
    return Client(native, path, timeout, load_timeout)
