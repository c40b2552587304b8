"""Runner adapters: each builds the command and environment for its framework, runs preflight checks, and
collects framework-specific evidence after the run. One registry; frameworks are imported lazily."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from auditor.capture.session import LaunchSpec, RunRequest
from auditor.evidence.plan import normalize_device, plan_fields
from auditor.models import Plan


class Runner:
    """The adapter interface (the defaults suit a plain command)."""

    name = "base"
    supports_torchrun = True  # --nproc-per-node N launches the (Python) command through torchrun

    def build(self, request: RunRequest) -> LaunchSpec:
        """The command to launch, its environment additions and the plan."""
        raise NotImplementedError

    def preflight(self, request: RunRequest, spec: LaunchSpec) -> list[str]:
        """Problems that must stop the run before launch (empty: go)."""
        return []

    def collect(self, request: RunRequest, spec: LaunchSpec, folder: Path) -> dict[str, Any]:
        """Framework evidence gathered after the child ended; returns facts for env_snapshot.json (the plain
        values also go into the manifest's environment). It may complete `spec.plan` from what the run recorded."""
        return {}


def plan_from_config(config: Path | None, device: str) -> Plan:
    """The plan a user's config YAML declares (the keys verify reads), and the requested device."""
    fields: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if config is not None:
        import yaml

        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            data = None
        fields, sources = plan_fields(data, config.name)
    if device != "auto":
        fields["device"] = normalize_device(device)
        sources["device"] = "--device"
    return Plan(**fields, source=sources)


def reference_command(module: str, request: RunRequest, seed: int, *extra: str) -> list[str]:
    """`python -m <module> --seed N [extra] [--config F]`: how every reference trainer is launched."""
    command = [sys.executable, "-m", module, "--seed", str(seed), *extra]
    if request.config is not None:
        command += ["--config", str(request.config)]
    return command


def user_command(request: RunRequest, env: dict[str, str] | None = None) -> LaunchSpec:
    """The user's own command as given, with the plan its config YAML declares."""
    return LaunchSpec(command=list(request.command), env=env or {},
                      plan=plan_from_config(request.config, request.device), seed=request.seed)


def torch_device_problems(device: str) -> list[str]:
    """Why torch cannot give the run the device it asked for (empty: it can). Imports torch only for cuda."""
    if device != "cuda":
        return []
    import torch

    if not torch.cuda.is_available():
        return [f"--device cuda, but torch {torch.__version__} sees no CUDA device (a CPU build of torch, no "
                "GPU, or CUDA_VISIBLE_DEVICES hides it): install a CUDA build or use --device cpu"]
    return []


RUNNERS: dict[str, str] = {
    "pytorch": "runners.pytorch:PytorchRunner",
    "transformers": "runners.transformers:TransformersRunner",
    "jax": "runners.jax:JaxRunner",
    "command": "runners.command:CommandRunner",
}


def get_runner(name: str) -> Runner:
    """The registered runner `name` (imported on demand)."""
    module, _, attr = RUNNERS[name].partition(":")
    runner: Runner = getattr(importlib.import_module(module), attr)()
    return runner
