"""Evidence formats: one interface (interface.py), one module per format, one registry (registry.py).

Importing this package registers every format, in the order below (metrics sources earlier in it win ties
when choosing the loss series to audit). The modules import no framework (no torch, tensorboard, mlflow,
wandb): each reads its files from their bytes with the standard library."""

from typing import Any

from auditor.evidence.sources import (  # noqa: F401  (importing registers each format)
    csvlog,
    dcp,
    deepspeed,
    hf_model,
    jsonl,
    keras,
    mlflow,
    mlperf,
    notebook,
    orbax,
    printed,
    tensorboard,
    torch_archive,
    trainer_state,
    wandb,
)
from auditor.evidence.sources.registry import CHECKPOINTS, METRICS, formats

__all__ = ["CHECKPOINTS", "METRICS", "formats"]

# Registry order: the loss series to audit is the source with most points, earlier ones winning ties.
METRICS_ORDER = ("metrics_jsonl", "hf_trainer_state", "csv_log", "tensorboard", "mlflow", "wandb", "mlperf",
                 "printed_progress", "notebook")
CHECKPOINTS_ORDER = ("safetensors", "torch_archive", "deepspeed", "dcp", "orbax", "keras")


def _reorder(table: dict[str, Any], order: tuple[str, ...]) -> None:
    assert set(order) == set(table), "every registered format must have a place in its ORDER"
    for format_id in order:
        table[format_id] = table.pop(format_id)


_reorder(METRICS, METRICS_ORDER)
_reorder(CHECKPOINTS, CHECKPOINTS_ORDER)
