"""The one error type that means "cannot audit" (exit 2)."""


class AuditInputError(Exception):
    """Bad arguments or a path that is not a run folder: the CLI prints `Error: <msg>` and exits 2."""
