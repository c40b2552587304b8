"""DeepSpeed checkpoints (engine.save_checkpoint): a `latest` file naming the tag, `<tag>/` (global_step<N> unless
the caller named it) holding `mp_rank_XX_model_states.pt` (ZeRO-3: `zero_pp_rank_R_mp_rank_XX_model_states.pt`
per data-parallel rank) and, for ZeRO, one `[bf16_]zero_pp_rank_R_mp_rank_XX_optim_states.pt` per rank; file
names as deepspeed/runtime/engine.py `_get_ckpt_name` and `_get_rank_zero_ckpt_name` make them. Every archive is
read by auditor.evidence.sources.torch_archive (CRC-32 of every member, data.pkl walked, never unpickled)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from auditor.evidence.checkpoint import Checkpoint
from auditor.evidence.opener import EvidenceUnreadable, Folder
from auditor.evidence.pickles import unsafe_globals, walk_pickle
from auditor.evidence.sources.interface import Candidate, CheckpointSource, FormatInfo
from auditor.evidence.sources.registry import register
from auditor.evidence.sources.torch_archive import TorchArchiveFile, read_torch_file

LATEST = "latest"
PICKLE_LIMIT = 64 * 1024 * 1024  # a model-states data.pkl longer than this is not re-walked for its top level
_RANKED = re.compile(r"(?P<zero>(?P<bf16>bf16_)?zero_pp_rank_(?P<dp>\d+)_)?mp_rank_(?P<mp>\d+)_"
                     r"(?P<kind>model|optim)_states\.pt")
_STATES = re.compile(r".+_states\.pt")  # also expert (MoE) and pipeline-layer files: checked, not rank-counted
_TAG = re.compile(r"[\w.\-]{1,255}")
_STEP = re.compile(r"global_step(\d+)")
_DATA_PKL = re.compile(r"[^/]+/data\.pkl")
_PARTITIONS = ("single_partition_of_fp32_groups", "fp32_flat_groups")  # ZeRO-1/2 and ZeRO-3 fp32 partitions


@dataclass(frozen=True)
class _Shard:
    rel: str
    kind: str  # model | optim
    mp: int
    dp: int | None  # None: a non-ZeRO-3 model-states file (one per model-parallel rank)
    bf16: bool


def _join(directory: str, name: str) -> str:
    return name if directory in ("", ".") else f"{directory}/{name}"


def _latest_tag(folder: Folder, rel: str) -> str | None:
    """The tag a `latest` file names (DeepSpeed writes it bare, no newline), None when it names none."""
    doc = folder.text(rel, 4096)
    text = "\n".join(doc.lines).strip() if doc is not None else ""
    return text if _TAG.fullmatch(text) and text not in (".", "..") else None


def _top_level(folder: Folder, rel: str) -> dict[str, Any]:
    """The top-level dict of a torch.save archive's data.pkl (dp_world_size, ds_config, param_shapes ...), walked
    without unpickling; empty when unreadable (read_torch_file reports why)."""
    import zipfile
    try:
        with folder.open(rel) as handle, zipfile.ZipFile(handle) as archive:
            member = next((i for i in archive.infolist() if _DATA_PKL.fullmatch(i.filename)), None)
            if member is None or member.file_size > PICKLE_LIMIT or member.compress_type != zipfile.ZIP_STORED:
                return {}
            data = archive.read(member)
    except Exception:  # zipfile raises a zoo on damaged bytes; the CRC pass already names the damage
        return {}
    root = walk_pickle(data, rel).root
    return root if isinstance(root, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _param_shapes(top: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The trainable parameters' full shapes DeepSpeed records (a list of {name: torch.Size} per param group)."""
    groups = top.get("param_shapes")
    shapes: dict[str, tuple[int, ...]] = {}
    for group in groups if isinstance(groups, list) else [groups] if isinstance(groups, dict) else []:
        if isinstance(group, dict):
            shapes.update({k: v for k, v in group.items() if isinstance(k, str) and isinstance(v, tuple)
                           and all(_int(n) is not None for n in v)})
    return shapes


def _zero_stage(top: dict[str, Any]) -> int | None:
    config = top.get("ds_config")
    zero = config.get("zero_optimization") if isinstance(config, dict) else None
    return _int(zero.get("stage")) if isinstance(zero, dict) else None


def inspect_deepspeed(folder: Folder, directory: str, step: int | None = None) -> Checkpoint:
    """Structure and integrity of one DeepSpeed tag directory, and whether `latest` beside it names a real tag."""
    root, _, tag = directory.rpartition("/")
    ckpt = Checkpoint(directory=directory, format=DeepSpeedSource.info.id, step=step)
    latest = _join(root, LATEST)
    named = _latest_tag(folder, latest) if latest in folder.files else None
    if latest in folder.files and named is None:
        ckpt.problems.append(f"{latest}: does not name a checkpoint tag (load_checkpoint reads the tag from it)")
    shards: list[_Shard] = []
    others: list[str] = []
    for rel in folder.under(directory):
        name = rel[len(directory) + 1:]
        if "/" in name or not _STATES.fullmatch(name):
            continue
        match = _RANKED.fullmatch(name)
        if match is None:
            others.append(rel)
            continue
        dp = match["dp"]
        shards.append(_Shard(rel, match["kind"], int(match["mp"]), int(dp) if dp is not None else None,
                             match["bf16"] is not None))
    if not shards and not others:
        where = f"{latest}: names tag {tag!r}, but" if named == tag else f"{directory}/:"
        ckpt.problems.append(f"{where} {directory}/ holds no DeepSpeed *_states.pt files (missing)")
        ckpt.summary = f"DeepSpeed tag {tag} without checkpoint files"
        return ckpt
    read = {s.rel: _read(folder, ckpt, s.rel) for s in shards}
    for rel in others:
        _read(folder, ckpt, rel)
    models = sorted((s for s in shards if s.kind == "model"), key=lambda s: (s.mp, s.dp or 0))
    tops = {s.mp: _top_level(folder, s.rel) for s in models if not s.dp}
    first = tops[min(tops)] if tops else {}
    saved_step = _int(first.get("global_steps"))
    ckpt.step = saved_step if saved_step is not None else step
    stage = _zero_stage(first)
    if stage is None:
        stage = 3 if any(s.dp is not None for s in models) else 1 if any(s.kind == "optim" for s in shards) else 0
    dp_world = _int(first.get("dp_world_size")) or max((s.dp + 1 for s in shards if s.dp is not None), default=1)
    mp_world = _int(first.get("mp_world_size")) or max((s.mp + 1 for s in shards), default=1)
    _check_ranks(ckpt, directory, shards, stage, dp_world, mp_world)
    params = _weights(ckpt, models, read, tops)
    partitions = _check_partitions(ckpt, directory, shards, read, tops, dp_world)
    unsafe = unsafe_globals(ckpt.pickle_globals)
    extras = [n for n in ("zero_to_fp32.py",) if _join(root, n) in folder.files]
    ckpt.summary = (f"DeepSpeed {tag}: ZeRO stage {stage}, {dp_world} data-parallel × {mp_world} model-parallel "
                    f"rank(s); {len(models)} model-state and {sum(s.kind == 'optim' for s in shards)} "
                    f"optimizer-state archive(s) CRC-verified, {len(ckpt.files)} holding "
                    f"{sum(len(f.tensors) for f in ckpt.files)} tensors, {params:,} parameters{partitions}"
                    + ("; named by latest" if named == tag else "")
                    + (f"; {', '.join(extras)} beside it" if extras else "")
                    + (f"; {len({g.qualified for g in unsafe})} pickle globals off the allowlist" if unsafe
                       else "; pickle globals allowlisted"))
    return ckpt


def _read(folder: Folder, ckpt: Checkpoint, rel: str) -> TorchArchiveFile:
    found = read_torch_file(folder, rel)
    ckpt.problems.extend(f"{rel}: {p}" for p in found.problems)
    ckpt.pickle_globals.extend(found.pickle_globals)
    return found


def _check_ranks(ckpt: Checkpoint, directory: str, shards: list[_Shard], stage: int, dp_world: int,
                 mp_world: int) -> None:
    """One file per rank: model states per model-parallel rank (ZeRO-3: per data-parallel rank too), optimizer
    states per data-parallel rank for every model-parallel rank under ZeRO; nothing outside the world."""
    names = {s.rel for s in shards}
    optim = [s for s in shards if s.kind == "optim"]
    bf16 = any(s.bf16 for s in optim)
    expected: list[str] = []
    for mp in range(mp_world):
        if stage >= 3:
            expected.extend(f"zero_pp_rank_{dp}_mp_rank_{mp:02d}_model_states.pt" for dp in range(dp_world))
        else:
            expected.append(f"mp_rank_{mp:02d}_model_states.pt")
        if stage >= 1 or optim:  # bf16 without ZeRO (BF16_Optimizer) writes bf16_zero_pp_rank files too
            expected.extend(f"{'bf16_' if bf16 else ''}zero_pp_rank_{dp}_mp_rank_{mp:02d}_optim_states.pt"
                            for dp in range(dp_world))
    missing = [_join(directory, n) for n in expected if _join(directory, n) not in names]
    for rel in missing[:5]:
        ckpt.problems.append(f"{rel}: missing (ZeRO stage {stage}, dp_world_size {dp_world}, mp_world_size "
                             f"{mp_world}: one file per rank expected)")
    if len(missing) > 5:
        ckpt.problems.append(f"{directory}/: {len(missing) - 5} more rank files missing")
    wanted = {_join(directory, n) for n in expected}
    for shard in shards:
        if shard.rel not in wanted:
            ckpt.problems.append(f"{shard.rel}: rank outside the checkpoint's world (ZeRO stage {stage}, "
                                 f"dp_world_size {dp_world}, mp_world_size {mp_world})")


def _weights(ckpt: Checkpoint, models: list[_Shard], read: dict[str, TorchArchiveFile],
             tops: dict[int, dict[str, Any]]) -> int:
    """The model's tensors, one model-states file per model-parallel rank: the module's tensors, with ZeRO-3's
    empty placeholders given the full shape from param_shapes. Returns the parameter count."""
    for shard in models:
        if shard.dp:
            continue  # ZeRO-3 ranks > 0 hold the same placeholders and shapes as rank 0
        weights = read[shard.rel]
        for name, shape in _param_shapes(tops.get(shard.mp, {})).items():
            dtype, held = weights.tensors.get(name, ("?", None))
            if held is None or (0 in held and 0 not in shape):  # absent, or an empty placeholder
                weights.tensors[name] = (dtype, shape)
        ckpt.files.append(weights)
    return ckpt.parameters


def _check_partitions(ckpt: Checkpoint, directory: str, shards: list[_Shard], read: dict[str, TorchArchiveFile],
                      tops: dict[int, dict[str, Any]], dp_world: int) -> str:
    """ZeRO's fp32 partitions of each model-parallel rank, summed over its data-parallel ranks (all present), must
    hold at least every trainable parameter (param_shapes); a note for the summary."""
    notes = []
    for mp, top in sorted(tops.items()):
        trainable = sum(math.prod(s) for s in _param_shapes(top).values())
        optim = [read[s.rel] for s in shards if s.kind == "optim" and s.mp == mp]
        held = sum(math.prod(shape) for f in optim for name, (_, shape) in f.tensors.items()
                   if any(f"{p}." in name for p in _PARTITIONS))
        if len(optim) != dp_world or not held or not trainable:
            continue
        if held < trainable:
            ckpt.problems.append(f"{directory}/: mp rank {mp}'s optimizer partitions hold {held:,} fp32 elements, "
                                 f"fewer than its {trainable:,} trainable parameters")
        notes.append(f"{held:,}")
    return f", fp32 partitions hold {' + '.join(notes)} elements" if notes else ""


@register
class DeepSpeedSource(CheckpointSource):
    """DeepSpeed engine checkpoints (`latest` + tag directories)."""

    info = FormatInfo(
        id="deepspeed", kind="checkpoint", title="DeepSpeed checkpoint (latest, global_step*/ ZeRO shards)",
        looks_for=(LATEST, "global_step*/mp_rank_*_model_states.pt", "*_model_states.pt", "*_optim_states.pt"),
        reads="the `latest` file's tag; every *_states.pt archive of a tag directory as torch.save archives (zip "
              "structure, every member's CRC-32, data.pkl walked without unpickling), and the model states' "
              "top-level ds_config, dp_world_size, mp_world_size, param_shapes and global_steps",
        proves="`latest` names an existing tag; one model-states and one ZeRO optimizer shard per rank of the "
               "world the checkpoint records, nothing outside it; every archive intact; the parameter count from "
               "the module's tensors (ZeRO-3: param_shapes), and that the fp32 partitions can hold them",
    )

    def find(self, folder: Folder) -> list[Candidate]:
        """Every tag directory holding DeepSpeed *_states.pt files, and the one each `latest` names (final)."""
        tags: set[str] = set()
        for rel in folder.files:
            parent, _, name = rel.rpartition("/")
            if parent and (_RANKED.fullmatch(name) or (_STATES.fullmatch(name) and _STEP.fullmatch(
                    parent.rpartition("/")[2]))):
                tags.add(parent)
        finals: set[str] = set()
        for rel in folder.files:
            root, _, name = rel.rpartition("/")
            tag = _latest_tag(folder, rel) if name == LATEST else None
            if tag is not None and (_STEP.fullmatch(tag) or any(t.rpartition("/")[0] == root for t in tags)):
                finals.add(_join(root, tag))
        found = []
        for directory in sorted(tags | finals):
            match = _STEP.fullmatch(directory.rpartition("/")[2])
            found.append(Candidate(directory, self.info.id, step=int(match.group(1)) if match else None,
                                   final=directory in finals))
        return found

    def inspect(self, folder: Folder, candidate: Candidate) -> Checkpoint:
        """Structure and integrity of one tag directory."""
        try:
            return inspect_deepspeed(folder, candidate.location, candidate.step)
        except EvidenceUnreadable as exc:  # a listed file that vanished or turned into a FIFO meanwhile
            return Checkpoint(directory=candidate.location, format=self.info.id, problems=[str(exc)])
