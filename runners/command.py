"""`--runner command`: any command. Metrics come from auditor.runtime, from an HF trainer_state.json the command
writes into the run folder (verify reads it), or from its log lines through `--metrics-regex`: a Python regex
with named groups `step` and `loss` (any other named group is recorded too), applied to training_log.txt after
the run to write training_output/metrics.jsonl when the command wrote none itself."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from auditor.capture.session import LaunchSpec, RunRequest
from auditor.errors import AuditInputError
from auditor.runtime import METRICS
from runners import Runner, plan_from_config


def compile_metrics_regex(pattern: str) -> re.Pattern[str]:
    """The --metrics-regex, checked: it compiles and names `step` and `loss` (exit 2 otherwise)."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise AuditInputError(f"--metrics-regex {pattern!r} is not a valid regex: {exc}") from None
    missing = {"step", "loss"} - set(regex.groupindex)
    if missing:
        raise AuditInputError(f"--metrics-regex needs named groups (?P<step>...) and (?P<loss>...); missing: "
                              f"{', '.join(sorted(missing))}")
    return regex


def _number(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def metrics_from_log(log: Path, regex: re.Pattern[str], out: Path) -> int:
    """Write one metrics record per matching log line; returns how many."""
    count = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with log.open(encoding="utf-8", errors="replace") as lines, out.open("w", encoding="utf-8") as handle:
        for line in lines:
            match = regex.search(line)
            if match is None:
                continue
            record = {k: _number(v) for k, v in match.groupdict().items() if v is not None}
            if "step" in record and "loss" in record:
                handle.write(json.dumps(record) + "\n")
                count += 1
    return count


class CommandRunner(Runner):
    """Runs the command after `--` as it is."""

    name = "command"

    def build(self, request: RunRequest) -> LaunchSpec:
        if not request.command:
            raise AuditInputError("--runner command needs the command after `--`, e.g. "
                                  "`audit run --runner command -- python train.py`")
        if request.metrics_regex:
            compile_metrics_regex(request.metrics_regex)
        return LaunchSpec(command=list(request.command), plan=plan_from_config(request.config, request.device),
                          seed=request.seed)

    def collect(self, request: RunRequest, spec: LaunchSpec, folder: Path) -> dict[str, Any]:
        if not request.metrics_regex or (folder / METRICS).exists():
            return {}
        count = metrics_from_log(folder / "training_log.txt", compile_metrics_regex(request.metrics_regex),
                                 folder / METRICS)
        return {"metrics_source": f"{count} training_log.txt line(s) matched --metrics-regex"}
