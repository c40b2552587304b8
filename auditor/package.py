"""`audit package`: a run folder as a deterministic zip that carries its own proof.

Layout: `<run_id>/...` (every file of the folder), `SHA256SUMS` (sha256sum format over those entries, so
`unzip x.zip && sha256sum -c SHA256SUMS` checks them) and `audit_report.json` (the verify report of the folder as
packaged). Entries are sorted, with a fixed timestamp (1980-01-01) and fixed modes; weights are stored, everything
else deflated; so the same folder packaged twice gives the same bytes. With --exclude-weights the weight files
stay out, and `EXCLUDED_WEIGHTS` lists each with its sha256 and size, so the archive still names them."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from auditor.evidence.digests import CHUNK, sha256_file

EPOCH = (1980, 1, 1, 0, 0, 0)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz", ".msgpack", ".h5", ".gguf")
SKIPPED = (".audit.lock",)


@dataclass
class Packaged:
    """What `package_folder` wrote."""

    path: Path
    sha256: str
    files: int
    excluded: int


def folder_files(folder: Path) -> list[Path]:
    """Every regular file of the folder as verify walks it (sorted by relative path, symlinks left out), less the
    run lock."""
    from auditor.evidence.run import RunEvidence

    return [folder / rel for rel in RunEvidence(folder).files if rel.rsplit("/", 1)[-1] not in SKIPPED]


def _info(name: str, stored: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    info.create_system = 3  # unix, so the mode below is read
    info.external_attr = 0o100644 << 16
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    return info


def _add_bytes(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    archive.writestr(_info(name, stored=False), data, compresslevel=6)


def package_folder(folder: Path, output: Path, report: dict[str, object], exclude_weights: bool = False) -> Packaged:
    """Write the archive (through a temporary file, renamed at the end). Packaging reads each file once: its
    sha256 for SHA256SUMS is taken from the same chunks that are compressed."""
    run_id = folder.resolve().name
    sums, excluded = [], []
    tmp = output.with_name(f".{output.name}.tmp")
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
        for path in folder_files(folder):
            rel = path.relative_to(folder).as_posix()
            weight = path.suffix.lower() in WEIGHT_SUFFIXES
            digest = hashlib.sha256()
            if weight and exclude_weights:
                excluded.append(f"{sha256_file(path)}  {run_id}/{rel}  {path.stat().st_size}\n")
                continue
            info = _info(f"{run_id}/{rel}", stored=weight)
            with path.open("rb") as handle, archive.open(info, "w", force_zip64=True) as entry:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
                    entry.write(chunk)
            sums.append(f"{digest.hexdigest()}  {run_id}/{rel}\n")
        _add_bytes(archive, "SHA256SUMS", "".join(sums).encode())
        if excluded:
            _add_bytes(archive, "EXCLUDED_WEIGHTS", ("# sha256  path  size (left out by --exclude-weights)\n"
                                                     + "".join(excluded)).encode())
        _add_bytes(archive, "audit_report.json", (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    tmp.replace(output)
    return Packaged(path=output, sha256=sha256_file(output), files=len(sums), excluded=len(excluded))
