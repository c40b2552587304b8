"""The plan from a config YAML, a manifest (ours or a team's own format) or trainer_state.json."""

from __future__ import annotations

from typing import Any

from auditor.evidence.metrics import as_float, as_int

SECTIONS = ("training", "training_params", "train", "config", "hardware", "eval", "evaluation", "")
KEYS: dict[str, tuple[str, ...]] = {
    "max_steps": ("max_steps", "num_steps", "total_steps"),
    "num_epochs": ("num_train_epochs", "num_epochs", "epochs"),
    "device": ("device", "accelerator"),
    "batch_size": ("per_device_train_batch_size", "per_device_batch_size", "batch_size"),
    "gradient_accumulation_steps": ("gradient_accumulation_steps", "grad_accum"),
    "max_seq_length": ("max_seq_length", "max_length", "seq_length", "seq_len"),
    "dtype": ("dtype", "torch_dtype", "precision"),
    "optimizer": ("optimizer", "optim"),
    "eval_examples": ("num_examples", "eval_examples", "num_eval_examples"),
}
INT_FIELDS = {"max_steps", "batch_size", "gradient_accumulation_steps", "max_seq_length", "eval_examples"}
ARCH_KEYS = (
    "n_embd", "hidden_size", "d_model", "n_layer", "num_hidden_layers", "n_layers", "n_head",
    "num_attention_heads", "n_heads", "num_key_value_heads", "vocab_size", "intermediate_size", "n_inner",
    "n_positions", "max_position_embeddings", "head_dim", "model_type", "dim",
)


def normalize_device(value: str) -> str:
    """cuda/gpu/tpu/cpu from whatever a config or manifest says ("TPU v5e-8", "cuda:0", "GPU")."""
    low = value.lower()
    if "tpu" in low:
        return "tpu"
    if "cuda" in low or "gpu" in low or "nvidia" in low:
        return "cuda"
    if "cpu" in low:
        return "cpu"
    return low


def plan_fields(data: Any, source: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Plan fields found in a mapping (config YAML or manifest), with the source of each."""
    fields: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if not isinstance(data, dict):
        return fields, sources
    for section in SECTIONS:
        mapping = data.get(section) if section else data
        if not isinstance(mapping, dict):
            continue
        for field_name, names in KEYS.items():
            if field_name in fields:
                continue
            if field_name == "eval_examples" and section not in ("eval", "evaluation"):
                continue
            for key in names:
                if key not in mapping:
                    continue
                value = mapping[key]
                parsed: Any
                if field_name in INT_FIELDS:
                    parsed = as_int(value)
                elif field_name == "num_epochs":
                    parsed = as_float(value)
                elif field_name == "device":
                    parsed = normalize_device(str(value)) if isinstance(value, str) else None
                else:
                    parsed = str(value) if isinstance(value, (str, int, float)) else None
                if parsed is not None:
                    fields[field_name] = parsed
                    sources[field_name] = source
                    break
    model = data.get("model")
    name: Any = None
    if isinstance(model, dict):
        name = model.get("name") or model.get("model_id") or model.get("name_or_path")
        arch = {k: model[k] for k in ARCH_KEYS if k in model and isinstance(model[k], (int, float, str, bool))}
        if arch:
            fields["architecture"] = arch
            sources["architecture"] = source
    elif isinstance(model, str):
        name = model
    name = name or data.get("model_id") or data.get("model_name")
    if name is None and isinstance(data.get("config"), dict):
        name = data["config"].get("model_id")
    if isinstance(name, str) and name:
        fields["model_name"] = name
        sources["model_name"] = source
    return fields, sources
