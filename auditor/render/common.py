"""Small helpers shared by renderers."""

from __future__ import annotations

from auditor.models import GateResult

SYMBOL = {"pass": "✅", "fail": "❌", "warn": "⚠️", "skip": "⏭️"}


def location(result: GateResult) -> str:
    """`path:line` of a result's first evidence pointer, or ''."""
    if not result.evidence:
        return ""
    first = result.evidence[0]
    return f"{first.path}:{first.line}" if first.line else first.path


def counts(results: list[GateResult]) -> str:
    """`12 pass, 1 fail, 1 warn`."""
    order = ("pass", "fail", "warn", "skip")
    tally = {s: sum(1 for r in results if r.status == s) for s in order}
    return ", ".join(f"{n} {s}" for s, n in tally.items() if n)
