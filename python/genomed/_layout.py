"""Validation of the resident layout, version 3 (docs/protocol.md section 8).

An adapter's leased range in the arena starts with a self-describing header:
fixed fields, a tensor table and the adapter contract (a msgpack map, 8.1).
Another process wrote it, so everything is checked against the granted span
before a single view is built, as layout/resident_layout.cc does; any
failure is ``layout_invalid``. The header is copied out of shared memory
first, so a concurrent writer cannot change it between check and use.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import msgpack
import numpy as np

from . import _errors, _wire

MAGIC = b"GNMDADP1"
LAYOUT_VERSION = 3
TENSOR_ALIGNMENT = 64
MAX_NAME_BYTES = 1024
MAX_DIMS = 16
# magic, version, tensor_count, header_bytes, total_bytes, lora_r, lora_alpha, contract_bytes
FIXED = struct.Struct("<8sIIQQIdI")
FIXED_BYTES = FIXED.size  # 48
# name_len, dtype, ndim, offset, length, checksum: the smallest possible table entry.
MIN_ENTRY_BYTES = 2 + 1 + 1 + 8 + 8 + 8

# dtype number -> (safetensors name, element size, numpy dtype of the views).
# Types numpy has no equivalent for come as their raw unsigned integers.
DTYPES: Tuple[Tuple[str, int, np.dtype], ...] = (
    ("BOOL", 1, np.dtype(np.bool_)),
    ("U8", 1, np.dtype("<u1")),
    ("I8", 1, np.dtype("<i1")),
    ("F8_E5M2", 1, np.dtype("<u1")),
    ("F8_E4M3", 1, np.dtype("<u1")),
    ("F8_E8M0", 1, np.dtype("<u1")),
    ("I16", 2, np.dtype("<i2")),
    ("U16", 2, np.dtype("<u2")),
    ("F16", 2, np.dtype("<f2")),
    ("BF16", 2, np.dtype("<u2")),
    ("I32", 4, np.dtype("<i4")),
    ("U32", 4, np.dtype("<u4")),
    ("F32", 4, np.dtype("<f4")),
    ("F64", 8, np.dtype("<f8")),
    ("I64", 8, np.dtype("<i8")),
    ("U64", 8, np.dtype("<u8")),
)

MODULE_KINDS = ("linear", "embedding", "conv")
_U64 = (1 << 64) - 1
# numpy's limit on a dimension, and on itemsize x the product of the non-zero
# dimensions (what a C-contiguous array's strides must hold), even when empty.
_INTP_MAX = int(np.iinfo(np.intp).max)


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor table."""

    name: str
    dtype: str  # safetensors name
    np_dtype: np.dtype
    shape: Tuple[int, ...]
    offset: int  # from the start of the adapter's range
    length: int  # bytes
    checksum: int  # XXH3-64 (seed 0) of the bytes as the load wrote them


@dataclass(frozen=True)
class ModuleEntry:
    """One LoRA module of the contract."""

    path: str
    kind: str
    a: str
    b: str
    magnitude: Optional[str]
    lora_bias: Optional[str]
    rank: int
    alpha: float
    scaling: float


@dataclass(frozen=True)
class ParsedAdapter:
    """A validated resident header. Shared by every lease on the same copy."""

    lora_r: int
    lora_alpha: float
    header_bytes: int
    total_bytes: int
    tensors: Tuple[TensorEntry, ...]  # sorted by name
    contract: Dict[str, Any]  # the decoded contract map; never handed out uncopied
    config_json: str
    modules: Tuple[ModuleEntry, ...]
    bias_tensors: Tuple[str, ...]
    saved_module_tensors: Tuple[str, ...]
    other_tensors: Tuple[str, ...]


def _invalid(why: str) -> _errors.Error:
    return _errors.make("layout_invalid", f"resident adapter header: {why}")


class _Cursor:
    """Little-endian reads from the header copy; reads past its end fail."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int, which: str) -> bytes:
        if len(self.data) - self.pos < n:
            raise _invalid(f"{which}: entry runs past header_bytes")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: struct.Struct, which: str) -> Tuple[Any, ...]:
        if len(self.data) - self.pos < fmt.size:
            raise _invalid(f"{which}: entry runs past header_bytes")
        out = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return out


_U16 = struct.Struct("<H")
_U8U8 = struct.Struct("<BB")
_THREE_U64 = struct.Struct("<QQQ")
_DIMS = tuple(struct.Struct(f"<{n}Q") for n in range(MAX_DIMS + 1))


def parse(span: Any) -> ParsedAdapter:
    """Validates the header at the start of `span` (the adapter's whole granted
    range: bytes, or a memoryview of shared memory) and returns its tables.

    Raises genomed.Error("layout_invalid") on any inconsistency; never reads
    outside `span`.
    """
    span = memoryview(span).cast("B") if not isinstance(span, (bytes, bytearray)) else span
    size = len(span)
    if size < FIXED_BYTES:
        raise _invalid(f"range of {size} bytes is shorter than the fixed header")
    fixed = bytes(span[:FIXED_BYTES])
    (magic, version, count, header_bytes, total_bytes, lora_r, lora_alpha,
     contract_bytes) = FIXED.unpack(fixed)
    if magic != MAGIC:
        raise _invalid("bad magic")
    if version != LAYOUT_VERSION:
        raise _invalid(f"unsupported version {version} (this client reads version "
                       f"{LAYOUT_VERSION}); use a client that matches the daemon")
    if not math.isfinite(lora_alpha):
        raise _invalid("lora_alpha is not finite")
    if header_bytes % TENSOR_ALIGNMENT != 0 or header_bytes < FIXED_BYTES:
        raise _invalid(f"header_bytes {header_bytes} is not an aligned size past the fixed fields")
    if total_bytes > size or header_bytes > total_bytes:
        raise _invalid(f"header_bytes {header_bytes} / total_bytes {total_bytes} do not fit "
                       f"the range of {size} bytes")
    if count > (header_bytes - FIXED_BYTES) // MIN_ENTRY_BYTES:
        raise _invalid(f"tensor_count {count} cannot fit in header_bytes")

    # From here on, only the private copy of [0, header_bytes) is read.
    header = bytes(span[:header_bytes])
    cur = _Cursor(header, FIXED_BYTES)
    tensors: List[TensorEntry] = []
    prev_name = b""
    prev_end = header_bytes
    for i in range(count):
        which = f"tensor #{i}"
        (name_len,) = cur.unpack(_U16, which)
        if name_len > MAX_NAME_BYTES:
            raise _invalid(f"{which}: name longer than the limit")
        raw_name = cur.take(name_len, which)
        dtype_num, ndim = cur.unpack(_U8U8, which)
        if dtype_num >= len(DTYPES):
            raise _invalid(f"{which}: unknown dtype {dtype_num}")
        if ndim > MAX_DIMS:
            raise _invalid(f"{which}: too many dimensions ({ndim})")
        dims = cur.unpack(_DIMS[ndim], which)
        offset, length, checksum = cur.unpack(_THREE_U64, which)
        dtype_name, elem_size, np_dtype = DTYPES[dtype_num]
        nbytes = elem_size
        for d in dims:
            nbytes *= d
        if nbytes > _U64 or nbytes != length:
            raise _invalid(f"{which}: length {length} differs from shape x dtype size")
        if i > 0 and not prev_name < raw_name:
            raise _invalid(f"{which}: names are not strictly sorted")
        if offset % TENSOR_ALIGNMENT != 0:
            raise _invalid(f"{which}: offset not 64-byte aligned")
        if offset < prev_end or offset > total_bytes or length > total_bytes - offset:
            raise _invalid(f"{which}: bytes [{offset}, +{length}) overlap the header or another "
                           f"tensor, or leave total_bytes {total_bytes}")
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid(f"{which}: name is not UTF-8") from None
        _check_numpy_shape(which, name, dims, elem_size)
        prev_name = raw_name
        prev_end = offset + length
        tensors.append(TensorEntry(name, dtype_name, np_dtype, tuple(dims), offset, length,
                                   checksum))

    if contract_bytes > MAX_CONTRACT_BYTES:
        raise _invalid("contract_bytes exceeds the limit")
    if contract_bytes > header_bytes - cur.pos:
        raise _invalid("the contract runs past header_bytes")
    raw_contract = header[cur.pos:cur.pos + contract_bytes]
    fields = decode_contract(raw_contract)
    _check_names(fields, {t.name for t in tensors})
    return ParsedAdapter(lora_r=lora_r, lora_alpha=lora_alpha, header_bytes=header_bytes,
                         total_bytes=total_bytes, tensors=tuple(tensors), **fields)


def _check_numpy_shape(which: str, name: str, dims: Sequence[int], elem_size: int) -> None:
    """A shape numpy can build an array of. Only empty tensors get this far with
    huge dimensions (length == shape x size bounds every other one), e.g.
    [2**63, 0]: numpy refuses a dimension over intp, and an itemsize x product
    of the non-zero dimensions over intp (its strides)."""
    extent = elem_size
    for d in dims:
        if d > _INTP_MAX:
            extent = d
            break
        if d:
            extent *= d
    if extent > _INTP_MAX:
        raise _invalid(f"{which} '{name[:200]}': shape {list(dims)} cannot be represented "
                       f"(a dimension, or {elem_size} x the product of the non-zero dimensions, "
                       f"exceeds {_INTP_MAX})")


# ---- the adapter contract (8.1) ------------------------------------------------
# Mirrors format::decode_contract (layout/contract.cc): every
# field type-checked, sizes bounded, then every tensor name it mentions must be
# in the table. Numbers documented as float64 may arrive as msgpack integers
# (msgpack-c packs integral doubles as integers), as the C++ decoder accepts.
# The depth limit counts maps and arrays as msgpack-c does. Stricter than the
# C++ decoder, on purpose: a map key that appears twice at any depth (its
# lookups take the first value, a dict the last), an array or map as a key and
# a string that is not UTF-8 (a dict of str cannot hold them faithfully), and
# a `config` that is not a JSON object.

MAX_CONTRACT_BYTES = 4 << 20  # kMaxContractBytes
# kContractLimits: arrays 2^20, maps 2^16, str/bin/ext 2 MiB, depth 8.
CONTRACT_LIMITS: Dict[str, int] = {
    "max_array_len": 1 << 20,
    "max_map_len": 1 << 16,
    "max_str_len": 2 << 20,
    "max_bin_len": 2 << 20,
    "max_ext_len": 2 << 20,
}
CONTRACT_MAX_DEPTH = 8
_U32 = (1 << 32) - 1


def _what(v: Any) -> str:
    return _wire._type_name(v)


def _bad(why: str) -> _errors.Error:
    return _invalid(f"adapter contract: {why}")


# The contract's typed field reads: the reply readers of _wire, raising
# layout_invalid instead.
_FIELDS = _wire.Fields(_bad, "contract")
_get = _FIELDS.field
_wrong = _FIELDS.wrong
_str = _FIELDS.string
_bool = _FIELDS.boolean


def _is_uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _optional_str(m: Dict[str, Any], key: str) -> Optional[str]:
    if m.get(key, 0) is None:
        return None
    return _str(m, key)


def _rank(m: Dict[str, Any], key: str) -> int:
    v = _get(m, key)
    if not _is_uint(v):
        raise _wrong(key, "unsigned integer", v)
    if v == 0 or v > _U32:
        raise _bad(f"field '{key}' is out of range")
    return int(v)


def _number(m: Dict[str, Any], key: str) -> float:
    v = _get(m, key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _wrong(key, "number", v)
    return float(v)


def _str_list(m: Dict[str, Any], key: str) -> List[str]:
    v = _get(m, key)
    if not isinstance(v, list):
        raise _wrong(key, "array", v)
    for x in v:
        if not isinstance(x, str):
            raise _wrong(key, "array of strings", x)
    return v


def _depth(obj: Any) -> int:
    """Nesting depth of a decoded msgpack object as msgpack-c counts it for its
    depth limit: containers only (a scalar is 0, a map of scalars 1). Map keys
    are never containers here (_contract_map refuses them)."""
    deepest = 0
    stack = [(obj, 0)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, list):
            children: Any = o
        elif isinstance(o, dict):
            children = o.values()
        else:
            continue
        d += 1
        deepest = max(deepest, d)
        if d > CONTRACT_MAX_DEPTH:
            break
        # Scalars add no depth: only containers are pushed (most of a
        # contract's values are strings, and this runs once per load).
        stack.extend((x, d) for x in children if isinstance(x, (list, dict)))
    return deepest


class _ContractKeyError(Exception):
    """Raised from inside msgpack's decoder by _contract_map."""


def _contract_map(pairs: List[Tuple[Any, Any]]) -> Dict[Any, Any]:
    """object_pairs_hook of the contract decoder: every map, at any depth.

    Refuses a key that appears twice (which value would win is not defined:
    msgpack-c's lookups take the first, a dict the last), and keys a dict
    cannot hold (arrays and maps)."""
    out: Optional[Dict[Any, Any]]
    try:
        out = dict(pairs)
    except TypeError:  # unhashable: an array or a map
        out = None
    if out is not None and len(out) == len(pairs):
        return out
    seen: Dict[Any, Any] = {}
    for k, _ in pairs:
        if isinstance(k, (list, dict)):
            raise _ContractKeyError(f"a map key is a msgpack {_what(k)}")
        if k in seen:
            first = seen[k]
            if type(first) is type(k):
                raise _ContractKeyError(f"map key {_short(k)} appears twice")
            raise _ContractKeyError(f"map keys {_short(first)} and {_short(k)} are equal "
                                    "as Python values: a dict cannot hold both")
        seen[k] = k
    raise _ContractKeyError("a map's keys cannot be held by a dict")  # pragma: no cover


def _short(k: Any) -> str:
    text = repr(k)
    return text if len(text) <= 80 else text[:77] + "..."


def decode_contract(data: bytes) -> Dict[str, Any]:
    """Decodes and type-checks a contract. Returns the decoded map ("contract")
    and the fields the client uses ("config_json", "modules", "bias_tensors",
    "saved_module_tensors", "other_tensors")."""
    if len(data) > MAX_CONTRACT_BYTES:
        raise _bad(f"{len(data)} bytes, more than the limit of {MAX_CONTRACT_BYTES}")
    try:
        c = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True,
                            object_pairs_hook=_contract_map, **CONTRACT_LIMITS)
    except _ContractKeyError as e:
        raise _bad(str(e)) from None
    except msgpack.ExtraData as e:
        raise _bad(f"{len(e.extra)} bytes follow the msgpack object") from None
    except Exception as e:  # msgpack raises several types for bad input
        raise _bad(f"not valid msgpack within the decode limits: {e}") from None
    if not isinstance(c, dict):
        raise _bad(f"a msgpack {_what(c)}, expected a map")
    if _depth(c) > CONTRACT_MAX_DEPTH:
        raise _bad(f"nested deeper than {CONTRACT_MAX_DEPTH} maps and arrays")
    config_json = _str(c, "config")
    _str(c, "peft_type")
    _rank(c, "r")
    _number(c, "lora_alpha")
    for key in ("use_rslora", "use_dora", "fan_in_fan_out", "lora_bias"):
        _bool(c, key)
    _str(c, "bias")
    _optional_str(c, "task_type")
    _optional_str(c, "base_model_name_or_path")
    if not isinstance(c.get("target_modules"), str):
        _str_list(c, "target_modules")
    _str_list(c, "modules_to_save")
    layers = _get(c, "layers_to_transform")
    if not isinstance(layers, list) or not all(_is_uint(x) for x in layers):
        raise _wrong("layers_to_transform", "array of unsigned integers", layers)
    _str_list(c, "layers_pattern")
    for key in ("rank_pattern", "alpha_pattern"):
        pattern = _get(c, key)
        if not isinstance(pattern, dict):
            raise _wrong(key, "map", pattern)
        for k, v in pattern.items():
            if not isinstance(k, str):
                raise _bad(f"field '{key}': a key is not a string")
            if key == "rank_pattern":
                if not _is_uint(v) or v == 0 or v > _U32:
                    raise _bad(f"field '{key}[{k}]': expected a rank")
            elif isinstance(v, bool) or not (isinstance(v, float) or _is_uint(v)):
                raise _bad(f"field '{key}[{k}]': expected a number")
    try:
        config = json.loads(config_json)
    except ValueError as e:
        raise _bad(f"'config' is not JSON: {e}") from None
    if not isinstance(config, dict):
        raise _bad("'config' is not a JSON object")

    raw_modules = _get(c, "modules")
    if not isinstance(raw_modules, list):
        raise _wrong("modules", "array", raw_modules)
    modules: List[ModuleEntry] = []
    for i, m in enumerate(raw_modules):
        if not isinstance(m, dict):
            raise _bad(f"modules[{i}]: a {_what(m)}, expected a map")
        try:
            kind = _str(m, "kind")
            if kind not in MODULE_KINDS:
                raise _bad(f"unknown module kind {kind[:32]!r}")
            entry = ModuleEntry(path=_str(m, "path"), kind=kind, a=_str(m, "a"), b=_str(m, "b"),
                                magnitude=_optional_str(m, "magnitude"),
                                lora_bias=_optional_str(m, "lora_bias"), rank=_rank(m, "rank"),
                                alpha=_number(m, "alpha"), scaling=_number(m, "scaling"))
            if not (math.isfinite(entry.alpha) and math.isfinite(entry.scaling)):
                raise _bad("alpha or scaling is not finite")
        except _errors.Error as e:
            raise _bad(f"modules[{i}]: {e.message.split('adapter contract: ', 1)[-1]}") from None
        modules.append(entry)
    lists = {key: tuple(_str_list(c, key))
             for key in ("bias_tensors", "saved_module_tensors", "other_tensors")}
    # The documented types: float64 fields as floats, however they were packed.
    c["lora_alpha"] = float(c["lora_alpha"])
    c["alpha_pattern"] = {k: float(v) for k, v in c["alpha_pattern"].items()}
    for m, entry in zip(raw_modules, modules):
        m["alpha"], m["scaling"] = entry.alpha, entry.scaling
    return {"contract": c, "config_json": config_json, "modules": tuple(modules), **lists}


def _check_names(fields: Dict[str, Any], names: Any) -> None:
    """Every tensor the contract names must be in the table."""
    mentioned: List[str] = []
    for m in fields["modules"]:
        mentioned += [m.a, m.b] + [n for n in (m.magnitude, m.lora_bias) if n is not None]
    for key in ("bias_tensors", "saved_module_tensors", "other_tensors"):
        mentioned += fields[key]
    for name in mentioned:
        if name not in names:
            raise _invalid(f"the contract names tensor '{name[:200]}', which is not in the table")


def views(base: np.ndarray, parsed: ParsedAdapter) -> Dict[str, np.ndarray]:
    """Zero-copy, read-only arrays over `base` (a uint8 array of the whole range)."""
    out: Dict[str, np.ndarray] = {}
    for t in parsed.tensors:
        try:
            out[t.name] = np.ndarray(t.shape, dtype=t.np_dtype, buffer=base, offset=t.offset)
        except (ValueError, TypeError, OverflowError) as e:  # parse() refuses these shapes
            raise _invalid(f"tensor '{t.name[:200]}': numpy cannot view shape "
                           f"{list(t.shape)}: {e}") from None
    return out


def verify_checksums(base: np.ndarray, parsed: ParsedAdapter, what: str) -> None:
    """Hashes each tensor of `parsed` in `base` (a uint8 array of the whole
    range) with XXH3-64 and compares it with the recorded checksum, as
    layout/tensor_checksum.cc's verify_checksums does: raises layout_invalid
    naming the first tensor that differs (`what` names the adapter)."""
    try:
        import xxhash
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("Lease.verify() needs xxhash: pip install 'genomed[verify]'") from e
    for t in parsed.tensors:
        actual = xxhash.xxh3_64_intdigest(memoryview(base[t.offset:t.offset + t.length]))
        if actual != t.checksum:
            raise _errors.make(
                "layout_invalid",
                f"{what}: tensor '{t.name[:200]}' no longer matches its checksum "
                f"(0x{t.checksum:016x} when loaded, 0x{actual:016x} now): the resident copy "
                "is corrupt")


def tensor_names(parsed: ParsedAdapter) -> Sequence[str]:
    return [t.name for t in parsed.tensors]
