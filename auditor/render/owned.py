"""Blocks of a markdown file that the tool owns, marked with HTML comments, so a re-render rewrites only them:

    <!-- auditor:begin performance -->
    ...generated...
    <!-- auditor:end performance -->

Everything outside the markers belongs to people and is kept byte for byte. A block a person deleted stays
deleted; a block the tool has nothing for any more is emptied, not removed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from auditor.errors import AuditInputError

_MARKER = re.compile(r"^<!-- auditor:(begin|end) ([a-z0-9-]+) -->[ \t]*$")


def begin(name: str) -> str:
    """The opening marker of block `name`."""
    return f"<!-- auditor:begin {name} -->"


def end(name: str) -> str:
    """The closing marker of block `name`."""
    return f"<!-- auditor:end {name} -->"


def block(name: str, body: str) -> str:
    """`body` wrapped in the markers of block `name`."""
    return f"{begin(name)}\n{body.rstrip()}\n{end(name)}"


@dataclass
class Span:
    """One owned block in an existing file: the 0-based lines of its markers."""

    name: str
    begin: int
    end: int


def owned_spans(lines: list[str], path: str) -> list[Span]:
    """The owned blocks of a file, in order; a marker out of place is an input error with its line."""
    spans: list[Span] = []
    open_name: str | None = None
    open_at = 0
    seen: set[str] = set()
    for number, line in enumerate(lines):
        match = _MARKER.match(line)
        if match is None:
            continue
        kind, name = match.groups()
        at = f"{path}:{number + 1}"
        if kind == "begin":
            if open_name is not None:
                raise AuditInputError(f"{at}: '{begin(name)}' inside block '{open_name}' (opened at line "
                                      f"{open_at + 1}): close it with '{end(open_name)}' first")
            if name in seen:
                raise AuditInputError(f"{at}: block '{name}' appears twice: delete one copy")
            open_name, open_at = name, number
        else:
            if open_name != name:
                raise AuditInputError(f"{at}: '{end(name)}' without a matching '{begin(name)}' above it")
            spans.append(Span(name, open_at, number))
            seen.add(name)
            open_name = None
    if open_name is not None:
        raise AuditInputError(f"{path}:{open_at + 1}: block '{open_name}' is never closed: add '{end(open_name)}'")
    return spans


def owned_or_refuse(lines: list[str], path: str) -> list[Span]:
    """The owned blocks of an existing file; a file with none was written by hand and is not taken over."""
    spans = owned_spans(lines, path)
    if not spans:
        raise AuditInputError(f"{path} exists and holds no '<!-- auditor:begin ... -->' blocks: it was written by "
                              "hand and would be overwritten; render elsewhere with --output, or delete it")
    return spans


def merge(existing: str, blocks: dict[str, str], path: str) -> str:
    """`existing` with every owned block's body replaced by the new one (emptied when there is none)."""
    lines = existing.split("\n")
    spans = owned_or_refuse(lines, path)
    out: list[str] = []
    cursor = 0
    for span in spans:
        out.extend(lines[cursor:span.begin])
        body = blocks.get(span.name, "").rstrip()
        out.append(lines[span.begin])
        if body:
            out.extend(body.split("\n"))
        out.append(lines[span.end])
        cursor = span.end + 1
    out.extend(lines[cursor:])
    return "\n".join(out)
