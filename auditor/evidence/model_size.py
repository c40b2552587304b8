"""Model sizes: the parameter count a checkpoint holds, the size a model's name or a declaration states
(`llama-7b`, `gpt2-xl`, `1.3B`, `Qwen3-30B-A3B`), and where the two contradict each other.

A name's size is loose (embeddings, rounding: gemma-2b holds 2.5B), so a contradiction is a ratio outside a wide
band (0.5×–2× by default). The parameters that cost compute are fewer than those a checkpoint holds: embedding
lookups are free and a mixture of experts runs only its chosen experts per token."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from auditor.evidence.run import RunEvidence

Where = tuple[str, int | None]  # (path, 1-based line or None)

# "7b", "1.3B", "125m", "8x7B", "30B-A3B"; not "128k" (a context length) nor "4bit"
_SIZE = re.compile(r"(?<![A-Za-z0-9.])(?:(?P<experts>\d{1,4})\s*x\s*)?(?P<number>\d{1,5}(?:\.\d{1,4})?)\s*"
                   r"(?P<unit>[mb])(?![a-z0-9])(?:[-_ ]?a(?P<active>\d{1,5}(?:\.\d{1,4})?)\s*(?P<active_unit>[kmb])"
                   r"(?![a-z0-9]))?", re.I)
_UNITS = {"k": 1e3, "m": 1e6, "b": 1e9}
_TOY = re.compile(r"tiny|mini|micro|nano|toy|test|random|debug|dummy", re.I)
# Well-known names that carry no size (the count with embeddings, as their model cards give it).
KNOWN_SIZES: dict[str, int] = {
    "distilgpt2": 82_000_000, "gpt2": 124_000_000, "gpt2-medium": 355_000_000, "gpt2-large": 774_000_000,
    "gpt2-xl": 1_558_000_000, "bert-base": 110_000_000, "bert-large": 340_000_000, "distilbert": 66_000_000,
    "roberta-base": 125_000_000, "roberta-large": 355_000_000, "t5-small": 60_000_000, "t5-base": 220_000_000,
    "t5-large": 770_000_000, "phi-1_5": 1_418_000_000, "phi-2": 2_780_000_000,
}
# Tensors that are looked up, not multiplied: they cost no FLOPs per token.
LOOKUP_TENSORS = (".embed_tokens.weight", ".wte.weight", ".word_embeddings.weight", ".tok_embeddings.weight",
                  ".wpe.weight", ".position_embeddings.weight", ".embed_positions.weight",
                  ".token_type_embeddings.weight")
EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
ACTIVE_KEYS = ("num_experts_per_tok", "num_experts_per_token", "moe_top_k", "top_k")
SIZE_BAND = (0.5, 2.0)
MAX_PARAMETERS = 10**16  # no model holds more; a count beyond it is garbage, not a size
_MODEL_LABEL = re.compile(r"^\s*(?:[-*]\s+)?\**(?:base\s+)?model(?:[ _](?:name|id|name_or_path))?\**\s*:\**\s*(.+)$",
                          re.I)


@dataclass(frozen=True)
class NameSize:
    """What a model name says about its size: all parameters, and those active per token (a mixture of experts)."""

    parameters: int
    active: int


@dataclass(frozen=True)
class DeclaredModel:
    """A model size declared somewhere (a name or a count), with where it is declared."""

    name: str
    size: NameSize
    where: Where

    @property
    def described(self) -> str:
        """'llama-7b (about 7,000,000,000 parameters)'."""
        return f"{self.name} (about {self.size.parameters:,} parameters)"


@dataclass(frozen=True)
class SizeContradiction:
    """A declared model whose size the checkpoint's parameter count contradicts."""

    declared: DeclaredModel
    parameters: int
    counted_by: str
    message: str


def size_in_name(name: str | None) -> NameSize | None:
    """The size a model name states: 'llama-7b' → 7e9, 'opt-1.3B' → 1.3e9, 'pythia-70m' → 7e7, 'Mixtral-8x7B' →
    56e9 (7e9 active), 'Qwen3-30B-A3B' → 30e9 (3e9 active), 'gpt2-xl' → 1.558e9 (a known name); None when it
    states none."""
    if not name:
        return None
    base = name.strip().rstrip("/").split("/")[-1]
    known = _known(base.lower())
    if known is not None:
        return NameSize(known, known)
    match = _SIZE.search(base)
    if match is None:
        return None
    one = float(match["number"]) * _UNITS[match["unit"].lower()]
    experts = int(match["experts"]) if match["experts"] else 1
    total = int(one * experts)
    active = int(float(match["active"]) * _UNITS[match["active_unit"].lower()]) if match["active"] else int(one)
    return NameSize(total, min(active, total)) if total > 0 else None


def _known(base: str) -> int | None:
    """A known name, alone or with a suffix ('gpt2-xl', 'bert-base-uncased', 'gpt2-finetuned'), not a toy built
    after it ('gpt2-tiny-test')."""
    for known in sorted(KNOWN_SIZES, key=len, reverse=True):
        if base == known:
            return KNOWN_SIZES[known]
        rest = base[len(known):]
        if base.startswith(known) and rest[:1] in ("-", "_", ".") and not _TOY.search(rest):
            return KNOWN_SIZES[known]
    return None


def plausible_count(count: object) -> bool:
    """A parameter count that can be a model's: a positive integer up to MAX_PARAMETERS."""
    return type(count) is int and 0 < count <= MAX_PARAMETERS


def checkpoint_parameters(ev: RunEvidence) -> tuple[int, str] | None:
    """Parameters of the final checkpoint: from its tensor shapes, else the shard index's declared
    total_parameters; with what counted them."""
    ckpt = ev.checkpoint
    if ckpt is None:
        return None
    if ckpt.files and not ckpt.missing_shards and ckpt.parameters:
        return ckpt.parameters, f"tensor shapes in {ckpt.directory}/"
    if ckpt.index is not None:
        declared = ckpt.index.metadata.get("total_parameters")
        if isinstance(declared, int) and plausible_count(declared):  # beyond any model: garbage, not a size
            return declared, f"{ckpt.index.path} metadata.total_parameters"
    return None


def compute_parameters(ev: RunEvidence, experts: bool = True) -> tuple[int, str] | None:
    """A lower bound on the parameters that cost 6 FLOPs per trained token: the checkpoint's, less the embedding
    lookups where tensor shapes show them, times the share of experts active per token in a mixture of experts
    (with `experts`; HF's total_flos counts them all). None for an adapter (LoRA weights are not the model)."""
    counted = checkpoint_parameters(ev)
    ckpt = ev.checkpoint
    if counted is None or ckpt is None or is_adapter(ev) or not plausible_count(counted[0]):
        return None
    params, how = counted
    notes = []
    if how.startswith("tensor shapes"):
        lookups = sum(_count(shape) for f in ckpt.files for name, (_, shape) in f.tensors.items()
                      if name.endswith(LOOKUP_TENSORS) or name in {s[1:] for s in LOOKUP_TENSORS})
        if 0 < lookups < params:
            params -= lookups
            notes.append(f"less {lookups:,} embedding parameters")
    share = expert_share(ckpt.config or {}) if experts else 1.0
    if share < 1.0:
        params = int(params * share)
        notes.append(f"× {share:g} of the experts active per token")
    return params, how + (f" ({', '.join(notes)})" if notes else "")


def is_adapter(ev: RunEvidence) -> bool:
    """Whether the final checkpoint holds adapter weights (PEFT/LoRA), not the model the run trained."""
    ckpt = ev.checkpoint
    if ckpt is None:
        return False
    prefix = "" if ckpt.directory in ("", ".") else f"{ckpt.directory}/"
    if f"{prefix}adapter_config.json" in set(ev.files) or "peft_type" in (ckpt.config or {}):
        return True
    return any(f.path.rsplit("/", 1)[-1].startswith("adapter_") for f in ckpt.files)


def expert_share(config: dict[str, Any]) -> float:
    """Experts active per token ÷ experts, from a config.json (1.0 for a dense model)."""
    experts = next((config[k] for k in EXPERT_KEYS if type(config.get(k)) is int and config[k] > 1), None)
    active = next((config[k] for k in ACTIVE_KEYS if type(config.get(k)) is int and config[k] > 0), None)
    if experts is None:
        return 1.0
    return min(1.0, (active or 1) / experts)


def _count(shape: tuple[int, ...]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def declared_models(ev: RunEvidence) -> list[DeclaredModel]:
    """Every model size declared for the run: the plan's parameter count and model name (manifest, config YAML,
    a team manifest), the checkpoint config.json's `_name_or_path`, and the summaries' `Model` rows and lines."""
    found: list[DeclaredModel] = []
    plan = ev.plan
    if plausible_count(plan.num_parameters):
        count = int(plan.num_parameters)  # type: ignore[arg-type]
        found.append(DeclaredModel(f"{count:,} parameters", NameSize(count, count),
                                   (plan.source.get("num_parameters", "the plan"), None)))
    named: list[tuple[str | None, Where]] = [(plan.model_name, (plan.source.get("model_name", "the plan"), None))]
    ckpt = ev.checkpoint
    if ckpt is not None and ckpt.config is not None and isinstance(ckpt.config.get("_name_or_path"), str):
        named.append((ckpt.config["_name_or_path"], (f"{ckpt.directory}/config.json", None)))
    for summary in ev.summaries:
        named.extend(summary_models(ev, summary.path))
        for claim in summary.figures:
            if claim.key == "num_parameters" and claim.value and 1 <= claim.value <= MAX_PARAMETERS:
                count = int(claim.value)
                found.append(DeclaredModel(claim.text.strip() or f"{count:,}", NameSize(count, count),
                                           (claim.path, claim.line)))
    for name, where in named:
        size = size_in_name(name)
        if name and size is not None:
            found.append(DeclaredModel(name, size, where))
    unique: dict[tuple[str, int], DeclaredModel] = {}
    for declared in found:  # the plan's name repeated in a summary is one declaration
        unique.setdefault((declared.name.lower(), declared.size.parameters), declared)
    return list(unique.values())


def summary_models(ev: RunEvidence, path: str) -> list[tuple[str, Where]]:
    """Model names a summary states: `| Model | google/gemma-2b (PyTorch) |` rows and `**Model:** gpt2-xl` lines."""
    doc = ev.text(path)
    out: list[tuple[str, Where]] = []
    for number, line in enumerate(doc.lines if doc else (), start=1):
        text: str | None = None
        if line.lstrip().startswith("|"):
            cells = [c.strip().strip("*`_ ") for c in line.strip().strip("|").split("|")]
            label = cells[0].lower() if cells else ""
            if len(cells) >= 2 and label in ("model", "model name", "model id", "base model", "model_id"):
                text = cells[1]
        else:
            match = _MODEL_LABEL.match(line)
            text = match.group(1) if match else None
        if text:
            name = text.strip().strip("*`_ ").split()[0] if text.strip().strip("*`_ ") else ""
            if name:
                out.append((name.strip("`*_,;()"), (path, number)))
    return out


def size_contradictions(ev: RunEvidence, band: tuple[float, float] = SIZE_BAND) -> list[SizeContradiction]:
    """Declared models whose size the checkpoint contradicts: the checkpoint's parameter count is outside
    `band` × the declared size (a 7B name on a 34k-parameter checkpoint, or a 125M name on 7B parameters)."""
    counted = checkpoint_parameters(ev)
    if counted is None or is_adapter(ev) or not plausible_count(counted[0]):
        return []
    params, how = counted
    low, high = band
    out = []
    for declared in declared_models(ev):
        ratio = params / declared.size.parameters
        if not low <= ratio <= high:
            path, line = declared.where
            at = f"{path}:{line}" if line else path
            out.append(SizeContradiction(declared, params, how, (
                f"{at} declares {declared.described}, but the checkpoint holds {params:,} ({how}): "
                f"{ratio:.3g}× the declared size, outside {low:g}×–{high:g}×")))
    return out
