"""What one client can do to the daemon and to itself is bounded: LIST comes
in pages the client follows, a name that is not UTF-8 is refused with a typed
error whose reply strict decoders accept, and leases per connection are
capped (docs/protocol.md; docs/operations.md, "Per-connection limits")."""

from __future__ import annotations

import os
import shutil
import socket
import struct

import msgpack
import pytest

import genomed
from genomed import _wire
from genomed_testing import Daemon

PAGE = 1024  # kMaxListPage (ipc/protocol.h)


def _raw_session(path: str) -> _wire.Stream:
    """A connection past HELLO, speaking frames by hand."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(path)
    stream = _wire.Stream(sock)
    stream.send_all(_wire.encode_frame({"op": "hello", "version": 1, "client": "raw"}), None)
    _, fds = stream.read_frame(None, accept_fd=True)
    for fd in fds:
        os.close(fd)
    return stream


def test_list_follows_the_pages_past_the_first(daemon: Daemon, client: genomed.Client) -> None:
    first = daemon.add_adapter("n0000", rank=1, layers=1, hidden=8)
    names = [f"n{i:04d}" for i in range(PAGE + 6)]
    for name in names[1:]:
        shutil.copytree(first, daemon.root / name)
    for i in range(0, len(names), _wire.MAX_BATCH):
        for lease in client.acquire_many(names[i:i + _wire.MAX_BATCH]):  # loads them
            lease.release()
    raw = _raw_session(daemon.socket)
    raw.send_all(_wire.encode_frame({"op": "list"}), None)
    body, _ = raw.read_frame(None)
    page = msgpack.unpackb(body, raw=False)
    assert len(page["adapters"]) == PAGE and page["next"] == names[PAGE - 1]
    raw.sock.close()

    listing = client.list()
    assert [a.name for a in listing] == names
    assert all(a.state == "ready" for a in listing)


def test_a_name_that_is_not_utf8_is_refused_and_the_reply_is_strict_utf8(daemon: Daemon) -> None:
    raw = _raw_session(daemon.socket)
    # A msgpack str whose bytes are not UTF-8 ("bad" 0xff 0xfe "\n").
    packer = msgpack.Packer(unicode_errors="surrogateescape")
    for request in ({"op": "load", "name": "bad\udcff\udcfe\n"},
                    {"op": "acquire", "names": ["ok", "bad\udcff\udcfe\n"]}):
        body = packer.pack(request)
        raw.send_all(struct.pack(">I", len(body)) + body, None)
        reply_body, _ = raw.read_frame(None)
        reply = msgpack.unpackb(reply_body, raw=False, unicode_errors="strict")
        assert reply["ok"] is False
        assert (reply["code"], reply["error"]) == (10, "invalid_name"), reply
        assert "'bad\\xff\\xfe\\x0a'" in reply["message"], reply["message"]
    raw.sock.close()
    with genomed.connect(daemon.socket) as client:
        assert client.stats()["bad_requests"] == 2


def test_leases_per_connection_are_capped() -> None:
    with Daemon(extra_args=["--max-leases-per-connection", "4"]) as d:
        d.add_adapter("a")
        d.add_adapter("b")
        with genomed.connect(d.socket) as client:
            held = client.acquire_many(["a"] * 4)
            # "b": an ACQUIRE request. A repeat of "a" may be a lease slot's,
            # which the limit does not count (docs/protocol.md, "Lease slots").
            with pytest.raises(genomed.CapacityError) as info:
                client.acquire("b")
            assert info.value.code == "limit_exceeded" and info.value.number == 55
            assert "--max-leases-per-connection" in info.value.message
            held.pop().release()
            client.acquire("b").release()
            for lease in held:
                lease.release()
            assert client.stats()["limits_exceeded"] == 1
