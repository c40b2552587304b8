"""Hostile run folders for tests/test_hostile_folders.py and bench/fuzz_verify.py (a library: no tests here).

A folder starts as a small plausible seed-style run written from scratch (log with HF dict lines and a tqdm bar,
metrics.jsonl, config YAML, summary with figure tables, env snapshot, a real safetensors checkpoint written from
bytes, SHA256SUMS, optionally a run manifest), then seeded mutations break it: bytes (truncation, splices, BOM/NUL,
CRLF, non-UTF-8), values (100,000-deep and huge JSON, 5,000-digit ints, steps beyond int64, NaN/inf/1e400, rich
markup) and the file system (FIFOs, sockets, devices, symlink loops and escapes, directories and files swapped,
chmod 000, 1,500-deep trees, 2 GiB sparse files). A `HostileSpec` names the base and the (mutation, seed) list, so
every folder is rebuilt exactly from its spec; `random_spec` draws one from a seed and `hostile_specs` is the
hypothesis strategy over the same space.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import random
import re
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from auditor.models import VerifyReport

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534
DEEP_JSON_LEVELS = 100_000
SPARSE_BYTES = 2 * 1024**3
MARKUP = ("[/tmp/x]", "[rank0]:", "[bold]", "[/]", "[red]x[/red]", "[/bold]", "[link=file:///etc/passwd]x[/link]",
          "[dim]", "\\[", "::error::x", "%0A", "\x1b[31m", "]]>", "<x a='&amp;'>", "\u202e", "|", "`", "${{ x }}",
          "[bold magenta on red]", "[i]", "{0}", "%s")
NUMBERS = ("99999999999999999999", "-99999999999999999999", "9" * 5000, "NaN", "Infinity", "-Infinity", "1e400",
           "-1e400", "1e-400", "-0", "18446744073709551616", "9223372036854775808", "0.0", "-1", "1e308")
# a valid 1x1 PNG, so a figure the summary names exists
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
BASES = ("seed", "manifest", "sharded", "checkpoints")
MODEL_CONFIG = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 8, "n_layer": 1,
                "n_head": 2, "vocab_size": 16, "n_positions": 16}
TENSORS = {"transformer.wte.weight": ("F32", [16, 8]), "transformer.wpe.weight": ("F32", [16, 8]),
           "transformer.h.0.attn.c_attn.weight": ("F32", [8, 24]), "transformer.h.0.mlp.c_fc.weight": ("F32", [8, 32]),
           "transformer.ln_f.weight": ("F32", [8])}
ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U8": 1, "BOOL": 1}
STEPS, BATCH = 40, 4
FLOS = 6.0 * 712 * STEPS * BATCH * 16  # 6 x parameters x tokens (16-token sequences)


# ---------------------------------------------------------------- the plausible base folder


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]], metadata: dict[str, str] | None = None) -> bytes:
    """A valid safetensors file: 8-byte little-endian header length, JSON header (space-padded to 8), data."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        size = count * ITEMSIZE[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    data = (hashlib.sha256(raw).digest() * (offset // 32 + 1))[:offset]
    return struct.pack("<Q", len(raw)) + raw + data


def _losses() -> list[tuple[int, float]]:
    return [(step, round(2.5 * 0.97 ** step + 0.02 * ((step * 7) % 3), 4)) for step in range(5, STEPS + 1, 5)]


def _summary(losses: list[tuple[int, float]]) -> str:
    rows = "\n".join(f"| {step} | {loss:.2f} |" for step, loss in losses)
    return f"""# Tiny run summary

**Status:** ✅ Complete

## Training Results

| Metric | Value |
|--------|-------|
| Model | tiny-gpt2 |
| Total Steps | {STEPS} |
| Runtime | 20.0 seconds |
| Throughput | 8.00 samples/sec |
| Final Loss | {losses[-1][1]:.2f} |
| Eval Examples | 4 |
| Batch Size | {BATCH} |

### Loss curve

| Step | Loss |
|------|------|
{rows}

### Quality gates

| Gate | Status | Detail |
|------|--------|--------|
| Loss Decreases | ✅ PASS | {losses[0][1]:.2f} → {losses[-1][1]:.2f} |
| Training Completes | ✅ PASS | {STEPS}/{STEPS} steps |
| Checkpoint Saved | ✅ PASS | final_model |

## Figures

| Figure | File |
|--------|------|
| Loss curve | figures/loss.png |
| Metrics | training_output/metrics.jsonl |
"""


def _manifest(root: Path, losses: list[tuple[int, float]]) -> dict[str, Any]:
    return {
        "schema_version": 1, "run_id": root.name, "created_at": "2026-01-01T00:00:00+00:00", "runner": "command",
        "command": ["python", "train.py", "--config", "tiny_config.yaml"], "config_path": "tiny_config.yaml",
        "evidence_only": False, "seed": 0,
        "plan": {"max_steps": STEPS, "device": "cpu", "batch_size": BATCH, "eval_examples": 4,
                 "model_name": "tiny-gpt2", "architecture": {k: v for k, v in MODEL_CONFIG.items()
                                                             if isinstance(v, int)}, "source": {}},
        "outcome": {"status": "succeeded", "exit_code": 0, "signal": None, "started_at": "2026-01-01T00:00:00+00:00",
                    "ended_at": "2026-01-01T00:00:20+00:00", "heartbeat_at": "2026-01-01T00:00:20+00:00",
                    "host": "fuzz", "wrapper_pid": 1, "wall_seconds": 20.5},
        "environment": {"python": "3.11.7", "platform": "Linux-x86_64", "torch": "2.3.0+cpu", "cuda_available": False},
        "git": {"commit": "0" * 40, "branch": "main", "dirty": False, "changed_files": [], "diff_path": None,
                "diff_sha256": None},
        "artifacts": [], "claims": {"total_steps": STEPS, "final_loss": losses[-1][1]},
    }


def write_base(root: Path, base: str = "seed") -> Path:
    """Write a small plausible run folder at `root` (created): `base` is one of BASES."""
    losses = _losses()
    root.mkdir(parents=True)
    out = root / "training_output"
    final = out / "final_model"
    final.mkdir(parents=True)
    (root / "figures").mkdir()
    (root / "figures" / "loss.png").write_bytes(PNG)
    log = ["device: cpu, dtype: float32", "Loading dataset from: data/tiny.jsonl", "***** Running training *****"]
    for step, loss in losses:
        bar = "█" * (10 * step // STEPS)
        log.append(f"\r{100 * step // STEPS:3d}%|{bar:<10}| {step}/{STEPS} [00:{step // 2:02d}<00:10,  2.00it/s]")
        log.append(f"{{'loss': {loss}, 'grad_norm': 1.25, 'learning_rate': 5e-05, 'epoch': {step / STEPS:.2f}}}")
    mean = round(sum(loss for _, loss in losses) / len(losses), 4)
    log.append(f"{{'train_runtime': 20.0, 'train_samples_per_second': 8.0, 'train_steps_per_second': 2.0, "
               f"'total_flos': {FLOS}, 'train_loss': {mean}, 'epoch': 1.0}}")
    log += ["Saving final model...", "Saved model to: training_output/final_model", "Training completed!"]
    (root / "training_log.txt").write_text("\n".join(log) + "\n", encoding="utf-8")
    records = [{"step": s, "loss": loss, "grad_norm": 1.25, "learning_rate": 5e-05, "epoch": s / STEPS}
               for s, loss in losses]
    records.append({"step": STEPS, "train_runtime": 20.0, "train_samples_per_second": 8.0,
                    "train_steps_per_second": 2.0, "total_flos": FLOS, "train_loss": mean, "epoch": 1.0})
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (root / "tiny_config.yaml").write_text(
        "# tiny run\nmodel:\n  name: tiny-gpt2\n  model_type: gpt2\n  n_embd: 8\n  n_layer: 1\n  n_head: 2\n"
        f"  vocab_size: 16\ntraining:\n  max_steps: {STEPS}\n  device: cpu\n  batch_size: {BATCH}\n"
        "  dtype: float32\n  optimizer: adamw\n  learning_rate: 5.0e-5\neval:\n  num_examples: 4\n", encoding="utf-8")
    (root / "tiny_summary.md").write_text(_summary(losses), encoding="utf-8")
    (root / "env_snapshot.txt").write_text(
        "# Environment Snapshot\nPython: Python 3.11.7\nPyTorch: 2.3.0+cpu\nCUDA Available: False\n"
        "Platform: Linux-6.1-x86_64\nTransformers: 4.44.0\n", encoding="utf-8")
    (root / "predictions.jsonl").write_text("".join(
        json.dumps({"id": i, "prompt": f"q{i}", "prediction": f"answer {i}"}) + "\n" for i in range(4)))
    (root / "eval_log.txt").write_text("Evaluated 4 examples\n", encoding="utf-8")
    (final / "config.json").write_text(json.dumps(MODEL_CONFIG, indent=2), encoding="utf-8")
    if base == "sharded":
        names = list(TENSORS)
        shards = {"model-00001-of-00002.safetensors": names[:2], "model-00002-of-00002.safetensors": names[2:]}
        for shard, keys in shards.items():
            (final / shard).write_bytes(safetensors_bytes({k: TENSORS[k] for k in keys}, {"format": "pt"}))
        index = {"metadata": {"total_size": 4 * 1000}, "weight_map": {k: s for s, ks in shards.items() for k in ks}}
        (final / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    else:
        (final / "model.safetensors").write_bytes(safetensors_bytes(TENSORS, {"format": "pt"}))
    if base == "checkpoints":
        for step in (20, 40):
            ckpt = out / "checkpoints" / f"checkpoint-{step}"
            ckpt.mkdir(parents=True)
            (ckpt / "model.safetensors").write_bytes(safetensors_bytes(TENSORS))
            (ckpt / "config.json").write_text(json.dumps(MODEL_CONFIG), encoding="utf-8")
            state = {"global_step": step, "max_steps": STEPS, "log_history": [
                {"step": s, "loss": loss, "epoch": s / STEPS} for s, loss in losses if s <= step]}
            (ckpt / "trainer_state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
    if base == "manifest":
        manifest = _manifest(root, losses)
        manifest["artifacts"] = _artifacts(root)
        (root / "run_manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    (root / "SHA256SUMS").write_text(_sha256sums(root), encoding="utf-8")
    return root


def regular_files(root: Path, max_depth: int = 8, limit: int = 5000) -> list[str]:
    """Folder-relative regular files (links not followed, unreadable folders skipped), sorted."""
    found: list[str] = []
    stack: list[tuple[Path, str, int]] = [(root, "", 0)]
    while stack and len(found) < limit:
        path, rel, depth = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            name = f"{rel}{entry.name}"
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < max_depth:
                        stack.append((Path(entry.path), name + "/", depth + 1))
                elif entry.is_file(follow_symlinks=False):
                    found.append(name)
            except OSError:
                continue
    return sorted(found)


def _digest(path: Path, limit: int = 64 * 1024 * 1024) -> tuple[str, int] | None:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_size
    except (OSError, ValueError):
        return None


def _artifacts(root: Path) -> list[dict[str, Any]]:
    out = []
    for rel in regular_files(root):
        if rel in ("run_manifest.json", "SHA256SUMS"):
            continue
        digest = _digest(root / rel)
        if digest:
            out.append({"path": rel, "sha256": digest[0], "size": digest[1], "role": None})
    return out


def _sha256sums(root: Path) -> str:
    lines = []
    for rel in regular_files(root):
        if rel == "SHA256SUMS":
            continue
        digest = _digest(root / rel)
        if digest:
            lines.append(f"{digest[0]}  {rel}\n")
    return "".join(lines)


class BaseCache:
    """Each base folder written once under `parent`; cases copy it (cheaper than writing it again)."""

    def __init__(self, parent: Path) -> None:
        self.parent = parent
        self._built: dict[str, Path] = {}

    def copy_to(self, base: str, dest: Path) -> Path:
        """A fresh copy of base `base` at `dest` (whose name becomes the run id in a manifest)."""
        if base not in self._built:
            self._built[base] = write_base(self.parent / f"base-{base}" / "run_v1", base)
        shutil.copytree(self._built[base], dest, symlinks=True)
        manifest = dest / "run_manifest.json"
        if base == "manifest" and dest.name != "run_v1":
            manifest.write_text(manifest.read_text(encoding="utf-8").replace('"run_v1"', json.dumps(dest.name)),
                                encoding="utf-8")
        return dest


# ---------------------------------------------------------------- file-system builders


def make_deep_tree(parent: Path, depth: int, leaf: tuple[str, bytes] | None = None, name: str = "d") -> None:
    """`depth` nested folders below `parent` (os.mkdir with dir_fd: os.makedirs recurses and fails past ~1000)."""
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        if leaf is not None:
            out = os.open(leaf[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd)
            try:
                os.write(out, leaf[1])
            finally:
                os.close(out)
    finally:
        os.close(fd)


def make_sparse(path: Path, size: int = SPARSE_BYTES, head: bytes = b"") -> None:
    """A sparse file of `size` bytes (no newline anywhere unless `head` has one): `head`, then holes."""
    _clear(path)
    with open(path, "wb") as handle:
        handle.write(head)
        handle.truncate(size)


def make_socket(path: Path) -> None:
    """A unix socket file at `path` (bound through /proc/self/fd so long tmp paths fit in sun_path)."""
    _clear(path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(f"/proc/self/fd/{fd}/{path.name}")
    finally:
        sock.close()
        os.close(fd)


def make_fifo(path: Path) -> None:
    """A FIFO at `path` (nobody writes to it: an open for reading blocks forever)."""
    _clear(path)
    os.mkfifo(path)


def make_char_device(path: Path) -> str:
    """A character device (/dev/zero's numbers) at `path` when allowed, else a symlink to /dev/zero."""
    _clear(path)
    try:
        os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5))
        return "char device 1:5"
    except OSError:
        os.symlink("/dev/zero", path)
        return "symlink to /dev/zero (mknod refused)"


def deep_json(levels: int = DEEP_JSON_LEVELS, kind: str = "list") -> bytes:
    """JSON nested `levels` deep: [[[...]]] or {"a":{"a":...}}."""
    if kind == "dict":
        return b'{"a":' * levels + b"1" + b"}" * levels
    return b"[" * levels + b"]" * levels


def _clear(path: Path) -> None:
    """Remove whatever is at `path` (file, link, FIFO, folder) so a builder can put something else there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    except NotADirectoryError:
        return
    if stat.S_ISDIR(st.st_mode):
        remove_tree(path)
    else:
        os.unlink(path)


def remove_tree(path: Path) -> None:
    """rm -rf that survives what mutations leave: 1,500-deep trees, chmod 000 folders, FIFOs, sockets, loops."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    stack: list[tuple[int, str]] = [(os.open(path, os.O_RDONLY | os.O_DIRECTORY), "")]
    while stack:
        fd, _ = stack[-1]
        descend = None
        for name in os.listdir(fd):
            try:
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(mode):
                os.chmod(name, 0o700, dir_fd=fd)
                descend = name
                break
            os.unlink(name, dir_fd=fd)
        if descend is not None:
            stack.append((os.open(descend, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), descend))
            continue
        os.close(fd)
        _, name = stack.pop()
        if stack:
            os.rmdir(name, dir_fd=stack[-1][0])
    os.rmdir(path)


@contextlib.contextmanager
def scratch_dir(prefix: str = "hostile-") -> Iterator[Path]:
    """A temporary folder removed with remove_tree (shutil.rmtree recurses and fails on the deep trees)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        remove_tree(path)


# ---------------------------------------------------------------- mutations

Mutation = Callable[[Path, random.Random], str]


@dataclass(frozen=True)
class MutationInfo:
    """A mutation, how often the fuzzer draws it, and whether it is costly (sparse/deep: a sampled minority)."""

    apply: Mutation
    weight: float
    heavy: bool = False


MUTATIONS: dict[str, MutationInfo] = {}
TEXT_TARGETS = ("training_log.txt", "tiny_summary.md", "tiny_config.yaml", "env_snapshot.txt", "predictions.jsonl",
                "training_output/metrics.jsonl", "run_manifest.json", "SHA256SUMS", "eval_log.txt",
                "training_output/final_model/config.json", "training_output/final_model/model.safetensors.index.json",
                "training_output/checkpoints/checkpoint-40/trainer_state.json")
JSON_TARGETS = ("run_manifest.json", "training_output/final_model/config.json", "results.json", "eval_summary.json",
                "training_output/final_model/model.safetensors.index.json", "env_snapshot.json", "gpu_snapshot.json",
                "training_output/checkpoints/checkpoint-40/trainer_state.json", "training_output/trainer_state.json")
JSONL_TARGETS = ("training_output/metrics.jsonl", "predictions.jsonl", "gpu_samples.jsonl")
FS_TARGETS = ("training_log.txt", "training_output/metrics.jsonl", "training_output/final_model/model.safetensors",
              "training_output/final_model/config.json", "run_manifest.json", "SHA256SUMS", "tiny_summary.md",
              "tiny_config.yaml", "env_snapshot.txt", "predictions.jsonl", "figures/loss.png", "eval_log.txt",
              "training_output/final_model/model-00001-of-00002.safetensors")
DIR_TARGETS = ("training_output", "training_output/final_model", "training_output/checkpoints",
               "training_output/checkpoints/checkpoint-40", "figures", "nodes")


def mutation(name: str, weight: float = 1.0, heavy: bool = False) -> Callable[[Mutation], Mutation]:
    """Register a mutation under `name`."""
    def register(func: Mutation) -> Mutation:
        MUTATIONS[name] = MutationInfo(func, weight, heavy)
        return func
    return register


def _pick(root: Path, rng: random.Random, preferred: Sequence[str] = ()) -> str | None:
    """A regular file to mutate: one of `preferred` that exists (most of the time), else any."""
    files = regular_files(root)
    liked = [p for p in preferred if p in files]
    if liked and rng.random() < 0.8:
        return rng.choice(liked)
    return rng.choice(files) if files else None


def _rewrite(root: Path, rng: random.Random, change: Callable[[bytes], bytes], what: str,
             preferred: Sequence[str] = TEXT_TARGETS) -> str:
    rel = _pick(root, rng, preferred)
    if rel is None:
        return f"{what}: no file"
    path = root / rel
    try:
        data = path.read_bytes()
        path.write_bytes(change(data))
    except OSError as exc:
        return f"{what} {rel}: skipped ({exc.strerror})"
    return f"{what} {rel}"


def _write(path: Path, data: bytes) -> None:
    _clear(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@mutation("truncate", 3)
def truncate(root: Path, rng: random.Random) -> str:
    """Cut a file at a random byte (often mid-line, mid-UTF-8 sequence or mid-header)."""
    return _rewrite(root, rng, lambda d: d[: rng.randrange(len(d) + 1)], "truncate",
                    (*TEXT_TARGETS, "training_output/final_model/model.safetensors"))


@mutation("splice_bytes", 3)
def splice_bytes(root: Path, rng: random.Random) -> str:
    """Random bytes spliced in (or overwriting) at a random offset."""
    def change(data: bytes) -> bytes:
        at = rng.randrange(len(data) + 1)
        junk = rng.randbytes(rng.choice((1, 4, 64, 1024)))
        return data[:at] + junk + data[at + (len(junk) if rng.random() < 0.5 else 0):]
    return _rewrite(root, rng, change, "splice_bytes", (*TEXT_TARGETS, "training_output/final_model/model.safetensors"))


@mutation("bom_nul", 2)
def bom_nul(root: Path, rng: random.Random) -> str:
    """A BOM (UTF-8, UTF-16 LE/BE, UTF-32) or NULs in front, or NULs through the file."""
    prefix = rng.choice((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x00", b"\x00" * 4096,
                         b"\xef\xbb\xbf\xef\xbb\xbf"))
    if rng.random() < 0.3:
        return _rewrite(root, rng, lambda d: d.replace(b"\n", b"\x00\n"), "nul_lines")
    return _rewrite(root, rng, lambda d: prefix + d, f"prefix {prefix[:4]!r}")


@mutation("line_endings", 2)
def line_endings(root: Path, rng: random.Random) -> str:
    """CRLF, lone CR, or mixed line endings."""
    new = rng.choice((b"\r\n", b"\r", b"\n\r", b"\r\r\n"))
    return _rewrite(root, rng, lambda d: d.replace(b"\n", new), f"line endings {new!r}")


@mutation("non_utf8", 2)
def non_utf8(root: Path, rng: random.Random) -> str:
    """Invalid UTF-8, surrogates encoded, UTF-16 without BOM, or cp1252 text."""
    def change(data: bytes) -> bytes:
        kind = rng.randrange(4)
        if kind == 0:
            at = rng.randrange(len(data) + 1)
            bad = rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80", b"\xf8\x88\x80\x80"))
            return data[:at] + bad + data[at:]
        if kind == 1:
            return data.decode("utf-8", "replace").encode("utf-16-le")
        if kind == 2:
            return data.decode("utf-8", "replace").encode("cp1252", "replace") + b"caf\xe9 \x93quoted\x94\n"
        return data.decode("utf-8", "replace").encode("utf-32")
    return _rewrite(root, rng, change, "non_utf8")


@mutation("empty_file", 2)
def empty_file(root: Path, rng: random.Random) -> str:
    """A file emptied (a template awaiting data)."""
    return _rewrite(root, rng, lambda d: b"", "empty", (*TEXT_TARGETS, "training_output/final_model/model.safetensors"))


def markup_line(rng: random.Random) -> str:
    """A log or table line made of rich-markup-like fragments."""
    return " ".join(rng.choice(MARKUP) for _ in range(rng.randint(1, 5)))


@mutation("rich_markup", 3)
def rich_markup(root: Path, rng: random.Random) -> str:
    """Markup-looking text where it will be quoted: a traceback at the end of the log, summary cells, YAML names."""
    bits = markup_line(rng)
    kind = rng.randrange(4)
    if kind == 0:
        tail = f"Traceback (most recent call last):\n  File \"train.py\", line 1\nRuntimeError: {bits} bad [/tmp/x]\n"
        return _rewrite(root, rng, lambda d: d + tail.encode(), "traceback with markup", ("training_log.txt",))
    if kind == 1:
        return _rewrite(root, rng, lambda d: re.sub(rb"\| (Total Steps|Final Loss|Runtime|Model) \| [^|\n]*",
                                                    lambda m: m.group(0) + bits.encode(), d), "summary markup",
                        ("tiny_summary.md",))
    if kind == 2:
        return _rewrite(root, rng, lambda d: d.replace(b"tiny-gpt2", json.dumps(bits).encode()), "yaml name markup",
                        ("tiny_config.yaml", "run_manifest.json"))
    return _rewrite(root, rng, lambda d: d + f"[rank0]: {bits}\n".encode(), "markup line")


def _number_swap(data: bytes, rng: random.Random, value: bytes) -> bytes:
    matches = list(re.finditer(rb"(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?(?![\w.])", data[:200_000]))
    if not matches:
        return data + value
    m = rng.choice(matches)
    return data[: m.start()] + value + data[m.end():]


@mutation("hostile_number", 4)
def hostile_number(root: Path, rng: random.Random) -> str:
    """A number replaced by a 5,000-digit int, a step beyond int64, NaN/Infinity/1e400 ..."""
    value = rng.choice(NUMBERS)
    return _rewrite(root, rng, lambda d: _number_swap(d, rng, value.encode()), f"number {value[:24]}",
                    (*TEXT_TARGETS, *JSON_TARGETS))


def metrics_line(rng: random.Random) -> bytes:
    """One hostile metrics.jsonl line."""
    big = rng.choice(NUMBERS)
    return rng.choice((
        f'{{"step": {big}, "loss": 0.5}}', f'{{"step": 41, "loss": {big}}}', f'{{"step": {big}, "loss": {big}}}',
        '{"step": "40", "loss": "0.5"}', '{"step": true, "loss": null}', "[1, 2, 3]", '"just a string"', "null",
        '{"step": 1e400, "loss": -1e400}', '{"step": -5, "loss": 0.1}', '{"step": 40, "step": 2, "loss": 1}',
        f'{{"step": 40, "metrics": {{"train_runtime": {big}, "train_samples_per_second": {big}}}}}',
        '{"step": 40.5, "loss": 0.1, "epoch": NaN}', "{", '{"step": 40, "loss": 0.1}' * 3,
        f'{{"step": 1, "loss": 0.1, "note": "{markup_line(rng)}"}}',
    )).encode() + b"\n"


@mutation("metrics_hostile", 4)
def metrics_hostile(root: Path, rng: random.Random) -> str:
    """Hostile lines in metrics.jsonl (or the other JSONL evidence): huge/bad steps and losses, non-objects."""
    rel = rng.choice(JSONL_TARGETS) if rng.random() < 0.3 else "training_output/metrics.jsonl"
    path = root / rel
    lines = [metrics_line(rng) for _ in range(rng.randint(1, 4))]
    try:
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        at = rng.choice((len(data), 0, data.find(b"\n") + 1))
        _write(path, data[:at] + b"".join(lines) + data[at:])
    except OSError as exc:
        return f"metrics_hostile {rel}: skipped ({exc.strerror})"
    return f"metrics_hostile {rel}: {b''.join(lines)[:120]!r}"


@mutation("deep_json", 2)
def deep_json_file(root: Path, rng: random.Random) -> str:
    """JSON nested 100,000 deep as a manifest, config, index, trainer_state, a JSONL line or a stray .json."""
    data = deep_json(DEEP_JSON_LEVELS, rng.choice(("list", "dict")))
    if rng.random() < 0.25:
        rel = rng.choice(JSONL_TARGETS)
        path = root / rel
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes() + data + b"\n"
    else:
        rel = rng.choice(JSON_TARGETS)
    try:
        _write(root / rel, data)
    except OSError as exc:
        return f"deep_json {rel}: skipped ({exc.strerror})"
    return f"deep_json {rel}"


@mutation("huge_json", 1)
def huge_json(root: Path, rng: random.Random) -> str:
    """Wide JSON: 50,000-element lists, 20,000 keys, a 300 kB string, a 5,000-digit number."""
    kind = rng.randrange(4)
    if kind == 0:
        value: Any = list(range(50_000))
    elif kind == 1:
        value = {f"k{i}": i for i in range(20_000)}
    elif kind == 2:
        value = {"run_id": "x" * 300_000, "artifacts": [{"path": "a" * 5000, "sha256": "0", "size": 1}] * 200}
    else:
        value = None
    rel = rng.choice((*JSON_TARGETS, *JSONL_TARGETS))
    data = (b"9" * 5000) if value is None else json.dumps(value).encode()
    try:
        _write(root / rel, data + (b"\n" if rel.endswith(".jsonl") else b""))
    except OSError as exc:
        return f"huge_json {rel}: skipped ({exc.strerror})"
    return f"huge_json {rel} kind {kind}"


def hostile_safetensors(rng: random.Random) -> bytes:
    """A safetensors file whose header lies: length past the end or 2^64-1, deep/huge JSON, bad offsets/dtypes."""
    good = safetensors_bytes(TENSORS)
    (length,) = struct.unpack("<Q", good[:8])
    header = good[8: 8 + length]
    body = good[8 + length:]
    kind = rng.randrange(12)
    if kind == 0:
        return struct.pack("<Q", rng.choice((2**64 - 1, 2**63, len(good) * 4, 0, 7))) + header + body
    if kind == 1:
        deep = deep_json(DEEP_JSON_LEVELS, "dict")
        return struct.pack("<Q", len(deep)) + deep + body
    if kind == 2:
        raw = json.dumps({"t": {"dtype": "F32", "shape": [int("9" * 30), 2], "data_offsets": [0, 8]}}).encode()
        return struct.pack("<Q", len(raw)) + raw + body[:8]
    if kind == 3:
        raw = b'{"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, ' + b"9" * 5000 + b"]}}"
        return struct.pack("<Q", len(raw)) + raw + body[:8]
    if kind == 4:
        raw = json.dumps({"t": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [8, 0]},
                          "u": {"dtype": "Q99", "shape": "x", "data_offsets": None}}).encode()
        return struct.pack("<Q", len(raw)) + raw + body
    if kind == 5:
        raw = b'{"t": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, Infinity]}, "__metadata__": {"a": 1e400}}'
        return struct.pack("<Q", len(raw)) + raw + body
    if kind == 6:
        raw = json.dumps({"__metadata__": {"format": markup_line(rng), "nested": {"a": [1]}}}).encode()
        return struct.pack("<Q", len(raw)) + raw
    if kind == 7:
        return good[: rng.randrange(1, 8)]
    if kind == 8:
        raw = header.replace(b"{", b"\xff{", 1)
        return struct.pack("<Q", len(raw)) + raw + body
    if kind == 9:
        raw = json.dumps([1, 2, 3]).encode()
        return struct.pack("<Q", len(raw)) + raw + body
    if kind == 10:
        raw = json.dumps({f"t{i}": {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]}
                          for i in range(20_000)}).encode()
        return struct.pack("<Q", len(raw)) + raw + b"\x00" * 20_000
    return good + rng.randbytes(rng.randint(1, 64))


@mutation("safetensors_header", 3)
def safetensors_header(root: Path, rng: random.Random) -> str:
    """A checkpoint (final, shard or intermediate) replaced by one with a hostile header."""
    candidates = [r for r in regular_files(root) if r.endswith(".safetensors")]
    rel = rng.choice(candidates) if candidates else "training_output/final_model/model.safetensors"
    try:
        _write(root / rel, hostile_safetensors(rng))
    except OSError as exc:
        return f"safetensors_header {rel}: skipped ({exc.strerror})"
    return f"safetensors_header {rel}"


def hostile_manifest(root: Path, rng: random.Random) -> dict[str, Any] | list[Any] | str:
    """A run manifest with hostile values: escaping artifact paths, wrong types, huge numbers, markup."""
    manifest: Any = _manifest(root, _losses())
    manifest["artifacts"] = _artifacts(root)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(14)
        if kind != 13 and not isinstance(manifest, dict):
            break
        try:  # an earlier step may have replaced a part with another type: this step then does nothing
            if kind == 0:
                escaping = ("../../etc/passwd", "/etc/passwd", "..", "C:\\x", "a/../../b", "training_log.txt\x00x", "",
                            "/dev/zero", "\\\\server\\share")
                manifest["artifacts"].append({"path": rng.choice(escaping),
                                              "sha256": "0" * 64, "size": 1, "role": "log"})
            elif kind == 1:
                manifest["artifacts"].append({"path": "training_log.txt", "sha256": "0" * 64,
                                              "size": rng.choice((10**20, 10**4000, -(10**20))), "role": None})
            elif kind == 2:
                manifest["outcome"]["status"] = rng.choice(("running", "killed", "interrupted", "failed", "???", 1,
                                                            None))
                manifest["outcome"]["wrapper_pid"] = rng.choice((os.getpid(), 2**40, -1, 1))
            elif kind == 3:
                manifest["plan"]["max_steps"] = rng.choice((2**70, -1, 2**63, "40", 40.5, None))
            elif kind == 4:
                manifest["run_id"] = markup_line(rng)
            elif kind == 5:
                manifest["claims"] = {"total_steps": rng.choice((1e308, 2**64, -0.0)), "final_loss": rng.random()}
            elif kind == 6:
                manifest["artifacts"] = rng.choice(({}, "x", None, [None, 1, "a"], [[]]))
            elif kind == 7:
                manifest["environment"] = rng.choice(({"a": {"b": [1]}}, [], {"CUDA": markup_line(rng)}))
            elif kind == 8:
                manifest["schema_version"] = rng.choice((2, "1", None, 1.0, 2**70))
            elif kind == 9:
                manifest.pop(rng.choice(list(manifest)))
            elif kind == 10:
                manifest["command"] = ["python", "-c", markup_line(rng), "--token=hf_" + "a" * 34]
            elif kind == 11:
                manifest["outcome"]["started_at"] = rng.choice(("yesterday", "9999-99-99T99:99:99", "", 0))
                manifest["outcome"]["wall_seconds"] = rng.choice((-1.0, 1e308, 0.0))
            elif kind == 12:
                manifest["git"] = {"commit": "x", "dirty": "yes", "changed_files": ["../../x", markup_line(rng)],
                                   "diff_path": "../../../etc/shadow", "diff_sha256": "0" * 64}
            else:
                manifest = rng.choice(([manifest], "manifest", 1, None))
                break

        except (TypeError, AttributeError, KeyError, IndexError):
            continue
    return manifest


@mutation("manifest_hostile", 3)
def manifest_hostile(root: Path, rng: random.Random) -> str:
    """run_manifest.json rewritten (or created) with hostile values."""
    value = hostile_manifest(root, rng)
    text = json.dumps(value, allow_nan=True)
    if rng.random() < 0.2:
        text = text.replace("20.5", rng.choice(NUMBERS))
    try:
        _write(root / "run_manifest.json", text.encode())
    except OSError as exc:
        return f"manifest_hostile: skipped ({exc.strerror})"
    return f"manifest_hostile {text[:100]!r}"


@mutation("sha256sums_hostile", 2)
def sha256sums_hostile(root: Path, rng: random.Random) -> str:
    """SHA256SUMS lines that escape, point at devices/FIFOs, repeat, or do not parse."""
    lines = [rng.choice((
        f"{'0' * 64}  ../../etc/passwd", f"{'0' * 64}  /dev/zero", f"{'0' * 64} */etc/shadow",
        f"{'0' * 64}  training_log.txt", f"{'0' * 64}  does/not/exist.bin", "not a digest line",
        f"{'f' * 63}  short.txt", f"{'0' * 64}  {markup_line(rng)}", f"\\{'0' * 64}  a\\nb", f"{'0' * 64}  a" * 200,
        f"{'0' * 64}  training_output", f"{'0' * 64}  fifo.txt", f"{'A' * 64}  tiny_summary.md", "",
    )) for _ in range(rng.randint(1, 6))]
    path = root / "SHA256SUMS"
    try:
        old = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        _write(path, old + ("\n".join(lines) + "\n").encode())
    except OSError as exc:
        return f"sha256sums_hostile: skipped ({exc.strerror})"
    return f"sha256sums_hostile {lines[:2]!r}"


@mutation("summary_hostile", 2)
def summary_hostile(root: Path, rng: random.Random) -> str:
    """Summary tables with hostile claims: escaping figure paths, huge figures, 500 columns, markup cells."""
    rows = [rng.choice((
        "| Loss curve | ../../etc/passwd |", "| Figure | /dev/zero |", "| Log | fifo.txt |",
        f"| Total Steps | {rng.choice(NUMBERS)} |", f"| Runtime | {rng.choice(NUMBERS)} seconds |",
        f"| Throughput | {rng.choice(NUMBERS)} samples/sec |", f"| Final Loss | {rng.choice(NUMBERS)} |",
        f"| Eval Examples | {rng.choice(NUMBERS)} |", "|" + " x |" * 500,
        f"| {markup_line(rng)} | {markup_line(rng)} |",
        "| Loss Decreases | ✅ PASS | 1e400 → NaN |", f"| Step | Loss |\n|---|---|\n| {rng.choice(NUMBERS)} | nan |",
        "| Total Steps | 40 (1 epoch) | extra | cells |", "| | |", "|", f"Loss decreased {rng.choice(NUMBERS)} → 0.5",
        f"{rng.choice(NUMBERS)} steps, {rng.choice(NUMBERS)}s runtime",
    )) for _ in range(rng.randint(1, 5))]
    path = root / "tiny_summary.md"
    try:
        old = path.read_bytes() if path.is_file() and not path.is_symlink() else b"# summary\n"
        _write(path, old + ("\n| Metric | Value |\n|---|---|\n" + "\n".join(rows) + "\n").encode())
    except OSError as exc:
        return f"summary_hostile: skipped ({exc.strerror})"
    return f"summary_hostile {rows[:2]!r}"[:200]


@mutation("yaml_hostile", 2)
def yaml_hostile(root: Path, rng: random.Random) -> str:
    """Config YAML with alias bombs, python tags, deep flow nesting, huge numbers, non-mapping documents."""
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    text = rng.choice((
        laughs + "model:\n  name: *i\ntraining:\n  max_steps: *h\n",
        "model: !!python/object/apply:os.system ['true']\n",
        "training:\n  max_steps: " + "[" * 10_000 + "]" * 10_000 + "\n",
        f"training:\n  max_steps: {rng.choice(NUMBERS)}\n  batch_size: {rng.choice(NUMBERS)}\n  num_epochs: .nan\n",
        "- a\n- b\n", "just a string\n", "", "---\n---\n---\n", "training: {max_steps: 40, max_steps: -1}\n",
        "training:\n\tmax_steps: 40\n", f"model:\n  name: '{markup_line(rng)}'\n  n_embd: 1e400\n",
        "model:\n  n_embd: [1, 2]\n  n_layer: {a: 1}\n  vocab_size: true\ntraining: 7\n", "? [a, b]\n: c\n",
        "model: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
    ))
    try:
        _write(root / rng.choice(("tiny_config.yaml", "tiny_config.yaml", "other_config.yaml")), text.encode())
    except OSError as exc:
        return f"yaml_hostile: skipped ({exc.strerror})"
    return f"yaml_hostile {text[:60]!r}"


@mutation("log_hostile", 3)
def log_hostile(root: Path, rng: random.Random) -> str:
    """Training-log lines that lie or overflow: tqdm bars with huge counts, NaN dicts, 300 kB lines, OOM, markup."""
    big = rng.choice(NUMBERS)
    lines = [rng.choice((
        f"\r 50%|█████     | {big}/40 [00:10<00:10,  2.00it/s]", f"100%|██████████| 40/{big} [00:20<00:00, {big}it/s]",
        f"{{'loss': {big}, 'grad_norm': nan, 'learning_rate': inf, 'epoch': {big}}}",
        f"{{'train_runtime': {big}, 'train_samples_per_second': {big}, 'train_loss': NaN, 'epoch': 1.0}}",
        "x" * 300_000, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        f"RuntimeError: [rank0]: {markup_line(rng)} [/tmp/x]", "Killed", "\x1b[2K\x1b[1A" * 100, "\r" * 10_000,
        f"step {big}/40 loss {big}", "{'loss': " + "[" * 10_000, "Training completed!" + "\x00" * 100,
        f"[rank0]: {markup_line(rng)}", "Traceback (most recent call last):",
    )) for _ in range(rng.randint(1, 4))]
    path = root / "training_log.txt"
    try:
        old = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        _write(path, old + ("\n".join(lines) + rng.choice(("\n", ""))).encode("utf-8", "surrogateescape"))
    except OSError as exc:
        return f"log_hostile: skipped ({exc.strerror})"
    return f"log_hostile {[line[:60] for line in lines]!r}"


@mutation("fifo", 2)
def fifo(root: Path, rng: random.Random) -> str:
    """A FIFO in place of an evidence file (an open for reading would block forever)."""
    rel = rng.choice((*FS_TARGETS, "fifo.txt", "training_output/stray.jsonl"))
    make_fifo(root / rel)
    return f"fifo {rel}"


@mutation("socket", 1)
def unix_socket(root: Path, rng: random.Random) -> str:
    """A unix socket in place of an evidence file."""
    rel = rng.choice((*FS_TARGETS, "sock.txt"))
    make_socket(root / rel)
    return f"socket {rel}"


@mutation("device", 1)
def device(root: Path, rng: random.Random) -> str:
    """A character device (or a link to /dev/zero when mknod is refused) in place of an evidence file."""
    rel = rng.choice(FS_TARGETS)
    return f"device {rel}: {make_char_device(root / rel)}"


@mutation("symlink_loop", 2)
def symlink_loop(root: Path, rng: random.Random) -> str:
    """A link to itself, a two-link cycle, or a folder link to its own parent."""
    rel = rng.choice(FS_TARGETS)
    path = root / rel
    kind = rng.randrange(3)
    _clear(path)
    if kind == 0:
        os.symlink(path.name, path)
    elif kind == 1:
        other = path.with_name(path.name + ".loop")
        _clear(other)
        os.symlink(other.name, path)
        os.symlink(path.name, other)
    else:
        path.mkdir()
        os.symlink("..", path / "up")
        os.symlink(".", path / "self")
    return f"symlink_loop {rel} kind {kind}"


@mutation("symlink_escape", 2)
def symlink_escape(root: Path, rng: random.Random) -> str:
    """A link out of the folder: to /etc/passwd, /, the parent, an absolute path outside, or a dangling one."""
    rel = rng.choice((*FS_TARGETS, *DIR_TARGETS))
    outside = root.parent / "outside.txt"
    if not outside.exists():
        outside.write_text("{'loss': 0.1}\nTraining completed!\n", encoding="utf-8")
    target = rng.choice(("/etc/passwd", "/", "..", "../..", str(outside), "../outside.txt", "/nonexistent/x",
                         "/proc/self/environ", "/etc"))
    _clear(root / rel)
    os.symlink(target, root / rel)
    return f"symlink_escape {rel} -> {target}"


@mutation("symlink_device", 1)
def symlink_device(root: Path, rng: random.Random) -> str:
    """A link to /dev/zero, /dev/urandom, /dev/null or to a FIFO inside the folder."""
    rel = rng.choice(FS_TARGETS)
    target = rng.choice(("/dev/zero", "/dev/urandom", "/dev/null", "fifo-target"))
    if target == "fifo-target":
        make_fifo(root / "fifo-target")
        target = os.path.relpath(root / "fifo-target", (root / rel).parent)
    _clear(root / rel)
    os.symlink(target, root / rel)
    return f"symlink_device {rel} -> {target}"


@mutation("dir_for_file", 2)
def dir_for_file(root: Path, rng: random.Random) -> str:
    """A folder where a file should be (sometimes holding a file of the same name)."""
    rel = rng.choice(FS_TARGETS)
    path = root / rel
    _clear(path)
    path.mkdir(parents=True)
    if rng.random() < 0.5:
        (path / path.name).write_text("{}\n", encoding="utf-8")
    return f"dir_for_file {rel}"


@mutation("file_for_dir", 2)
def file_for_dir(root: Path, rng: random.Random) -> str:
    """A file where a folder should be (training_output, final_model, checkpoints, ...)."""
    rel = rng.choice(DIR_TARGETS)
    _write(root / rel, rng.choice((b"", b"{}", b"not a folder\n", rng.randbytes(100))))
    return f"file_for_dir {rel}"


@mutation("unreadable", 2)
def unreadable(root: Path, rng: random.Random) -> str:
    """chmod 000 on a file or folder (bites only for a reader without root's DAC override)."""
    rel = rng.choice((*FS_TARGETS, *DIR_TARGETS))
    path = root / rel
    if not path.exists() or path.is_symlink():
        _write(path, b"secret\n")
    os.chmod(path, 0)
    return f"unreadable {rel}"


@mutation("hostile_names", 2)
def hostile_names(root: Path, rng: random.Random) -> str:
    """Files named with markup, newlines, non-UTF-8 bytes, 255 chars, leading dashes, `::`, `%` ..."""
    names = [rng.choice((b"[bold]x_summary.md", b"a\nb_config.yaml", b"\xff\xfe.txt", b"x" * 255, b"-rf.jsonl",
                         b"::error file=x::y.log", b"%0A%25.txt", b"[rank0]:.log", b" .json", b"\xe2\x80\xae.txt",
                         b"a\rb.jsonl", b"training_log.txt\xff", b"]]>.xml", b"metrics.jsonl\x1b[31m"))
             for _ in range(rng.randint(1, 3))]
    folder = rng.choice((b"", b"training_output/"))
    made = []
    for name in names:
        path = os.fsencode(root) + b"/" + folder + name
        try:
            with open(path, "wb") as handle:
                handle.write(rng.choice((b"{'loss': 0.5}\n", b"| Total Steps | 1 |\n", b"x\n", b"")))
            made.append(name)
        except OSError:
            continue
    return f"hostile_names {made!r}"[:200]


@mutation("many_files", 1)
def many_files(root: Path, rng: random.Random) -> str:
    """Up to 200 small files in 20 folders (discovery cost, report size)."""
    count = rng.randint(50, 200)
    base = root / rng.choice(("", "training_output/", "training_output/checkpoints/"))
    for i in range(count):
        folder = base / f"extra-{i % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"checkpoint-{i}.json" if i % 3 else folder / f"log{i}.txt").write_bytes(b"{}\n")
    return f"many_files {count} under {base.relative_to(root)}"


@mutation("deep_tree", 1, heavy=True)
def deep_tree(root: Path, rng: random.Random) -> str:
    """1,100-1,500 nested folders (past os.makedirs' recursion), a file at the bottom."""
    depth = rng.randint(1100, 1500)
    where = root / rng.choice(("", "training_output", "training_output/checkpoints"))
    if not where.is_dir() or where.is_symlink():
        where = root
    make_deep_tree(where, depth, (rng.choice(("metrics.jsonl", "training_log.txt", "x.safetensors")), b"{}\n"))
    return f"deep_tree {depth} under {where.relative_to(root)}"


@mutation("sparse_huge", 1, heavy=True)
def sparse_huge(root: Path, rng: random.Random) -> str:
    """A 2 GiB sparse file with no newline in place of an evidence file (sometimes with a plausible head)."""
    rel = rng.choice((*FS_TARGETS[:3], "predictions.jsonl", "training_output/events.out.tfevents.1.host",
                      "training_output/checkpoints/checkpoint-40/model.safetensors"))
    head = b""
    if rel.endswith(".safetensors") and rng.random() < 0.5:
        payload = SPARSE_BYTES - 8 - 64
        raw = json.dumps({"t": {"dtype": "U8", "shape": [payload], "data_offsets": [0, payload]}}).encode()
        raw = raw.ljust(64)
        head = struct.pack("<Q", len(raw)) + raw
    elif rng.random() < 0.5:
        head = b"{'loss': 0.5, " if rel.endswith(".txt") else b'{"step": 1, "loss": 0.5, "x": "'
    make_sparse(root / rel, SPARSE_BYTES, head)
    return f"sparse_huge {rel}"


@mutation("resign", 2)
def resign(root: Path, rng: random.Random) -> str:
    """SHA256SUMS (and the manifest's artifacts) recomputed over the mutated files, so digests match and the
    hostile content reaches the deeper parsers. Always applied last."""
    try:
        _write(root / "SHA256SUMS", _sha256sums(root).encode())  # _write: never into a FIFO left there
        manifest_path = root / "run_manifest.json"
        if manifest_path.is_file() and not manifest_path.is_symlink() and rng.random() < 0.7:
            manifest = json.loads(manifest_path.read_bytes())
            if isinstance(manifest, dict):
                manifest["artifacts"] = _artifacts(root)
                _write(manifest_path, json.dumps(manifest).encode())
    except (OSError, ValueError, RecursionError) as exc:
        return f"resign: partial ({type(exc).__name__})"
    return "resign"


# ---------------------------------------------------------------- specs: what a hostile folder is made of

FOLDER_NAMES = ("run_v1", "run_v1", "run_v1", "run_v1", "run [bold]x", "run[/tmp/x]", "run%0A::error::x", "run,a=b",
                "-rf", "run\u202ex", "run 'q' \"dq\"", "run\x1b[31m")


@dataclass(frozen=True)
class HostileSpec:
    """A hostile folder, exactly: a base folder, its name, and the (mutation, seed) steps applied in order."""

    base: str
    name: str
    mutations: tuple[tuple[str, int], ...]

    def describe(self) -> str:
        """One line naming the base and the mutations."""
        steps = ", ".join(f"{m}#{s}" for m, s in self.mutations)
        return f"base={self.base} name={self.name!r} [{steps}]"


def random_spec(rng: random.Random, heavy_rate: float = 0.01, max_mutations: int = 4) -> HostileSpec:
    """Draw a spec: 1..max_mutations weighted mutations; with probability `heavy_rate` one heavy one too."""
    light = [n for n, m in MUTATIONS.items() if not m.heavy and n != "resign"]
    heavy = [n for n, m in MUTATIONS.items() if m.heavy]
    count = rng.randint(1, max_mutations)
    names = rng.choices(light, weights=[MUTATIONS[n].weight for n in light], k=count)
    if rng.random() < heavy_rate:
        names.insert(rng.randrange(len(names) + 1), rng.choice(heavy))
    if rng.random() < 0.3:
        names.append("resign")
    name = FOLDER_NAMES[rng.randrange(len(FOLDER_NAMES))] if rng.random() < 0.1 else "run_v1"
    return HostileSpec(base=rng.choice(BASES), name=name,
                       mutations=tuple((n, rng.getrandbits(32)) for n in names))


def hostile_specs(heavy: bool = False, max_mutations: int = 4) -> SearchStrategy[HostileSpec]:
    """The hypothesis strategy over hostile folders (specs; `materialize` builds one in a tmp dir)."""
    from hypothesis import strategies as st

    light = sorted(n for n, m in MUTATIONS.items() if not m.heavy and n != "resign")
    allowed = sorted(MUTATIONS) if heavy else [*light, "resign"]
    steps = st.lists(st.tuples(st.sampled_from(allowed), st.integers(0, 2**32 - 1)), min_size=1,
                     max_size=max_mutations)
    return st.builds(HostileSpec, base=st.sampled_from(BASES), name=st.sampled_from(FOLDER_NAMES),
                     mutations=steps.map(tuple))


@dataclass(frozen=True)
class HostileFolder:
    """A materialized spec: where it is and what each mutation did."""

    path: Path
    spec: HostileSpec
    notes: tuple[str, ...]


def materialize(spec: HostileSpec, parent: Path, cache: BaseCache | None = None) -> HostileFolder:
    """Build `spec` as `parent/<spec.name>` (the base from `cache` when given, else written afresh)."""
    dest = parent / spec.name
    if cache is not None:
        cache.copy_to(spec.base, dest)
    else:
        write_base(dest, spec.base)
    notes = []
    for name, seed in sorted(spec.mutations, key=lambda step: step[0] == "resign"):
        try:
            notes.append(MUTATIONS[name].apply(dest, random.Random(seed)))
        except OSError as exc:  # an earlier step made this one impossible (a file where its folder was)
            notes.append(f"{name}: skipped ({type(exc).__name__}: {exc.strerror})")
    return HostileFolder(dest, spec, tuple(notes))


# ---------------------------------------------------------------- checks: tree unchanged, in-process audit, CLI

Entry = tuple[int, int, int, str]


def tree_snapshot(root: Path) -> dict[str, Entry]:
    """(mode, size, mtime_ns, link target) of every entry under `root`, links not followed, folders included
    (a file written and removed still changes its folder's mtime). Walks with dir fds, so deep trees fit."""
    out: dict[str, Entry] = {}
    st = os.lstat(root)
    out["."] = (st.st_mode, 0, st.st_mtime_ns, "")
    try:
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return out
    stack: list[tuple[int, str]] = [(top, "")]
    while stack:
        fd, rel = stack.pop()
        try:
            names = os.listdir(fd)
        except OSError:
            names = []
            out[rel + "<unlistable>"] = (0, 0, 0, "")
        for name in names:
            path = f"{rel}{name}"
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            target = os.readlink(name, dir_fd=fd) if stat.S_ISLNK(st.st_mode) else ""
            size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
            out[path] = (st.st_mode, size, st.st_mtime_ns, target)
            if stat.S_ISDIR(st.st_mode):
                try:
                    stack.append((os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd), path + "/"))
                except OSError:
                    out[path + "/<unopenable>"] = (0, 0, 0, "")
        os.close(fd)
    return out


def snapshot_changes(before: dict[str, Entry], after: dict[str, Entry], limit: int = 5) -> list[str]:
    """What differs between two snapshots: added, removed, changed entries (first `limit` of each)."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    return ([f"added {p!r}" for p in added[:limit]] + [f"removed {p!r}" for p in removed[:limit]]
            + [f"changed {p!r}: {before[p]} -> {after[p]}" for p in changed[:limit]])


def internal_errors(report: VerifyReport) -> list[str]:
    """Gate results that are a gate's own bug (their message holds auditor.verify.INTERNAL_ERROR)."""
    from auditor.verify import INTERNAL_ERROR

    return [f"{g.id}: {g.message}" for run in report.runs for g in run.gates if INTERNAL_ERROR in g.message]


def audit_and_render(path: Path) -> tuple[str, VerifyReport | None]:
    """Verify `path` in process and render every format; returns (outcome, report), outcome one of
    pass/warn/fail or `exit2` (AuditInputError). Any other exception escapes: that is a defect."""
    from auditor.errors import AuditInputError
    from auditor.render import RENDERERS, render
    from auditor.verify import VerifyOptions, execute

    try:
        report = execute(VerifyOptions(run_dirs=[path]))
    except AuditInputError:
        return "exit2", None
    for fmt in RENDERERS:
        render(fmt, report)
    return report.runs[0].verdict, report


_libc = ctypes.CDLL(None, use_errno=True)
_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 24, 1, 2


def _drop_dac_bounding() -> None:
    """preexec_fn: take DAC override/read-search out of the bounding set, so the exec'd root process cannot read
    chmod 000 files (its own /root-owned interpreter stays readable: it is the owner)."""
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _become_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def drop_dac_capabilities() -> bool:
    """Remove DAC override/read-search from this process's own capability sets (fuzz workers running as root),
    so chmod 000 bites in process. False when not root or not possible."""
    if os.geteuid() != 0:
        return False

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header = Header(0x20080522, 0)
    data = (Data * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        return False
    mask = ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH)) & 0xFFFFFFFF
    data[0].effective &= mask
    data[0].permitted &= mask
    data[0].inheritable &= mask
    return bool(_libc.capset(ctypes.byref(header), data) == 0)


@cache
def unprivileged_mode() -> str | None:
    """How this machine runs the CLI so that chmod 000 bites: `nobody` (uid 65534 via preexec setuid, when that
    uid can run this interpreter), `no-dac` (root without DAC override: the interpreter lives under a 0700 /root
    here), or None (not root: file modes already bite, nothing to drop)."""
    if os.geteuid() != 0:
        return None
    for mode, preexec in (("nobody", _become_nobody), ("no-dac", _drop_dac_bounding)):
        try:
            probe = subprocess.run([sys.executable, "-c", "import auditor"], preexec_fn=preexec, cwd="/",
                                   capture_output=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return mode
    return None


def can_deny_reads() -> bool:
    """Whether a chmod 000 file can be made unreadable to the audited CLI on this machine."""
    return os.geteuid() != 0 or unprivileged_mode() is not None


def share_with_others(folder: Path) -> None:
    """Let uid 65534 see what the owner sees: o+r(x) wherever the owner has r(x) in the folder, o+x on the
    folder's ancestors inside the tmp dir. A chmod 000 entry stays 000."""
    tmp = Path(tempfile.gettempdir()).resolve()
    for parent in [folder, *folder.parents]:
        if parent == tmp or tmp not in parent.parents:
            break
        with contextlib.suppress(OSError):
            mode = os.stat(parent).st_mode
            os.chmod(parent, mode | 0o005)
    for rel in tree_snapshot(folder):
        if rel.endswith(">"):
            continue
        path = folder / rel
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                continue
            extra = (0o004 if st.st_mode & 0o400 else 0) | (0o001 if st.st_mode & 0o100 else 0)
            os.chmod(path, st.st_mode | extra)


@dataclass(frozen=True)
class CliRun:
    """One real-CLI run: exit code (None on timeout), output, wall seconds."""

    code: int | None
    stdout: str
    stderr: str
    seconds: float
    mode: str

    def problems(self) -> list[str]:
        """Contract breaches: exit not in {0,1,2}, a timeout, a traceback, an internal error, exit 2 without
        exactly one `Error:` line on stderr."""
        out = []
        if self.code is None:
            out.append(f"hang: no exit within {self.seconds:.0f}s")
        elif self.code not in (0, 1, 2):
            out.append(f"exit code {self.code}")
        # a traceback the CLI let out goes to stderr at a line start; in stdout it is a log line a gate quotes
        if re.search(r"^Traceback \(most recent call last\)", self.stderr, re.M):
            out.append("a traceback on stderr")
        if "internal error" in self.stderr.lower() or "internal error in this gate" in self.stdout:
            out.append("'internal error' in the output")
        if self.code == 2:
            lines = [line for line in self.stderr.splitlines() if line.strip()]
            if len(lines) != 1 or not lines[0].startswith("Error:"):
                out.append(f"exit 2 without exactly one 'Error:' line on stderr: {lines[:3]!r}")
        return out

    def tail(self, chars: int = 1500) -> str:
        """The end of stdout and stderr, for an assertion message."""
        return f"exit {self.code} ({self.mode}, {self.seconds:.1f}s)\n--- stdout\n{self.stdout[-chars:]}\n" \
               f"--- stderr\n{self.stderr[-chars:]}"


def run_cli(args: Sequence[str | Path], timeout: float = 60, unprivileged: bool = False,
            env: dict[str, str] | None = None) -> CliRun:
    """`python -m auditor ARGS` from the repo root with a timeout. `unprivileged`: as uid 65534 (or root without
    DAC override, see unprivileged_mode) so chmod 000 bites; the folders named in ARGS are shared first."""
    preexec: Callable[[], None] | None = None
    mode = "as-is"
    if unprivileged and os.geteuid() == 0:
        mode = unprivileged_mode() or "as-is"
        preexec = {"nobody": _become_nobody, "no-dac": _drop_dac_bounding}.get(mode)
        if mode == "nobody":
            for arg in args:
                if isinstance(arg, Path) and arg.is_dir():
                    share_with_others(arg)
    inherited = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    full_env = {**inherited, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **(env or {})}
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "auditor", *map(str, args)], capture_output=True, cwd=ROOT,
                              timeout=timeout, env=full_env, preexec_fn=preexec, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        return CliRun(None, _text(exc.stdout), _text(exc.stderr), time.perf_counter() - start, mode)
    return CliRun(proc.returncode, _text(proc.stdout), _text(proc.stderr), time.perf_counter() - start, mode)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")
