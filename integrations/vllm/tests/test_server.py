"""vLLM's OpenAI server (python -m vllm.entrypoints.openai.api_server, a real
process, over HTTP) serving adapters from a real genomed by name.

One server for the module (its start-up is most of the time). It runs with
GENOMED_SOCKET and VLLM_ALLOW_RUNTIME_LORA_UPDATING=1: a request naming an
adapter the server does not know goes to the plugin's resolver.
"""

from __future__ import annotations

import shutil

import pytest
from genomed_testing import wait_for

import vllm_fixtures
from vllm_fixtures import leases
from vllm_server import MODEL, Server


@pytest.fixture(scope="module")
def server(fixtures, daemon):
    s = Server(fixtures["base"], daemon.socket)
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


def test_a_corrupt_adapter_gets_genomeds_code_and_the_server_keeps_serving(server, daemon,
                                                                            fixtures):
    base, plain = server.complete(MODEL), server.complete("plain")
    path = daemon.root / "corrupt"
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


def test_unload_change_load_serves_the_new_weights_and_leases_follow(server, daemon, client,
                                                                     fixtures):
    path = vllm_fixtures.rewrite(fixtures["base"], daemon.root, "changing-http", "plain",
                                 seed=100)
    before = server.complete("changing-http")
    # vLLM's engine holds the adapter, so genomed shows its lease.
    assert leases(client)["changing-http"] == 1
    server.unload("changing-http")
    # The plugin also removed it from the engine: the lease ends.
    wait_for(lambda: leases(client)["changing-http"] == 0, what="vLLM's lease to end")
    assert client.unload("changing-http").outcome == "freed"
    vllm_fixtures.rewrite(fixtures["base"], daemon.root, "changing-http", "plain",
                          seed=200)
    after = server.complete("changing-http")
    assert after != before
    server.load_directory("dir-changing-200", path)
    assert after == server.complete("dir-changing-200")
