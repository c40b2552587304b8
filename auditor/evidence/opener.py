"""The one way evidence is opened: a folder-relative path that stays inside the run folder, a regular file (no
FIFO, socket, device or link), read with a stated limit. A reader never calls open() on evidence itself."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from auditor.evidence.paths import contained_path
from auditor.evidence.text import MAX_TEXT_BYTES, TextDoc, decode_bytes, split_lines

T = TypeVar("T")
HEAD_BYTES = 64 * 1024  # what discovery reads to recognise a format by its content


class EvidenceUnreadable(OSError):
    """A path that is not a readable regular file inside the folder; its message says why."""


def open_evidence(root: Path, rel: str) -> BinaryIO:
    """Open `root/rel` for reading: contained, not a link, a regular file (checked on the open descriptor, so a
    FIFO never blocks the reader). Raises EvidenceUnreadable."""
    path = contained_path(root, rel)
    if path is None:
        raise EvidenceUnreadable(f"{rel}: leads outside the run folder")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise EvidenceUnreadable(f"{rel}: cannot be opened ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise EvidenceUnreadable(f"{rel}: not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_evidence(root: Path, rel: str, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of an evidence file and whether the limit cut it. Raises EvidenceUnreadable."""
    with open_evidence(root, rel) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise EvidenceUnreadable(f"{rel}: cannot be read ({exc.strerror or exc})") from None
    return data[:limit], len(data) > limit


@dataclass(frozen=True)
class Folder:
    """A run folder as sources see it: its root and its regular files (folder-relative posix paths, sorted)."""

    root: Path
    files: Sequence[str]
    _texts: dict[str, TextDoc | None] = field(default_factory=dict, compare=False, repr=False)
    _parsed: dict[tuple[str, str], Any] = field(default_factory=dict, compare=False, repr=False)

    def parsed(self, kind: str, rel: str, parse: Callable[[], T]) -> T:
        """A file's parsed form, made once per folder (a format that reads one file for two purposes)."""
        key = (kind, rel)
        if key not in self._parsed:
            self._parsed[key] = parse()
        return self._parsed[key]

    def text(self, rel: str, limit: int = MAX_TEXT_BYTES) -> TextDoc | None:
        """A decoded text file (UTF-8/16, BOM, CRLF, cp1252), cached; None when it cannot be read."""
        if rel not in self._texts:
            try:
                data, _ = self.read(rel, limit)
            except EvidenceUnreadable:
                self._texts[rel] = None
            else:
                text, encoding = decode_bytes(data)
                self._texts[rel] = TextDoc(path=rel, lines=split_lines(text.replace("\x00", "")), encoding=encoding)
        return self._texts[rel]

    def open(self, rel: str) -> BinaryIO:
        """open_evidence within this folder."""
        return open_evidence(self.root, rel)

    def read(self, rel: str, limit: int) -> tuple[bytes, bool]:
        """read_evidence within this folder."""
        return read_evidence(self.root, rel, limit)

    def head(self, rel: str, limit: int = HEAD_BYTES) -> bytes:
        """The first bytes of a file for recognising its format; empty when it cannot be read."""
        try:
            return self.read(rel, limit)[0]
        except EvidenceUnreadable:
            return b""

    def unreadable(self, rel: str) -> str | None:
        """Why a file cannot be opened as evidence (not regular, outside, permission), or None when it can."""
        try:
            self.open(rel).close()
        except EvidenceUnreadable as exc:
            return str(exc)
        return None

    def size(self, rel: str) -> int:
        """Size in bytes (0 when it cannot be read)."""
        try:
            with self.open(rel) as handle:
                return os.fstat(handle.fileno()).st_size
        except EvidenceUnreadable:
            return 0

    def under(self, prefix: str) -> list[str]:
        """Files below a folder-relative directory."""
        start = prefix.rstrip("/") + "/"
        return [f for f in self.files if f.startswith(start)]
