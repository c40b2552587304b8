"""Reading Linux's /proc: the one parser of a process's stat line."""

from __future__ import annotations


def stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, session, ...), or None when the
    process is gone or /proc cannot be read. The name is skipped by its closing parenthesis: it may hold spaces."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()
