"""Markdown report (also the GitHub step summary)."""

from __future__ import annotations

from auditor.models import VerifyReport
from auditor.render.common import SYMBOL, counts, location


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(report: VerifyReport, color: bool = False) -> str:
    """One section and table per run."""
    out = ["# auditor verify", ""]
    for run in report.runs:
        out += [f"## {SYMBOL[run.verdict]} `{run.run_dir}`: {run.verdict.upper()} ({counts(run.gates)})", "",
                "| Gate | Status | Message | Where |", "|---|---|---|---|"]
        for r in run.gates:
            where = f"`{location(r)}`" if location(r) else ""
            out.append(f"| `{r.id}` | {SYMBOL[r.status]} {r.status.upper()} | {_cell(r.message)} | {where} |")
        out.append("")
    return "\n".join(out) + "\n"
