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
from vllm_fixtures import AdapterSpec, leases
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


def evict(server: Server, node: Node, name: str) -> None:
    """Makes vLLM's worker drop `name` from its CPU cache (--max-cpu-loras 3):
    three other adapters used after it are the three most recent."""
    for other in ("scaling-one", "patterns", "all-linear"):
        server.complete(other)
    wait_for(lambda: node.leases(name) == 0, what=f"vLLM to drop its lease on {name}")


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
    # vLLM's engine holds the adapter, so genomed shows its lease; the API
    # server's lease for each request ends with the request.
    wait_for(lambda: node.leases("changing-http") == 1, what="the requests' leases to end")
    server.unload("changing-http")
    # The plugin also removed it from the engine: the lease ends.
    wait_for(lambda: node.leases("changing-http") == 0, what="vLLM's lease to end")
    assert node.client.unload("changing-http").outcome == "freed"
    vllm_fixtures.rewrite(fixtures["base"], node.root, "changing-http", "plain", seed=200)
    after = server.complete("changing-http")
    assert after != before
    server.load_directory("dir-changing-200", path)
    assert after == server.complete("dir-changing-200")


@pytest.mark.parametrize("name, lora", [
    ("rank-32", dict(r=32, lora_alpha=32, target_modules=["q_proj", "v_proj"])),
    ("pattern-rank-32", dict(r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                             rank_pattern={"v_proj": 32})),
])
def test_a_rank_above_max_lora_rank_is_refused_with_both_ranks_and_what_to_do(
        server, node, fixtures, name, lora):
    vllm_fixtures.write_adapter(fixtures["base"], AdapterSpec(name, lora, seed=17),
                                node.root / name)
    status, message = server.error(name)
    assert status == 422, message
    assert "vllm_refused" in message and "rank 32" in message
    assert "--max-lora-rank 16" in message and "--max-lora-rank 32" in message
    assert server.complete("plain")


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


def test_a_reload_is_served_under_a_new_identity_while_vllm_still_caches_the_old(
        server, node, fixtures):
    """RELOAD publishes new content under a name vLLM's server registered and
    its worker still caches: the next request registers the new identity and
    is served the new weights, never the cached old ones (vllm #30931)."""
    path = vllm_fixtures.rewrite(fixtures["base"], node.root, "swapped", "plain", seed=300)
    base, before = server.complete(MODEL), server.complete("swapped")
    vllm_fixtures.rewrite(fixtures["base"], node.root, "swapped", "plain", seed=400)
    info = node.client.reload("swapped")
    assert info.previous_leases == 1  # vLLM's cache holds the old version
    after = server.complete("swapped")
    assert after != before
    server.load_directory("dir-swapped-400", path)
    assert after == server.complete("dir-swapped-400")
    assert server.complete(MODEL) == base


def test_changed_content_behind_vllms_back_is_served_under_a_new_identity(server, node,
                                                                         fixtures):
    vllm_fixtures.rewrite(fixtures["base"], node.root, "behind", "plain", seed=500)
    before = server.complete("behind")
    evict(server, node, "behind")
    # Unregistered in vLLM's worker, genomed frees it and loads the new files:
    # the identity vLLM's API server still holds names content genomed no
    # longer has; admission registers the new one before the engine sees it.
    assert node.client.unload("behind").outcome == "freed"
    vllm_fixtures.rewrite(fixtures["base"], node.root, "behind", "plain", seed=600)
    assert server.complete("behind") != before
    assert server.complete("rslora")


def test_an_adapter_vllm_evicted_fails_alone_while_genomed_is_down_and_serves_once_it_is_back(
        server, node, fixtures):
    base, evicted = server.complete(MODEL), server.complete("rslora")
    evict(server, node, "rslora")
    node.stop()
    try:
        # vLLM would build it again inside an engine step, which genomed cannot serve.
        status, message = server.error("rslora")
        assert status == 503, message
        assert "'rslora' from genomed: not_connected" in message
        # Refused before a stream starts too: a status, not an error inside a 200 stream.
        status, body = server.post("/v1/completions", {"model": "rslora", "prompt": "w1",
                                                       "max_tokens": 2, "stream": True})
        assert status == 503 and "not_connected" in body["error"]["message"], (status, body)
        assert server.complete(MODEL) == base
        server.load_directory("dir-during-outage", fixtures["plain"])
        assert server.complete("dir-during-outage") != base
    finally:
        node.start()
    # A restarted genomed loads it again: same content, same identity, same tokens.
    assert server.complete("rslora") == evicted


def test_a_reload_retires_the_old_version_from_vllm_and_genomed_frees_its_bytes(
        server, node, fixtures):
    """Once the name is registered under its new identity and no request in
    flight uses the old one, the plugin removes the old identity from vLLM's
    engine: the worker's lease on the old version ends and genomed frees the
    retired generation, instead of keeping both until vLLM's LRU evicts it."""
    vllm_fixtures.rewrite(fixtures["base"], node.root, "retiring", "plain", seed=800)
    before = server.complete("retiring")
    wait_for(lambda: node.leases("retiring") == 1, what="the requests' leases to end")
    one_copy = node.client.stats()["bytes_resident"]
    vllm_fixtures.rewrite(fixtures["base"], node.root, "retiring", "plain", seed=900)
    info = node.client.reload("retiring")
    assert info.previous_leases == 1  # vLLM's cache holds the old version
    assert node.client.stats()["bytes_resident"] > one_copy  # both versions resident
    after = server.complete("retiring")
    assert after != before
    wait_for(lambda: node.client.stats()["bytes_resident"] == one_copy,
             what="genomed to free the retired version")
    assert node.leases("retiring") == 1  # vLLM's cache holds the new version
    assert server.complete("retiring") == after


def test_two_names_with_identical_content_are_one_identity_built_once(server, node, fixtures):
    """The server registers genomed's adapters under one lora_int_id per
    content, as the offline API does: vLLM builds and caches the content once."""
    for name in ("twin-x", "twin-y"):
        vllm_fixtures.rewrite(fixtures["base"], node.root, name, "plain", seed=1000)
    x = server.complete("twin-x")
    assert server.complete("twin-y") == x
    digests = {a.name: a.digest for a in node.client.list()}
    assert digests["twin-x"] == digests["twin-y"]
    # vLLM's worker built it once, from twin-x's lease: twin-y's name never reached it.
    wait_for(lambda: (node.leases("twin-x"), node.leases("twin-y")) == (1, 0),
             what="the requests' leases to end")
    assert server.complete(MODEL) != x


def test_a_version_vllm_cannot_load_fails_its_requests_alone_with_vllms_reason(
        server, node, fixtures):
    """vLLM's checks at load (here: a module the model lacks) run before the
    plugin registers a genomed adapter, outside an engine step, for a RELOADed
    version as for a first resolution: only its requests fail, with vLLM's
    reason. (A new version registered unchecked fails its build inside an
    engine step, which stops vLLM's engine.)"""
    base = server.complete(MODEL)
    vllm_fixtures.rewrite(fixtures["base"], node.root, "upgraded", "plain", seed=1100)
    assert server.complete("upgraded") != base
    vllm_fixtures.write_foreign_modules(fixtures["plain"], node.root / "upgraded")
    node.client.reload("upgraded")
    for _ in range(2):  # each request tries the new version again, none reaches the engine
        status, message = server.error("upgraded")
        assert status == 422, message
        assert "vllm_refused" in message and "qq_proj" in message
    vllm_fixtures.write_foreign_modules(fixtures["plain"], node.root / "foreign")
    status, message = server.error("foreign")
    assert status == 422, message
    assert "vllm_refused" in message and "qq_proj" in message
    assert server.complete(MODEL) == base
    assert server.complete("plain")
