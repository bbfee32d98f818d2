"""A Client shared by threads: calls are serialized, releases never wait behind
another thread's call, and finalizers never block (they may run inside GC in
any thread, while another thread's request waits for its reply)."""

from __future__ import annotations

import gc
import random
import threading
from typing import Any, Dict, List

import pytest

import genomed
from genomed_testing import Daemon, wait_for

LIVENESS = 30.0  # seconds: generous bounds on joins, never a stand-in for ordering


@pytest.mark.parametrize("how", ["release", "finalizer"])
def test_a_release_never_waits_while_another_thread_waits_for_a_hanging_load(how: str) -> None:
    # "release": release() called in thread B. "finalizer": the lease was
    # released while a view of it lived; the last view dies in garbage
    # collection in thread B. Either way its RELEASE (or slot give-back) must
    # not wait for the reply thread A's request waits for.
    hang = "hang-in-probe"
    with Daemon(extra_args=["--worker-fault", f"hang@probe:{hang}",
                            "--load-timeout-ms", "60000"]) as daemon:
        daemon.add_adapter(hang)
        daemon.add_adapter("fine")
        client = genomed.connect(daemon.socket)
        control = genomed.connect(daemon.socket)
        lease = client.acquire("fine")
        views = [lease.tensors[next(iter(lease.tensors))]]
        if how == "release":
            views.clear()
            end_it = lease.release
        else:
            lease.release()  # deferred: `views` keeps it

            def end_it() -> None:
                views.clear()
                gc.collect()
        del lease

        outcome: Dict[str, Any] = {}

        def thread_a() -> None:
            try:
                outcome["lease"] = client.acquire(hang)
            except genomed.Error as e:
                outcome["error"] = e

        a = threading.Thread(target=thread_a)
        a.start()
        wait_for(lambda: [(x.name, x.state) for x in control.list()
                          if x.name == hang] == [(hang, "loading")],
                 what="A's load to be in flight")
        assert a.is_alive()  # A waits for its reply, holding the client's call lock

        b = threading.Thread(target=end_it)
        b.start()
        b.join(LIVENESS)
        assert not b.is_alive(), f"the lease's end ({how}) waited behind another thread's acquire"
        assert a.is_alive()

        unloaded = control.unload(hang)
        assert unloaded.outcome == "cancelled"
        a.join(LIVENESS)
        assert not a.is_alive()
        err = outcome.get("error")
        assert isinstance(err, genomed.CapacityError) and err.code == "cancelled", outcome

        # Requests on one connection are handled in order: once health() returns,
        # the daemon has read the RELEASE that B wrote while A waited.
        client.health()
        assert client.stats()["leases_active"] == 0
        client.close()
        control.close()


def test_many_threads_share_one_client(daemon: Daemon, client: genomed.Client) -> None:
    names = [f"s{i}" for i in range(6)]
    for i, name in enumerate(names):
        daemon.add_adapter(name, seed=i, rank=2, hidden=32, layers=1)
    errors: List[BaseException] = []
    kept: List[Any] = []
    kept_lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for i in range(60):
                batch = rng.sample(names, rng.randint(1, 3))
                leases = client.acquire_many(batch)
                for lease in leases:
                    array = lease.tensors[next(iter(lease.tensors))]
                    assert array.nbytes > 0
                    if rng.random() < 0.2:
                        with kept_lock:
                            kept.append(array)  # outlives its lease for a while
                    lease.release()
                if i % 10 == 0:
                    client.stats()
                    with kept_lock:
                        kept.clear()  # deferred releases, from whichever thread drops the last view
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LIVENESS * 2)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    kept.clear()
    gc.collect()
    assert client.stats()["leases_active"] == 0
    stats = client.stats()  # leases_granted counts requests; slot_hits the others
    assert stats["leases_granted"] + stats["slot_hits"] >= 6 * 60


def _acquire_while_another_thread_releases(acquirer: genomed.Client, holder: genomed.Client,
                                           control: genomed.Client) -> Any:
    """`holder` leases A, which fills the budget; another thread acquires B on
    `acquirer` and waits for room; then A's lease is released. Returns what the
    acquire returned or raised."""
    held = holder.acquire("A")
    outcome: Dict[str, Any] = {}

    def acquire_b() -> None:
        try:
            outcome["result"] = acquirer.acquire("B")
        except genomed.Error as e:
            outcome["result"] = e

    t = threading.Thread(target=acquire_b)
    t.start()
    wait_for(lambda: control.stats()["admission_waiting"] == 1,
             what="B's load to wait for room")
    held.release()  # returns at once either way
    t.join(LIVENESS * 2)
    assert not t.is_alive()
    return outcome["result"]


def _two_big_adapters(daemon: Daemon) -> None:
    # Each about 514 KiB: either fits the 1 MiB budget, not both.
    daemon.add_adapter("A", hidden=512, rank=32, dtype="F32", seed=1)
    daemon.add_adapter("B", hidden=512, rank=32, dtype="F32", seed=2)


def test_a_release_on_the_same_client_makes_room_for_its_pending_acquire() -> None:
    # python/README.md, "Threads": the daemon keeps reading a connection while
    # its request waits and applies a RELEASE at once, so an acquire on the
    # same client that needs the released memory gets it. The admission
    # timeout is far beyond the test's liveness bound: only the release can
    # let B's load proceed.
    with Daemon(budget="1M", extra_args=["--admission-timeout-ms", "600000"]) as daemon:
        _two_big_adapters(daemon)
        shared = genomed.connect(daemon.socket)
        control = genomed.connect(daemon.socket)
        result = _acquire_while_another_thread_releases(shared, shared, control)
        assert isinstance(result, genomed.Lease) and result.name == "B", result
        assert control.stats()["leases_active"] == 1
        result.release()
        shared.close()
        control.close()


def test_one_connection_per_thread_lets_an_acquire_use_released_memory() -> None:
    # The RELEASE arrives on the holder's own, idle connection and is
    # applied at once, so B's load gets the room.
    with Daemon(budget="1M", extra_args=["--admission-timeout-ms", "60000"]) as daemon:
        _two_big_adapters(daemon)
        first = genomed.connect(daemon.socket)
        second = genomed.connect(daemon.socket)
        control = genomed.connect(daemon.socket)
        result = _acquire_while_another_thread_releases(second, first, control)
        assert isinstance(result, genomed.Lease) and result.name == "B", result
        result.release()
        for c in (first, second, control):
            c.close()
