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


def probe(python: str, env: dict[str, str]) -> dict[str, Any]:
    """Run the standalone probe under the training's interpreter; on failure, say why instead of guessing."""
    script = Path(__file__).with_name("probe.py")
    try:
        done = subprocess.run([python, str(script)], env=env, capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"probe_error": f"{type(exc).__name__}: {exc}"[:300]}
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return {"probe_error": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
    return data


def snapshot(python: str, env: dict[str, str], prefixes: tuple[str, ...] = ()) -> dict[str, Any]:
    """The env_snapshot.json document."""
    facts = probe(python, env)
    facts["host"] = platform.node()
    facts["cpu_count"] = os.cpu_count()
    facts["env"] = selected_env(env, prefixes)
    return facts
