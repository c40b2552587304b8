"""Per-rank records of a torchrun launch (ranks/rank<R>.json, written by runners.rank): which ranks started,
how each ended, and the last step each logged."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.evidence.opener import read_json_file

_RANK_FILE = re.compile(r"^ranks/rank(\d+)\.json$")


@dataclass
class RankRecord:
    """One rank as it recorded itself."""

    rank: int
    path: str
    status: str
    exit_code: int | None
    error: str | None
    last_step: int | None
    world_size: int | None


def rank_files(files: list[str]) -> list[str]:
    """The rank records among a folder's files, by rank."""
    found = [(int(m.group(1)), f) for f in files if (m := _RANK_FILE.match(f))]
    return [f for _, f in sorted(found)]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_rank(path: Path, name: str) -> RankRecord:
    """One rank record; an unreadable file is a rank whose end is unknown."""
    rank = int(_RANK_FILE.match(name).group(1)) if _RANK_FILE.match(name) else -1  # type: ignore[union-attr]
    try:
        data = read_json_file(path, name)
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        return RankRecord(rank, name, "unreadable", None, "not a JSON object", None, None)
    return RankRecord(rank=rank, path=name, status=str(data.get("status", "unknown")),
                      exit_code=_int(data.get("exit_code")), error=str(data["error"]) if data.get("error") else None,
                      last_step=_int(data.get("last_step")), world_size=_int(data.get("world_size")))
