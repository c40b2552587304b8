"""Orbax checkpoints written by the real orbax-checkpoint (one subprocess, CPU JAX) and read back by the orbax
source without jax, orbax or tensorstore: tree paths, dtypes, shapes and parameter count; deleted, truncated and
corrupt files named. tensorstore is the independent witness for where OCDBT keeps each value, and for the zstd
decoder's output. The Flax msgpack file is written with msgpack exactly as flax.serialization does (flax itself is
not installed here)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import verify_json
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.evidence.checkpoint import Checkpoint
from auditor.evidence.ocdbt import NODE_MAGIC, crc32c, read_database
from auditor.evidence.opener import Folder
from auditor.evidence.sources.interface import Candidate
from auditor.evidence.sources.orbax import OrbaxSource
from auditor.evidence.sources.registry import CHECKPOINTS
from auditor.evidence.zstd import decompress, frame_extent

if importlib.util.find_spec("orbax") is None or importlib.util.find_spec("tensorstore") is None:
    pytest.skip("needs orbax-checkpoint and tensorstore (the writer and the witness)", allow_module_level=True)
import tensorstore as ts  # after the skip: the witness, never used by the reader

WRITER = r'''
import json, sys
from pathlib import Path

import jax, jax.numpy as jnp, msgpack, numpy as np
import orbax.checkpoint as ocp
import tensorstore as ts

out = Path(sys.argv[1])
rng = np.random.default_rng(0)
tree = {"params": {"dense1": {"kernel": rng.standard_normal((32, 64)).astype(np.float32), "bias": jnp.zeros(64)},
                   "dense2": {"kernel": jnp.asarray(rng.standard_normal((64, 10)), jnp.bfloat16),
                              "bias": np.zeros(10, np.float32)}},
        "step": 20}
checkpointer = ocp.StandardCheckpointer()
checkpointer.save(out / "std", tree)
checkpointer.wait_until_finished()
with ocp.CheckpointManager(out / "run" / "ckpts") as manager:
    for step in (10, 20):
        manager.save(step, args=ocp.args.StandardSave(tree))
    manager.wait_until_finished()
ocp.Checkpointer(ocp.PyTreeCheckpointHandler(use_ocdbt=False)).save(out / "zarr", tree)

# the witness: what the tree holds, and where tensorstore says std/'s OCDBT keeps each value
expected = {".".join(k.key for k in path): [np.asarray(leaf).dtype.name, list(np.shape(leaf))]
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
base = ts.KvStore.open(f"file://{out / 'std'}/").result()
root = ts.ocdbt.dump(base).result()["versions"][-1]["root"]["location"]
where = {}
for entry in ts.ocdbt.dump(base, root).result()["entries"]:
    if "indirect_value" in entry:  # value:<base path>:<relative path>:<offset>:<length>
        _, base_path, rel, offset, length = entry["indirect_value"].split(":")
        where[entry["key"].decode()] = [base_path + rel, int(offset), int(length)]

# flax.serialization.msgpack_serialize: arrays as ext 1 of packb((shape, dtype name, bytes)), numpy scalars ext 3,
# arrays over MAX_CHUNK_SIZE as a chunked dict (here one made so, as flax's own test does)
def packed(arr):
    return msgpack.packb((arr.shape, arr.dtype.name, arr.tobytes("C")), use_bin_type=True)
def ext(x):
    if isinstance(x, np.ndarray):
        return msgpack.ExtType(1, packed(x))
    if isinstance(x, np.generic):
        return msgpack.ExtType(3, packed(np.asarray(x)))
    return x
flat = np.ones(100)
state = {"params": {name: {k: np.asarray(v) for k, v in layer.items()} for name, layer in tree["params"].items()},
         "step": np.int64(20),
         "big": {"__msgpack_chunked_array__": True, "shape": {"0": 10, "1": 10},
                 "chunks": {"0": flat[:91], "1": flat[91:]}}}
(out / "flax").mkdir()
(out / "flax" / "checkpoint_30").write_bytes(msgpack.packb(state, default=ext, strict_types=True))
json.dump({"expected": expected, "root": root, "where": where}, open(out / "truth.json", "w"))
'''
MLP = {"params.dense1.bias": ("float32", (64,)), "params.dense1.kernel": ("float32", (32, 64)),
       "params.dense2.bias": ("float32", (10,)), "params.dense2.kernel": ("bfloat16", (64, 10)),
       "step": ("int64", ())}
PARAMETERS = 64 + 32 * 64 + 10 + 64 * 10 + 1  # 2763: every stored element, the `step` scalar included
SOURCE = OrbaxSource()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """std/, run/ckpts/{10,20}/, zarr/, flax/checkpoint_30 and truth.json, written once (read-only)."""
    out = tmp_path_factory.mktemp("orbax")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", WRITER, str(out)], capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def truth(saved: Path) -> dict[str, Any]:
    return json.loads((saved / "truth.json").read_text())


def folder_of(root: Path) -> Folder:
    return Folder(root, sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()))


def inspect(root: Path, location: str) -> Checkpoint:
    folder = folder_of(root)
    [candidate] = [c for c in SOURCE.find(folder) if c.location == location]
    return SOURCE.inspect(folder, candidate)


@pytest.fixture
def copy(saved: Path, tmp_path: Path) -> Path:
    """A private copy to break."""
    return Path(shutil.copytree(saved, tmp_path / "run", ignore=shutil.ignore_patterns("truth.json")))


def test_registered() -> None:
    assert CHECKPOINTS["orbax"].info.kind == "checkpoint" and "_CHECKPOINT_METADATA" in SOURCE.info.looks_for


def test_finds_each_save_with_its_step(saved: Path) -> None:
    found = SOURCE.find(folder_of(saved))
    assert found == [Candidate("run/ckpts/10", "orbax", 10), Candidate("run/ckpts/20", "orbax", 20),
                     Candidate("std", "orbax", None), Candidate("zarr", "orbax", None),
                     Candidate("flax/checkpoint_30", "orbax", 30)]


@pytest.mark.parametrize("location", ["std", "run/ckpts/10", "run/ckpts/20", "zarr"])
def test_reads_the_saved_tree(saved: Path, truth: dict[str, Any], location: str) -> None:
    ckpt = inspect(saved, location)
    assert ckpt.problems == []
    [item] = ckpt.files
    assert item.tensors == MLP == {k: (d, tuple(s)) for k, (d, s) in truth["expected"].items()}
    assert ckpt.parameters == PARAMETERS
    assert item.path == (location + "/default" if location.startswith("run") else location)
    assert ckpt.step == {"run/ckpts/10": 10, "run/ckpts/20": 20}.get(location)
    assert "2,763 stored elements" in ckpt.summary and "5 arrays, 5 chunks whole" in ckpt.summary


def test_ocdbt_values_are_where_tensorstore_says(saved: Path, truth: dict[str, Any]) -> None:
    db = read_database(folder_of(saved), "std")
    assert db.problems == [] and db.complete and db.nodes == 1
    assert sorted(db.values) == sorted([f"{n}/.zarray" for n in MLP] + [f"{n}/{'0.0' if len(s) == 2 else '0'}"
                                                                        for n, (_, s) in MLP.items()])
    outside = {k: [v.file.removeprefix("std/"), v.offset, v.length] for k, v in db.values.items() if v.inline is None}
    assert outside == truth["where"] and outside  # dense1.kernel at least is too large to sit in its node


def test_deleted_data_file_names_the_arrays_it_held(copy: Path, truth: dict[str, Any]) -> None:
    held: dict[str, list[str]] = {}
    for key, (path, _, _) in truth["where"].items():
        held.setdefault(path, []).append(key.split("/")[0])
    path, names = next(iter(sorted(held.items())))
    (copy / "std" / path).unlink()
    ckpt = inspect(copy, "std")
    assert ckpt.problems == [f"std/{path}: missing; it held {len(names)} chunk(s) of {', '.join(sorted(names))}"]
    assert ckpt.files[0].tensors == MLP  # the zarr metadata sits in the B+tree node, which is still there


def test_deleted_root_node_loses_every_array(copy: Path, truth: dict[str, Any]) -> None:
    node = truth["root"].split(":")[2]  # btreenode::<relative path>:<offset>:<length>
    (copy / "std" / node).unlink()
    ckpt = inspect(copy, "std")
    assert ckpt.problems == [
        f"std/{node}: missing (B+tree node at 0+{truth['root'].split(':')[-1]}, referenced by std/manifest.ocdbt)",
        "std/_METADATA: names 5 array(s) that std/manifest.ocdbt does not hold: params.dense1.bias, "
        "params.dense1.kernel, params.dense2.bias, params.dense2.kernel, step"]
    assert ckpt.parameters == 0


def test_truncated_data_file_is_seen(copy: Path, truth: dict[str, Any]) -> None:
    key, (path, offset, length) = max(truth["where"].items(), key=lambda kv: kv[1][1] + kv[1][2])
    data = copy / "std" / path
    # cut one byte into the value; what follows it (the writing process's own B+tree node) is not what a restore
    # reads, the merged tree of std/manifest.ocdbt is
    assert data.stat().st_size >= offset + length
    os.truncate(data, offset + length - 1)
    ckpt = inspect(copy, "std")
    assert ckpt.problems == [f"std/{path}: 1 of the {sum(p == path for p, _, _ in truth['where'].values())} "
                             f"chunk(s) it holds damaged: {key} needs bytes {offset}..{offset + length} but the file "
                             f"ends at {offset + length - 1} (truncated)"]


def test_damaged_chunk_inside_its_range_is_seen(copy: Path, truth: dict[str, Any]) -> None:
    key, (path, offset, _) = next(iter(sorted(truth["where"].items())))
    data = bytearray((copy / "std" / path).read_bytes())
    data[offset:offset + 4] = b"\0\0\0\0"  # the zstd magic of the chunk
    (copy / "std" / path).write_bytes(bytes(data))
    [problem] = inspect(copy, "std").problems
    assert problem.startswith(f"std/{path}: 1 of the") and f"{key} is not a whole zstd frame (not a Zstandard " \
        "frame (bad magic))" in problem


def test_corrupt_tree_metadata(copy: Path) -> None:
    (copy / "run/ckpts/20/default/_METADATA").write_text('{"tree_metadata": {"(\'params\',', encoding="utf-8")
    ckpt = inspect(copy, "run/ckpts/20")
    assert ckpt.problems == ["run/ckpts/20/default/_METADATA: not valid JSON (corrupt or truncated)"]
    assert ckpt.files[0].tensors == MLP  # the arrays are still read from the store
    assert inspect(copy, "run/ckpts/10").problems == []


def test_corrupt_checkpoint_metadata_and_manifest(copy: Path) -> None:
    (copy / "std/_CHECKPOINT_METADATA").write_bytes(b"\xff{")
    manifest = copy / "run/ckpts/10/default/manifest.ocdbt"
    data = bytearray(manifest.read_bytes())
    data[30] ^= 0x40
    manifest.write_bytes(bytes(data))
    assert inspect(copy, "std").problems == ["std/_CHECKPOINT_METADATA: not valid JSON (corrupt or truncated)"]
    assert inspect(copy, "run/ckpts/10").problems == [
        "run/ckpts/10/default/manifest.ocdbt: manifest fails its CRC-32C (corrupt)",
        "run/ckpts/10/default/_METADATA: names 5 array(s) that run/ckpts/10/default/manifest.ocdbt does not hold: "
        "params.dense1.bias, params.dense1.kernel, params.dense2.bias, params.dense2.kernel, step"]


def test_zarr_layout_chunk_files(copy: Path) -> None:
    chunk = copy / "zarr/params.dense1.kernel/0.0"
    size = chunk.stat().st_size
    os.truncate(chunk, size - 3)
    (copy / "zarr/params.dense2.bias/0").unlink()
    problems = inspect(copy, "zarr").problems
    assert problems[0] == "zarr/: array 'params.dense2.bias' lacks 1 of its chunks, first params.dense2.bias/0"
    assert problems[1].startswith("zarr/params.dense1.kernel/0.0: 1 of the 1 chunk(s) it holds damaged: "
                                  "params.dense1.kernel/0.0 is not a whole zstd frame (")
    assert f"the end ({size - 3} bytes): truncated" in problems[1] and len(problems) == 2


def test_unfinished_save_and_missing_item(copy: Path) -> None:
    (copy / "run/ckpts/20").rename(copy / "run/ckpts/30.orbax-checkpoint-tmp")
    shutil.rmtree(copy / "run/ckpts/10/default")
    ckpts = {c.location: c for c in SOURCE.find(folder_of(copy))}
    assert ckpts["run/ckpts/30.orbax-checkpoint-tmp"].step == 30
    assert inspect(copy, "run/ckpts/30.orbax-checkpoint-tmp").problems == [
        "run/ckpts/30.orbax-checkpoint-tmp: an unfinished save (Orbax renames the .orbax-checkpoint-tmp folder "
        "once the save commits)"]
    assert inspect(copy, "run/ckpts/10").problems == [
        "run/ckpts/10/default/: missing (an item the checkpoint metadata names)"]


def test_flax_msgpack(copy: Path) -> None:
    ckpt = inspect(copy, "flax/checkpoint_30")
    assert ckpt.problems == [] and ckpt.format == "flax_msgpack" and ckpt.step == 30
    assert ckpt.files[0].tensors == {**MLP, "big": ("float64", (10, 10))}
    assert ckpt.parameters == PARAMETERS + 100
    path = copy / "flax/checkpoint_30"
    os.truncate(path, path.stat().st_size - 7)
    [problem] = inspect(copy, "flax/checkpoint_30").problems
    assert problem.startswith("flax/checkpoint_30: ") and problem.endswith("(truncated or not msgpack)")


def test_other_folders_are_not_claimed(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a/_METADATA").write_text('{"schema": 1}', encoding="utf-8")
    (tmp_path / "b/x").mkdir(parents=True)
    (tmp_path / "b/x/.zarray").write_text('{"zarr_format": 2}', encoding="utf-8")
    (tmp_path / "checkpoint_5").write_bytes(b"\x81\xa1a\x01")  # a msgpack map, but no arrays
    (tmp_path / "c.msgpack").write_bytes(b"not msgpack")
    assert SOURCE.find(folder_of(tmp_path)) == []


def test_zstd_matches_tensorstore() -> None:
    """Frames tensorstore's zstd makes (levels -5..22, text, floats, noise) decompress to their bytes."""
    import numpy as np

    rng = np.random.default_rng(3)
    words = [b"params.layer", b"/.zarray", b'{"chunks":[', b"kernel", b"\x00\x00\x80?", b"bias"]
    samples = [rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
               b"".join(words[i] for i in rng.integers(0, len(words), 30000)),
               rng.standard_normal(40000).astype(np.float32).round(1).tobytes(),
               (rng.integers(0, 4, 300000, dtype=np.uint8) * 3).tobytes(), b"x"]
    for data, level in zip(samples, (1, 19, 3, -5, 22), strict=True):
        store = ts.open({"driver": "zarr", "kvstore": "memory://", "metadata": {
            "shape": [len(data)], "chunks": [len(data)], "dtype": "|u1",
            "compressor": {"id": "zstd", "level": level}}}, create=True).result()
        store[...] = np.frombuffer(data, np.uint8)
        frame = store.kvstore.read("0").result().value
        assert decompress(frame, len(data)) == data
        extent = frame_extent(lambda offset, n, f=frame: f[offset:offset + n], len(frame))
        assert extent.end == len(frame) and extent.content_size == len(data)


def test_deep_ocdbt_tree_matches_tensorstore(tmp_path: Path) -> None:
    """Small nodes force a B+tree several levels deep, over several versions: every key and value agrees."""
    import numpy as np

    kv = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{tmp_path}/",
                          "config": {"max_decoded_node_bytes": 600, "max_inline_value_bytes": 30}}).result()
    rng = np.random.default_rng(0)
    for batch in range(3):
        with ts.Transaction() as txn:
            for i in range(120):
                kv.with_transaction(txn)[f"a{batch}.{i:04d}/{'x' * (i % 7)}"] = rng.bytes(int(rng.integers(0, 80)))
    db = read_database(folder_of(tmp_path), "")
    assert db.problems == [] and db.nodes > 20
    assert sorted(db.values) == sorted(k.decode() for k in kv.list().result())
    for key, ref in db.values.items():
        data = ref.inline if ref.inline is not None else (tmp_path / ref.file).read_bytes()[
            ref.offset:ref.offset + ref.length]
        assert data == kv.read(key).result().value


def _reframe(raw: bytes, body: bytes) -> bytes:
    """An OCDBT manifest or node with a new uncompressed body and a correct CRC-32C (to fuzz past the checksum)."""
    framed = raw[:4] + (len(body) + 18).to_bytes(8, "little") + b"\x00\x00" + body
    return framed + crc32c(framed).to_bytes(4, "little")


MUTABLE = ["std/_CHECKPOINT_METADATA", "std/_METADATA", "std/manifest.ocdbt", "std/_sharding",
           "std/array_metadatas/process_0", "zarr/_METADATA", "zarr/params.dense2.kernel/.zarray",
           "zarr/params.dense1.kernel/0.0", "flax/checkpoint_30", "run/ckpts/10/_CHECKPOINT_METADATA"]


@settings(max_examples=250, deadline=None)
@given(target=st.integers(0, len(MUTABLE)), edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)),
                                                                 min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 1 << 12)), where=st.sampled_from(["raw", "body"]))
def test_mutated_metadata_never_raises(saved: Path, truth: dict[str, Any], target: int,
                                       edits: list[tuple[int, int]], cut: int | None, where: str) -> None:
    """Byte edits and truncation of the metadata files (and, with the CRC recomputed, of the decoded manifest and
    root node bodies) give problems, never an exception."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(shutil.copytree(saved, Path(tmp) / "r"))
        rel = MUTABLE[target] if target < len(MUTABLE) else f"std/{truth['root'].split(':')[2]}"
        path = root / rel
        raw = path.read_bytes()
        decoded = raw[:4] in (b"\x0c\xdb\x3a\x2a", NODE_MAGIC.to_bytes(4, "big")) and where == "body"
        data = bytearray(decompress(raw[14:-4], 1 << 20) if decoded else raw)
        for position, value in edits:
            data[position % len(data)] = value
        data = data[:cut] if cut is not None else data
        path.write_bytes(_reframe(raw, bytes(data)) if decoded else bytes(data))
        folder = folder_of(root)
        for candidate in SOURCE.find(folder):
            ckpt = SOURCE.inspect(folder, candidate)
            assert all(isinstance(p, str) and ": " in p for p in ckpt.problems)


def test_cli_orbax_good_then_deleted_data_file(copy: Path, truth: dict[str, Any]) -> None:
    """Through the real CLI, in a run folder with a printed loss curve: a good save passes checkpoint_saved; with a
    data file deleted it fails, naming the file."""
    (copy / "training_log.txt").write_text("".join(f"step {s} loss {2.0 / s:.4f}\n" for s in range(1, 11)),
                                           encoding="utf-8")
    for other in ("run", "zarr", "flax"):
        shutil.rmtree(copy / other, ignore_errors=True)
    good = verify_json(copy)
    assert good.status("checkpoint_saved") == "pass", good.gate("checkpoint_saved")
    path = sorted({p for p, _, _ in truth["where"].values()})[0]
    (copy / "std" / path).unlink()
    bad = verify_json(copy)
    assert bad.code == 1
    gate = bad.gate("checkpoint_saved")
    assert gate["status"] == "fail" and f"std/{path}: missing" in gate["message"], gate
