"""`--nproc-per-node N`: the launch command through torchrun, each rank wrapped by runners.rank so that every
rank's start and exit are recorded (ranks/rank<R>.json) and its output kept (ranks/logs/, via torchrun's --tee)."""

from __future__ import annotations

import sys
from pathlib import Path

from auditor.errors import AuditInputError


def python_target(command: list[str]) -> tuple[str, list[str]]:
    """(interpreter, script-or-`-m module` argv) of a `python ...` command; exit 2 for anything else."""
    if command and (Path(command[0]).name.startswith("python") or command[0] == sys.executable):
        rest = command[1:]
        if rest and ((rest[0] == "-m" and len(rest) > 1) or not rest[0].startswith("-")):
            return command[0], rest
    shown = " ".join(command[:3]) or "(none)"
    raise AuditInputError(f"--nproc-per-node needs a Python command (`python train.py ...` or `python -m pkg ...`) "
                          f"to launch through torchrun; got {shown!r}")


def torchrun_command(command: list[str], nproc: int, folder: Path) -> list[str]:
    """The command that runs `command` as `nproc` ranks on this node (standalone rendezvous on a free port)."""
    python, target = python_target(command)
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "--log-dir", str((folder / "ranks" / "logs").resolve()), "--tee", "3", "-m", "runners.rank", *target]


def tidy_rank_logs(folder: Path) -> None:
    """torchrun writes ranks/logs/<job id>/attempt_<k>/<local rank>/std{out,err}.log; keep each non-empty one as
    ranks/rank<R>.std{out,err}.log (attempt suffix when torchrun restarted) and drop the nested tree."""
    import shutil

    logs = folder / "ranks" / "logs"
    if not logs.is_dir():
        return
    for path in sorted(logs.glob("*/attempt_*/*/std*.log")):
        attempt, rank = path.parent.parent.name.removeprefix("attempt_"), path.parent.name
        if not rank.isdigit() or path.stat().st_size == 0:
            continue
        suffix = "" if attempt == "0" else f".attempt{attempt}"
        path.replace(folder / "ranks" / f"rank{rank}{suffix}.{path.stem}.log")
    shutil.rmtree(logs, ignore_errors=True)
