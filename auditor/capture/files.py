"""Writing into a run folder without ever leaving a half-written file: atomic replace, and the folder lock."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from auditor.errors import AuditInputError

LOCK_NAME = ".audit.lock"
RESERVE_BYTES = 64 * 1024  # what the lock file holds for the final manifest on a full disk


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with an explicit offset (what the manifest records)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write `text` (or bytes) to `path` through a temporary file and a rename: readers see the old or the new
    file, and a link at `path` is replaced, never written through."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a stale temp file (or a link planted at its name) is removed, never written through
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # replaces a link at `path` itself: the write never lands on a link's target
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Atomically write `data` as indented JSON."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


class FolderLock:
    """An exclusive lock file in the run folder (O_EXCL): a second `audit run` into the folder is refused.

    A lock left by a dead wrapper on this host (its pid is gone) is taken over; one from another host, or from
    a live process, is not."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        """Take the lock or raise AuditInputError naming its holder."""
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._stale():
                    raise AuditInputError(f"{self.path.parent} is in use by another `audit run` "
                                          f"({self._holder()}); wait for it or choose another --out") from None
                self.path.unlink(missing_ok=True)
                continue
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()}, handle)
                    # blanks after the JSON (still valid JSON) reserve room: when the disk fills during the
                    # run, releasing the lock frees them so that the final manifest can still be written
                    handle.write(" " * RESERVE_BYTES)
            except OSError as exc:
                self.path.unlink(missing_ok=True)
                raise AuditInputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
            self.held = True
            return
        raise AuditInputError(f"cannot lock {self.path}: remove it if no `audit run` is using the folder")

    def _holder(self) -> str:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return f"pid {data.get('pid')} on {data.get('host')} since {data.get('since')}"
        except (OSError, ValueError):
            return "unknown holder"

    def _stale(self) -> bool:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return data.get("host") == socket.gethostname() and isinstance(data.get("pid"), int) and not pid_alive(
            data["pid"])

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def link_tree(source: Path, target: Path) -> int:
    """Bring the files under `source` into `target` (hard links where the filesystem allows, copies otherwise,
    so a multi-GB checkpoint costs no second copy on one disk); returns how many files. Symlinks are skipped:
    evidence holds files, not pointers out of the folder."""
    count = 0
    for path in sorted(source.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        link_file(path, target / path.relative_to(source))
        count += 1
    return count


def link_file(source: Path, dest: Path) -> None:
    """A hard link to `source` at `dest`, or a copy where linking is not possible (another filesystem)."""
    import shutil

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)
