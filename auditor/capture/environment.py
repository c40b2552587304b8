"""The environment snapshot: what the training's interpreter saw (versions, devices, packages), the host, and
selected environment variables with secrets redacted."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from auditor.evidence.secrets import redact_env

ENV_PREFIXES = ("CUDA_", "NCCL_", "NVIDIA_", "PYTORCH_", "TORCH_", "XLA_", "JAX_", "TPU_", "HF_", "TRANSFORMERS_",
                "OMP_", "MKL_", "CUBLAS_", "CUDNN_", "AUDITOR_")
ENV_NAMES = ("LD_LIBRARY_PATH", "PATH", "VIRTUAL_ENV", "CONDA_DEFAULT_ENV", "SLURM_JOB_ID", "WORLD_SIZE",
             "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
PROBE_TIMEOUT_S = 120


def interpreter_of(cmd: list[str]) -> str:
    """The Python interpreter a command runs (`python train.py`, `torchrun ...`), else ours."""
    if cmd:
        first = Path(cmd[0]).name
        if first.startswith("python"):
            found = shutil.which(cmd[0])
            if found:
                return found
    return sys.executable


def selected_env(env: dict[str, str], prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    """The variables worth recording (framework, device, launcher, user prefixes), secrets redacted."""
    wanted = ENV_PREFIXES + tuple(prefixes)
    return {k: redact_env(k, v) for k, v in sorted(env.items()) if k.startswith(wanted) or k in ENV_NAMES}


def start_probe(python: str, env: dict[str, str]) -> subprocess.Popen[str] | str:
    """Start the standalone probe under the training's interpreter, at the lowest CPU priority, beside the
    training (importing the frameworks takes seconds that must not be added to the run); or why it could not."""
    script = Path(__file__).with_name("probe.py")
    nice = shutil.which("nice")
    try:
        return subprocess.Popen([*([nice, "-n", "19"] if nice else []), python, str(script)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                start_new_session=True)  # the user's Ctrl-C is for the training, not the probe
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"[:300]


def finish_probe(proc: subprocess.Popen[str] | str) -> dict[str, Any]:
    """The probe's facts; on failure, say why instead of guessing."""
    if isinstance(proc, str):
        return {"probe_error": proc}
    try:
        out, err = proc.communicate(timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"probe_error": f"the probe did not answer within {PROBE_TIMEOUT_S}s"}
    try:
        data = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return {"probe_error": f"exit {proc.returncode}: {err.strip()[-300:]}"}
    return data


def snapshot(facts: dict[str, Any], env: dict[str, str], prefixes: tuple[str, ...] = ()) -> dict[str, Any]:
    """The env_snapshot.json document: the probe's facts, the host, and the selected environment variables."""
    facts["host"] = platform.node()
    facts["cpu_count"] = os.cpu_count()
    facts["env"] = selected_env(env, prefixes)
    return facts
