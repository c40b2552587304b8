"""`--runner command`: any command. Metrics come from auditor.runtime, an HF trainer_state.json, or the log."""

from __future__ import annotations

from auditor.capture.session import LaunchSpec, RunRequest
from auditor.errors import AuditInputError
from runners import Runner, plan_from_config


class CommandRunner(Runner):
    """Runs the command after `--` as it is."""

    name = "command"

    def build(self, request: RunRequest) -> LaunchSpec:
        if not request.command:
            raise AuditInputError("--runner command needs the command after `--`, e.g. "
                                  "`audit run --runner command -- python train.py`")
        return LaunchSpec(command=list(request.command), plan=plan_from_config(request.config, request.device),
                          seed=request.seed)
