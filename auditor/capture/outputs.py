"""Evidence a command wrote into its working directory (TensorBoard runs/, Lightning's logs and checkpoints,
mlruns/, model.pt): files that are new or changed since launch and that a registered evidence format reads are
brought into `<run folder>/outputs/` (hard links where possible), so an unchanged script's evidence is audited.

Only files of known formats come in, each with its own directory's other new files when it lies in a
subdirectory (an MLflow run's params/ and tags/, Lightning's hparams.yaml); never a file of the working
directory's top level that no format reads, never through a link."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from auditor.capture.files import link_file
from auditor.evidence.opener import Folder
from auditor.evidence.paths import is_within
from auditor.evidence.sources import CHECKPOINTS, METRICS
from auditor.evidence.sources.interface import name_matches

OUTPUTS = "outputs"
MAX_DEPTH = 8
MAX_ENTRIES = 200_000
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache",
                       ".pytest_cache", ".ruff_cache", ".tox", "site-packages", ".cache"})


@dataclass
class OutputWatch:
    """The working directory's files at launch (path → size and mtime), to see what the run wrote."""

    cwd: Path
    exclude: Path
    before: dict[str, tuple[int, int]] = field(default_factory=dict)
    truncated: bool = False

    def __post_init__(self) -> None:
        self.before = dict(self._scan())

    def _scan(self) -> Iterator[tuple[str, tuple[int, int]]]:
        excluded = os.path.realpath(self.exclude)
        seen = 0
        stack: list[tuple[str, int]] = [("", 0)]
        while stack:
            rel_dir, depth = stack.pop()
            try:
                entries = list(os.scandir(self.cwd / rel_dir if rel_dir else self.cwd))
            except OSError:
                continue
            for entry in entries:
                seen += 1
                if seen > MAX_ENTRIES:
                    self.truncated = True
                    return
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    if entry.name not in SKIP_DIRS and depth < MAX_DEPTH and os.path.realpath(entry.path) != excluded:
                        stack.append((rel, depth + 1))
                elif stat.S_ISREG(info.st_mode):
                    yield rel, (info.st_size, info.st_mtime_ns)

    def written(self) -> list[str]:
        """Files new or changed since launch, sorted."""
        return sorted(rel for rel, stamp in self._scan() if self.before.get(rel) != stamp)

    def collect(self, folder: Path) -> list[str]:
        """Bring the run's evidence into folder/outputs/; returns the folder-relative paths brought in."""
        if _inside(self.cwd, folder):
            return []  # the command ran inside the run folder: its outputs are already there
        written = self.written()
        view = Folder(self.cwd, written)
        chosen: set[str] = set()
        for source in METRICS.values():
            for rel in written:
                if name_matches(rel, source.info.looks_for) and source.claims(rel, view.head(rel)):
                    chosen.update(_with_directory(rel, written))
        for checkpoint in CHECKPOINTS.values():
            for candidate in checkpoint.find(view):
                location = candidate.location
                chosen.update([location] if location in written else _under(location, written))
        brought = []
        for rel in sorted(chosen):
            dest = folder / OUTPUTS / rel
            if dest.exists() or dest.is_symlink():
                continue
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not is_within(dest.parent, folder):
                    continue  # the training put a link into the run folder: never write through it
                link_file(self.cwd / rel, dest)
            except OSError:
                continue
            brought.append(f"{OUTPUTS}/{rel}")
        return brought


def _inside(path: Path, folder: Path) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return real == root or real.startswith(root + os.sep)


def _under(directory: str, written: list[str]) -> list[str]:
    prefix = directory.rstrip("/") + "/" if directory else ""
    return [rel for rel in written if rel.startswith(prefix)]


def _with_directory(rel: str, written: list[str]) -> list[str]:
    """A claimed file and, when it lies in a subdirectory, the other new files of that directory tree (for a
    run store: the run's directory, e.g. mlruns/<exp>/<run>/)."""
    parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
    return [rel, *(_under(parent, written) if parent else [])]
