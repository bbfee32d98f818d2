"""No view outlives its memory: a lease ends only once every array (or torch
tensor) taken from it is gone, however it was released."""

from __future__ import annotations

import gc
from typing import Callable, Iterator

import pytest

import genomed
from genomed_testing import Daemon, crowded_daemon, file_tensors, open_sockets, wait_for

@pytest.fixture
def small() -> Iterator[Daemon]:
    with crowded_daemon(("kept", "b", "c", "d"), first_seed=10) as d:
        yield d


def _end_with_exit(lease: genomed.Lease) -> None:
    lease.__exit__(None, None, None)


def _end_with_release(lease: genomed.Lease) -> None:
    lease.release()


@pytest.mark.parametrize("end", [_end_with_exit, _end_with_release], ids=["with-exit", "release"])
def test_memory_is_not_reused_while_a_view_lives(small: Daemon,
                                                 end: Callable[[genomed.Lease], None]) -> None:
    expected = file_tensors(small.root / "kept")
    name = sorted(expected)[3]
    with genomed.connect(small.socket) as client:
        lease = client.acquire("kept")
        kept = lease.tensors[name]
        a_module = lease.modules[0].a
        end(lease)
        with pytest.raises(genomed.LeaseReleasedError) as info:
            lease.tensors
        assert isinstance(info.value, genomed.Error) and info.value.code == "lease_released"
        with pytest.raises(genomed.LeaseReleasedError):
            lease.modules
        with pytest.raises(genomed.LeaseReleasedError):
            lease.to_torch()
        assert lease.dtypes[name] == "F16"  # metadata stays readable
        assert client.stats()["leases_active"] == 1

        # The daemon may not reuse the range: it drains instead of freeing, and
        # loads that need room evict the others, never it.
        assert client.unload("kept") == genomed.UnloadInfo("kept", "draining", 1)
        for other in ("b", "c", "d", "b", "c"):
            with client.acquire(other) as lease_other:
                assert lease_other.offset != lease.offset
        assert client.stats()["evictions"] >= 1
        assert kept.tobytes() == expected[name][2]
        assert a_module.tobytes() == expected[sorted(expected)[0]][2]

        del kept
        gc.collect()
        assert client.stats()["leases_active"] == 1  # the module's view still holds it
        del a_module
        gc.collect()
        assert client.stats()["leases_active"] == 0  # same connection: RELEASE came first
        assert "kept" not in [a.name for a in client.list()]  # freed with its last lease


def test_a_lease_without_views_ends_at_once(daemon: Daemon, client: genomed.Client) -> None:
    daemon.add_adapter("x")
    with client.acquire("x") as lease:
        lease.tensors  # views built, then dropped with the lease's own references
    assert client.stats()["leases_active"] == 0  # no gc needed
    lease = client.acquire("x")
    assert client.stats()["leases_active"] == 1
    del lease  # dropping a lease releases it too
    assert client.stats()["leases_active"] == 0
    lease = client.acquire("x")
    lease.release()
    lease.release()  # idempotent
    assert client.stats()["leases_active"] == 0


def test_torch_tensors_keep_the_lease(daemon: Daemon, client: genomed.Client) -> None:
    daemon.add_adapter("t", dtype="BF16")
    with client.acquire("t") as lease:
        tensors = lease.to_torch()
        name = next(iter(tensors))
        tensor = tensors[name]
        del tensors
    gc.collect()
    assert client.stats()["leases_active"] == 1
    view = tensor.view(-1)[1:]  # a torch view of the torch tensor
    del tensor
    gc.collect()
    assert client.stats()["leases_active"] == 1
    del view
    gc.collect()
    assert client.stats()["leases_active"] == 0


def test_views_in_a_reference_cycle_are_released_by_gc(daemon: Daemon,
                                                        client: genomed.Client) -> None:
    daemon.add_adapter("cyc")

    class Holder:
        pass

    with client.acquire("cyc") as lease:
        holder = Holder()
        holder.me = holder  # type: ignore[attr-defined]
        holder.views = lease.tensors  # type: ignore[attr-defined]
    del holder
    assert client.stats()["leases_active"] == 1
    gc.collect()
    assert client.stats()["leases_active"] == 0


def test_close_keeps_the_connection_until_the_last_view_is_gone(daemon: Daemon) -> None:
    path = daemon.add_adapter("z", seed=3)
    expected = file_tensors(path)
    observer = genomed.connect(daemon.socket)
    client = genomed.connect(daemon.socket)
    lease = client.acquire("z")
    name = next(iter(lease.tensors))
    array = lease.tensors[name]
    client.close()
    del lease, client
    gc.collect()
    # Closing the socket would end the lease: it stays open while `array` lives.
    assert observer.stats()["leases_active"] == 1
    assert observer.unload("z").outcome == "draining"
    assert array.tobytes() == expected[name][2]  # the mapping outlives the client
    del array
    gc.collect()
    # RELEASE and the close travel on the other connection: wait for the daemon.
    wait_for(lambda: observer.stats()["leases_active"] == 0, what="the lease to end")
    wait_for(lambda: observer.list() == [], what="the drained adapter to be freed")
    observer.close()


def test_a_client_closed_without_views_closes_at_once(daemon: Daemon) -> None:
    before = daemon.add_adapter("w")
    assert before.is_dir()
    sockets = open_sockets()
    client = genomed.connect(daemon.socket)
    with client.acquire("w"):
        pass
    assert open_sockets() == sockets + 1
    client.close()
    assert open_sockets() == sockets  # nothing kept it open
    with pytest.raises(genomed.NotConnectedError):
        client.arena
