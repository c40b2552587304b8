"""The TensorBoard event-file reader against files written by the real torch.utils.tensorboard.SummaryWriter (and
tensorboard's own loader as the oracle); defects (flipped bytes, truncation, NaN) are findings at byte offsets."""

from __future__ import annotations

import io
import math
import os
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import auditor.evidence.sources.tensorboard as tb
from auditor.evidence.metrics import MetricsSeries
from auditor.evidence.opener import Folder
from auditor.evidence.sources.registry import METRICS

SummaryWriter: Any = pytest.importorskip("torch.utils.tensorboard").SummaryWriter
event_file_loader = pytest.importorskip("tensorboard.backend.event_processing.event_file_loader")


def f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def write(tmp_path: Path, log: Callable, name: str = "run") -> tuple[Path, str]:
    """Let `log(writer)` write through a real SummaryWriter; the event file written (root, folder-relative)."""
    writer = SummaryWriter(str(tmp_path / name))
    log(writer)
    writer.close()
    files = sorted(p for p in tmp_path.rglob("events.out.tfevents.*") if p.is_file())
    assert files
    return tmp_path, files[0].relative_to(tmp_path).as_posix()


def read(root: Path, rel: str) -> MetricsSeries:
    folder = Folder(root, sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()))
    source = METRICS["tensorboard"]
    assert source.claims(rel, folder.head(rel))
    [series] = source.read(folder, rel)
    return series


def records(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, data) of each TFRecord, by the length fields alone."""
    out, pos = [], 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        out.append((pos, data[pos + 12: pos + 12 + length]))
        pos += 16 + length
    return out


def oracle(path: Path) -> list[tuple[int, str, float]]:
    """(step, tag, value) of every simple_value, by tensorboard's own reader."""
    return [(e.step, v.tag, v.simple_value) for e in event_file_loader.LegacyEventFileLoader(str(path)).Load()
            for v in e.summary.value if v.WhichOneof("value") == "simple_value"]


def lightning_like(steps: int, nan_at: int | None = None) -> Callable:
    def log(w: Any) -> None:
        for step in range(1, steps + 1):
            w.add_scalar("train_loss", math.nan if step == nan_at else 3.0 / step, step)
            w.add_scalar("epoch", step // 100, step)
            if step % 50 == 0:
                w.add_scalar("val_loss", 2.0 / step, step)
    return log


def test_registered_and_claims_by_name() -> None:
    source = METRICS["tensorboard"]
    assert source.info.kind == "metrics" and source.info.looks_for == ("events.out.tfevents.*",)
    assert source.claims("tb_logs/version_0/events.out.tfevents.1700000000.host.1.0", b"")
    assert not source.claims("logs/metrics.csv", b"")


@pytest.mark.parametrize(("tag", "role"), [
    ("loss", "loss"), ("train/loss", "loss"), ("train_loss", "loss"), ("Loss/train", "loss"),
    ("training_loss", "loss"), ("train/loss_step", "loss"), ("loss/train", "loss"), ("train_loss_step", "loss"),
    ("batch_loss", "loss"), ("val_loss", "eval"), ("eval/loss", "eval"), ("test_loss", "eval"),
    ("Loss/test", "eval"), ("val/acc", "eval"), ("train_loss_epoch", None), ("epoch_loss", None),
    ("train/train_loss", None), ("value_loss", None), ("loss/total", None), ("hp_metric", None),
    ("epoch", "epoch"), ("train/epoch", "epoch"), ("lr", "lr"), ("lr-SGD", "lr"), ("train/learning_rate", "lr"),
    ("grad_norm", "grad_norm"), ("train/grad_norm", "grad_norm"),
])
def test_tag_rule(tag: str, role: str | None) -> None:
    assert tb.tag_role(tag) == role


def test_crc32c_matches_tensorboard() -> None:
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c, masked_crc32c

    rng = random.Random(0)
    for n in (0, 1, 3, 4, 5, 37, 1023, 4095, 4096, 4097, 10_000, 70_001):
        data = rng.randbytes(n)
        assert tb.crc32c(data) == crc32c(data), n
        assert tb.masked_crc32c(data) == masked_crc32c(data), n


def test_small_summary_writer_file(tmp_path: Path) -> None:
    def log(w: Any) -> None:
        for step in range(5):
            w.add_scalar("Loss/train", 2.0 - step * 0.1, step)
            w.add_scalar("lr", 1e-3, step)
            w.add_scalar("epoch", step // 2, step)
        w.add_scalar("Loss/test", 1.5, 4)
        w.add_scalar("Loss/train", 1.0, 1_234_567)
        w.add_scalar("Loss/train", 0.5, 1_234_568, new_style=True)  # a TF2-style scalar tensor

    root, rel = write(tmp_path, log)
    series = read(root, rel)
    assert (series.kind, series.position, series.path) == ("tensorboard", "byte", rel)
    assert list(series.steps) == [0, 1, 2, 3, 4, 1_234_567, 1_234_568]
    assert list(series.losses) == [f32(2.0 - s * 0.1) for s in range(5)] + [1.0, 0.5]
    assert list(series.epochs)[:5] == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert all(math.isnan(e) for e in series.epochs[5:])
    assert series.evals == {"Loss/test": 1.5} and series.eval_count == 1
    assert series.facts["loss_tag"] == "Loss/train" and series.facts["lr"] == repr(f32(1e-3))
    assert series.max_step == 1_234_568 and series.records == 18
    assert not series.bad_lines and not series.nonfinite
    data = (root / rel).read_bytes()
    offsets = {off: body for off, body in records(data)}
    assert all(b"Loss/train" in offsets[line] for line in series.lines)  # each point is named by its record
    assert series.at(series.lines[0]) == f"{rel} (byte {series.lines[0]})"


def test_add_hparams(tmp_path: Path) -> None:
    root, rel = write(tmp_path, lambda w: w.add_hparams({"lr": 0.01, "batch_size": 32, "optimizer": "adam"},
                                                        {"hp/metric": 0.5}))
    series = read(root, rel)
    assert series.hparams == {"lr": 0.01, "batch_size": 32.0, "optimizer": "adam"}
    assert series.plan.get("batch_size") == 32
    assert series.count == 0


@pytest.mark.parametrize("block", [None, 4096, 100])
def test_many_records_match_tensorboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int | None) -> None:
    if block:  # records straddle blocks, or are longer than one
        monkeypatch.setattr(tb, "BLOCK_BYTES", block)
    root, rel = write(tmp_path, lightning_like(600))
    series = read(root, rel)
    truth = oracle(root / rel)
    losses = [(s, v) for s, t, v in truth if t == "train_loss"]
    assert list(zip(series.steps, series.losses, strict=True)) == losses
    assert list(series.losses) == [f32(3.0 / s) for s in range(1, 601)]
    assert list(series.epochs) == [float(s // 100) for s in range(1, 601)]
    assert series.evals == {"val_loss": f32(2.0 / 600)} and series.eval_count == 12
    assert series.records == len(truth) and series.max_step == 600 and not series.bad_lines
    loss_offsets = [off for off, body in records((root / rel).read_bytes()) if b"train_loss" in body]
    assert list(series.lines) == loss_offsets


def test_flipped_byte_is_a_bad_record(tmp_path: Path) -> None:
    root, rel = write(tmp_path, lightning_like(600))
    path = root / rel
    data = bytearray(path.read_bytes())
    loss_records = [(off, body) for off, body in records(bytes(data)) if b"train_loss" in body]
    for index, where in ((300, -1), (301, 20)):  # a value byte (varies row to row) and a tag byte (does not)
        off, body = loss_records[index]
        data[off + 12 + len(body) + where if where < 0 else off + 12 + where] ^= 0x40
    path.write_bytes(bytes(data))
    series = read(root, rel)
    assert series.bad_lines == [(loss_records[300][0], "record data CRC mismatch"),
                                (loss_records[301][0], "record data CRC mismatch")]
    assert series.count == 598 and 301 not in series.steps and 302 not in series.steps
    assert list(series.steps[:300]) == list(range(1, 301))


def test_flipped_length_resyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, rel = write(tmp_path, lightning_like(100))
    path = root / rel
    data = bytearray(path.read_bytes())
    off, body = [r for r in records(bytes(data)) if b"train_loss" in r[1]][40]
    data[off] ^= 0x01
    path.write_bytes(bytes(data))
    for block in (256 << 10, *range(off + 16 + len(body) - 2, off + 16 + len(body) + 14)):  # next header at an edge
        monkeypatch.setattr(tb, "BLOCK_BYTES", block)
        series = read(root, rel)
        assert series.bad_lines == [(off, f"record header CRC mismatch: {16 + len(body)} bytes skipped to the next "
                                          "valid record")], block
        assert series.count == 99 and 41 not in series.steps and list(series.steps[40:]) == list(range(42, 101))


def test_one_tag_in_two_layouts_stays_in_file_order(tmp_path: Path) -> None:
    def log(w: Any) -> None:  # simple_value and TF2-style tensor records of one tag, alternating
        for step in range(1, 201):
            w.add_scalar("loss", 1.0 / step, step, new_style=step % 2 == 0)

    root, rel = write(tmp_path, log)
    series = read(root, rel)
    assert list(series.steps) == list(range(1, 201))
    assert list(series.losses) == [f32(1.0 / s) for s in range(1, 201)]
    assert list(series.lines) == sorted(series.lines) and not series.bad_lines


def test_truncated_file(tmp_path: Path) -> None:
    root, rel = write(tmp_path, lightning_like(100))
    path = root / rel
    data = path.read_bytes()
    last, body = records(data)[-1]
    path.write_bytes(data[: last + 20])
    series = read(root, rel)
    assert series.bad_lines == [(last, f"truncated record: 20 of {16 + len(body)} bytes")]
    assert series.count == 100  # the last record was an epoch
    path.write_bytes(data[: last + 5])
    assert read(root, rel).bad_lines == [(last, "truncated record: 5 bytes of a 12-byte header")]


def test_declared_length_past_the_end(tmp_path: Path) -> None:
    root, rel = write(tmp_path, lightning_like(10))
    path = root / rel
    data = path.read_bytes()
    length = struct.pack("<Q", 1 << 40)
    path.write_bytes(data + length + struct.pack("<I", tb.masked_crc32c(length)) + b"x" * 100)
    series = read(root, rel)
    assert series.bad_lines == [(len(data), f"truncated record: 112 of {16 + (1 << 40)} bytes")]
    assert series.count == 10


@pytest.mark.parametrize("steps", [5, 300])  # record by record, and as columns
def test_nan_loss_is_nonfinite(tmp_path: Path, steps: int) -> None:
    root, rel = write(tmp_path, lightning_like(steps, nan_at=4))
    series = read(root, rel)
    nan_offset = [off for off, body in records((root / rel).read_bytes()) if b"train_loss" in body][3]
    assert series.nonfinite_count == 1 and len(series.nonfinite) == 1
    line, step, value = series.nonfinite[0]
    assert (line, step) == (nan_offset, 4) and math.isnan(value)
    assert series.count == steps and not series.bad_lines


def test_header_only_file(tmp_path: Path) -> None:
    root, rel = write(tmp_path, lambda w: None)
    series = read(root, rel)
    assert (series.count, series.records, series.bad_lines) == (0, 0, [])
    assert series.facts["file_version"] == "brain.Event:2"


def test_garbage_and_empty(tmp_path: Path) -> None:
    (tmp_path / "events.out.tfevents.1.garbage").write_bytes(random.Random(1).randbytes(50_000))
    (tmp_path / "events.out.tfevents.2.zeros").write_bytes(bytes(30_000))
    (tmp_path / "events.out.tfevents.3.empty").write_bytes(b"")
    garbage = read(tmp_path, "events.out.tfevents.1.garbage")
    assert garbage.count == 0 and garbage.bad_lines[0][0] == 0 and "no valid record" in garbage.bad_lines[0][1]
    zeros = read(tmp_path, "events.out.tfevents.2.zeros")
    assert zeros.count == 0 and zeros.bad_count == 1
    empty = read(tmp_path, "events.out.tfevents.3.empty")
    assert (empty.count, empty.bad_count) == (0, 0)


def test_missing_file_is_a_finding(tmp_path: Path) -> None:
    folder = Folder(tmp_path, ["events.out.tfevents.gone"])
    [series] = METRICS["tensorboard"].read(folder, "events.out.tfevents.gone")
    assert series.bad_count == 1 and series.count == 0


_SAMPLE: dict[str, bytes] = {}


def sample(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if "data" not in _SAMPLE:
        root, rel = write(tmp_path_factory.mktemp("sample"), lightning_like(120))
        _SAMPLE["data"] = (root / rel).read_bytes()
    return _SAMPLE["data"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 10**9)), block=st.sampled_from([256 << 10, 64, 1000]))
def test_mutations_never_raise(tmp_path_factory: pytest.TempPathFactory, flips: list[tuple[int, int]],
                               cut: int | None, block: int) -> None:
    data = bytearray(sample(tmp_path_factory))
    for at, bits in flips:
        data[at % len(data)] ^= bits
    if cut is not None:
        del data[cut % len(data):]
    original = tb.BLOCK_BYTES
    tb.BLOCK_BYTES = block
    try:
        series = tb.read_event_file(io.BytesIO(bytes(data)), "events.out.tfevents.x")
    finally:
        tb.BLOCK_BYTES = original
    assert series.count <= 120 + len(flips)
    assert len(series.steps) == len(series.losses) == len(series.epochs) == len(series.lines)
    if not flips and cut is None:
        assert series.count == 120 and not series.bad_lines
    elif flips and cut is None:  # a flip changes a record, which its CRC must reveal, or lands in a CRC field
        assert series.bad_count >= 1 or series.count == 120
    assert all(b > a for a, b in zip(series.lines, series.lines[1:], strict=False))


def test_reads_large_records_by_chunked_crc(tmp_path: Path) -> None:
    import numpy as np

    def log(w: Any) -> None:
        w.add_scalar("loss", 1.0, 1)
        w.add_histogram("weights", np.random.default_rng(0).normal(size=20_000), 1, bins=2000)
        w.add_text("notes", "x" * 9000, 1)
        w.add_scalar("loss", 0.5, 2)

    root, rel = write(tmp_path, log)
    assert max(len(b) for _, b in records((root / rel).read_bytes())) > 4 * tb.LANE_MAX
    series = read(root, rel)
    assert list(series.losses) == [1.0, 0.5] and not series.bad_lines
    data = bytearray((root / rel).read_bytes())
    off, body = max(records(bytes(data)), key=lambda r: len(r[1]))
    data[off + 12 + len(body) // 2] ^= 1
    (root / rel).write_bytes(bytes(data))
    assert read(root, rel).bad_lines == [(off, "record data CRC mismatch")]


def test_never_reads_a_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, rel = write(tmp_path, lightning_like(300))
    monkeypatch.setattr(tb, "BLOCK_BYTES", 2048)
    sizes: list[int] = []

    class Spy(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            sizes.append(-1 if size is None else size)
            return super().read(size)

    series = tb.read_event_file(Spy((root / rel).read_bytes()), rel)
    assert series.count == 300 and max(sizes) == 2048 and os.path.getsize(root / rel) > 10 * 2048
