"""The one metrics reader. Sources, best first: training_output/metrics.jsonl (streamed; HF `on_log`
shape or `{"step", "loss", "metrics": {...}}`), the newest HF trainer_state.json `log_history`, or the
dicts HF Trainer prints into the training log. NaN/Infinity literals are accepted and flagged."""

from __future__ import annotations

import json
import math
import re
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_KEPT = 10
# Keys only the trainer's end-of-training record carries (its `train_loss` is a run average, not a curve point).
FINAL_MARKERS = frozenset(("train_runtime", "train_samples_per_second", "train_steps_per_second"))
_LOG_DICT = re.compile(r"\{'[A-Za-z_][A-Za-z0-9_/]*': [^{}]*\}")
_BARE = re.compile(r"(?<![\w\"])(nan|-?inf|True|False|None)(?![\w\"])")
_BARE_JSON = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity", "True": "true", "False": "false",
              "None": "null"}
_PROGRESS = re.compile(r"(?<![\d/])(\d+)/(\d+) \[")


def as_float(value: Any) -> float | None:
    """A number from a JSON value (numbers, numeric strings, 'nan'); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def as_int(value: Any) -> int | None:
    """An integer from a JSON value, when it is integral."""
    number = as_float(value)
    if number is None or not math.isfinite(number) or number != int(number):
        return None
    return int(number)


@dataclass
class FinalRecord:
    """The trainer's end-of-training record (train_runtime, samples/s, run-average train_loss)."""

    values: dict[str, float]
    path: str
    line: int | None
    step: int | None = None


@dataclass
class MetricsSeries:
    """Loss points from one source, stored compactly so a million records stay small."""

    path: str
    kind: str
    steps: array = field(default_factory=lambda: array("q"))
    losses: array = field(default_factory=lambda: array("d"))
    epochs: array = field(default_factory=lambda: array("d"))
    lines: array = field(default_factory=lambda: array("q"))
    records: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    bad_count: int = 0
    nonfinite: list[tuple[int, int, float]] = field(default_factory=list)
    nonfinite_count: int = 0
    grad_nonfinite: list[tuple[int, float]] = field(default_factory=list)
    grad_nonfinite_count: int = 0
    final: FinalRecord | None = None
    max_step: int | None = None
    steps_inferred: bool = False
    plan_max_steps: int | None = None

    @property
    def count(self) -> int:
        """Number of loss points."""
        return len(self.losses)

    def line_of(self, index: int) -> int | None:
        """1-based line of loss point `index`, None where the source has no lines."""
        line = self.lines[index]
        return line if line > 0 else None

    def step_of(self, index: int) -> int | None:
        """Step of loss point `index`, None where unknown."""
        step = self.steps[index]
        return step if step >= 0 else None

    def _bad(self, line: int, reason: str) -> None:
        self.bad_count += 1
        if len(self.bad_lines) < MAX_KEPT:
            self.bad_lines.append((line, reason))

    def add(self, record: dict[str, Any], line: int) -> None:
        """Take one parsed record (already flattened). Kept lean: it runs once per metrics line."""
        self.records += 1
        step = record.get("step")
        if type(step) is not int:
            step = as_int(record.get("global_step") if step is None else step)
        if step is not None and (self.max_step is None or step > self.max_step):
            self.max_step = step
        if not FINAL_MARKERS.isdisjoint(record):
            values = {k: v for k, v in ((k, as_float(record.get(k))) for k in record) if v is not None}
            self.final = FinalRecord(values=values, path=self.path, line=line if line > 0 else None, step=step)
            return
        grad = record.get("grad_norm")
        if grad is not None:
            if type(grad) is not float:
                grad = as_float(grad)
            if grad is not None and not math.isfinite(grad):
                self.grad_nonfinite_count += 1
                if len(self.grad_nonfinite) < MAX_KEPT:
                    self.grad_nonfinite.append((line, grad))
        if "loss" not in record:
            return
        loss = record["loss"]
        if type(loss) is not float:
            loss = as_float(loss)
            if loss is None:
                self._bad(line, f"loss is not a number: {str(record['loss'])[:40]!r}")
                return
        if not math.isfinite(loss):
            self.nonfinite_count += 1
            if len(self.nonfinite) < MAX_KEPT:
                self.nonfinite.append((line, -1 if step is None else step, loss))
        epoch = record.get("epoch")
        if type(epoch) is not float:
            epoch = as_float(epoch)
        self.steps.append(-1 if step is None else step)
        self.losses.append(loss)
        self.epochs.append(math.nan if epoch is None else epoch)
        self.lines.append(line)


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """Merge a nested `metrics` mapping into the record (the team format nests trainer figures)."""
    nested = record.get("metrics")
    if isinstance(nested, dict):
        merged = dict(nested)
        merged.update({k: v for k, v in record.items() if k != "metrics"})
        return merged
    return record


CHUNK_LINES = 20_000


def _parse_chunk(series: MetricsSeries, chunk: list[tuple[int, bytes | None]]) -> None:
    """Parse a chunk of lines with one json.loads call; only a chunk holding a bad line is parsed line by line
    (to name that line). Entries with no bytes were rejected up front; they are reported in line order."""
    good = [raw for _, raw in chunk if raw is not None]
    records: list[Any] | None
    try:
        records = json.loads(b"[" + b",".join(good) + b"]")
    except (ValueError, UnicodeDecodeError, RecursionError):
        records = None
    parsed = iter(records) if records is not None and len(records) == len(good) else None
    for number, raw in chunk:
        if raw is None:
            series._bad(number, "not a JSON object")
            continue
        if parsed is not None:
            record = next(parsed)
        else:
            try:
                record = json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                series._bad(number, "not valid JSON")
                continue
        if type(record) is not dict:
            series._bad(number, "not a JSON object")
        else:
            series.add(flatten(record) if "metrics" in record else record, number)


def read_jsonl(path: Path, name: str) -> MetricsSeries:
    """Stream a metrics.jsonl file in chunks (memory bounded by the chunk); bad lines are counted by number."""
    series = MetricsSeries(path=name, kind="metrics.jsonl")
    chunk: list[tuple[int, bytes | None]] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            stripped = raw.strip()
            if not stripped:
                continue
            chunk.append((number, stripped if stripped[:1] == b"{" and b"\x00" not in stripped else None))
            if len(chunk) >= CHUNK_LINES:
                _parse_chunk(series, chunk)
                chunk = []
    if chunk:
        _parse_chunk(series, chunk)
    return series


def read_trainer_state(path: Path, name: str) -> tuple[MetricsSeries, int | None]:
    """Loss points from an HF trainer_state.json `log_history`, and its `max_steps` (a plan)."""
    series = MetricsSeries(path=name, kind="trainer_state")
    try:
        state = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        series._bad(1, "trainer_state.json is not valid JSON")
        return series, None
    if not isinstance(state, dict):
        series._bad(1, "trainer_state.json is not a JSON object")
        return series, None
    history = state.get("log_history")
    for record in history if isinstance(history, list) else []:
        if isinstance(record, dict):
            series.add(record, 0)
    global_step = as_int(state.get("global_step"))
    if global_step is not None and (series.max_step is None or global_step > series.max_step):
        series.max_step = global_step
    series.plan_max_steps = as_int(state.get("max_steps"))
    return series, series.plan_max_steps


def _log_dict(fragment: str) -> dict[str, Any] | None:
    text = _BARE.sub(lambda m: _BARE_JSON[m.group(1)], fragment.replace("'", '"'))
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Progress:
    """The furthest tqdm progress seen in a log: `138/138 [`."""

    done: int
    total: int
    line: int


def last_progress(lines: Iterable[str]) -> Progress | None:
    """The furthest `n/N [` progress-bar position in a log (for the step count when nothing else has it)."""
    best: Progress | None = None
    for number, line in enumerate(lines, start=1):
        if "/" not in line or "[" not in line:
            continue
        for match in _PROGRESS.finditer(line):
            done, total = int(match.group(1)), int(match.group(2))
            if total == 0 or done > total:
                continue
            if best is None or (done, total) >= (best.done, best.total):
                best = Progress(done, total, number)
    return best


def iter_log_dicts(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The `{'loss': ..., 'epoch': ...}` dicts HF Trainer prints, with their 1-based lines."""
    for number, line in enumerate(lines, start=1):
        if "{'" not in line:
            continue
        for match in _LOG_DICT.finditer(line):
            record = _log_dict(match.group(0))
            if record is not None:
                yield number, record


def read_log_dicts(lines: tuple[str, ...], name: str, total_steps: int | None) -> MetricsSeries:
    """Loss points from printed dicts. HF prints no step: for a run that finished, steps are inferred from the
    logging interval (the interval k with floor(total/k) == number of dicts that best fits the printed epochs)."""
    series = MetricsSeries(path=name, kind="log")
    for number, record in iter_log_dicts(lines):
        series.add(record, number)
    if series.count and all(s < 0 for s in series.steps):
        _infer_steps(series, total_steps)
    return series


def _infer_steps(series: MetricsSeries, total_steps: int | None) -> None:
    n = series.count
    # Counting dicts into a planned total only holds for a run that ended normally (final record printed);
    # a killed run printed fewer dicts and its steps stay unknown.
    if total_steps is None or series.final is None:
        return
    final_epoch = series.final.values.get("epoch") if series.final else None
    per_epoch = total_steps / final_epoch if final_epoch else None
    candidates = [k for k in range(1, total_steps + 1) if total_steps // k == n]

    def misfit(interval: int) -> float:
        if per_epoch is None:
            return 0.0
        errors = [abs((i + 1) * interval / per_epoch - e) for i, e in enumerate(series.epochs) if e == e]
        return max(errors, default=0.0)

    if not candidates:
        return
    best = min(candidates, key=misfit)
    tolerance = 0.011 + (1.0 / per_epoch if per_epoch else 0.0)
    if per_epoch is None and len(candidates) > 1:
        return
    if misfit(best) > tolerance:
        return
    for i in range(n):
        series.steps[i] = (i + 1) * best
    series.max_step = max(series.max_step or 0, n * best)
    series.steps_inferred = True
