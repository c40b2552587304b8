"""safetensors validated from headers alone: 8-byte length, JSON header, offsets contiguous and covering
the file exactly, dtype × shape = byte length; sharded index complete. No tensor data is read."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.evidence.jsonload import load_json

MAX_HEADER = 100 * 1024 * 1024
DTYPE_BITS = {
    "F64": 64, "F32": 32, "F16": 16, "BF16": 16, "I64": 64, "I32": 32, "I16": 16, "I8": 8, "U64": 64,
    "U32": 32, "U16": 16, "U8": 8, "BOOL": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8, "F6_E2M3": 6,
    "F6_E3M2": 6, "F4": 4, "C64": 64,
}


@dataclass
class SafetensorsInfo:
    """What the header of one .safetensors file says, and what is wrong with it."""

    path: str
    size: int
    tensors: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def parameters(self) -> int:
        """Parameter count from tensor shapes."""
        return sum(math.prod(shape) for _, shape in self.tensors.values())


def read_safetensors_header(path: Path, name: str) -> SafetensorsInfo:
    """Validate one safetensors file from its header; never reads tensor data."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            info = SafetensorsInfo(path=name, size=size)
            if len(prefix) < 8:
                info.problems.append(f"{size} bytes: too short for the 8-byte header length (truncated?)")
                return info
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER or header_len > size - 8:
                info.problems.append(
                    f"header length {header_len} exceeds the file ({size} bytes): truncated or not safetensors"
                )
                return info
            raw = handle.read(header_len)
    except OSError as exc:
        info = SafetensorsInfo(path=name, size=0)
        info.problems.append(f"cannot read: {exc.strerror or exc}")
        return info
    try:
        header = load_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        info.problems.append("header is not valid UTF-8 JSON")
        return info
    if not isinstance(header, dict):
        info.problems.append("header is not a JSON object")
        return info
    _check_entries(info, header, size - 8 - header_len)
    return info


def _check_entries(info: SafetensorsInfo, header: dict[str, Any], data_len: int) -> None:
    spans: list[tuple[int, int, str]] = []
    for key, entry in header.items():
        if key == "__metadata__":
            info.metadata = entry if isinstance(entry, dict) else {}
            continue
        if not isinstance(entry, dict):
            info.problems.append(f"tensor {key!r}: entry is not an object")
            continue
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BITS:
            info.problems.append(f"tensor {key!r}: unknown dtype {dtype!r}")
            continue
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            info.problems.append(f"tensor {key!r}: bad shape {shape!r}")
            continue
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            info.problems.append(f"tensor {key!r}: bad data_offsets {offsets!r}")
            continue
        begin, end = offsets
        expected = math.ceil(math.prod(shape) * DTYPE_BITS[dtype] / 8)
        if end - begin != expected:
            info.problems.append(
                f"tensor {key!r}: {dtype}{shape} needs {expected} bytes, offsets give {end - begin}"
            )
        info.tensors[key] = (dtype, tuple(shape))
        spans.append((begin, end, key))
    spans.sort()
    cursor = 0
    for begin, end, key in spans:
        if begin != cursor:
            what = "overlaps the previous tensor" if begin < cursor else f"leaves a gap at byte {cursor}"
            info.problems.append(f"tensor {key!r} starts at {begin}: {what}")
            break
        cursor = end
    if not info.problems and cursor != data_len:
        info.problems.append(
            f"tensors cover {cursor} data bytes but the file holds {data_len}"
            + (" (truncated)" if cursor > data_len else " (trailing bytes)")
        )


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
        data = load_json(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return ShardIndex(name, {}, {}, "is not valid JSON")
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        return ShardIndex(name, {}, {}, "has no weight_map object of tensor → file")
    metadata = data.get("metadata")
    return ShardIndex(name, weight_map, metadata if isinstance(metadata, dict) else {})
