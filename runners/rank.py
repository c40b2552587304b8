"""One torchrun rank under `audit run --nproc-per-node N`:

    python -m torch.distributed.run ... -m runners.rank (SCRIPT | -m MODULE) ARGS...

Writes ranks/rank<R>.json (rank, pid, host, start) before the training code runs in this same process, and
rewrites it with the exit code, the error and the last step the rank logged when the code returns or raises. A
rank stopped by SIGTERM (how torchrun stops the others when one fails) records exit 143; a rank killed by
SIGKILL never rewrites it: its record stays `running`, which verify reports as a rank that never finished.
Uses only the standard library and auditor.runtime."""

from __future__ import annotations

import os
import runpy
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

from auditor import runtime
from auditor.capture.files import utc_now, write_json_atomic


def _write(record: dict[str, Any]) -> None:
    write_json_atomic(runtime.run_dir() / "ranks" / f"rank{record['rank']}.json", record)


def _code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


TERMINATED = 128 + 15


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(TERMINATED)


def main(argv: list[str]) -> int:
    if not argv or (argv[0] == "-m" and len(argv) < 2):
        print("usage: python -m runners.rank (SCRIPT | -m MODULE) [ARGS...]", file=sys.stderr)
        return 2
    env = os.environ
    record: dict[str, Any] = {"rank": int(env.get("RANK", "0")), "local_rank": int(env.get("LOCAL_RANK", "0")),
                              "world_size": int(env.get("WORLD_SIZE", "1")), "pid": os.getpid(),
                              "host": socket.gethostname(), "started_at": utc_now(), "status": "running"}
    _write(record)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # torchrun stops the other ranks with SIGTERM
        signal.signal(signal.SIGTERM, _terminated)
    code, error = 0, None
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            sys.path.insert(0, str(Path(argv[0]).resolve().parent))
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        code = _code(exc)
        if code == TERMINATED:
            error = "stopped by SIGTERM (torchrun stops every rank when one fails)"
    except BaseException as exc:  # the training's own error: record it, print it as Python would, exit 1
        code, error = 1, f"{type(exc).__name__}: {exc}"[:300]
        traceback.print_exc()
    record.update(status="exited", exit_code=code, error=error, ended_at=utc_now(),
                  last_step=runtime.recorder().last_step)
    _write(record)
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
