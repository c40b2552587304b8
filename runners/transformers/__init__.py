"""`--runner transformers`: the reference Trainer run, or an unmodified user Trainer script with the evidence
callback injected (runners/transformers/inject/sitecustomize.py on PYTHONPATH patches Trainer.__init__).

After the run, the Trainer's arguments recorded by the callback (training_output/trainer_run.json) fill the plan
the command did not declare, `logging_nan_inf_filter` goes into the environment, and checkpoints or a final
model the script saved outside the run folder are brought in (hard links where possible): the evidence folder
must hold what verify checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import auditor
from auditor.capture.files import link_file, link_tree
from auditor.capture.session import LaunchSpec, RunRequest
from auditor.evidence.paths import is_within
from auditor.models import Plan
from runners import Runner, reference_command, torch_device_problems, user_command

INJECT = Path(__file__).with_name("inject")
RUN_FILE = "training_output/trainer_run.json"
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


class TransformersRunner(Runner):
    """With no command, `python -m runners.transformers.reference`; with one, that command plus the callback."""

    name = "transformers"

    def build(self, request: RunRequest) -> LaunchSpec:
        if request.command:
            import os

            python_path = os.pathsep.join(p for p in (str(INJECT), os.environ.get("PYTHONPATH")) if p)
            root = str(Path(auditor.__file__).resolve().parent.parent)
            return user_command(request, {"PYTHONPATH": python_path, "AUDITOR_PACKAGE_ROOT": root})
        from runners.pytorch.reference import load_config
        from runners.transformers.reference import gpt2_config

        config = load_config(request.config, request.device)
        if request.seed is not None:
            config.seed = request.seed
        command = reference_command("runners.transformers.reference", request, config.seed, "--device", config.device)
        arch = {k: v for k, v in gpt2_config(config).items() if not k.endswith("_token_id")}
        plan = Plan(max_steps=config.max_steps, device=None if config.device == "auto" else config.device,
                    batch_size=config.batch_size, max_seq_length=config.max_seq_length, optimizer="adamw",
                    eval_examples=config.eval_examples, model_name="reference-gpt2", architecture=arch)
        return LaunchSpec(command=command, plan=plan, seed=config.seed)

    def preflight(self, request: RunRequest, spec: LaunchSpec) -> list[str]:
        if request.device == "tpu":
            import importlib.util

            if importlib.util.find_spec("torch_xla") is None:
                return ["--device tpu: Trainer reaches a TPU through torch_xla, which is not installed here "
                        "(install torch_xla on a TPU VM, or use --runner jax)"]
            return []
        return torch_device_problems(request.device)

    def collect(self, request: RunRequest, spec: LaunchSpec, folder: Path) -> dict[str, Any]:
        path = folder / RUN_FILE
        try:
            facts = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"hf_callback": "no Trainer started training: the callback recorded nothing"}
        env: dict[str, Any] = {"hf_callback": "recorded", "logging_nan_inf_filter": facts.get("logging_nan_inf_filter")}
        _fill_plan(spec.plan, facts)
        output_dir = Path(facts["output_dir"]) if facts.get("output_dir") else None
        if output_dir is not None and output_dir.is_dir() and not is_within(output_dir, folder):
            env["hf_output_dir"] = str(output_dir)
            env["hf_harvested_files"] = _harvest(output_dir, folder / "training_output")
        return env


def _fill_plan(plan: Plan, facts: dict[str, Any]) -> None:
    """Plan fields the command did not declare, from the Trainer's own arguments."""
    taken = {"max_steps": facts.get("max_steps"), "batch_size": facts.get("per_device_train_batch_size"),
             "gradient_accumulation_steps": facts.get("gradient_accumulation_steps"),
             "optimizer": facts.get("optim"), "model_name": facts.get("model_name"),
             "num_parameters": facts.get("num_parameters"),
             "dtype": "bfloat16" if facts.get("bf16") else "float16" if facts.get("fp16") else None,
             "device": "cuda" if str(facts.get("device", "")).startswith("cuda") else
             "cpu" if facts.get("device") == "cpu" else None}
    for key, value in taken.items():
        if value is not None and getattr(plan, key) is None:
            setattr(plan, key, value)
            plan.source[key] = RUN_FILE
    if not plan.architecture and isinstance(facts.get("architecture"), dict):
        plan.architecture = {k: v for k, v in facts["architecture"].items() if isinstance(v, (int, float, str, bool))}
        plan.source["architecture"] = RUN_FILE


def _harvest(output_dir: Path, training_output: Path) -> int:
    """Checkpoints (checkpoint-N/) and a final model saved in the Trainer's output_dir, into the run folder."""
    count = 0
    for checkpoint in sorted(output_dir.glob("checkpoint-*")):
        if checkpoint.is_dir() and checkpoint.name[len("checkpoint-"):].isdigit():
            count += link_tree(checkpoint, training_output / "checkpoints" / checkpoint.name)
    if (output_dir / "config.json").is_file() and any((output_dir / w).is_file() for w in _WEIGHTS):
        final = training_output / "final_model"
        for item in output_dir.iterdir():
            if item.is_file() and not item.is_symlink():
                link_file(item, final / item.name)
                count += 1
    return count

