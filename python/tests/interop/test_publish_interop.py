"""PUBLISH of a live PEFT model: a trainer hands genomed its adapter from
memory (``get_peft_model_state_dict`` and ``peft_config[...].to_dict()``),
with no file; what genomed then serves equals PEFT's own state dict, config
and LoRA layers (the models are the PEFT fixtures' of test_peft_interop.py).
"""

from __future__ import annotations

import json

import genomed
import pytest
import torch
from peft import get_peft_model_state_dict

import peft_fixtures
from test_peft_interop import PEFT_ADAPTER_NAME, PEFT_PREFIX, peft_lora_layers

ADAPTERS = [spec.name for spec in peft_fixtures.ADAPTERS
            if not spec.lora.get("target_parameters")]


def config_as_written(config: dict) -> dict:
    """The config as JSON holds it (sets as sorted lists, enums as values)."""
    from genomed._publish import _json_default
    return json.loads(json.dumps(config, default=_json_default))


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_published_peft_model_serves_its_state_dict_config_and_layers(
        peft_client, peft_reference, adapter):
    model = peft_reference(adapter)
    state = get_peft_model_state_dict(model)
    config = model.peft_config[PEFT_ADAPTER_NAME].to_dict()
    name = f"published/{adapter}"
    info = peft_client.publish(name, state, config)
    assert isinstance(info, genomed.ReloadInfo) and info.previous_generation == 0
    with peft_client.acquire(name) as lease:
        assert lease.digest == info.digest
        got = lease.to_torch()
        assert sorted(got) == sorted(state)
        for key, want in state.items():
            assert got[key].dtype == want.dtype, key
            assert torch.equal(got[key], want.detach().cpu()), key
        assert lease.config == config_as_written(config)
        layers = peft_lora_layers(model)
        assert sorted(m.path for m in lease.modules) == sorted(layers)
        for m in lease.modules:
            layer = layers[m.path]
            assert (m.rank, m.alpha, m.scaling) == (layer.r[PEFT_ADAPTER_NAME],
                                                    layer.lora_alpha[PEFT_ADAPTER_NAME],
                                                    layer.scaling[PEFT_ADAPTER_NAME]), m.path
    assert PEFT_PREFIX  # the paths above are relative to PEFT's wrapper, as for files


def test_a_new_version_from_training_swaps_in_and_old_leases_keep_theirs(
        peft_client, peft_reference):
    adapter = ADAPTERS[0]
    model = peft_reference(adapter)
    config = model.peft_config[PEFT_ADAPTER_NAME].to_dict()
    v1 = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
    v2 = {k: v + 1 for k, v in v1.items()}  # one "training step"
    name = "published/versions"
    first = peft_client.publish(name, v1, config)
    with peft_client.acquire(name) as old:
        second = peft_client.publish(name, v2, config)
        assert second.previous_generation == first.generation
        assert second.previous_leases == 1 and second.digest != first.digest
        with peft_client.acquire(name) as new:
            assert new.generation == second.generation
            for key in v1:
                assert torch.equal(new.to_torch()[key], v2[key]), key
                assert torch.equal(old.to_torch()[key], v1[key]), key


def test_bad_input_is_a_typed_error_and_the_client_serves_on(peft_client, peft_reference):
    model = peft_reference(ADAPTERS[0])
    state = get_peft_model_state_dict(model)
    config = model.peft_config[PEFT_ADAPTER_NAME].to_dict()
    with pytest.raises(genomed.Error) as bad_name:
        peft_client.publish("../escape", state, config)
    assert bad_name.value.code == "invalid_name"
    broken = dict(state)
    broken.pop(next(k for k in broken if "lora_B" in k))  # lora_A without its lora_B
    with pytest.raises(genomed.Error) as incomplete:
        peft_client.publish("published/broken", broken, config)
    assert incomplete.value.code == "module_incomplete"
    with pytest.raises(TypeError):
        peft_client.publish("published/typed", {"x": [1, 2]}, config)
    assert peft_client.health().healthy
