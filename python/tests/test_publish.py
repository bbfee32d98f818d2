"""PUBLISH from numpy arrays through the Python client (the binding), against
the real daemon: no file under any root, the arrays served back byte for
byte, and bad input refused with a typed error."""

from __future__ import annotations

import os

import numpy as np
import pytest

import genomed
from genomed_testing import Daemon


def lora(seed: int, rank: int = 4, hidden: int = 32):
    rng = np.random.default_rng(seed)
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    tensors = {f"{prefix}.lora_A.weight": rng.standard_normal((rank, hidden), np.float32),
               f"{prefix}.lora_B.weight": rng.standard_normal((hidden, rank), np.float32)}
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 8,
              "target_modules": {"q_proj"}}  # a set, as PEFT's configs hold it
    return tensors, config


def test_numpy_arrays_published_are_served_back_and_swap_under_a_lease() -> None:
    with Daemon() as daemon, genomed.connect(daemon.socket) as client:
        v1, config = lora(1)
        first = client.publish("mem", v1, config)
        assert first.previous_generation == 0
        with client.acquire("mem") as old:
            assert old.config["target_modules"] == ["q_proj"]
            v2, _ = lora(2)
            second = client.publish("mem", v2, config)
            assert second.previous_leases == 1 and second.digest != first.digest
            with client.acquire("mem") as new:
                for name, want in v2.items():
                    assert np.array_equal(new.tensors[name], want), name
            for name, want in v1.items():  # the old lease reads the old bytes
                assert np.array_equal(old.tensors[name], want), name


def test_bad_input_is_refused_and_no_descriptor_is_left_open() -> None:
    with Daemon() as daemon, genomed.connect(daemon.socket) as client:
        tensors, config = lora(1)
        fds_before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(genomed.Error) as bad:
            client.publish("mem", tensors, {**config, "r": "four"})
        assert bad.value.code == "config_invalid_field"
        with pytest.raises(TypeError):
            client.publish("mem", {"x": object()}, config)
        with pytest.raises(TypeError):
            client.publish("mem", tensors, ["not", "a", "dict"])
        assert len(os.listdir("/proc/self/fd")) == fds_before
        assert client.health().healthy
