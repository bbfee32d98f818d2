"""vLLM's offline API (vllm.LLM) with adapters from genomed, against a real
genomed and a real vLLM engine (CPU, in this process).

genomed_vllm.lora_request(name) names genomed's adapter; the plugin's worker
side builds it from the lease. Greedy token ids must equal those of vLLM
loading the same adapter from its directory, and differ from the base
model's (so an adapter that is not applied cannot pass).
"""

from __future__ import annotations

from typing import List, Optional

import genomed
import genomed_vllm
import pytest
from genomed_testing import wait_for
from genomed_vllm.errors import GenomedLoRAError
from vllm import LLM, SamplingParams
from vllm.lora.request import LoRARequest

import vllm_fixtures
from vllm_fixtures import leases

MAX_CPU_LORAS = 3
GREEDY = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)


@pytest.fixture(scope="module")
def llm(fixtures, daemon):
    # The daemon fixture set GENOMED_SOCKET: vLLM loads the plugin on.
    engine = LLM(model=str(fixtures["base"]), enable_lora=True, max_loras=2,
                 max_cpu_loras=MAX_CPU_LORAS, max_lora_rank=16, dtype="float32",
                 max_model_len=128, enforce_eager=True, max_num_seqs=4, seed=0)
    yield engine
    del engine


_dir_ids = iter(range(1, 1 << 20))


def generate(llm: LLM, lora: Optional[LoRARequest] = None) -> List[List[int]]:
    outputs = llm.generate(vllm_fixtures.PROMPTS, GREEDY, lora_request=lora, use_tqdm=False)
    return [list(o.outputs[0].token_ids) for o in outputs]


def from_directory(path) -> LoRARequest:
    """vLLM's own loading of an adapter directory (a fresh id each time)."""
    n = next(_dir_ids)
    return LoRARequest(f"dir-{n}", n, str(path))


def worker_lora(llm: LLM, lora_int_id: int):
    """(A's, B's) data pointers and the arena check of the LoRAModel vLLM's worker caches."""
    def probe(worker, lora_int_id):  # runs on the worker (this process)
        model = worker.model_runner.lora_manager._adapter_manager.get_adapter(lora_int_id)
        if model is None:
            return None
        out = []
        for w in model.loras.values():
            for part in ("lora_a", "lora_b"):
                ts = getattr(w, part)
                for t in (ts if isinstance(ts, list) else [ts]):
                    if t is not None:
                        out.append((part, t.data_ptr(), t.numel() * t.element_size()))
        return out
    return llm.collective_rpc(probe, args=(lora_int_id,))[0]


def in_arena(ptr: int) -> bool:
    arena = genomed_vllm.connection.call(lambda c: c.arena)
    return arena.ctypes.data <= ptr < arena.ctypes.data + arena.nbytes


@pytest.mark.parametrize("name", vllm_fixtures.SERVED)
def test_greedy_ids_through_genomed_equal_vllms_own_directory_loading(llm, fixtures, name):
    base = generate(llm)
    direct = generate(llm, from_directory(fixtures[name]))
    assert direct != base, "the adapter does not change the output: the test could not fail"
    request = genomed_vllm.lora_request(name)
    assert request.lora_path.startswith(f"genomed://{name}@")
    assert generate(llm, request) == direct


def test_the_cache_holds_views_into_genomeds_arena_copying_only_b_that_vllm_scales(llm):
    # scaling 1: vLLM writes nothing, every tensor is a view of the arena.
    one = genomed_vllm.lora_request("scaling-one")
    generate(llm, one)
    parts = worker_lora(llm, one.lora_int_id)
    assert parts and all(in_arena(p) for _, p, _ in parts)
    # scaling 2: vLLM folds it into B in place (optimize), so B is a private copy; A stays a view.
    plain = genomed_vllm.lora_request("plain")
    generate(llm, plain)
    parts = worker_lora(llm, plain.lora_int_id)
    assert {in_arena(p) for part, p, _ in parts if part == "lora_a"} == {True}
    assert {in_arena(p) for part, p, _ in parts if part == "lora_b"} == {False}


def test_the_lease_is_held_while_vllm_caches_the_adapter_and_released_by_remove_lora(
        llm, client):
    request = genomed_vllm.lora_request("rslora")
    generate(llm, request)
    assert leases(client)["rslora"] == 1  # the worker's (lora_request released its own)
    assert llm.llm_engine.remove_lora(request.lora_int_id)
    wait_for(lambda: leases(client)["rslora"] == 0, what="vLLM's lease on 'rslora' to end")


def test_lru_eviction_of_vllms_cpu_cache_releases_the_lease(llm, client):
    names = vllm_fixtures.SERVED[:MAX_CPU_LORAS + 1]
    requests = [genomed_vllm.lora_request(n) for n in names]
    for r in requests:
        generate(llm, r)
    # The cache holds the last MAX_CPU_LORAS; the first was evicted (LRU).
    wait_for(lambda: leases(client)[names[0]] == 0, what=f"the lease on '{names[0]}' to end")
    held = leases(client)
    assert [held[n] for n in names[1:]] == [1] * MAX_CPU_LORAS
    for r in requests[1:]:
        llm.llm_engine.remove_lora(r.lora_int_id)
    wait_for(lambda: all(leases(client)[n] == 0 for n in names), what="every lease to end")


def test_changed_files_under_one_name_get_a_new_identity_and_take_effect(llm, daemon, client,
                                                                         fixtures):
    path = vllm_fixtures.rewrite(fixtures["base"], daemon.root, "changing", "plain", seed=100)
    first = genomed_vllm.lora_request("changing")
    before = generate(llm, first)
    assert before == generate(llm, from_directory(path))
    # Unload everywhere, change the files, load again.
    llm.llm_engine.remove_lora(first.lora_int_id)
    wait_for(lambda: leases(client)["changing"] == 0, what="vLLM's lease to end")
    assert client.unload("changing").outcome == "freed"
    vllm_fixtures.rewrite(fixtures["base"], daemon.root, "changing", "plain", seed=200)
    second = genomed_vllm.lora_request("changing")
    assert second.lora_path != first.lora_path and second.lora_int_id != first.lora_int_id
    after = generate(llm, second)
    assert after != before
    assert after == generate(llm, from_directory(path))
    llm.llm_engine.remove_lora(second.lora_int_id)


def test_an_old_identity_is_never_served_with_new_content(llm, daemon, client, fixtures):
    """A LoRARequest made before the files changed names the old content:
    vLLM's worker refuses to build it from what genomed holds now."""
    path = vllm_fixtures.rewrite(fixtures["base"], daemon.root, "stale", "rslora", seed=300)
    old = genomed_vllm.lora_request("stale")
    # lora_request's lease is released one-way on the plugin's connection:
    # an UNLOAD on another connection may arrive first (and drain).
    wait_for(lambda: leases(client)["stale"] == 0, what="lora_request's lease to end")
    assert client.unload("stale").outcome == "freed"
    vllm_fixtures.rewrite(fixtures["base"], daemon.root, "stale", "rslora", seed=400)
    with pytest.raises(GenomedLoRAError) as info:
        llm.llm_engine.add_lora(old)
    assert info.value.code == "content_changed"
    # The engine still serves.
    assert generate(llm, genomed_vllm.lora_request("stale")) == generate(
        llm, from_directory(path))


def test_dora_is_refused_with_vllms_reason_never_served(llm, fixtures):
    with pytest.raises(GenomedLoRAError) as info:
        genomed_vllm.lora_request("dora")
    assert info.value.code == "vllm_refused" and "DoRA" in info.value.message
    assert info.value.http_status == 422


def test_genomeds_errors_carry_its_code(llm):
    with pytest.raises(GenomedLoRAError) as info:
        genomed_vllm.lora_request("no-such-adapter")
    assert info.value.code == "not_found" and info.value.http_status == 404
    assert "no-such-adapter" in str(info.value)


def test_two_names_with_identical_content_are_one_identity_built_once(llm, daemon, client,
                                                                      fixtures):
    """vLLM keys its adapter caches by lora_int_id: one id per content digest
    means the second name reuses what vLLM built for the first."""
    paths = [vllm_fixtures.rewrite(fixtures["base"], daemon.root, n, "plain", seed=500)
             for n in ("twin-a", "twin-b")]
    a, b = genomed_vllm.lora_request("twin-a"), genomed_vllm.lora_request("twin-b")
    digests = {i.name: i.digest for i in client.list()}
    assert digests["twin-a"] == digests["twin-b"]  # identical files: one content digest
    assert a.lora_int_id == b.lora_int_id
    assert a.lora_path.endswith("@" + digests["twin-a"])
    expected = generate(llm, from_directory(paths[0]))
    assert generate(llm, a) == expected
    assert generate(llm, b) == expected
    # vLLM built the content once, from twin-a's lease; twin-b's name never reached its worker.
    assert (leases(client)["twin-a"], leases(client)["twin-b"]) == (1, 0)
    assert llm.llm_engine.remove_lora(a.lora_int_id)
    wait_for(lambda: leases(client)["twin-a"] == 0, what="vLLM's lease on 'twin-a' to end")


def test_a_reload_with_new_content_is_a_new_identity_and_the_old_keeps_its_bytes(
        llm, daemon, client, fixtures):
    """RELOAD swaps new content in under the name while vLLM still caches the
    old (vllm #30931: the same identity would serve the stale state)."""
    path = vllm_fixtures.rewrite(fixtures["base"], daemon.root, "versioned", "rslora", seed=600)
    first = genomed_vllm.lora_request("versioned")
    before = generate(llm, first)
    assert before == generate(llm, from_directory(path))
    vllm_fixtures.rewrite(fixtures["base"], daemon.root, "versioned", "rslora", seed=700)
    info = client.reload("versioned")
    assert info.digest != info.previous_digest
    assert info.previous_leases == 1  # vLLM's cache holds the old version's lease
    second = genomed_vllm.lora_request("versioned")
    assert second.lora_path == f"genomed://versioned@{info.digest}"
    assert second.lora_int_id != first.lora_int_id
    after = generate(llm, second)
    assert after != before
    assert after == generate(llm, from_directory(path))
    for r in (first, second):  # (directory loads may have evicted either: LRU)
        llm.llm_engine.remove_lora(r.lora_int_id)
    wait_for(lambda: leases(client)["versioned"] == 0, what="vLLM's leases to end")
