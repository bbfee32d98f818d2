"""The test helpers clean up after themselves: a Daemon's temporary directory
(adapters, socket, log) is gone once it stopped, its log stays readable, and
a failure inside `with Daemon()` carries the log. conftest.py checks the
whole session's scratch directory the same way at its end."""

from __future__ import annotations

import pytest

import genomed_testing
from genomed_testing import Daemon


def test_a_daemon_removes_its_directory_and_keeps_its_log() -> None:
    with Daemon() as d:
        d.add_adapter("a")
        assert d.dir.parent == genomed_testing.scratch_parent
        assert (d.dir / "adapters" / "a").is_dir()
    assert not d.dir.exists()
    assert "stopped cleanly" in d.log(), d.log()


def test_a_daemon_that_fails_to_start_removes_its_directory() -> None:
    before = set(genomed_testing.scratch_parent.iterdir())
    with pytest.raises(RuntimeError) as info:
        Daemon(extra_args=["--budget", "lots"])
    assert "--budget" in str(info.value), str(info.value)  # the log is in the message
    assert set(genomed_testing.scratch_parent.iterdir()) == before


def test_a_failure_inside_the_block_carries_the_daemon_log() -> None:
    with pytest.raises(ValueError) as info:
        with Daemon() as d:
            raise ValueError("the test body failed")
    assert not d.dir.exists()
    assert any(f"genomed log (pid {d.pid})" in note and "stopped cleanly" in note
               for note in info.value.__notes__), info.value.__notes__
