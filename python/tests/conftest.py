"""Shared fixtures: a real genomed (real workers, shared memory and socket) per test."""

from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest

# genomed_testing, importable from subdirectories too
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import genomed  # noqa: E402
from genomed_testing import Daemon  # noqa: E402


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    """A fresh daemon (64 MiB budget, 2 workers) on its own root and socket."""
    with Daemon() as d:
        yield d


@pytest.fixture
def client(daemon: Daemon) -> Iterator[genomed.Client]:
    with genomed.connect(daemon.socket) as c:
        yield c
