"""Priorities and prefetch through the Python client, against the real daemon."""

from __future__ import annotations

import pytest

import genomed
from genomed_testing import Daemon


def test_prefetch_takes_free_room_only_and_is_dropped_when_it_cannot_fit() -> None:
    # Adapters of about 512 KiB (rank 32, hidden 1024, F16, 4 modules): two fit.
    with Daemon(budget="1200K") as daemon:
        for name in ["a", "b", "c"]:
            daemon.add_adapter(name, rank=32, hidden=1024, seed=ord(name))
        with genomed.connect(daemon.socket) as client:
            first = client.prefetch("a")
            assert isinstance(first, genomed.LoadInfo) and not first.was_resident
            assert client.prefetch("a").was_resident
            client.load("b", priority="high")
            with pytest.raises(genomed.CapacityError) as info:
                client.prefetch("c")
            assert info.value.code == "prefetch_dropped" and info.value.number == 59
            assert sorted(a.name for a in client.list()) == ["a", "b"]  # nothing evicted
            stats = client.stats()
            assert stats["prefetches_dropped"] == 1 and stats["evictions"] == 0
            with client.acquire("c", priority="low"):  # a plain request evicts
                assert "c" in [a.name for a in client.list()]


def test_a_priority_outside_the_three_levels_is_refused_before_sending() -> None:
    with Daemon() as daemon:
        daemon.add_adapter("a")
        with genomed.connect(daemon.socket) as client:
            with pytest.raises(genomed.RequestError) as info:
                client.load("a", priority="urgent")
            assert info.value.code == "bad_request" and "priority" in info.value.message
            assert client.list() == []
