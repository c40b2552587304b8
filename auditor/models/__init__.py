"""The published shapes of manifests, metrics records, plans, claims and reports.

Plain dataclasses, so that reading a run folder never imports pydantic; field constraints live in
`field(metadata=...)`, which pydantic reads when `audit schema` generates the JSON Schemas.
"""

from auditor.models.claims import Claim, LossRow
from auditor.models.manifest import Artifact, GitInfo, Outcome, RunManifest
from auditor.models.metrics import MetricsRecord
from auditor.models.plan import Plan
from auditor.models.report import EvidenceRef, GateResult, RunReport, ToolInfo, VerifyReport

__all__ = [
    "Artifact",
    "Claim",
    "EvidenceRef",
    "GateResult",
    "GitInfo",
    "LossRow",
    "MetricsRecord",
    "Outcome",
    "Plan",
    "RunManifest",
    "RunReport",
    "ToolInfo",
    "VerifyReport",
]
