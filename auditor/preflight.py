"""Memory-fit estimate before a run starts: parameters exactly from the model's tensor shapes, then weights,
gradients, optimizer state, activations and the logits tensor against the device's memory.

The seeds' finding is the test: full fine-tuning a Gemma-2B-shaped model (vocab 256000) does not fit the 16 GiB
of a TPU v5e chip, even at batch 1 and sequence 64 (XLA reported 28.59G used), while bf16 weights + Adafactor +
batch 1 fit a 32 GiB GPU. Components (bytes):

- weights: parameters × storage bytes (fp32 4; bf16/fp16 2); `mixed` precision keeps fp32 master weights.
- gradients: one per trainable parameter, in the storage dtype.
- optimizer: adamw two moments per parameter (storage dtype; fp32 under mixed precision); adafactor a row and a
  column vector per matrix and a full vector per bias/norm (fp32, no first moment); sgd none (momentum: one).
- activations: per layer, activation bytes × seq × batch × (6·hidden + 2·kv_dim + 3·intermediate + 2·heads·seq)
  kept for backward (only each layer's input with gradient checkpointing, plus one layer recomputed).
- logits: batch × seq × vocab × 4 (fp32 for the loss) twice (the logits and their gradient).
- reserve: 1 GiB on a GPU for the CUDA context and allocator; on a TPU XLA's temporaries are not modelled, so
  the verdict there is a lower bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

GIB = 1 << 30
DTYPE_BYTES = {"fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2}
GATED = ("llama", "gemma", "gemma2", "gemma3", "mistral", "mixtral", "qwen2", "qwen3", "phi3", "olmo", "granite")
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGT]i?B?|B)?\s*$", re.I)


def parse_size(text: str) -> int:
    """Bytes from '16GiB', '32 GB', '80G', '1024MiB' (GB and GiB both read as binary: device memory is)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a memory size (e.g. 16GiB, 80GB)")
    unit = (match.group(2) or "B").upper()[0]
    return int(float(match.group(1)) * {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": GIB, "T": 1 << 40}[unit])


@dataclass
class ModelShape:
    """The architecture facts that decide memory (HuggingFace config.json names are read)."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    positions: int = 0
    gated: bool = True
    tied: bool = True
    model_type: str = "llama"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """From an HF config.json dict (llama/gemma-style or gpt2-style keys); KeyError names what is missing."""
        get = config.get
        model_type = str(get("model_type", "llama"))
        hidden = int(get("hidden_size") or get("n_embd") or get("d_model") or 0)
        heads = int(get("num_attention_heads") or get("n_head") or 0)
        layers = int(get("num_hidden_layers") or get("n_layer") or 0)
        vocab = int(get("vocab_size") or 0)
        for name, value in (("hidden_size", hidden), ("num_attention_heads", heads), ("num_hidden_layers", layers),
                            ("vocab_size", vocab)):
            if value <= 0:
                raise KeyError(name)
        gpt2 = model_type == "gpt2" or "n_embd" in config
        intermediate = int(get("intermediate_size") or get("n_inner") or 4 * hidden)
        return cls(vocab=vocab, hidden=hidden, layers=layers, heads=heads,
                   kv_heads=int(get("num_key_value_heads") or heads),
                   head_dim=int(get("head_dim") or hidden // heads), intermediate=intermediate,
                   positions=int(get("n_positions") or 0) if gpt2 else 0,
                   gated=not gpt2 and model_type.split("_")[0] in GATED, tied=bool(get("tie_word_embeddings", True)),
                   model_type=model_type)

    def tensors(self) -> list[tuple[int, ...]]:
        """Every parameter tensor's shape (norm weights as vectors; biases only in gpt2-style blocks)."""
        h, q, kv, ff = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        shapes: list[tuple[int, ...]] = [(self.vocab, h)]
        if self.positions:
            shapes.append((self.positions, h))
        for _ in range(self.layers):
            if self.gated:
                shapes += [(q, h), (kv, h), (kv, h), (h, q), (ff, h), (ff, h), (h, ff), (h,), (h,)]
            else:  # gpt2: fused qkv with bias, out with bias, two-layer MLP with biases, two layer norms
                shapes += [(h, q + 2 * kv), (q + 2 * kv,), (q, h), (h,), (h, ff), (ff,), (ff, h), (h,),
                           (h,), (h,), (h,), (h,)]
        shapes += [(h,)] if self.gated else [(h,), (h,)]
        if not self.tied:
            shapes.append((self.vocab, h))
        return shapes

    def parameters(self) -> int:
        """Exact parameter count from the shapes."""
        total = 0
        for shape in self.tensors():
            n = 1
            for dim in shape:
                n *= dim
            total += n
        return total


@dataclass
class FitOptions:
    """How the run will train."""

    batch_size: int = 1
    seq_len: int = 512
    dtype: str = "fp32"
    mixed_precision: bool = False
    optimizer: str = "adamw"
    gradient_checkpointing: bool = False
    device: str = "cuda"

    @property
    def precision(self) -> str:
        """How weights are kept, in words."""
        return f"mixed {self.dtype} (fp32 master weights)" if self.mixed_precision else self.dtype


@dataclass
class MemoryEstimate:
    """The estimate and its verdict against `device_bytes` (None: memory unknown, no verdict)."""

    parameters: int
    components: dict[str, int] = field(default_factory=dict)
    device_bytes: int | None = None
    note: str = ""

    @property
    def total(self) -> int:
        return sum(self.components.values())

    @property
    def fits(self) -> bool | None:
        return None if self.device_bytes is None else self.total <= self.device_bytes


def estimate(shape: ModelShape, opts: FitOptions, device_bytes: int | None = None) -> MemoryEstimate:
    """Full fine-tuning memory for `shape` trained as `opts` (see the module docstring for each component)."""
    if opts.dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype {opts.dtype!r}: use fp32, bf16 or fp16")
    if opts.optimizer not in ("adamw", "adam", "adafactor", "sgd", "sgd_momentum"):
        raise ValueError(f"optimizer {opts.optimizer!r}: use adamw, adafactor or sgd")
    params = shape.parameters()
    store = 4 if opts.mixed_precision else DTYPE_BYTES[opts.dtype]
    act = 2 if opts.mixed_precision or DTYPE_BYTES[opts.dtype] == 2 else 4
    if opts.optimizer in ("adamw", "adam"):
        optimizer = 2 * params * store
    elif opts.optimizer == "adafactor":
        optimizer = 4 * sum(sum(s) if len(s) == 2 else s[0] for s in shape.tensors())
    elif opts.optimizer == "sgd_momentum":
        optimizer = params * store
    else:
        optimizer = 0
    b, s, h = opts.batch_size, opts.seq_len, shape.hidden
    per_layer = act * s * b * (6 * h + 2 * shape.kv_heads * shape.head_dim + 3 * shape.intermediate
                               + 2 * shape.heads * s)
    activations = (shape.layers * act * s * b * h + per_layer) if opts.gradient_checkpointing \
        else shape.layers * per_layer
    components = {"weights": params * store, "gradients": params * store, "optimizer": optimizer,
                  "activations": activations, "logits": 2 * b * s * shape.vocab * 4}
    note = ""
    if opts.device == "cuda":
        components["reserve"] = GIB
    elif opts.device == "tpu":
        note = "XLA compile-time temporaries are not modelled: on a TPU this is a lower bound"
    return MemoryEstimate(parameters=params, components=components, device_bytes=device_bytes, note=note)


def render(est: MemoryEstimate, shape: ModelShape, opts: FitOptions, counted_by: str) -> str:
    """The estimate as a few lines a person can act on."""
    lines = [f"model: {shape.model_type}, {est.parameters:,} parameters ({counted_by})",
             f"training: full fine-tuning, {opts.precision}, {opts.optimizer}, batch {opts.batch_size} × seq "
             f"{opts.seq_len}{', gradient checkpointing' if opts.gradient_checkpointing else ''}"]
    for name, size in est.components.items():
        lines.append(f"  {name:<12}{size / GIB:9.2f} GiB")
    lines.append(f"  {'total':<12}{est.total / GIB:9.2f} GiB")
    if est.device_bytes is None:
        lines.append("device memory unknown (no NVML device; pass --device-memory, e.g. 16GiB): no verdict")
    else:
        verdict = "fits" if est.fits else "DOES NOT FIT"
        lines.append(f"{verdict}: {est.total / GIB:.2f} GiB needed of {est.device_bytes / GIB:.2f} GiB on the "
                     f"{opts.device} device" + ("" if est.fits else
                                                f" (short by {(est.total - est.device_bytes) / GIB:.2f} GiB; "
                                                "try bf16, adafactor, a smaller batch or sequence, gradient "
                                                "checkpointing, or LoRA)"))
    if est.note:
        lines.append(f"note: {est.note}")
    return "\n".join(lines) + "\n"


def options_from_plan(plan: Any, device: str) -> FitOptions:
    """FitOptions from a run's plan (batch_size, max_seq_length, dtype, optimizer), defaults elsewhere. A 16-bit
    dtype on a TPU is read as mixed precision: there the config's dtype is Flax's compute dtype, and parameters
    (with their gradients) stay float32 unless param_dtype says otherwise."""
    opts = FitOptions(device=device)
    if plan.batch_size:
        opts.batch_size = plan.batch_size
    if plan.max_seq_length:
        opts.seq_len = plan.max_seq_length
    dtype = (plan.dtype or "").lower()
    if dtype in DTYPE_BYTES:
        opts.dtype = "bf16" if DTYPE_BYTES[dtype] == 2 and "b" in dtype else "fp16" if DTYPE_BYTES[dtype] == 2 \
            else "fp32"
    if device == "tpu" and DTYPE_BYTES.get(dtype) == 2:
        opts.mixed_precision = True  # JAX/Flax: `dtype` is the compute dtype; param_dtype stays float32
    optimizer = (plan.optimizer or "").lower()
    opts.optimizer = "adafactor" if "adafactor" in optimizer else "sgd" if "sgd" in optimizer else "adamw"
    return opts


def device_memory(device: str, given: str | None) -> int | None:
    """--device-memory when given, else the first NVML device's total on a cuda run, else unknown."""
    if given:
        return parse_size(given)
    if device != "cuda":
        return None
    from auditor.capture.gpu import open_nvml

    source, _ = open_nvml()
    if source is None:
        return None
    try:
        total = source.facts()["devices"][0].get("memory_total_mib")
    finally:
        source.close()
    return int(total) << 20 if total else None


def plan_fit(plan: Any, device: str, given_memory: str | None) -> str | None:
    """For `audit run`: why the planned model will not fit the device (None: fits, or cannot be judged). A
    `given_memory` that is not a size raises ValueError, whether or not the plan can be sized."""
    given = parse_size(given_memory) if given_memory else None
    try:
        shape = ModelShape.from_config(dict(plan.architecture))
    except (KeyError, TypeError, ValueError):
        return None
    opts = options_from_plan(plan, device)
    est = estimate(shape, opts, given if given is not None else device_memory(device, None))
    if est.fits is not False:
        return None
    return (f"memory: {est.parameters:,} parameters trained as {opts.precision} {opts.optimizer}, batch "
            f"{opts.batch_size} × seq {opts.seq_len} need about {est.total / GIB:.1f} GiB, more than the "
            f"{est.device_bytes / GIB if est.device_bytes else 0:.1f} GiB of the {device} device "
            "(`audit preflight` shows the breakdown)")
