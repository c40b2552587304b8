"""Capture: writing a run folder (environment, git, NVML sampler, process launch, atomic manifest)."""
