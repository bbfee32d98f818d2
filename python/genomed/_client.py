"""The genomed client: a connection, the read-only arena mapping, and leases.

Mirrors the C++ client (include/genomed/client.h, client/). How memory
stays valid:

* The arena is mapped once, ``PROT_READ``/``MAP_SHARED``; the descriptor is
  closed right after. The mapping is unmapped only when nothing references it
  any more (the client, or any view).
* Every lease has one *exporter* object. All its arrays (and torch tensors
  made from them) keep the exporter alive through numpy's ``.base`` chain. The
  daemon is sent the lease's RELEASE only when the exporter dies (a
  ``weakref.finalize``): leaving the ``with`` block or calling ``release()``
  while arrays are still referenced defers the release until they are gone,
  so the daemon can never reuse memory a view still shows.
* A connection stays open while views of its leases exist, even after
  ``close()``, a timed-out or interrupted call, or a reply that breaks the
  protocol (the daemon ends a connection's leases when it closes); it closes
  when the last of them is gone.

fork(): a client and its leases belong to the process that connected. A
child of ``os.fork()`` (gunicorn's workers, ``multiprocessing`` with fork)
inherits copies that share the parent's socket, so in the child they send
and read nothing: dropping or releasing an inherited lease, or closing an
inherited client, leaves the parent's leases held; every call raises
:class:`genomed.NotConnectedError` telling the child to connect again
(``os.register_at_fork`` marks them in the child; the owner's pid is checked
too, for a fork that ran no Python hooks).

Threads: one call (request + reply) at a time per connection, under the call
lock. RELEASE is one-way and written under a separate write lock that is never
held across a wait for a reply. Finalizers run inside garbage collection, in
any thread, possibly one that holds these locks, so they never block: they
queue the lease id and try-lock; whoever holds a lock drains the queue after
unlocking.
"""

from __future__ import annotations

import collections
import copy
import json
import math
import mmap
import os
import socket
import stat
import threading
import time
import warnings
import weakref
from typing import (TYPE_CHECKING, Any, Callable, Deque, Dict, Iterable, List, Optional, Set,
                    Tuple, Union)

import numpy as np

from . import _errors, _layout, _wire
from .types import (AdapterInfo, Health, LoadInfo, LoraModule, PinInfo, ReloadInfo, StatValue,
                    UnloadInfo)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["connect", "Client", "Lease", "DEFAULT", "DEFAULT_TIMEOUT", "DEFAULT_LOAD_TIMEOUT"]

DEFAULT_TIMEOUT = 10.0
"""Seconds: the default deadline of connect() and of quick calls."""
DEFAULT_LOAD_TIMEOUT = 120.0
"""Seconds: the default deadline of load() and acquire(), which may load from disk."""
_MAX_KEEP_ALIVE_S = 365 * 24 * 3600  # as kMaxKeepAliveMs in ipc/protocol.h
PARSED_CACHE_ENTRIES = 64  # as HeaderCache::kEntries in client/header_cache.h


class _Default:
    """Type of DEFAULT: "use the client's timeout"."""

    _instance: Optional["_Default"] = None

    def __new__(cls) -> "_Default":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()
Timeout = Union[float, None, _Default]


# ---- the arena mapping ----------------------------------------------------------

_libc: Optional[Any]
try:
    import ctypes

    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.mmap.restype = ctypes.c_void_p
    _libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                           ctypes.c_int, ctypes.c_long]
    _libc.munmap.restype = ctypes.c_int
    _libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    _MAP_FAILED = ctypes.c_void_p(-1).value
except (ImportError, OSError, AttributeError):  # pragma: no cover - no ctypes: use mmap.mmap
    _libc = None


class _Mapping:
    """The whole arena, mapped read-only. Unmapped when the last reference goes.

    mmap(2) is called directly (ctypes) so that no descriptor stays open:
    Python's mmap.mmap keeps a duplicate of the descriptor for its lifetime.
    """

    __slots__ = ("address", "length", "_fallback", "__array_interface__", "__weakref__")

    def __init__(self, fd: int, length: int) -> None:
        self.address = 0
        self.length = length
        self._fallback: Optional[mmap.mmap] = None
        size = os.fstat(fd).st_size
        if size < length:  # mapping past the end of the segment would SIGBUS on access
            raise _errors.make("bad_request", f"the arena descriptor holds {size} bytes, "
                                              f"less than arena_bytes {length}")
        if _libc is not None:
            address = _libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if address is None or address == _MAP_FAILED:
                err = ctypes.get_errno()
                raise _errors.make("internal",
                                   f"cannot map the arena read-only: {os.strerror(err)}")
            self.address = address
        else:  # pragma: no cover
            self._fallback = mmap.mmap(fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
            self.address = np.frombuffer(self._fallback, np.uint8).__array_interface__["data"][0]
        self.__array_interface__ = {"version": 3, "shape": (length,), "typestr": "|u1",
                                    "data": (self.address, True)}

    def __del__(self) -> None:
        if self._fallback is None and self.address and _libc is not None:
            _libc.munmap(self.address, self.length)
            self.address = 0


class _Exporter:
    """The one object all views of one lease keep alive; its death releases the lease."""

    __slots__ = ("_mapping", "__array_interface__", "__weakref__")

    def __init__(self, mapping: _Mapping, offset: int, length: int) -> None:
        self._mapping = mapping  # the arena stays mapped while any view exists
        self.__array_interface__ = {"version": 3, "shape": (length,), "typestr": "|u1",
                                    "data": (mapping.address + offset, True)}


# ---- the connection -----------------------------------------------------------

# Every open connection of this process, for the fork hook below.
_connections: "weakref.WeakSet[_Connection]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for conn in list(_connections):
        conn.forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _Connection:
    def __init__(self, stream: _wire.Stream, path: str, mapping: _Mapping, arena_bytes: int,
                 pid: int, server: str) -> None:
        self._owner_pid = os.getpid()  # the process that connected: the only one that may use it
        self._forked = False  # this process is a child of fork() of the owner (forked())
        self.stream = stream
        self.path = path
        self.arena_bytes = arena_bytes
        self.pid = pid
        self.server = server
        self.mapping: Optional[_Mapping] = mapping
        self.arena: Optional[np.ndarray] = np.asarray(mapping)  # read-only uint8
        self._call_lock = threading.Lock()  # one request/reply at a time
        self._write_lock = threading.Lock()  # one writer of the socket at a time; short
        self._releases: Deque[int] = collections.deque()  # lease ids awaiting RELEASE
        self._outbox = b""  # the unsent rest of a RELEASE frame (under the write lock)
        self._live: Set[int] = set()  # leases whose views may exist: keep the socket open
        self._closing: Optional[str] = None  # why no new calls are accepted
        self._closed = False  # the socket is closed
        self._no_writes = False  # a frame may be half written: send nothing more
        self._cache: "collections.OrderedDict[Tuple[int, int, int], _layout.ParsedAdapter]" = (
            collections.OrderedDict())
        self._cache_lock = threading.Lock()
        _connections.add(self)

    # -- fork() ------------------------------------------------------------------

    def forked(self) -> None:
        """In a child of fork() of the owner: the socket is the parent's (a byte
        written or read here would mix with its requests and replies), and so
        are the leases (a RELEASE from here would end them under the parent's
        views). So nothing is sent from here, RELEASEs queued by the parent are
        dropped, and every call refuses. The child's copy of the socket
        descriptor is closed like any other when the connection ends here:
        that leaves the parent's open (no shutdown() is ever called)."""
        self._forked = True
        # A thread of the parent may have held them at the fork; it does not exist here.
        self._call_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._releases = collections.deque()
        self._outbox = b""
        self._no_writes = True
        self._closing = (f"this client was connected by process {self._owner_pid}; this "
                         f"process ({os.getpid()}) is a child of fork() and cannot use it (its "
                         "requests and replies would mix with the parent's on the one socket)"
                         ": connect() again in this process")

    def _owned(self) -> bool:
        """False in a child of fork() (marked by the fork hook; the pid check
        catches a fork that ran no Python hooks, and marks it then)."""
        if self._forked:
            return False
        if self._owner_pid != os.getpid():
            self.forked()
            return False
        return True

    # -- requests ----------------------------------------------------------------

    def call(self, request: Dict[str, Any], timeout: Optional[float],
             on_reply: Optional[Callable[[Dict[str, Any]], None]] = None, *,
             deadline: Optional[float] = None) -> Dict[str, Any]:
        """One request, one reply. `on_reply` runs while the call lock is still
        held (acquire registers its grants there, before anything can close).
        `deadline` (time.monotonic()) replaces now + `timeout` for a call of
        several round trips (LIST's pages); `timeout` still names it in messages.

        Any exception other than a genomed.Error from the moment the request
        is written until `on_reply` returns (KeyboardInterrupt, an exception
        raised by a signal handler, MemoryError, ...) leaves the reply unread
        or unused: the connection then takes no further requests (as after a
        timeout) and the exception propagates."""
        frame = _wire.encode_frame(request)
        op = request["op"]
        if not self._owned():  # before the call lock: see forked()
            raise _errors.make("not_connected", f"{op}: {self._closing}")
        if deadline is None and timeout is not None:
            deadline = time.monotonic() + timeout
        try:
            with self._call_lock:
                if self._closing is not None:
                    raise _errors.make("not_connected", f"{op}: {self._closing}; connect again")
                writing = True  # a frame may be half written if interrupted now
                try:
                    try:
                        with self._write_lock:
                            if self._no_writes:
                                raise _errors.make("not_connected",
                                                   f"{op}: the connection is broken")
                            pending = self._outbox + self._release_frames()
                            self._outbox = b""
                            self.stream.send_all(pending + frame, deadline)
                    except _errors.Error as e:
                        self._no_writes = True  # part of a frame may be out: unusable
                        raise self._broke(e, op, timeout) from None
                    writing = False
                    try:
                        body, _ = self.stream.read_frame(deadline)
                    except _errors.Error as e:
                        raise self._broke(e, op, timeout) from None
                    # The daemon reads again now: send what finalizers queued meanwhile.
                    if self._releases or self._outbox:
                        writing = True
                        with self._write_lock:
                            self._flush_locked(time.monotonic() + 5.0)
                        writing = False
                    reply = _wire.decode_reply(body)
                    if on_reply is not None:
                        on_reply(reply)
                    return reply
                except _errors.Error:
                    raise  # the daemon's answer, or the connection already marked
                except BaseException as e:
                    self._interrupted(op, e, writing)
                    raise
        finally:
            self._kick()

    def _interrupted(self, op: str, e: BaseException, writing: bool) -> None:
        """A call was cut short by an exception that is not a genomed.Error: its
        reply may still arrive and would be read as the next request's."""
        if writing:
            self._no_writes = True  # part of a frame may be out
        if self._closing is None:
            self._closing = (f"the connection was closed after {op} was interrupted by "
                             f"{type(e).__name__} before its reply was used (a late reply "
                             "would be read as the answer to the next request)")

    def break_protocol(self, why: str) -> None:
        """The daemon's reply does not answer the request: the stream may be out
        of step, so no further requests are sent (RELEASEs still are)."""
        if self._closing is None:
            self._closing = ("the connection was closed after a reply that breaks the "
                             f"protocol ({why})")

    def _broke(self, e: _errors.Error, op: str, timeout: Optional[float]) -> _errors.Error:
        if isinstance(e, _errors.CallTimeoutError):
            why = (f"{op}: no reply from genomed within {duration_text(timeout)}; this "
                   "connection is now closed (a late reply would be out of order): connect again")
            self._closing = "the connection was closed after a call timed out"
            return _errors.timeout_error(why)
        self._closing = "the connection to genomed was lost"
        self._no_writes = True
        if e.code in ("not_connected", "protocol_error"):
            return e
        if e.code == "frame_too_large":  # the daemon sent it: its fault, not ours
            return _errors.make("protocol_error", f"{op}: {e.message}")
        return _errors.make("not_connected", f"{op}: {e.message}")

    def send_release_soon(self, lease_id: int) -> None:
        """Queues a RELEASE and sends it if that does not block. Never blocks."""
        if not self._closed:
            self._releases.append(lease_id)
        self._kick()

    def exporter_gone(self, lease_id: int) -> None:
        """Finalizer of a lease's exporter: its last view is gone."""
        self._live.discard(lease_id)
        self.send_release_soon(lease_id)  # also closes a closing connection without views

    def _release_frames(self) -> bytes:
        """Frames for every queued lease id (under the write lock)."""
        out = []
        while self._releases:
            ids: List[int] = []
            while self._releases and len(ids) < _wire.MAX_BATCH:
                ids.append(self._releases.popleft())
            out.append(_wire.encode_frame({"op": "release", "leases": ids}))
        return b"".join(out)

    def _drain_locked(self) -> bool:
        """Sends queued RELEASEs without blocking (under the write lock). False if
        the socket buffer is full: the daemon is busy with this connection's
        call, whose thread drains the rest after the reply."""
        if self._closed or self._no_writes:
            self._releases.clear()  # the connection's end releases everything
            self._outbox = b""
            return True
        while True:
            if not self._outbox:
                self._outbox = self._release_frames()
                if not self._outbox:
                    return True
            try:
                sent = self.stream.try_send(self._outbox)
            except _errors.Error:
                self._closing = "the connection to genomed was lost"
                self._no_writes = True
                self._releases.clear()
                self._outbox = b""
                return True
            self._outbox = self._outbox[sent:]
            if sent == 0:
                return False

    def _flush_locked(self, deadline: float) -> None:
        """Like _drain_locked, but waits for room (only while the daemon reads)."""
        while not self._drain_locked():
            try:
                self.stream.wait_writable(deadline)
            except _errors.Error:
                return  # left queued; the next writer sends it

    def _kick(self) -> None:
        """Drains queued RELEASEs, and closes a closing connection without views.
        Never blocks: when a lock is busy its holder does this after unlocking."""
        self._owned()  # in a child of fork(): nothing is written from here
        while True:
            if self._releases or self._outbox:
                if not self._write_lock.acquire(blocking=False):
                    return
                try:
                    if not self._drain_locked():
                        return
                finally:
                    self._write_lock.release()
            if self._closing is not None and not self._closed and not self._live:
                if not self._try_close():
                    return
            if not (self._releases or self._outbox) or self._closed:
                return

    def _try_close(self) -> bool:
        if not self._call_lock.acquire(blocking=False):
            return False
        try:
            if not self._write_lock.acquire(blocking=False):
                return False
            try:
                if not self._closed and not self._live and self._closing is not None:
                    self._closed = True
                    self._releases.clear()
                    self._outbox = b""
                    self.stream.sock.close()
                    self.arena = None  # unmapped once the last array of it is gone
                    self.mapping = None
                return True
            finally:
                self._write_lock.release()
        finally:
            self._call_lock.release()

    def close(self) -> None:
        if self._closing is None:
            self._closing = "the client is closed"
        self._kick()

    # -- leases ------------------------------------------------------------------

    def parsed(self, generation: int, offset: int, length: int) -> _layout.ParsedAdapter:
        """The validated header of a grant, parsed once per (generation, offset,
        length): a generation is one load, and memory under a lease is never
        reused, so the same key always names the same bytes."""
        key = (generation, offset, length)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        arena = self.arena
        assert arena is not None  # a live lease keeps the connection open
        parsed = _layout.parse(arena[offset:offset + length])
        with self._cache_lock:
            self._cache[key] = parsed
            while len(self._cache) > PARSED_CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return parsed


# ---- leases --------------------------------------------------------------------

_TORCH_VIEWS = {
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E8M0": "float8_e8m0fnu",
}


def torch_views(arrays: Dict[str, np.ndarray], dtypes: Dict[str, str]) -> Dict[str, "torch.Tensor"]:
    """torch tensors over `arrays` (zero-copy: each keeps its array, hence its
    lease), with the real dtype of BF16 and the F8 types, whose arrays hold
    raw bits (numpy has no such dtypes)."""
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("Lease.to_torch() needs PyTorch: pip install 'genomed[torch]'") from e
    out: Dict[str, torch.Tensor] = {}
    with warnings.catch_warnings():
        # torch warns that it cannot mark tensors read-only; the docstring says so.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable",
                                category=UserWarning)
        for name, array in arrays.items():
            tensor = torch.from_numpy(array)
            view = _TORCH_VIEWS.get(dtypes[name])
            if view is not None:
                tensor = tensor.view(getattr(torch, view))
            out[name] = tensor
    return out


class Lease:
    """One lease on one resident adapter: zero-copy, read-only views of its tensors.

    Use it as a context manager, or call :meth:`release`. Leaving the block
    (or releasing) ends the lease as soon as no array or tensor taken from it
    is referenced any more; until then the daemon keeps the memory as it is.
    After that, ``tensors``, ``modules`` and ``to_torch()`` raise
    :class:`genomed.LeaseReleasedError`; the metadata (``name``, ``dtypes``,
    ``config``, ...) stays readable.
    """

    __slots__ = ("name", "id", "generation", "digest", "offset", "nbytes", "_parsed", "_exporter",
                 "_tensors", "_modules", "_lock", "__weakref__")

    name: str
    id: int
    generation: int
    digest: str
    offset: int
    nbytes: int

    def __init__(self, name: str, lease_id: int, generation: int, offset: int, nbytes: int,
                 parsed: _layout.ParsedAdapter, exporter: _Exporter, digest: str = "") -> None:
        self.name = name  #: the adapter's name
        self.id = lease_id  #: the daemon's lease id
        self.generation = generation  #: which load of the adapter this copy is
        #: the copy's content digest, 32 hex digits (XXH3-128 over its config and
        #: tensors): equal for equal content under any name or generation; key
        #: caches by it. "" from daemons older than it
        self.digest = digest
        self.offset = offset  #: the range's offset in the arena
        self.nbytes = nbytes  #: the range's length (header and tensors)
        self._parsed = parsed
        self._exporter: Optional[_Exporter] = exporter
        self._tensors: Optional[Dict[str, np.ndarray]] = None
        self._modules: Optional[List[LoraModule]] = None
        self._lock = threading.Lock()

    # -- views -------------------------------------------------------------------

    def _views_locked(self) -> Dict[str, np.ndarray]:
        if self._exporter is None:
            raise _errors.LeaseReleasedError(
                message=f"lease {self.id} on '{self.name}' was released: it hands out no new "
                        "views (keep the lease, or keep the arrays you took before releasing)")
        if self._tensors is None:
            self._tensors = _layout.views(np.asarray(self._exporter), self._parsed)
        return self._tensors

    def _views(self) -> Dict[str, np.ndarray]:
        with self._lock:
            return self._views_locked()

    @property
    def tensors(self) -> Dict[str, np.ndarray]:
        """Tensor name -> read-only numpy array over the shared memory (sorted by
        name). BF16 and the F8 types come as uint16/uint8 arrays of their raw bits
        (see ``dtypes``); ``to_torch()`` gives them their real dtype."""
        return self._views()

    @property
    def modules(self) -> List[LoraModule]:
        """The LoRA modules, sorted by path, with views of their tensors."""
        with self._lock:
            tensors = self._views_locked()
            if self._modules is None:
                self._modules = [
                    LoraModule(path=m.path, a=tensors[m.a], b=tensors[m.b],
                               magnitude=None if m.magnitude is None else tensors[m.magnitude],
                               rank=m.rank, alpha=m.alpha, scaling=m.scaling, kind=m.kind,
                               lora_bias=None if m.lora_bias is None else tensors[m.lora_bias],
                               a_name=m.a, b_name=m.b)
                    for m in self._parsed.modules]
            return list(self._modules)

    def to_torch(self) -> Dict[str, "torch.Tensor"]:
        """Tensor name -> torch.Tensor over the same read-only memory, with the
        tensor's real dtype (BF16 -> torch.bfloat16, F8_E4M3 -> float8_e4m3fn,
        F8_E5M2 -> float8_e5m2, F8_E8M0 -> float8_e8m0fnu).

        The tensors share the arena mapping, which is read-only: **never write
        to them** (in-place ops would crash the process with SIGSEGV). Copy
        (``t.clone()``) to get a writable tensor. Needs ``pip install
        genomed[torch]``.
        """
        return torch_views(self._views(), {t.name: t.dtype for t in self._parsed.tensors})

    def verify(self) -> None:
        """Hashes every tensor's bytes again and compares each with the checksum
        its load recorded in the resident header (XXH3-64, as the daemon's fill
        computed it over the bytes it wrote). Returns if all match; raises
        :class:`genomed.LayoutError` (``layout_invalid``) naming the first tensor
        (by name) that differs. Reads every byte of the adapter. Needs the
        ``xxhash`` package (``pip install 'genomed[verify]'``); a released lease
        raises :class:`genomed.LeaseReleasedError`.
        """
        with self._lock:
            self._views_locked()  # refuses a released lease
            assert self._exporter is not None
            _layout.verify_checksums(np.asarray(self._exporter), self._parsed,
                                     f"adapter '{self.name}' (generation {self.generation})")

    # -- metadata ----------------------------------------------------------------

    @property
    def dtypes(self) -> Dict[str, str]:
        """Tensor name -> safetensors dtype name ("BF16", "F16", ...)."""
        return {t.name: t.dtype for t in self._parsed.tensors}

    @property
    def shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Tensor name -> shape."""
        return {t.name: t.shape for t in self._parsed.tensors}

    @property
    def checksums(self) -> Dict[str, int]:
        """Tensor name -> XXH3-64 (seed 0) of its bytes, as the load recorded them
        in the resident header (what ``verify()`` checks against). With ``dtypes``,
        ``shapes`` and ``config`` it identifies the adapter's content without
        reading the tensors: the vLLM plugin keys its state by a digest of them."""
        return {t.name: t.checksum for t in self._parsed.tensors}

    @property
    def config(self) -> Dict[str, Any]:
        """The adapter's adapter_config.json as the daemon validated it (a new dict
        on every access; unknown keys are kept)."""
        config: Dict[str, Any] = json.loads(self._parsed.config_json)
        return config

    @property
    def contract(self) -> Dict[str, Any]:
        """The whole adapter contract (docs/protocol.md 8.1), as a new dict."""
        return copy.deepcopy(self._parsed.contract)

    @property
    def lora_r(self) -> int:
        """The config's default rank ``r``."""
        return self._parsed.lora_r

    @property
    def lora_alpha(self) -> float:
        """The config's default ``lora_alpha``."""
        return self._parsed.lora_alpha

    @property
    def bias_tensors(self) -> List[str]:
        """Base-layer biases the adapter carries (config ``bias`` is not "none")."""
        return list(self._parsed.bias_tensors)

    @property
    def saved_module_tensors(self) -> List[str]:
        """Weights of ``modules_to_save`` modules (trained in full)."""
        return list(self._parsed.saved_module_tensors)

    @property
    def other_tensors(self) -> List[str]:
        """Tensors no rule of the contract explains."""
        return list(self._parsed.other_tensors)

    # -- lifetime ----------------------------------------------------------------

    @property
    def released(self) -> bool:
        return self._exporter is None

    def release(self) -> None:
        """Ends the lease: at once if no view of it is referenced, otherwise as
        soon as the last one is gone. Idempotent; never blocks."""
        with self._lock:
            exporter, self._exporter = self._exporter, None
            self._tensors = None
            self._modules = None
        del exporter  # the finalizer runs here unless views are still alive

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self._exporter is None else "active"
        return (f"<genomed.Lease {self.name!r} id={self.id} generation={self.generation} "
                f"tensors={len(self._parsed.tensors)} modules={len(self._parsed.modules)} "
                f"nbytes={self.nbytes} {state}>")


# ---- the client ----------------------------------------------------------------


def duration_text(seconds: Optional[float]) -> str:
    """A deadline as the C++ client words it (client/transport.cc
    duration_text), so both clients' timeout messages read the same: under a
    second in whole milliseconds ("500 ms"), else seconds ("2 s", "1.5 s").
    Rounded up to the millisecond as the C++ client's timeouts are. (None,
    no deadline, never times out: "its deadline" keeps the caller total.)"""
    if seconds is None:
        return "its deadline"
    ms = math.ceil(seconds * 1000.0)
    if ms < 1000:
        return f"{ms} ms"
    if ms % 1000 == 0:
        return f"{ms // 1000} s"
    return f"{ms / 1000.0:.3g} s"


def _check_name(name: Any, what: str = "name") -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__}")
    return name


def _optional_bool(reply: Dict[str, Any], key: str) -> bool:
    """A bool field newer daemons send; False when absent."""
    return key in reply and _wire.get_bool(reply, key)


def _digest(reply: Dict[str, Any], key: str = "digest") -> str:
    """The content digest newer daemons send (32 lowercase hex digits of
    XXH3-128 over the config and tensors, docs/protocol.md §8.2); "" when absent."""
    if key not in reply:
        return ""
    d = _wire.get_str(reply, key)
    if len(d) != 32 or d.strip("0123456789abcdef"):
        raise _errors.make("protocol_error", f"field '{key}': expected 32 lowercase hex "
                                             f"digits, got {d[:40]!r}")
    return d


def _optional_uint(reply: Dict[str, Any], key: str) -> Optional[int]:
    """A uint field newer daemons send; None when absent or nil."""
    return None if reply.get(key) is None else _wire.get_uint(reply, key)


_PRIORITIES = ("high", "normal", "low")


def load_args(keep_alive: Optional[float], priority: str) -> Tuple[Optional[int], str]:
    """keep_alive in ms (None: not given) and the priority, checked."""
    if priority not in _PRIORITIES:
        raise _errors.make("bad_request", f"priority: expected 'high', 'normal' or 'low', "
                                          f"got {priority!r}")
    if keep_alive is None:
        return None, priority
    if isinstance(keep_alive, bool) or not isinstance(keep_alive, (int, float)) or not (
            0 <= keep_alive <= _MAX_KEEP_ALIVE_S):
        raise _errors.make("bad_request", f"keep_alive: expected seconds in [0, "
                                          f"{_MAX_KEEP_ALIVE_S}], got {keep_alive!r}")
    # A positive time never rounds to 0 ms: the daemon reads 0 as "never".
    return (max(1, int(round(keep_alive * 1000))) if keep_alive > 0 else 0), priority


def _load_fields(keep_alive: Optional[float], priority: str = "normal") -> Dict[str, Any]:
    """The optional fields of a load, acquire or pin request."""
    keep_ms, priority = load_args(keep_alive, priority)
    fields: Dict[str, Any] = {}
    if priority != "normal":
        fields["priority"] = priority
    if keep_ms is not None:
        fields["keep_alive"] = keep_ms
    return fields


def _load_info(r: Dict[str, Any]) -> LoadInfo:
    return LoadInfo(name=_wire.get_str(r, "name"), bytes=_wire.get_uint(r, "bytes"),
                    generation=_wire.get_uint(r, "generation"),
                    was_resident=_wire.get_bool(r, "was_resident"), digest=_digest(r))


def _pin_info(r: Dict[str, Any]) -> PinInfo:
    return PinInfo(name=_wire.get_str(r, "name"), bytes=_wire.get_uint(r, "bytes"),
                   generation=_wire.get_uint(r, "generation"),
                   pinned=_wire.get_bool(r, "pinned"),
                   was_pinned=_wire.get_bool(r, "was_pinned"), digest=_digest(r))


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

    def __init__(self, conn: _Connection, timeout: Optional[float],
                 load_timeout: Optional[float]) -> None:
        self._conn = conn
        self.timeout = timeout  #: deadline (s) of quick calls; None: no deadline
        self.load_timeout = load_timeout  #: deadline (s) of load/acquire; None: no deadline

    # -- properties --------------------------------------------------------------

    @property
    def path(self) -> str:
        """The daemon's socket path."""
        return self._conn.path

    @property
    def arena_bytes(self) -> int:
        """Size of the shared-memory arena (the daemon's --budget)."""
        return self._conn.arena_bytes

    @property
    def daemon_pid(self) -> int:
        return self._conn.pid

    @property
    def server(self) -> str:
        """The daemon's version string ("genomed 0.1.0")."""
        return self._conn.server

    @property
    def arena(self) -> np.ndarray:
        """The whole arena as a read-only uint8 array (every view lies inside it).

        Only leased ranges have defined contents."""
        arena = self._conn.arena
        if arena is None:
            raise _errors.make("not_connected", "the client is closed")
        return arena

    @property
    def closed(self) -> bool:
        """True once the client accepts no more calls (close(), a timeout, a call
        interrupted by another exception, a reply that breaks the protocol, a
        lost connection, or in a child of fork() of the process that connected).
        The socket itself closes when the last view is gone."""
        self._conn._owned()  # marks an inherited connection after a fork without hooks
        return self._conn._closing is not None

    def _timeout(self, timeout: Timeout, load: bool = False) -> Optional[float]:
        if isinstance(timeout, _Default):
            return self.load_timeout if load else self.timeout
        return timeout

    # -- leases ------------------------------------------------------------------

    def acquire(self, name: str, *, timeout: Timeout = DEFAULT,
                keep_alive: Optional[float] = None, priority: str = "normal") -> Lease:
        """Makes `name` resident (loading it if needed) and leases it.

        `timeout` defaults to the client's ``load_timeout`` (120 s unless set
        in connect()). `keep_alive` (seconds; 0: never) makes the daemon
        unload the adapter once unused that long, instead of its
        ``--idle-unload``; None leaves the adapter's keep-alive as it is.
        `priority` ("high", "normal", "low") orders the loads' jobs in the
        daemon's queue: higher first, in arrival order within one.
        Raises a :class:`genomed.Error` subclass on failure.
        """
        return self.acquire_many([_check_name(name)], timeout=timeout, keep_alive=keep_alive,
                                 priority=priority)[0]

    def acquire_many(self, names: Iterable[str], *, timeout: Timeout = DEFAULT,
                     keep_alive: Optional[float] = None,
                     priority: str = "normal") -> List[Lease]:
        """Leases several adapters in one round trip, all or nothing (1..64
        names, in order; a name may repeat). If one fails, none is leased and
        that name's error is raised. `keep_alive` as for acquire()."""
        if isinstance(names, str):
            raise TypeError("acquire_many() takes a list of names; use acquire(name) for one")
        names = [_check_name(n, "every name") for n in names]
        if not 1 <= len(names) <= _wire.MAX_BATCH:
            raise _errors.make("bad_request", f"acquire_many: expected 1..{_wire.MAX_BATCH} "
                                              f"names, got {len(names)}")
        fields = _load_fields(keep_alive, priority)
        conn = self._conn
        grants: List[Tuple[str, int, int, int, int]] = []
        unowned: List[int] = []  # lease ids in conn._live that no Lease owns yet

        def protocol(why: str) -> _errors.Error:
            return _errors.make("protocol_error",
                                f"acquire: genomed's reply does not follow the protocol: {why}")

        def take(reply: Dict[str, Any]) -> None:
            # Runs under the call lock: registered leases keep the connection open
            # until each is owned by a Lease or released (the except clause below).
            try:
                raw = _wire.get_list(reply, "grants")
            except _errors.Error as e:
                raise protocol(e.message) from None
            ids = [g["lease"] for g in raw if isinstance(g, dict) and isinstance(
                g.get("lease"), int) and not isinstance(g.get("lease"), bool)
                and 0 <= g["lease"] < 1 << 64]
            if len(set(ids)) != len(ids) or any(i in conn._live for i in ids):
                raise protocol("it granted a lease id twice")
            conn._live.update(ids)
            unowned.extend(ids)
            for g in raw:
                if not isinstance(g, dict):
                    raise protocol("reply field 'grants': an entry is not a map")
                try:
                    grants.append((_wire.get_str(g, "name"), _wire.get_uint(g, "lease"),
                                   _wire.get_uint(g, "offset"), _wire.get_uint(g, "length"),
                                   _wire.get_uint(g, "generation"), _digest(g)))
                except _errors.Error as e:
                    raise protocol(e.message) from None
            # A grant list that does not answer these names (another count, another
            # name at some position) may be the reply to another request: the stream
            # is out of step, so this connection takes no further requests.
            if len(grants) != len(names):
                why = f"it granted {len(grants)} leases for {len(names)} names"
                conn.break_protocol(why)
                raise protocol(why)
            for i, (asked, granted) in enumerate(zip(names, grants)):
                if granted[0] != asked:
                    why = (f"grant #{i} is for '{granted[0][:200]}', but '{asked[:200]}' was "
                           "asked for")
                    conn.break_protocol(why)
                    raise protocol(why)

        leases: List[Lease] = []
        try:
            conn.call({"op": "acquire", "names": names, **fields},
                      self._timeout(timeout, load=True), take)
            for name, lease_id, offset, length, generation, digest in grants:
                leases.append(self._make_lease(name, lease_id, offset, length, generation,
                                               digest))
                unowned.remove(lease_id)  # its exporter's finalizer releases it now
        except BaseException:
            for lease in leases:
                lease.release()
            for lease_id in unowned:
                conn.exporter_gone(lease_id)
            raise
        return leases

    def _make_lease(self, name: str, lease_id: int, offset: int, length: int,
                    generation: int, digest: str = "") -> Lease:
        conn = self._conn
        if offset > conn.arena_bytes or length > conn.arena_bytes - offset:
            raise _errors.make("layout_invalid", f"adapter '{name}': the granted range "
                                                 f"[{offset}, +{length}) lies outside the arena "
                                                 f"of {conn.arena_bytes} bytes")
        try:
            parsed = conn.parsed(generation, offset, length)
        except _errors.Error as e:
            raise _errors.make("layout_invalid", f"adapter '{name}': {e.message}") from None
        mapping = conn.mapping
        assert mapping is not None  # registered in _live: the connection stays open
        exporter = _Exporter(mapping, offset, length)
        finalizer = weakref.finalize(exporter, conn.exporter_gone, lease_id)
        finalizer.atexit = False  # at exit the connection's end releases everything
        return Lease(name, lease_id, generation, offset, length, parsed, exporter, digest)

    # -- other operations --------------------------------------------------------

    def load(self, name: str, *, timeout: Timeout = DEFAULT,
             keep_alive: Optional[float] = None, priority: str = "normal") -> LoadInfo:
        """Makes `name` resident without leasing it (waits for the load).
        `timeout` defaults to the client's ``load_timeout``; `keep_alive` and
        `priority` as for acquire()."""
        r = self._conn.call({"op": "load", "name": _check_name(name),
                             **_load_fields(keep_alive, priority)},
                            self._timeout(timeout, load=True))
        return _load_info(r)

    def prefetch(self, name: str, *, timeout: Timeout = DEFAULT) -> LoadInfo:
        """Warms `name` for a later acquire: a low-priority load that takes
        free room only (it never evicts a leased, pinned or used adapter)
        and never waits for room. Raises CapacityError ``prefetch_dropped``
        when it does not fit. A resident adapter is a hit."""
        r = self._conn.call({"op": "load", "name": _check_name(name), "prefetch": True},
                            self._timeout(timeout, load=True))
        return _load_info(r)

    def reload(self, name: str, *, timeout: Timeout = DEFAULT) -> ReloadInfo:
        """Loads `name`'s current files as a new generation beside the one in
        use and swaps it in once verified: leases already held keep the old
        bytes until released; every acquire after this returns gets the new
        generation. A failed load leaves the old generation serving and raises
        its error. A name not resident is simply loaded. `timeout` defaults to
        the client's ``load_timeout``."""
        r = self._conn.call({"op": "reload", "name": _check_name(name)},
                            self._timeout(timeout, load=True))
        return ReloadInfo(name=_wire.get_str(r, "name"), bytes=_wire.get_uint(r, "bytes"),
                          generation=_wire.get_uint(r, "generation"), digest=_digest(r),
                          previous_generation=_wire.get_uint(r, "previous_generation"),
                          previous_digest=_digest(r, "previous_digest"),
                          previous_leases=_wire.get_uint(r, "previous_leases"))

    def unload(self, name: str, *, timeout: Timeout = DEFAULT) -> UnloadInfo:
        """Unloads `name`: frees it, drains it (leases held), cancels its load, or
        lifts its quarantine."""
        r = self._conn.call({"op": "unload", "name": _check_name(name)}, self._timeout(timeout))
        return UnloadInfo(name=_wire.get_str(r, "name"), outcome=_wire.get_str(r, "outcome"),
                          leases=_wire.get_uint(r, "leases"))

    def pin(self, name: str, *, timeout: Timeout = DEFAULT,
            keep_alive: Optional[float] = None, priority: str = "normal") -> PinInfo:
        """Makes `name` resident (loading it if needed) and pins it: never
        evicted, and unload() refuses it until unpin(). Pins belong to the
        daemon, not to this connection. Raises CapacityError
        ``pin_budget_exceeded`` past the daemon's ``--pin-budget``.
        `timeout` defaults to the client's ``load_timeout``; `keep_alive`
        (counted once unpinned) and `priority` (of the load it may start) as
        for acquire()."""
        r = self._conn.call({"op": "pin", "name": _check_name(name),
                             **_load_fields(keep_alive, priority)},
                            self._timeout(timeout, load=True))
        return _pin_info(r)

    def unpin(self, name: str, *, timeout: Timeout = DEFAULT) -> PinInfo:
        """Makes a pinned adapter evictable again (``not_loaded`` if it is not
        resident)."""
        r = self._conn.call({"op": "unpin", "name": _check_name(name)}, self._timeout(timeout))
        return _pin_info(r)

    def list(self, *, timeout: Timeout = DEFAULT) -> List[AdapterInfo]:
        """Every adapter the daemon holds or loads, sorted by name.

        The daemon answers in pages (docs/protocol.md, "list"); this follows
        them, all within the one `timeout`. Each page starts after the last
        name of the one before, so no name comes twice; an adapter added or
        removed meanwhile may or may not be listed."""
        budget = self._timeout(timeout)
        deadline = None if budget is None else time.monotonic() + budget
        out: List[AdapterInfo] = []
        request: Dict[str, Any] = {"op": "list"}
        while True:
            r = self._conn.call(request, budget, deadline=deadline)
            for e in _wire.get_list(r, "adapters"):
                if not isinstance(e, dict):
                    raise _errors.make("protocol_error",
                                       "reply field 'adapters': an entry is not a map")
                info = AdapterInfo(name=_wire.get_str(e, "name"),
                                   state=_wire.get_str(e, "state"),
                                   bytes=_wire.get_uint(e, "bytes"),
                                   leases=_wire.get_uint(e, "leases"),
                                   generation=_wire.get_uint(e, "generation"),
                                   pinned=_optional_bool(e, "pinned"),
                                   idle_ms=_optional_uint(e, "idle_ms") or 0,
                                   expires_in_ms=_optional_uint(e, "expires_in_ms"),
                                   fill_total=_optional_uint(e, "fill_total") or 0,
                                   filled=_optional_uint(e, "filled") or 0,
                                   digest=_digest(e))
                if info.filled > info.fill_total:  # progress past its end: not genomed's
                    raise _errors.make("protocol_error",
                                       f"reply field 'adapters': '{info.name}' has filled "
                                       f"{info.filled} > fill_total {info.fill_total}")
                out.append(info)
            cursor = r.get("next")
            if cursor is None:
                return out
            if not isinstance(cursor, str) or cursor <= request.get("after", ""):
                raise _errors.make("protocol_error",
                                   "reply field 'next': not a name past the page's cursor")
            request = {"op": "list", "after": cursor}

    def stats(self, *, timeout: Timeout = DEFAULT) -> Dict[str, StatValue]:
        """The daemon's counters, in its order (docs/protocol.md, "stats")."""
        r = self._conn.call({"op": "stats"}, self._timeout(timeout))
        out: Dict[str, StatValue] = {}
        for key, value in _wire.get_map(r, "stats").items():
            if not isinstance(key, str):
                raise _errors.make("bad_request", "stats: a key is not a string")
            if isinstance(value, bool) or not isinstance(value, (int, str)) or (
                    isinstance(value, int) and value < 0):
                raise _errors.make("bad_request", f"stats: '{key}' is a {_wire._type_name(value)}")
            out[key] = value
        return out

    def health(self, *, timeout: Timeout = DEFAULT) -> Health:
        """Whether the daemon can load adapters now (and why not)."""
        r = self._conn.call({"op": "health"}, self._timeout(timeout))
        return Health(
            healthy=_wire.get_bool(r, "healthy"),
            reason=_wire.get_str(r, "reason"),
            saturated=_wire.get_bool(r, "saturated") if "saturated" in r else False,
        )

    # -- lifetime ----------------------------------------------------------------

    def close(self) -> None:
        """No more calls. The socket closes now, or, while arrays of this client's
        leases are still referenced, when the last of them is gone (closing it
        would end their leases). Idempotent; never blocks."""
        self._conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()

    def __repr__(self) -> str:
        c = self._conn
        state = ("open" if c._closing is None else
                 "closed" if c._closed else f"closing ({len(c._live)} leases with views)")
        return (f"<genomed.Client {c.path!r} server={c.server!r} daemon_pid={c.pid} "
                f"arena_bytes={c.arena_bytes} {state}>")


_NODE_KINDS = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
               (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"))


def _connect_error_text(path: str, error: OSError) -> str:
    """Why connecting to `path` failed, as the C++ client says it: a path
    naming something other than a socket fails with ECONNREFUSED, as a socket
    left by a stopped daemon does, so the node is looked at."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISSOCK(mode):
        kind = next((k for test, k in _NODE_KINDS if test(mode)), "a file of another kind")
        return (f"'{path}' is {kind}, not a socket: give the path genomed listens on "
                f"(its --socket)")
    if isinstance(error, FileNotFoundError):
        return (f"{error.strerror or error} (is the daemon running? it creates its socket "
                f"when it starts)")
    return f"{error.strerror or error} (is the daemon running?)"


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
    (code ``"timeout"``) and closes the client; so does any other exception
    that cuts a call short between its request and its reply
    (KeyboardInterrupt, one raised by a signal handler): it propagates, and
    later calls raise :class:`genomed.NotConnectedError`. Raises
    :class:`genomed.NotConnectedError` if no daemon listens at `path`.
    """
    if not isinstance(path, str):
        path = os.fspath(path)
    deadline = None if timeout is None else time.monotonic() + timeout
    if len(os.fsencode(path)) >= 108:  # sizeof(sockaddr_un.sun_path)
        raise _errors.make("bad_request", f"socket path '{path}' is too long")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fds: List[int] = []
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except socket.timeout:
            raise _errors.timeout_error(f"cannot connect to genomed at '{path}' within "
                                        f"{duration_text(timeout)}") from None
        except OSError as e:
            raise _errors.make("not_connected", f"cannot connect to genomed at '{path}': "
                                                f"{_connect_error_text(path, e)}") from None
        stream = _wire.Stream(sock)
        hello = {"op": "hello", "version": _wire.PROTOCOL_VERSION, "client": client_name}
        try:
            try:
                stream.send_all(_wire.encode_frame(hello), deadline)
            except _errors.CallTimeoutError:
                raise
            except _errors.Error as unsent:
                # A daemon that refuses this client (access control, its
                # connection limit) says why and closes the socket, maybe
                # before the HELLO arrives: its reply is waiting to be read.
                try:
                    body, refusal_fds = stream.read_frame(deadline, accept_fd=True)
                except _errors.Error:
                    raise unsent from None
                for fd in refusal_fds:  # a refusal carries none; never keep one
                    os.close(fd)
                _wire.decode_reply(body)  # raises the refusal
                raise unsent from None
            body, fds = stream.read_frame(deadline, accept_fd=True)
        except _errors.CallTimeoutError:
            raise _errors.timeout_error(f"hello: no reply from genomed at '{path}' within "
                                        f"{duration_text(timeout)}") from None
        reply = _wire.decode_reply(body)
        version = _wire.get_uint(reply, "version")
        server = _wire.get_str(reply, "server")
        arena_bytes = _wire.get_uint(reply, "arena_bytes")
        pid = _wire.get_uint(reply, "pid")
        if version != _wire.PROTOCOL_VERSION:
            raise _errors.make("unsupported_version",
                               f"genomed speaks protocol version {version}; this client "
                               f"speaks {_wire.PROTOCOL_VERSION}")
        if not fds:
            raise _errors.make("bad_request",
                               "the daemon's HELLO reply carried no arena descriptor")
        mapping = _Mapping(fds[0], arena_bytes)
    except BaseException:
        sock.close()
        raise
    finally:
        for fd in fds:  # the mapping keeps the arena alive
            os.close(fd)
    conn = _Connection(stream, path, mapping, arena_bytes, pid, server)
    return Client(conn, timeout, load_timeout)
