"""Evidence left as a template: placeholder markers, or JSON whose values are mostly null.

A marker counts wherever it is, auditor-owned summary blocks included: the only text spared is verify's own
finding quoting one (`placeholder text 'TBD'`), which a rendered quality-gates block repeats."""

from __future__ import annotations

import re
from typing import Any

from auditor.evidence.jsonload import load_json
from auditor.evidence.text import TextDoc

TEMPLATE_MARKERS = re.compile(
    r"PASTE (?:ACTUAL |YOUR |THE )?(?:OUTPUT|LOGS?|RESULTS?)|\bX\.X{2,}\b|\{\{\s*\w+\s*\}\}|"
    r"<\s*(?:insert|fill|TODO)[^>]*>|"
    r"\bLorem ipsum\b|\bTBD\b|\bFILL[ _]?(?:IN|ME)\b|awaiting real (?:run )?data|REPLACE[_ ]ME|"
    r"This file should contain",
    re.I,
)
TEMPLATE_SCAN_LIMIT = 2 * 1024 * 1024
# how template_problem quotes what it found (repr: '...', or "..." around a quote)
_QUOTED_FINDING = re.compile(r"placeholder text (?:'[^'\n]*'|\"[^\"\n]*\")")
NULL_SHARE = 0.5


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def _unquoted_marker(line: str) -> re.Match[str] | None:
    """The first placeholder marker in `line` that is not inside a quote of verify's own finding."""
    quotes = [(q.start(), q.end()) for q in _QUOTED_FINDING.finditer(line)] if "placeholder text" in line else []
    for match in TEMPLATE_MARKERS.finditer(line):
        if not any(start <= match.start() and match.end() <= end for start, end in quotes):
            return match
    return None


def template_problem(doc: TextDoc, nulls_mean_template: bool = True) -> tuple[str, int | None] | None:
    """Why a small text file looks like a template (placeholder marker, or JSON mostly null, unless the file is
    a document whose schema gives null a meaning), if it does."""
    for number, line in enumerate(doc.lines, start=1):
        match = _unquoted_marker(line)
        if match:
            return f"placeholder text {match.group(0)!r}", number
    if doc.path.endswith(".json") and nulls_mean_template:
        try:
            data = load_json(doc.text)
        except ValueError:
            return None
        leaves = _leaves(data)
        nulls = sum(1 for leaf in leaves if leaf is None)
        if len(leaves) >= 6 and nulls / len(leaves) >= NULL_SHARE:
            return f"{nulls} of {len(leaves)} values are null (a template awaiting data)", None
    return None
