"""`audit package` through the real CLI on the committed real run: the archive is byte-for-byte deterministic,
carries SHA256SUMS and the verify report, stores weights and deflates text, and a failing folder is refused
unless --force (which packs the failing verdict inside)."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

from conftest import ROOT, audit

EXAMPLE = ROOT / "submission_runs" / "example_cpu_v1"


def test_same_folder_gives_identical_bytes_and_its_own_proof(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(EXAMPLE, tmp_path / "elsewhere" / "example_cpu_v1"))
    first = audit("package", EXAMPLE, "--output", tmp_path / "a.zip")
    second = audit("package", copy, "-o", tmp_path / "b.zip")  # another path, same folder content
    assert first.code == 0 and second.code == 0, first.stdout + first.stderr
    data = (tmp_path / "a.zip").read_bytes()
    assert data == (tmp_path / "b.zip").read_bytes()
    assert f"sha256 {hashlib.sha256(data).hexdigest()}" in first.stdout
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        files = [n for n in names if n.startswith("example_cpu_v1/")]
        assert files == sorted(files) and "example_cpu_v1/run_manifest.json" in files
        assert {n for n in names if "/" not in n} == {"SHA256SUMS", "audit_report.json"}
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0) and info.external_attr >> 16 == 0o100644
            weight = info.filename.endswith(".safetensors")
            assert info.compress_type == (zipfile.ZIP_STORED if weight else zipfile.ZIP_DEFLATED), info.filename
        sums = archive.read("SHA256SUMS").decode().splitlines()
        assert len(sums) == len(files)
        for line in sums:
            digest, name = line.split("  ", 1)
            assert hashlib.sha256(archive.read(name)).hexdigest() == digest
            assert (EXAMPLE / name.split("/", 1)[1]).read_bytes() == archive.read(name)
        report = json.loads(archive.read("audit_report.json"))
        assert report["runs"][0]["verdict"] == "pass" and report["runs"][0]["run_dir"] == "example_cpu_v1"


def test_exclude_weights_names_what_it_left_out(tmp_path: Path) -> None:
    result = audit("package", EXAMPLE, "-o", tmp_path / "light.zip", "--exclude-weights")
    assert result.code == 0 and "3 weight file(s) left out" in result.stdout
    with zipfile.ZipFile(tmp_path / "light.zip") as archive:
        assert not [n for n in archive.namelist() if n.endswith(".safetensors")]
        listed = [line.split("  ") for line in archive.read("EXCLUDED_WEIGHTS").decode().splitlines()[1:]]
    for digest, name, size in listed:
        path = EXAMPLE / name.split("/", 1)[1]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest and int(size) == path.stat().st_size


def test_failing_folder_refused_unless_forced(tmp_path: Path) -> None:
    folder = Path(shutil.copytree(EXAMPLE, tmp_path / "run"))
    with (folder / "predictions.jsonl").open("a") as handle:
        handle.write('{"id": 99, "prediction": "added after the run"}\n')
    refused = audit("package", folder, "-o", tmp_path / "r.zip")
    assert refused.code == 1 and "not packaged" in refused.stdout and not (tmp_path / "r.zip").exists()
    forced = audit("package", folder, "-o", tmp_path / "f.zip", "--force")
    assert forced.code == 0 and "verdict fail" in forced.stdout
    with zipfile.ZipFile(tmp_path / "f.zip") as archive:
        report = json.loads(archive.read("audit_report.json"))
    assert report["runs"][0]["verdict"] == "fail"
    inside = audit("package", folder, "-o", folder / "x.zip")
    assert inside.code == 2 and inside.stderr.startswith("Error:") and "inside" in inside.stderr
    missing = audit("package", tmp_path / "nope", "-o", tmp_path / "n.zip")
    assert missing.code == 2 and missing.stderr.startswith("Error:")
