"""Idle unload through the Python client, against the real daemon on its real
clock: short idle times, and waits for the unload bounded generously (no
timing assertions)."""

from __future__ import annotations

import pytest

import genomed
from genomed_testing import Daemon, wait_for


def _names(client: genomed.Client) -> list:
    return [a.name for a in client.list()]


def test_an_unused_adapter_is_unloaded_and_a_leased_one_is_not() -> None:
    with Daemon(extra_args=["--idle-unload", "200ms"]) as daemon:
        for name in ["leased", "free"]:
            daemon.add_adapter(name)
        with genomed.connect(daemon.socket) as client:
            with client.acquire("leased") as lease:
                client.load("free")
                entries = {a.name: a for a in client.list()}
                assert entries["leased"].expires_in_ms is None
                if "free" in entries:  # unless 200 ms passed already
                    expires = entries["free"].expires_in_ms
                    assert expires is not None and expires <= 200
                wait_for(lambda: _names(client) == ["leased"], what="'free' idle-unloaded")
                assert client.stats()["idle_unloads"] == 1
                assert lease.tensors  # still readable: never unloaded while leased
            wait_for(lambda: _names(client) == [], what="'leased' idle-unloaded after release")
            assert client.stats()["idle_unloads"] == 2


def test_keep_alive_overrides_the_default_and_zero_means_never() -> None:
    with Daemon() as daemon:  # --idle-unload off
        for name in ["short", "never", "default"]:
            daemon.add_adapter(name)
        with genomed.connect(daemon.socket) as client:
            client.load("never", keep_alive=0)
            client.load("default")
            with client.acquire("short", keep_alive=0.1):
                pass
            wait_for(lambda: "short" not in _names(client), what="'short' idle-unloaded")
            entries = {a.name: a for a in client.list()}
            assert entries["never"].expires_in_ms is None
            assert entries["default"].expires_in_ms is None
            with pytest.raises(genomed.RequestError) as info:
                client.load("default", keep_alive=-1)
            assert info.value.code == "bad_request" and "keep_alive" in info.value.message


def test_a_keep_alive_under_half_a_millisecond_is_short_not_never() -> None:
    # keep_alive=0.0002 was rounded to 0 ms, which the daemon reads as
    # "never": the shortest idle time asked became the longest.
    with Daemon() as daemon:  # --idle-unload off
        daemon.add_adapter("tiny")
        with genomed.connect(daemon.socket) as client:
            client.load("tiny", keep_alive=0.0002)
            wait_for(lambda: "tiny" not in _names(client), what="'tiny' idle-unloaded")
            assert client.stats()["idle_unloads"] == 1
