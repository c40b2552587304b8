"""The one path-containment check: every path taken from evidence stays inside the run folder."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath


def contained_path(root: Path, relative: str) -> Path | None:
    """`root/relative` if `relative` is a relative path that stays inside `root` (symlinks resolved),
    else None. Absolute paths, drive letters, `..` escapes and symlinks leading out are refused."""
    if not relative or "\x00" in relative:
        return None
    if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).is_absolute():
        return None
    if PureWindowsPath(relative).drive:
        return None
    parts = relative.replace("\\", "/").split("/")
    if any(p == ".." for p in parts):
        return None
    candidate = root.joinpath(*[p for p in parts if p not in ("", ".")])
    return candidate if is_within(candidate, root) else None


def is_within(path: Path, root: Path) -> bool:
    """Whether `path`, symlinks resolved, is `root` or lies under it."""
    try:
        real_root = os.path.realpath(root)
        real = os.path.realpath(path)
    except (OSError, RuntimeError):
        return False
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def output_inside(output: Path, folder: Path) -> bool:
    """Whether writing `output` would write into `folder` (links resolved, the file need not exist yet)."""
    return is_within(output, folder)


def relative_name(root: Path, path: Path) -> str:
    """`path` relative to `root`, with forward slashes (the form used in reports)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
