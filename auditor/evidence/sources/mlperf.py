"""MLPerf Training logs: the `:::MLLOG {json}` lines mlperf_logging's mllog prints, usually mixed into a job's shell
output (launcher echo, per-rank warnings, `RESULT,` lines). As mlperf_logging's own parser does, the last
`:::MLLOG ` on a line starts the record; other lines are skipped. Streamed line by line; memory is bounded.

The benchmark's quality target comes from the rules mlperf-logging ships (`compliance_checker/training_*/
closed_<benchmark>.yaml`, its eval_accuracy ATLEAST_ONE_CHECK, read as data and never evaluated) when that package
is installed, else from a built-in table for a few benchmarks; the facts say which. The package is never
imported."""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from auditor.evidence.jsonload import load_json, load_yaml
from auditor.evidence.metrics import FinalRecord, MetricsSeries, SourceOutcome, as_float, as_int
from auditor.evidence.mlperf_system import system_description
from auditor.evidence.opener import EvidenceUnreadable
from auditor.evidence.sources.interface import FormatInfo, MetricsSource, name_matches
from auditor.evidence.sources.registry import register

if TYPE_CHECKING:
    from auditor.evidence.opener import Folder

TOKEN = b":::MLLOG "
MAX_LINE = 1 << 20  # a longer line is cut there (and reported when it holds a record)
MAX_HPARAMS = 256
MAX_EVALS = 1 << 16
RECENT = 16  # identical records this close together are one event logged by several ranks

# The closed-division rules of MLPerf Training v4.0, used when mlperf-logging is not installed.
BUILTIN_RULES = {
    "resnet": "v['value'] >= 0.7590 and v['value'] < 1.0",
    "llama2_70b_lora": "(v['value'] <= 0.925) and v['value'] > 0.0",
    "gpt3": "(v['value'] <= 2.69) and v['value'] > 2.6",
}
BUILTIN_SOURCE = "built-in table (MLPerf Training v4.0 closed rules; mlperf-logging is not installed)"
# What a benchmark's progress counter counts: eval/epoch `epoch_num` in epochs (× train_samples, the dataset
# size, gives samples), `samples_count` in samples, gpt3's `epoch_num` (and its train_samples) in tokens.
PROGRESS = {"resnet": "epochs", "llama2_70b_lora": "samples", "gpt3": "tokens"}
FACT_KEYS = ("submission_benchmark", "submission_org", "submission_division", "submission_platform",
             "submission_status", "seed", "global_batch_size")
PLAN_KEYS = {"max_steps": "max_steps", "max_sequence_length": "max_seq_length", "opt_name": "optimizer",
             "gradient_accumulation_steps": "gradient_accumulation_steps", "eval_samples": "eval_examples",
             "d_batch_size": "batch_size", "micro_batch_size": "batch_size"}
NOT_HPARAMS = frozenset((*FACT_KEYS, "cache_clear", "init_start", "init_stop", "weights_initialization"))
_COMPARE = re.compile(r"v\['value'\]\s*(<=|>=|<|>)\s*(-?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)")
_GLUE = re.compile(r"\s+|\(|\)|\band\b")
_NAME = re.compile(r"[a-z0-9_]+\Z")
# A benchmark result may drop this many of its runs that failed to converge (mlperf-logging's result summarizer):
# one, except unet3d's four of 40.
FAILURES_ALLOWED = {"unet3d": 4}
_RULESET = re.compile(r"training_([0-9]+)\.([0-9]+)\.([0-9]+)\Z")


@dataclass(frozen=True)
class Target:
    """A benchmark's quality target: every comparison its rule makes on an eval_accuracy value (the first is the
    target, the others sanity bounds), which way is better, and where the rule came from."""

    benchmark: str
    checks: tuple[tuple[str, float], ...]
    source: str

    @property
    def value(self) -> float:
        """The target value."""
        return self.checks[0][1]

    @property
    def direction(self) -> str:
        """Which way a better eval_accuracy goes: "higher" or "lower"."""
        return "higher" if self.checks[0][0].startswith(">") else "lower"

    def met(self, value: float) -> bool:
        """Whether one eval_accuracy value passes every comparison of the rule."""
        ops = {"<": value.__lt__, "<=": value.__le__, ">": value.__gt__, ">=": value.__ge__}
        return math.isfinite(value) and all(ops[op](bound) for op, bound in self.checks)


def parse_rule(benchmark: str, expression: str, source: str) -> Target | None:
    """A Target from an ATLEAST_ONE_CHECK expression made only of `v['value'] OP number` joined by `and`."""
    checks = tuple((op, float(number)) for op, number in _COMPARE.findall(expression))
    if not checks or _GLUE.sub("", _COMPARE.sub("", expression)):
        return None
    return Target(benchmark, checks, source)


def _rules_dir() -> Path | None:
    """mlperf-logging's compliance_checker folder, found without importing the package."""
    try:
        spec = importlib.util.find_spec("mlperf_logging")
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) / "compliance_checker" if locations else None


@functools.lru_cache(maxsize=32)
def quality_target(benchmark: str) -> Target | None:
    """The benchmark's target from the newest training ruleset of mlperf-logging that has closed rules for it,
    else from BUILTIN_RULES; None for an unknown benchmark."""
    if not _NAME.match(benchmark):
        return None
    rules = _rules_dir()
    if rules is not None and rules.is_dir():
        versions = sorted(((tuple(map(int, m.groups())), p) for p in rules.iterdir()
                           if (m := _RULESET.match(p.name))), reverse=True)
        for _, ruleset in versions:
            path = ruleset / f"closed_{benchmark}.yaml"
            if path.is_file():
                found = _target_in(path, benchmark, f"mlperf-logging {ruleset.name}/{path.name}")
                if found is not None:
                    return found
    expression = BUILTIN_RULES.get(benchmark)
    return parse_rule(benchmark, expression, BUILTIN_SOURCE) if expression else None


def _target_in(path: Path, benchmark: str, source: str) -> Target | None:
    try:  # the installed mlperf-logging package's rules: code, not evidence, but read the one safe way too
        doc = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    for entry in doc if isinstance(doc, list) else []:
        record = entry.get("KEY") if isinstance(entry, dict) else None
        if isinstance(record, dict) and record.get("NAME") == "eval_accuracy":
            check = record.get("ATLEAST_ONE_CHECK")
            if isinstance(check, str):
                return parse_rule(benchmark, check, source)
    return None


def _lines(handle: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """Each line (its first MAX_LINE bytes) and whether it was cut there."""
    while True:
        line = handle.readline(MAX_LINE)
        if not line:
            return
        if line.endswith(b"\n") or len(line) < MAX_LINE:
            yield line, False
            continue
        rest = line
        while rest and not rest.endswith(b"\n"):
            rest = handle.readline(MAX_LINE)
        yield line, True


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _num(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


class _Log:
    """What the MLLOG records of one file establish, accumulated as they are read."""

    def __init__(self, rel: str) -> None:
        self.series = MetricsSeries(path=rel, kind="mlperf")
        self.last_line: int | None = None
        self.start: tuple[float, int] | None = None
        self.stop: tuple[float, int, Any] | None = None
        self.evals: list[tuple[float, int]] = []  # (value, line) of each numeric eval_accuracy, at most MAX_EVALS
        self.samples_count: int | None = None
        self.epochs: int | None = None
        self.eval_epoch: float | None = None
        self.train_samples: float | None = None
        self.throughput: float | None = None
        self.recent: deque[bytes] = deque(maxlen=RECENT)
        self.duplicates = 0

    def line(self, number: int, raw: bytes, cut: bool) -> None:
        at = raw.rfind(TOKEN)
        if at < 0:
            return
        if cut:
            self.series._bad(number, f"MLLOG line longer than {MAX_LINE} bytes")
            return
        payload = raw[at + len(TOKEN):].strip()
        try:
            record = load_json(payload)
        except (ValueError, RecursionError):
            self.series._bad(number, "MLLOG record is not valid JSON")
            return
        key = record.get("key") if isinstance(record, dict) else None
        time_ms = as_float(record.get("time_ms")) if isinstance(record, dict) else None
        if not isinstance(key, str) or time_ms is None:
            self.series._bad(number, "MLLOG record without a key and a numeric time_ms")
            return
        self.last_line = number
        if payload in self.recent:
            self.duplicates += 1
            return
        self.recent.append(payload)
        metadata = record.get("metadata")
        self.event(number, key, record.get("value"), metadata if isinstance(metadata, dict) else {}, time_ms)

    def event(self, number: int, key: str, value: Any, metadata: dict[str, Any], time_ms: float) -> None:
        series = self.series
        count = as_int(metadata.get("samples_count"))
        if count is not None and (self.samples_count is None or count > self.samples_count):
            self.samples_count = count
        if key in FACT_KEYS:
            series.facts.setdefault(key, _text(value))
        elif key in PLAN_KEYS and value is not None:
            plan = PLAN_KEYS[key]
            parsed = value if plan == "optimizer" and isinstance(value, str) else as_int(value)
            least = 0 if plan in ("max_steps", "eval_examples") else 1
            if isinstance(parsed, str) or (parsed is not None and parsed >= least):
                series.plan.setdefault(plan, parsed)
        if key == "run_start" and self.start is None:
            self.start = (time_ms, number)
        elif key == "run_stop" and self.stop is None:
            self.stop = (time_ms, number, metadata.get("status"))
        elif key == "eval_accuracy":
            self.eval(number, value, metadata)
        elif key == "epoch_stop":
            epoch = as_int(metadata.get("epoch_num"))
            if epoch is not None and (self.epochs is None or epoch > self.epochs):
                self.epochs = epoch
        elif key == "train_samples":
            self.train_samples = as_float(value)
        elif key == "tracked_stats" and isinstance(value, dict):
            self.throughput = as_float(value.get("throughput"))
            loss = value.get("train_loss", value.get("loss"))
            if loss is not None:
                series.add({"loss": loss, "step": as_int(metadata.get("step_num"))}, number)
        elif key in ("train_loss", "loss"):
            series.add({"loss": value, "step": as_int(metadata.get("step_num"))}, number)
        elif (self.start is None and key not in NOT_HPARAMS and key not in PLAN_KEYS
              and len(series.hparams) < MAX_HPARAMS and isinstance(value, (str, int, float, bool))):
            series.hparams.setdefault(key, value)

    def eval(self, number: int, value: Any, metadata: dict[str, Any]) -> None:
        self.series.eval_count += 1
        epoch = as_float(metadata.get("epoch_num"))
        if epoch is not None:
            self.eval_epoch = epoch
        number_value = as_float(value)
        if number_value is None:
            return
        self.series.evals["eval_accuracy"] = number_value
        if len(self.evals) < MAX_EVALS:
            self.evals.append((number_value, number))

    def finish(self) -> MetricsSeries:
        series, facts = self.series, self.series.facts
        target = quality_target(facts.get("submission_benchmark", ""))
        if target is not None:
            facts.update(target=repr(target.value), direction=target.direction, target_source=target.source)
            met = [line for value, line in self.evals if target.met(value)]
            finite = [value for value, _ in self.evals if math.isfinite(value)]
            facts["reached_target"] = "true" if met else "false"
            if met:
                facts["reached_target_line"] = str(met[0])
            if finite:
                best = max(finite) if target.direction == "higher" else min(finite)
                facts["best_eval_accuracy"] = repr(best)
        if self.throughput is not None:
            facts["tracked_throughput"] = repr(self.throughput)
        if self.duplicates:
            facts["duplicate_mllog_records"] = str(self.duplicates)
        series.outcome = self.outcome(target)
        series.final = self.final(facts.get("submission_benchmark", ""))
        return series

    def outcome(self, target: Target | None) -> SourceOutcome:
        if self.stop is None:
            where = f"line {self.last_line}" if self.last_line else "no MLLOG record read"
            started = "" if self.start else "; no run_start either"
            detail = f"the log ends before run_stop ({where}){started}"
            return SourceOutcome("no run_stop", False, self.last_line, detail)
        _, line, status = self.stop
        text = status if isinstance(status, str) else "no status"
        detail = f"run_stop status {text!r} at line {line}"
        if text == "success" and target is not None and self.series.facts.get("reached_target") == "false":
            detail += f"; no eval_accuracy met the target ({target.direction} is better, {target.value!r})"
        return SourceOutcome(text, text == "success", line, detail)

    def final(self, benchmark: str) -> FinalRecord | None:
        if self.start is None or self.stop is None or self.stop[0] < self.start[0]:
            return None
        runtime = (self.stop[0] - self.start[0]) / 1000
        values = {"train_runtime": runtime}
        unit = PROGRESS.get(benchmark, "samples")
        samples: float | None = None
        basis = ""
        if unit == "samples" and self.samples_count is not None:
            samples, basis = float(self.samples_count), f"samples_count {self.samples_count}"
        elif unit == "epochs" and self.epochs is not None and self.train_samples:
            samples = self.epochs * self.train_samples
            basis = f"{self.epochs} epochs × train_samples {_num(self.train_samples)}"
        elif unit == "tokens":
            tokens = self.eval_epoch if self.eval_epoch is not None else self.train_samples
            length = self.series.plan.get("max_seq_length")
            if tokens is not None and runtime > 0:
                values.update(train_tokens=tokens, train_tokens_per_second=tokens / runtime)
                if length:
                    samples, basis = tokens / length, f"{_num(tokens)} tokens / max_sequence_length {length}"
        if samples is not None and runtime > 0:
            values.update(train_samples=samples, train_samples_per_second=samples / runtime)
            self.series.facts["samples_basis"] = basis
        return FinalRecord(values=values, path=self.series.path, line=self.stop[1])


@register
class MlperfLog(MetricsSource):
    """MLPerf Training `:::MLLOG` logs (result_N.txt of a submission, or any log holding MLLOG lines)."""

    info = FormatInfo(
        id="mlperf",
        kind="metrics",
        title="MLPerf Training :::MLLOG log",
        looks_for=("result_*.txt", "*.log", "*.txt"),
        reads="The `:::MLLOG` records among the log's other output: submission facts, seed and batch size, the "
              "declared hyper-parameters, every eval_accuracy, run_start/run_stop times and run_stop's status, "
              "and the progress counters (samples_count, epochs × train_samples, tokens).",
        proves="Whether the run logged its own end (run_stop success/aborted, or none: cut short), whether any "
               "evaluation met the benchmark's quality target, and the timed run's length and throughput; not "
               "that the log is the complete or untampered output of that run.",
        log=True,
    )

    def claims(self, rel: str, head: bytes) -> bool:
        """A file of a looked-for name whose first bytes hold an MLLOG record."""
        return name_matches(rel, self.info.looks_for) and TOKEN.rstrip() in head

    def read(self, folder: Folder, rel: str) -> list[MetricsSeries]:
        """One series for the log; the submission's hardware is added from its system description when the
        folder is laid out as `<submitter>/results/<system>/<benchmark>/`."""
        log = _Log(rel)
        try:
            with folder.open(rel) as handle:
                for number, (raw, cut) in enumerate(_lines(handle), start=1):
                    log.line(number, raw, cut)
        except (EvidenceUnreadable, OSError) as exc:
            log.series._bad(log.last_line or 0, f"cannot be read: {exc}")
        series = log.finish()
        series.run, series.needs_checkpoint = rel, False  # a results folder holds N timed runs, and no weights
        series.failures_allowed = FAILURES_ALLOWED.get(series.facts.get("submission_benchmark", ""), 1)
        system = system_description(folder.root)
        if system is not None:
            series.facts.update(system.facts)
            series.facts["system_description"] = system.path
            if system.problem:
                series.facts["system_description_problem"] = system.problem
        return [series]
