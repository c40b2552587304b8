"""safetensors validated from headers alone, by the rules of the reference loader (huggingface/safetensors, whose
header is parsed by serde_json): 8-byte length, a JSON header of the shape the loader deserializes, dtype × shape =
byte span, offsets contiguous and covering the data region exactly; sharded index complete. No tensor data is read."""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from auditor.evidence.jsonload import load_json
from auditor.evidence.opener import EvidenceUnreadable, open_file, read_file

MAX_HEADER = 100_000_000  # the reference loader's MAX_HEADER_SIZE: a longer header is refused, not read
MAX_INDEX_BYTES = 64 * 1024 * 1024  # a shard index is a tensor → file map: kilobytes even for the largest models
MAX_DEPTH = 127  # serde_json's recursion limit: nesting deeper than this is refused by the loader
U64_MAX = 2**64 - 1  # the loader's shapes and offsets are usize (64-bit)
DTYPE_BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32,
    "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}
_SURROGATE = re.compile("[\ud800-\udfff]")
_TENSOR_FIELDS = ("dtype", "shape", "data_offsets")


@dataclass
class SafetensorsInfo:
    """What the header of one .safetensors file says, and what is wrong with it."""

    path: str
    size: int
    tensors: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    data_start: int = 0  # where tensor data begins: 8 + the header length
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # tensor → data_offsets, within the data region

    @property
    def parameters(self) -> int:
        """Parameter count from tensor shapes."""
        return sum(math.prod(shape) for _, shape in self.tensors.values())


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs in order: the loader refuses some duplicate keys and keeps the last
    of others, so duplicates must survive parsing."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _serde_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _serde_int(text: str) -> int | float:
    # serde_json reads an integer as u64/i64 when it fits, else as f64 (an error beyond f64's range); -0 is a float.
    if text == "-0":
        return -0.0
    if len(text.lstrip("-")) > 400:  # beyond f64's range whatever the digits, and before int() refuses the length
        raise ValueError("number out of range")
    value = int(text)
    if -(2**63) <= value <= U64_MAX:
        return value
    try:
        return float(value)
    except OverflowError:
        raise ValueError("number out of range") from None


_HEADER_JSON = json.JSONDecoder(object_pairs_hook=_Pairs, parse_float=_serde_float, parse_int=_serde_int,
                                parse_constant=_reject_constant)


def _json_problem(value: Any, depth: int = 1) -> str | None:
    """What the reference parser refuses in an already-parsed value: nesting beyond its limit, lone surrogates."""
    if isinstance(value, list) and depth > MAX_DEPTH:  # serde counts containers (a _Pairs object is a list too)
        return f"is nested more than {MAX_DEPTH} levels deep (the loader's limit)"
    if isinstance(value, str):
        return "holds a lone UTF-16 surrogate escape" if _SURROGATE.search(value) else None
    if isinstance(value, _Pairs):
        for key, item in value:
            problem = _json_problem(key, depth) or _json_problem(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _json_problem(item, depth + 1)
            if problem:
                return problem
    return None


def _is_usize(value: Any) -> bool:
    return type(value) is int and 0 <= value <= U64_MAX  # bool is an int subclass, and the loader refuses it


def _dtype(value: Any) -> str | None:
    """A dtype as serde reads the enum: its name, or an object of exactly one name whose value is null."""
    if isinstance(value, _Pairs):
        if len(value) != 1 or value[0][1] is not None:
            return None
        value = value[0][0]
    return value if isinstance(value, str) and value in DTYPE_BITS else None


def _tensor_entry(key: str, entry: Any) -> tuple[str, list[int], list[int]] | str:
    """(dtype, shape, data_offsets) of one tensor entry, or what is wrong with it. serde reads the entry from an
    object (each field once, unknown fields ignored) or from an array of the three values in order."""
    if isinstance(entry, _Pairs):
        fields: dict[str, Any] = {}
        for name, value in entry:
            if name in _TENSOR_FIELDS:
                if name in fields:
                    return f"tensor {key!r}: duplicate field {name!r}"
                fields[name] = value
        missing = [n for n in _TENSOR_FIELDS if n not in fields]
        if missing:
            return f"tensor {key!r}: missing field {missing[0]!r}"
        values = [fields[n] for n in _TENSOR_FIELDS]
    elif isinstance(entry, list) and not isinstance(entry, _Pairs) and len(entry) == 3:
        values = entry
    else:
        return f"tensor {key!r}: entry is not an object of dtype, shape and data_offsets"
    dtype, shape, offsets = _dtype(values[0]), values[1], values[2]
    if dtype is None:
        return f"tensor {key!r}: unknown dtype {values[0]!r}"
    if not (isinstance(shape, list) and not isinstance(shape, _Pairs) and all(_is_usize(d) for d in shape)):
        return f"tensor {key!r}: bad shape {shape!r} (dimensions are non-negative integers)"
    if not (isinstance(offsets, list) and not isinstance(offsets, _Pairs) and len(offsets) == 2
            and all(_is_usize(o) for o in offsets)):
        return f"tensor {key!r}: bad data_offsets {offsets!r} (two non-negative integers)"
    return dtype, shape, offsets


def _byte_size(dtype: str, shape: list[int]) -> int | str:
    """Bytes a tensor occupies, computed as the loader does (64-bit, overflow refused, whole bytes only)."""
    elements = 1
    for dim in shape:  # left to right, as the loader's checked multiplication: a leading 0 stops any overflow
        elements *= dim
        if elements > U64_MAX:
            return f"{dtype}{shape}: element count overflows 64 bits"
    bits = elements * DTYPE_BITS[dtype]
    if bits > U64_MAX:
        return f"{dtype}{shape}: byte size overflows 64 bits"
    if bits % 8:
        return f"{dtype}{shape} is {bits} bits, not a whole number of bytes"
    return bits // 8


def parse_safetensors_header(handle: BinaryIO, size: int, name: str) -> SafetensorsInfo:
    """Validate one safetensors file from an open handle positioned at its start; reads the header only."""
    info = SafetensorsInfo(path=name, size=size)
    prefix = handle.read(8)
    if len(prefix) < 8:
        info.problems.append(f"{size} bytes: too short for the 8-byte header length (truncated?)")
        return info
    (header_len,) = struct.unpack("<Q", prefix)
    if header_len > MAX_HEADER:
        info.problems.append(f"header length {header_len:,} exceeds the loader's limit of {MAX_HEADER:,} bytes")
        return info
    if header_len > size - 8:
        info.problems.append(
            f"header length {header_len} exceeds the file ({size} bytes): truncated or not safetensors")
        return info
    info.data_start = 8 + header_len
    raw = handle.read(header_len)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        info.problems.append(f"header is not UTF-8 (byte {8 + exc.start})")
        return info
    try:
        header = _HEADER_JSON.decode(text)
    except json.JSONDecodeError as exc:
        info.problems.append(f"header is not valid JSON: {exc.msg} at byte {8 + len(text[:exc.pos].encode())}")
        return info
    except (ValueError, RecursionError) as exc:
        info.problems.append(f"header is not JSON the loader reads: {exc or 'nested too deeply'}")
        return info
    if not isinstance(header, _Pairs):
        info.problems.append("header is not a JSON object")
        return info
    problem = _json_problem(header)
    if problem:
        info.problems.append(f"header {problem}")
        return info
    _check_entries(info, header, size - info.data_start)
    return info


def _check_entries(info: SafetensorsInfo, header: _Pairs, data_len: int) -> None:
    entries: dict[str, tuple[str, list[int], list[int]]] = {}
    metadata_seen = False
    for key, entry in header:
        if key != "__metadata__":
            parsed = _tensor_entry(key, entry)  # every entry must deserialize, even one a later duplicate replaces
            if isinstance(parsed, str):
                info.problems.append(parsed)
            else:
                entries[key] = parsed  # a repeated tensor name: the loader keeps the last entry, and so do we
            continue
        if metadata_seen:
            info.problems.append("duplicate __metadata__")
            return
        metadata_seen = True
        if entry is None:
            continue
        if not isinstance(entry, _Pairs) or not all(isinstance(v, str) for _, v in entry):
            info.problems.append("__metadata__ is not an object of string values")
            return
        info.metadata = dict(entry)
    if info.problems:
        return
    spans: list[tuple[int, int, str]] = []
    for key, (dtype, shape, (begin, end)) in entries.items():
        needed = _byte_size(dtype, shape) if end >= begin else f"data_offsets [{begin}, {end}] end before they start"
        if isinstance(needed, str):
            info.problems.append(f"tensor {key!r}: {needed}")
            continue
        if end - begin != needed:
            info.problems.append(f"tensor {key!r}: {dtype}{shape} needs {needed} bytes, offsets give {end - begin}")
        info.tensors[key] = (dtype, tuple(shape))
        info.spans[key] = (begin, end)
        spans.append((begin, end, key))
    if info.problems:
        return
    spans.sort()
    cursor = 0
    for begin, end, key in spans:
        if begin != cursor:
            what = "overlaps the previous tensor" if begin < cursor else f"leaves a gap at data byte {cursor}"
            info.problems.append(f"tensor {key!r} data_offsets [{begin}, {end}]: {what}")
            return
        cursor = end
    if cursor != data_len:
        info.problems.append(
            f"tensors cover {cursor} data bytes but the file holds {data_len}"
            + (" (truncated)" if cursor > data_len else " (trailing bytes)")
        )


def read_safetensors_header(path: Path, name: str) -> SafetensorsInfo:
    """Validate one safetensors file (one the folder walk listed) from its header: a regular file, never read
    through a link."""
    try:
        with open_file(path, name) as handle:
            return parse_safetensors_header(handle, os.fstat(handle.fileno()).st_size, name)
    except OSError as exc:  # EvidenceUnreadable says why ('<name>: not a regular file'); a read error its cause
        info = SafetensorsInfo(path=name, size=0)
        why = str(exc).split(": ", 1)[-1] if isinstance(exc, EvidenceUnreadable) else exc.strerror or str(exc)
        info.problems.append(f"cannot read: {why}")
        return info


@dataclass
class ShardIndex:
    """A `model.safetensors.index.json`: weight_map tensor → shard file, and declared metadata."""

    path: str
    weight_map: dict[str, str]
    metadata: dict[str, Any]
    problem: str | None = None

    @property
    def shards(self) -> list[str]:
        """The shard files the index names, sorted."""
        return sorted(set(self.weight_map.values()))


def read_shard_index(path: Path, name: str) -> ShardIndex:
    """Parse a sharded-checkpoint index; a problem string instead of raising."""
    try:
        raw, cut = read_file(path, MAX_INDEX_BYTES, name)
    except EvidenceUnreadable as exc:
        return ShardIndex(name, {}, {}, str(exc).split(": ", 1)[-1])
    if cut:
        return ShardIndex(name, {}, {}, f"is larger than {MAX_INDEX_BYTES // (1024 * 1024)} MiB: not read")
    try:
        data = load_json(raw)
    except (ValueError, RecursionError):
        return ShardIndex(name, {}, {}, "is not valid JSON")
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        return ShardIndex(name, {}, {}, "has no weight_map object of tensor → file")
    metadata = data.get("metadata")
    return ShardIndex(name, weight_map, metadata if isinstance(metadata, dict) else {})
