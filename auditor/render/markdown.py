"""Markdown report (also the GitHub step summary)."""

from __future__ import annotations

from auditor.models import GateResult, VerifyReport
from auditor.render.common import SYMBOL, counts, location


def cell(text: str) -> str:
    """Text made safe for one markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


GATE_HEADER = ("| Gate | Status | Message | Where |", "|---|---|---|---|")


def gate_row(result: GateResult) -> str:
    """One gate result as a markdown table row."""
    where = f"`{location(result)}`" if location(result) else ""
    return f"| `{result.id}` | {SYMBOL[result.status]} {result.status.upper()} | {cell(result.message)} | {where} |"


def render(report: VerifyReport, color: bool = False) -> str:
    """One section and table per run."""
    out = ["# auditor verify", ""]
    for run in report.runs:
        out += [f"## {SYMBOL[run.verdict]} `{run.run_dir}`: {run.verdict.upper()} ({counts(run.gates)})", "",
                *GATE_HEADER, *map(gate_row, run.gates), ""]
    return "\n".join(out) + "\n"
