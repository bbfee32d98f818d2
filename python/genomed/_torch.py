"""Lease.to_torch(): torch tensors over a lease's read-only numpy arrays."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Dict

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

# safetensors dtypes numpy has no type for: their arrays hold the raw bits
# (uint16 / uint8), which torch views as the real type.
_TORCH_VIEWS = {
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E8M0": "float8_e8m0fnu",
}


def torch_views(arrays: Dict[str, np.ndarray], dtypes: Dict[str, str]) -> Dict[str, "torch.Tensor"]:
    """torch tensors over `arrays` (zero-copy: each keeps its array, hence its
    lease), with the real dtype of BF16 and the F8 types, whose arrays hold
    raw bits (numpy has no such dtypes)."""
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("Lease.to_torch() needs PyTorch: pip install 'genomed[torch]'") from e
    out: Dict[str, torch.Tensor] = {}
    with warnings.catch_warnings():
        # torch warns that it cannot mark tensors read-only; the docstring says so.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable",
                                category=UserWarning)
        for name, array in arrays.items():
            tensor = torch.from_numpy(array)
            view = _TORCH_VIEWS.get(dtypes[name])
            if view is not None:
                tensor = tensor.view(getattr(torch, view))
            out[name] = tensor
    return out
