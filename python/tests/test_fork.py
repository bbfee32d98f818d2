"""A client across fork(): a pre-fork server's child (gunicorn's workers,
multiprocessing with fork) inherits its parent's client and leases, which
share the parent's socket. Whatever the child does with them -- drop them,
release them, close the client, exit, use it -- it sends nothing: the
parent's leases stay held (the daemon's LIST counts them, and memory
pressure that evicts unleased adapters leaves their bytes alone) and its
connection keeps serving. Using an inherited client raises
NotConnectedError telling the child to connect again."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import traceback
from typing import Callable, Dict, Iterator, List

import pytest

import genomed
from genomed_testing import Daemon, crowded_daemon, file_tensors, wait_for

@pytest.fixture
def small() -> Iterator[Daemon]:
    with crowded_daemon(("kept", "also", "c", "d"), first_seed=40) as d:
        yield d


def in_child(body: Callable[[], None]) -> str:
    """Runs `body` in a child of os.fork(); returns "" if it returned, else
    the child's traceback. The child leaves with os._exit: nothing of the
    test session runs there."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        report = b""
        try:
            body()
        except BaseException:  # noqa: BLE001 - everything goes back to the parent
            report = traceback.format_exc().encode() or b"failed"
        os.write(write, report)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as r:
        report = r.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    return report


def _listed_leases(client: genomed.Client) -> Dict[str, int]:
    """LIST's lease counts of the parent's two adapters."""
    return {a.name: a.leases for a in client.list() if a.name in ("kept", "also")}


class _Held:
    """What the parent holds: two clients, a lease on each, and views."""

    def __init__(self, daemon: Daemon) -> None:
        self.clients = [genomed.connect(daemon.socket), genomed.connect(daemon.socket)]
        self.leases: List[genomed.Lease] = [self.clients[0].acquire("kept"),
                                            self.clients[1].acquire("also")]
        self.views = [dict(lease.tensors) for lease in self.leases]


def _drop(held: _Held) -> None:
    held.views.clear()
    held.leases.clear()
    gc.collect()


def _release(held: _Held) -> None:
    for lease in held.leases:
        lease.release()
    held.views.clear()
    for client in held.clients:
        client.close()
    held.leases.clear()
    held.clients.clear()
    gc.collect()


def _use(held: _Held) -> None:
    client = held.clients[0]
    assert client.closed
    for call in (lambda: client.acquire("c"), lambda: client.acquire_many(["c", "d"]),
                 client.list, client.stats, client.health, lambda: client.load("c"),
                 lambda: client.unload("kept")):
        with pytest.raises(genomed.NotConnectedError) as info:
            call()
        assert info.value.code == "not_connected"
        assert "child of fork()" in info.value.message
        assert "connect() again in this process" in info.value.message
    # Its own connection serves it.
    with genomed.connect(held.clients[0].path) as own, own.acquire("c") as lease:
        assert lease.tensors
    _drop(held)
    held.clients.clear()
    gc.collect()


@pytest.mark.parametrize("let_go", [_drop, _release, _use], ids=["drop", "release", "use"])
def test_a_child_never_ends_its_parents_leases(small: Daemon,
                                               let_go: Callable[[_Held], None]) -> None:
    expected = {name: file_tensors(small.root / name) for name in ("kept", "also")}
    held = _Held(small)
    with genomed.connect(small.socket) as observer:
        assert _listed_leases(observer) == {"kept": 1, "also": 1}

        report = in_child(lambda: let_go(held))
        assert report == "", report

        # Both leases are still the daemon's ...
        assert _listed_leases(observer) == {"kept": 1, "also": 1}
        assert observer.stats()["leases_active"] == 2
        # ... and pressure that evicts every unleased adapter leaves them alone.
        for other in ("c", "d", "c", "d"):
            with observer.acquire(other):
                pass
        assert sorted(a.name for a in observer.list()) == ["also", "d", "kept"]
        for views, name in zip(held.views, ("kept", "also")):
            assert {t: a.tobytes() for t, a in views.items()} == {
                t: raw for t, (_, _, raw) in expected[name].items()}, name
        del views  # the loop's last one: views keep their lease
        assert not any(lease.released for lease in held.leases)
        # The parent's connections read and wrote nothing the child sent.
        for client in held.clients:
            assert not client.closed
            assert client.health().healthy
        for lease in held.leases:
            lease.release()
        held.views.clear()
        gc.collect()
        # RELEASE is one-way, on other connections than the observer's.
        wait_for(lambda: observer.stats()["leases_active"] == 0, what="the parent's releases")
    for client in held.clients:
        client.close()


# A child that simply exits, as a pre-fork server's worker does: a whole
# interpreter shutdown with the inherited client, lease and views still
# referenced (module globals), in a process of its own so that the exit is
# a real one. The parent then makes the daemon evict what is unleased.
_EXIT_SCRIPT = textwrap.dedent("""
    import os, sys
    import genomed
    client = genomed.connect(sys.argv[1])
    lease = client.acquire("kept")
    views = dict(lease.tensors)
    before = {name: bytes(array.tobytes()) for name, array in views.items()}
    pid = os.fork()
    if pid == 0:
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    with genomed.connect(sys.argv[1]) as other:
        with other.acquire("also"):
            for name in ("c", "d", "c", "d"):  # each evicts the unleased one before
                with other.acquire(name):
                    pass
            leases = {a.name: a.leases for a in other.list()}
            assert other.stats()["evictions"] >= 2
        # Asked on the connection that released "also": a release is ordered
        # only before later requests on its own connection.
        active = other.stats()["leases_active"]
    assert leases.get("kept") == 1, leases
    assert all(views[n].tobytes() == b for n, b in before.items()), "views changed"
    assert active == 1, active
    print("ok")
""")


def test_a_child_that_exits_leaves_its_parents_leases(small: Daemon) -> None:
    python_dir = os.path.dirname(os.path.dirname(os.path.abspath(genomed.__file__)))
    env = dict(os.environ, PYTHONPATH=python_dir)
    done = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, str(small.socket)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
