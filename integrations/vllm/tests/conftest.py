"""Fixtures of the vLLM integration tests: the tiny model and PEFT adapters
(vllm_fixtures.py), one real genomed serving them (python/tests'
genomed_testing), and the environment vLLM needs on CPU in a test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterator

# Before vLLM is imported anywhere: the engine in this process (start-up in
# seconds instead of a spawned engine core), and a small KV cache.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

import genomed  # noqa: E402
import pytest  # noqa: E402

import vllm_fixtures  # noqa: E402  (puts python/tests on sys.path)
import genomed_testing  # noqa: E402
from genomed_testing import Daemon  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def scratch_parent() -> Iterator[Path]:
    """Every Daemon of the session makes its directory here; it must be empty at
    the end (genomed_testing.scratch_session, as for the client's tests)."""
    with genomed_testing.scratch_session("genomed-vllm-session-") as parent:
        yield parent


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory) -> Dict[str, Path]:
    """name -> directory: 'base' (model and tokenizer) and every adapter."""
    return vllm_fixtures.write_all(tmp_path_factory.mktemp("vllm"))


@pytest.fixture(scope="session")
def daemon(fixtures) -> Iterator[Daemon]:
    """One genomed for the session: the fixtures' adapters, and its own root
    (daemon.root) for adapters a test writes. GENOMED_SOCKET points at it, so
    the plugin is on in this process and in the servers the tests start."""
    with Daemon(roots=[fixtures["plain"].parent], budget="256M") as d:
        os.environ["GENOMED_SOCKET"] = d.socket
        try:
            yield d
        finally:
            os.environ.pop("GENOMED_SOCKET", None)


@pytest.fixture(scope="session")
def client(daemon) -> Iterator[genomed.Client]:
    with genomed.connect(daemon.socket) as c:
        yield c



@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """A failed test that used vLLM's server shows the server's last lines."""
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("server")
    if report.failed and server is not None:
        report.sections.append(("vLLM server log (last lines)", server.log()))
