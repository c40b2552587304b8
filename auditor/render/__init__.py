"""Report renderers: each turns a VerifyReport into text and only reads it. One registry of names,
kept import-light so `audit --help` does not load rich or pydantic."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from auditor.models import VerifyReport

RENDERERS: dict[str, str] = {
    "text": "auditor.render.text",
    "json": "auditor.render.json_report",
    "junit": "auditor.render.junit",
    "markdown": "auditor.render.markdown",
    "github": "auditor.render.github",
}


def render(name: str, report: VerifyReport, color: bool = False) -> str:
    """Render `report` in the format `name`."""
    module = importlib.import_module(RENDERERS[name])
    text: str = module.render(report, color=color)
    return text
