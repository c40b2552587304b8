"""Decoding evidence text as users' tools wrote it: UTF-8 (with or without BOM), UTF-16 with BOM
(PowerShell's `>`), CRLF line ends, or legacy cp1252 bytes."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

MAX_TEXT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class TextDoc:
    """A decoded text file, split into lines (1-based via `line(n)`)."""

    path: str
    lines: tuple[str, ...]
    encoding: str

    @property
    def text(self) -> str:
        """The whole text joined with newlines."""
        return "\n".join(self.lines)


def looks_utf16(head: bytes) -> bool:
    """Whether bytes start as UTF-16 text: a BOM, or PowerShell's BOM-less little-endian ASCII (every other byte
    NUL)."""
    return head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
        len(head) >= 4 and head[1:2] == b"\x00" and head[3:4] == b"\x00" and head[:1] != b"\x00")


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode bytes to text and name the encoding used; never raises."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return data.decode("utf-16", errors="replace"), "utf-16"
    if len(data) >= 4 and data[1:2] == b"\x00" and data[3:4] == b"\x00" and data[0:1] != b"\x00":
        return data.decode("utf-16-le", errors="replace"), "utf-16-le"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "cp1252"


def split_lines(text: str) -> tuple[str, ...]:
    """Split on LF only (CRLF and lone CR at line end stripped), so line numbers match editors."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(line[:-1] if line.endswith("\r") else line for line in lines)
