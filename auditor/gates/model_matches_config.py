"""model_matches_config: the checkpoint's architecture matches the declared config."""

from __future__ import annotations

import re

from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref
from auditor.models import GateResult

R = Results("model_matches_config")
# Groups of HF config.json names that mean the same thing across model families.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("hidden_size", "n_embd", "d_model", "dim"),
    ("num_hidden_layers", "n_layer", "n_layers"),
    ("num_attention_heads", "n_head", "n_heads"),
    ("num_key_value_heads",),
    ("vocab_size",),
    ("intermediate_size", "n_inner"),
    ("max_position_embeddings", "n_positions"),
    ("head_dim",),
    ("model_type",),
)
_SIZE_IN_NAME = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([mb])\b", re.I)
SIZE_TOLERANCE = 0.5


def _lookup(config: dict, names: tuple[str, ...]) -> object:
    return next((config[n] for n in names if n in config and config[n] is not None), None)


def declared_size(name: str | None) -> int | None:
    """Parameter count a model name declares: 'gemma-2b' → 2e9, 'gpt-125M' → 1.25e8."""
    if not name:
        return None
    match = _SIZE_IN_NAME.search(name.split("/")[-1])
    if not match:
        return None
    return int(float(match.group(1)) * (1e9 if match.group(2).lower() == "b" else 1e6))


@gate("model_matches_config", "the checkpoint's architecture (config.json, tensor shapes, parameter count) "
      "matches the declared config")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Compare declared architecture keys, declared size and tensor shapes with the checkpoint."""
    ckpt = ev.checkpoint
    plan = ev.plan
    if ckpt is None:
        return R("skip", "no checkpoint to compare")
    config = ckpt.config or {}  # formats without a config.json (torch.save, DCP, Orbax) still have tensor shapes
    config_ref = ref(f"{ckpt.directory}/config.json") if ckpt.config is not None else ref(ckpt.directory)
    problems: list[str] = []
    compared = 0
    for names in SYNONYMS:
        declared = _lookup(plan.architecture, names)
        actual = _lookup(config, names)
        if declared is None or actual is None:
            continue
        compared += 1
        if declared != actual:
            problems.append(f"{names[0]}: declared {declared} ({plan.source.get('architecture')}), "
                            f"checkpoint has {actual}")
    hidden = _lookup(config, SYNONYMS[0])
    vocab = config.get("vocab_size")
    embed = ckpt.tensor_shape(("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight"))
    if embed is not None and hidden is not None and vocab is not None:
        compared += 1
        if len(embed) != 2 or embed[1] != hidden or embed[0] < int(str(vocab)):
            problems.append(f"embedding tensor shape {list(embed)} contradicts config.json "
                            f"(vocab_size {vocab}, hidden {hidden})")
    params = ckpt.parameters if ckpt.files and not ckpt.missing_shards else None
    if params is None and ckpt.index is not None and isinstance(ckpt.index.metadata.get("total_parameters"), int):
        params = ckpt.index.metadata["total_parameters"]
    wanted = plan.num_parameters or declared_size(plan.model_name) or declared_size(
        str(config.get("_name_or_path", "")))
    if params and wanted:
        compared += 1
        ratio = params / wanted
        if not (1 - SIZE_TOLERANCE <= ratio <= 1 + SIZE_TOLERANCE):
            problems.append(f"checkpoint has {params:,} parameters, the declared model "
                            f"({plan.model_name or plan.num_parameters}) implies about {wanted:,}")
    if problems:
        return R("fail", "checkpoint does not match the declared model: " + "; ".join(problems), config_ref)
    if compared == 0 and ckpt.config is None:
        return R("skip", f"{ckpt.directory} has no config.json and no model size is declared to compare its "
                 f"{ckpt.parameters:,} parameters with", config_ref)
    if compared == 0:
        return R("skip", "no declared architecture or model size to compare (declare a `model:` mapping with "
                 "config.json keys in the config YAML)", config_ref)
    return R("pass", f"{compared} architecture fact(s) match the declared config", config_ref)
