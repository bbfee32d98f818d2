"""Frames and messages of the genomed wire protocol (docs/protocol.md 1-2, 7).

Mirrors ipc/framing.h and ipc/protocol.h: a frame is a u32 **big-endian** body
length followed by the body, exactly one msgpack map. Replies are decoded
with the client-side limits of ipc/wire.h (kReplyLimits) and refused above
kMaxReplyFrame before anything is allocated.

The socket is kept non-blocking; deadlines are enforced here with poll(), so
that one thread can wait for a reply while another writes a one-way RELEASE
with MSG_DONTWAIT (which must never block).
"""

from __future__ import annotations

import array
import errno
import select
import socket
import struct
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import msgpack

from . import _errors

PROTOCOL_VERSION = 1
MAX_REQUEST_FRAME = 64 * 1024  # kMaxRequestFrame: frames a client may send
MAX_REPLY_FRAME = 16 * 1024 * 1024  # kMaxReplyFrame: frames the client accepts
MAX_BATCH = 64  # kMaxBatch: names per ACQUIRE, leases per RELEASE
MAX_NAME_BYTES = 512

# kReplyLimits (ipc/wire.h): arrays 2^20, maps 2^16, str/bin/ext 2^20 bytes.
REPLY_LIMITS: Dict[str, int] = {
    "max_str_len": 1 << 20,
    "max_bin_len": 1 << 20,
    "max_ext_len": 1 << 20,
    "max_array_len": 1 << 20,
    "max_map_len": 1 << 16,
}

_PREFIX = struct.Struct(">I")
_READ_CHUNK = 64 * 1024
_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def encode_frame(message: Dict[str, Any]) -> bytes:
    """Length prefix + msgpack body of one request."""
    body = msgpack.packb(message, use_bin_type=True)
    if len(body) > MAX_REQUEST_FRAME:
        raise _errors.make(
            "bad_request",
            f"request of {len(body)} bytes exceeds the daemon's limit of {MAX_REQUEST_FRAME} "
            "bytes (kMaxRequestFrame); send fewer or shorter names")
    return _PREFIX.pack(len(body)) + bytes(body)


def unpack(data: Any, what: str, code: str = "protocol_error") -> Any:
    """Decodes exactly one msgpack object within REPLY_LIMITS (strings as str)."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True,
                               **REPLY_LIMITS)
    except msgpack.ExtraData as e:
        raise _errors.make(code, f"{what}: {len(e.extra)} bytes follow the msgpack object"
                           ) from None
    except Exception as e:  # msgpack raises several types (ValueError, FormatError, ...)
        raise _errors.make(code, f"{what} is not valid msgpack within the decode limits: {e}"
                           ) from None


def decode_reply(body: bytes) -> Dict[str, Any]:
    """The reply map; raises the daemon's error when "ok" is false."""
    reply = unpack(body, "the daemon's reply")
    if not isinstance(reply, dict):
        raise _errors.make("protocol_error",
                           f"reply body is a msgpack {_type_name(reply)}, expected a map")
    ok = get_bool(reply, "ok")
    if not ok:
        number = get_uint(reply, "code")
        message = get_str(reply, "message")
        name = reply.get("error")
        raise _errors.from_wire(number, name if isinstance(name, str) else None, message)
    return reply


def _type_name(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer" if v >= 0 else "negative integer"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (bytes, bytearray)):
        return "binary"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "map"
    return type(v).__name__


class Fields:
    """Typed reads of a decoded msgpack map another process wrote. `fail`
    turns a message into the error to raise: replies (REPLY below) and the
    resident contract (_layout) share these checks and differ only there."""

    def __init__(self, fail: Callable[[str], _errors.Error], what: str) -> None:
        self._fail = fail
        self._what = what

    def field(self, m: Dict[str, Any], key: str) -> Any:
        if key not in m:
            raise self._fail(f"{self._what} lacks field '{key}'")
        return m[key]

    def wrong(self, key: str, expected: str, v: Any) -> _errors.Error:
        return self._fail(f"{self._what} field '{key}': expected {expected}, "
                          f"got {_type_name(v)}")

    def uint(self, m: Dict[str, Any], key: str) -> int:
        v = self.field(m, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v >= 1 << 64:
            raise self.wrong(key, "unsigned integer", v)
        return v

    def string(self, m: Dict[str, Any], key: str) -> str:
        v = self.field(m, key)
        if not isinstance(v, str):
            raise self.wrong(key, "string", v)
        return v

    def boolean(self, m: Dict[str, Any], key: str) -> bool:
        v = self.field(m, key)
        if not isinstance(v, bool):
            raise self.wrong(key, "boolean", v)
        return v

    def array(self, m: Dict[str, Any], key: str) -> List[Any]:
        v = self.field(m, key)
        if not isinstance(v, list):
            raise self.wrong(key, "array", v)
        return v

    def mapping(self, m: Dict[str, Any], key: str) -> Dict[Any, Any]:
        v = self.field(m, key)
        if not isinstance(v, dict):
            raise self.wrong(key, "map", v)
        return v


# A reply that breaks the protocol is protocol_error (docs/protocol.md §1),
# as in the C++ client: bad_request means the *request* was bad.
REPLY = Fields(lambda why: _errors.make("protocol_error", why), "reply")
get_uint = REPLY.uint
get_str = REPLY.string
get_bool = REPLY.boolean
get_list = REPLY.array
get_map = REPLY.mapping


def remaining(deadline: Optional[float]) -> Optional[float]:
    return None if deadline is None else deadline - time.monotonic()


class Stream:
    """One non-blocking SOCK_STREAM socket with deadlines and a read buffer.

    Reads are done by one thread at a time (the client's call lock); writes
    by one thread at a time (its write lock).
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._buf = bytearray()

    def _wait(self, events: int, deadline: Optional[float], what: str) -> None:
        poller = select.poll()
        poller.register(self.sock.fileno(), events)
        while True:
            left = remaining(deadline)
            if left is not None and left <= 0:
                raise _errors.timeout_error(f"no {what} from genomed within the deadline")
            ms = -1 if left is None else max(1, int(left * 1000 + 0.999))
            if poller.poll(ms):
                return

    def wait_writable(self, deadline: Optional[float]) -> None:
        """Waits for room in the socket buffer (CallTimeoutError after the deadline)."""
        self._wait(select.POLLOUT, deadline, "room in the socket buffer")

    def send_all(self, data: bytes, deadline: Optional[float]) -> None:
        """Sends everything, or raises (CallTimeoutError once the deadline passes).
        After an exception part of `data` may have been written."""
        view = memoryview(data)
        sent = 0
        while sent < len(view):
            try:
                sent += self.sock.send(view[sent:], _SEND_FLAGS)
            except (BlockingIOError, InterruptedError):
                self._wait(select.POLLOUT, deadline, "room in the socket buffer")
            except OSError as e:
                raise lost(f"cannot write to genomed: {e.strerror or e}") from None

    def try_send(self, data: bytes) -> int:
        """One non-blocking send; returns the bytes written (0 if the buffer is full)."""
        try:
            return self.sock.send(data, _SEND_FLAGS | _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as e:
            raise lost(f"cannot write to genomed: {e.strerror or e}") from None

    def _fill(self, want: int, deadline: Optional[float], accept_fd: bool,
              fds: List[int]) -> None:
        """Reads until the buffer holds `want` bytes."""
        while len(self._buf) < want:
            try:
                if accept_fd:
                    data, ancdata, flags, _ = self.sock.recvmsg(
                        max(_READ_CHUNK, want - len(self._buf)), socket.CMSG_SPACE(4 * 4),
                        getattr(socket, "MSG_CMSG_CLOEXEC", 0))
                    for level, kind, payload in ancdata:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            got = array.array("i")
                            got.frombytes(payload[:len(payload) - len(payload) % got.itemsize])
                            fds.extend(got)
                else:
                    data = self.sock.recv(max(_READ_CHUNK, want - len(self._buf)))
            except (BlockingIOError, InterruptedError):
                self._wait(select.POLLIN, deadline, "reply")
                continue
            except OSError as e:
                raise lost(f"cannot read from genomed: {e.strerror or e}") from None
            if not data:
                if self._buf:
                    raise lost(f"genomed closed the connection in the middle of a frame "
                               f"({len(self._buf)} of {want} bytes)")
                raise lost("genomed closed the connection")
            self._buf += data

    def read_frame(self, deadline: Optional[float], max_body: int = MAX_REPLY_FRAME,
                   accept_fd: bool = False) -> Tuple[bytes, List[int]]:
        """One frame's body, and the descriptors that came with it (only with
        accept_fd; the caller owns them)."""
        fds: List[int] = []
        try:
            self._fill(4, deadline, accept_fd, fds)
            (length,) = _PREFIX.unpack_from(self._buf)
            if length > max_body:
                raise _errors.make(
                    "frame_too_large",
                    f"genomed sent a frame of {length} bytes, over the limit of {max_body}")
            self._fill(4 + length, deadline, accept_fd, fds)
        except BaseException:
            for fd in fds:
                _close_fd(fd)
            raise
        body = bytes(self._buf[4:4 + length])
        del self._buf[:4 + length]
        return body, fds


def lost(why: str) -> _errors.Error:
    return _errors.make("not_connected", f"lost the connection to genomed: {why}")


def _close_fd(fd: int) -> None:
    import os

    try:
        os.close(fd)
    except OSError as e:  # pragma: no cover - EBADF would be a bug here
        if e.errno != errno.EBADF:
            raise
