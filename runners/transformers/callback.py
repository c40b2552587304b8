"""The evidence callback for HuggingFace Trainer: every on_log record goes to metrics.jsonl through
auditor.runtime (the HF on_log shape verify reads), and the arguments that decide what the evidence means go to
training_output/trainer_run.json, `logging_nan_inf_filter` among them (True by default: it replaces a NaN or
inf loss with the running mean, so only grad_norm shows the divergence). Runs in the training process; only the
world's process zero writes."""

from __future__ import annotations

import json
import os
from typing import Any

from transformers import TrainerCallback

from auditor import runtime

RUN_FILE = "training_output/trainer_run.json"
_ARCH_KEYS = ("model_type", "vocab_size", "hidden_size", "n_embd", "num_hidden_layers", "n_layer",
              "num_attention_heads", "n_head", "num_key_value_heads", "intermediate_size", "n_inner",
              "max_position_embeddings", "n_positions", "tie_word_embeddings")


def run_facts(args: Any, state: Any, model: Any) -> dict[str, Any]:
    """What the Trainer was asked to do, as JSON (no tokens: only the listed arguments are read)."""
    config = getattr(model, "config", None)
    config_dict = config.to_dict() if config is not None else {}
    params = sum(p.numel() for p in model.parameters()) if model is not None else None
    return {
        "output_dir": os.path.abspath(args.output_dir) if args.output_dir else None,
        "logging_nan_inf_filter": bool(args.logging_nan_inf_filter),
        "max_steps": int(state.max_steps),
        "num_train_epochs": float(args.num_train_epochs),
        "per_device_train_batch_size": int(args.per_device_train_batch_size),
        "gradient_accumulation_steps": int(args.gradient_accumulation_steps),
        "world_size": int(args.world_size),
        "n_gpu": int(args.n_gpu),
        "device": str(args.device),
        "bf16": bool(args.bf16),
        "fp16": bool(args.fp16),
        "optim": str(getattr(args.optim, "value", args.optim)),
        "learning_rate": float(args.learning_rate),
        "seed": int(args.seed),
        "logging_steps": float(args.logging_steps),
        "save_steps": float(args.save_steps),
        "model_class": type(model).__name__ if model is not None else None,
        "model_name": config_dict.get("_name_or_path") or None,
        "num_parameters": params,
        "architecture": {k: config_dict[k] for k in _ARCH_KEYS if k in config_dict},
    }


class AuditorCallback(TrainerCallback):
    """Records the Trainer's logs and arguments into the run folder named by $AUDITOR_RUN_DIR."""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        path = runtime.run_dir() / RUN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run_facts(args, state, kwargs.get("model")), indent=2) + "\n", encoding="utf-8")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            runtime.log_metrics(state.global_step, **logs)
