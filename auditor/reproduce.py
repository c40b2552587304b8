"""`audit reproduce`: re-run a recorded run (its runner, command, config copy and seed) into a new folder, then
compare the two step by step: the loss at every logged step, the final checkpoint's digests, the environment.

Verdict: `bitwise` (every loss equal and the final checkpoint byte-identical), `within-tolerance` (every loss
within atol + rtol·|original|), `diverged` (otherwise, or the re-run failed or logged other steps), with the
first step that differs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.capture.session import RunRequest
from auditor.errors import AuditInputError
from auditor.evidence.envsnap import snapshot_json
from auditor.evidence.paths import relative_name
from auditor.evidence.run import RunEvidence

FINAL_MODEL = "training_output/final_model"
_ENV_KEYS = ("python", "torch", "cuda", "cudnn", "transformers", "jax", "jax_backend", "numpy", "platform", "gpu")


@dataclass
class Comparison:
    """How the re-run compares with the original."""

    verdict: str
    steps_compared: int = 0
    first_divergence: tuple[int, float, float] | None = None
    max_abs_diff: float = 0.0
    checkpoint_identical: bool | None = None
    checkpoint_notes: list[str] = field(default_factory=list)
    env_differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    problem: str | None = None


def request_from(folder: Path, out: Path, seed: int | None) -> RunRequest:
    """The RunRequest that repeats the run recorded in `folder`'s run_manifest.json (exit 2 without one)."""
    ev = RunEvidence(folder)
    manifest = ev.run_manifest
    if manifest is None or not manifest.runner:
        raise AuditInputError(f"{folder}: no run_manifest.json from `audit run` (runner, command, config, seed): "
                              "only runs made by `audit run` can be reproduced")
    command = list(manifest.command)
    reference = f"runners.{manifest.runner}.reference"
    if reference in command:
        command = []  # a reference run: the runner rebuilds its own command from config and seed
    elif "runners.rank" in command:
        command = command[command.index("runners.rank") + 1:]
        command = [manifest.command[0], *command]
    config = None
    if manifest.config_path:
        config = ev.contained(manifest.config_path)
        if config is None or relative_name(folder, config) not in ev.files:
            where = "leads outside the run folder" if config is None else "is missing (or not a regular file)"
            raise AuditInputError(f"{folder}: the recorded config {manifest.config_path!r} {where}; only a config "
                                  "copied into the run folder can be re-run")
    world = manifest.environment.get("world_size")
    return RunRequest(runner=manifest.runner, command=command, config=config, out=out,
                      device=manifest.plan.device or "auto", seed=manifest.seed if seed is None else seed,
                      nproc_per_node=world if isinstance(world, int) and world > 0 else 1,
                      evidence_only=manifest.evidence_only)


def _final_digests(folder: Path) -> dict[str, str | None]:
    """Digests of the final model's regular files (the folder walk's: never a file behind a link)."""
    ev = RunEvidence(folder)
    files = [folder / rel for rel in ev.folder.under(FINAL_MODEL)]
    return {p.relative_to(folder / FINAL_MODEL).as_posix(): d for p, d in ev.sha256(files).items()}


def _env(folder: Path) -> dict[str, Any]:
    data = snapshot_json(folder)
    return {k: data.get(k) for k in _ENV_KEYS}


def needs_consent(request: RunRequest) -> bool:
    """Whether the re-run executes a command taken from the evidence (anything but a built-in reference runner's
    own trainer): that command is shown and must be confirmed (--yes, or yes at a terminal)."""
    return bool(request.command)


def compare_runs(original: Path, rerun: Path, rtol: float, atol: float, rerun_ok: bool = True) -> Comparison:
    """Step-by-step comparison of two run folders' losses, final checkpoints and environments."""
    first, second = RunEvidence(original).metrics, RunEvidence(rerun).metrics
    result = Comparison(verdict="bitwise")
    env_a, env_b = _env(original), _env(rerun)
    result.env_differences = {k: (env_a.get(k), env_b.get(k)) for k in _ENV_KEYS if env_a.get(k) != env_b.get(k)}
    digests_a, digests_b = _final_digests(original), _final_digests(rerun)
    result.checkpoint_identical = bool(digests_a) and digests_a == digests_b
    result.checkpoint_notes = [name for name in sorted(set(digests_a) | set(digests_b))
                               if digests_a.get(name) != digests_b.get(name)]
    if not rerun_ok:
        result.verdict, result.problem = "diverged", "the re-run did not finish successfully"
        return result
    if first is None or second is None or not first.count:
        result.verdict, result.problem = "diverged", "no losses to compare in one of the runs"
        return result
    a = dict(zip(first.steps, first.losses, strict=True))
    b = dict(zip(second.steps, second.losses, strict=True))
    if list(a) != list(b):
        missing = sorted(set(a) ^ set(b))
        result.verdict, result.problem = "diverged", f"the runs logged different steps (first: {missing[0]})"
        return result
    exact = True
    for step, loss in a.items():
        other = b[step]
        result.steps_compared += 1
        diff = abs(loss - other) if math.isfinite(loss) and math.isfinite(other) else math.inf
        if loss == other or (math.isnan(loss) and math.isnan(other)):
            continue
        exact = False
        result.max_abs_diff = max(result.max_abs_diff, diff)
        if diff > atol + rtol * abs(loss) and result.first_divergence is None:
            result.first_divergence = (step, loss, other)
    if result.first_divergence is not None:
        result.verdict = "diverged"
    elif not exact or not result.checkpoint_identical:
        result.verdict = "within-tolerance"
    return result


def render(result: Comparison, original: Path, rerun: Path, rtol: float, atol: float) -> str:
    """The verdict and what it rests on, as text."""
    lines = [f"reproduce: {result.verdict.upper()} ({original} → {rerun}; rtol {rtol:g}, atol {atol:g})"]
    if result.problem:
        lines.append(f"  {result.problem}")
    lines.append(f"  losses: {result.steps_compared} logged step(s) compared, max |Δ| {result.max_abs_diff:.3g}")
    if result.first_divergence is not None:
        step, was, now = result.first_divergence
        lines.append(f"  first diverging step: {step} (loss {was:.6g} → {now:.6g})")
    if result.checkpoint_identical:
        lines.append("  final checkpoint: byte-identical")
    else:
        lines.append(f"  final checkpoint: differs ({', '.join(result.checkpoint_notes) or 'missing'})")
    for key, (was, now) in result.env_differences.items():
        lines.append(f"  environment {key}: {was} → {now}")
    return "\n".join(lines) + "\n"
