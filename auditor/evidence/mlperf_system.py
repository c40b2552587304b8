"""The hardware of an MLPerf submission run: a run folder laid out as `<submitter>/results/<system>/<benchmark>/`
has its system description at `<submitter>/systems/<system>.json`. That path is computed from the folder's last
three components only (`results`, the system, the benchmark), and it is the one file read from outside the run
folder: opened with open_evidence inside `<submitter>/systems/` (contained, regular, not a link), bounded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from auditor.evidence.jsonload import load_json
from auditor.evidence.metrics import as_int
from auditor.evidence.opener import EvidenceUnreadable, open_evidence

MAX_BYTES = 1 << 20
HARDWARE_KEYS = ("accelerator_model_name", "accelerators_per_node", "number_of_nodes")
OTHER_KEYS = ("system_name", "host_processor_model_name", "accelerator_memory_capacity", "framework",
              "operating_system")


@dataclass(frozen=True)
class SystemDescription:
    """The system description of a submission run: the file (relative to the run folder), the facts it gives
    (HARDWARE_KEYS, OTHER_KEYS and `accelerators`, nodes × accelerators per node) and why it could not be used."""

    path: str
    facts: dict[str, str] = field(default_factory=dict)
    problem: str | None = None


def system_path(root: Path) -> tuple[Path, str] | None:
    """(systems directory, file name) for a run folder `<submitter>/results/<system>/<benchmark>`, else None."""
    parts = Path(root).absolute().parts
    if len(parts) < 5 or parts[-3] != "results":
        return None
    system = parts[-2]
    return Path(*parts[:-3]) / "systems", f"{system}.json"


def system_description(root: Path) -> SystemDescription | None:
    """The hardware from `<submitter>/systems/<system>.json` beside the run folder's results tree; None when the
    folder is not laid out as `<submitter>/results/<system>/<benchmark>`."""
    where = system_path(root)
    if where is None:
        return None
    systems, name = where
    path = f"../../../systems/{name}"
    try:
        with open_evidence(systems, name) as handle:
            data = handle.read(MAX_BYTES + 1)
    except (EvidenceUnreadable, OSError) as exc:
        return SystemDescription(path, problem=str(exc).replace(name, path, 1))
    if len(data) > MAX_BYTES:
        return SystemDescription(path, problem=f"{path}: larger than {MAX_BYTES} bytes")
    try:
        doc = load_json(data)
    except (ValueError, RecursionError):
        return SystemDescription(path, problem=f"{path}: not valid JSON")
    if not isinstance(doc, dict):
        return SystemDescription(path, problem=f"{path}: not a JSON object")
    facts = {k: str(doc[k]).strip() for k in (*HARDWARE_KEYS, *OTHER_KEYS)
             if isinstance(doc.get(k), (str, int, float)) and str(doc[k]).strip()}
    nodes, per_node = as_int(doc.get("number_of_nodes")), as_int(doc.get("accelerators_per_node"))
    if nodes is not None and per_node is not None:
        facts["accelerators"] = str(nodes * per_node)
    stack = doc.get("other_software_stack")
    for entry in stack if isinstance(stack, list) else [stack]:
        if isinstance(entry, dict) and isinstance(entry.get("cuda_version"), (str, int, float)):
            facts["cuda_version"] = str(entry["cuda_version"]).strip()
            break
    missing = [k for k in HARDWARE_KEYS if k not in facts]
    return SystemDescription(path, facts, f"{path}: no {', '.join(missing)}" if missing else None)
