"""Benchmarks for the torch_archive checkpoint source, each against a baseline measured in the same script.

    python bench/bench_torch_archive.py [--gib 2] [--work /tmp/auditor-bench-torch] [--repeat 3]

1. a ~2 GiB torch.save archive (made here with torch) verified by verify_archive: every member's CRC-32 and the
   whole file's sha256 in one sequential 1 MiB-chunk pass, vs the hashing limit of the same file: hashlib.sha256
   over 1 MiB reads (fresh bytes each, and readinto one buffer) and `openssl dgst -sha256`; the ratio to the
   fastest of the three must be <= 1.25. The full source inspect (verify + data.pkl walk + storage checks) is
   reported too.
2. a 1,000-tensor data.pkl walked (globals, storages, tensor names/dtypes/shapes): < 0.1 s; torch's own
   `torch.load(weights_only=True)` of the same archive and bare pickletools.genops are shown for scale.
Best of N wall times, the sides measured round-robin; the page cache is warmed first so every side reads from memory.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickletools
import shutil
import subprocess
import sys
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from auditor.evidence.opener import Folder
from auditor.evidence.pickles import walk_pickle
from auditor.evidence.sources.interface import Candidate
from auditor.evidence.sources.torch_archive import CHUNK, TorchArchiveSource, verify_archive

TENSOR_MIB = 256


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best time of each, measured round-robin so a burst of load on a shared machine hits every side alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def write_archive(path: Path, gib: float) -> int:
    """A torch.save state dict of uint8 tensors, TENSOR_MIB each, totalling `gib` GiB of data."""
    block = torch.randint(0, 256, (1 << 20,), dtype=torch.uint8)
    n = max(1, int(gib * 1024 // TENSOR_MIB))
    state = OrderedDict((f"layers.{i}.weight", block.repeat(TENSOR_MIB) + i) for i in range(n))
    torch.save(state, path)
    return path.stat().st_size


def hashlib_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hashlib_sha256_readinto(path: Path) -> str:
    """The same with one reused buffer: no allocation per read, the fastest a Python hasher gets."""
    digest, buffer = hashlib.sha256(), bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb") as f:
        while read := f.readinto(buffer):
            digest.update(view[:read])
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/auditor-bench-torch"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    rows: list[tuple[str, float, float | None, str, float | None, str]] = []
    try:
        archive = args.work / "model.pt"
        size = write_archive(archive, args.gib)
        folder = Folder(args.work, ["model.pt"])
        subprocess.run(["cat", str(archive)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

        def ours() -> None:
            with folder.open("model.pt") as handle:
                check = verify_archive(handle)
            assert not check.problems, check.problems

        ours()
        source = TorchArchiveSource()
        candidate = Candidate("model.pt", "torch_archive")
        timed = interleaved({
            "py": lambda: hashlib_sha256(archive),
            "into": lambda: hashlib_sha256_readinto(archive),
            "ssl": lambda: subprocess.run(["openssl", "dgst", "-sha256", str(archive)], stdout=subprocess.DEVNULL,
                                          check=True),
            "ours": ours,
            "inspect": lambda: source.inspect(folder, candidate),
        }, args.repeat)
        base_py, base_into, base_ssl = timed["py"], timed["into"], timed["ssl"]
        one_pass, inspect = timed["ours"], timed["inspect"]
        limit = min(base_py, base_into, base_ssl)
        label = f"{size / 2**30:.2f} GiB torch.save archive"
        rows.append((f"hashlib.sha256, 1 MiB reads, {label}", base_py, None, "", None, "(hashing limit)"))
        rows.append((f"hashlib.sha256, 1 MiB readinto one buffer, {label}", base_into, None, "", None,
                     "(hashing limit)"))
        rows.append((f"openssl dgst -sha256, {label}", base_ssl, None, "", None, "(hashing limit)"))
        rows.append((f"verify_archive: all member CRC-32s + sha256, one pass, {label}", one_pass, limit,
                     "fastest of the three above", one_pass / limit, "<= 1.25"))
        rows.append(("TorchArchiveSource.inspect, same file", inspect, limit, "same", inspect / limit, "<= 1.25"))
        archive.unlink()

        small = args.work / "thousand.pt"
        torch.save(OrderedDict((f"layers.{i}.weight", torch.zeros(2, 3)) for i in range(1000)), small)
        data = zipfile.ZipFile(small).read("thousand/data.pkl")

        def walk() -> None:
            scan = walk_pickle(data, "thousand.pt")
            assert len(list(scan.tensors())) == 1000

        genops = best(lambda: sum(1 for _ in pickletools.genops(data)), args.repeat * 3)
        walked = best(walk, args.repeat * 3)
        loaded = best(lambda: torch.load(small, weights_only=True), args.repeat * 3)
        rows.append((f"walk_pickle, 1,000-tensor data.pkl ({len(data):,} bytes)", walked, loaded,
                     "torch.load(weights_only=True) of the archive", walked / loaded, "< 0.1 s"))
        rows.append(("pickletools.genops alone, same data.pkl", genops, None, "", None, ""))
    finally:
        shutil.rmtree(args.work, ignore_errors=True)

    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, torch {torch.__version__}")
    print("| benchmark | auditor (s) | baseline (s) | baseline | ratio | budget |")
    print("|---|---|---|---|---|---|")
    for name, value, baseline, what, ratio, budget in rows:
        b = f"{baseline:.3f}" if baseline is not None else ""
        r = f"{ratio:.2f}" if ratio is not None else ""
        print(f"| {name} | {value:.3f} | {b} | {what} | {r} | {budget} |")


if __name__ == "__main__":
    main()
