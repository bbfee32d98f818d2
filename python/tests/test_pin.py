"""PIN and UNPIN through the Python client, against the real daemon."""

from __future__ import annotations

import pytest

import genomed
from genomed_testing import Daemon, wait_for


def test_a_pinned_adapter_survives_pressure_and_refuses_unload() -> None:
    # Adapters of about 512 KiB (rank 32, hidden 1024, F16, 4 modules): the
    # budget holds four of them.
    with Daemon(budget="2M", extra_args=["--pin-budget", "0"]) as daemon:
        for name in ["p", "a", "b", "c", "d", "e", "f"]:
            daemon.add_adapter(name, rank=32, hidden=1024, seed=ord(name))
        with genomed.connect(daemon.socket) as client:
            info = client.pin("p")
            assert isinstance(info, genomed.PinInfo)
            assert (info.name, info.pinned, info.was_pinned) == ("p", True, False)
            assert info.bytes > 0 and info.generation == 1
            assert client.pin("p").was_pinned is True  # idempotent
            budget = client.stats()["budget_bytes"]
            assert isinstance(budget, int)
            loaded = 0
            for name in ["a", "b", "c", "d", "e", "f"]:
                loaded += client.load(name).bytes
            assert loaded + info.bytes > budget, "the budget must be under pressure"
            assert client.stats()["evictions"] > 0
            pinned = [a for a in client.list() if a.name == "p"]
            assert len(pinned) == 1 and pinned[0].pinned and pinned[0].generation == 1
            assert client.stats()["adapters_pinned"] == 1
            with pytest.raises(genomed.CapacityError) as refused:
                client.unload("p")
            assert refused.value.code == "pinned" and refused.value.number == 58
            assert "unpin" in refused.value.message
            off = client.unpin("p")
            assert (off.pinned, off.was_pinned) == (False, True)
            assert client.unload("p").outcome == "freed"
            with pytest.raises(genomed.CapacityError) as gone:
                client.unpin("p")
            assert gone.value.code == "not_loaded"


def test_pinning_past_the_pin_budget_is_a_typed_error() -> None:
    with Daemon(budget="8M", extra_args=["--pin-budget", "4K"]) as daemon:
        daemon.add_adapter("big", rank=32, hidden=1024)
        with genomed.connect(daemon.socket) as client:
            with pytest.raises(genomed.CapacityError) as info:
                client.pin("big")
            assert info.value.code == "pin_budget_exceeded" and info.value.number == 57
            assert "--pin-budget" in info.value.message
            [entry] = client.list()
            assert entry.name == "big" and entry.state == "ready" and not entry.pinned


def test_a_pins_keep_alive_starts_when_it_is_unpinned() -> None:
    with Daemon() as daemon:  # --idle-unload off: only the pin's keep_alive can unload it
        daemon.add_adapter("a")
        with genomed.connect(daemon.socket) as client:
            info = client.pin("a", keep_alive=0.1, priority="high")
            assert info.pinned
            entries = {e.name: e for e in client.list()}
            assert entries["a"].pinned and entries["a"].expires_in_ms is None
            client.unpin("a")
            wait_for(lambda: [e.name for e in client.list()] == [],
                     what="'a' unloaded by the keep_alive its pin set")
            assert client.stats()["idle_unloads"] == 1
