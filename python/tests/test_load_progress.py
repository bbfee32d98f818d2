"""Following a load's progress from Python: poll list() on a second
connection while the first one waits in load(). The fill hangs (fault
injection) until its deadline, so the entry stays loading meanwhile."""

from __future__ import annotations

import threading
from typing import List

import genomed
from genomed_testing import Daemon, wait_for


def test_a_loading_entry_shows_its_fill_size_and_progress() -> None:
    with Daemon(extra_args=["--worker-fault", "hang@fill:slow",
                            "--load-timeout-ms", "3000"]) as daemon:
        daemon.add_adapter("slow", rank=32, hidden=1024)
        errors: List[BaseException] = []

        def load() -> None:
            with genomed.connect(daemon.socket) as loader:
                try:
                    loader.load("slow")
                except genomed.Error as e:
                    errors.append(e)

        t = threading.Thread(target=load)
        t.start()
        with genomed.connect(daemon.socket) as watcher:
            seen: List[genomed.AdapterInfo] = []

            def probed() -> bool:
                seen[:] = [a for a in watcher.list() if a.fill_total > 0]
                return bool(seen)

            wait_for(probed, what="the load of 'slow' to be probed")
            assert seen[0].state == "loading" and seen[0].filled == 0
            t.join()
            assert len(errors) == 1 and errors[0].code == "timeout"
            assert all(a.fill_total == 0 for a in watcher.list())  # nothing is loading now


def test_ready_entries_carry_no_fill_progress(client: genomed.Client, daemon: Daemon) -> None:
    daemon.add_adapter("a")
    client.load("a")
    [entry] = client.list()
    assert (entry.state, entry.fill_total, entry.filled) == ("ready", 0, 0)
