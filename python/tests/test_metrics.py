"""--metrics-listen: the Prometheus endpoint of a real genomed, scraped over HTTP
and parsed with prometheus_client's reference text parser; its values match
STATS and its histograms count what the client did."""

from __future__ import annotations

import re
import socket
import urllib.request

import genomed
import pytest
from genomed_testing import Daemon
from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def metrics_url(daemon: Daemon) -> str:
    found = re.search(r"Prometheus metrics on (http://\S+/metrics)", daemon.log())
    assert found, daemon.log()
    return found.group(1)


def sample(family, suffix: str = "", **labels) -> float:
    for s in family.samples:
        if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {family.name}{suffix} {labels} in {family.samples}")


def test_every_stat_is_exported_with_its_value_and_the_histograms_count_requests() -> None:
    with Daemon(extra_args=["--metrics-listen", "127.0.0.1:0"]) as d:
        for name in ("a", "b"):
            d.add_adapter(name)
        acquires = 0
        with genomed.connect(d.socket) as c:
            for name in ("a", "b", "a", "a"):
                with c.acquire(name):
                    acquires += 1
            c.load("b")
            stats = c.stats()
            families = scrape(metrics_url(d))
            # Scraped again after STATS, in a quiet daemon: nothing moved.
            assert c.stats() == stats

        counters = 0
        for key, value in stats.items():
            if key == "breaker_state":
                family = families["genomed_breaker_state"]
                assert family.type == "gauge"
                assert sample(family, state=value) == 1
                assert sum(s.value for s in family.samples) == 1
                continue
            family = families.get("genomed_" + key)
            assert family is not None, f"stat {key} is not exported"
            if family.type == "counter":
                counters += 1
                assert sample(family, "_total") == value, key
            else:
                assert family.type == "gauge", key
                assert sample(family) == value, key
        assert counters >= 10
        assert stats["hits"] >= 2 and stats["loads_completed"] == 2

        loads = families["genomed_load_duration_seconds"]
        assert loads.type == "histogram"
        assert sample(loads, "_count") == stats["loads_completed"]
        assert sample(loads, "_bucket", le="+Inf") == stats["loads_completed"]
        assert sample(loads, "_sum") > 0
        acquire = families["genomed_acquire_latency_seconds"]
        # Requests only: a lease taken through a lease slot sends none.
        requests = acquires - stats["slot_hits"]
        assert sample(acquire, "_count") == requests
        buckets = [s.value for s in acquire.samples if s.name.endswith("_bucket")]
        assert buckets == sorted(buckets) and buckets[-1] == requests
        # Every cold load asked the admission queue for room once.
        assert sample(families["genomed_admission_wait_seconds"], "_count") == stats["misses"]


def test_the_endpoint_is_off_unless_asked_for() -> None:
    with Daemon() as d:
        assert "Prometheus metrics on" not in d.log()


def test_permission_denied_is_a_typed_error() -> None:
    err = genomed._errors.from_wire(56, "permission_denied", "uid 1 may not use this genomed")
    assert isinstance(err, genomed.PermissionDeniedError) and isinstance(err, PermissionError)
    assert err.code == "permission_denied" and err.number == 56


def test_clients_that_never_finish_a_request_do_not_block_a_scrape() -> None:
    # Three connections that send half a request and then nothing (a stuck
    # scraper, a port scanner, slowloris) held both of civetweb's threads
    # until its 30 s request timeout: scrapes waited that long. The endpoint
    # now serves every connection from one poll loop
    # (integration/metrics_endpoint_test.cc has the rest).
    with Daemon(extra_args=["--metrics-listen", "127.0.0.1:0"]) as d:
        url = metrics_url(d)
        host, port = url.split("/")[2].split(":")
        stalled = [socket.create_connection((host, int(port)), timeout=30) for _ in range(3)]
        try:
            for s in stalled:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            families = scrape(url)
            assert "genomed_hits" in families
            for s in stalled:  # answered while they still waited, unanswered
                s.setblocking(False)
                with pytest.raises(BlockingIOError):
                    s.recv(1)  # data or EOF: it was cut before the scrape
        finally:
            for s in stalled:
                s.close()
