"""Peak dense tensor FLOP/s per accelerator (bf16/fp16, no sparsity): the ceiling for model FLOPs
utilisation. Figures are vendor datasheet peaks; where a part has variants the faster one is used, so
the ceiling is generous and a failure means physically impossible."""

from __future__ import annotations

import re

PEAK_TFLOPS: tuple[tuple[str, re.Pattern[str], float], ...] = (
    ("NVIDIA H200", re.compile(r"\bH200\b", re.I), 989.0),
    ("NVIDIA H100", re.compile(r"\bH100\b", re.I), 989.0),
    ("NVIDIA A100", re.compile(r"\bA100\b", re.I), 312.0),
    ("NVIDIA A10", re.compile(r"\bA10G?\b", re.I), 125.0),
    ("NVIDIA L4", re.compile(r"\bL4\b", re.I), 121.0),
    ("NVIDIA L40S", re.compile(r"\bL40S\b", re.I), 362.0),
    ("NVIDIA V100", re.compile(r"\bV100\b", re.I), 125.0),
    ("NVIDIA T4", re.compile(r"\bT4\b", re.I), 65.0),
    ("NVIDIA RTX 5090", re.compile(r"RTX\s*5090", re.I), 209.5),
    ("NVIDIA RTX 4090", re.compile(r"RTX\s*4090", re.I), 165.2),
    ("NVIDIA RTX 3090", re.compile(r"RTX\s*3090", re.I), 71.0),
    ("TPU v5p", re.compile(r"TPU\s*v5p", re.I), 459.0),
    ("TPU v5e", re.compile(r"TPU\s*v5e|TPU\s*v5\s*lite", re.I), 197.0),
    ("TPU v4", re.compile(r"TPU\s*v4", re.I), 275.0),
    ("TPU v3", re.compile(r"TPU\s*v3", re.I), 123.0),
)
# A generous bound for a whole CPU host (dozens of cores with AVX-512/AMX in bf16).
CPU_PEAK_TFLOPS = 10.0


def peak_tflops(name: str) -> tuple[str, float] | None:
    """(canonical name, peak dense TFLOP/s per device) for an accelerator name, or None if unknown."""
    for canonical, pattern, peak in PEAK_TFLOPS:
        if pattern.search(name):
            return canonical, peak
    return None
