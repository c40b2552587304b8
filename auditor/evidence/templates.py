"""Evidence left as a template: placeholder markers, or JSON whose values are mostly null."""

from __future__ import annotations

import re
from typing import Any

from auditor.evidence.jsonload import load_json
from auditor.evidence.text import TextDoc
from auditor.render.owned import begin, end

TEMPLATE_MARKERS = re.compile(
    r"PASTE (?:ACTUAL |YOUR |THE )?(?:OUTPUT|LOGS?|RESULTS?)|\bX\.X{2,}\b|\{\{\s*\w+\s*\}\}|"
    r"<\s*(?:insert|fill|TODO)[^>]*>|"
    r"\bLorem ipsum\b|\bTBD\b|\bFILL[ _]?(?:IN|ME)\b|awaiting real (?:run )?data|REPLACE[_ ]ME|"
    r"This file should contain",
    re.I,
)
TEMPLATE_SCAN_LIMIT = 2 * 1024 * 1024
_VERIFY_QUOTES = (begin("quality-gates"), end("quality-gates"))
NULL_SHARE = 0.5


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def template_problem(doc: TextDoc) -> tuple[str, int | None] | None:
    """Why a small text file looks like a template (placeholder marker, or JSON mostly null), if it does."""
    quoting = False  # inside a summary's quality-gates block: verify's own messages, which quote what they found
    for number, line in enumerate(doc.lines, start=1):
        if line.strip() in _VERIFY_QUOTES:
            quoting = line.strip() == _VERIFY_QUOTES[0]
            continue
        match = None if quoting else TEMPLATE_MARKERS.search(line)
        if match:
            return f"placeholder text {match.group(0)!r}", number
    if doc.path.endswith(".json"):
        try:
            data = load_json(doc.text)
        except ValueError:
            return None
        leaves = _leaves(data)
        nulls = sum(1 for leaf in leaves if leaf is None)
        if len(leaves) >= 6 and nulls / len(leaves) >= NULL_SHARE:
            return f"{nulls} of {len(leaves)} values are null (a template awaiting data)", None
    return None
