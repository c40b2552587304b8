"""`--runner pytorch`: the built-in reference trainer, or the user's script logging through auditor.runtime."""

from __future__ import annotations

from auditor.capture.session import LaunchSpec, RunRequest
from auditor.models import Plan
from runners import Runner, reference_command, torch_device_problems, user_command
from runners.pytorch.reference import ReferenceConfig, load_config


def reference_parameters(hidden: int, layers: int, ff: int, vocab: int, positions: int) -> int:
    """Exact parameter count of the reference decoder (tied head), from its config alone."""
    block = 2 * hidden + 3 * hidden * hidden + 3 * hidden + hidden * hidden + hidden + 2 * hidden
    block += hidden * ff + ff + ff * hidden + hidden
    return vocab * hidden + positions * hidden + layers * block + 2 * hidden


def reference_plan(config: ReferenceConfig, device: str | None, model_name: str) -> Plan:
    """What the reference decoder (pytorch or jax) sets out to do, with its exact parameter count."""
    arch = config.model_config()
    return Plan(max_steps=config.max_steps, device=device, batch_size=config.batch_size,
                max_seq_length=config.max_seq_length, optimizer="adamw", eval_examples=config.eval_examples,
                model_name=model_name,
                num_parameters=reference_parameters(config.hidden_size, config.num_hidden_layers,
                                                    config.intermediate_size, config.vocab_size,
                                                    config.max_seq_length),
                architecture={k: v for k, v in arch.items() if isinstance(v, (int, str)) and k != "architectures"})


class PytorchRunner(Runner):
    """With no command, `python -m runners.pytorch.reference`; with one, that command."""

    name = "pytorch"

    def build(self, request: RunRequest) -> LaunchSpec:
        if request.command:
            return user_command(request)
        config = load_config(request.config, request.device)
        if request.seed is not None:
            config.seed = request.seed
        command = reference_command("runners.pytorch.reference", request, config.seed, "--device", config.device)
        plan = reference_plan(config, None if config.device == "auto" else config.device, "reference-decoder")
        return LaunchSpec(command=command, plan=plan, seed=config.seed)

    def preflight(self, request: RunRequest, spec: LaunchSpec) -> list[str]:
        if request.device == "tpu":
            return ["--device tpu: the pytorch runner trains on cpu or cuda (TPUs need --runner jax)"]
        return torch_device_problems(request.device)
