"""GPU snapshots: nvidia-smi text (Linux and Windows WDDM layouts; process rows with N/A memory),
`nvidia-smi --query-gpu=... --format=csv` output (with or without its header), and NVML JSON (`audit run`'s
gpu_snapshot.json, gpustat-style {"gpus": [...]}). Found by name (gpu_snapshot.*, nvidia_smi.txt, gpu*.csv,
nvidia-smi*.csv, ...) and, among the text files near the folder's root, by their first bytes."""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.evidence.jsonload import load_json
from auditor.evidence.opener import EvidenceUnreadable, Folder, bounded_lines, open_file, read_json_file
from auditor.evidence.text import decode_bytes, split_lines

GPU_NAMES = ("gpu_snapshot.json", "gpu_snapshot.txt", "nvidia_smi.txt", "nvidia-smi.txt")
_GPU_FILE = re.compile(r"(?:gpus?|nvidia[_-]?smi|nvsmi|smi)(?:[_.-][\w.-]*)?\.(?:txt|csv|json|out|log)|"
                       r"(?:gpu|nvidia)[\w.-]*\.csv", re.I)
SNIFF_SUFFIXES = (".txt", ".csv", ".out", "")
SNIFF_LIMIT = 64  # text files near the root whose first bytes are read to recognise a snapshot
_CSV_DEVICE = re.compile(r"NVIDIA|Tesla|GeForce|Quadro|RTX|A100|H100|H200|B200|L40|L4|T4|V100|A10|A40", re.I)
_DRIVER = re.compile(r"^\d{3,}\.\d+(?:\.\d+)*$")
_MIB = re.compile(r"^(\d+(?:\.\d+)?)\s*MiB$", re.I)

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
    """Read gpu_snapshot.json as `audit run` writes it: {"driver", "cuda", "devices": [...], "error"}; also a
    gpustat-style {"driver_version", "gpus": [{"index", "name", "memory.total"}]}."""
    snap = GpuSnapshot(path=name)
    try:
        data: Any = read_json_file(path, name)
    except (OSError, ValueError) as exc:
        snap.error = f"{name} {getattr(exc, 'msg', None) or exc}"
        return snap
    if not isinstance(data, dict):
        snap.error = f"{name} is not a JSON object"
        return snap
    driver = data.get("driver") or data.get("driver_version")
    cuda = data.get("cuda") or data.get("cuda_version")
    snap.driver = str(driver) if driver and not isinstance(driver, (dict, list)) else None
    snap.cuda = str(cuda) if cuda and not isinstance(cuda, (dict, list)) else None
    snap.error = str(data["error"]) if data.get("error") else None
    devices = data.get("devices") if isinstance(data.get("devices"), list) else data.get("gpus")
    for i, dev in enumerate(devices if isinstance(devices, list) else []):
        if isinstance(dev, dict):
            total = dev.get("memory_total_mib", dev.get("memory.total"))
            snap.devices.append(GpuDevice(
                index=int(dev.get("index", i)) if str(dev.get("index", i)).isdigit() else i,
                name=str(dev.get("name", "unknown")),
                memory_total_mib=int(number) if (number := _number(total)) is not None else None,
            ))
    return snap


def looks_like_csv(lines: Sequence[str]) -> bool:
    """Whether text is `nvidia-smi --query-gpu=... --format=csv` output: its header names query fields, or (with
    `noheader`) its first row holds a GPU name and a driver version."""
    first = next((line for line in lines if line.strip()), "")
    if "," not in first or first.lstrip().startswith(("|", "+")):
        return False
    fields = [f.strip().lower() for f in first.split(",")]
    if any(f.startswith(("driver_version", "memory.total", "memory.used", "utilization.gpu", "pci.bus_id"))
           for f in fields) and any(f in ("name", "gpu_name") or f.startswith("index") for f in fields):
        return True
    return any(_CSV_DEVICE.search(f) for f in fields) and any(_DRIVER.match(f) for f in fields)


def parse_nvidia_smi_csv(lines: Sequence[str], name: str) -> GpuSnapshot:
    """Parse `nvidia-smi --query-gpu=index,name,driver_version,memory.total,... --format=csv[,noheader]`: one
    device per row (the first sampling round when it looped with `-l`)."""
    snap = GpuSnapshot(path=name)
    rows = [(number, [f.strip() for f in line.split(",")]) for number, line in enumerate(lines, start=1)
            if line.strip()]
    if not rows:
        return snap
    header = [f.lower().split(" [")[0].strip() for f in rows[0][1]]
    named = "name" in header or "gpu_name" in header or "driver_version" in header
    body = rows[1:] if named else rows
    first_stamp: str | None = None
    seen: set[str] = set()
    for number, fields in body:
        row = dict(zip(header, fields, strict=False)) if named else _guess(fields)
        stamp = row.get("timestamp")
        if stamp is not None:
            first_stamp = first_stamp or stamp
            if stamp != first_stamp:
                break  # `-l N` repeats the devices every round
        key = row.get("index") or row.get("pci.bus_id") or row.get("uuid")
        if key is not None:
            if key in seen:
                break
            seen.add(key)
        device_name = row.get("name") or row.get("gpu_name")
        if not device_name:
            continue
        index = row.get("index", "")
        snap.devices.append(GpuDevice(
            index=int(index) if index.isdigit() else len(snap.devices), name=device_name,
            memory_used_mib=_mib(row.get("memory.used")), memory_total_mib=_mib(row.get("memory.total")),
            utilization=_percent(row.get("utilization.gpu")), line=number))
        if snap.driver is None and row.get("driver_version") and _DRIVER.match(row["driver_version"]):
            snap.driver = row["driver_version"]
    return snap


def _guess(fields: list[str]) -> dict[str, str]:
    """A `noheader` row: the GPU name and the driver version by their look."""
    row: dict[str, str] = {}
    for value in fields:
        if "name" not in row and _CSV_DEVICE.search(value):
            row["name"] = value
        elif "driver_version" not in row and _DRIVER.match(value):
            row["driver_version"] = value
        elif "memory.total" not in row and _MIB.match(value):
            row["memory.total"] = value
    return row


def _mib(value: str | None) -> int | None:
    match = _MIB.match(value.strip()) if value else None
    if match:
        return int(float(match.group(1)))
    return int(value) if value and value.strip().isdigit() else None


def _percent(value: str | None) -> int | None:
    text = (value or "").replace("%", "").strip()
    return int(text) if text.isdigit() else None


def find_gpu_snapshot(files: Sequence[str], head: Callable[[str], bytes]) -> str | None:
    """The folder's GPU snapshot: a known name (gpu_snapshot.json/.txt, nvidia_smi.txt, nvidia-smi.txt), else a file
    named like one (gpu*.csv, nvidia-smi*.csv, gpu_info.txt ...) at most one folder down whose first bytes are
    nvidia-smi output or NVML JSON, else a text file near the root whose first bytes are (at most SNIFF_LIMIT read)."""
    present = set(files)
    known = next((n for n in GPU_NAMES if n in present), None)
    if known is not None:
        return known
    shallow = [f for f in files if f.count("/") <= 1]
    named = sorted((f for f in shallow if _GPU_FILE.fullmatch(f.rsplit("/", 1)[-1])),
                   key=lambda f: (f.count("/"), f))
    for rel in named:
        if is_gpu_snapshot(rel, head(rel)):
            return rel
    rest = [f for f in shallow if f not in named and Path(f).suffix.lower() in SNIFF_SUFFIXES
            and "log" not in f.rsplit("/", 1)[-1].lower()]
    for rel in sorted(rest, key=lambda f: (f.count("/"), f))[:SNIFF_LIMIT]:
        if is_gpu_snapshot(rel, head(rel)):
            return rel
    return None


def is_gpu_snapshot(rel: str, head: bytes) -> bool:
    """Whether a file's first bytes are nvidia-smi's table, its `--query-gpu` CSV, or NVML JSON with devices."""
    text, _ = decode_bytes(head)
    if rel.lower().endswith(".json"):
        stripped = text.lstrip()
        return stripped.startswith("{") and ('"devices"' in text or '"gpus"' in text)
    if "NVIDIA-SMI" in text and "Driver Version" in text:
        return True
    return looks_like_csv(split_lines(text)[:50])


def read_gpu_snapshot(folder: Folder, rel: str) -> GpuSnapshot | None:
    """One GPU snapshot, by its shape: NVML JSON, `--query-gpu` CSV, or nvidia-smi's table."""
    if rel.lower().endswith(".json"):
        return parse_nvml_json(folder.root / rel, rel)
    doc = folder.text(rel)
    if doc is None:
        return None
    if looks_like_csv(doc.lines[:50]):
        return parse_nvidia_smi_csv(doc.lines, rel)
    return parse_nvidia_smi(doc.lines, rel)


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
