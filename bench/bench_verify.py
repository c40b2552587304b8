"""Benchmarks for `audit verify`, each against a baseline measured in the same script (machines are noisy).

    python bench/bench_verify.py [--gib 2] [--work /tmp/auditor-bench]

1. full verify of a folder with >= 2 GiB of safetensors shards vs `openssl dgst -sha256` run on every core
   in parallel over the same files (the hashing limit of the machine); ratio must be <= 1.25
2. `verify --quick` on that folder (no digests, no tensor data): < 0.5 s
3. a 1,000,000-line metrics.jsonl verified: < 2 s (our runtime's shape, and HF Trainer's with eval records)
4. `audit --help` startup: < 0.3 s, against `python -c pass`
Best of N wall times; page cache warmed first so both sides read from memory; the package's bytecode is
compiled first, as `pip install` does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

SHARD_MIB = 256


def write_shard(path: Path, mib: int, tensor: str) -> str:
    """A valid safetensors file of `mib` MiB (one U8 tensor named `tensor`) filled with pseudo-random bytes."""
    payload = mib * 1024 * 1024
    header = json.dumps({tensor: {"dtype": "U8", "shape": [payload], "data_offsets": [0, payload]}}).encode()
    header += b" " * (-len(header) % 8)
    block = hashlib.sha256(path.name.encode()).digest() * (1 << 15)  # 1 MiB
    digest = hashlib.sha256()
    with path.open("wb") as f:
        head = struct.pack("<Q", len(header)) + header
        f.write(head)
        digest.update(head)
        for _ in range(mib):
            f.write(block)
            digest.update(block)
    return digest.hexdigest()


def build_weights_folder(root: Path, gib: float) -> list[Path]:
    final = root / "training_output" / "final_model"
    final.mkdir(parents=True)
    n = max(2, int(gib * 1024 // SHARD_MIB))
    names = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    sums = []
    for i, name in enumerate(names):
        sums.append(f"{write_shard(final / name, SHARD_MIB, f't{i}')}  training_output/final_model/{name}\n")
    (final / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {
        f"t{i}": name for i, name in enumerate(names)}}))
    (final / "config.json").write_text("{}")
    (root / "SHA256SUMS").write_text("".join(sums))
    (root / "training_log.txt").write_text("bench\n")
    return [final / n for n in names]


def build_metrics_folder(root: Path, lines: Iterable[str]) -> Path:
    """A run folder whose training_output/metrics.jsonl holds `lines`."""
    (root / "training_output").mkdir(parents=True)
    with (root / "training_output" / "metrics.jsonl").open("w") as f:
        f.writelines(lines)
    (root / "training_log.txt").write_text("bench\n")
    return root


def hf_lines() -> Iterator[str]:
    """The HF Trainer `on_log` shape: another key order, an eval record every 500 steps, the final record."""
    for step in range(1, 1_000_001):
        yield (f'{{"loss": {3.0 - step * 2e-6:.4f}, "grad_norm": {1.0 + step % 7 / 10:.4f}, '
               f'"learning_rate": {5e-5 * (1 - step / 1e6):.6g}, "epoch": {step / 1e6:.6f}, "step": {step}}}\n')
        if step % 500 == 0:
            yield (f'{{"eval_loss": {2.9 - step * 2e-6:.4f}, "eval_runtime": 1.5, "epoch": {step / 1e6:.6f}, '
                   f'"step": {step}}}\n')
    yield ('{"train_runtime": 3600.0, "train_samples_per_second": 2222.2, "train_steps_per_second": 277.8, '
           '"total_flos": 1e15, "train_loss": 2.0, "epoch": 1.0, "step": 1000000}\n')


def best(cmd: list[str], repeat: int, cwd: Path | None = None) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return min(times)


def peak_rss_mib(cmd: list[str]) -> float:
    """Peak resident memory of `cmd` (its largest process), measured by a fresh Python parent."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
             "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/auditor-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    audit = [sys.executable, "-m", "auditor"]
    # pip compiles bytecode at install; a source checkout under PYTHONDONTWRITEBYTECODE would otherwise
    # recompile every module on every run and measure the compiler, not the tool
    import auditor

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(auditor.__file__).parent)], check=True)
    cores = os.cpu_count() or 1
    rows = []

    weights = args.work / "weights_v1"
    files = build_weights_folder(weights, args.gib)
    total = sum(f.stat().st_size for f in files)
    best(["cat", *map(str, files)], 1)  # warm the page cache
    groups = [files[i::cores] for i in range(cores)]
    openssl = ["bash", "-c", " & ".join(f"openssl dgst -sha256 {' '.join(map(str, g))} >/dev/null" for g in groups)
               + " & wait"]
    base = best(openssl, args.repeat)
    full = best([*audit, "verify", str(weights), "--select", "evidence_complete,checkpoint_saved"], args.repeat)
    full_all = best([*audit, "verify", str(weights)], args.repeat)
    quick = best([*audit, "verify", str(weights), "--quick"], args.repeat)
    rows.append(("full verify (evidence_complete + checkpoint_saved), "
                 f"{total / 2**30:.2f} GiB in {len(files)} shards", full, base, "openssl dgst -sha256 on "
                 f"{cores} cores", full / base, "<= 1.25"))
    rows.append(("full verify, all 14 gates, same folder", full_all, base, "same", full_all / base, "<= 1.25"))
    rows.append(("verify --quick, same folder", quick, None, "", None, "< 0.5 s"))

    def plain_lines() -> Iterator[str]:
        for step in range(1, 1_000_001):
            yield (f'{{"step": {step}, "loss": {3.0 - step * 2e-6:.6f}, "learning_rate": 0.0001, '
                   f'"epoch": {step / 1e6:.6f}}}\n')

    metrics_run = build_metrics_folder(args.work / "metrics_v1", plain_lines())
    lines = best([*audit, "verify", str(metrics_run)], args.repeat)
    wc = best(["wc", "-l", str(metrics_run / "training_output" / "metrics.jsonl")], args.repeat)
    rows.append(("verify, 1,000,000-line metrics.jsonl", lines, wc, "wc -l", lines / wc, "< 2 s"))
    hf_run = build_metrics_folder(args.work / "metrics_hf_v1", hf_lines())
    hf_time = best([*audit, "verify", str(hf_run)], args.repeat)
    rows.append(("verify, same with HF `on_log` key order + an eval record every 500 steps (1,002,001 lines)",
                 hf_time, wc, "wc -l (above)", hf_time / wc, "< 2 s"))

    bare = best([sys.executable, "-c", "pass"], 5)
    helptime = best([*audit, "--help"], 5)
    rows.append(("audit --help", helptime, bare, "python -c pass", helptime / bare, "< 0.3 s"))

    rss = [(f"full verify, {total / 2**30:.2f} GiB of shards", peak_rss_mib([*audit, "verify", str(weights)])),
           ("verify, 1,000,000-line metrics.jsonl", peak_rss_mib([*audit, "verify", str(metrics_run)])),
           ("verify, 1,002,001-line HF metrics.jsonl", peak_rss_mib([*audit, "verify", str(hf_run)]))]

    print(f"machine: {cores} cores, python {sys.version.split()[0]}")
    print("| benchmark | auditor (s) | baseline (s) | baseline | ratio | budget |")
    print("|---|---|---|---|---|---|")
    for name, ours, baseline, what, ratio, budget in rows:
        b = f"{baseline:.3f}" if baseline is not None else ""
        r = f"{ratio:.2f}" if ratio is not None else ""
        print(f"| {name} | {ours:.3f} | {b} | {what} | {r} | {budget} |")
    print()
    print("| peak memory | MiB |")
    print("|---|---|")
    for name, mib in rss:
        print(f"| {name} | {mib:.0f} |")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
