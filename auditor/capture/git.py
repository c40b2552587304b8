"""Source state at launch: commit, branch, dirty files, and the uncommitted diff saved into the run folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

from auditor.evidence.digests import sha256_file
from auditor.models import GitInfo

DIFF_NAME = "git_diff.patch"


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def capture_git(cwd: Path, run_dir: Path) -> GitInfo | None:
    """GitInfo for the repository around `cwd`, or None outside one (or without git). The run folder's own
    files are not counted as changes; a diff of tracked changes is written to git_diff.patch and hashed."""
    top = _git(cwd, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    root = Path(top.strip())
    commit = (_git(root, "rev-parse", "HEAD") or "").strip() or None
    branch = (_git(root, "rev-parse", "--abbrev-ref", "HEAD") or "").strip() or None
    status = _git(root, "status", "--porcelain", "--untracked-files=all") or ""
    try:
        inside = run_dir.resolve().relative_to(root.resolve()).as_posix() + "/"
    except ValueError:
        inside = None
    changed = []
    for line in status.splitlines():
        name = line[3:].split(" -> ")[-1].strip('"')
        if name and not (inside and name.startswith(inside)):
            changed.append(name)
    info = GitInfo(commit=commit, branch=branch, dirty=bool(changed), changed_files=changed)
    if changed and commit:
        diff = _git(root, "diff", "HEAD", "--binary")
        if diff:
            path = run_dir / DIFF_NAME
            path.write_text(diff, encoding="utf-8")
            info.diff_path = DIFF_NAME
            info.diff_sha256 = sha256_file(path)
    return info
