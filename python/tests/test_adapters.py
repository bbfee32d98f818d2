"""Adapters written by hand (safetensors.numpy.save_file + a JSON config): the
adapter contract as the client exposes it, and the typed errors of files and
contracts that contradict themselves."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import pytest
import safetensors.numpy

import genomed
from genomed_testing import Daemon

P = "base_model.model."


def write_adapter(root: Path, name: str, config: Dict[str, Any],
                  tensors: Optional[Dict[str, np.ndarray]], *,
                  config_text: Optional[str] = None) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(
        json.dumps(config) if config_text is None else config_text)
    if tensors is not None:
        safetensors.numpy.save_file(tensors, str(path / "adapter_model.safetensors"))
    return path


def config(**overrides: Any) -> Dict[str, Any]:
    c: Dict[str, Any] = {"peft_type": "LORA", "r": 4, "lora_alpha": 8,
                         "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}
    c.update(overrides)
    return c


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(np.float32)


def linear(prefix: str, rank: int, d_in: int, d_out: int) -> Dict[str, np.ndarray]:
    return {f"{P}{prefix}.lora_A.weight": rand(rank, d_in),
            f"{P}{prefix}.lora_B.weight": rand(d_out, rank)}


def test_the_contract_of_a_full_featured_adapter(daemon: Daemon, client: genomed.Client) -> None:
    q, k = "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj"
    emb, conv = "model.embed_tokens", "model.conv"
    tensors = {
        **linear(q, 4, 16, 16), f"{P}{q}.lora_B.bias": rand(16),
        f"{P}{q}.lora_magnitude_vector": rand(16),
        **linear(k, 2, 16, 8), f"{P}{k}.lora_B.bias": rand(8),
        f"{P}{k}.lora_magnitude_vector": rand(8),
        f"{P}{emb}.lora_embedding_A": rand(4, 32), f"{P}{emb}.lora_embedding_B": rand(16, 4),
        f"{P}{emb}.lora_magnitude_vector": rand(16),
        f"{P}{conv}.lora_A.weight": rand(4, 3, 3, 3), f"{P}{conv}.lora_B.weight": rand(8, 4, 1, 1),
        f"{P}{conv}.lora_B.bias": rand(8), f"{P}{conv}.lora_magnitude_vector": rand(8),
        f"{P}{q}.bias": rand(16),  # a base-layer bias (bias="all")
        f"{P}score.weight": rand(2, 16),  # modules_to_save
        f"{P}mystery": rand(3),  # explained by no rule
    }
    cfg = config(use_rslora=True, use_dora=True, lora_bias=True, bias="all",
                 modules_to_save=["score"], rank_pattern={"k_proj": 2},
                 alpha_pattern={"k_proj": 3.0}, target_modules=["q_proj", "k_proj", "conv"],
                 some_future_key={"kept": True})
    write_adapter(daemon.root, "full", cfg, tensors)
    with client.acquire("full") as lease:
        assert lease.config == cfg  # unknown keys kept
        views = lease.tensors
        by_path = {m.path: m for m in lease.modules}
        assert [m.path for m in lease.modules] == sorted(by_path)
        assert set(by_path) == {q, k, emb, conv}
        expect = {q: ("linear", 4, 8.0), k: ("linear", 2, 3.0), emb: ("embedding", 4, 8.0),
                  conv: ("conv", 4, 8.0)}
        for path, (kind, rank, alpha) in expect.items():
            m = by_path[path]
            assert (m.kind, m.rank, m.alpha) == (kind, rank, alpha), path
            assert m.scaling == pytest.approx(alpha / math.sqrt(rank))  # use_rslora
            assert m.a is views[m.a_name] and m.b is views[m.b_name]
            assert m.magnitude is views[f"{P}{path}.lora_magnitude_vector"]
            np.testing.assert_array_equal(m.a, tensors[m.a_name])
        assert by_path[emb].a_name == f"{P}{emb}.lora_embedding_A"
        assert by_path[emb].lora_bias is None
        for path in (q, k, conv):
            assert by_path[path].lora_bias is views[f"{P}{path}.lora_B.bias"]
        assert lease.bias_tensors == [f"{P}{q}.bias"]
        assert lease.saved_module_tensors == [f"{P}score.weight"]
        assert lease.other_tensors == [f"{P}mystery"]
        contract = lease.contract
        assert contract["use_dora"] and contract["lora_bias"] and contract["use_rslora"]
        assert contract["rank_pattern"] == {"k_proj": 2}
        assert contract["alpha_pattern"] == {"k_proj": 3.0}
        assert contract["modules_to_save"] == ["score"]
        for name, array in tensors.items():
            np.testing.assert_array_equal(views[name], array)


@pytest.mark.parametrize("case,code,cls", [
    ("rank_mismatch", "rank_mismatch", genomed.AdapterContractError),
    ("rank_pattern_mismatch", "rank_mismatch", genomed.AdapterContractError),
    ("module_incomplete", "module_incomplete", genomed.AdapterContractError),
    ("shape_mismatch", "shape_mismatch", genomed.AdapterContractError),
    ("dora_without_use_dora", "dora_mismatch", genomed.AdapterContractError),
    ("lora_bias_missing", "lora_bias_mismatch", genomed.AdapterContractError),
    ("config_not_json", "config_invalid_json", genomed.AdapterFileError),
    ("config_missing_r", "config_missing_field", genomed.AdapterFileError),
    ("no_weights", "file_unreadable", genomed.AdapterFileError),
    ("truncated_weights", "st_offsets_out_of_bounds", genomed.AdapterFileError),
])
def test_broken_adapters_raise_typed_errors(daemon: Daemon, client: genomed.Client, case: str,
                                            code: str, cls: type) -> None:
    mod = "model.layers.0.self_attn.q_proj"
    good = linear(mod, 4, 16, 16)
    cfg, tensors, text = config(), dict(good), None
    if case == "rank_mismatch":
        cfg = config(r=8)  # the tensors have rank 4
    elif case == "rank_pattern_mismatch":
        cfg = config(rank_pattern={"q_proj": 2})
    elif case == "module_incomplete":
        del tensors[f"{P}{mod}.lora_B.weight"]
    elif case == "shape_mismatch":
        tensors[f"{P}{mod}.lora_B.weight"] = rand(16, 4, 1)
    elif case == "dora_without_use_dora":
        tensors[f"{P}{mod}.lora_magnitude_vector"] = rand(16)
    elif case == "lora_bias_missing":
        cfg = config(lora_bias=True)
    elif case == "config_not_json":
        text = '{"peft_type": "LORA", "r": 4,'
    elif case == "config_missing_r":
        del cfg["r"]
    elif case == "no_weights":
        tensors = None
    path = write_adapter(daemon.root, case, cfg, tensors, config_text=text)
    if case == "truncated_weights":
        weights = path / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-10])

    with pytest.raises(genomed.Error) as info:
        client.acquire(case)
    err = info.value
    assert type(err) is cls, repr(err)
    assert err.code == code, repr(err)
    assert err.number == {c: n for n, (c, _) in genomed._errors.CODES.items()}[code]
    if cls is genomed.AdapterContractError:
        assert mod in err.message  # names the module
        assert err.hint
    assert client.stats()["leases_active"] == 0
    assert client.health().healthy  # the connection and the daemon are fine
