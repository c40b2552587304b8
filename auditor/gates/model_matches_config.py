"""model_matches_config: the checkpoint's architecture matches the declared config."""

from __future__ import annotations

import re
from typing import Any

from auditor.evidence.checkpoint import Checkpoint
from auditor.evidence.model_size import checkpoint_parameters, declared_models, size_contradictions
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
COUNT_TOLERANCE = 0.5
EMBEDDINGS = (".embed_tokens.weight", ".wte.weight", ".word_embeddings.weight", ".tok_embeddings.weight")


def _lookup(config: dict, names: tuple[str, ...]) -> object:
    return next((config[n] for n in names if n in config and config[n] is not None), None)


@gate("model_matches_config", "the checkpoint's architecture (config.json, tensor shapes, parameter count) "
      "matches the declared config")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Compare declared architecture keys, declared size and tensor shapes with the checkpoint."""
    ckpt = ev.checkpoint
    plan = ev.plan
    if ckpt is None:
        return R("skip", "no checkpoint to compare")
    config = ckpt.config or {}  # formats without a config.json (torch.save, DCP, Orbax) still have tensor shapes
    config_name = f"{ckpt.directory}/config.json"
    config_ref = ref(config_name) if ckpt.config is not None else ref(ckpt.directory)
    problems: list[str] = []
    pointers = [config_ref]
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
    # the tensors against the checkpoint's own config.json, and against the plan for keys config.json lacks
    facts = {names[0]: (v, config_name) for names in SYNONYMS if (v := _lookup(config, names)) is not None}
    for names in SYNONYMS:
        declared = _lookup(plan.architecture, names)
        if names[0] not in facts and declared is not None:
            facts[names[0]] = (declared, str(plan.source.get("architecture", "the plan")))
    for key in ("embedding_size", "padded_vocab_size", "num_nextn_predict_layers", "kv_lora_rank",
                "qk_rope_head_dim", "q_lora_rank"):
        if isinstance(config.get(key), int):
            facts[key] = (config[key], config_name)
    usable = not ckpt.missing_shards and not ckpt.problems
    checked, contradictions = tensor_contradictions(ckpt, facts) if usable else (0, [])
    compared += checked
    for message, path in contradictions:
        problems.append(message)
        pointers.append(ref(path))
    counted = checkpoint_parameters(ev)  # None for an absurd shard-index total: garbage is not a size
    if counted is not None and plan.num_parameters:  # a declared count is a count: within ±50%
        compared += 1
        ratio = counted[0] / plan.num_parameters
        if not (1 - COUNT_TOLERANCE <= ratio <= 1 + COUNT_TOLERANCE):
            problems.append(f"checkpoint has {counted[0]:,} parameters ({counted[1]}), the plan declares "
                            f"{plan.num_parameters:,} ({plan.source.get('num_parameters', 'the plan')})")
    if counted is not None:  # a size a name declares (llama-7b, 125M, gpt2-xl): within 0.5x-2x
        named = [d for d in declared_models(ev) if not d.name.endswith(" parameters")]
        compared += len(named)
        for found in size_contradictions(ev):
            if found.declared in named:
                problems.append(found.message)
                pointers.append(ref(found.declared.where[0], found.declared.where[1]))
    if problems:
        return R("fail", "checkpoint does not match the declared model: " + "; ".join(problems), *pointers)
    if compared == 0 and ckpt.config is None:
        return R("skip", f"{ckpt.directory} has no config.json and no model size is declared to compare its "
                 f"{ckpt.parameters:,} parameters with", config_ref)
    if compared == 0:
        return R("skip", "no declared architecture or model size to compare (declare a `model:` mapping with "
                 "config.json keys in the config YAML)", config_ref)
    return R("pass", f"{compared} architecture fact(s) match the declared config and the tensor shapes", config_ref)


Facts = dict[str, tuple[Any, str]]  # canonical key → (value, where it is declared)
Shape = tuple[int, ...]
_LAYER = re.compile(r"^(?P<stack>(?:.*\.)?(?:layers|layer|h|blocks|block))\.(?P<index>\d+)\.")
_PACKED = {"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64"}  # quantized weights are packed integers


def _int(facts: Facts, key: str) -> int | None:
    value = facts.get(key, (None, ""))[0]
    return value if type(value) is int and value > 0 else None


def _said(facts: Facts, *keys: str) -> str:
    """'x/config.json declares hidden_size 8, vocab_size 10' for the keys a rule used."""
    by_source: dict[str, list[str]] = {}
    for key in keys:
        if key in facts:
            value, source = facts[key]
            by_source.setdefault(source, []).append(f"{key} {value}")
    return " and ".join(f"{source} declares {', '.join(items)}" for source, items in by_source.items())


def _shape_rules(facts: Facts) -> list[tuple[tuple[str, ...], set[Shape], bool, tuple[str, ...]]]:
    """(tensor-name suffixes, acceptable shapes, order-insensitive, config keys) for the facts declared."""
    hidden, vocab = _int(facts, "hidden_size"), _int(facts, "vocab_size")
    heads, inter, positions = _int(facts, "num_attention_heads"), _int(facts, "intermediate_size"), \
        _int(facts, "max_position_embeddings")
    rules: list[tuple[tuple[str, ...], set[Shape], bool, tuple[str, ...]]] = []
    if hidden and vocab:
        width = _int(facts, "embedding_size") or hidden  # ALBERT/ELECTRA factorise the embedding
        rows = {vocab, _int(facts, "padded_vocab_size") or vocab}
        rules.append((EMBEDDINGS, {(r, width) for r in rows}, False,
                      ("vocab_size", "embedding_size" if width != hidden else "hidden_size")))
    if hidden and positions:
        rules.append(((".wpe.weight",), {(positions, hidden)}, False, ("max_position_embeddings", "hidden_size")))
    if hidden and heads and not any(k in facts for k in ("kv_lora_rank", "qk_rope_head_dim", "q_lora_rank")):
        head_dim = _int(facts, "head_dim") or hidden // heads
        kv = _int(facts, "num_key_value_heads") or heads
        # gated attention (Qwen3-Next) doubles the query projection
        rules.append(((".self_attn.q_proj.weight",), {(heads * head_dim, hidden), (2 * heads * head_dim, hidden)},
                      False, ("num_attention_heads", "head_dim", "hidden_size")))
        rules.append(((".self_attn.k_proj.weight", ".self_attn.v_proj.weight"), {(kv * head_dim, hidden)}, False,
                      ("num_key_value_heads", "num_attention_heads", "head_dim", "hidden_size")))
    if hidden:
        width = inter or 4 * hidden  # GPT-2's n_inner: null means 4 × n_embd
        rules.append(((".mlp.c_fc.weight",), {(hidden, width)}, True, ("intermediate_size", "hidden_size")))
    if hidden and inter:
        rules.append(((".mlp.gate_proj.weight", ".mlp.up_proj.weight", ".intermediate.dense.weight"),
                      {(inter, hidden)}, False, ("intermediate_size", "hidden_size")))
        rules.append(((".mlp.down_proj.weight",), {(hidden, inter)}, False, ("intermediate_size", "hidden_size")))
    return rules


def tensor_contradictions(ckpt: Checkpoint, facts: Facts) -> tuple[int, list[tuple[str, str]]]:
    """How many facts the tensor shapes were compared with, and each contradiction (message, file) naming the
    tensor and the config key. A kind of tensor contradicts only when no tensor of that kind fits (so models whose
    layers differ, local and global attention, are not misread)."""
    tensors = [(name, dtype, shape, f.path) for f in ckpt.files for name, (dtype, shape) in f.tensors.items()]
    compared = 0
    found: list[tuple[str, str]] = []
    for suffixes, shapes, unordered, keys in _shape_rules(facts):
        matching = [t for t in tensors if t[0].endswith(suffixes) or t[0] in {s[1:] for s in suffixes}]
        matching = [t for t in matching if t[1] not in _PACKED]
        if not matching:
            continue
        compared += 1
        fits = {tuple(sorted(s)) for s in shapes} if unordered else shapes
        if any((tuple(sorted(t[2])) if unordered else t[2]) in fits for t in matching):
            continue
        name, _, shape, path = matching[0]
        expected = " or ".join(str(list(s)) for s in sorted(shapes))
        found.append((f"tensor {name} is {list(shape)}, but {_said(facts, *keys)}: {expected} expected", path))
    layers = _int(facts, "num_hidden_layers")
    if layers:
        stacks: dict[str, set[int]] = {}
        for name, _, _, _ in tensors:
            match = _LAYER.match(name)
            if match:
                stacks.setdefault(match["stack"], set()).add(int(match["index"]))
        if stacks:
            compared += 1
            stack, indices = max(stacks.items(), key=lambda item: (len(item[1]), item[0]))
            allowed = {layers, layers + (_int(facts, "num_nextn_predict_layers") or 0)}  # + multi-token heads
            if indices != set(range(len(indices))) or len(indices) not in allowed:
                shown = f"{min(indices)}–{max(indices)}" if indices == set(range(len(indices))) else \
                    ", ".join(map(str, sorted(indices)[:8])) + ("…" if len(indices) > 8 else "")
                path = next(t[3] for t in tensors if t[0].startswith(f"{stack}."))
                found.append((f"tensors {stack}.N hold {len(indices)} layer(s) (indices {shown}), but "
                              f"{_said(facts, 'num_hidden_layers')}", path))
    return compared, found
