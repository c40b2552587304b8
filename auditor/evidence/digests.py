"""The one digest routine (sha256, 1 MiB reads, files hashed in parallel threads: hashlib releases
the GIL) and the SHA256SUMS reader."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from auditor.evidence.opener import open_file

CHUNK = 1 << 20
_SUMS_LINE = re.compile(r"^(?P<digest>[0-9a-fA-F]{64}) [ *](?P<path>.+)$")


def sha256_file(path: Path) -> str:
    """Hex sha256 of one file, read once in 1 MiB chunks into a reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open_file(path) as handle:
        while True:
            n = handle.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
    return digest.hexdigest()


def sha256_files(paths: Iterable[Path], workers: int | None = None) -> dict[Path, str | None]:
    """sha256 of many files on every core; None for a file that cannot be read."""
    unique = list(dict.fromkeys(paths))

    def one(path: Path) -> str | None:
        try:
            return sha256_file(path)
        except OSError:
            return None

    # Largest first so one big shard does not start last and stretch the wall time.
    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    ordered = sorted(unique, key=size, reverse=True)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return dict(zip(ordered, pool.map(one, ordered), strict=True))


@dataclass(frozen=True)
class SumsEntry:
    """One `sha256sum` line: digest, path as written, 1-based line."""

    digest: str
    path: str
    line: int


def parse_sha256sums(lines: Iterable[str]) -> tuple[list[SumsEntry], list[int]]:
    """Entries of a SHA256SUMS file and the line numbers that are not in sha256sum format."""
    entries: list[SumsEntry] = []
    bad: list[int] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip("\ufeff").rstrip()
        if not line or line.startswith("#"):
            continue
        match = _SUMS_LINE.match(line)
        if match is None:
            bad.append(number)
            continue
        entries.append(SumsEntry(match["digest"].lower(), match["path"], number))
    return entries, bad
