"""Shared fixtures: a real genomed (real workers, shared memory and socket) per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

# genomed_testing, importable from subdirectories too
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import genomed  # noqa: E402
import genomed_testing  # noqa: E402
from genomed_testing import Daemon  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def scratch_parent() -> Iterator[Path]:
    """Every Daemon of the session makes its directory here; at the end the
    directory must be empty (genomed_testing.scratch_session)."""
    with genomed_testing.scratch_session() as parent:
        yield parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):  # type: ignore[no-untyped-def]
    item._genomed_first_daemon = len(genomed_testing.started)  # before its fixtures run
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """A failed test's report shows the log of each daemon it started that is
    still there (fixture daemons; a `with Daemon()` block that a failure left
    adds its log to the exception as a note instead)."""
    first = getattr(item, "_genomed_first_daemon", len(genomed_testing.started))
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for d in genomed_testing.started[first:]:
            if d.dir.exists():
                report.sections.append((f"genomed log (pid {d.pid})", d.log()))


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    """A fresh daemon (64 MiB budget, 2 workers) on its own root and socket."""
    with Daemon() as d:
        yield d


@pytest.fixture
def client(daemon: Daemon) -> Iterator[genomed.Client]:
    with genomed.connect(daemon.socket) as c:
        yield c
