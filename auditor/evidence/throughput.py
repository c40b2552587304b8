"""Model FLOPs of a run against the recorded hardware's peak, and the physics every throughput figure must obey.

`model_flops` is the milestone summary's one figure (6 × parameters × samples/s × sequence length, else
total_flos / runtime). `plausibility` is the throughput gate's proof: every figure the trainer recorded or a
summary or manifest claims (samples/s, tokens/s, steps/s, total FLOs, TFLOP/s, MFU) is turned into a lower bound
on the FLOP/s it implies, for the checkpoint's size and for every size the run declares, and compared with the
peak of all recorded devices; the runtime must fit in the wall time the wrapper measured; and the rates must agree
with each other (samples per optimizer step within the batch, tokens per sample within the sequence)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from auditor.evidence.model_size import (
    NameSize,
    checkpoint_parameters,
    compute_parameters,
    declared_models,
)
from auditor.evidence.run import RunEvidence
from auditor.hardware import CPU_PEAK_TFLOPS, peak_tflops

Where = tuple[str, int | None]  # (path, 1-based line or None)

WALL_SLACK = (1.1, 10.0)  # a runtime may exceed the wall time by 10% + 10 s (clocks, rounding), never more
RATE_SLACK = 1.05  # rates computed from rounded figures
_TPU_SLICE = re.compile(r"\bv(?P<gen>\d)(?P<kind>e|p|lite(?:pod)?)?-(?P<n>\d+)\b", re.I)
# the trainer's own figures: final-record key → the rate it is
FINAL_RATES = {
    "train_samples_per_second": "samples_per_second", "train_tokens_per_second": "tokens_per_second",
    "train_steps_per_second": "steps_per_second", "samples_per_second": "samples_per_second",
    "tokens_per_second": "tokens_per_second", "steps_per_second": "steps_per_second",
}
CLAIM_RATES = ("samples_per_second", "tokens_per_second", "steps_per_second")
# config.json keys of models whose inputs are pixels or audio: HF's total_flos counts every input value as a token
# (6 × parameters × 3·224·224 per image), so it is no lower bound on their FLOPs
NOT_TOKEN_INPUTS = ("num_channels", "image_size", "patch_size", "num_mel_bins", "feat_extract_norm", "conv_dim")


@dataclass
class Hardware:
    """The accelerator a run recorded, with its peak dense TFLOP/s per device."""

    name: str
    peak_tflops: float
    devices: int
    where: Where

    @property
    def is_accelerator(self) -> bool:
        """False for the generous whole-host CPU bound, whose 'utilisation' means nothing."""
        return self.name != "CPU host"

    @property
    def peak(self) -> float:
        """Peak FLOP/s of all devices together."""
        return self.peak_tflops * 1e12 * self.devices


@dataclass
class ModelFlops:
    """Achieved model FLOP/s, how it was computed, and its share of the hardware's peak when that is known."""

    achieved: float
    how: str
    hardware: Hardware | None
    where: Where

    @property
    def mfu(self) -> float | None:
        """Model FLOPs utilisation against all recorded devices' peak."""
        hw = self.hardware
        return self.achieved / hw.peak if hw else None


def parameter_count(ev: RunEvidence) -> tuple[int, str] | None:
    """Parameters from tensor shapes, else the shard index's declared total_parameters."""
    return checkpoint_parameters(ev)


def _world_size(ev: RunEvidence) -> int:
    manifest = ev.run_manifest
    world = manifest.environment.get("world_size") if manifest is not None else None
    sizes = [world if type(world) is int else 0, len(ev.ranks)]
    return max(1, *sizes)


def tpu_chips(name: str) -> int | None:
    """Chips in a TPU slice name: 'TPU v5e-8' → 8 (v5e/v6e count chips), 'v4-32' → 16, 'v3-8' → 4 (cores)."""
    match = _TPU_SLICE.search(name)
    if match is None:
        return None
    count = int(match["n"])
    by_chip = match["gen"] in ("5", "6") and (match["kind"] or "").lower() != "p"
    return max(1, count if by_chip else count // 2)


def hardware(ev: RunEvidence) -> Hardware | None:
    """The recorded hardware: the GPU snapshot's devices, else the environment's GPU, else a system description's
    accelerators, else a CPU host; as many devices as the snapshot, the environment or the launch's world size
    shows."""
    world = _world_size(ev)
    snap = ev.gpu_snapshot
    if snap and snap.devices:
        peak = peak_tflops(snap.devices[0].name)
        if peak:
            return Hardware(peak[0], peak[1], max(len(snap.devices), world), (snap.path, snap.devices[0].line))
    gpu = ev.env_fact("gpu")
    if gpu:
        peak = peak_tflops(gpu[0])
        if peak:
            counted = ev.env_fact("gpu_count")
            count = int(counted[0]) if counted and counted[0].isdigit() else 1
            return Hardware(peak[0], peak[1], max(count, tpu_chips(gpu[0]) or 1, world), (gpu[1], gpu[2]))
    for series in ev.metrics_sources:
        model = series.facts.get("accelerator_model_name")
        peak = peak_tflops(model) if model else None
        if model and peak:
            told = series.facts.get("accelerators", "")
            count = int(told) if told.isdigit() else 1
            return Hardware(peak[0], peak[1], max(count, world),
                            (series.facts.get("system_description", series.path), None))
    if ev.plan.device == "cpu":
        return Hardware("CPU host", CPU_PEAK_TFLOPS, 1, (ev.plan.source.get("device", "plan"), None))
    return None


def model_flops(ev: RunEvidence) -> ModelFlops | None:
    """6 × parameters × samples/s × sequence length when all are known, else total_flos / train_runtime."""
    final = ev.final_record
    if final is None or not final.values.get("train_runtime"):
        return None
    runtime = final.values["train_runtime"]
    params = parameter_count(ev)
    samples = final.values.get("train_samples_per_second")
    seq = ev.plan.max_seq_length
    pointer = (final.path, final.line)
    if params and samples and seq:
        return ModelFlops(6 * params[0] * samples * seq,
                          f"6 × {params[0]:,} parameters ({params[1]}) × {samples:g} samples/s × {seq} tokens",
                          hardware(ev), pointer)
    if final.values.get("total_flos"):
        return ModelFlops(final.values["total_flos"] / runtime,
                          f"total_flos {final.values['total_flos']:.4g} / {runtime:g} s", hardware(ev), pointer)
    return None


# -- the gate's proof ------------------------------------------------------------------------------------------
def _positive(value: Any) -> float | None:
    """A finite positive number, else None (bools, NaN, infinities, zero and negatives prove nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and number > 0 else None


def _at(where: Where) -> str:
    return f"{where[0]}:{where[1]}" if where[1] else where[0]


@dataclass(frozen=True)
class Figure:
    """A throughput figure: the trainer's (its final record) or a claim (a summary, the manifest)."""

    key: str  # samples_per_second, tokens_per_second, steps_per_second, tflops_per_second, mfu, total_tflos
    value: float
    where: Where
    claimed: bool

    @property
    def said(self) -> str:
        """'8.11 samples/s (m44_summary.md:43)'."""
        unit = {"samples_per_second": "samples/s", "tokens_per_second": "tokens/s", "steps_per_second": "steps/s",
                "tflops_per_second": "TFLOP/s", "mfu": "% MFU", "total_tflos": "TFLOs"}[self.key]
        return f"{self.value:g} {unit} ({'claimed at ' if self.claimed else ''}{_at(self.where)})"


@dataclass(frozen=True)
class Estimate:
    """A lower bound on the FLOP/s a figure implies, and how it was computed."""

    flops: float
    how: str
    where: Where


@dataclass
class Plausibility:
    """What the throughput gate found: impossibilities (message, pointers), estimates against the hardware, and
    the checks that were made."""

    hardware: Hardware | None
    failures: list[tuple[str, list[Where]]] = field(default_factory=list)
    estimates: list[Estimate] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def binding(self) -> Estimate | None:
        """The estimate closest to the peak."""
        return max(self.estimates, key=lambda e: e.flops, default=None)


def figures(ev: RunEvidence) -> list[Figure]:
    """Every throughput figure: the trainer's final record, then the summaries' and the manifest's claims."""
    out: list[Figure] = []
    final = ev.final_record
    if final is not None:
        pointer = (final.path, final.line)
        for key, rate in FINAL_RATES.items():
            value = _positive(final.values.get(key))
            if value is not None and not any(f.key == rate for f in out):
                out.append(Figure(rate, value, pointer, False))
        for key, value in final.values.items():
            low = key.lower()
            number = _positive(value)
            if number is None:
                continue
            if "mfu" in low:
                out.append(Figure("mfu", number * 100 if number <= 1 else number, pointer, False))
            elif "tflop" in low and ("per_s" in low or low.endswith(("/s", "_s"))):
                out.append(Figure("tflops_per_second", number, pointer, False))
    for summary in ev.summaries:
        for claim in summary.figures:
            figure = _claim_figure(claim.key, claim.value, claim.unit, (claim.path, claim.line))
            if figure is not None:
                out.append(figure)
    manifest = ev.run_manifest
    if manifest is not None:
        for key, value in sorted(manifest.claims.items()):
            figure = _claim_figure(key, value, None, ("run_manifest.json", None))
            if figure is not None:
                out.append(figure)
    return out


def _claim_figure(key: str, value: float | None, unit: str | None, where: Where) -> Figure | None:
    number = _positive(value)
    if number is None:
        return None
    low = key.lower()
    if low in CLAIM_RATES:
        return Figure(low, number, where, True)
    if "mfu" in low:
        return Figure("mfu", number * 100 if number <= 1 and unit != "%" else number, where, True)
    if low == "total_tflos" and unit and unit.endswith("/s"):  # "45 TFLOP/s": a rate, not a total
        return Figure("tflops_per_second", number, where, True)
    if "tflop" in low and ("per_s" in low or low.endswith("_s")):
        return Figure("tflops_per_second", number, where, True)
    if low == "total_tflos":
        return Figure("total_tflos", number, where, True)
    return None


@dataclass(frozen=True)
class _Model:
    """A parameter count that costs 6 FLOPs per token, and where it comes from."""

    params: int
    how: str


def _models(ev: RunEvidence) -> list[_Model]:
    """The checkpoint's compute parameters, and a lower bound for each size the run declares (half a name's size
    from 1B up, a quarter below: embeddings make up to three quarters of a small model)."""
    out: list[_Model] = []
    counted = compute_parameters(ev)
    if counted is not None and counted[0] > 0:
        out.append(_Model(counted[0], f"{counted[0]:,} parameters ({counted[1]})"))
    seen: set[int] = set()
    for declared in declared_models(ev):
        size: NameSize = declared.size
        share = 0.5 if size.active >= 1e9 else 0.25
        params = int(size.active * share)
        if params <= 0 or params in seen:
            continue
        seen.add(params)
        out.append(_Model(params, f"{params:,} parameters (at least {share:g} of the {declared.name} declared at "
                                  f"{_at(declared.where)})"))
    return out


def plausibility(ev: RunEvidence) -> Plausibility:
    """Every check the throughput gate makes (see the module docstring)."""
    result = Plausibility(hardware(ev))
    final = ev.final_record
    runtime = _positive(final.values.get("train_runtime")) if final is not None else None
    final_at: Where = (final.path, final.line) if final is not None else ("", None)
    _wall_time(ev, runtime, final_at, result)
    found = figures(ev)
    trainer = {f.key: f for f in found if not f.claimed}
    tokens_per_sample = _tokens_per_sample(ev, trainer, runtime, result)
    _samples_per_step(ev, trainer, result)
    per_step = _planned_samples_per_step(ev)
    models = _models(ev)
    flos = _flos(ev)
    if flos is not None and runtime is not None:
        result.estimates.append(Estimate(flos / runtime, f"total_flos {flos:.4g} / train_runtime {runtime:g} s",
                                         final_at))
    for figure in found:
        if figure.key == "mfu":
            result.checked.append(f"MFU {figure.value:g}%")
            if figure.value > 100:
                result.failures.append((f"{figure.said}: a model FLOPs utilisation above 100% is impossible",
                                        [figure.where]))
            continue
        if figure.key == "tflops_per_second":
            result.estimates.append(Estimate(figure.value * 1e12, figure.said, figure.where))
            continue
        if figure.key == "total_tflos":
            if runtime is not None:
                result.estimates.append(Estimate(figure.value * 1e12 / runtime,
                                                 f"{figure.said} / train_runtime {runtime:g} s", figure.where))
            continue
        tokens, basis = _tokens_per_second(figure, tokens_per_sample, per_step)
        for model in models:
            result.estimates.append(Estimate(6 * model.params * tokens,
                                             f"6 × {model.how} × {basis}", figure.where))
    hw = result.hardware
    if hw is not None:
        for estimate in result.estimates:
            if estimate.flops > hw.peak:
                result.failures.append((
                    f"{estimate.flops / 1e12:.4g} TFLOP/s ({estimate.how}) exceeds the peak of {hw.devices} × "
                    f"{hw.name} ({hw.peak_tflops:g} TFLOP/s each; MFU {estimate.flops / hw.peak:.0%}): a smaller "
                    "model than declared, a wrong runtime or wrong hardware", [estimate.where, hw.where]))
    return result


def _tokens_per_second(figure: Figure, tokens_per_sample: tuple[float, str],
                       per_step: tuple[float, str]) -> tuple[float, str]:
    """Tokens/s a rate implies at least, and how ('8.11 samples/s (...) × 101 tokens per sample (...)')."""
    per_sample, sample_basis = tokens_per_sample
    if figure.key == "tokens_per_second":
        return figure.value, figure.said
    if figure.key == "samples_per_second":
        return figure.value * per_sample, f"{figure.said} × {per_sample:.4g} tokens per sample ({sample_basis})"
    samples, step_basis = per_step
    return (figure.value * samples * per_sample,
            f"{figure.said} × {samples:g} samples per step ({step_basis}) × {per_sample:.4g} tokens per sample "
            f"({sample_basis})")


def _wall_time(ev: RunEvidence, runtime: float | None, final_at: Where, result: Plausibility) -> None:
    """A runtime (the trainer's, or a claimed one) cannot exceed the wall time the wrapper or a tracker measured."""
    walls = wall_times(ev)
    if not walls:
        return
    runtimes: list[tuple[float, str, Where]] = []
    if runtime is not None:
        runtimes.append((runtime, "train_runtime", final_at))
    for summary in ev.summaries:
        for claim in summary.figures:
            value = _positive(claim.value)
            if claim.key == "runtime_seconds" and value is not None:
                runtimes.append((value, f"claimed runtime '{claim.text.strip()}'", (claim.path, claim.line)))
    wall, how, wall_at = min(walls)
    factor, extra = WALL_SLACK
    for seconds, what, where in runtimes:
        result.checked.append(f"{what} {seconds:g} s within the wall time {wall:g} s ({how})")
        if seconds > wall * factor + extra:
            result.failures.append((
                f"{what} {seconds:g} s ({_at(where)}) cannot fit in the {wall:g} s wall time {how} "
                f"({seconds / wall:.3g}× it, when at most {factor:g}× + {extra:g} s is timing noise)"
                if wall > 0 else f"{what} {seconds:g} s ({_at(where)}) cannot fit in the 0 s wall time {how}",
                [where, wall_at]))


def wall_times(ev: RunEvidence) -> list[tuple[float, str, Where]]:
    """Wall times measured outside the training process: the run manifest's outcome (wall_seconds, else ended_at −
    started_at) and a tracker's recorded run start and end (MLflow)."""
    from datetime import datetime

    out: list[tuple[float, str, Where]] = []
    manifest = ev.run_manifest
    if manifest is not None:
        outcome = manifest.outcome
        wall = outcome.wall_seconds
        if isinstance(wall, (int, float)) and math.isfinite(wall) and wall >= 0:
            out.append((float(wall), "the run manifest's outcome.wall_seconds records", ("run_manifest.json", None)))
        elif outcome.started_at and outcome.ended_at:
            try:
                span = (datetime.fromisoformat(outcome.ended_at) - datetime.fromisoformat(outcome.started_at))
            except (ValueError, TypeError):
                span = None
            if span is not None and span.total_seconds() >= 0:
                out.append((span.total_seconds(), "between the run manifest's outcome.started_at and ended_at",
                            ("run_manifest.json", None)))
    for series in ev.metrics_sources:
        wall = _positive(_float(series.facts.get("wall_seconds")))
        if wall is not None:
            out.append((wall, f"between the run's start and end in {series.path}", (series.path, None)))
    return out


def _flos(ev: RunEvidence) -> float | None:
    """The trainer's total_flos where it counts FLOPs of tokens (not of a vision or audio model's input values)."""
    final = ev.final_record
    flos = _positive(final.values.get("total_flos")) if final is not None else None
    config = ev.checkpoint.config if ev.checkpoint is not None else None
    if flos is None or (config and any(key in config for key in NOT_TOKEN_INPUTS)):
        return None
    return flos


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _tokens_per_sample(ev: RunEvidence, trainer: dict[str, Figure], runtime: float | None,
                       result: Plausibility) -> tuple[float, str]:
    """Tokens per sample, as the evidence measures it (the trainer's tokens/s ÷ samples/s, or total_flos ÷ 6 ×
    parameters ÷ samples), else the planned sequence length (each sample filling it), else at least 1. A measured
    figure above the sequence length, or below one token per sample, is impossible."""
    samples = trainer.get("samples_per_second")
    tokens = trainer.get("tokens_per_second")
    seq = ev.plan.max_seq_length
    seq_at = ev.plan.source.get("max_seq_length", "the plan")
    if samples is not None and tokens is not None:
        ratio = tokens.value / samples.value
        if seq:
            result.checked.append(f"tokens per sample {ratio:.4g} ≤ max_seq_length {seq}")
            if ratio > seq * RATE_SLACK + 0.5:
                result.failures.append((f"{tokens.said} ÷ {samples.said} = {ratio:.4g} tokens per sample, more than "
                                        f"the max_seq_length {seq} ({seq_at}) a sample can hold",
                                        [tokens.where, (seq_at, None)]))
        return ratio, f"the trainer's tokens/s ÷ samples/s at {_at(tokens.where)}"
    flos = _flos(ev)
    counted = compute_parameters(ev, experts=False)
    if samples is not None and flos is not None and runtime is not None and counted is not None:
        seen = flos / (6 * counted[0])
        per_sample = seen / (samples.value * runtime)
        result.checked.append(f"total_flos accounts for {per_sample:.4g} tokens per sample")
        if per_sample < 0.5:
            result.failures.append((
                f"{samples.said} over train_runtime {runtime:g} s is {samples.value * runtime:,.0f} samples, but "
                f"total_flos {flos:.4g} = 6 × {counted[0]:,} parameters × {seen:,.0f} tokens: fewer tokens than "
                "samples", [samples.where]))
        elif not seq or per_sample <= seq * RATE_SLACK:
            return per_sample, f"total_flos ÷ (6 × {counted[0]:,} parameters) ÷ samples"
    if seq:
        return float(seq), f"each filling max_seq_length {seq} ({seq_at})"
    return 1.0, "at least 1"


def _planned_samples_per_step(ev: RunEvidence) -> tuple[float, str]:
    """Samples an optimizer step takes at least: the planned batch × gradient accumulation, else 1."""
    plan = ev.plan
    if plan.batch_size:
        accumulation = plan.gradient_accumulation_steps or 1
        basis = f"batch_size {plan.batch_size} ({plan.source.get('batch_size', 'the plan')})"
        if plan.gradient_accumulation_steps:
            basis += f" × gradient_accumulation_steps {accumulation}"
        return float(plan.batch_size * accumulation), basis
    return 1.0, "at least 1"


def _samples_per_step(ev: RunEvidence, trainer: dict[str, Figure], result: Plausibility) -> None:
    """The trainer's samples/s ÷ steps/s is the samples of one optimizer step: at least one, and no more than the
    planned batch × accumulation × devices."""
    samples, steps = trainer.get("samples_per_second"), trainer.get("steps_per_second")
    if samples is None or steps is None:
        return
    ratio = samples.value / steps.value
    low = 1 / RATE_SLACK - 0.01
    plan = ev.plan
    result.checked.append(f"{ratio:.4g} samples per optimizer step")
    if ratio < low:
        result.failures.append((f"{samples.said} ÷ {steps.said} = {ratio:.3g} samples per optimizer step: a step "
                                "takes at least one sample", [steps.where]))
        return
    hw = result.hardware
    if plan.batch_size and plan.gradient_accumulation_steps and hw is not None:
        most = plan.batch_size * plan.gradient_accumulation_steps * hw.devices
        if ratio > most * RATE_SLACK + 0.05:
            result.failures.append((
                f"{samples.said} ÷ {steps.said} = {ratio:.4g} samples per optimizer step, more than batch_size "
                f"{plan.batch_size} × gradient_accumulation_steps {plan.gradient_accumulation_steps} × "
                f"{hw.devices} device(s) = {most} ({plan.source.get('batch_size', 'the plan')})",
                [samples.where, (plan.source.get("batch_size", "the plan"), None)]))
