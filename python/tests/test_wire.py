"""The client's wire handling against a scripted fake daemon, for replies the
real daemon never sends: grants outside the arena, corrupt headers, unknown
error codes, oversized or undecodable frames, a HELLO without descriptor. Also
the exact request bytes of docs/protocol.md section 9."""

from __future__ import annotations

import os
import queue
import socket
import struct
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import msgpack
import pytest

import genomed
from test_layout import build

LIVENESS = 30.0
ARENA = 1 << 20
Handler = Callable[[Dict[str, Any]], Optional[bytes]]


def frame(obj: Any) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


class FakeDaemon:
    """Accepts one connection; answers HELLO (with a memfd arena), then runs
    `handler` on every request (its bytes are sent; None sends nothing)."""

    def __init__(self, tmp: Path, handler: Handler, *, arena: bytes = b"",
                 send_fd: bool = True) -> None:
        self.path = str(tmp / "fake.sock")
        self.handler = handler
        self.send_fd = send_fd
        self.requests: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        self.raw: List[bytes] = []
        self.memfd = os.memfd_create("fake-arena")
        os.ftruncate(self.memfd, ARENA)
        os.pwrite(self.memfd, arena, 0)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read(self, conn: socket.socket, n: int) -> Optional[bytes]:
        data = b""
        while len(data) < n:
            try:
                chunk = conn.recv(n - len(data))
            except ConnectionResetError:  # the client closed with a reply unread
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while True:
                prefix = self._read(conn, 4)
                if prefix is None:
                    return
                body = self._read(conn, struct.unpack(">I", prefix)[0])
                if body is None:
                    return
                self.raw.append(prefix + body)
                request = msgpack.unpackb(body, raw=False)
                self.requests.put(request)
                if request.get("op") == "hello":
                    reply = frame({"ok": True, "version": 1, "server": "fake 0",
                                   "arena_bytes": ARENA, "pid": os.getpid()})
                    fds = [self.memfd] if self.send_fd else []
                    socket.send_fds(conn, [reply], fds)
                    continue
                out = self.handler(request)
                if out:
                    conn.sendall(out)

    def next_request(self) -> Dict[str, Any]:
        return self.requests.get(timeout=LIVENESS)

    def close(self) -> None:
        self.listener.close()
        os.close(self.memfd)


@pytest.fixture
def fake(tmp_path: Path):  # type: ignore[no-untyped-def]
    made: List[FakeDaemon] = []

    def make(handler: Handler, **kwargs: Any) -> FakeDaemon:
        made.append(FakeDaemon(tmp_path, handler, **kwargs))
        return made[-1]

    yield make
    for f in made:
        f.close()


def grant(lease: int, offset: int, length: int, name: str = "a") -> Dict[str, Any]:
    return {"name": name, "lease": lease, "offset": offset, "length": length, "generation": lease}


def released_ids(f: FakeDaemon, count: int) -> List[int]:
    ids: List[int] = []
    while len(ids) < count:
        request = f.next_request()
        assert request["op"] == "release", request
        ids += request["leases"]
    return sorted(ids)


def test_hello_and_release_frames_are_the_documented_bytes(fake) -> None:  # type: ignore[no-untyped-def]
    header = bytes(build())
    f = fake(lambda r: frame({"ok": True, "grants": [grant(1, 0, len(header))]}),
             arena=header)
    client = genomed.connect(f.path, client_name="py")
    assert f.raw[0] == bytes.fromhex(
        "0000001d 83 a26f70 a568656c6c6f a776657273696f6e 01 a6636c69656e74 a27079")
    with client.acquire("a"):
        pass
    assert f.next_request() == {"op": "hello", "version": 1, "client": "py"}
    assert f.next_request() == {"op": "acquire", "names": ["a"]}
    assert f.next_request() == {"op": "release", "leases": [1]}
    assert f.raw[1] == frame({"op": "acquire", "names": ["a"]})
    assert f.raw[2] == bytes.fromhex("00000015 82 a26f70 a772656c65617365 a66c6561736573 91 01")
    assert client.arena_bytes == ARENA and client.server == "fake 0"
    client.close()


def test_a_grant_outside_the_arena_is_released_and_refused(fake) -> None:  # type: ignore[no-untyped-def]
    f = fake(lambda r: frame({"ok": True, "grants": [grant(7, ARENA - 4096, 8192)]}))
    client = genomed.connect(f.path)
    f.next_request()
    with pytest.raises(genomed.LayoutError) as info:
        client.acquire("a")
    assert info.value.code == "layout_invalid" and "outside the arena" in info.value.message
    f.next_request()  # the acquire
    assert released_ids(f, 1) == [7]


def test_a_corrupt_header_is_released_and_refused(fake) -> None:  # type: ignore[no-untyped-def]
    good = bytes(build())
    arena = good + b"\0" * (8192 - len(good)) + b"GNMDADP1" + b"\xff" * 100
    f = fake(lambda r: frame({"ok": True, "grants": [grant(1, 0, len(good)),
                                                     grant(2, 8192, 4096, name="b")]}),
             arena=arena)
    client = genomed.connect(f.path)
    with pytest.raises(genomed.LayoutError) as info:
        client.acquire_many(["a", "b"])
    assert "adapter 'b'" in info.value.message
    f.next_request(), f.next_request()  # hello, acquire
    assert released_ids(f, 2) == [1, 2]  # all or nothing: the good one too


def _acquire_only(reply: bytes) -> Handler:
    """A handler that answers ACQUIRE with `reply` (RELEASE has no reply)."""
    return lambda r: reply if r["op"] == "acquire" else None


def _protocol_error(info: Any, *fragments: str) -> None:
    err = info.value
    assert isinstance(err, genomed.RequestError)
    assert (err.code, err.number) == ("protocol_error", 8), err
    for fragment in fragments:
        assert fragment in err.message, err.message


def test_a_grant_count_mismatch_releases_everything(fake) -> None:  # type: ignore[no-untyped-def]
    good = bytes(build())
    f = fake(_acquire_only(frame({"ok": True, "grants": [grant(4, 0, len(good))]})), arena=good)
    client = genomed.connect(f.path)
    with pytest.raises(genomed.RequestError) as info:
        client.acquire_many(["a", "a"])
    _protocol_error(info, "granted 1 leases for 2 names")
    f.next_request(), f.next_request()
    assert released_ids(f, 1) == [4]
    # The reply may answer another request: no further requests on this stream.
    assert client.closed
    with pytest.raises(genomed.NotConnectedError):
        client.health()


def test_a_grant_for_another_name_is_a_protocol_error(fake) -> None:  # type: ignore[no-untyped-def]
    # What a reply left in flight by an interrupted call looks like: the
    # answer to an earlier "acquire b" read as the answer to "acquire a".
    good = bytes(build())
    f = fake(_acquire_only(frame({"ok": True, "grants": [grant(5, 0, len(good), name="b")]})),
             arena=good)
    client = genomed.connect(f.path)
    with pytest.raises(genomed.RequestError) as info:
        client.acquire("a")
    _protocol_error(info, "grant #0 is for 'b', but 'a' was asked for")
    f.next_request(), f.next_request()
    assert released_ids(f, 1) == [5]
    assert client.closed
    with pytest.raises(genomed.NotConnectedError) as closed:
        client.acquire("a")
    assert "breaks the protocol" in closed.value.message


def test_grants_must_come_in_the_order_of_the_names(fake) -> None:  # type: ignore[no-untyped-def]
    good = bytes(build())
    f = fake(_acquire_only(frame({"ok": True, "grants": [grant(1, 0, len(good), name="b"),
                                                         grant(2, 0, len(good), name="a")]})),
             arena=good)
    client = genomed.connect(f.path)
    with pytest.raises(genomed.RequestError) as info:
        client.acquire_many(["a", "b"])
    _protocol_error(info, "grant #0 is for 'b', but 'a' was asked for")
    f.next_request(), f.next_request()
    assert released_ids(f, 2) == [1, 2]  # all or nothing


def test_a_malformed_grant_is_a_protocol_error(fake) -> None:  # type: ignore[no-untyped-def]
    good = bytes(build())
    bad = grant(3, 0, len(good))
    del bad["generation"]
    f = fake(_acquire_only(frame({"ok": True, "grants": [bad]})), arena=good)
    client = genomed.connect(f.path)
    with pytest.raises(genomed.RequestError) as info:
        client.acquire("a")
    _protocol_error(info, "'generation'")
    f.next_request(), f.next_request()
    assert released_ids(f, 1) == [3]


@pytest.mark.parametrize("number,name,cls", [
    (1234, "brand_new", genomed.Error),
    (77, "new_contract_rule", genomed.AdapterContractError),
    (12, "not_found", genomed.AdapterNameError),
    (46, "file_changed", genomed.FileChangedError),
])
def test_error_codes_map_to_classes(fake, number: int, name: str, cls: type) -> None:  # type: ignore[no-untyped-def]
    f = fake(lambda r: frame({"ok": False, "code": number, "error": name, "message": "m"}))
    client = genomed.connect(f.path)
    with pytest.raises(genomed.Error) as info:
        client.health()
    assert type(info.value) is cls
    assert (info.value.code, info.value.number, info.value.message) == (name, number, "m")
    with pytest.raises(genomed.Error) as again:  # the stream stays in sync after an error
        client.health()
    assert again.value.number == number


def test_an_oversized_reply_frame_closes_the_connection(fake) -> None:  # type: ignore[no-untyped-def]
    f = fake(lambda r: struct.pack(">I", 16 * 1024 * 1024 + 1))
    client = genomed.connect(f.path)
    with pytest.raises(genomed.Error) as info:
        client.health()
    assert info.value.code == "protocol_error"  # docs/protocol.md §1, as the C++ client
    assert "over the limit of 16777216" in info.value.message
    with pytest.raises(genomed.NotConnectedError):
        client.health()


def test_an_undecodable_reply_is_a_protocol_error_but_the_stream_stays_in_sync(fake) -> None:  # type: ignore[no-untyped-def]
    replies = [struct.pack(">I", 1) + b"\xc1", frame([1, 2]),
               frame({"ok": True, "healthy": "yes", "reason": ""}),
               frame({"ok": True, "healthy": True, "reason": ""})]
    f = fake(lambda r: replies.pop(0))
    client = genomed.connect(f.path)
    # The daemon broke the protocol (docs/protocol.md §1): protocol_error, as
    # in the C++ client; bad_request would blame the request.
    with pytest.raises(genomed.RequestError) as info:
        client.health()
    assert info.value.code == "protocol_error"
    with pytest.raises(genomed.RequestError) as info:
        client.health()
    assert info.value.code == "protocol_error" and "expected a map" in info.value.message
    with pytest.raises(genomed.RequestError) as info:
        client.health()
    assert info.value.code == "protocol_error" and "'healthy'" in info.value.message
    assert client.health().healthy


def test_a_hello_without_descriptor_is_refused(fake) -> None:  # type: ignore[no-untyped-def]
    f = fake(lambda r: None, send_fd=False)
    with pytest.raises(genomed.RequestError) as info:
        genomed.connect(f.path)
    assert "no arena descriptor" in info.value.message


def test_list_progress_past_its_total_is_a_protocol_error(fake) -> None:  # type: ignore[no-untyped-def]
    # As the C++ client: a loading entry with more filled than its total is
    # not genomed's (a progress display would run past its end).
    entry = {"name": "a", "state": "loading", "bytes": 0, "leases": 0, "generation": 1,
             "fill_total": 100, "filled": 101}
    f = fake(lambda r: frame({"ok": True, "adapters": [entry], "next": None})
             if r["op"] == "list" else None)
    client = genomed.connect(f.path)
    with pytest.raises(genomed.RequestError) as info:
        client.list()
    _protocol_error(info, "filled 101 > fill_total 100")
