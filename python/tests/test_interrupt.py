"""An exception that interrupts a call while its reply is pending (KeyboardInterrupt,
or one raised by a signal handler, as servers do for request timeouts) must not
leave the reply in flight for the next call to read as its own."""

from __future__ import annotations

import gc
import os
import signal
import threading
from pathlib import Path

import pytest

import genomed
from genomed_testing import Daemon, file_tensors, open_sockets, wait_for

LIVENESS = 30.0  # seconds: generous bounds on waits, never a stand-in for ordering


def _pid_in(marker: Path) -> int:
    try:
        text = marker.read_text().strip()
    except FileNotFoundError:
        return 0
    return int(text) if text.isdigit() else 0


def test_an_interrupted_acquire_closes_the_client_instead_of_shifting_replies(
        tmp_path: Path) -> None:
    marker = tmp_path / "fired"  # the fault writes the hung worker's pid here, once
    with Daemon(extra_args=["--worker-fault", f"hang@probe:B,once={marker}",
                            "--load-timeout-ms", "60000"]) as daemon:
        daemon.add_adapter("B")
        small = daemon.add_adapter("small", seed=2, rank=2)
        keep = daemon.add_adapter("keep", seed=3)
        client = genomed.connect(daemon.socket, load_timeout=LIVENESS * 2)
        control = genomed.connect(daemon.socket)

        kept = client.acquire("keep")
        name = next(iter(kept.tensors))
        view = kept.tensors[name]  # a view taken before the interrupt
        kept.release()  # deferred while `view` lives

        def alarm(signum: int, frame: object) -> None:
            raise KeyboardInterrupt("SIGALRM: the request took too long")

        main = threading.main_thread().ident
        assert main == threading.get_ident()

        def watcher() -> None:
            # B's load hangs in the worker's probe: the acquire is sent and its
            # reply is pending. Interrupt it now.
            wait_for(lambda: _pid_in(marker) > 0, what="B's load to hang")
            assert main is not None
            signal.pthread_kill(main, signal.SIGALRM)

        previous = signal.signal(signal.SIGALRM, alarm)
        try:
            t = threading.Thread(target=watcher)
            t.start()
            with pytest.raises(KeyboardInterrupt):
                client.acquire("B")
            t.join(LIVENESS)
            assert not t.is_alive()
        finally:
            signal.signal(signal.SIGALRM, previous)

        # Let B's load finish: its reply (a lease on B) now arrives on the
        # interrupted connection, which no call waits for any more.
        os.kill(_pid_in(marker), signal.SIGKILL)  # the retry does not hang (once=)
        wait_for(lambda: [(a.name, a.state) for a in control.list() if a.name == "B"]
                 == [("B", "ready")], what="B's load to complete")

        # The client takes no more requests, like after a timeout. (Before the fix
        # this returned the lease of "B", the interrupted call's reply.)
        with pytest.raises(genomed.NotConnectedError) as info:
            client.acquire("small", timeout=LIVENESS)
        assert client.closed
        assert info.value.code == "not_connected"
        assert "interrupted by KeyboardInterrupt" in info.value.message, info.value.message
        with pytest.raises(genomed.NotConnectedError):
            client.health()

        # The view taken before stays valid: the socket stays open while it lives,
        # so the daemon keeps the lease.
        assert view.tobytes() == file_tensors(keep)[name][2]
        assert control.stats()["leases_active"] >= 1
        sockets = open_sockets()  # the interrupted client's among them
        del view, kept
        gc.collect()
        # With the last view gone the socket closes, which ends every lease of the
        # connection, B's late grant included.
        wait_for(lambda: control.stats()["leases_active"] == 0,
                 what="the interrupted connection's leases to end")
        assert open_sockets() == sockets - 1

        with genomed.connect(daemon.socket) as fresh:
            with fresh.acquire("small") as lease:
                assert lease.name == "small"
                assert {n: a.tobytes() for n, a in lease.tensors.items()} == {
                    n: raw for n, (_, _, raw) in file_tensors(small).items()}
        control.close()
