"""GPU evidence from NVML (nvidia-ml-py), taken in the wrapper, never in the training process.

Device facts once (gpu_snapshot.json), then a sampler thread every --sample-interval seconds writing one line per
device to gpu_samples.jsonl: utilisation, memory, power, temperature, and the memory held on that device by the
training's own process tree (so another job on a shared GPU cannot pass for this run). nvidia-smi's text is kept
as gpu_snapshot.txt, taken while the training runs. Where NVML or a GPU is absent, the reason is recorded instead.

NvmlSource is the one boundary to the driver; everything else works on its plain readings, which is how the
aggregation is tested on a machine without a GPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any, Protocol

from auditor.capture.files import utc_now, write_atomic, write_json_atomic
from auditor.capture.procfs import stat_fields

MIB = 1 << 20
SMI_AFTER_ROUNDS = 5  # nvidia-smi text is taken once the training has had a few seconds to claim its devices


class GpuSource(Protocol):
    """Where readings come from: NVML on a GPU machine (recorded readings in tests)."""

    def facts(self) -> dict[str, Any]: ...

    def count(self) -> int: ...

    def read(self, index: int) -> dict[str, Any]: ...

    def close(self) -> None: ...


class NvmlSource:
    """NVML through nvidia-ml-py. Raw units: bytes, milliwatts, percent, degrees C."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]

    def _try(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except self.nvml.NVMLError:
            return None

    def facts(self) -> dict[str, Any]:
        nvml = self.nvml
        cuda = self._try(nvml.nvmlSystemGetCudaDriverVersion)
        devices = []
        for index, handle in enumerate(self.handles):
            memory = self._try(nvml.nvmlDeviceGetMemoryInfo, handle)
            capability = self._try(nvml.nvmlDeviceGetCudaComputeCapability, handle)
            limit = self._try(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
            devices.append({"index": index, "name": _text(self._try(nvml.nvmlDeviceGetName, handle)),
                            "uuid": _text(self._try(nvml.nvmlDeviceGetUUID, handle)),
                            "memory_total_mib": memory.total // MIB if memory else None,
                            "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
                            "power_limit_w": limit / 1000 if limit else None})
        return {"driver": _text(self._try(nvml.nvmlSystemGetDriverVersion)),
                "cuda": f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None, "devices": devices}

    def count(self) -> int:
        return len(self.handles)

    def read(self, index: int) -> dict[str, Any]:
        nvml, handle = self.nvml, self.handles[index]
        util = self._try(nvml.nvmlDeviceGetUtilizationRates, handle)
        memory = self._try(nvml.nvmlDeviceGetMemoryInfo, handle)
        processes = []
        for call in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
            processes += [(p.pid, p.usedGpuMemory) for p in self._try(call, handle) or []]
        return {"utilization_gpu": util.gpu if util else None, "utilization_memory": util.memory if util else None,
                "memory_used_bytes": memory.used if memory else None,
                "power_mw": self._try(nvml.nvmlDeviceGetPowerUsage, handle),
                "temperature_c": self._try(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
                "processes": processes}

    def close(self) -> None:
        self._try(self.nvml.nvmlShutdown)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


def open_nvml() -> tuple[NvmlSource | None, str]:
    """NVML with at least one device, or None and why not (recorded in env_snapshot.json as `nvml`)."""
    try:
        import pynvml  # noqa: F401
    except ImportError:
        return None, "not captured: nvidia-ml-py is not installed (pip install 'auditor[gpu]')"
    try:
        source = NvmlSource()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ... : no usable driver here
        return None, f"not captured: NVML unavailable ({type(exc).__name__}: {exc})"
    if not source.count():
        source.close()
        return None, "not captured: NVML sees no GPU"
    return source, f"sampled {source.count()} device(s)"


def process_tree(root: int) -> set[int]:
    """`root` and every descendant, from /proc (Linux); just `root` where /proc is not there."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {root}
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = stat_fields(entry)
        if fields is not None and len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in tree:
                tree.add(child)
                todo.append(child)
    return tree


def sample_record(index: int, raw: dict[str, Any], tree: set[int], elapsed: float) -> dict[str, Any]:
    """One gpu_samples.jsonl line from one device's raw readings: units converted, and memory split between the
    training's process tree and everyone else."""
    ours = [(pid, used) for pid, used in raw.get("processes", []) if pid in tree]
    held = sum(used or 0 for _, used in ours)
    power = raw.get("power_mw")
    used = raw.get("memory_used_bytes")
    return {"t": utc_now(), "elapsed_s": round(elapsed, 3), "gpu": index,
            "utilization_gpu": raw.get("utilization_gpu"), "utilization_memory": raw.get("utilization_memory"),
            "memory_used_mib": round(used / MIB, 1) if used is not None else None,
            "power_w": round(power / 1000, 1) if power is not None else None,
            "temperature_c": raw.get("temperature_c"),
            "process_memory_mib": round(held / MIB, 1), "processes": len(ours),
            "other_processes": len(raw.get("processes", [])) - len(ours)}


class Sampler:
    """The sampler thread: one line per device every `interval` seconds while the training runs."""

    def __init__(self, source: GpuSource, folder: Path, interval: float) -> None:
        self.source, self.folder, self.interval = source, folder, interval
        self.rounds = 0
        self.cpu_seconds = 0.0
        self.smi_taken = False
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()

    def start(self, pid: int) -> None:
        """Begin sampling the tree of `pid` (called once the child exists)."""
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, args=(pid,), name="audit-gpu-sampler", daemon=True)
        self._thread.start()

    def sample_once(self, pid: int, out: IO[str]) -> None:
        """One round over every device (the thread's body; tests call it directly)."""
        cpu = time.thread_time()
        tree = process_tree(pid)
        elapsed = time.monotonic() - self._start
        for index in range(self.source.count()):
            out.write(json.dumps(sample_record(index, self.source.read(index), tree, elapsed)) + "\n")
        out.flush()
        self.rounds += 1
        self.cpu_seconds += time.thread_time() - cpu

    def _run(self, pid: int) -> None:
        try:
            with (self.folder / "gpu_samples.jsonl").open("a", encoding="utf-8") as out:
                while True:
                    self.sample_once(pid, out)
                    if self.rounds == SMI_AFTER_ROUNDS:
                        self.take_smi()
                    if self._stop.wait(self.interval):
                        break
        except OSError as exc:  # a full disk ends the sampling, not the run (and prints no thread traceback)
            self.error = f"sampling stopped: {exc.strerror or exc}"

    def take_smi(self) -> None:
        """nvidia-smi's own text, when the binary exists (kept byte for byte as gpu_snapshot.txt)."""
        if self.smi_taken:
            return
        self.smi_taken = True
        binary = shutil.which("nvidia-smi")
        if binary is None:
            return
        try:
            done = subprocess.run([binary], capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return
        if done.stdout.strip():
            try:
                write_atomic(self.folder / "gpu_snapshot.txt", done.stdout)
            except OSError as exc:
                self.error = f"gpu_snapshot.txt not written: {exc.strerror or exc}"

    def stop(self) -> dict[str, Any]:
        """Stop the thread (after one last round) and say what it cost."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.take_smi()
        self.source.close()
        return {"samples": self.rounds, "interval_s": self.interval,
                "cpu_ms_per_sample": round(1000 * self.cpu_seconds / self.rounds, 3) if self.rounds else None,
                **({"error": self.error} if self.error else {})}


def start_capture(folder: Path, interval: float) -> tuple[Sampler | None, dict[str, Any]]:
    """Write gpu_snapshot.json and make a sampler, or say why there is no GPU evidence to take."""
    source, why = open_nvml()
    if source is None:
        return None, {"nvml": why}
    write_json_atomic(folder / "gpu_snapshot.json", {"taken_at": utc_now(), **source.facts()})
    return Sampler(source, folder, interval), {"nvml": why}
