"""The metrics.jsonl reader's fast paths (one regex per line layout, one process per core for big files) must
read exactly what parsing every line with json.loads reads: same points, same lines, same flagged lines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.evidence import metrics
from auditor.evidence.metrics import MetricsSeries, read_jsonl

KEYS = ["step", "loss", "learning_rate", "epoch", "grad_norm", "run", "ok", "note", "eval_loss"]
numbers = st.one_of(st.integers(-10**6, 10**12), st.floats(allow_nan=True, allow_infinity=True, width=64))
values = st.one_of(numbers, st.text(max_size=12), st.booleans(), st.none())


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """A line as training code writes it: json.dumps of a dict (any key order, separators, spacing)."""
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, min_size=1, max_size=6))
    record = {k: draw(st.integers(0, 10**7) if k == "step" else numbers if k in ("loss", "epoch") else values)
              for k in keys}
    compact = draw(st.booleans())
    line = json.dumps(record, separators=(",", ":") if compact else None, ensure_ascii=draw(st.booleans()))
    return line.encode()


@st.composite
def files(draw: st.DrawFn) -> bytes:
    """Mostly lines of one layout (the fast path), with eval records, corrupt, truncated and blank lines."""
    layout = draw(st.lists(st.sampled_from(["learning_rate", "epoch", "grad_norm", "run"]), unique=True))
    base = []
    for _ in range(draw(st.integers(0, 40))):
        record = {"step": draw(st.integers(0, 10**6)), "loss": draw(numbers)}
        record.update({k: draw(st.text(max_size=5) if k == "run" else numbers) for k in layout})
        base.append(json.dumps(record).encode())
    noise = st.one_of(records(), st.binary(max_size=30), st.just(b""), st.just(b"   "),
                      records().map(lambda r: r[: len(r) // 2]), records().map(lambda r: r + b"{" + r))
    lines = base + draw(st.lists(noise, max_size=8))
    order = draw(st.permutations(range(len(lines))))
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    body = eol.join(lines[i] for i in order)
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + body + (eol if draw(st.booleans()) else b"")


def reference(data: bytes) -> MetricsSeries:
    """Every line through json.loads, one by one (the reader's slow path alone)."""
    series = MetricsSeries(path="m", kind="metrics.jsonl")
    metrics._slow_lines(series, data.removeprefix(b"\xef\xbb\xbf") + b"\n", 1)
    return series


def same(a: MetricsSeries, b: MetricsSeries) -> None:
    def floats(values: object) -> list[object]:
        return ["nan" if math.isnan(v) else v for v in values]  # type: ignore[attr-defined]

    assert list(a.steps) == list(b.steps)
    assert floats(a.losses) == floats(b.losses)
    assert floats(a.epochs) == floats(b.epochs)
    assert list(a.lines) == list(b.lines)
    assert (a.records, a.bad_count, a.bad_lines) == (b.records, b.bad_count, b.bad_lines)
    assert (a.nonfinite_count, floats(v for *_, v in a.nonfinite)) == (
        b.nonfinite_count, floats(v for *_, v in b.nonfinite))
    assert (a.grad_nonfinite_count, a.max_step) == (b.grad_nonfinite_count, b.max_step)
    assert (a.final and a.final.values.keys()) == (b.final and b.final.values.keys())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=files())
def test_fast_path_reads_what_json_loads_reads(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(data)
    same(read_jsonl(path, "m"), reference(data))


@settings(max_examples=200, deadline=None)
@given(data=files(), block=st.integers(1, 64), extra=st.lists(st.integers(1, 60), max_size=5))
def test_records_at_returns_the_records_on_those_lines(data: bytes, block: int, extra: list[int]) -> None:
    """The summary's extra columns (learning rate): whole records fetched by line number, in small blocks so lines
    straddle them, equal json.loads of those lines."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "metrics.jsonl"
        path.write_bytes(data)
        series = read_jsonl(path, "m")
        wanted = [line for line in series.lines if line > 0] + extra
        original = metrics.BLOCK_BYTES
        metrics.BLOCK_BYTES = block
        try:
            got = metrics.records_at(path, "metrics.jsonl", wanted)
        finally:
            metrics.BLOCK_BYTES = original
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    expected = {}
    for line in set(wanted):
        try:
            record = json.loads(lines[line - 1]) if line <= len(lines) else None
        except (ValueError, UnicodeDecodeError):
            record = None
        if isinstance(record, dict):
            expected[line] = metrics.flatten(record)
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_free_text_is_every_line_not_matched_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": i, "loss": 1.0 / i, "epoch": i / 10}) for i in range(1, 50)]
    lines.insert(10, json.dumps({"eval_loss": 0.5, "step": 10, "token": "hf_abc"}))
    path.write_text("\n".join(lines) + "\n")
    series = read_jsonl(path, "m")
    assert series.count == 49
    assert series.free_text() == [(0, "epoch loss step"), (11, lines[10])]
    with_text = [json.dumps({"step": i, "loss": 1.0 / i, "note": "x"}) for i in range(1, 50)]
    path.write_text("\n".join(with_text) + "\n")
    assert read_jsonl(path, "m").free_text() is None  # a layout with string values: scan the whole file


@pytest.mark.parametrize("tail", [b"", b'{"step": 7, "lo\n', b'{"step": 9, "loss": NaN}\n'])
def test_parallel_ranges_merge_in_file_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tail: bytes) -> None:
    """Real worker processes (spawned) read ranges of a file; merged, they equal one sequential read."""
    lines = []
    for i in range(1, 3001):
        record = {"step": i, "loss": 3 - i / 1000, "learning_rate": 1e-4, "epoch": i / 3000}
        if i % 97 == 0:
            record = {"eval_loss": 2.5, "step": i}
        lines.append(json.dumps(record).encode() + b"\n")
    lines.insert(1500, tail)
    data = b"".join(lines)
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(data)
    sequential = read_jsonl(path, "m")
    monkeypatch.setattr(metrics, "PARALLEL_BYTES", len(data) // 3)
    monkeypatch.setattr(metrics.os, "cpu_count", lambda: 3)
    parallel = read_jsonl(path, "m")
    same(parallel, sequential)
    same(parallel, reference(data))
    assert parallel.count == 3000 - 3000 // 97 + tail.count(b'"loss": NaN')
    assert parallel.bad_count == tail.count(b'"lo\n')
