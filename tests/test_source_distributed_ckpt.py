"""DCP and DeepSpeed checkpoint sources against real artifacts: DCP saved by torch (one process without a process
group, and FSDP2 over two gloo ranks), DeepSpeed saved by engine.save_checkpoint on CPU (ZeRO-1 over two ranks,
ZeRO-3 with bf16 over two ranks); then the same folders broken one defect at a time."""

from __future__ import annotations

import io
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from conftest import verify_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.evidence.checkpoint import Checkpoint
from auditor.evidence.opener import Folder
from auditor.evidence.pickles import TORCH_DTYPES
from auditor.evidence.sources.dcp import DcpMetadataFile, DcpSource
from auditor.evidence.sources.deepspeed import DeepSpeedSource
from auditor.evidence.sources.interface import Candidate
from auditor.evidence.sources.registry import CHECKPOINTS

torch = pytest.importorskip("torch")

FSDP_DIR = "run/checkpoint-7/pytorch_model_fsdp_0"

DCP_SCRIPT = r'''
import os, sys
import torch, torch.distributed as dist, torch.multiprocessing as mp
import torch.distributed.checkpoint as dcp

def fsdp(rank, world, store, out):
    os.environ.update(MASTER_ADDR="127.0.0.1")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)  # no port to race
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    fully_shard(model, mesh=init_device_mesh("cpu", (world,)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(4, 6)).sum().backward()
    opt.step()
    msd, osd = get_state_dict(model, opt)
    dcp.save({"model": msd, "optim": osd, "step": 7}, checkpoint_id=out)
    dist.destroy_process_group()

if __name__ == "__main__":
    torch.manual_seed(0)
    single = {"model": {"w": torch.randn(4, 3), "b": torch.zeros(3, dtype=torch.bfloat16)}, "step": 7,
              "extra": {"lr": 0.1}}
    dcp.save(single, checkpoint_id=sys.argv[1])  # no process group: torch saves as a single process
    store = os.path.join(os.path.dirname(os.path.abspath(__file__)), "store")
    if os.path.exists(store):
        os.remove(store)  # a FileStore must start empty (a failed attempt may have left one)
    mp.spawn(fsdp, args=(2, store, sys.argv[2]), nprocs=2)
'''

DS_SCRIPT = r'''
import os, socket, subprocess, sys
if len(sys.argv) == 5:  # launcher: one process per rank, as the deepspeed launcher would
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    world = int(sys.argv[3])
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world)}
    procs = [subprocess.Popen([sys.executable, __file__, *sys.argv[1:], str(r)],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(world)]
    sys.exit(max(p.wait() for p in procs))
import torch, deepspeed
out, stage, bf16 = sys.argv[1], int(sys.argv[2]), sys.argv[4] == "bf16"
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
config = {"train_batch_size": 4, "train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": stage},
          "optimizer": {"type": "Adam", "params": {"lr": 1e-3, "torch_adam": True}}, "bf16": {"enabled": bf16}}
engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
for _ in range(3):
    x = torch.randn(2, 4, dtype=torch.bfloat16 if bf16 else torch.float32)
    engine.backward(engine(x).pow(2).mean())
    engine.step()
engine.save_checkpoint(out)
'''

DCP_METADATA_GLOBALS = [
    "torch.distributed.checkpoint.metadata.Metadata",
    "torch.distributed.checkpoint.metadata.TensorStorageMetadata",
    "torch.distributed.checkpoint.metadata.TensorProperties",
    "torch.float32",
    "torch.serialization._get_layout",
    "torch.distributed.checkpoint.metadata._MEM_FORMAT_ENCODING",
    "torch.Size",
    "torch.distributed.checkpoint.metadata.ChunkStorageMetadata",
    "torch.bfloat16",
    "torch.distributed.checkpoint.metadata.BytesStorageMetadata",
    "torch.distributed.checkpoint.metadata.MetadataIndex",
    "torch.distributed.checkpoint.filesystem._StorageInfo",
    "torch.distributed.checkpoint.metadata.StorageMeta",
    "pathlib.PosixPath",
]
ITEM_GLOBALS = ["torch._utils._rebuild_tensor_v2", "torch.FloatStorage", "collections.OrderedDict"]
DS_ZERO1_GLOBALS = {
    "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.FloatStorage", "torch.Size",
    "deepspeed.runtime.fp16.loss_scaler.LossScaler", "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
}
DS_ZERO3_BF16_GLOBALS = {
    "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.FloatStorage", "torch.BFloat16Storage",
    "torch.Size", "torch.Tensor", "torch._tensor._rebuild_from_type_v2",
    "deepspeed.runtime.fp16.loss_scaler.LossScaler", "deepspeed.runtime.zero.config.ZeroStageEnum",
}


def _run(args: list[str], what: str, outputs: list[Path]) -> None:
    """Run a save script; once more if it fails (a gloo rank once died by SIGABRT on this shared 2-core machine,
    not reproducible since), clearing what the failed attempt wrote."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    failures = []
    for _ in range(2):
        for out in outputs:
            shutil.rmtree(out, ignore_errors=True)
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900, env=env)
        if done.returncode == 0:
            return
        failures.append(f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    raise RuntimeError("\n\n".join(failures))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real DCP checkpoints: `single/` (one process) and FSDP_DIR (FSDP2 over two gloo ranks)."""
    root = tmp_path_factory.mktemp("dcp")
    script = root / "make_dcp.py"
    script.write_text(DCP_SCRIPT, encoding="utf-8")
    _run([str(script), str(root / "single"), str(root / FSDP_DIR)], "DCP save", [root / "single", root / "run"])
    script.unlink()
    (root / "store").unlink(missing_ok=True)
    return root


@pytest.fixture(scope="module")
def ds_made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real DeepSpeed checkpoints on CPU: `zero1/` (fp32, two ranks) and `zero3/` (bf16, two ranks)."""
    if find_spec("deepspeed") is None:
        pytest.skip("deepspeed is not installed")
    root = tmp_path_factory.mktemp("deepspeed")
    script = root / "make_ds.py"
    script.write_text(DS_SCRIPT, encoding="utf-8")
    _run([str(script), str(root / "zero1"), "1", "2", "fp32"], "DeepSpeed ZeRO-1 save", [root / "zero1"])
    _run([str(script), str(root / "zero3"), "3", "2", "bf16"], "DeepSpeed ZeRO-3 save", [root / "zero3"])
    script.unlink()
    return root


def folder_of(root: Path) -> Folder:
    """The Folder a run would give the sources: every regular file, folder-relative, sorted."""
    return Folder(root, sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()))


def copy(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst))


def one(source: Any, folder: Folder) -> Checkpoint:
    (candidate,) = source.find(folder)
    return source.inspect(folder, candidate)


def torch_metadata(directory: Path) -> Any:
    """torch's own reading of `.metadata` (it unpickles: only the test does that)."""
    from torch.distributed.checkpoint import FileSystemReader

    return FileSystemReader(str(directory)).read_metadata()


def dtype_code(dtype: Any) -> str:
    return TORCH_DTYPES[str(dtype).removeprefix("torch.")][0]


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def member_data_offset(path: Path, member_suffix: str, start: int = 0, length: int | None = None) -> int:
    """Where a zip member's data begins in the file (the zip may be an item at `start` inside a .distcp)."""
    blob = path.read_bytes()[start:start + length if length is not None else None]
    info = next(i for i in zipfile.ZipFile(io.BytesIO(blob)).infolist() if i.filename.endswith(member_suffix))
    name_len, extra_len = struct.unpack("<HH", blob[info.header_offset + 26:info.header_offset + 30])
    return start + info.header_offset + 30 + name_len + extra_len


def test_both_formats_are_registered() -> None:
    assert CHECKPOINTS["dcp"].info.looks_for == (".metadata", "*.distcp")
    assert CHECKPOINTS["deepspeed"].info.kind == "checkpoint"
    assert isinstance(CHECKPOINTS["dcp"], DcpSource) and isinstance(CHECKPOINTS["deepspeed"], DeepSpeedSource)


# -- DCP -------------------------------------------------------------------------------------------------------

def test_dcp_single_process(made: Path) -> None:
    folder = folder_of(made / "single")
    assert DcpSource().find(folder) == [Candidate(".", "dcp", None, False)]
    ckpt = one(DcpSource(), folder)
    md = torch_metadata(made / "single")
    assert ckpt.problems == []
    assert ckpt.directory == "." and ckpt.format == "dcp" and ckpt.step is None
    (record,) = ckpt.files
    assert isinstance(record, DcpMetadataFile)
    assert record.tensors == {"model.w": ("F32", (4, 3)), "model.b": ("BF16", (3,))}
    assert record.tensors == {k: (dtype_code(v.properties.dtype), tuple(v.size))
                              for k, v in md.state_dict_metadata.items() if hasattr(v, "size")}
    assert record.non_tensors == ["step", "extra.lr"]
    assert ckpt.parameters == 15 == sum(math.prod(v.size) for v in md.state_dict_metadata.values()
                                        if hasattr(v, "size"))
    assert [g.qualified for g in ckpt.pickle_globals] == [*DCP_METADATA_GLOBALS, *ITEM_GLOBALS,
                                                          "torch.BFloat16Storage"]
    assert ckpt.pickle_globals[0].path == ".metadata"
    assert ckpt.summary == ("DCP checkpoint: 2 model tensors, 15 parameters, 2 non-tensor entries; 4 storage items "
                            "in 1 .distcp file(s) cover them exactly, 4 CRC-verified torch.save archives; "
                            "pickle globals allowlisted")


def test_dcp_fsdp_two_ranks_matches_torch(made: Path, tmp_path: Path) -> None:
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    folder = folder_of(made)
    found = [c for c in DcpSource().find(folder) if c.location == FSDP_DIR]
    assert [(c.location, c.step, c.final) for c in found] == [(FSDP_DIR, 7, False)]
    ckpt = DcpSource().inspect(folder, found[0])
    assert ckpt.problems == []
    (record,) = ckpt.files
    assert isinstance(record, DcpMetadataFile)
    assert record.tensors == {"model.0.weight": ("F32", (5, 6)), "model.0.bias": ("F32", (5,)),
                              "model.2.weight": ("F32", (3, 5)), "model.2.bias": ("F32", (3,))}
    md = torch_metadata(made / FSDP_DIR)
    tensors = {k: v for k, v in md.state_dict_metadata.items() if hasattr(v, "size")}
    assert {**record.tensors, **record.optimizer_tensors} == {
        k: (dtype_code(v.properties.dtype), tuple(v.size)) for k, v in tensors.items()}
    assert len(record.optimizer_tensors) == 12 and all(k.startswith("optim.") for k in record.optimizer_tensors)
    assert all(len(tensors[k].chunks) == 2 for k in record.tensors)  # FSDP2 shards every parameter over 2 ranks
    # torch's own conversion of the DCP folder to one torch.save file, loaded back: same model, same count
    dcp_to_torch_save(str(made / FSDP_DIR), str(tmp_path / "full.pt"))
    full = torch.load(tmp_path / "full.pt", weights_only=False)
    assert {k: tuple(v.shape) for k, v in full["model"].items()} == {
        k.removeprefix("model."): shape for k, (_, shape) in record.tensors.items()}
    assert ckpt.parameters == 53 == sum(v.numel() for v in full["model"].values())
    assert len(md.storage_data) == 41 and "41 storage items in 2 .distcp file(s)" in ckpt.summary


def test_dcp_missing_distcp_is_named(made: Path, tmp_path: Path) -> None:
    root = copy(made / FSDP_DIR, tmp_path / "ck")
    md = torch_metadata(root)
    held = sum(1 for info in md.storage_data.values() if info.relative_path == "__1_0.distcp")
    (root / "__1_0.distcp").unlink()
    ckpt = one(DcpSource(), folder_of(root))
    assert ckpt.problems == [f"__1_0.distcp: missing: .metadata places {held} storage item(s) in it"]


def test_dcp_truncated_distcp(made: Path, tmp_path: Path) -> None:
    root = copy(made / "single", tmp_path / "ck")
    path = root / "__0_0.distcp"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:size - 100])
    md = torch_metadata(root)
    index, info = max(md.storage_data.items(), key=lambda kv: kv[1].offset)
    label = index.fqn + (f" chunk {list(index.offset)}" if index.offset is not None else "")
    ckpt = one(DcpSource(), folder_of(root))
    assert info.offset + info.length == size
    assert ckpt.problems == [f"__0_0.distcp: item {label} spans bytes {info.offset}..{size} but the file has "
                             f"{size - 100} (truncated)"]


def test_dcp_changed_tensor_byte_fails_crc(made: Path, tmp_path: Path) -> None:
    root = copy(made / "single", tmp_path / "ck")
    md = torch_metadata(root)
    index = next(i for i in md.storage_data if i.fqn == "model.w")
    info = md.storage_data[index]
    flip(root / "__0_0.distcp", member_data_offset(root / "__0_0.distcp", "/data/0", info.offset, info.length) + 5)
    ckpt = one(DcpSource(), folder_of(root))
    assert ckpt.problems == ["__0_0.distcp: item model.w chunk [0, 0]: member archive/data/0 fails its CRC-32 "
                             "check: its bytes were changed"]


def test_dcp_without_metadata(made: Path, tmp_path: Path) -> None:
    root = copy(made / "single", tmp_path / "ck")
    (root / ".metadata").unlink()
    ckpt = one(DcpSource(), folder_of(root))
    assert ckpt.problems == [".metadata: missing: 1 .distcp file(s) but no metadata, so a DCP load cannot find "
                             "any tensor"]


def test_dcp_chunks_edited_in_metadata(made: Path, tmp_path: Path) -> None:
    import pickle

    root = copy(made / FSDP_DIR, tmp_path / "ck")
    md = torch_metadata(root)
    first = md.state_dict_metadata["model.0.weight"].chunks[0]
    assert (tuple(first.offsets), tuple(first.sizes)) == ((0, 0), (3, 6))
    first.sizes = torch.Size([4, 6])  # now overlaps the second rank's rows 3..4
    with (root / ".metadata").open("wb") as handle:
        pickle.dump(md, handle)
    ckpt = one(DcpSource(), folder_of(root))
    assert ckpt.problems == [
        ".metadata: model.0.weight: chunks hold 36 elements, shape [5, 6] has 30",
        ".metadata: model.0.weight: chunks at [0, 0] and [3, 0] overlap",
        "__0_0.distcp: item model.0.weight chunk [0, 0] holds shape [3, 6], the chunk is [4, 6]",
    ]


def test_dcp_accelerate_optimizer_dir_is_not_preferred(made: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    copy(made / FSDP_DIR, root / "checkpoint-7/pytorch_model_fsdp_0")
    copy(made / FSDP_DIR, root / "checkpoint-7/optimizer_0")
    found = DcpSource().find(folder_of(root))
    assert [(c.location, c.step) for c in found] == [("checkpoint-7/optimizer_0", None),
                                                    ("checkpoint-7/pytorch_model_fsdp_0", 7)]


@pytest.fixture(scope="module")
def mutable_dcp(made: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    root = copy(made / "single", tmp_path_factory.mktemp("mutated") / "ck")
    return root, (root / ".metadata").read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_dcp_mutated_metadata_never_raises(mutable_dcp: tuple[Path, bytes], data: st.DataObject) -> None:
    root, original = mutable_dcp
    blob = bytearray(original)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[:data.draw(st.integers(0, len(blob)))]
    (root / ".metadata").write_bytes(bytes(blob))
    folder = folder_of(root)
    (candidate,) = DcpSource().find(folder)  # found by its .distcp file whatever .metadata has become
    ckpt = DcpSource().inspect(folder, candidate)
    assert isinstance(ckpt, Checkpoint) and isinstance(ckpt.summary, str)


def test_dcp_random_bytes_metadata_never_raises() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "__0_0.distcp").write_bytes(b"PK\x03\x04" + bytes(200))
        for payload in (b"", b"\x80", b"\x80\x04\x95" + bytes(20), b"\x80\x04N.", b"\x80\x04}\x94."):
            (root / ".metadata").write_bytes(payload)
            ckpt = one(DcpSource(), folder_of(root))
            assert ckpt.problems and all(p.startswith(".metadata: ") for p in ckpt.problems)


# -- DeepSpeed --------------------------------------------------------------------------------------------------

def test_deepspeed_zero1_two_ranks(ds_made: Path) -> None:
    folder = folder_of(ds_made)
    found = [c for c in DeepSpeedSource().find(folder) if c.location.startswith("zero1/")]
    assert [(c.location, c.step, c.final) for c in found] == [("zero1/global_step3", 3, True)]
    ckpt = DeepSpeedSource().inspect(folder, found[0])
    assert ckpt.problems == []
    assert ckpt.step == 3 and ckpt.format == "deepspeed"
    states = torch.load(ds_made / "zero1/global_step3/mp_rank_00_model_states.pt", weights_only=False)
    (weights,) = ckpt.files
    assert weights.path == "zero1/global_step3/mp_rank_00_model_states.pt"
    assert weights.tensors == {k: (dtype_code(v.dtype), tuple(v.shape)) for k, v in states["module"].items()}
    assert ckpt.parameters == 58 == sum(v.numel() for v in states["module"].values())
    assert states["dp_world_size"] == 2
    assert {g.qualified for g in ckpt.pickle_globals} == DS_ZERO1_GLOBALS
    assert ckpt.summary == ("DeepSpeed global_step3: ZeRO stage 1, 2 data-parallel × 1 model-parallel rank(s); "
                            "1 model-state and 2 optimizer-state archive(s) CRC-verified, 1 holding 4 tensors, 58 "
                            "parameters, fp32 partitions hold 58 elements; named by latest; zero_to_fp32.py beside "
                            "it; pickle globals allowlisted")


def test_deepspeed_zero3_bf16_shapes_from_param_shapes(ds_made: Path) -> None:
    folder = folder_of(ds_made)
    found = [c for c in DeepSpeedSource().find(folder) if c.location.startswith("zero3/")]
    assert [(c.location, c.step, c.final) for c in found] == [("zero3/global_step3", 3, True)]
    ckpt = DeepSpeedSource().inspect(folder, found[0])
    assert ckpt.problems == []
    tag = ds_made / "zero3/global_step3"
    assert sorted(p.name for p in tag.iterdir()) == [
        "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt", "bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt",
        "zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"]
    states = torch.load(tag / "zero_pp_rank_0_mp_rank_00_model_states.pt", weights_only=False)
    assert all(v.numel() == 0 for v in states["module"].values())  # ZeRO-3 keeps placeholders
    shapes = {k: tuple(v) for group in states["param_shapes"] for k, v in group.items()}
    (weights,) = ckpt.files
    assert weights.tensors == {k: ("BF16", s) for k, s in shapes.items()}
    assert ckpt.parameters == 58 == sum(math.prod(s) for s in shapes.values())
    assert {g.qualified for g in ckpt.pickle_globals} == DS_ZERO3_BF16_GLOBALS
    assert "ZeRO stage 3, 2 data-parallel × 1 model-parallel rank(s); 2 model-state and 2 optimizer-state" in (
        ckpt.summary)


def test_deepspeed_latest_names_missing_tag(ds_made: Path, tmp_path: Path) -> None:
    root = copy(ds_made / "zero1", tmp_path / "zero1")
    (root / "latest").write_text("global_step9", encoding="utf-8")
    folder = folder_of(root)
    found = DeepSpeedSource().find(folder)
    assert [(c.location, c.step, c.final) for c in found] == [("global_step3", 3, False), ("global_step9", 9, True)]
    ckpt = DeepSpeedSource().inspect(folder, found[1])
    assert ckpt.problems == ["latest: names tag 'global_step9', but global_step9/ holds no DeepSpeed *_states.pt "
                             "files (missing)"]
    assert DeepSpeedSource().inspect(folder, found[0]).problems == []


def test_deepspeed_missing_optimizer_rank(ds_made: Path, tmp_path: Path) -> None:
    root = copy(ds_made / "zero1", tmp_path / "zero1")
    (root / "global_step3/zero_pp_rank_1_mp_rank_00_optim_states.pt").unlink()
    ckpt = one(DeepSpeedSource(), folder_of(root))
    assert ckpt.problems == ["global_step3/zero_pp_rank_1_mp_rank_00_optim_states.pt: missing (ZeRO stage 1, "
                             "dp_world_size 2, mp_world_size 1: one file per rank expected)"]


def test_deepspeed_flipped_byte_in_model_states(ds_made: Path, tmp_path: Path) -> None:
    root = copy(ds_made / "zero1", tmp_path / "zero1")
    path = root / "global_step3/mp_rank_00_model_states.pt"
    flip(path, member_data_offset(path, "/data/0") + 3)
    ckpt = one(DeepSpeedSource(), folder_of(root))
    assert len(ckpt.problems) == 1
    assert ckpt.problems[0].startswith("global_step3/mp_rank_00_model_states.pt: member "
                                       "mp_rank_00_model_states/data/0: CRC-32 mismatch")
    assert ckpt.parameters == 58  # the structure is still read; the damage is named


def test_deepspeed_extra_rank_outside_world(ds_made: Path, tmp_path: Path) -> None:
    root = copy(ds_made / "zero1", tmp_path / "zero1")
    tag = root / "global_step3"
    shutil.copy(tag / "zero_pp_rank_1_mp_rank_00_optim_states.pt", tag / "zero_pp_rank_2_mp_rank_00_optim_states.pt")
    ckpt = one(DeepSpeedSource(), folder_of(root))
    assert ckpt.problems == ["global_step3/zero_pp_rank_2_mp_rank_00_optim_states.pt: rank outside the "
                             "checkpoint's world (ZeRO stage 1, dp_world_size 2, mp_world_size 1)"]


# -- through the real CLI: a run folder holding the checkpoint --------------------------------------------------
def _run_folder(tmp_path: Path, checkpoint: Path, name: str) -> Path:
    """A seed-style run folder: a printed loss curve in training_log.txt and the real checkpoint under `name`."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "training_log.txt").write_text("".join(f"step {s} loss {2.0 / s:.4f}\n" for s in range(1, 11)),
                                          encoding="utf-8")
    shutil.copytree(checkpoint, run / name)
    return run


def test_cli_dcp_good_then_missing_distcp(made: Path, tmp_path: Path) -> None:
    run = _run_folder(tmp_path, made / FSDP_DIR, "pytorch_model_fsdp_0")
    good = verify_json(run)
    assert good.status("checkpoint_saved") == "pass", good.gate("checkpoint_saved")
    assert good.status("checkpoint_safe") == "pass", good.gate("checkpoint_safe")
    (run / "pytorch_model_fsdp_0" / "__1_0.distcp").unlink()
    bad = verify_json(run)
    assert bad.code == 1
    gate = bad.gate("checkpoint_saved")
    assert gate["status"] == "fail" and "__1_0.distcp: missing" in gate["message"], gate


def test_cli_deepspeed_good_then_latest_naming_a_missing_tag(ds_made: Path, tmp_path: Path) -> None:
    run = _run_folder(tmp_path, ds_made / "zero1", "ds_checkpoint")
    good = verify_json(run)
    assert good.status("checkpoint_saved") == "pass", good.gate("checkpoint_saved")
    assert good.status("checkpoint_safe") == "pass", good.gate("checkpoint_safe")
    (run / "ds_checkpoint" / "latest").write_text("global_step9", encoding="utf-8")
    bad = verify_json(run)
    assert bad.code == 1
    gate = bad.gate("checkpoint_saved")
    assert gate["status"] == "fail" and "names tag 'global_step9'" in gate["message"], gate
