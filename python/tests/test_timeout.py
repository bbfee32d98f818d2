"""Client-side deadlines against a daemon stopped with SIGSTOP.

Timing assertions: the lower bound proves the call waited for its deadline;
the upper bound is only a liveness bound (deadline + SLACK), generous enough
for a loaded CI machine. Which deadline a call used is read from its
error message, not from how long it took."""

from __future__ import annotations

import gc
import time
from typing import Iterator

import pytest

import genomed
from genomed_testing import Daemon, file_tensors, open_sockets, wait_for


@pytest.fixture
def stoppable(daemon: Daemon) -> Iterator[Daemon]:
    """The daemon; SIGCONT is sent at the end whatever happened."""
    try:
        yield daemon
    finally:
        daemon.resume()


SLACK = 5.0  # seconds past a deadline by which a timed-out call must have returned


def _timed(call) -> "tuple[genomed.Error, float]":  # type: ignore[no-untyped-def]
    start = time.monotonic()
    with pytest.raises(genomed.Error) as info:
        call()
    return info.value, time.monotonic() - start


def test_a_call_times_out_against_a_stopped_daemon(stoppable: Daemon) -> None:
    client = genomed.connect(stoppable.socket, timeout=0.5)
    stoppable.pause()
    err, elapsed = _timed(client.health)
    assert isinstance(err, genomed.CallTimeoutError)
    assert (err.code, err.number) == ("timeout", 61)
    assert "health" in err.message and "within 500 ms" in err.message
    assert 0.45 <= elapsed < 0.5 + SLACK
    # The connection is closed: a late reply would be read out of order.
    assert client.closed
    with pytest.raises(genomed.NotConnectedError) as info:
        client.health()
    assert info.value.code == "not_connected"

    # A per-call deadline overrides the client's.
    stoppable.resume()
    other = genomed.connect(stoppable.socket, timeout=30)
    stoppable.pause()
    err, elapsed = _timed(lambda: other.list(timeout=0.3))
    assert err.code == "timeout" and "within 300 ms" in err.message
    assert 0.25 <= elapsed < 0.3 + SLACK

    # connect() honours its deadline too (the kernel accepts, HELLO is never answered).
    err, elapsed = _timed(lambda: genomed.connect(stoppable.socket, timeout=0.3))
    assert err.code == "timeout" and "within 300 ms" in err.message
    assert 0.25 <= elapsed < 0.3 + SLACK

    stoppable.resume()
    fresh = genomed.connect(stoppable.socket)
    assert fresh.health().healthy
    fresh.close()


def test_a_timed_out_client_keeps_its_leases_while_views_live(stoppable: Daemon) -> None:
    path = stoppable.add_adapter("held", seed=5)
    expected = file_tensors(path)
    client = genomed.connect(stoppable.socket, timeout=0.3)
    lease = client.acquire("held")
    name = next(iter(lease.tensors))
    array = lease.tensors[name]
    stoppable.pause()
    err, _ = _timed(client.stats)
    assert err.code == "timeout"
    stoppable.resume()

    sockets = open_sockets()  # the timed-out client's among them: `array` keeps it
    observer = genomed.connect(stoppable.socket)
    # The socket stays open while `array` lives, so the daemon keeps the lease.
    assert observer.stats()["leases_active"] == 1
    assert observer.unload("held").outcome == "draining"
    assert array.tobytes() == expected[name][2]
    del array, lease
    gc.collect()
    wait_for(lambda: observer.stats()["leases_active"] == 0, what="the lease to end")
    assert open_sockets() == sockets  # the observer's is open, the client's closed
    observer.close()


def test_load_and_acquire_use_the_load_deadline(stoppable: Daemon) -> None:
    stoppable.add_adapter("slow")
    assert genomed.DEFAULT_LOAD_TIMEOUT == 120.0
    quick = genomed.connect(stoppable.socket, timeout=0.2, load_timeout=0.8)
    loader = genomed.connect(stoppable.socket, timeout=0.2, load_timeout=0.8)
    assert (quick.timeout, quick.load_timeout) == (0.2, 0.8)
    stoppable.pause()
    # health() used `timeout` (0.2 s), not `load_timeout`: its message names the
    # deadline it waited for (no upper timing bound needed to tell them apart).
    err, elapsed = _timed(quick.health)
    assert err.code == "timeout" and "within 200 ms" in err.message, err.message
    assert 0.15 <= elapsed < 0.2 + SLACK
    err, elapsed = _timed(lambda: loader.acquire("slow"))
    assert err.code == "timeout" and "within 800 ms" in err.message, err.message
    assert 0.75 <= elapsed < 0.8 + SLACK
