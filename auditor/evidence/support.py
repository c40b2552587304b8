"""Plan fields a run manifest declares that nothing in the evidence supports.

A manifest (`audit run`'s, or a team's own format) says what the run was: max_steps, device, model, batch size,
dataset... `unsupported_claims` names each declared field that no evidence corroborates: no metrics, progress bar,
checkpoint, log line, environment or GPU record, predictions file or trainer record shows that value. A field the
evidence contradicts is unsupported too (the `why` says what the evidence shows); which gate judges the
contradiction itself (training_completed for steps, gpu_used for the device) is unchanged."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from auditor.evidence.model_size import SIZE_BAND, checkpoint_parameters, plausible_count, size_in_name

if TYPE_CHECKING:
    from auditor.evidence.run import RunEvidence

Unsupported = tuple[str, Any, str]  # (field, declared value, why nothing supports it)
LOG_SCAN_LINES = 5000  # lines of each log searched for a declared name or an HF banner figure
_HF_BANNER = {  # the figures HF Trainer prints when training starts ("  Num examples = 550")
    "dataset_size": re.compile(r"^\s*Num examples\s*=\s*([\d,]+)", re.I),
    "num_epochs": re.compile(r"^\s*Num Epochs\s*=\s*([\d,.]+)", re.I),
    "batch_size": re.compile(r"^\s*(?:Instantaneous batch size per device|Batch Size)\s*[=:]\s*(\d+)", re.I),
    "gradient_accumulation_steps": re.compile(r"^\s*(?:Gradient Accumulation steps|Grad(?:ient)? Accum(?:ulation)?)"
                                              r"\s*[=:]\s*(\d+)", re.I),
    "max_steps": re.compile(r"^\s*Total optimization steps\s*=\s*([\d,]+)", re.I),
    "max_seq_length": re.compile(r"^\s*(?:max_seq_length|max_length|seq(?:uence)?[ _]len(?:gth)?)\s*[=:]\s*(\d+)",
                                 re.I),
}
DATASET_KEYS = ("dataset", "dataset_name", "train_dataset", "data")
DATASET_SIZE_KEYS = ("dataset_size", "num_train_examples", "train_examples", "num_train_samples", "train_samples",
                     "num_samples")
MANIFEST_SECTIONS = ("", "training", "training_params", "train", "config", "data", "dataset")


def unsupported_claims(ev: RunEvidence) -> list[Unsupported]:
    """Each plan field the run manifest declares that no evidence supports: (field, value, why)."""
    declared = manifest_fields(ev)
    checks: dict[str, Callable[[RunEvidence, Any], str | None]] = {
        "max_steps": _max_steps, "num_epochs": _num_epochs, "device": _device, "batch_size": _batch_size,
        "gradient_accumulation_steps": _accumulation, "max_seq_length": _seq, "eval_examples": _eval_examples,
        "model_name": _model_name, "num_parameters": _num_parameters, "dataset": _dataset,
        "dataset_size": _dataset_size,
    }
    out: list[Unsupported] = []
    for name, value in declared.items():
        check = checks.get(name)
        why = check(ev, value) if check is not None else None
        if why is not None:
            out.append((name, value, why))
    return out


def manifest_fields(ev: RunEvidence) -> dict[str, Any]:
    """The plan fields run_manifest.json declares (ours or a team's format), with a team manifest's dataset and
    dataset size."""
    fields = {name: getattr(ev.plan, name) for name, source in ev.plan.source.items()
              if source == "run_manifest.json" and name != "architecture" and getattr(ev.plan, name, None)
              not in (None, "", {})}
    data = ev.manifest.data if ev.manifest is not None else None
    if isinstance(data, dict):
        for section in MANIFEST_SECTIONS:
            mapping = data.get(section) if section else data
            if not isinstance(mapping, dict):
                continue
            for key in DATASET_KEYS:
                if isinstance(mapping.get(key), str) and mapping[key].strip():
                    fields.setdefault("dataset", mapping[key].strip())
            for key in DATASET_SIZE_KEYS:
                value = mapping.get(key)
                if type(value) is int and value > 0:
                    fields.setdefault("dataset_size", value)
    return fields


# -- what the evidence shows -----------------------------------------------------------------------------------
def _banner(ev: RunEvidence, field: str) -> list[tuple[float, str]]:
    """Values an HF-style banner line in a log gives for a field, with file:line."""
    pattern = _HF_BANNER[field]
    found: list[tuple[float, str]] = []
    for path, number, line in _log_lines(ev):
        match = pattern.match(line)
        if match:
            try:
                found.append((float(match.group(1).replace(",", "")), f"{path}:{number}"))
            except ValueError:
                continue
    return found


def _log_lines(ev: RunEvidence) -> list[tuple[str, int, str]]:
    out: list[tuple[str, int, str]] = []
    for rel in ev.log_files:
        if rel in ev.templates:
            continue
        doc = ev.text(rel)
        if doc is not None:
            out.extend((rel, n, line) for n, line in enumerate(doc.lines[:LOG_SCAN_LINES], start=1))
    return out


def _mentions(ev: RunEvidence, text: str) -> str | None:
    """The first log line, environment snapshot or checkpoint config naming `text` (case-insensitive)."""
    needle = text.lower()
    for path, number, line in _log_lines(ev):
        if needle in line.lower():
            return f"{path}:{number}"
    for facts in ev.env:
        doc = ev.text(facts.path)
        for number, line in enumerate(doc.lines if doc else (), start=1):
            if needle in line.lower():
                return f"{facts.path}:{number}"
    return None


def _trainer_ratio(ev: RunEvidence) -> float | None:
    final = ev.final_record
    if final is None:
        return None
    samples, steps = final.values.get("train_samples_per_second"), final.values.get("train_steps_per_second")
    if isinstance(samples, (int, float)) and isinstance(steps, (int, float)) and samples > 0 and steps > 0:
        return float(samples) / float(steps)
    return None


# -- one check per field: None when supported, else why not ------------------------------------------------------
def _max_steps(ev: RunEvidence, value: Any) -> str | None:
    shown: list[int] = []
    if ev.progress is not None:
        shown.append(ev.progress.total)
    shown += [int(s.plan["max_steps"]) for s in ev.metrics_sources if isinstance(s.plan.get("max_steps"), int)]
    shown += [int(v) for v, _ in _banner(ev, "max_steps")]
    taken = ev.steps_taken[0]
    if taken is not None:
        shown.append(taken)
    if value in shown:
        return None
    if not shown:
        return "no metrics, progress bar, checkpoint or trainer banner shows any training step"
    return f"the evidence shows {max(shown):,} steps (progress, metrics, checkpoints), not {value:,}"


def _num_epochs(ev: RunEvidence, value: Any) -> str | None:
    shown = [e for s in ev.metrics_sources for e in s.epochs[-1:]]
    final = ev.final_record
    if final is not None and isinstance(final.values.get("epoch"), (int, float)):
        shown.append(float(final.values["epoch"]))
    shown += [v for v, _ in _banner(ev, "num_epochs")]
    if any(abs(e - float(value)) <= 0.01 for e in shown):
        return None
    if not shown:
        return "no metrics source, trainer record or banner records an epoch"
    return f"the evidence reaches epoch {max(shown):g}, not {value:g}"


def _device(ev: RunEvidence, value: Any) -> str | None:
    device = str(value)
    signals = ev.log_signals
    if device in ("cuda", "gpu"):
        samples = ev.gpu_samples
        available = ev.env_fact("cuda_available")
        if (samples is not None and samples.samples) or any(s.gpu_lines for s in signals) or ev.env_fact("gpu") \
                or (available is not None and available[0].lower() in ("true", "yes")):
            return None
        return "no NVML samples, CUDA-available record, GPU in an environment snapshot or log line shows a GPU"
    if device == "tpu":
        backend = ev.env_fact("jax_backend")
        gpu = ev.env_fact("gpu")
        if any(s.tpu_lines for s in signals) or (backend and backend[0].lower() == "tpu") or \
                (gpu and "tpu" in gpu[0].lower()):
            return None
        return "no log line, JAX backend or environment record shows a TPU"
    if device == "cpu":
        available = ev.env_fact("cuda_available")
        if any(s.cpu_lines for s in signals) or (available and available[0].lower() in ("false", "no")) or \
                (ev.env and ev.env_fact("gpu") is None and ev.gpu_snapshot is None):
            return None
        return "no log line or environment snapshot shows the run on the CPU"
    return None


def _batch_size(ev: RunEvidence, value: Any) -> str | None:
    if any(int(v) == value for v, _ in _banner(ev, "batch_size")):
        return None
    states = [s.hparams.get("train_batch_size") for s in ev.metrics_sources]
    if value in states:
        return None
    ratio = _trainer_ratio(ev)
    accumulation = ev.plan.gradient_accumulation_steps or 1
    if ratio is not None and value * accumulation > 0:
        return _not_a_multiple(ratio, value, accumulation)
    return "no trainer banner, trainer_state or samples-per-step figure shows the batch size"


def _not_a_multiple(ratio: float, batch: Any, accumulation: Any) -> str | None:
    """Why the trainer's samples per optimizer step (samples/s ÷ steps/s) is not a whole multiple of batch ×
    accumulation (the device count), or None when it is."""
    per = ratio / (batch * accumulation)
    if abs(per - round(per)) <= 0.05 * max(1, round(per)) and round(per) >= 1:
        return None
    return f"the trainer's samples/s ÷ steps/s is {ratio:.4g} samples per step, not a multiple of {batch} × " \
           f"{accumulation}"


def _accumulation(ev: RunEvidence, value: Any) -> str | None:
    if any(int(v) == value for v, _ in _banner(ev, "gradient_accumulation_steps")):
        return None
    ratio = _trainer_ratio(ev)
    batch = ev.plan.batch_size
    if ratio is not None and batch:
        return _not_a_multiple(ratio, batch, value)
    return "no trainer banner or samples-per-step figure shows the gradient accumulation"


def _seq(ev: RunEvidence, value: Any) -> str | None:
    if any(int(v) == value for v, _ in _banner(ev, "max_seq_length")):
        return None
    ckpt = ev.checkpoint
    config = ckpt.config if ckpt is not None and ckpt.config else {}
    if any(config.get(k) == value for k in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")):
        return None
    final = ev.final_record
    if final is not None:
        tokens, samples = final.values.get("train_tokens_per_second"), final.values.get("train_samples_per_second")
        if isinstance(tokens, (int, float)) and isinstance(samples, (int, float)) and samples > 0:
            if 0 < tokens / samples <= value * 1.05:
                return None
            return f"the trainer's tokens/s ÷ samples/s is {tokens / samples:.4g} tokens per sample, more than {value}"
    return "no log line, checkpoint config or tokens-per-sample figure shows the sequence length"


def _eval_examples(ev: RunEvidence, value: Any) -> str | None:
    predictions = ev.predictions
    if predictions is not None and predictions.count == value:
        return None
    if predictions is not None:
        return f"predictions.jsonl holds {predictions.count} lines, not {value}"
    return "no predictions.jsonl"


def _model_name(ev: RunEvidence, value: Any) -> str | None:
    name = str(value)
    base = name.rstrip("/").split("/")[-1].lower()
    ckpt = ev.checkpoint
    config = ckpt.config if ckpt is not None and ckpt.config else {}
    recorded = config.get("_name_or_path")
    if isinstance(recorded, str) and recorded.rstrip("/").split("/")[-1].lower() == base:
        return None
    size = size_in_name(name)
    counted = checkpoint_parameters(ev)
    counted = counted if counted is not None and plausible_count(counted[0]) else None
    if size is not None and counted is not None:
        ratio = counted[0] / size.parameters
        if SIZE_BAND[0] <= ratio <= SIZE_BAND[1]:
            return None
    if _mentions(ev, base) is not None:
        return None
    if any(base in str(v).lower() for s in ev.metrics_sources for v in (*s.hparams.values(), *s.facts.values())):
        return None
    compact = _compact(base)
    kinds = [config.get("model_type"), *(config.get("architectures") or [])]
    kinds = [_compact(k) for k in kinds if isinstance(k, str) and _compact(k)]
    if compact and any(compact in kind for kind in kinds):
        return None  # 'reference-decoder' over model_type auditor_reference_decoder / ReferenceDecoder
    if size is None and any(kind in compact for kind in kinds):
        return None  # 'tiny-gpt2' over a gpt2 checkpoint whose size the name does not state
    if counted is not None and size is not None:
        return f"the checkpoint holds {counted[0]:,} parameters ({counted[1]}), not the {name}'s " \
               f"{size.parameters:,}, and no log names it"
    return "no checkpoint config, log line, environment snapshot or tracked parameter names it"


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _num_parameters(ev: RunEvidence, value: Any) -> str | None:
    counted = checkpoint_parameters(ev)
    if counted is None or not plausible_count(counted[0]) or not plausible_count(value):
        return "no checkpoint to count parameters in" if counted is None else None
    ratio = counted[0] / value
    if SIZE_BAND[0] <= ratio <= SIZE_BAND[1]:
        return None
    return f"the checkpoint holds {counted[0]:,} parameters ({counted[1]})"


def _dataset(ev: RunEvidence, value: Any) -> str | None:
    name = str(value).rstrip("/").split("/")[-1]
    if _mentions(ev, name) is not None:
        return None
    if any(name.lower() in str(v).lower() for s in ev.metrics_sources for v in (*s.hparams.values(),
                                                                                  *s.facts.values())):
        return None
    return "no log line, environment snapshot or tracked parameter names the dataset"


def _dataset_size(ev: RunEvidence, value: Any) -> str | None:
    shown = _banner(ev, "dataset_size")
    if any(int(v) == value for v, _ in shown):
        return None
    final = ev.final_record
    if final is not None:
        samples, runtime = final.values.get("train_samples_per_second"), final.values.get("train_runtime")
        epochs = final.values.get("epoch") or ev.plan.num_epochs
        if all(isinstance(x, (int, float)) and x > 0 for x in (samples, runtime, epochs)):
            seen = float(samples) * float(runtime) / float(epochs)  # type: ignore[arg-type]
            if abs(seen - value) <= 0.02 * value + 1:
                return None
    if shown:
        return f"{shown[0][1]} shows {int(shown[0][0]):,} examples, not {value:,}"
    return "no trainer banner or samples figure shows the dataset size"
