"""What one client can do to the daemon and to itself is bounded: LIST comes
in pages the client follows, a name that is not UTF-8 is refused with a typed
error whose reply strict decoders accept, and leases per connection are
capped (docs/protocol.md; docs/operations.md, "Per-connection limits")."""

from __future__ import annotations

import shutil

import msgpack
import pytest

import genomed
from genomed_testing import MAX_BATCH, Daemon, RawSession

PAGE = 1024  # kMaxListPage (ipc/protocol.h)


def test_list_follows_the_pages_past_the_first(daemon: Daemon, client: genomed.Client) -> None:
    first = daemon.add_adapter("n0000", rank=1, layers=1, hidden=8)
    names = [f"n{i:04d}" for i in range(PAGE + 6)]
    for name in names[1:]:
        shutil.copytree(first, daemon.root / name)
    for i in range(0, len(names), MAX_BATCH):
        for lease in client.acquire_many(names[i:i + MAX_BATCH]):  # loads them
            lease.release()
    raw = RawSession(daemon.socket)
    raw.send(msgpack.packb({"op": "list"}))
    page = msgpack.unpackb(raw.read(), raw=False)
    assert len(page["adapters"]) == PAGE and page["next"] == names[PAGE - 1]
    raw.close()

    listing = client.list()
    assert [a.name for a in listing] == names
    assert all(a.state == "ready" for a in listing)


def test_a_name_that_is_not_utf8_is_refused_and_the_reply_is_strict_utf8(daemon: Daemon) -> None:
    raw = RawSession(daemon.socket)
    # A msgpack str whose bytes are not UTF-8 ("bad" 0xff 0xfe "\n").
    packer = msgpack.Packer(unicode_errors="surrogateescape")
    for request in ({"op": "load", "name": "bad\udcff\udcfe\n"},
                    {"op": "acquire", "names": ["ok", "bad\udcff\udcfe\n"]}):
        raw.send(packer.pack(request))
        reply = msgpack.unpackb(raw.read(), raw=False, unicode_errors="strict")
        assert reply["ok"] is False
        assert (reply["code"], reply["error"]) == (10, "invalid_name"), reply
        assert "'bad\\xff\\xfe\\x0a'" in reply["message"], reply["message"]
    raw.close()
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
