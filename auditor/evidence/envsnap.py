"""Environment snapshots in the shapes people record them: `audit run`'s env_snapshot.json and other JSON (nested
{"software": {...}, "hardware": {...}}, `pip list --format=json`, `conda list --json`), `key: value` text,
`python -m torch.utils.collect_env` output, `pip freeze` / requirements pins, `conda list` tables and
`conda env export` YAML. Files are found by name (env_snapshot.*, env*.json, pip_freeze.txt, requirements*.txt,
conda_list.txt, collect_env*.txt, ...) and, among the text files near the folder's root, by their first bytes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.evidence.jsonload import load_json
from auditor.evidence.opener import read_json_file
from auditor.evidence.text import TextDoc, decode_bytes, split_lines

ENV_NAMES = ("env_snapshot.json", "env_snapshot.txt", "env_info.txt", "collect_env.txt", "torch_version.txt")
_ENV_NAME = re.compile(
    r"(?:env(?:ironment)?(?:[_.-][\w.-]*)?\.(?:json|txt|ya?ml)|collect[_-]?env[\w.-]*\.txt|"
    r"(?:pip[_-]?(?:freeze|list)|requirements)[\w.-]*\.(?:txt|json)|conda[_-]?(?:list|env|environment)[\w.-]*"
    r"\.(?:txt|json|ya?ml)|(?:system|sys)[_-]?info[\w.-]*\.(?:json|txt)|versions?\.(?:txt|json)|"
    r"(?:torch|cuda|python)[_-]?(?:version|env|info|check)[\w.-]*\.txt)", re.I)
_PACKAGE_LIST = re.compile(r"pip|conda|requirements", re.I)
SNIFF_SUFFIXES = (".txt", ".json", ".yaml", ".yml", ".out", "")
SNIFF_LIMIT = 64  # text files near the root whose first bytes are read to recognise a snapshot
_HINT = re.compile(r"env|pip|conda|version|system|freeze|package|info|torch|cuda|python|requirement|depend", re.I)
_VERSION = re.compile(r"\d+(?:\.\d+)+[\w.+-]*|\d+")

# (fact, pattern over one line); the first match wins.
_GPU_NAME = r"(.*(?:NVIDIA|Tesla|GeForce|Quadro|RTX|A100|H100|H200|B200|L40|L4|T4|V100|P100|A10|A40|TPU|AMD|Instinct|" \
            r"Radeon|MI\d{3}|Gaudi).*)"
_FACTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("python", re.compile(r"^\s*(?:Python(?: version)?|python(?:_version)?)\s*[:=]\s*(?:Python\s+)?"
                          r"(\d+\.\d+[\w.+]*)", re.I)),
    ("python", re.compile(r"^\s*Python\s+(\d+\.\d+\.\d+[\w+]*)\s*$")),  # `python --version`
    ("torch", re.compile(r"^\s*(?:PyTorch|torch)(?:\.__version__| version)?\s*[:=]=?\s*(\d+\.\d+[\w.+]*)", re.I)),
    ("transformers", re.compile(r"^\s*transformers(?: version)?\s*[:=]=?\s*(\d+\.\d+[\w.+]*)", re.I)),
    ("jax", re.compile(r"^\s*(?:JAX|jax)(?: version)?\s*[:=]=?\s*(\d+\.\d+[\w.+]*)", re.I)),
    ("tensorflow", re.compile(r"^\s*(?:TensorFlow|tensorflow)(?: version)?\s*[:=]=?\s*(\d+\.\d+[\w.+]*)", re.I)),
    ("keras", re.compile(r"^\s*keras(?: version)?\s*[:=]=?\s*(\d+\.\d+[\w.+]*)", re.I)),
    ("cuda", re.compile(r"^\s*(?:CUDA Version(?: \(PyTorch\))?|CUDA used to build PyTorch|torch\.version\.cuda|"
                        r"CUDA runtime version|CUDA Toolkit(?: version)?|cuda(?:_version)?)\s*[:=]\s*(\d+\.\d+)",
                        re.I)),
    ("cuda", re.compile(r"^.*Cuda compilation tools, release (\d+\.\d+)", re.I)),  # nvcc --version
    ("cuda_available", re.compile(r"^\s*(?:CUDA Available|Is CUDA available|torch\.cuda\.is_available\(\)|"
                                  r"cuda_available)\s*[:=]\s*(True|False|Yes|No)", re.I)),
    ("gpu", re.compile(r"^\s*(?:GPU(?: \d+| name| model)?|Device(?: Name)?|GPU models and configuration|"
                       r"torch\.cuda\.get_device_name\(0\))\s*[:=]\s*(?:GPU \d+:\s*)?" + _GPU_NAME, re.I)),
    ("gpu_count", re.compile(r"^\s*(?:Device Count|GPU count|Number of GPUs|torch\.cuda\.device_count\(\)|"
                             r"cuda_device_count)\s*[:=]\s*(\d+)\s*$", re.I)),
    ("driver", re.compile(r"^\s*(?:Driver Version|Nvidia driver version|driver_version)\s*[:=]\s*([\d.]+)", re.I)),
    ("commit", re.compile(r"^\s*(?:Commit|git commit|commit_sha)\s*[:=]\s*([0-9a-f]{7,40})\b", re.I)),
    ("platform", re.compile(r"^\s*(?:Platform|OS)\s*[:=]\s*(.+)", re.I)),
    ("date", re.compile(r"^\s*(?:Date|Captured(?: at)?|Timestamp)\s*[:=]\s*(\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}"
                        r"(?::\d{2})?)?)", re.I)),
)
# package lists: pip freeze pins (also collect_env's "[pip3] torch==2.3.0"), `name @ url` wheels, conda rows
_PIN = re.compile(r"^\s*(?:\[(?:pip\d?|conda)\]\s+)?(?P<name>[A-Za-z0-9][\w.-]*)(?:\[[\w,.-]+\])?\s*(?:===?|~=)\s*"
                  r"(?P<version>\d[\w.+!-]*)\s*(?:;.*)?$")
_URL_PIN = re.compile(r"^\s*(?P<name>[A-Za-z0-9][\w.-]*)\s+@\s+\S*?[/-](?P<version>\d+\.\d+[\w.+]*?)-"
                      r"(?:cp(?P<py>\d)(?P<pyminor>\d+)|py\d)")
_CONDA_ROW = re.compile(r"^\s*(?:\[conda\]\s+)?(?P<name>[A-Za-z0-9_][\w.-]*)\s+(?P<version>\d+(?:\.\d+)*[\w.+]*)\s+"
                        r"(?P<build>\S+)(?:\s+(?P<channel>\S+))?\s*$")
_CONDA_EXPORT = re.compile(r"^\s*-\s*(?P<name>[A-Za-z0-9_][\w.-]*)\s*==?\s*(?P<version>\d[\w.+]*)"
                           r"(?:=(?P<build>\S+))?\s*$")
_CONDA_HEADER = re.compile(r"^#\s*(?:packages in environment at|Name\s+Version\s+Build)", re.I)
PACKAGE_FACTS = {
    "python": "python", "torch": "torch", "pytorch": "torch", "transformers": "transformers", "jax": "jax",
    "tensorflow": "tensorflow", "tensorflow-gpu": "tensorflow", "tensorflow-cpu": "tensorflow", "keras": "keras",
    "pytorch-cuda": "cuda", "cuda-version": "cuda", "cudatoolkit": "cuda", "cuda-toolkit": "cuda",
    "cuda-runtime": "cuda", "cuda-cudart": "cuda",
}
_DERIVED_PACKAGES = {"jaxlib": "jax", "nvidia-cuda-runtime-cu12": "cuda", "nvidia-cuda-runtime-cu11": "cuda",
                     "nvidia-cuda-runtime": "cuda"}
_CU_TAG = re.compile(r"\+cu(\d{2,3})\b")
_CONDA_CUDA = re.compile(r"cuda(\d+\.\d+)")
_CONDA_PY = re.compile(r"^py(\d)(\d+)|^py(\d\.\d+)")
_COLLECT_GPU = re.compile(r"^\s*GPU (\d+):\s*\S")
VERSION_FACTS = ("python", "torch", "transformers", "jax", "tensorflow", "keras", "cuda", "driver")
# JSON: a key (after normalisation) → the fact it holds
_JSON_KEYS: dict[str, str] = {
    **dict.fromkeys(("python", "python_version", "py_version", "interpreter_version"), "python"),
    **dict.fromkeys(("torch", "pytorch", "torch_version", "pytorch_version"), "torch"),
    **dict.fromkeys(("transformers", "transformers_version"), "transformers"),
    **dict.fromkeys(("jax", "jax_version"), "jax"),
    **dict.fromkeys(("tensorflow", "tensorflow_version", "tf_version"), "tensorflow"),
    **dict.fromkeys(("keras", "keras_version"), "keras"),
    **dict.fromkeys(("cuda", "cuda_version", "torch_cuda", "torch_cuda_version", "cuda_runtime",
                     "cuda_runtime_version", "cuda_toolkit", "cuda_toolkit_version"), "cuda"),
    **dict.fromkeys(("cuda_available", "is_cuda_available", "cuda_is_available"), "cuda_available"),
    **dict.fromkeys(("driver", "driver_version", "nvidia_driver", "nvidia_driver_version", "gpu_driver"), "driver"),
    **dict.fromkeys(("gpu", "gpu_name", "gpu_model", "gpu_type", "device_name", "accelerator", "accelerator_name",
                     "accelerator_type", "gpus", "cuda_devices", "accelerators"), "gpu"),
    **dict.fromkeys(("gpu_count", "cuda_device_count", "num_gpus", "n_gpus", "gpu_device_count"), "gpu_count"),
    **dict.fromkeys(("platform", "os", "operating_system"), "platform"),
    **dict.fromkeys(("commit", "commit_sha", "git_commit", "git_sha"), "commit"),
    **dict.fromkeys(("date", "captured_at"), "date"),
    "jax_backend": "jax_backend", "logging_nan_inf_filter": "logging_nan_inf_filter",
}
_GPU_PARENTS = ("gpu", "gpus", "device", "devices", "cuda_devices", "accelerator", "accelerators", "hardware")
_NOT_A_DEVICE = {"", "cpu", "none", "null", "n/a", "na", "false", "0", "unknown", "no"}


@dataclass
class EnvFacts:
    """Facts read from an environment snapshot, each with the line it came from."""

    path: str
    facts: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        """One fact, or None."""
        return self.facts.get(key)

    def set(self, fact: str, value: str, line: int | None = None) -> None:
        """Record a fact unless one was recorded already (the first wins)."""
        if fact in self.facts:
            return
        self.facts[fact] = value
        if line:
            self.lines[fact] = line


def dotted(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys: {"a": {"b": 1}} → {"a.b": 1} (other values are leaves)."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(dotted(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


# -- finding the files ---------------------------------------------------------------------------------------
def env_files(files: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """The folder's environment snapshots, in the order their facts count: the known names, then any file named
    like a snapshot (env*.json, pip_freeze.txt, requirements*.txt, conda_list.txt, collect_env*.txt ...) at most one
    folder down, then text files near the root whose first bytes are a snapshot (at most SNIFF_LIMIT are read)."""
    present = set(files)
    found = [n for n in ENV_NAMES if n in present]
    named = [f for f in shallow(files) if f not in found and _ENV_NAME.fullmatch(Path(f).name)]
    # snapshots before package lists, whose facts (a wheel's cp311 tag) are the vaguer
    found += sorted(named, key=lambda f: (bool(_PACKAGE_LIST.match(Path(f).name)), f.count("/"), f))
    taken = set(found)
    candidates = [f for f in shallow(files) if f not in taken and Path(f).suffix.lower() in SNIFF_SUFFIXES
                  and "log" not in Path(f).name.lower() and f != "run_manifest.json"]
    candidates.sort(key=lambda f: (not _HINT.search(Path(f).name), f.count("/"), f))
    for rel in candidates[:SNIFF_LIMIT]:
        if is_snapshot(rel, head(rel)):
            found.append(rel)
    return found


def shallow(files: Iterable[str], depth: int = 1) -> list[str]:
    """Files at most `depth` folders below the root."""
    return [f for f in files if f.count("/") <= depth]


def is_snapshot(rel: str, head: bytes) -> bool:
    """Whether a file's first bytes are an environment snapshot: collect_env output, a conda list, a pip freeze
    with a framework pinned, or JSON / `key: value` text naming both the Python and a framework version."""
    text, _ = decode_bytes(head)
    if not text.strip() or "\x00" in text[:4096]:  # empty, or binary
        return False
    lines = split_lines(text)[:400]
    if any(_CONDA_HEADER.match(line) for line in lines[:5]):
        return True
    if any(line.startswith(("PyTorch version:", "Collecting environment information")) for line in lines[:5]):
        return True
    facts = EnvFacts(path=rel)
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = load_json(text)
        except ValueError:
            return False  # a cut head is no document: only files named as snapshots are read whole
        _from_json(data, facts, ())
    else:
        _from_lines(lines, facts)
        pins = [line for line in lines if _PIN.match(line) or _URL_PIN.match(line)]
        body = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if len(pins) >= 3 and len(pins) >= 0.8 * len(body) and any(k in facts.facts for k in FRAMEWORK_FACTS):
            return True
    return "python" in facts.facts and any(k in facts.facts for k in FRAMEWORK_FACTS)


FRAMEWORK_FACTS = ("torch", "jax", "transformers", "tensorflow", "keras")


# -- reading one ---------------------------------------------------------------------------------------------
def read_env(doc: TextDoc) -> EnvFacts:
    """Facts from a snapshot: JSON when it parses as an object or a list, else its lines (key: value text,
    collect_env output, pip freeze, conda list, conda env export)."""
    facts = EnvFacts(path=doc.path)
    text = doc.text.strip()
    if text.startswith(("{", "[")):
        try:
            data = load_json(text)
        except ValueError:
            data = None
        if isinstance(data, (dict, list)):
            _from_json(data, facts, doc.lines)
            return facts
    _from_lines(doc.lines, facts)
    return facts


def _from_lines(lines: Sequence[str], facts: EnvFacts) -> None:
    derived = EnvFacts(path=facts.path)
    conda = any(_CONDA_HEADER.match(line) for line in lines[:5])
    export = any(line.strip() == "dependencies:" for line in lines[:200])
    gpus: set[str] = set()
    for number, line in enumerate(lines, start=1):
        for fact, pattern in _FACTS:
            if fact in facts.facts:
                continue
            match = pattern.match(line)
            if match:
                facts.set(fact, match.group(1).strip(), number)
        gpu = _COLLECT_GPU.match(line)
        if gpu:
            gpus.add(gpu.group(1))
        _package_line(line, number, facts, derived, conda, export)
    if gpus:
        facts.set("gpu_count", str(len(gpus)))
    _derive(facts, derived)


def _package_line(line: str, number: int | None, facts: EnvFacts, derived: EnvFacts, conda: bool, export: bool) -> None:
    """A package row of pip freeze, conda list or conda env export: a known package's version is a fact."""
    name = version = build = None
    py_tag: str | None = None
    pin = _PIN.match(line)
    url = _URL_PIN.match(line) if pin is None else None
    row = _CONDA_ROW.match(line) if (conda or line.lstrip().startswith("[conda]")) and pin is None else None
    exported = _CONDA_EXPORT.match(line) if export and pin is None and row is None else None
    if pin:
        name, version = pin["name"], pin["version"]
    elif url:
        name, version = url["name"], url["version"]
        py_tag = f"{url['py']}.{url['pyminor']}" if url["py"] else None
    elif row:
        name, version, build = row["name"], row["version"], row["build"]
    elif exported:
        name, version, build = exported["name"], exported["version"], exported["build"]
    if name is None or version is None:
        return
    key = name.lower().replace("_", "-")
    fact = PACKAGE_FACTS.get(key)
    if fact is not None:
        facts.set(fact, version if fact != "cuda" else _major_minor(version), number)
    elif key in _DERIVED_PACKAGES:
        value = version if _DERIVED_PACKAGES[key] != "cuda" else _major_minor(version)
        derived.set(_DERIVED_PACKAGES[key], value, number)
    if py_tag:
        derived.set("python", py_tag, number)
    if build:
        cuda = _CONDA_CUDA.search(build)
        if cuda and key in ("pytorch", "torch", "jaxlib", "tensorflow"):
            derived.set("cuda", cuda.group(1), number)
        py = _CONDA_PY.match(build)
        if py:
            derived.set("python", py.group(3) or f"{py.group(1)}.{py.group(2)}", number)


def _known_package(name: str) -> bool:
    key = name.lower().replace("_", "-")
    return key in PACKAGE_FACTS or key in _DERIVED_PACKAGES


def _major_minor(version: str) -> str:
    parts = version.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else version


def _derive(facts: EnvFacts, derived: EnvFacts) -> None:
    """Facts a build tag implies (torch 2.3.0+cu121 was built with CUDA 12.1), where none was recorded."""
    torch = facts.facts.get("torch")
    if torch:
        tag = _CU_TAG.search(torch)
        if tag:
            digits = tag.group(1)
            derived.set("cuda", f"{digits[:-1]}.{digits[-1]}", facts.lines.get("torch"))
    for fact, value in derived.facts.items():
        facts.set(fact, value, derived.lines.get(fact))


def _norm(key: Any) -> str:
    return str(key).strip().lower().replace("-", "_").replace(" ", "_").strip("_")


def _from_json(data: Any, facts: EnvFacts, lines: Sequence[str]) -> None:
    """Facts from JSON of any nesting: a key names a fact ("torch", "cuda_version", "gpu_name"), or its parent does
    ({"python": {"version": ...}}, {"gpus": [{"name": ...}]}); a package list (["torch==2.3.0"], [{"name":
    "torch", "version": "2.3.0"}]) is read as pins."""
    derived = EnvFacts(path=facts.path)
    _walk(data, (), facts, derived, lines, 0)
    _derive(facts, derived)


def _walk(data: Any, path: tuple[str, ...], facts: EnvFacts, derived: EnvFacts, lines: Sequence[str],
          depth: int) -> None:
    if depth > 32:
        return
    if isinstance(data, dict):
        name, version = data.get("name"), data.get("version")
        if isinstance(name, str) and isinstance(version, (str, int, float)) and not isinstance(version, bool) \
                and _known_package(name):
            _package_line(f"{name}=={version}", _line_of(lines, name, str(version)), facts, derived, False, False)
        for key, value in data.items():
            _walk(value, (*path, _norm(key)), facts, derived, lines, depth + 1)
        return
    if isinstance(data, list):
        key = path[-1] if path else ""
        if _JSON_KEYS.get(key) == "gpu" or key in _GPU_PARENTS:
            named = [d for d in data if isinstance(d, (str, dict))]
            if named and "gpu_count" not in facts.facts:
                facts.set("gpu_count", str(len(named)))
        for item in data:
            if isinstance(item, str):
                pin = _PIN.match(item) or _URL_PIN.match(item)
                if pin:
                    if _known_package(pin["name"]):
                        _package_line(item, _line_of(lines, item), facts, derived, False, False)
                elif _JSON_KEYS.get(key) == "gpu" or key in _GPU_PARENTS:
                    _leaf(("gpu",), item, facts, lines)
            else:
                _walk(item, path, facts, derived, lines, depth + 1)
        return
    _leaf(path, data, facts, lines)


def _leaf(path: tuple[str, ...], value: Any, facts: EnvFacts, lines: Sequence[str]) -> None:
    if value is None or value == "" or not path:
        return
    leaf = path[-1].replace("__", "").strip("_")
    parent = path[-2] if len(path) > 1 else ""
    fact = _JSON_KEYS.get(leaf)
    if leaf in ("version", "ver", "release") and parent:
        fact = _JSON_KEYS.get(parent)
    elif leaf in ("name", "model", "product_name", "type") and parent in _GPU_PARENTS:
        fact = "gpu"
    elif leaf in ("count", "device_count") and parent in _GPU_PARENTS:
        fact = "gpu_count"
    elif leaf == "available" and parent == "cuda":
        fact = "cuda_available"
    elif leaf == "commit" or (leaf == "sha" and parent == "git"):
        fact = "commit"
    if fact is None:
        return
    if isinstance(value, bool):
        if fact == "cuda":  # {"cuda": true}: availability, not a version
            fact = "cuda_available"
        if fact not in ("cuda_available", "logging_nan_inf_filter"):
            return
        facts.set(fact, str(value), _line_of(lines, path[-1]))
        return
    if not isinstance(value, (str, int, float)):
        return
    text = str(value).strip()
    if fact in VERSION_FACTS:
        match = _VERSION.search(text)
        if match is None or (fact != "driver" and "." not in match.group(0) and fact != "cuda"):
            return
        text = match.group(0) if fact in ("python", "cuda") else text
        if fact == "cuda":
            text = _major_minor(text)
    elif (fact == "gpu" and text.lower() in _NOT_A_DEVICE) or (fact == "gpu_count" and not text.isdigit()):
        return
    facts.set(fact, text, _line_of(lines, path[-1], str(value)))


def _line_of(lines: Sequence[str], key: str, value: str | None = None) -> int | None:
    """The first line of a JSON document that holds `key` (quoted) and `value`: a fact's file:line."""
    quoted = f'"{key}"'
    for number, line in enumerate(lines, start=1):
        if (quoted in line or key in line) and (value is None or value in line):
            return number
    return None


def snapshot_json(folder: Path) -> dict[str, Any]:
    """env_snapshot.json of a run folder as written by `audit run` ({} when absent, unreadable or not an object)."""
    try:
        data = read_json_file(folder / "env_snapshot.json", "env_snapshot.json")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
