"""The one metrics reader. Sources, best first: training_output/metrics.jsonl (streamed; HF `on_log`
shape or `{"step", "loss", "metrics": {...}}`), the newest HF trainer_state.json `log_history`, or the
dicts HF Trainer prints into the training log. NaN/Infinity literals are accepted and flagged."""

from __future__ import annotations

import functools
import itertools
import math
import os
import re
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from auditor.evidence.jsonload import load_json
from auditor.evidence.opener import LINE_BYTES, OVERLONG_LINE, open_file, read_json_file

MAX_KEPT = 10
STEP_LIMIT = 1 << 63  # steps are 64-bit counters in every trainer
MAX_INTERVALS = 100_000  # logging intervals infer_steps weighs
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
    try:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
    except (ValueError, OverflowError):  # not a number, or an integer beyond any float
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


@dataclass(frozen=True)
class SourceOutcome:
    """How a run ended according to a metrics source that records it (MLPerf `run_stop` status, a notebook's
    error output): `succeeded` False is a failure the source itself reports, at `line` (or byte offset)."""

    status: str
    succeeded: bool
    line: int | None = None
    detail: str = ""


@dataclass
class MetricsSeries:
    """Loss points from one source, stored compactly so a million records stay small. Besides the loss curve a
    source may record the plan it declares (Plan field names), hyper-parameters, the commit, the last value of
    each evaluation metric, facts about the run (hardware, seed) and the outcome it reports."""

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
    fast_keys: set[str] = field(default_factory=set)
    fast_strings: bool = False
    # lines that were not matched as numbers-only records, kept (bounded) for the credential scan
    other_lines: list[tuple[int, bytes]] = field(default_factory=list)
    other_bytes: int = 0
    # what bad_lines' and lines' numbers count: "line" (1-based), "byte" (offset in a binary file), "record"
    position: str = "line"
    rule: str | None = None  # the named rule that read a printed log
    plan: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    commit: str | None = None
    evals: dict[str, float] = field(default_factory=dict)
    eval_count: int = 0
    facts: dict[str, str] = field(default_factory=dict)
    outcome: SourceOutcome | None = None
    # the independent run this series belongs to, where a folder holds several (an MLPerf result_N.txt, an MLflow
    # run id); None: the folder's one run. Sources of different runs are not cross-checked against each other.
    run: str | None = None
    failures_allowed: int = 0  # of a set of independent runs, how many may fail (MLPerf drops one)
    needs_checkpoint: bool = True  # False where the format's evidence never includes weights (MLPerf results)
    grad_count: int = 0  # records with a grad_norm
    grad_last_finite: bool = True  # whether the last grad_norm logged was finite (training went on past overflows)

    def at(self, number: int | None) -> str:
        """`path:line`, `path (byte N)` or `path (record N)` for a position in this source."""
        if not number or number <= 0:
            return self.path
        if self.position == "line":
            return f"{self.path}:{number}"
        return f"{self.path} ({self.position} {number})"

    @property
    def max_epoch(self) -> float | None:
        """The furthest epoch logged with a loss point (NaN marks an unknown epoch)."""
        if not math.isnan(sum(self.epochs)):  # no unknown epoch: max() over the array is exact
            return max(self.epochs, default=None)
        return max((e for e in self.epochs if not math.isnan(e)), default=None)

    def free_text(self) -> list[tuple[int, str]] | None:
        """The lines that can hold free text (1-based line, text) when the rest of the file is numbers-only
        records under `fast_keys` (the key names come first, as line 0); None when the whole file must be
        read for that (string values, too many other lines, or nothing matched as records)."""
        if self.fast_strings or not self.fast_keys or self.other_bytes > MAX_OTHER_BYTES:
            return None
        keys = (0, " ".join(sorted(self.fast_keys)))
        return [keys, *((n, raw.decode("utf-8", errors="replace")) for n, raw in self.other_lines)]

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

    def merge(self, later: MetricsSeries) -> None:
        """Append the series read from the part of the same file that follows this one."""
        for name in ("steps", "losses", "epochs", "lines"):
            getattr(self, name).extend(getattr(later, name))
        self.records += later.records
        self.bad_lines = (self.bad_lines + later.bad_lines)[:MAX_KEPT]
        self.bad_count += later.bad_count
        self.nonfinite = (self.nonfinite + later.nonfinite)[:MAX_KEPT]
        self.nonfinite_count += later.nonfinite_count
        self.grad_nonfinite = (self.grad_nonfinite + later.grad_nonfinite)[:MAX_KEPT]
        self.grad_nonfinite_count += later.grad_nonfinite_count
        if later.grad_count:
            self.grad_last_finite = later.grad_last_finite
        self.grad_count += later.grad_count
        self.evals.update(later.evals)
        self.eval_count += later.eval_count
        self.final = later.final or self.final
        if later.max_step is not None and (self.max_step is None or later.max_step > self.max_step):
            self.max_step = later.max_step
        if self.other_bytes <= MAX_OTHER_BYTES:
            self.other_lines.extend(later.other_lines)
        self.other_bytes += later.other_bytes
        self.fast_keys |= later.fast_keys
        self.fast_strings = self.fast_strings or later.fast_strings

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
        if step is not None and not -STEP_LIMIT <= step < STEP_LIMIT:
            self._bad(line, f"step {str(step)[:20]}... is beyond a 64-bit step counter")
            return
        if step is not None and (self.max_step is None or step > self.max_step):
            self.max_step = step
        if not FINAL_MARKERS.isdisjoint(record):
            values = {k: v for k, v in ((k, as_float(record.get(k))) for k in record) if v is not None}
            self.final = FinalRecord(values=values, path=self.path, line=line if line > 0 else None, step=step)
            return
        evals = [k for k in record if k.startswith(("eval_", "val_", "test_"))] if "loss" not in record else ()
        if evals:  # an evaluation record (HF's eval_loss, Lightning's val_loss): its figures, last one kept
            figures = {k: v for k, v in ((k, as_float(record[k])) for k in evals) if v is not None}
            if figures:
                self.evals.update(figures)
                self.eval_count += 1
        grad = record.get("grad_norm")
        if grad is not None:
            if type(grad) is not float:
                grad = as_float(grad)
            self.grad_count += 1
            self.grad_last_finite = grad is None or math.isfinite(grad)
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
BLOCK_BYTES = 1 << 22
MAX_OTHER_BYTES = 8 << 20  # lines kept for the credential scan; beyond this it reads the whole file
PARALLEL_BYTES = 32 << 20  # per extra process: below this, starting one costs more than it saves
# The fast path: a block's lines that share one flat layout (the same keys in the same order with the same
# separators; numbers, plain strings, booleans, null) are matched and split by one regex, and only step, loss
# and epoch are converted, in bulk. Anything else (an eval record, a corrupt or truncated line, NaN, Infinity,
# nesting, escapes, other spacing) falls back to json.loads line by line, in file order. Numbers are matched
# loosely (digits, '.', exponent) for speed: captured values must still convert with int()/float() and be
# finite or the block falls back; other numeric fields are only checked for that character set.
_INT = rb"-?[0-9]+"
_NUMBER = rb"-?[0-9][0-9.eE+-]*"
_VALUE = {"int": _INT, "number": _NUMBER, "string": rb'"[^"\\\x00-\x1f]*"', "bool": rb"(?:true|false)",
          "null": rb"null"}
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_./-]+\Z")
_CAPTURED = ("step", "loss", "epoch", "grad_norm")


@dataclass(frozen=True)
class LineShape:
    """One flat record layout, compiled into a regex that matches exactly the lines of that layout."""

    pattern: re.Pattern[bytes]
    groups: tuple[str, ...]
    keys: tuple[str, ...]
    has_strings: bool


def _kind(key: str, value: Any) -> str | None:
    if key == "step":
        return "int" if type(value) is int else None
    if type(value) in (int, float):
        return "number"
    if key in _CAPTURED:
        return None
    if type(value) is bool:
        return "bool"
    if value is None:
        return "null"
    if type(value) is str and '"' not in value and "\\" not in value and value.isprintable():
        return "string"
    return None


@functools.lru_cache(maxsize=64)
def _compile_shape(signature: tuple[tuple[str, str], ...], item_sep: bytes, key_sep: bytes, eol: bytes) -> LineShape:
    parts, groups = [], []
    for key, kind in signature:
        value = _VALUE[kind]
        if key in _CAPTURED:
            value = b"(" + value + b")"
            groups.append(key)
        parts.append(re.escape(f'"{key}"{key_sep.decode()}').encode() + value)
    pattern = re.compile(rb"\{" + re.escape(item_sep).join(parts) + rb"\}" + re.escape(eol))
    return LineShape(pattern, tuple(groups), tuple(k for k, _ in signature), any(k == "string" for _, k in signature))


def line_shape(raw: bytes) -> LineShape | None:
    """The fast-path layout of one line holding a plain training record (flat, integer step, a loss, no final
    markers), else None."""
    try:
        record = load_json(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if type(record) is not dict or "loss" not in record or "step" not in record or "metrics" in record:
        return None
    if not FINAL_MARKERS.isdisjoint(record):
        return None
    signature = []
    for key, value in record.items():
        kind = _kind(key, value) if _PLAIN_KEY.match(key) else None
        if kind is None:
            return None
        signature.append((key, kind))
    item_sep = b", " if b', "' in raw else b","
    key_sep = b": " if b'": ' in raw else b":"
    return _compile_shape(tuple(signature), item_sep, key_sep, b"\r\n" if raw.endswith(b"\r") else b"\n")


def _block_shape(block: bytes) -> LineShape | None:
    """The shape of the first of a block's opening lines that is a plain training record."""
    start = 0
    for _ in range(8):
        end = block.find(b"\n", start)
        if end == -1:
            return None
        shape = line_shape(block[start:end])
        if shape is not None:
            return shape
        start = end + 1
    return None


def _parse_chunk(series: MetricsSeries, chunk: list[tuple[int, bytes | None]]) -> None:
    """Parse a chunk of lines with one json.loads call; only a chunk holding a bad line is parsed line by line
    (to name that line). Entries with no bytes were rejected up front; they are reported in line order."""
    good = [raw for _, raw in chunk if raw is not None]
    records: list[Any] | None
    try:
        records = load_json(b"[" + b",".join(good) + b"]")
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
                record = load_json(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                series._bad(number, "not valid JSON")
                continue
        if type(record) is not dict:
            series._bad(number, "not a JSON object")
        else:
            series.add(flatten(record) if "metrics" in record else record, number)


def _slow_lines(series: MetricsSeries, text: bytes, first: int) -> int:
    """Parse whole lines one by one (json.loads); returns the next line number."""
    lines = text.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    chunk: list[tuple[int, bytes | None]] = []
    for number, raw in enumerate(lines, start=first):
        stripped = raw.strip()
        if stripped:
            chunk.append((number, stripped if stripped[:1] == b"{" and b"\x00" not in stripped else None))
            if len(chunk) >= CHUNK_LINES:
                _parse_chunk(series, chunk)
                chunk = []
            if series.other_bytes <= MAX_OTHER_BYTES:  # kept for the credential scan
                series.other_lines.append((number, raw))
                series.other_bytes += len(raw)
    if chunk:
        _parse_chunk(series, chunk)
    return first + len(lines)


def _columns(shape: LineShape, parts: list[bytes], start: int, stop: int) -> tuple[array, array, array] | None:
    """Steps, losses and epochs of matches start..stop-1 of a split block; None when a value does not convert
    or a loss is not finite (the slow path then reads and reports those lines)."""
    stride = len(shape.groups) + 1
    column = {key: parts[start * stride + 1 + i: stop * stride: stride] for i, key in enumerate(shape.groups)}
    try:
        steps = array("q", map(int, column["step"]))
        losses = array("d", map(float, column["loss"]))
        epochs = column.get("epoch")
        epoch_values = array("d", map(float, epochs)) if epochs is not None else array("d", [math.nan]) * len(steps)
        grads = array("d", map(float, column["grad_norm"])) if "grad_norm" in column else None
    except (ValueError, OverflowError):
        return None
    if steps and not (math.isfinite(max(losses)) and math.isfinite(min(losses))):
        return None
    if grads and not (math.isfinite(max(grads)) and math.isfinite(min(grads))):  # `1e999` is inf: read slowly
        return None
    return steps, losses, epoch_values


def _fast_run(series: MetricsSeries, shape: LineShape, columns: tuple[array, array, array], line: int) -> None:
    """Append a run of fast-path records (consecutive lines from `line`) in bulk."""
    steps, losses, epochs = columns
    count = len(steps)
    if count == 0:
        return
    series.steps.extend(steps)
    series.losses.extend(losses)
    series.epochs.extend(epochs)
    series.lines.extend(array("q", range(line, line + count)))
    series.records += count
    if "grad_norm" in shape.groups:
        series.grad_count += count
        series.grad_last_finite = True
    top = max(steps)
    if series.max_step is None or top > series.max_step:
        series.max_step = top
    series.fast_keys.update(shape.keys)
    series.fast_strings = series.fast_strings or shape.has_strings


def _read_block(series: MetricsSeries, block: bytes, line: int) -> int:
    """Read a block of whole lines starting at 1-based `line`; returns the next line number."""
    shape = _block_shape(block)
    if shape is None:
        return _slow_lines(series, block, line)
    parts = shape.pattern.split(block)
    between = parts[0 :: len(shape.groups) + 1]  # text before match k (k < m), and after the last match (k == m)
    matches = len(between) - 1
    runs: list[tuple[int, int]] = []  # (first match, end match) of each run of consecutive fast lines
    done = 0
    for k in [k for k, text in enumerate(between[:-1]) if text] if any(between) else []:
        if not between[k].endswith(b"\n"):
            return _slow_lines(series, block, line)  # a match began mid-line: that line is not a record
        runs.append((done, k))
        done = k
    runs.append((done, matches))  # the last run ends with the text after the last match
    columns = [_columns(shape, parts, a, b) for a, b in runs]
    if any(c is None for c in columns):
        return _slow_lines(series, block, line)
    for (a, b), column in zip(runs, columns, strict=True):
        if column is not None:
            _fast_run(series, shape, column, line)
        line += b - a
        if b < matches or between[b]:
            line = _slow_lines(series, between[b], line)
    return line


def read_lines(data: bytes, name: str, first_line: int = 1) -> MetricsSeries:
    """The loss points in whole metrics.jsonl lines already in memory (a tail read while the run is going)."""
    series = MetricsSeries(path=name, kind="metrics.jsonl")
    if data:
        _read_block(series, data if data.endswith(b"\n") else data + b"\n", first_line)
    return series


def _line_blocks(handle: BinaryIO, left: int | None = None) -> Iterator[bytes]:
    """Blocks of whole lines from `handle` (the next `left` bytes, or to the end); each ends with a newline but
    the last one, when the data does not. Memory is bounded by the block size (and the longest line)."""
    carry = b""
    remaining = left

    def read() -> bytes:
        nonlocal remaining
        if remaining is not None and remaining <= 0:
            return b""
        data = handle.read(BLOCK_BYTES if remaining is None else min(BLOCK_BYTES, remaining))
        if remaining is not None:
            remaining -= len(data)
        return data

    while data := read():
        block = carry + data
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            carry = block
            if len(carry) > LINE_BYTES:  # one line longer than the limit: skipped to its end, counted as bad
                carry = OVERLONG_LINE
                while rest := read():
                    end = rest.find(b"\n")
                    if end >= 0:
                        carry += rest[end:]
                        break
            continue
        yield block[:cut]
        carry = block[cut:]
    if carry:
        yield carry


def _read_range(path: Path, name: str, start: int, end: int) -> MetricsSeries:
    """Read bytes start..end of a metrics.jsonl (both on line starts) in blocks; memory bounded by the block."""
    series = MetricsSeries(path=name, kind="metrics.jsonl")
    with open_file(path, name) as handle:
        line = 1
        while handle.tell() < start:  # number this range's lines after those before it
            skipped = handle.read(min(BLOCK_BYTES, start - handle.tell()))
            if not skipped:
                return series
            line += skipped.count(b"\n")
        for i, block in enumerate(_line_blocks(handle, end - start)):
            if i == 0 and start == 0:  # the file's first bytes: a UTF-8 BOM is not part of the first record
                block = block.removeprefix(b"\xef\xbb\xbf")
            line = _read_block(series, block if block.endswith(b"\n") else block + b"\n", line)
    return series


def _line_starts(path: Path, size: int, parts: int) -> list[int]:
    """Byte offsets cutting the file into `parts` ranges of whole lines: [0, ..., size]."""
    cuts = [0]
    with open_file(path) as handle:
        for i in range(1, parts):
            handle.seek(max(size * i // parts, cuts[-1]))
            line = handle.readline(LINE_BYTES)  # bounded: a 2 GiB line is not read to find its end
            if line.endswith(b"\n"):
                cuts.append(min(handle.tell(), size))
            # else no line ends near here: no cut, the range before reads (and skips) the overlong line
    cuts.append(size)
    return sorted(set(cuts))


def read_jsonl(path: Path, name: str) -> MetricsSeries:
    """Read a metrics.jsonl: streamed in blocks; a large file is cut into ranges of whole lines read by one
    process per core (regex and float parsing hold the GIL), merged in file order."""
    with open_file(path, name) as handle:  # a FIFO or a link is refused here, before any read
        size = os.fstat(handle.fileno()).st_size
    parts = max(1, min(os.cpu_count() or 1, size // PARALLEL_BYTES))
    if parts == 1:
        return _read_range(path, name, 0, size)
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    cuts = _line_starts(path, size, parts)
    ranges = list(itertools.pairwise(cuts))
    if len(ranges) == 1:  # no line ended where the file could be cut (one overlong line): one process
        return _read_range(path, name, 0, size)
    try:
        pool = ProcessPoolExecutor(parts - 1, mp_context=multiprocessing.get_context("spawn"))
    except (OSError, ImportError, NotImplementedError, ValueError):  # no process support here: one process
        return _read_range(path, name, 0, size)
    with pool:
        futures = [pool.submit(_read_range, path, name, a, b) for a, b in ranges[1:]]
        series = _read_range(path, name, *ranges[0])
        for (a, b), future in zip(ranges[1:], futures, strict=True):
            try:
                part = future.result()
            except (BrokenProcessPool, OSError, pickle.PicklingError):
                part = _read_range(path, name, a, b)
            series.merge(part)
    return series


def read_trainer_state(path: Path, name: str) -> tuple[MetricsSeries, int | None]:
    """Loss points from an HF trainer_state.json `log_history`, and its `max_steps` (a plan)."""
    series = MetricsSeries(path=name, kind="trainer_state")
    try:
        state = read_json_file(path, name)
    except (OSError, ValueError) as exc:
        series._bad(1, f"trainer_state.json {getattr(exc, 'msg', None) or exc}")
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
        value = load_json(text)
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
            if len(match.group(1)) > 18 or len(match.group(2)) > 18:  # no bar counts beyond a 64-bit step
                continue
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
        infer_steps(series, total_steps)
    return series


def infer_steps(series: MetricsSeries, total_steps: int | None) -> None:
    """Steps of printed HF dicts from the planned total, when one interval fits their count and epochs."""
    n = series.count
    # Counting dicts into a planned total only holds for a run that ended normally (final record printed);
    # a killed run printed fewer dicts and its steps stay unknown.
    if total_steps is None or series.final is None:
        return
    final_epoch = series.final.values.get("epoch") if series.final else None
    per_epoch = total_steps / final_epoch if final_epoch else None
    # the intervals k with total // k == n: (total // (n + 1), total // n]; a span wider than MAX_INTERVALS
    # (a handful of dicts against an absurd total) fits nothing worth choosing
    low, high = total_steps // (n + 1) + 1, total_steps // n
    if total_steps <= 0 or high - low > MAX_INTERVALS:
        return
    candidates = list(range(max(1, low), high + 1))

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


def records_at(path: Path, kind: str, wanted: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The whole (flattened) records on some 1-based lines of a metrics source, for the columns the series does not
    keep (learning rate, grad norm). Blocks are scanned by counting newlines, and only a block holding a wanted
    line is split, so a million-line file costs about one read. Lines that hold no record are left out;
    trainer_state.json has no lines."""
    targets = sorted({line for line in wanted if line > 0})
    if not targets or kind not in ("metrics.jsonl", "log"):
        return {}
    out: dict[int, dict[str, Any]] = {}
    first_line, next_target = 1, 0
    with open_file(path) as handle:
        for block in _line_blocks(handle):
            count = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
            if targets[next_target] < first_line + count:
                lines = block.split(b"\n")
                while next_target < len(targets) and targets[next_target] < first_line + count:
                    record = _record_of(lines[targets[next_target] - first_line], kind)
                    if record is not None:
                        out[targets[next_target]] = record
                    next_target += 1
                if next_target == len(targets):
                    break
            first_line += count
    return out


def _record_of(raw: bytes, kind: str) -> dict[str, Any] | None:
    text = raw.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if kind == "log":
        found = [record for _, record in iter_log_dicts([text]) if "loss" in record]
        return flatten(found[0]) if found else None
    try:
        record = load_json(text)
    except (ValueError, RecursionError):
        return None
    return flatten(record) if isinstance(record, dict) else None
