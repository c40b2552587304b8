"""GitHub Actions workflow commands: `::error file=...,line=...::message` per failing gate, `::warning` per warn."""

from __future__ import annotations

from auditor.models import VerifyReport


def _escape(value: str, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return value.replace(":", "%3A").replace(",", "%2C") if prop else value


def render(report: VerifyReport, color: bool = False) -> str:
    """Annotations for failing and warning gates, then a one-line verdict per run."""
    out = []
    for run in report.runs:
        for r in run.gates:
            if r.status not in ("fail", "warn"):
                continue
            level = "error" if r.status == "fail" else "warning"
            props = [f"title={_escape(r.id, prop=True)}"]
            if r.evidence:
                props.insert(0, f"file={_escape(run.run_dir.rstrip('/') + '/' + r.evidence[0].path, prop=True)}")
                if r.evidence[0].line:
                    props.insert(1, f"line={r.evidence[0].line}")
            out.append(f"::{level} {','.join(props)}::{_escape(r.message)}")
        out.append(f"{run.run_dir}: {run.verdict.upper()}")
    return "\n".join(out) + "\n"
