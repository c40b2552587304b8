"""Human text report: a rich table per run; colour only when asked (a TTY without NO_COLOR)."""

from __future__ import annotations

import io

from auditor.models import VerifyReport
from auditor.render.common import counts, location

STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


def render(report: VerifyReport, color: bool = False) -> str:
    """Rich tables rendered to a string."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=140, highlight=False,
                      soft_wrap=False)
    for run in report.runs:
        # evidence text is printed literally: never read as rich markup (`[rank0]:`, `[/tmp/x]`)
        table = Table(title=Text(run.run_dir), title_justify="left", show_lines=False, expand=False)
        table.add_column("gate", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("message", overflow="fold")
        table.add_column("where", overflow="fold")
        for result in run.gates:
            table.add_row(Text(result.id), Text(result.status.upper(), style=STYLE[result.status]),
                          Text(result.message), Text(location(result)))
        console.print(table)
        console.print(Text(f"verdict: {run.verdict.upper()} ({counts(run.gates)})", style=STYLE[run.verdict]))
        console.print()
    return buffer.getvalue()
