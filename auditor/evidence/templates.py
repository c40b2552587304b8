"""Evidence left as a template: placeholder markers, or JSON whose values are mostly null."""

from __future__ import annotations

import json
import re
from typing import Any

from auditor.evidence.text import TextDoc

TEMPLATE_MARKERS = re.compile(
    r"PASTE (?:ACTUAL |YOUR |THE )?(?:OUTPUT|LOGS?|RESULTS?)|\bX\.X{2,}\b|\{\{\s*\w+\s*\}\}|"
    r"<\s*(?:insert|fill|TODO)[^>]*>|"
    r"\bLorem ipsum\b|\bTBD\b|\bFILL[ _]?(?:IN|ME)\b|awaiting real (?:run )?data|REPLACE[_ ]ME|"
    r"This file should contain",
    re.I,
)
TEMPLATE_SCAN_LIMIT = 2 * 1024 * 1024
NULL_SHARE = 0.5


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def template_problem(doc: TextDoc) -> tuple[str, int | None] | None:
    """Why a small text file looks like a template (placeholder marker, or JSON mostly null), if it does."""
    for number, line in enumerate(doc.lines, start=1):
        match = TEMPLATE_MARKERS.search(line)
        if match:
            return f"placeholder text {match.group(0)!r}", number
    if doc.path.endswith(".json"):
        try:
            data = json.loads(doc.text)
        except ValueError:
            return None
        leaves = _leaves(data)
        nulls = sum(1 for leaf in leaves if leaf is None)
        if len(leaves) >= 6 and nulls / len(leaves) >= NULL_SHARE:
            return f"{nulls} of {len(leaves)} values are null (a template awaiting data)", None
    return None
