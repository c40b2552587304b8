"""Benchmark for the TensorBoard event-file reader (auditor.evidence.sources.tensorboard).

    python bench/bench_tensorboard.py [--scalars 1000000] [--work /tmp/auditor-bench-tb] [--repeat 3]

Writes event files of 1,000,000 scalars the way SummaryWriter frames them (TFRecord with masked CRC-32C, Event
protos with simple_value), with this script's own bytewise CRC so it needs no tensorboard, then times the
reader over each (best of N, page cache warm, in one process):
1. one tag: `train/loss` at every step;
2. Lightning's shape: `train_loss` and `epoch` at every logged step, `val_loss` every 1000 steps.
Budget: < 2 s each. The reader checks every record's two CRCs and returns every loss point.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from auditor.evidence.sources.tensorboard import read_event_file

_POLY = 0x82F63B78
_TABLE = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ (_POLY if _crc & 1 else 0)
    _TABLE.append(_crc)


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C, byte by byte (independent of the reader's implementation)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def scalar_event(step: int, tag: str, value: float, wall_time: float) -> bytes:
    """An Event with one simple_value, as torch's SummaryWriter.add_scalar serializes it."""
    name = tag.encode()
    item = b"\x0a" + varint(len(name)) + name + b"\x15" + struct.pack("<f", value)
    summary = b"\x0a" + varint(len(item)) + item
    return (b"\x09" + struct.pack("<d", wall_time) + (b"\x10" + varint(step) if step else b"")
            + b"\x2a" + varint(len(summary)) + summary)


_HEADERS: dict[int, bytes] = {}


def record(data: bytes) -> bytes:
    header = _HEADERS.get(len(data))
    if header is None:
        length = struct.pack("<Q", len(data))
        header = _HEADERS[len(data)] = length + struct.pack("<I", masked_crc(length))
    return header + data + struct.pack("<I", masked_crc(data))


def one_tag(scalars: int) -> Iterator[bytes]:
    for step in range(1, scalars + 1):
        yield record(scalar_event(step, "train/loss", 3.0 - step * 2e-6, 1.7e9 + step * 0.01))


def lightning(scalars: int) -> Iterator[bytes]:
    step, written = 0, 0
    while written < scalars:
        step += 1
        wall = 1.7e9 + step * 0.01
        logged = [("train_loss", 3.0 - step * 2e-6), ("epoch", float(step // 5000))]
        if step % 1000 == 0:
            logged.append(("val_loss", 2.9 - step * 2e-6))
        for tag, value in logged[:scalars - written]:
            yield record(scalar_event(step, tag, value, wall))
            written += 1


def write(path: Path, records: Iterator[bytes]) -> int:
    count = 0
    with path.open("wb") as f:
        f.write(record(b"\x09" + struct.pack("<d", 1.7e9) + b"\x1a\x0dbrain.Event:2"))
        for item in records:
            f.write(item)
            count += 1
    return count


def best(path: Path, repeat: int) -> tuple[float, int]:
    times, points = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        with path.open("rb") as handle:
            series = read_event_file(handle, path.name)
        times.append(time.perf_counter() - start)
        if series.bad_count:
            raise SystemExit(f"{path.name}: the reader found problems: {series.bad_lines}")
        points = series.count
    return min(times), points


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scalars", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/auditor-bench-tb"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    rows = []
    for name, shape in (("one tag (train/loss every step)", one_tag),
                        ("Lightning shape (train_loss + epoch every step, val_loss every 1000)", lightning)):
        path = args.work / f"events.out.tfevents.{shape.__name__}"
        count = write(path, shape(args.scalars))
        seconds, points = best(path, args.repeat)
        rows.append((f"{name}: {count:,} scalars, {path.stat().st_size / 2**20:.0f} MiB, {points:,} loss points",
                     seconds))
    print(f"python {sys.version.split()[0]}")
    print("| benchmark | reader (s) | budget |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | < 2 s |")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
