"""JSON report: the public shape {"schema_version": 1, "tool": {...}, "runs": [...]}, keys sorted."""

from __future__ import annotations

import json

from auditor.models import VerifyReport
from auditor.schemas import to_jsonable


def render(report: VerifyReport, color: bool = False) -> str:
    """Deterministic JSON (sorted keys)."""
    return json.dumps(to_jsonable(report), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
