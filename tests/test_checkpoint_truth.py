"""Verdicts on checkpoints and evaluations that hold under attack: checkpoint_saved agrees with the real safetensors
loader about every header, a checkpoint agrees with its own config.json, a "final" model that is an early
checkpoint is not final, repeated predictions are one example, and no model behind a link out of the folder is
vouched for. Real safetensors bytes in temporary folders, through the real gates."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from conftest import verify_json

from auditor.verify import VerifyOptions, execute

CONFIG = {"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
          "num_key_value_heads": 1, "intermediate_size": 16, "vocab_size": 10}


def gate(folder: Path, gate_id: str, *extra: str) -> Any:
    """One gate's result for a folder, in process (the CLI's own `execute`)."""
    report = execute(VerifyOptions(run_dirs=[folder], select=[gate_id, *extra]))
    return next(g for g in report.runs[0].gates if g.id == gate_id)


def safetensors_bytes(header: bytes | dict[str, Any], data: int | bytes = 0, pad: bool = False) -> bytes:
    """A safetensors file: length, header (padded with spaces to 8 bytes as the writer does, when asked), data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + (data if isinstance(data, bytes) else b"\x01" * data)


def model_folder(root: Path, files: dict[str, bytes], config: dict[str, Any] | None = None,
                 where: str = "training_output/final_model") -> Path:
    """A run folder whose model directory holds config.json and the given files."""
    model = root / where
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps(config or CONFIG))
    for name, data in files.items():
        (model / name).write_bytes(data)
    return root


# -- 1. checkpoint_saved agrees with the real loader, in both directions ---------------------------------------------

def t(dtype: str = "F32", shape: Any = (2,), offsets: Any = (0, 8), **extra: Any) -> dict[str, Any]:
    """One tensor entry."""
    return {"dtype": dtype, "shape": list(shape) if isinstance(shape, tuple) else shape,
            "data_offsets": list(offsets) if isinstance(offsets, tuple) else offsets, **extra}


A = json.dumps(t())


def twice(first: dict[str, Any]) -> bytes:
    """A header naming tensor 'a' twice: `first`, then a valid F32[2] entry."""
    return f'{{"a":{json.dumps(first)},"a":{A}}}'.encode()


DEEP = "[" * 125 + "]" * 125
HEADERS: dict[str, tuple[bytes | dict[str, Any], int]] = {
    "one tensor": ({"a": t()}, 8),
    "two tensors, metadata": ({"__metadata__": {"format": "pt"}, "a": t(), "b": t("BF16", (2, 2), (8, 16))}, 16),
    "tensors listed out of offset order": ({"b": t("I64", (1,), (8, 16)), "a": t()}, 16),
    "scalar": ({"a": t(shape=(), offsets=(0, 4))}, 4),
    "empty tensor": ({"a": t(shape=(0, 3), offsets=(0, 0))}, 0),
    "empty tensor at the end": ({"a": t(), "b": t(shape=(0,), offsets=(8, 8))}, 8),
    "no tensors": ({}, 0),
    "metadata only": ({"__metadata__": {"format": "pt"}}, 0),
    "metadata null": ({"__metadata__": None, "a": t()}, 8),
    "unknown tensor field": ({"a": t(note={"x": [1, 2]})}, 8),
    "tensor as [dtype, shape, offsets]": (b'{"a":["F32",[2],[0,8]]}', 8),
    "dtype as a one-key object": (b'{"a":{"dtype":{"F32":null},"shape":[2],"data_offsets":[0,8]}}', 8),
    "leading and trailing whitespace": (b' \r\n{"a":' + A.encode() + b'}\t\n  ', 8),
    "repeated tensor name (last wins)": (twice(t("F32", (4,), (0, 16))), 8),
    "repeated tensor name, overwritten entry overflows": (twice(t(shape=(2**63, 2**63), offsets=(0, 8))), 8),
    "repeated metadata key": (b'{"__metadata__":{"k":"1","k":"2"},"a":' + A.encode() + b"}", 8),
    "unicode tensor name, surrogate pair": (b'{"\\ud83d\\ude00\xc3\xa9":' + A.encode() + b"}", 8),
    "zero dimension before a huge one": ({"a": t(shape=(0, 2**63, 2**63), offsets=(0, 0))}, 0),
    "30-digit integer in an unknown field": ({"a": t(x=10**29)}, 8),
    "nesting at the loader's limit": (A[:-1].encode() + b',"x":' + DEEP.encode() + b"}}", 8),
    # rejected by the loader
    "boolean dimension": ({"a": t(shape=[True, 2], offsets=(0, 8))}, 8),
    "boolean offset": ({"a": t(offsets=[False, 8])}, 8),
    "negative dimension": ({"a": t(shape=[-2])}, 8),
    "float dimension": ({"a": t(shape=[2.0])}, 8),
    "-0 dimension": (b'{"a":{"dtype":"F32","shape":[-0,2],"data_offsets":[0,0]}}', 0),
    "dimension beyond 64 bits": ({"a": t(shape=[2**64, 0], offsets=(0, 0))}, 0),
    "shape not a list": ({"a": t(shape="2")}, 8),
    "shape null": ({"a": t(shape=None)}, 8),
    "metadata value not a string": ({"__metadata__": {"step": 10}, "a": t()}, 8),
    "metadata value null": ({"__metadata__": {"step": None}, "a": t()}, 8),
    "metadata a list": ({"__metadata__": [], "a": t()}, 8),
    "metadata a string": ({"__metadata__": "pt", "a": t()}, 8),
    "metadata twice": (b'{"__metadata__":{},"__metadata__":{},"a":' + A.encode() + b"}", 8),
    "metadata key repeated with a bad value": (b'{"__metadata__":{"k":1,"k":"2"},"a":' + A.encode() + b"}", 8),
    "unknown dtype": ({"a": t("F128")}, 8),
    "lower-case dtype": ({"a": t("f32")}, 8),
    "dtype null": ({"a": t(None)}, 8),  # type: ignore[arg-type]
    "dtype object with a value": (b'{"a":{"dtype":{"F32":1},"shape":[2],"data_offsets":[0,8]}}', 8),
    "repeated name, overwritten entry malformed": (twice(t("ZZZ")), 8),
    "field twice in one entry": (b'{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 8),
    "missing data_offsets": ({"a": {"dtype": "F32", "shape": [2]}}, 8),
    "tensor entry null": ({"a": None}, 0),
    "tensor entry a number": ({"a": 1}, 0),
    "tensor as a 2-element array": (b'{"a":["F32",[2]]}', 8),
    "tensor as a 4-element array": (b'{"a":["F32",[2],[0,8],1]}', 8),
    "three offsets": ({"a": t(offsets=[0, 8, 8])}, 8),
    "one offset": ({"a": t(offsets=[8])}, 8),
    "offsets an object": ({"a": t(offsets={"begin": 0, "end": 8})}, 8),
    "offsets reversed": ({"a": t(shape=(0,), offsets=(8, 0))}, 8),
    "offsets overlap": ({"a": t(), "b": t(shape=(1,), offsets=(4, 8))}, 8),
    "same span twice": ({"a": t(), "b": t()}, 8),
    "gap between tensors": ({"a": t(shape=(1,), offsets=(0, 4)), "b": t(shape=(1,), offsets=(8, 12))}, 12),
    "empty tensor inside another": ({"a": t(), "b": t(shape=(0,), offsets=(4, 4))}, 8),
    "data does not start at 0": ({"a": t(offsets=(4, 12))}, 12),
    "trailing data bytes": ({"a": t()}, 12),
    "data ends beyond the file": ({"a": t()}, 4),
    "offsets beyond 64 bits": ({"a": t(shape=(0,), offsets=(2**64, 2**64))}, 0),
    "span shorter than shape x dtype": ({"a": t("F64", (2,), (0, 8))}, 8),
    "span longer than shape x dtype": ({"a": t("F16", (2,), (0, 8))}, 8),
    "element count overflows": ({"a": t(shape=(2**63, 2**63, 0), offsets=(0, 0))}, 0),
    "byte count overflows": ({"a": t("F64", (2**62,), (0, 0))}, 0),
    "header an array": (b"[]", 0),
    "header a string": (b'"a"', 0),
    "header null": (b"null", 0),
    "header empty": (b"", 0),
    "header not UTF-8": (b'{"\xff":' + A.encode() + b"}", 8),
    "header with a BOM": (b"\xef\xbb\xbf{}", 0),
    "header padded with NUL bytes": (b'{"a":' + A.encode() + b"}\x00\x00\x00", 8),
    "header padded with form feeds": (b'{"a":' + A.encode() + b"}\x0c", 8),
    "trailing comma": (b'{"a":' + A.encode() + b",}", 8),
    "NaN in an unknown field": (b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":NaN}}', 8),
    "number beyond f64 in an unknown field": (b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1e400}}', 8),
    "400-digit integer in an unknown field": ({"a": t(x=10**399)}, 8),
    "lone surrogate in metadata": (b'{"__metadata__":{"k":"\\ud800"},"a":' + A.encode() + b"}", 8),
    "lone low surrogate in a name": (b'{"\\udc00":' + A.encode() + b"}", 8),
    "control character in a string": (b'{"__metadata__":{"k":"a\tb"},"a":' + A.encode() + b"}", 8),
    "nesting beyond the loader's limit": (A[:-1].encode() + b',"x":[' + DEEP.encode() + b"]}}", 8),
}
NEWER_DTYPES: dict[str, tuple[bytes | dict[str, Any], int]] = {  # dtypes safetensors added after 0.4
    "F4, whole bytes": ({"a": t("F4", (4,), (0, 2))}, 2),
    "F4, half a byte left over": ({"a": t("F4", (3,), (0, 2))}, 2),
    "F6_E2M3, whole bytes": ({"a": t("F6_E2M3", (4,), (0, 3))}, 3),
    "F8_E8M0": ({"a": t("F8_E8M0", (3,), (0, 3))}, 3),
    "C64": ({"a": t("C64", (1,), (0, 8))}, 8),
}


def loader_verdict(path: Path) -> str | None:
    """None when the real safetensors loader opens the file (header parsed and validated), else its error."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "np") as handle:
            list(handle.keys())
    except Exception as exc:  # the loader raises SafetensorError, and others for odd input
        return f"{type(exc).__name__}: {exc}"
    return None


def loader_knows(dtype: str, tmp_path: Path) -> bool:
    """Whether the installed loader has a dtype (newer dtypes are unknown variants to older versions)."""
    path = tmp_path / f"probe-{dtype}.safetensors"
    path.write_bytes(safetensors_bytes({"a": t(dtype, (0,), (0, 0))}))
    return "unknown variant" not in (loader_verdict(path) or "")


@pytest.mark.parametrize("case", [*HEADERS, *NEWER_DTYPES])
def test_checkpoint_saved_agrees_with_the_real_loader(case: str, tmp_path: Path) -> None:
    pytest.importorskip("safetensors", reason="the real loader (the dev extra) is the oracle")
    pytest.importorskip("numpy", reason="the loader's numpy framework opens the file")
    header, data = HEADERS.get(case) or NEWER_DTYPES[case]
    if case in NEWER_DTYPES:
        dtype = next(iter(header.values()))["dtype"] if isinstance(header, dict) else ""
        if not loader_knows(dtype, tmp_path):
            pytest.skip(f"the installed safetensors predates {dtype}")
    folder = model_folder(tmp_path / "run", {"model.safetensors": safetensors_bytes(header, data)})
    weights = folder / "training_output" / "final_model" / "model.safetensors"
    refused = loader_verdict(weights)
    result = gate(folder, "checkpoint_saved")
    if refused is None:
        assert result.status == "pass", f"the loader opens it, checkpoint_saved says: {result.message}"
    else:
        assert result.status == "fail", f"the loader refuses it ({refused}), checkpoint_saved passed"
        assert "training_output/final_model/model.safetensors" in result.message
        assert result.evidence[0].path == "training_output/final_model/model.safetensors"


def test_header_length_beyond_the_loaders_limit(tmp_path: Path) -> None:
    """A length over the loader's 100,000,000-byte limit is refused before anything is read (no 100 MB file)."""
    data = struct.pack("<Q", 100_000_001) + b"{}"
    folder = model_folder(tmp_path / "run", {"model.safetensors": data})
    result = gate(folder, "checkpoint_saved")
    assert result.status == "fail" and "limit" in result.message


def test_header_length_beyond_the_file(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "run", {"model.safetensors": struct.pack("<Q", 4096) + b"{}"})
    result = gate(folder, "checkpoint_saved")
    assert result.status == "fail" and "exceeds the file" in result.message


@pytest.fixture(scope="module")
def loader() -> Any:
    """The real safetensors loader, or a skip when the dev extra is not installed."""
    return pytest.importorskip("safetensors")


def test_random_headers_agree_with_the_real_loader(loader: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Headers built from the values that split parsers (bools, -0, huge and negative numbers, floats, nulls,
    repeated keys, surrogates): the header reader accepts exactly what the loader accepts."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from auditor.evidence.safetensors import read_safetensors_header

    number = st.sampled_from(["0", "2", "8", "-0", "-2", "2.0", "2e0", "true", "false", "null", '"2"',
                              "18446744073709551615", "18446744073709551616", "1e400", "[]", "{}"])
    dims = st.lists(number, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]")
    dtype = st.sampled_from(['"F32"', '"U8"', '"f32"', '"F4"', '{"F32":null}', '{"F32":1}', "null", '"X"'])
    meta = st.sampled_from(["", '"__metadata__":null,', '"__metadata__":{"k":"v"},', '"__metadata__":{"k":1},',
                            '"__metadata__":{"k":"\\ud800"},', '"__metadata__":[],'])
    entry = st.one_of(
        st.tuples(dtype, dims, st.sampled_from(["[0,8]", "[0,4]", "[4,8]", "[0,0]", "[8]", "[0,8,8]", "null"]),
                  st.sampled_from(["", ',"x":NaN', ',"x":1e400', ',"x":{"y":1,"y":2}', ',"dtype":"F32"']))
        .map(lambda p: f'{{"dtype":{p[0]},"shape":{p[1]},"data_offsets":{p[2]}{p[3]}}}'),
        st.sampled_from(['["F32",[2],[0,8]]', '["F32",[2]]', "null", "1"]),
    )
    names = st.lists(st.sampled_from(['"a"', '"b"', '"a"', '"\\ud83d\\ude00"']), min_size=0, max_size=3)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(meta=meta, names=names, entries=st.lists(entry, min_size=3, max_size=3),
           data=st.sampled_from([0, 4, 8, 12]), pad=st.sampled_from(["", "   ", "\n", "\x00"]))
    def agree(meta: str, names: list[str], entries: list[str], data: int, pad: str) -> None:
        body = ",".join(f"{n}:{e}" for n, e in zip(names, entries, strict=False))
        raw = ("{" + meta + body + "}").replace(",}", "}") + pad
        path = tmp_path_factory.mktemp("st") / "m.safetensors"
        path.write_bytes(safetensors_bytes(raw.encode(), data))
        ours = read_safetensors_header(path, "m.safetensors").problems
        theirs = loader_verdict(path)
        assert (not ours) == (theirs is None), (raw, data, ours, theirs)

    agree()


# -- 2. a checkpoint agrees with its own config.json (and the plan) -------------------------------------------------

def llama_tensors(hidden: int = 8, layers: int = 2, vocab: int = 10, heads: int = 2, kv: int = 1,
                  inter: int = 16, skip_layer: int | None = None) -> dict[str, Any]:
    """A safetensors header (F32, contiguous offsets) for a Llama-shaped model."""
    head_dim = hidden // heads
    shapes: dict[str, list[int]] = {"model.embed_tokens.weight": [vocab, hidden]}
    for i in range(layers):
        if i == skip_layer:
            continue
        p = f"model.layers.{i}."
        shapes |= {p + "self_attn.q_proj.weight": [heads * head_dim, hidden],
                   p + "self_attn.k_proj.weight": [kv * head_dim, hidden],
                   p + "self_attn.v_proj.weight": [kv * head_dim, hidden],
                   p + "self_attn.o_proj.weight": [hidden, heads * head_dim],
                   p + "mlp.gate_proj.weight": [inter, hidden], p + "mlp.up_proj.weight": [inter, hidden],
                   p + "mlp.down_proj.weight": [hidden, inter], p + "input_layernorm.weight": [hidden]}
    shapes |= {"model.norm.weight": [hidden], "lm_head.weight": [vocab, hidden]}
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = 4 * int(__import__("math").prod(shape))
        header[name] = t("F32", tuple(shape), (offset, offset + size))
        offset += size
    return {"header": header, "data": offset}


def llama_folder(root: Path, config: dict[str, Any] | None = None, **shape: Any) -> Path:
    """A run folder whose final model is a Llama-shaped safetensors file with config.json."""
    spec = llama_tensors(**shape)
    return model_folder(root, {"model.safetensors": safetensors_bytes(spec["header"], spec["data"], pad=True)},
                        config)


def test_consistent_checkpoint_passes(tmp_path: Path) -> None:
    result = gate(llama_folder(tmp_path / "run"), "model_matches_config")
    assert result.status == "pass", result.message
    assert gate(tmp_path / "run", "checkpoint_saved").status == "pass"


@pytest.mark.parametrize(("shape", "config_change", "names"), [
    ({"layers": 1}, {}, ("model.layers.N", "num_hidden_layers 2")),
    ({"layers": 2}, {"num_hidden_layers": 32}, ("model.layers.N", "num_hidden_layers 32")),
    ({"layers": 3, "skip_layer": 1}, {}, ("model.layers.N", "indices 0, 2")),
    ({"hidden": 16, "heads": 2}, {}, ("model.embed_tokens.weight", "hidden_size 8")),
    ({"vocab": 12}, {}, ("model.embed_tokens.weight", "vocab_size 10")),
    ({}, {"head_dim": 8}, ("self_attn.q_proj.weight", "num_attention_heads 2, head_dim 8")),
    ({}, {"num_key_value_heads": 2}, ("self_attn.k_proj.weight", "num_key_value_heads 2")),
    ({"inter": 24}, {}, ("mlp.gate_proj.weight", "intermediate_size 16")),
])
def test_checkpoint_contradicting_its_config_fails(shape: dict[str, Any], config_change: dict[str, Any],
                                                    names: tuple[str, str], tmp_path: Path) -> None:
    folder = llama_folder(tmp_path / "run", {**CONFIG, **config_change}, **shape)
    result = gate(folder, "model_matches_config")
    assert result.status == "fail", result.message
    for name in names:
        assert name in result.message, result.message
    assert "training_output/final_model/config.json" in result.message
    assert "training_output/final_model/model.safetensors" in {e.path for e in result.evidence}


def test_tensors_checked_against_the_plan_where_config_json_is_silent(tmp_path: Path) -> None:
    config = {k: v for k, v in CONFIG.items() if k != "num_hidden_layers"}
    folder = llama_folder(tmp_path / "run", config, layers=2)
    (folder / "run_config.yaml").write_text("model:\n  name: tiny-llama\n  num_hidden_layers: 6\n")
    result = gate(folder, "model_matches_config")
    assert result.status == "fail" and "run_config.yaml declares num_hidden_layers 6" in result.message


def test_real_trained_checkpoint_matches_its_config(trained_run: Path) -> None:
    """The real GPT-2 checkpoint of the tiny run: wte, wpe, c_fc and the layer count agree with config.json."""
    result = gate(trained_run, "model_matches_config")
    assert result.status == "pass", result.message


def test_real_checkpoint_with_a_lying_config_fails(run_dir: Path) -> None:
    config = run_dir / "training_output" / "final_model" / "config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "n_layer": 12}))
    (run_dir / "tiny_config.yaml").write_text((run_dir / "tiny_config.yaml").read_text().replace("n_layer: 2",
                                                                                                "n_layer: 12"))
    result = verify_json(run_dir)
    gate_result = result.gate("model_matches_config")
    assert result.code == 1 and gate_result["status"] == "fail"
    assert "tensors transformer.h.N hold 2 layer(s) (indices 0–1), but training_output/final_model/config.json " \
        "declares num_hidden_layers 12" in gate_result["message"], gate_result["message"]


# -- 3. the final model is not an early checkpoint --------------------------------------------------------------------

def test_final_model_identical_to_an_early_checkpoint_fails(run_dir: Path) -> None:
    out = run_dir / "training_output"
    assert verify_json(run_dir).status("checkpoint_saved") == "pass"
    shutil.copyfile(out / "checkpoints" / "checkpoint-20" / "model.safetensors",
                    out / "final_model" / "model.safetensors")
    result = verify_json(run_dir, "--ignore", "evidence_complete")
    gate_result = result.gate("checkpoint_saved")
    assert result.code == 1 and gate_result["status"] == "fail", gate_result
    assert "checkpoints/checkpoint-20/model.safetensors" in gate_result["message"]
    assert "step-20" in gate_result["message"] and "step 40" in gate_result["message"]
    assert [e["path"] for e in gate_result["evidence"]] == ["training_output/final_model/model.safetensors",
                                                             "training_output/checkpoints/checkpoint-20/model.safetensors"]


def test_early_checkpoint_under_a_rewritten_header_fails(run_dir: Path) -> None:
    """Same tensor data, different bytes (the header's metadata changed, so the sha256 differs): still step 20."""
    out = run_dir / "training_output"
    data = (out / "checkpoints" / "checkpoint-20" / "model.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    header["__metadata__"] = {"format": "pt", "note": "final"}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    (out / "final_model" / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + length:])
    gate_result = gate(run_dir, "checkpoint_saved")
    assert gate_result.status == "fail" and "same tensor data" in gate_result.message


def test_best_checkpoint_as_final_model_passes_when_the_trainer_recorded_it(run_dir: Path) -> None:
    """load_best_model_at_end: the final model is the best checkpoint by design, and trainer_state.json says so."""
    out = run_dir / "training_output"
    shutil.copyfile(out / "checkpoints" / "checkpoint-20" / "model.safetensors",
                    out / "final_model" / "model.safetensors")
    state_path = out / "checkpoints" / "checkpoint-40" / "trainer_state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "best_model_checkpoint": "out/checkpoints/checkpoint-20"}))
    result = gate(run_dir, "checkpoint_saved")
    assert result.status == "pass" and "the best checkpoint" in result.message, result.message


def test_final_model_equal_to_the_last_checkpoint_passes(run_dir: Path) -> None:
    out = run_dir / "training_output"
    shutil.copyfile(out / "checkpoints" / "checkpoint-40" / "model.safetensors",
                    out / "final_model" / "model.safetensors")
    assert gate(run_dir, "checkpoint_saved").status == "pass"


def test_quick_verify_reads_no_tensor_data_for_the_comparison(run_dir: Path) -> None:
    out = run_dir / "training_output"
    shutil.copyfile(out / "checkpoints" / "checkpoint-20" / "model.safetensors",
                    out / "final_model" / "model.safetensors")
    result = verify_json(run_dir, "--quick")
    assert result.status("checkpoint_saved") == "pass"
    assert "--quick" in result.gate("checkpoint_saved")["message"]


# -- 4. evaluation counts distinct examples ---------------------------------------------------------------------------

def test_repeated_prediction_is_one_example(run_dir: Path) -> None:
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    (run_dir / "predictions.jsonl").write_text((lines[0] + "\n") * len(lines))  # 8 lines, as planned, 1 example
    result = verify_json(run_dir)
    gate_result = result.gate("evaluation_ran")
    assert result.code == 1 and gate_result["status"] == "fail"
    assert "8 predictions, 1 distinct example(s) (by id), but 8 expected" in gate_result["message"]
    assert gate_result["evidence"][0] == {"path": "predictions.jsonl", "line": 2, "note": None}


def test_same_prompt_under_fresh_lines_without_ids(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions.jsonl").write_text(
        "".join(json.dumps({"prompt": "What is 2+2?", "prediction": f"4 ({i})"}) + "\n" for i in range(100)))
    result = gate(run, "evaluation_ran")
    assert result.status == "warn" and "100 predictions, 1 distinct example(s) (by prompt)" in result.message
    (run / "eval_config.yaml").write_text("eval:\n  num_examples: 100\n")
    result = gate(run, "evaluation_ran")
    assert result.status == "fail" and "but 100 expected (eval_config.yaml" in result.message


def test_several_samples_per_example_count_once(tmp_path: Path) -> None:
    """pass@k-style files: k predictions per example match a plan of N examples."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions.jsonl").write_text("".join(
        json.dumps({"meta": {"eval_id": f"q{i}"}, "prompt": "same template", "prediction": f"s{k}"}) + "\n"
        for i in range(5) for k in range(3)))
    (run / "eval_config.yaml").write_text("eval:\n  num_examples: 5\n")
    result = gate(run, "evaluation_ran")
    assert result.status == "pass", result.message
    assert "15 predictions, 5 distinct example(s) (by meta.eval_id)" in result.message


# -- 5. no model behind a link out of the folder ----------------------------------------------------------------------

def test_final_model_folder_linked_out(run_dir: Path, tmp_path: Path) -> None:
    final = run_dir / "training_output" / "final_model"
    outside = Path(shutil.move(str(final), tmp_path / "elsewhere_model"))
    final.symlink_to(outside, target_is_directory=True)
    gate_result = verify_json(run_dir).gate("checkpoint_saved")
    assert gate_result["status"] == "fail", gate_result
    assert "training_output/final_model is a symbolic link out of the run folder" in gate_result["message"]
    assert gate_result["evidence"][0]["path"] == "training_output/final_model"


def test_weights_file_linked_out(run_dir: Path, tmp_path: Path) -> None:
    weights = run_dir / "training_output" / "final_model" / "model.safetensors"
    outside = tmp_path / "real.safetensors"
    shutil.move(str(weights), outside)
    weights.symlink_to(outside)
    gate_result = gate(run_dir, "checkpoint_saved")
    assert gate_result.status == "fail"
    assert "training_output/final_model/model.safetensors is a symbolic link out" in gate_result.message


def test_weights_file_linked_inside_the_folder(run_dir: Path) -> None:
    weights = run_dir / "training_output" / "final_model" / "model.safetensors"
    weights.unlink()
    weights.symlink_to(Path("..") / "checkpoints" / "checkpoint-40" / "model.safetensors")
    gate_result = gate(run_dir, "checkpoint_saved")
    assert gate_result.status == "fail" and "is a symbolic link" in gate_result.message
    assert "regular files only" in gate_result.message


def test_index_shards_linked_out(sharded_trained_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(sharded_trained_run, tmp_path / "run"))
    final = run / "training_output" / "final_model"
    shard = sorted(json.loads((final / "model.safetensors.index.json").read_text())["weight_map"].values())[-1]
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(str(final / shard), outside / shard)
    (final / shard).symlink_to(outside / shard)
    gate_result = gate(run, "checkpoint_saved")
    assert gate_result.status == "fail" and f"training_output/final_model/{shard} is a symbolic link out" \
        in gate_result.message


def test_last_checkpoint_linked_out_while_final_model_is_real(run_dir: Path, tmp_path: Path) -> None:
    last = run_dir / "training_output" / "checkpoints" / "checkpoint-40"
    outside = Path(shutil.move(str(last), tmp_path / "ckpt40"))
    last.symlink_to(outside, target_is_directory=True)
    gate_result = gate(run_dir, "checkpoint_saved")
    assert gate_result.status == "fail" and "checkpoint-40 is a symbolic link out" in gate_result.message
