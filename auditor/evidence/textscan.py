"""Scanning whole evidence files for a signature (a credential, a traceback) without holding them in memory: the
file is streamed through the one opener in blocks, every line that matches is returned with its number, and a
file longer than the stated limit says so, so no gate passes on a part it did not read. JSON string literals
are scanned as decoded too: `\\u0068f_...` hides a token from a byte scan, not from this one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from auditor.evidence.jsonload import load_json
from auditor.evidence.opener import LINE_BYTES, EvidenceUnreadable, Folder
from auditor.evidence.text import looks_utf16

SCAN_BYTES = 256 << 20  # of one file, scanned for credentials and tracebacks; the rest is reported, not read
BLOCK = 4 << 20
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_ESCAPE = re.compile(rb"\\u[0-9a-fA-F]{4}")


@dataclass
class ScanResult:
    """Matching lines (1-based number, text) of one file, and where the scan stopped short, if it did."""

    path: str
    lines: list[tuple[int, str]] = field(default_factory=list)
    cut_at: int | None = None  # bytes read before the limit stopped the scan
    unreadable: str | None = None


def scan_file(folder: Folder, rel: str, pattern: re.Pattern[bytes], literals: tuple[bytes, ...],
              text_pattern: re.Pattern[str] | None = None, limit: int = SCAN_BYTES) -> ScanResult:
    """Every line of `rel` where `pattern` matches, the file streamed in blocks up to `limit` bytes. Only lines
    holding one of `literals` (upper case; every match of `pattern` holds one) are matched, so a block is
    searched at memchr speed, not by the regex. Lines that hold JSON escapes are also matched, decoded, against
    `text_pattern`. UTF-16 text is decoded first (within the text limit)."""
    result = ScanResult(rel)
    try:
        handle = folder.open(rel)
    except EvidenceUnreadable as exc:
        result.unreadable = str(exc)
        return result
    with handle:
        head = handle.read(4)
        if looks_utf16(head):
            doc = folder.text(rel)
            if doc is not None and text_pattern is not None:
                result.lines = [(n, t) for n, t in enumerate(doc.lines, 1) if text_pattern.search(t)]
                result.lines += [(n, t) for n, t in unescaped(enumerate(doc.lines, 1)) if text_pattern.search(t)]
            return result
        handle.seek(0)
        line, read, carry = 1, 0, b""
        while True:
            data = handle.read(min(BLOCK, limit - read + 1)) if read <= limit else b""
            if not data:
                break
            read += len(data)
            if read > limit:
                data = data[: len(data) - (read - limit)]
                result.cut_at = limit
            block = carry + data
            cut = block.rfind(b"\n") + 1
            whole, carry = (block[:cut], block[cut:]) if cut else (b"", block)
            if len(carry) > LINE_BYTES:  # one overlong line: scanned as it stands, not held any longer
                whole, carry = block, b""
            _match_block(whole, line, pattern, literals, text_pattern, result)
            line += whole.count(b"\n")
            if result.cut_at is not None:
                break
        if carry:
            _match_block(carry, line, pattern, literals, text_pattern, result)
    return result


def _positions(haystack: bytes, needle: bytes) -> Iterator[int]:
    pos = haystack.find(needle)
    while pos != -1:
        yield pos
        pos = haystack.find(needle, pos + 1)


def _match_block(block: bytes, first_line: int, pattern: re.Pattern[bytes], literals: tuple[bytes, ...],
                 text_pattern: re.Pattern[str] | None, result: ScanResult) -> None:
    if not block:
        return
    compact = block.translate(None, b"\x00") if b"\x00" in block else block  # a sparse file's holes: nothing
    folded = compact.upper()
    if not any(literal in folded for literal in literals) and b"\\u" not in compact:
        return
    upper = block.upper()
    hits = [pos for literal in literals for pos in _positions(upper, literal)]
    if text_pattern is not None:
        hits += [m.start() for m in _ESCAPE.finditer(block)] if b"\\u" in block else []
    seen: set[int] = set()
    for pos in sorted(hits):
        start = block.rfind(b"\n", 0, pos) + 1
        if start in seen:
            continue
        seen.add(start)
        end = block.find(b"\n", pos)
        raw = block[start: len(block) if end == -1 else end]
        number = first_line + block.count(b"\n", 0, start)
        text = raw.replace(b"\x00", b"").decode("utf-8", errors="replace").rstrip("\r")
        if pattern.search(raw):
            result.lines.append((number, text))
        elif text_pattern is not None:
            result.lines.extend((n, t) for n, t in unescaped([(number, text)]) if text_pattern.search(t))


def unescaped(lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """The JSON string literals of lines that hold escapes, decoded and split at their newlines, each with the
    number of the line it sits on (a notebook's sources, a JSON value with `\\u` or `\\n` escapes)."""
    for number, line in lines:
        if "\\" not in line:
            continue
        for literal in _STRING.findall(line):
            if "\\" not in literal:
                continue
            try:
                value = load_json(literal)
            except ValueError:
                continue
            if isinstance(value, str):
                for part in value.split("\n"):
                    yield number, part
