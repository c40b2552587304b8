"""nvidia-smi text (Linux and Windows WDDM layouts; process rows with N/A memory) and NVML JSON."""

from __future__ import annotations

import math
import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.evidence.jsonload import load_json
from auditor.evidence.opener import EvidenceUnreadable, bounded_lines, open_file, read_json_file

_HEADER = re.compile(r"Driver Version:\s*(?P<driver>[\d.]+)(?:.*?CUDA Version:\s*(?P<cuda>[\d.]+))?")
_GPU_ROW = re.compile(r"^\|\s+(?P<index>\d+)\s+(?P<name>.+?)\s+(?:On|Off|WDDM|TCC|MCDM)\s+\|")
_STATS_ROW = re.compile(
    r"(?P<used>\d+)MiB\s*/\s*(?P<total>\d+)MiB\s*\|\s*(?P<util>\d+|N/A)%?\s"
)
_PROC_ROW = re.compile(
    r"^\|\s+(?P<gpu>\d+)\s+(?:\S+\s+\S+\s+)?(?P<pid>\d+)\s+(?P<type>C\+G|C|G|M\+C|M)\s+(?P<name>.+?)\s+"
    r"(?P<mem>\d+MiB|N/A)\s*\|$"
)


@dataclass
class GpuDevice:
    """One accelerator as a snapshot describes it."""

    index: int
    name: str
    memory_used_mib: int | None = None
    memory_total_mib: int | None = None
    utilization: int | None = None
    line: int | None = None


@dataclass
class GpuProcess:
    """One process row: compute (`C`) rows with memory are evidence of GPU work."""

    gpu: int
    pid: int
    kind: str
    name: str
    memory_mib: int | None
    line: int


@dataclass
class GpuSnapshot:
    """Parsed nvidia-smi text or NVML JSON."""

    path: str
    driver: str | None = None
    cuda: str | None = None
    timestamp: str | None = None
    devices: list[GpuDevice] = field(default_factory=list)
    processes: list[GpuProcess] = field(default_factory=list)
    has_process_table: bool = False
    error: str | None = None

    @property
    def compute_processes(self) -> list[GpuProcess]:
        """Rows of processes doing compute (type C, C+G, M+C) — graphics-only rows excluded."""
        return [p for p in self.processes if "C" in p.kind]


def parse_nvidia_smi(lines: tuple[str, ...], name: str) -> GpuSnapshot:
    """Parse `nvidia-smi` table output; tolerant of both driver layouts."""
    snap = GpuSnapshot(path=name)
    pending: GpuDevice | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip().lstrip("\ufeff")
        if number <= 3 and stripped and not stripped.startswith(("+", "|")) and snap.timestamp is None:
            snap.timestamp = stripped
        header = _HEADER.search(line)
        if header and snap.driver is None:
            snap.driver, snap.cuda = header["driver"], header["cuda"]
            continue
        if "Processes:" in line:
            snap.has_process_table = True
            continue
        if snap.has_process_table:
            proc = _PROC_ROW.match(stripped)
            if proc:
                mem = proc["mem"]
                snap.processes.append(GpuProcess(
                    int(proc["gpu"]), int(proc["pid"]), proc["type"], proc["name"].strip(),
                    None if mem == "N/A" else int(mem[:-3]), number,
                ))
            continue
        row = _GPU_ROW.match(stripped)
        if row:
            pending = GpuDevice(int(row["index"]), row["name"].strip(), line=number)
            snap.devices.append(pending)
            continue
        stats = _STATS_ROW.search(line)
        if stats and pending is not None and pending.memory_total_mib is None:
            pending.memory_used_mib, pending.memory_total_mib = int(stats["used"]), int(stats["total"])
            pending.utilization = None if stats["util"] == "N/A" else int(stats["util"])
    return snap


def parse_nvml_json(path: Path, name: str) -> GpuSnapshot:
    """Read gpu_snapshot.json as `audit run` writes it: {"driver", "cuda", "devices": [...], "error"}."""
    snap = GpuSnapshot(path=name)
    try:
        data: Any = read_json_file(path, name)
    except (OSError, ValueError) as exc:
        snap.error = f"gpu_snapshot.json {getattr(exc, 'msg', None) or exc}"
        return snap
    if not isinstance(data, dict):
        snap.error = "gpu_snapshot.json is not a JSON object"
        return snap
    snap.driver = str(data["driver"]) if data.get("driver") else None
    snap.cuda = str(data["cuda"]) if data.get("cuda") else None
    snap.error = str(data["error"]) if data.get("error") else None
    for i, dev in enumerate(data.get("devices") or []):
        if isinstance(dev, dict):
            total = dev.get("memory_total_mib")
            snap.devices.append(GpuDevice(
                index=int(dev.get("index", i)) if str(dev.get("index", i)).isdigit() else i,
                name=str(dev.get("name", "unknown")),
                memory_total_mib=int(total) if isinstance(total, (int, float)) else None,
            ))
    return snap


@dataclass
class SampleStats:
    """What gpu_samples.jsonl shows about the run's use of the accelerator."""

    path: str
    samples: int = 0
    devices: set[int] = field(default_factory=set)
    max_utilization: float = 0.0
    mean_utilization: float = 0.0
    max_process_memory_mib: float = 0.0
    max_memory_used_mib: float = 0.0
    max_power_w: float = 0.0
    bad_lines: int = 0
    # per device: (elapsed seconds, utilisation %, memory used MiB), kept only when asked for (the summary's plot)
    series: dict[int, tuple[array, array, array]] = field(default_factory=dict)


def read_gpu_samples(path: Path, name: str, keep_series: bool = False) -> SampleStats:
    """Aggregate NVML samples (one line per device per round): peak and mean utilisation, peak memory held by
    the run's processes, peak device memory and power; with `keep_series`, each device's readings over time."""
    stats = SampleStats(path=name)
    util_sum, util_count = 0.0, 0
    try:
        handle = open_file(path, name)
    except EvidenceUnreadable:
        stats.bad_lines += 1
        return stats
    with handle:
        for raw in bounded_lines(handle):
            if not raw.strip():
                continue
            try:
                sample = load_json(raw)
            except ValueError:
                stats.bad_lines += 1
                continue
            if not isinstance(sample, dict):
                stats.bad_lines += 1
                continue
            stats.samples += 1
            if isinstance(sample.get("gpu"), int):
                stats.devices.add(sample["gpu"])
            util = _number(sample.get("utilization_gpu"))
            if keep_series:
                _keep(stats, sample, util)
            if util is not None:
                stats.max_utilization = max(stats.max_utilization, util)
                util_sum, util_count = util_sum + util, util_count + 1
            for attr, key in (("max_process_memory_mib", "process_memory_mib"),
                              ("max_memory_used_mib", "memory_used_mib"), ("max_power_w", "power_w")):
                value = _number(sample.get(key))
                if value is not None and value > getattr(stats, attr):
                    setattr(stats, attr, value)
    stats.mean_utilization = util_sum / util_count if util_count else 0.0
    return stats


def _keep(stats: SampleStats, sample: dict[str, Any], util: float | None) -> None:
    elapsed, gpu = _number(sample.get("elapsed_s")), sample.get("gpu")
    if elapsed is None or not isinstance(gpu, int):
        return
    times, utils, memory = stats.series.setdefault(gpu, (array("d"), array("d"), array("d")))
    used = _number(sample.get("memory_used_mib"))
    times.append(elapsed)
    utils.append(math.nan if util is None else util)
    memory.append(math.nan if used is None else used)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
