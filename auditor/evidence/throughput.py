"""Model FLOPs of a run: achieved FLOP/s from total_flos / runtime, or 6 × parameters × tokens/s, against the
recorded hardware's peak. One computation for the throughput gate and the milestone summary."""

from __future__ import annotations

from dataclasses import dataclass

from auditor.evidence.run import RunEvidence
from auditor.hardware import CPU_PEAK_TFLOPS, peak_tflops

Where = tuple[str, int | None]  # (path, 1-based line or None)


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
        return self.achieved / (hw.peak_tflops * 1e12 * hw.devices) if hw else None


def parameter_count(ev: RunEvidence) -> tuple[int, str] | None:
    """Parameters from tensor shapes, else the shard index's declared total_parameters."""
    ckpt = ev.checkpoint
    if ckpt is None:
        return None
    if ckpt.files and not ckpt.missing_shards and ckpt.parameters:
        return ckpt.parameters, f"tensor shapes in {ckpt.directory}/"
    if ckpt.index is not None:
        declared = ckpt.index.metadata.get("total_parameters")
        if isinstance(declared, int) and declared > 0:
            return declared, f"{ckpt.index.path} metadata.total_parameters"
    return None


def hardware(ev: RunEvidence) -> Hardware | None:
    """The recorded hardware: the GPU snapshot's devices, else the environment's GPU, else a CPU host."""
    snap = ev.gpu_snapshot
    if snap and snap.devices:
        peak = peak_tflops(snap.devices[0].name)
        if peak:
            return Hardware(peak[0], peak[1], len(snap.devices), (snap.path, snap.devices[0].line))
    gpu = ev.env_fact("gpu")
    if gpu:
        peak = peak_tflops(gpu[0])
        if peak:
            return Hardware(peak[0], peak[1], 1, (gpu[1], gpu[2]))
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
