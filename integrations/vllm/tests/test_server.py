"""vLLM's OpenAI server (python -m vllm.entrypoints.openai.api_server, a real
process, over HTTP) serving adapters from a real genomed by name.

One server for the module (its start-up is most of the time). It runs with
GENOMED_SOCKET and VLLM_ALLOW_RUNTIME_LORA_UPDATING=1: a request naming an
adapter the server does not know goes to the plugin's resolver. Its genomed
is the module's own (Node), so that a test can stop it and start another.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import genomed
import pytest
from genomed_testing import Daemon, wait_for

import vllm_fixtures
from vllm_fixtures import leases
from vllm_server import MODEL, Server

# genomed's worker crashes on any adapter whose path contains "poison" (a
# build with GENOMED_FAULT_INJECTION, as scripts/test.sh makes), so that
# adapter is quarantined after --quarantine-strikes (2) crashes.
FAULTS = ["--worker-fault", "crash@probe:poison"]


class Node:
    """The server's genomed behind a symlinked socket: stop() takes it down,
    start() puts a new one in its place (a restarted daemon). Both serve the
    session's adapters and `root`, where the tests write theirs."""

    def __init__(self, directory: Path, adapters: Path) -> None:
        self.root = directory / "adapters"
        self.root.mkdir()
        self.socket = directory / "genomed.sock"
        self.roots = [adapters, self.root]
        self.daemon: Daemon = None  # type: ignore[assignment]
        self._client: genomed.Client = None  # type: ignore[assignment]
        self.start()

    def start(self) -> None:
        self.daemon = Daemon(roots=self.roots, budget="256M", extra_args=FAULTS)
        if self.socket.is_symlink():
            self.socket.unlink()
        self.socket.symlink_to(self.daemon.socket)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        code = self.daemon.stop()
        self.daemon.cleanup()
        assert code == 0, self.daemon.log()

    @property
    def client(self) -> genomed.Client:
        if self._client is None:
            self._client = genomed.connect(self.daemon.socket)
        return self._client

    def leases(self, name: str) -> int:
        return leases(self.client).get(name, 0)


@pytest.fixture(scope="module")
def node(tmp_path_factory, fixtures):
    n = Node(tmp_path_factory.mktemp("node"), fixtures["plain"].parent)
    try:
        yield n
    finally:
        n.stop()


@pytest.fixture(scope="module")
def server(fixtures, node):
    s = Server(fixtures["base"], str(node.socket))
    try:
        yield s
    finally:
        s.stop()


@pytest.mark.parametrize("name", vllm_fixtures.SERVED)
def test_a_request_naming_a_genomed_adapter_equals_vllms_directory_loading(server, fixtures,
                                                                          name):
    base = server.complete(MODEL)
    server.load_directory(f"dir-{name}", fixtures[name])
    direct = server.complete(f"dir-{name}")
    assert direct != base, "the adapter does not change the output: the test could not fail"
    assert server.complete(name) == direct


def test_an_unknown_name_is_404_with_genomeds_reason(server):
    status, message = server.error("no-such-adapter")
    assert status == 404
    assert "not_found" in message and "no-such-adapter" in message


def test_a_corrupt_adapter_gets_genomeds_code_and_the_server_keeps_serving(server, node,
                                                                            fixtures):
    base, plain = server.complete(MODEL), server.complete("plain")
    path = node.root / "corrupt"
    shutil.copytree(fixtures["plain"], path)
    weights = path / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated: header cut off
    status, message = server.error("corrupt")
    assert status == 422, message
    assert "corrupt" in message and "st_" in message  # genomed's safetensors error code
    # Still serving the base model and other adapters.
    assert server.complete(MODEL) == base
    assert server.complete("plain") == plain


def test_dora_is_refused_with_a_clear_error_never_served(server):
    status, message = server.error("dora")
    assert status == 422
    assert "vllm_refused" in message and "DoRA" in message


def test_unload_change_load_serves_the_new_weights_and_leases_follow(server, node, fixtures):
    path = vllm_fixtures.rewrite(fixtures["base"], node.root, "changing-http", "plain",
                                 seed=100)
    before = server.complete("changing-http")
    # vLLM's engine holds the adapter, so genomed shows its lease.
    assert node.leases("changing-http") == 1
    server.unload("changing-http")
    # The plugin also removed it from the engine: the lease ends.
    wait_for(lambda: node.leases("changing-http") == 0, what="vLLM's lease to end")
    assert node.client.unload("changing-http").outcome == "freed"
    vllm_fixtures.rewrite(fixtures["base"], node.root, "changing-http", "plain", seed=200)
    after = server.complete("changing-http")
    assert after != before
    server.load_directory("dir-changing-200", path)
    assert after == server.complete("dir-changing-200")


def test_a_quarantined_adapter_is_503_with_genomeds_code_and_the_server_keeps_serving(
        server, node, fixtures):
    base, plain = server.complete(MODEL), server.complete("plain")
    shutil.copytree(fixtures["plain"], node.root / "poison")
    # genomed's worker crashes on it, and on the retry: quarantined.
    status, message = server.error("poison")
    assert status == 503, message
    assert "worker_crashed" in message and "quarantined" in message
    status, message = server.error("poison")
    assert status == 503, message
    assert "'poison' from genomed: quarantined: adapter 'poison' is quarantined for" in message
    assert "genomectl unload" in message  # genomed's message says what to do
    assert server.complete(MODEL) == base
    assert server.complete("plain") == plain
