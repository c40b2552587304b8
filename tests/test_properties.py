"""Property tests: random bytes into every parser; no exception may escape."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.evidence.claims import parse_summary
from auditor.evidence.digests import parse_sha256sums
from auditor.evidence.envsnap import read_env
from auditor.evidence.logscan import scan_log
from auditor.evidence.metrics import last_progress, read_jsonl, read_log_dicts, read_trainer_state
from auditor.evidence.nvsmi import parse_nvidia_smi, parse_nvml_json, read_gpu_samples
from auditor.evidence.predictions import read_predictions
from auditor.evidence.safetensors import read_safetensors_header, read_shard_index
from auditor.evidence.secrets import scan_lines
from auditor.evidence.templates import template_problem
from auditor.evidence.text import TextDoc, decode_bytes, split_lines

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
blobs = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=500).map(lambda t: t.encode("utf-8")),
    st.lists(st.sampled_from([b"{", b"}", b"'loss': ", b"nan", b"NaN", b"1.5", b"|", b"\r\n", b"\n", b"\xff\xfe",
                              b"\x00", b"step", b'"', b",", b"12/40 [", b"MiB", b"Driver Version: 1"]),
             max_size=60).map(b"".join),
)


def _doc(data: bytes, name: str = "f.txt") -> TextDoc:
    text, encoding = decode_bytes(data)
    return TextDoc(path=name, lines=split_lines(text), encoding=encoding)


@FUZZ
@given(data=blobs)
def test_text_parsers_never_raise(data: bytes) -> None:
    doc = _doc(data)
    parse_summary(doc.lines, "s.md")
    parse_sha256sums(doc.lines)
    read_env(doc)
    scan_log(doc.lines, "log.txt")
    last_progress(doc.lines)
    read_log_dicts(doc.lines, "log.txt", 40)
    parse_nvidia_smi(doc.lines, "smi.txt")
    scan_lines(doc.lines, "x.txt")
    template_problem(_doc(data, "x.json"))


@FUZZ
@given(data=blobs)
def test_file_parsers_never_raise(data: bytes, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    path: Path = tmp_path_factory.mktemp("fuzz") / "blob"
    path.write_bytes(data)
    read_jsonl(path, "m.jsonl")
    read_trainer_state(path, "trainer_state.json")
    read_predictions(path, "p.jsonl")
    read_safetensors_header(path, "m.safetensors")
    read_shard_index(path, "index.json")
    parse_nvml_json(path, "gpu_snapshot.json")
    read_gpu_samples(path, "gpu_samples.jsonl")


@FUZZ
@given(header=st.binary(max_size=300), size=st.integers(min_value=0, max_value=2**64 - 1))
def test_safetensors_hostile_header_lengths(header: bytes, size: int, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    path: Path = tmp_path_factory.mktemp("st") / "m.safetensors"
    path.write_bytes(size.to_bytes(8, "little") + header)
    info = read_safetensors_header(path, "m.safetensors")
    assert info.problems or info.tensors == {} or info.size == path.stat().st_size


@settings(max_examples=400, deadline=None)
@given(value=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e13, max_value=1e13),
       significant=st.sampled_from([4, 6]))
def test_summary_figures_round_trip_through_claims(value: float, significant: int) -> None:
    """A figure `audit summary` writes, read back as a claim, matches the value it came from the way
    claims_consistent compares them (at the coarser of the two displayed precisions)."""
    from auditor.evidence.claims import decimals_of
    from auditor.gates.claims_consistent import matches
    from auditor.render.summary import figure

    text = figure(value, significant)
    claims = parse_summary(("| Metric | Value |", "|---|---|", f"| Throughput | {text} samples/sec |"), "s.md")
    (claim,) = claims.figures
    assert claim.value is not None
    assert matches(claim.value, value, min(claim.decimals, decimals_of(repr(value)))), (value, text)
