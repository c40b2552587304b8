"""auditor: the evidence and reproducibility auditor for ML training runs."""

__version__ = "0.1.0"
