"""Runner adapters (pytorch, transformers, jax, command): build the command, preflight, post-collect."""
