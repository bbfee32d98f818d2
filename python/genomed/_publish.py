"""An adapter in memory as PUBLISH sends it: two sealed memfds.

``sealed_adapter(tensors, config)`` serializes `tensors` (name -> torch
tensor or numpy array) as a safetensors file and `config` as
adapter_config.json, each straight into a memfd (no file, no second copy of
the weights in Python), seals both against any change (F_SEAL_WRITE,
F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_SEAL: genomed refuses a memfd without
the first three) and yields their descriptors; they are closed on leaving
the ``with`` block, whatever happens (docs/protocol.md, "publish").

The safetensors layout is the format's own: an 8-byte little-endian header
length, the JSON header padded with spaces to a multiple of 8, then every
tensor's bytes back to back in header order, no gap (genomed refuses gaps).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
from typing import Any, Dict, Iterator, List, Mapping, Tuple

import numpy as np

_SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL

# numpy dtype -> safetensors dtype name.
_NUMPY_DTYPES = {
    np.dtype(np.float64): "F64", np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
    np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16",
    np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL",
}


def _torch_dtypes() -> Dict[Any, str]:
    import torch
    out = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
           torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
           torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}
    for attr, name in (("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2")):
        if hasattr(torch, attr):
            out[getattr(torch, attr)] = name
    return out


def _tensor_bytes(name: str, value: Any) -> Tuple[str, List[int], np.ndarray]:
    """(safetensors dtype, shape, its bytes as a flat uint8 array)."""
    if isinstance(value, np.ndarray):
        dtype = _NUMPY_DTYPES.get(value.dtype)
        if dtype is None:
            raise TypeError(f"tensor {name!r}: numpy dtype {value.dtype} has no safetensors name")
        flat = np.ascontiguousarray(value).reshape(-1)
        return dtype, list(value.shape), flat.view(np.uint8)
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None and isinstance(value, torch.Tensor):
        dtype = _torch_dtypes().get(value.dtype)
        if dtype is None:
            raise TypeError(f"tensor {name!r}: torch dtype {value.dtype} has no safetensors name")
        t = value.detach().to("cpu").contiguous().reshape(-1)
        raw = t.view(torch.uint8) if t.numel() > 0 else torch.empty(0, dtype=torch.uint8)
        return dtype, list(value.shape), raw.numpy()
    raise TypeError(f"tensor {name!r}: expected a torch tensor or a numpy array, "
                    f"got {type(value).__name__}")


def _json_default(value: Any) -> Any:
    # What PEFT's config dicts hold besides JSON types (PEFT writes the same).
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"config value {value!r} of type {type(value).__name__} is not JSON")


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _sealed(label: str, size: int, parts: List[Any]) -> int:
    fd = os.memfd_create(f"genomed-publish-{label}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, size)  # one allocation of the whole, then filled
        for part in parts:
            _write_all(fd, part)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def sealed_adapter(tensors: Mapping[str, Any],
                   config: Mapping[str, Any]) -> Iterator[Tuple[int, int]]:
    """(config fd, weights fd): `config` and `tensors` in sealed memfds."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict (adapter_config.json), got {type(config).__name__}")
    config_bytes = json.dumps(dict(config), default=_json_default, indent=2).encode()
    header: Dict[str, Any] = {"__metadata__": {"format": "pt"}}
    parts: List[Any] = []
    offset = 0
    for name in sorted(tensors):
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {name!r}")
        dtype, shape, raw = _tensor_bytes(name, tensors[name])
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + raw.nbytes]}
        offset += raw.nbytes
        parts.append(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    parts.insert(0, len(head).to_bytes(8, "little") + head)
    with contextlib.ExitStack() as stack:
        config_fd = _sealed("config", len(config_bytes), [config_bytes])
        stack.callback(os.close, config_fd)
        weights_fd = _sealed("weights", 8 + len(head) + offset, parts)
        stack.callback(os.close, weights_fd)
        yield config_fd, weights_fd
