"""The one way evidence is opened: a folder-relative path that stays inside the run folder, a regular file (no
FIFO, socket, device or link), read with a stated limit. A reader never calls open() on evidence itself."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from auditor.evidence.paths import contained_path
from auditor.evidence.text import MAX_TEXT_BYTES, TextDoc, decode_bytes, split_lines

T = TypeVar("T")
HEAD_BYTES = 64 * 1024  # what discovery reads to recognise a format by its content
JSON_BYTES = 256 * 1024 * 1024  # one JSON document read whole (a manifest, trainer_state.json, a config)
LINE_BYTES = 16 * 1024 * 1024  # one line of a streamed file (metrics, predictions, samples); longer is not read
OVERLONG_LINE = b"<a line longer than the 16 MiB line limit: not read>"


class EvidenceUnreadable(OSError):
    """A path that is not a readable regular file inside the folder; its message says why."""


def open_evidence(root: Path, rel: str) -> io.BufferedReader:
    """Open `root/rel` for reading: contained, not a link, a regular file (checked on the open descriptor, so a
    FIFO never blocks the reader). Raises EvidenceUnreadable."""
    path = contained_path(root, rel)
    if path is None:
        raise EvidenceUnreadable(f"{rel}: leads outside the run folder")
    return open_file(path, rel)


def open_file(path: Path, rel: str | None = None) -> io.BufferedReader:
    """Open a file the folder walk listed (so no directory on its way is a link): never through a link in its
    last component, a regular file only (checked on the open descriptor: a FIFO never blocks). Raises
    EvidenceUnreadable naming `rel` (default: the path)."""
    rel = rel if rel is not None else str(path)
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
    path = contained_path(root, rel)
    if path is None:
        raise EvidenceUnreadable(f"{rel}: leads outside the run folder")
    return read_file(path, limit, rel)


def read_file(path: Path, limit: int, rel: str | None = None) -> tuple[bytes, bool]:
    """read_evidence for a path the walk listed (see open_file)."""
    with open_file(path, rel) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise EvidenceUnreadable(f"{rel or path}: cannot be read ({exc.strerror or exc})") from None
    return data[:limit], len(data) > limit


def read_json_file(path: Path, rel: str | None = None, limit: int = JSON_BYTES) -> Any:
    """One whole JSON document of the folder. Raises EvidenceUnreadable, or JsonProblem (a ValueError) when it
    is not JSON or is larger than `limit` (said so, not called invalid)."""
    from auditor.evidence.jsonload import JsonProblem, load_json

    data, cut = read_file(path, limit, rel)
    if cut:
        raise JsonProblem(f"is larger than the {limit >> 20} MiB limit for one JSON document: not read")
    return load_json(data)


def bounded_lines(handle: BinaryIO, limit: int = LINE_BYTES) -> Iterator[bytes]:
    """The lines of a streamed file, each with its newline; a line longer than `limit` is skipped to its end
    and yielded as OVERLONG_LINE, so memory stays bounded and line numbers stay true."""
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # skip the rest of the overlong line
                rest = handle.readline(limit)
                if not rest or rest.endswith(b"\n"):
                    break
            line = OVERLONG_LINE + b"\n"
        yield line


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

    def open(self, rel: str) -> io.BufferedReader:
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
