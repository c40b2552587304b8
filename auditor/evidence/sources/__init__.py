"""Evidence formats: one interface (interface.py), one module per format, one registry (registry.py).

Importing this package registers every format; the modules import no framework (no torch, tensorboard, mlflow,
wandb): each reads its files from their bytes with the standard library."""

from auditor.evidence.sources.registry import CHECKPOINTS, METRICS, formats

__all__ = ["CHECKPOINTS", "METRICS", "formats"]
