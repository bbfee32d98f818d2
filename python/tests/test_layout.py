"""The resident-header (v3) and contract parser against hand-built, hostile bytes.

No daemon: these build headers byte by byte as docs/protocol.md section 8 lays
them out, then break one rule at a time. Every failure must be
genomed.Error("layout_invalid"), never another exception, never a read
outside the span.
"""

from __future__ import annotations

import math
import random
import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple

import msgpack
import numpy as np
import pytest

import genomed
from genomed import _layout

A = "base_model.model.layers.0.q_proj.lora_A.weight"
B = "base_model.model.layers.0.q_proj.lora_B.weight"
F16, F32, U8 = 8, 12, 1


def align(n: int) -> int:
    return (n + 63) // 64 * 64


def contract(**overrides: Any) -> Dict[str, Any]:
    c: Dict[str, Any] = {
        "config": '{"peft_type":"LORA","r":4,"lora_alpha":8.0,"target_modules":["q_proj"],'
                  '"unknown_key":[1,2]}',
        "peft_type": "LORA", "r": 4, "lora_alpha": 8.0, "use_rslora": False,
        "use_dora": False, "fan_in_fan_out": False, "lora_bias": False, "bias": "none",
        "task_type": None, "base_model_name_or_path": "base", "target_modules": ["q_proj"],
        "modules_to_save": [], "layers_to_transform": [], "layers_pattern": [],
        "rank_pattern": {}, "alpha_pattern": {},
        "modules": [{"path": "layers.0.q_proj", "kind": "linear", "a": A, "b": B,
                     "magnitude": None, "lora_bias": None, "rank": 4, "alpha": 8.0,
                     "scaling": 2.0}],
        "bias_tensors": [], "saved_module_tensors": [], "other_tensors": [],
    }
    c.update(overrides)
    return c


Entry = Tuple[Any, int, Sequence[int]]  # name (str or bytes), dtype number, dims


def build(entries: Optional[List[Entry]] = None, contract_map: Any = None, *,
          raw_contract: Optional[bytes] = None, magic: bytes = b"GNMDADP1", version: int = 3,
          lora_r: int = 4, lora_alpha: float = 8.0, count: Optional[int] = None,
          header_bytes: Optional[int] = None, total_bytes: Optional[int] = None,
          contract_bytes: Optional[int] = None, offsets: Optional[List[int]] = None,
          lengths: Optional[List[int]] = None, span: Optional[int] = None,
          checksums: Optional[List[int]] = None) -> bytearray:
    """A resident layout v3; every field can be overridden to break one rule.
    The tensors' `checksums` are recorded as given (0 by default)."""
    if entries is None:
        entries = [(A, F16, (4, 16)), (B, F16, (16, 4))]
    body = raw_contract if raw_contract is not None else msgpack.packb(
        contract() if contract_map is None else contract_map, use_bin_type=True)
    sizes = [dict(_layout_sizes()).get(dt, 1) for _, dt, _ in entries]
    natural = [math.prod(dims) * size for (_, _, dims), size in zip(entries, sizes)]
    table = sum(2 + len(n if isinstance(n, bytes) else n.encode()) + 2 + 8 * len(d) + 24
                for n, _, d in entries)
    hb = align(48 + table + len(body)) if header_bytes is None else header_bytes
    lengths = natural if lengths is None else lengths
    if offsets is None:
        offsets, cursor = [], align(48 + table + len(body))
        for n in lengths:
            offsets.append(cursor)
            cursor = align(cursor + n)
    tb = (max([align(o + n) for o, n in zip(offsets, lengths)] + [hb])
          if total_bytes is None else total_bytes)
    natural_end = max([align(o + n) for o, n in zip(offsets, lengths) if o + n < 1 << 20] +
                      [align(48 + table + len(body))])
    out = bytearray(min(max(tb, hb, natural_end), natural_end + 4096) if span is None else span)
    fixed = struct.pack("<8sIIQQIdI", magic, version, len(entries) if count is None else count,
                        hb, tb, lora_r, lora_alpha,
                        len(body) if contract_bytes is None else contract_bytes)
    if checksums is None:
        checksums = [0] * len(lengths)
    parts = [fixed]
    for (name, dt, dims), off, n, sum_ in zip(entries, offsets, lengths, checksums):
        raw = name if isinstance(name, bytes) else name.encode()
        parts.append(struct.pack("<H", len(raw)) + raw + struct.pack("<BB", dt, len(dims)) +
                     struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<QQQ", off, n, sum_))
    parts.append(body)
    header = b"".join(parts)
    out[:min(len(header), len(out))] = header[:len(out)]
    # Tensor bytes: a recognisable pattern, so views can be checked.
    for i, (off, n) in enumerate(zip(offsets, lengths)):
        if len(header) <= off and off + n <= len(out):
            out[off:off + n] = pattern(i, n)
    return out


def pattern(i: int, n: int) -> bytes:
    """The bytes build() puts in tensor i of n bytes."""
    return bytes([(i + 1) * 17 % 256]) * n

def _layout_sizes() -> List[Tuple[int, int]]:
    return [(i, size) for i, (_, size, _) in enumerate(_layout.DTYPES)]


def invalid(data: Any, *fragments: str) -> genomed.Error:
    with pytest.raises(genomed.Error) as info:
        _layout.parse(bytes(data))
    err = info.value
    assert err.code == "layout_invalid" and err.number == 47, err
    assert isinstance(err, genomed.LayoutError)
    for fragment in fragments:
        assert fragment in err.message, err.message
    return err


# ---- a valid header ------------------------------------------------------------


def test_valid_header_parses_to_tables_and_views() -> None:
    data = build()
    parsed = _layout.parse(bytes(data))
    assert [t.name for t in parsed.tensors] == [A, B]
    assert [t.dtype for t in parsed.tensors] == ["F16", "F16"]
    assert [t.shape for t in parsed.tensors] == [(4, 16), (16, 4)]
    assert all(t.offset % 64 == 0 for t in parsed.tensors)
    assert parsed.lora_r == 4 and parsed.lora_alpha == 8.0
    (module,) = parsed.modules
    assert (module.path, module.kind, module.a, module.b, module.rank, module.scaling) == (
        "layers.0.q_proj", "linear", A, B, 4, 2.0)
    assert parsed.contract["config"].startswith('{"peft_type"')
    base = np.frombuffer(bytes(data), np.uint8)
    views = _layout.views(base, parsed)
    assert views[A].shape == (4, 16) and views[A].dtype == np.float16
    assert views[A].tobytes() == b"\x11" * 128
    assert views[B].tobytes() == b"\x22" * 128
    assert not views[A].flags.writeable


def test_checksums_are_read_per_tensor() -> None:
    parsed = _layout.parse(bytes(build(checksums=[0xfedcba9876543210, 7])))
    assert [t.checksum for t in parsed.tensors] == [0xfedcba9876543210, 7]


def test_verify_passes_on_intact_bytes_and_names_the_first_tensor_that_differs() -> None:
    xxhash = pytest.importorskip("xxhash")
    sums = [xxhash.xxh3_64_intdigest(pattern(i, 128)) for i in range(2)]
    data = build(checksums=sums)
    parsed = _layout.parse(bytes(data))
    _layout.verify_checksums(np.frombuffer(bytes(data), np.uint8), parsed, "adapter 'x'")
    data[parsed.tensors[1].offset + 5] ^= 1
    with pytest.raises(genomed.LayoutError) as info:
        _layout.verify_checksums(np.frombuffer(bytes(data), np.uint8), parsed, "adapter 'x'")
    assert info.value.code == "layout_invalid"
    assert f"tensor '{B}'" in info.value.message and f"0x{sums[1]:016x}" in info.value.message


def test_xxh3_is_the_checksum_the_daemon_computes() -> None:
    # The same vectors as tests/layout/tensor_checksum_test.cc.
    xxhash = pytest.importorskip("xxhash")
    assert xxhash.xxh3_64_intdigest(b"") == 0x2d06800538d394c2
    assert xxhash.xxh3_64_intdigest(b"genomed") == 0xc079fda9249afd05
    assert xxhash.xxh3_64_intdigest(bytes(range(256)) * 40) == 0xc03d2231ab9348f3


def test_integral_floats_in_the_contract_are_accepted_as_numbers() -> None:
    # msgpack-c packs integral doubles as integers; the C++ decoder accepts them.
    c = contract(lora_alpha=8, alpha_pattern={"q_proj": 3})
    c["modules"][0].update(alpha=8, scaling=2)
    parsed = _layout.parse(bytes(build(contract_map=c)))
    assert parsed.modules[0].alpha == 8.0 and isinstance(parsed.modules[0].alpha, float)
    assert parsed.contract["lora_alpha"] == 8.0 and isinstance(parsed.contract["lora_alpha"], float)
    assert parsed.contract["alpha_pattern"] == {"q_proj": 3.0}


def test_a_span_longer_than_total_bytes_and_unknown_contract_keys_are_fine() -> None:
    data = build(contract_map=contract(future_key={"x": [1, 2, 3]}))
    parsed = _layout.parse(bytes(data) + b"\0" * 4096)
    assert parsed.total_bytes == len(data)


# ---- the fixed fields ------------------------------------------------------------


def test_every_truncation_is_refused() -> None:
    data = build()
    for n in range(len(data)):
        invalid(data[:n])


def test_bad_magic_and_versions() -> None:
    invalid(build(magic=b"GNMDADP2"), "bad magic")
    invalid(build(version=1), "unsupported version 1")
    invalid(build(version=2), "unsupported version 2")
    invalid(build(version=4), "unsupported version 4")


@pytest.mark.parametrize("alpha", [math.nan, math.inf, -math.inf])
def test_alpha_must_be_finite(alpha: float) -> None:
    invalid(build(lora_alpha=alpha), "not finite")


@pytest.mark.parametrize("hb", [0, 32, 47, 100, 2**64 - 64])
def test_header_bytes_aligned_past_the_fixed_fields_and_inside(hb: int) -> None:
    invalid(build(header_bytes=hb))


def test_total_bytes_must_fit_the_span_and_hold_the_header() -> None:
    data = build()
    invalid(build(total_bytes=len(data) + 64, span=len(data)), "do not fit")
    invalid(build(total_bytes=64), "do not fit")
    invalid(build(total_bytes=2**64 - 1), "do not fit")


def test_tensor_count_bounded_by_header_bytes() -> None:
    invalid(build(count=2**32 - 1), "cannot fit")


def test_an_entry_running_past_header_bytes() -> None:
    # Claim one more entry than there are: the contract bytes are read as an entry
    # whose name runs past header_bytes, or whose fields do not hold.
    invalid(build(count=3))
    # A name_len that reaches beyond header_bytes.
    long_name = "x" * 1000
    invalid(build(entries=[(long_name, F16, (1,))], header_bytes=align(48 + 100)),
            "entry runs past header_bytes")


# ---- the tensor table ------------------------------------------------------------


def test_name_longer_than_the_limit() -> None:
    invalid(build(entries=[("n" * 1025, U8, (1,))]), "name longer than the limit")


@pytest.mark.parametrize("dtype", [16, 99, 255])
def test_unknown_dtype(dtype: int) -> None:
    entries = [(A, dtype, (4, 16)), (B, F16, (16, 4))]
    invalid(build(entries=entries, lengths=[128, 128]), "unknown dtype")


def test_too_many_dimensions() -> None:
    invalid(build(entries=[(A, U8, (1,) * 17), (B, F16, (16, 4))], lengths=[1, 128]),
            "too many dimensions")


def test_length_must_equal_shape_times_dtype_size() -> None:
    invalid(build(lengths=[127, 128]), "differs from shape x dtype size")
    # An overflowing shape cannot equal any u64 length.
    invalid(build(entries=[(A, F32, (2**63, 4)), (B, F16, (16, 4))], lengths=[0, 128]),
            "differs from shape x dtype size")


@pytest.mark.parametrize("dims", [
    (2**63, 0), (0, 2**63), (2**64 - 1, 0), (2**32, 2**31, 0), (0, 2**32, 2**31),
    (2**62, 2, 0),
])
def test_an_empty_tensor_numpy_cannot_shape_is_refused_by_name(dims: Tuple[int, ...]) -> None:
    # Zero elements, so length 0 = shape x size; but numpy cannot build the view
    # (a dimension over intp, or the non-zero dimensions' product over it), and
    # views() used to raise a bare ValueError for the whole lease.
    name = "base_model.model.empty.weight"
    data = build(entries=[(name, U8, dims)], contract_map=contract(modules=[]), lengths=[0])
    invalid(data, "tensor #0", name, "cannot be represented")


def test_empty_tensor_shapes_match_what_numpy_accepts() -> None:
    # The parse-time rule is numpy's own: every shape parse() accepts has views.
    intp_max = int(np.iinfo(np.intp).max)
    sizes = dict(_layout_sizes())
    rng = random.Random(7)
    shapes = [(intp_max, 0), (intp_max // 2, 0), (intp_max // 2 + 1, 0), (2**31, 2**31, 0),
              (2**31, 2**32, 0), (0, 3, intp_max // 3), (0, 3, intp_max // 3 + 1),
              (intp_max // 8, 0), (intp_max // 8 + 1, 0)]
    shapes += [tuple(rng.choice([0, 1, 2, 3, 2**20, 2**31, 2**40, 2**61, 2**62, 2**63 - 1])
                     for _ in range(rng.randint(1, 4))) + (0,) for _ in range(200)]
    accepted = refused = 0
    for dims in shapes:
        for dt in (U8, 9, F32, 13):  # sizes 1, 2, 4, 8
            try:
                np.ndarray(dims, dtype=_layout.DTYPES[dt][2], buffer=b"", offset=0)
                numpy_ok = True
            except ValueError:
                numpy_ok = False
            data = bytes(build(entries=[("t", dt, dims)], contract_map=contract(modules=[]),
                               lengths=[0]))
            if numpy_ok:
                parsed = _layout.parse(data)
                view = _layout.views(np.frombuffer(data, np.uint8), parsed)["t"]
                assert view.shape == dims and view.size == 0 and sizes[dt] == view.itemsize
                accepted += 1
            else:
                invalid(data, "cannot be represented")
                refused += 1
    assert accepted and refused


def test_views_turn_a_shape_numpy_refuses_into_layout_invalid() -> None:
    # Defence in depth, should a ParsedAdapter ever hold such a shape.
    data = build(entries=[("t", U8, (0,))], contract_map=contract(modules=[]), lengths=[0])
    parsed = _layout.parse(bytes(data))
    entry = parsed.tensors[0]
    forged = _layout.ParsedAdapter(**{**parsed.__dict__, "tensors": (
        _layout.TensorEntry(entry.name, entry.dtype, entry.np_dtype, (2**63, 0), entry.offset,
                            0, 0),)})
    with pytest.raises(genomed.LayoutError) as info:
        _layout.views(np.frombuffer(bytes(data), np.uint8), forged)
    assert info.value.code == "layout_invalid" and "tensor 't'" in info.value.message


def test_names_strictly_sorted() -> None:
    invalid(build(entries=[(B, F16, (16, 4)), (A, F16, (4, 16))]), "not strictly sorted")
    invalid(build(entries=[(A, F16, (4, 16)), (A, F16, (4, 16))]), "not strictly sorted")


def test_names_must_be_utf8() -> None:
    invalid(build(entries=[(b"\xff\xfe", U8, (1,))],
                  contract_map=contract(modules=[]), lengths=[1]), "UTF-8")


def test_offsets_aligned_ordered_and_inside_total_bytes() -> None:
    good = build()
    parsed = _layout.parse(bytes(good))
    off_a, off_b = (t.offset for t in parsed.tensors)
    total = parsed.total_bytes
    invalid(build(offsets=[off_a + 8, off_b]), "not 64-byte aligned")
    invalid(build(offsets=[0, off_b]), "overlap the header")  # inside the header
    invalid(build(offsets=[off_a, off_a]), "overlap")  # B overlaps A
    invalid(build(offsets=[off_b, off_a]), "overlap")  # out of order
    invalid(build(offsets=[off_a, total], total_bytes=total), "leave total_bytes")
    invalid(build(offsets=[off_a, 2**64 - 64], total_bytes=total), "leave total_bytes")


# ---- the contract ----------------------------------------------------------------


def test_contract_must_end_inside_header_bytes() -> None:
    data = build()
    cb = struct.unpack_from("<I", data, 44)[0]
    invalid(build(contract_bytes=cb + 4096), "runs past header_bytes")
    invalid(build(contract_bytes=2**32 - 1), "exceeds the limit")


def test_contract_must_be_one_msgpack_map() -> None:
    invalid(build(raw_contract=b"\xc1"), "adapter contract")  # never-used msgpack byte
    invalid(build(raw_contract=msgpack.packb([1, 2])), "expected a map")
    invalid(build(raw_contract=msgpack.packb(contract()) + b"\x00"), "bytes follow")
    invalid(build(raw_contract=b""), "adapter contract")
    # A declared str32 of 4 GiB inside the contract bytes.
    invalid(build(raw_contract=b"\x81\xa1k\xdb\xff\xff\xff\xff"), "adapter contract")


def test_contract_nesting_is_bounded() -> None:
    deep: Any = 1
    for _ in range(9):
        deep = [deep]
    invalid(build(contract_map=contract(future_key=deep)), "nested deeper")


def _nested(containers: int, leaf: Any) -> Any:
    """`containers` nested arrays and maps (alternating) around a scalar leaf."""
    value = leaf
    for i in range(containers):
        value = [value] if i % 2 == 0 else {"k": value}
    return value


@pytest.mark.parametrize("leaf", [1, "x", None, 1.5])
def test_contract_depth_counts_containers_as_msgpack_c_does(leaf: Any) -> None:
    # msgpack-c's depth limit (8) counts maps and arrays, not scalar leaves: the
    # contract map plus 7 nested containers is accepted, with any leaf.
    parsed = _layout.parse(bytes(build(contract_map=contract(future_key=_nested(7, leaf)))))
    assert parsed.contract["future_key"] == _nested(7, leaf)
    # Empty containers count too; 8 levels under the root are one too many.
    _layout.parse(bytes(build(contract_map=contract(future_key=_nested(6, [])))))
    invalid(build(contract_map=contract(future_key=_nested(8, leaf))), "nested deeper than 8")
    invalid(build(contract_map=contract(future_key=_nested(7, []))), "nested deeper than 8")
    invalid(build(contract_map=contract(future_key=_nested(7, {}))), "nested deeper than 8")


class Pairs(list):  # type: ignore[type-arg]
    """A msgpack map given as (key, value) pairs, so that a key can repeat."""


def pack_pairs(obj: Any) -> bytes:
    """msgpack of `obj`, where Pairs (at any depth) become maps in that order."""
    if isinstance(obj, dict):
        obj = Pairs(obj.items())
    if isinstance(obj, Pairs):
        out = bytearray(msgpack.Packer().pack_map_header(len(obj)))
        for k, v in obj:
            out += pack_pairs(k) + pack_pairs(v)
        return bytes(out)
    if isinstance(obj, list):
        return msgpack.Packer().pack_array_header(len(obj)) + b"".join(
            pack_pairs(x) for x in obj)
    return msgpack.packb(obj, use_bin_type=True)


def test_pack_pairs_is_msgpack() -> None:
    c = contract(future_key={"x": [1, {"y": None}]})
    assert pack_pairs(c) == msgpack.packb(c, use_bin_type=True)


def _with_pairs(c: Dict[str, Any], *extra: Tuple[Any, Any]) -> Pairs:
    return Pairs(list(c.items()) + list(extra))


@pytest.mark.parametrize("where", ["root", "r", "config", "module", "rank_pattern", "unknown"])
def test_contract_duplicate_keys_are_refused(where: str) -> None:
    # Which value wins would differ: msgpack-c's lookups take the first, a dict
    # the last. Refused at any depth, known keys or not.
    c = contract(rank_pattern={"q_proj": 4})
    if where == "root":
        raw = _with_pairs(c, ("future_key", 1), ("future_key", 1))
    elif where == "r":
        raw = _with_pairs(c, ("r", 8))  # a second "r" with another value
    elif where == "config":
        raw = _with_pairs(c, ("config", c["config"]))  # the same value twice
    elif where == "module":
        module = dict(c["modules"][0])
        c["modules"] = [Pairs(list(module.items()) + [("rank", 8)])]
        raw = Pairs(c.items())
    elif where == "rank_pattern":
        c["rank_pattern"] = Pairs([("q_proj", 4), ("q_proj", 8)])
        raw = Pairs(c.items())
    else:
        raw = _with_pairs(c, ("future_key", Pairs([("x", 1), ("y", 2), ("x", 1)])))
    invalid(build(raw_contract=pack_pairs(raw)), "adapter contract", "appears twice")


def test_contract_keys_a_dict_cannot_hold_are_refused() -> None:
    c = contract()
    invalid(build(raw_contract=pack_pairs(_with_pairs(c, ([1], 1)))), "map key is a msgpack array")
    invalid(build(raw_contract=pack_pairs(_with_pairs(c, (Pairs([("a", 1)]), 1)))),
            "map key is a msgpack map")
    invalid(build(raw_contract=pack_pairs(_with_pairs(c, (1, "int"), (True, "bool")))),
            "equal as Python values")
    # Distinct non-string keys are fine (decoders ignore keys they do not know).
    parsed = _layout.parse(bytes(build(raw_contract=pack_pairs(
        _with_pairs(c, (1, "int"), (b"raw", "bin"), (-2, "neg"))))))
    assert parsed.contract[1] == "int" and parsed.contract[-2] == "neg"


@pytest.mark.parametrize("name", [
    "missing." + "lora_A.weight",
    "base_model.model.layers.0.q_proj.lora_A.weigh",
    "",
])
def test_contract_naming_a_missing_tensor(name: str) -> None:
    c = contract()
    c["modules"][0]["a"] = name
    invalid(build(contract_map=c), "not in the table")


@pytest.mark.parametrize("field", ["magnitude", "lora_bias"])
def test_contract_module_optional_tensors_must_exist(field: str) -> None:
    c = contract()
    c["modules"][0][field] = "base_model.model.layers.0.q_proj.lora_magnitude_vector"
    invalid(build(contract_map=c), "not in the table")


@pytest.mark.parametrize("key", ["bias_tensors", "saved_module_tensors", "other_tensors"])
def test_contract_tensor_lists_must_exist(key: str) -> None:
    invalid(build(contract_map=contract(**{key: ["lm_head.weight"]})), "not in the table")


@pytest.mark.parametrize("key", [
    "config", "peft_type", "r", "lora_alpha", "use_rslora", "use_dora", "fan_in_fan_out",
    "lora_bias", "bias", "task_type", "base_model_name_or_path", "target_modules",
    "modules_to_save", "layers_to_transform", "layers_pattern", "rank_pattern",
    "alpha_pattern", "modules", "bias_tensors", "saved_module_tensors", "other_tensors"])
def test_contract_missing_field(key: str) -> None:
    c = contract()
    del c[key]
    invalid(build(contract_map=c), f"'{key}'")


@pytest.mark.parametrize("key,value", [
    ("config", b"bytes"), ("config", "not json"), ("config", "[1, 2]"), ("peft_type", 1),
    ("r", 0), ("r", -1), ("r", 2**32), ("r", "4"), ("r", 4.0), ("r", True),
    ("lora_alpha", "8"), ("lora_alpha", None), ("use_dora", 0), ("bias", None),
    ("task_type", 3), ("target_modules", [1]), ("target_modules", None),
    ("modules_to_save", None), ("layers_to_transform", [-1]), ("layers_to_transform", ["0"]),
    ("layers_pattern", "layers"), ("rank_pattern", {"q": 0}), ("rank_pattern", {"q": 2.0}),
    ("rank_pattern", []), ("alpha_pattern", {"q": "x"}), ("alpha_pattern", {"q": -2}),
    ("modules", {}), ("modules", [1]), ("bias_tensors", [None]), ("other_tensors", "x"),
])
def test_contract_field_types(key: str, value: Any) -> None:
    invalid(build(contract_map=contract(**{key: value})), "adapter contract")


@pytest.mark.parametrize("key,value", [
    ("path", None), ("kind", "lstm"), ("kind", None), ("a", 1), ("b", None),
    ("magnitude", 1), ("rank", 0), ("rank", 2**32), ("alpha", "x"), ("alpha", math.nan),
    ("scaling", math.inf), ("scaling", None),
])
def test_contract_module_field_types(key: str, value: Any) -> None:
    c = contract()
    c["modules"][0][key] = value
    invalid(build(contract_map=c), "modules[0]")


def test_target_modules_may_be_a_regex_string_and_task_type_nil() -> None:
    parsed = _layout.parse(bytes(build(contract_map=contract(
        target_modules=r".*\.q_proj", task_type=None, base_model_name_or_path=None))))
    assert parsed.contract["target_modules"] == r".*\.q_proj"


# ---- random corruption ------------------------------------------------------------


def test_random_corruption_is_refused_or_stays_inside_the_span() -> None:
    rng = random.Random(20240611)
    good = bytes(build())
    parsed_ok = 0
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            data[pos] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[:rng.randrange(len(data))]
        try:
            parsed = _layout.parse(bytes(data))
        except genomed.Error as e:
            assert e.code == "layout_invalid", e
            continue
        parsed_ok += 1
        for t in parsed.tensors:
            assert t.offset + t.length <= parsed.total_bytes <= len(data)
        _layout.views(np.frombuffer(bytes(data), np.uint8), parsed)
    assert parsed_ok > 0  # flips in tensor data or padding leave a valid header
