"""torch_archive: real torch.save archives (zip and legacy), a real Lightning .ckpt and HF-style pytorch_model.bin
read through Folder without torch or unpickling, compared with torch's own `weights_only=True` load; defects
(a flipped byte, a truncation, a missing storage, a pickle that imports os.system) become problems or unsafe
globals and nothing is ever executed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from auditor.evidence.checkpoint import Checkpoint, PickleGlobal
from auditor.evidence.opener import Folder
from auditor.evidence.pickles import SAFE_GLOBALS, is_safe_global, unsafe_globals, walk_pickle
from auditor.evidence.sources.interface import Candidate
from auditor.evidence.sources.registry import CHECKPOINTS
from auditor.evidence.sources.torch_archive import TorchArchiveFile, TorchArchiveSource, verify_archive

SOURCE = TorchArchiveSource()
CODES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
         torch.int64: "I64", torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
         torch.float8_e4m3fn: "F8_E4M3", torch.uint16: "U16"}
ROOT = Path(__file__).resolve().parents[1]


def folder_of(root: Path) -> Folder:
    return Folder(root, sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()))


def torch_view(path: Path, key: str | None = None) -> dict[str, tuple[str, tuple[int, ...]]]:
    """What torch itself says the file holds, loaded with its safe loader."""
    loaded = torch.load(path, weights_only=True)
    state = loaded[key] if key else loaded
    return {name: (CODES[t.dtype], tuple(t.shape)) for name, t in state.items()}


def torch_parameters(path: Path, key: str | None = None) -> int:
    loaded = torch.load(path, weights_only=True)
    return sum(t.numel() for t in (loaded[key] if key else loaded).values())


def inspect_file(root: Path, rel: str) -> tuple[Checkpoint, TorchArchiveFile]:
    folder = folder_of(root)
    found = {c.location: c for c in SOURCE.find(folder)}
    ckpt = SOURCE.inspect(folder, found[rel])
    weights = ckpt.files[0]
    assert isinstance(weights, TorchArchiveFile)
    return ckpt, weights


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def _lightning_run(out: Path) -> None:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    class Module(L.LightningModule):
        def __init__(self, hidden: int = 8) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def training_step(self, batch: Any, index: int) -> torch.Tensor:
            x, y = batch
            loss = nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=0.01)

    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=4)
    trainer = L.Trainer(max_steps=3, callbacks=[ModelCheckpoint(dirpath=out, save_last=True)], logger=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                        default_root_dir=out.parent)
    trainer.fit(Module(), data)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real files: a zip and a legacy torch.save of one state dict, a Lightning run's checkpoints, HF-style
    pytorch_model.bin (single and sharded, as transformers 4's save_pretrained(safe_serialization=False) wrote
    them: transformers 5 no longer writes .bin)."""
    root = tmp_path_factory.mktemp("torch_archive")
    torch.manual_seed(0)
    state = Net().state_dict()
    torch.save(state, root / "model.pt")
    torch.save(state, root / "legacy.pt", _use_new_zipfile_serialization=False)
    _lightning_run(root / "lightning")
    hf = {f"transformer.h.{i}.mlp.weight": torch.randn(4, 4) for i in range(3)}
    hf["transformer.wte.weight"] = torch.randn(16, 4).to(torch.bfloat16)
    (root / "hf").mkdir()
    torch.save(hf, root / "hf" / "pytorch_model.bin")
    (root / "hf" / "config.json").write_text("{}")
    (root / "hf_sharded").mkdir()
    names = list(hf)
    weight_map = {}
    for i, part in enumerate((names[:2], names[2:])):
        shard = f"pytorch_model-{i + 1:05d}-of-00002.bin"
        torch.save({n: hf[n] for n in part}, root / "hf_sharded" / shard)
        weight_map.update({n: shard for n in part})
    total = sum(t.numel() * t.element_size() for t in hf.values())
    (root / "hf_sharded" / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return root


def test_registered_and_core_imports_no_torch() -> None:
    assert CHECKPOINTS["torch_archive"] is not None
    code = ("import sys, auditor.evidence.sources.torch_archive, auditor.evidence.pickles; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'lightning')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_zip_state_dict_equals_torch(artifacts: Path) -> None:
    ckpt, weights = inspect_file(artifacts, "model.pt")
    assert weights.tensors == torch_view(artifacts / "model.pt")
    assert weights.tensors["net.1.num_batches_tracked"] == ("I64", ())
    assert weights.tensors["net.0.weight"] == ("F32", (8, 4))
    assert weights.parameters == ckpt.parameters == torch_parameters(artifacts / "model.pt") == 91
    assert ckpt.problems == []
    assert weights.layout == "zip" and weights.members == 15 and weights.weights_key is None
    assert weights.sha256 == hashlib.sha256((artifacts / "model.pt").read_bytes()).hexdigest()
    assert (ckpt.directory, ckpt.format, ckpt.step) == ("model.pt", "torch_archive", None)
    assert sorted(g.qualified for g in ckpt.pickle_globals) == [
        "collections.OrderedDict", "torch.FloatStorage", "torch.LongStorage", "torch._utils._rebuild_tensor_v2"]
    assert all(g.path == "model.pt:model/data.pkl" for g in ckpt.pickle_globals)
    assert unsafe_globals(ckpt.pickle_globals) == []
    assert ckpt.summary == (f"model.pt: zip archive, 15 members CRC-32 verified; 9 tensors at the top level, 91 "
                            f"parameters; all 4 pickle globals allowlisted; sha256 {weights.sha256}")


def test_legacy_format_equals_torch(artifacts: Path) -> None:
    ckpt, weights = inspect_file(artifacts, "legacy.pt")
    assert weights.layout == "legacy"
    assert weights.tensors == torch_view(artifacts / "legacy.pt") == torch_view(artifacts / "model.pt")
    assert weights.parameters == 91
    assert ckpt.problems == []
    assert unsafe_globals(ckpt.pickle_globals) == []
    assert weights.sha256 == hashlib.sha256((artifacts / "legacy.pt").read_bytes()).hexdigest()


def test_lightning_checkpoint(artifacts: Path) -> None:
    folder = folder_of(artifacts)
    found = {c.location: c for c in SOURCE.find(folder) if c.location.startswith("lightning/")}
    assert found == {
        "lightning/epoch=0-step=3.ckpt": Candidate("lightning/epoch=0-step=3.ckpt", "torch_archive", 3, False),
        "lightning/last.ckpt": Candidate("lightning/last.ckpt", "torch_archive", None, True),
    }
    for rel, candidate in found.items():
        path = artifacts / rel
        loaded = torch.load(path, weights_only=True)  # torch's own safe loader accepts it: so must the gate
        ckpt = SOURCE.inspect(folder, candidate)
        weights = ckpt.files[0]
        assert isinstance(weights, TorchArchiveFile)
        assert weights.tensors == torch_view(path, "state_dict")
        assert sorted(weights.tensors) == ["net.0.bias", "net.0.weight", "net.2.bias", "net.2.weight"]
        assert weights.parameters == torch_parameters(path, "state_dict") == 49
        assert weights.weights_key == "state_dict"
        assert (ckpt.step, weights.epoch) == (loaded["global_step"], loaded["epoch"]) == (3, 0)
        assert ckpt.problems == []
        assert unsafe_globals(ckpt.pickle_globals) == []


def test_hf_pytorch_model_bin_single_and_sharded(artifacts: Path) -> None:
    folder = folder_of(artifacts)
    found = {c.location: c for c in SOURCE.find(folder) if c.location.startswith("hf")}
    assert found == {"hf/pytorch_model.bin": Candidate("hf/pytorch_model.bin", "torch_archive"),
                     "hf_sharded": Candidate("hf_sharded", "torch_archive")}
    single = SOURCE.inspect(folder, found["hf/pytorch_model.bin"])
    expected = torch_view(artifacts / "hf" / "pytorch_model.bin")
    assert single.files[0].tensors == expected
    assert expected["transformer.wte.weight"] == ("BF16", (16, 4))
    sharded = SOURCE.inspect(folder, found["hf_sharded"])
    assert [f.path for f in sharded.files] == ["hf_sharded/pytorch_model-00001-of-00002.bin",
                                               "hf_sharded/pytorch_model-00002-of-00002.bin"]
    merged = {k: v for f in sharded.files for k, v in f.tensors.items()}
    assert merged == expected
    assert sharded.parameters == single.parameters == 112
    assert (sharded.problems, sharded.missing_shards) == ([], [])
    assert sharded.index is not None and sharded.index.path == "hf_sharded/pytorch_model.bin.index.json"


def test_missing_shard_listed(artifacts: Path, tmp_path: Path) -> None:
    shutil.copytree(artifacts / "hf_sharded", tmp_path / "hf_sharded")
    (tmp_path / "hf_sharded" / "pytorch_model-00002-of-00002.bin").unlink()
    folder = folder_of(tmp_path)
    (candidate,) = SOURCE.find(folder)
    ckpt = SOURCE.inspect(folder, candidate)
    assert ckpt.missing_shards == ["pytorch_model-00002-of-00002.bin"]
    assert ckpt.problems == ["hf_sharded/pytorch_model.bin.index.json: shards missing: "
                             "pytorch_model-00002-of-00002.bin"]


def _member_data_offset(path: Path, member: str) -> tuple[int, zipfile.ZipInfo]:
    info = zipfile.ZipFile(path).getinfo(member)
    with path.open("rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
    return info.header_offset + 30 + name_len + extra_len, info


def test_flipped_byte_in_tensor_data_names_member(artifacts: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    shutil.copy(artifacts / "model.pt", path)
    offset, info = _member_data_offset(path, "model/data/0")
    data = bytearray(path.read_bytes())
    data[offset + 5] ^= 0x01
    path.write_bytes(data)
    member = bytes(data[offset:offset + info.compress_size])
    ckpt, weights = inspect_file(tmp_path, "model.pt")
    assert ckpt.problems == [f"model.pt: member model/data/0: CRC-32 mismatch (stored {info.CRC:08x}, data gives "
                             f"{zlib.crc32(member):08x}): its bytes were changed"]
    assert weights.tensors == torch_view(artifacts / "model.pt")  # the structure is still read


def test_truncated_ckpt_is_a_problem_and_still_walked(artifacts: Path, tmp_path: Path) -> None:
    raw = (artifacts / "lightning" / "last.ckpt").read_bytes()
    (tmp_path / "last.ckpt").write_bytes(raw[: len(raw) // 2])
    ckpt, weights = inspect_file(tmp_path, "last.ckpt")
    assert ckpt.problems == ["last.ckpt: zip central directory unreadable (File is not a zip file): truncated or "
                             "not a zip"]
    assert weights.layout == "zip"
    assert sorted(weights.tensors) == ["net.0.bias", "net.0.weight", "net.2.bias", "net.2.weight"]
    assert unsafe_globals(ckpt.pickle_globals) == [] and len(ckpt.pickle_globals) == 3


def test_truncated_tail_of_legacy_is_a_problem(artifacts: Path, tmp_path: Path) -> None:
    raw = (artifacts / "legacy.pt").read_bytes()
    (tmp_path / "legacy.pt").write_bytes(raw[:-10])
    ckpt, _ = inspect_file(tmp_path, "legacy.pt")
    # storage keys are torch's in-memory ids, so which record the cut lands in varies: its header or its data
    assert len(ckpt.problems) == 1
    assert ckpt.problems[0].startswith("legacy.pt: storage record ") and ckpt.problems[0].endswith(
        f"but the file has {len(raw) - 10} (truncated)")


def _rewrite_zip(src: Path, dst: Path, change: dict[str, bytes | None]) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = change.get(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)


def test_missing_and_short_storage(artifacts: Path, tmp_path: Path) -> None:
    _rewrite_zip(artifacts / "model.pt", tmp_path / "gone.pt", {"model/data/1": None})
    _rewrite_zip(artifacts / "model.pt", tmp_path / "short.pt", {"model/data/0": b"\x00" * 12})
    gone, _ = inspect_file(tmp_path, "gone.pt")
    assert gone.problems == ["gone.pt: storage 1: member model/data/1 is missing"]
    short, _ = inspect_file(tmp_path, "short.pt")
    assert short.problems == ["short.pt: storage 0: member model/data/0 holds 12 bytes, data.pkl needs 128"]


class Payload:
    """Would create `marker` if anything ever unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_os_system_payload_is_named_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evidence = tmp_path / "run"
    evidence.mkdir()
    torch.save({"w": torch.zeros(2), "x": Payload(marker)}, evidence / "evil_zip.pt")
    torch.save({"w": torch.zeros(2), "x": Payload(marker)}, evidence / "evil_legacy.pt",
               _use_new_zipfile_serialization=False)
    (evidence / "evil_pickle.pt").write_bytes(pickle.dumps(Payload(marker), protocol=2))
    (evidence / "evil_stack.pth").write_bytes(pickle.dumps({"x": Payload(marker)}, protocol=4))
    folder = folder_of(evidence)
    found = {c.location: c for c in SOURCE.find(folder)}
    assert sorted(found) == ["evil_legacy.pt", "evil_pickle.pt", "evil_stack.pth", "evil_zip.pt"]
    unsafe = {}
    for rel, candidate in found.items():
        ckpt = SOURCE.inspect(folder, candidate)
        unsafe[rel] = [(g.path, g.qualified) for g in unsafe_globals(ckpt.pickle_globals)]
        assert "off the allowlist" in ckpt.summary
    system = os.system.__module__  # 'posix' here, 'nt' on Windows: where pickle finds os.system
    assert unsafe == {"evil_zip.pt": [("evil_zip.pt:evil_zip/data.pkl", f"{system}.system")],
                      "evil_legacy.pt": [("evil_legacy.pt", f"{system}.system")],
                      "evil_pickle.pt": [("evil_pickle.pt", f"{system}.system")],
                      "evil_stack.pth": [("evil_stack.pth", f"{system}.system")]}
    pickle_ckpt = SOURCE.inspect(folder, found["evil_pickle.pt"])
    assert pickle_ckpt.problems == ["evil_pickle.pt: not a torch.save archive: a bare pickle (torch.load would "
                                    "unpickle it to find out)"]
    assert not marker.exists()


def test_stack_global_resolved_through_memo() -> None:
    # STACK_GLOBAL's operands fetched back from the memo (BINGET), after POPs that hide them from a naive scan
    data = (b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94" b"00" b"h\x00h\x01\x93\x8c\x04echo\x85R.")
    scan = walk_pickle(data, "crafted.pkl")
    assert [(g.qualified, g.offset) for g in scan.globals] == [("os.system", 22)]
    assert [g.qualified for g in unsafe_globals(scan)] == ["os.system"]
    assert scan.problems == []
    # operands that are not strings cannot be resolved: recorded as unresolved, which is unsafe
    unresolved = walk_pickle(b"\x80\x04K\x01K\x02\x93.", "ints.pkl")
    assert [(g.module, g.name) for g in unsafe_globals(unresolved)] == [("?", "?")]
    # INST (protocol 0) imports too; a protocol-2 __builtin__ name is what Python 3 imports as builtins
    inst = walk_pickle(b"(S'ls'\nios\nsystem\n.", "inst.pkl")
    assert [g.qualified for g in inst.globals] == ["os.system"]
    old = walk_pickle(b"\x80\x02c__builtin__\neval\nX\x01\x00\x00\x001\x85R.", "old.pkl")
    assert [g.qualified for g in unsafe_globals(old)] == ["builtins.eval"]


def test_malformed_pickle_is_a_problem_not_an_exception() -> None:
    scan = walk_pickle(b"\x80\x02}q\x00(X\x01\x00\x00", "cut.pkl")
    assert scan.truncated and scan.end is None and scan.root is None
    assert len(scan.problems) == 1 and scan.problems[0].startswith("pickle is malformed at offset")
    underflow = walk_pickle(b"\x80\x02R.", "underflow.pkl")
    assert underflow.problems == ["pickle cannot be followed at offset 2: stack underflow"]


@pytest.mark.parametrize(("module", "name"), [
    ("posix", "system"), ("os", "system"), ("nt", "system"), ("builtins", "eval"), ("builtins", "exec"),
    ("builtins", "getattr"), ("builtins", "__import__"), ("subprocess", "Popen"), ("subprocess", "check_output"),
    ("runpy", "_run_code"), ("importlib", "import_module"), ("__builtin__", "eval"), ("functools", "partial"),
    ("copyreg", "_reconstructor"), ("torch", "load"), ("torch.serialization", "load"), ("numpy", "load"),
    ("pickle", "loads"), ("lightning.fabric.utilities.data", "AttributeDict"), ("?", "?"),
])
def test_code_reaching_globals_are_unsafe(module: str, name: str) -> None:
    assert not is_safe_global(module, name)
    found = [PickleGlobal("f.pt", module, name, 0)]
    assert unsafe_globals(found) == found


def test_allowlist_is_torchs_weights_only_list_plus_stated_additions() -> None:
    from torch._weights_only_unpickler import _get_allowed_globals

    torchs = set(_get_allowed_globals())
    assert torchs <= SAFE_GLOBALS
    # the additions this source needs (other sources add their own, each documented beside it in pickles.py)
    assert {"builtins.frozenset", "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
            "numpy.ndarray", "numpy.dtype", "numpy.core.multiarray.scalar",
            "numpy._core.multiarray.scalar"} <= SAFE_GLOBALS - torchs
    assert not {m.split(".")[0] for m in SAFE_GLOBALS} & {"os", "posix", "nt", "sys", "subprocess", "runpy",
                                                          "importlib", "pickle", "__builtin__"}
    assert not {"builtins.eval", "builtins.exec", "builtins.getattr", "builtins.__import__"} & SAFE_GLOBALS


def test_numpy_and_builtin_data_pass(tmp_path: Path) -> None:
    import numpy as np

    torch.save({"rng": np.random.get_state(), "s": {1, 2}, "f": frozenset({3}), "b": b"x", "c": 1j,
                "w": torch.ones(3, dtype=torch.float16)}, tmp_path / "mixed.pt")
    ckpt, weights = inspect_file(tmp_path, "mixed.pt")
    assert unsafe_globals(ckpt.pickle_globals) == []
    assert weights.tensors == {"w": ("F16", (3,))}
    assert ckpt.problems == []


def test_find_skips_deepspeed_and_trainer_state_and_names_steps(tmp_path: Path) -> None:
    state = {"w": torch.zeros(1)}
    layout = ["global_step10/mp_rank_00_model_states.pt", "checkpoint-500/pytorch_model.bin",
              "checkpoint-500/optimizer.pt", "checkpoint-500/training_args.bin", "checkpoint-500/rng_state.pth",
              "step_120.pt", "checkpoint_130.pt", "model-140.pt", "model.pt", "final.pt", "latest.pth",
              "final_model/pytorch_model.bin", "last-v1.ckpt", "epoch=2-step=150.ckpt", "notes.bin"]
    for rel in layout:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, tmp_path / rel)
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01 not a pickle")
    found = {c.location: (c.step, c.final) for c in SOURCE.find(folder_of(tmp_path))}
    assert found == {"checkpoint-500/pytorch_model.bin": (500, False), "step_120.pt": (120, False),
                     "checkpoint_130.pt": (130, False), "model-140.pt": (140, False), "model.pt": (None, False),
                     "final.pt": (None, True), "latest.pth": (None, True),
                     "final_model/pytorch_model.bin": (None, True), "last-v1.ckpt": (None, True),
                     "epoch=2-step=150.ckpt": (150, False)}


def test_one_pass_digest_and_crcs(artifacts: Path) -> None:
    folder = folder_of(artifacts)
    with folder.open("lightning/last.ckpt") as handle:
        check = verify_archive(handle)
    raw = (artifacts / "lightning" / "last.ckpt").read_bytes()
    assert check.sha256 == hashlib.sha256(raw).hexdigest() and check.size == len(raw)
    assert check.problems == [] and check.is_zip
    assert check.members == {i.filename: i.file_size for i in zipfile.ZipFile(io.BytesIO(raw)).infolist()}


def test_thousand_tensor_data_pkl_walk_is_fast(tmp_path: Path) -> None:
    state = OrderedDict((f"layers.{i}.weight", torch.zeros(2, 3)) for i in range(1000))
    torch.save(state, tmp_path / "big.pt")
    data = zipfile.ZipFile(tmp_path / "big.pt").read("big/data.pkl")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        scan = walk_pickle(data, "big.pt")
        tensors = list(scan.tensors())
        times.append(time.perf_counter() - start)
    assert len(tensors) == 1000 and len(scan.storages) == 1000
    assert min(times) < 0.1


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(name=st.sampled_from(["model.pt", "legacy.pt", "lightning/last.ckpt"]),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_archives_never_raise(artifacts: Path, tmp_path_factory: pytest.TempPathFactory, name: str,
                                      edits: list[tuple[float, int]], cut: float | None) -> None:
    data = bytearray((artifacts / name).read_bytes())
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    root = tmp_path_factory.mktemp("fuzz")
    (root / "f.ckpt").write_bytes(bytes(data))
    folder = folder_of(root)
    for candidate in [*SOURCE.find(folder), Candidate("f.ckpt", "torch_archive")]:
        ckpt = SOURCE.inspect(folder, candidate)
        assert isinstance(ckpt, Checkpoint)
        unsafe_globals(ckpt.pickle_globals)
    shutil.rmtree(root)
