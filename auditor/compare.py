"""`audit compare`: the seeds' "M43 vs M44" table for any runs, from their evidence, with deltas against the
first run, and what differs between them: config keys, package versions, hardware, commit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from auditor.evidence.envsnap import dotted, snapshot_json
from auditor.evidence.run import RunEvidence
from auditor.models import RunReport

ROWS = (("steps", "Steps"), ("runtime_s", "Runtime (s)"), ("samples_per_s", "Samples/s"),
        ("steps_per_s", "Steps/s"), ("first_loss", "First loss"), ("last_loss", "Last logged loss"),
        ("mean_train_loss", "Mean train loss (trainer)"), ("eval_examples", "Eval examples"),
        ("verdict", "Verify verdict"), ("failing_gates", "Failing gates"))
_HARDWARE = ("gpu", "cuda", "driver", "jax_backend", "platform", "python")


def run_facts(ev: RunEvidence, report: RunReport) -> dict[str, Any]:
    """One run's figures (from its evidence) and the facts that may differ between runs."""
    series = ev.metrics
    final = ev.final_record.values if ev.final_record else {}
    predictions = ev.predictions
    manifest = ev.run_manifest
    config: dict[str, Any] = {}
    for name in ev.config_files:
        data, _ = ev.load_yaml(name)
        config.update(dotted(data) if isinstance(data, dict) else {})
    if manifest is not None:  # what `audit run` was told: runner, seed and the plan it derived
        config.update({"run.runner": manifest.runner, "run.seed": manifest.seed})
        config.update({f"plan.{k}": v for k, v in dotted(dataclasses.asdict(manifest.plan)).items()
                       if not k.startswith("source")})
    packages = snapshot_json(ev.root).get("packages")
    packages = dict(packages) if isinstance(packages, dict) else {}
    commit = manifest.git.commit if manifest is not None and manifest.git is not None else None
    return {
        "run": ev.root.name,
        "steps": ev.evidence_max_step,
        "runtime_s": final.get("train_runtime"),
        "samples_per_s": final.get("train_samples_per_second"),
        "steps_per_s": final.get("train_steps_per_second"),
        "first_loss": series.losses[0] if series is not None and series.count else None,
        "last_loss": series.losses[-1] if series is not None and series.count else None,
        "mean_train_loss": final.get("train_loss"),
        "eval_examples": predictions.count if predictions is not None else None,
        "verdict": report.verdict,
        "failing_gates": ", ".join(g.id for g in report.gates if g.status == "fail") or "none",
        "hardware": {k: v for k in _HARDWARE if (v := (ev.env_fact(k) or (None,))[0]) is not None},
        "commit": commit or (ev.env_fact("commit") or (None,))[0],
        "config": config,
        "packages": packages,
    }


def _delta(first: Any, value: Any) -> str:
    if isinstance(first, (int, float)) and isinstance(value, (int, float)) and not isinstance(value, bool):
        diff = value - first
        pct = f" ({diff / first:+.1%})" if first else ""
        return f"{diff:+.4g}{pct}"
    return ""


def differences(facts: list[dict[str, Any]], key: str) -> dict[str, list[Any]]:
    """The keys of `key` (config, packages, hardware) whose values are not the same in every run."""
    names = sorted({k for f in facts for k in f[key]})
    values = {name: [f[key].get(name) for f in facts] for name in names}
    return {name: vals for name, vals in values.items() if len({json.dumps(v, default=str) for v in vals}) > 1}


def compare(facts: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows with deltas against the first run, and the differences."""
    rows = []
    for key, label in ROWS:
        values = [f[key] for f in facts]
        rows.append({"key": key, "label": label, "values": values,
                     "deltas": [_delta(values[0], v) for v in values[1:]]})
    diff = {key: differences(facts, key) for key in ("config", "packages", "hardware")}
    commits = [f["commit"] for f in facts]
    if len(set(commits)) > 1:
        diff["commit"] = {"commit": commits}
    return {"runs": [f["run"] for f in facts], "rows": rows, "differences": diff}


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(result: dict[str, Any], fmt: str) -> str:
    """text, markdown or json."""
    if fmt == "json":
        return json.dumps(result, indent=2, default=str) + "\n"
    runs = result["runs"]
    header = ["Metric", *runs] + ([f"Δ {r} vs {runs[0]}" for r in runs[1:]])
    lines = [[row["label"], *map(_cell, row["values"]), *row["deltas"]] for row in result["rows"]]
    diff_lines = []
    for kind, entries in result["differences"].items():
        for name, values in entries.items():
            diff_lines.append([f"{kind}: {name}", *map(_cell, values)])
    if fmt == "markdown":
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        out += ["", "**What differs**", ""]
        if diff_lines:
            out += ["| What | " + " | ".join(runs) + " |", "|" + "---|" * (len(runs) + 1)]
            out += ["| " + " | ".join(cells) + " |" for cells in diff_lines]
        else:
            out.append("Nothing: same config, packages, hardware and commit.")
        return "\n".join(out) + "\n"
    table = [header, *lines]
    widths = [max(len(row[i]) if i < len(row) else 0 for row in table) for i in range(len(header))]
    text = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table]
    text += ["", "What differs:"]
    text += [f"  {cells[0]}: " + " | ".join(cells[1:]) for cells in diff_lines] or ["  nothing"]
    return "\n".join(text) + "\n"


def compare_dirs(paths: list[Path]) -> dict[str, Any]:
    """Verify each folder and compare them."""
    from auditor.verify import VerifyOptions, execute

    report = execute(VerifyOptions(run_dirs=paths))
    return compare([run_facts(RunEvidence(path), run) for path, run in zip(paths, report.runs, strict=True)])
