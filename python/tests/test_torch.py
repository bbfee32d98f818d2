"""Lease.to_torch(): real dtypes over the same read-only memory, equal to what
torch's own safetensors loader reads from the file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import safetensors.torch
import torch

import genomed
from genomed_testing import ALL_DTYPES, Daemon

TORCH_DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "F8_E5M2": torch.float8_e5m2,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E8M0": torch.float8_e8m0fnu, "I16": torch.int16,
    "U16": torch.uint16, "F16": torch.float16, "BF16": torch.bfloat16, "I32": torch.int32,
    "U32": torch.uint32, "F32": torch.float32, "F64": torch.float64, "I64": torch.int64,
    "U64": torch.uint64,
}
RAW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def test_to_torch_matches_safetensors_torch_for_every_dtype(daemon: Daemon,
                                                            client: genomed.Client) -> None:
    dirs = {dt: daemon.add_adapter(f"t/{dt}", dtype=dt, rank=3, hidden=24, seed=11)
            for dt in ALL_DTYPES}
    leases = client.acquire_many([f"t/{dt}" for dt in ALL_DTYPES])
    arena = client.arena
    for dt, lease in zip(ALL_DTYPES, leases):
        reference = safetensors.torch.load_file(str(dirs[dt] / "adapter_model.safetensors"))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # to_torch() must not leak torch's warning
            tensors = lease.to_torch()
        assert list(tensors) == sorted(reference)
        arrays = lease.tensors
        for name, tensor in tensors.items():
            ref = reference[name]
            assert tensor.dtype == TORCH_DTYPES[dt] == ref.dtype, (dt, tensor.dtype, ref.dtype)
            assert tensor.shape == ref.shape
            raw = RAW[tensor.element_size()]
            assert torch.equal(tensor.view(raw), ref.view(raw)), f"{dt} {name}"  # bit for bit
            # The same memory as the numpy view, inside the arena mapping.
            assert tensor.data_ptr() == arrays[name].__array_interface__["data"][0]
            assert np.shares_memory(arrays[name], arena)
        if dt in ("BF16", "F16", "F32", "F64"):
            for name, tensor in tensors.items():
                torch.testing.assert_close(tensor, reference[name], rtol=0, atol=0,
                                           equal_nan=True)
        lease.release()


def test_bf16_values_compute_like_torchs_own(daemon: Daemon, client: genomed.Client) -> None:
    path = daemon.add_adapter("bf", dtype="BF16", rank=4, hidden=16, seed=2)
    reference = safetensors.torch.load_file(str(path / "adapter_model.safetensors"))
    with client.acquire("bf") as lease:
        tensors = lease.to_torch()
        for module in lease.modules:
            a, b = tensors[module.a_name], tensors[module.b_name]
            assert a.dtype == torch.bfloat16
            ref_a, ref_b = reference[module.a_name], reference[module.b_name]
            ours = (b.float() @ a.float()) * module.scaling
            theirs = (ref_b.float() @ ref_a.float()) * module.scaling
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)
        del tensors, a, b


def test_to_torch_tensors_are_views_not_copies(daemon: Daemon, client: genomed.Client) -> None:
    daemon.add_adapter("v", dtype="F32")
    with client.acquire("v") as lease:
        first = lease.to_torch()
        second = lease.to_torch()
        for name in first:
            assert first[name].data_ptr() == second[name].data_ptr()
        del first, second
    assert client.stats()["leases_active"] == 0


@pytest.mark.parametrize("dtype", ["BF16", "F8_E4M3"])
def test_numpy_views_of_torch_only_dtypes_are_raw_bits(daemon: Daemon, client: genomed.Client,
                                                       dtype: str) -> None:
    daemon.add_adapter("raw", dtype=dtype)
    with client.acquire("raw") as lease:
        name = next(iter(lease.tensors))
        array = lease.tensors[name]
        assert array.dtype == (np.uint16 if dtype == "BF16" else np.uint8)
        assert lease.dtypes[name] == dtype
        assert lease.to_torch()[name].view(torch.uint8).numpy().tobytes() == array.tobytes()
