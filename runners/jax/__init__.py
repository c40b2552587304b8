"""`--runner jax`: the JAX + optax reference trainer, or the user's JAX command.

--device picks the platform and is enforced: JAX_PLATFORMS is set for the child, so JAX raises instead of
quietly training on the CPU when the TPU or GPU is missing (the seeds' "JAX CUDA" that never existed). Preflight
asks JAX in a separate process of the training's interpreter which devices exist (the wrapper never opens a TPU
the training then could not), and stops with what it found and how to fix it. After the run the platform, device
count and every device the training saw (training_output/jax_run.json, from the reference) go into the
environment record."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from auditor.capture.environment import interpreter_of
from auditor.capture.session import LaunchSpec, RunRequest
from runners import Runner, plan_from_config, reference_command, user_command

DEVICE_PROBE = Path(__file__).with_name("devices.py")
RUN_FILE = "training_output/jax_run.json"
PLATFORMS = {"cpu": "cpu", "cuda": "cuda", "gpu": "cuda", "tpu": "tpu"}
_FIXES = {"tpu": "run on a TPU VM with `pip install jax[tpu]`, or use --device cpu",
          "cuda": "install a CUDA build (`pip install jax[cuda12]`) on a machine with an NVIDIA GPU and driver, "
                  "or use --device cpu"}


def probe_devices(python: str, platform: str | None) -> dict[str, Any]:
    """What JAX sees under `python` (runners/jax/devices.py in its own process)."""
    command = [python, str(DEVICE_PROBE)] + ([platform] if platform else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        return {"error": f"the JAX device probe did not answer: {type(exc).__name__}: {exc}"[:300]}
    return result


class JaxRunner(Runner):
    """With no command, `python -m runners.jax.reference`; with one, that command under JAX_PLATFORMS."""

    name = "jax"
    supports_torchrun = False

    def build(self, request: RunRequest) -> LaunchSpec:
        env = {"JAX_PLATFORMS": PLATFORMS[request.device]} if request.device in PLATFORMS else {}
        if request.command:
            return user_command(request, env)
        from runners.pytorch import reference_plan
        from runners.pytorch.reference import ReferenceConfig, override

        config = override(ReferenceConfig(), request.config, None)
        if request.seed is not None:
            config.seed = request.seed
        command = reference_command("runners.jax.reference", request, config.seed)
        plan = reference_plan(config, plan_from_config(None, request.device).device, "reference-decoder-jax")
        return LaunchSpec(command=command, env=env, plan=plan, seed=config.seed)

    def preflight(self, request: RunRequest, spec: LaunchSpec) -> list[str]:
        platform = PLATFORMS.get(request.device)
        if platform is None:
            return []
        found = probe_devices(interpreter_of(spec.command), "gpu" if platform == "cuda" else platform)
        if found.get("error") and "jax" not in found:
            return [f"--device {request.device}: {found['error']}"]
        if found.get("wanted_devices"):
            return []
        seen = ", ".join(f"{d['platform']}:{d['id']} ({d['kind']})" for d in found.get("devices", [])) or "none"
        why = str(found.get("wanted_error", "")).split(". Available")[0][:200]
        return [f"--device {request.device}: JAX {found.get('jax', '?')} has no {platform} device here "
                f"(it sees: {seen}; {why}); {_FIXES.get(platform, 'use --device cpu')}"]

    def collect(self, request: RunRequest, spec: LaunchSpec, folder: Path) -> dict[str, Any]:
        try:
            facts = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        devices = facts.get("devices") or []
        if spec.plan.device is None and facts.get("backend"):
            spec.plan.device = {"gpu": "cuda"}.get(facts["backend"], facts["backend"])
            spec.plan.source["device"] = RUN_FILE
        return {"jax_backend": facts.get("backend"), "jax_device_count": facts.get("device_count"),
                "jax_device_kind": devices[0].get("kind") if devices else None, "jax_run_devices": devices}
