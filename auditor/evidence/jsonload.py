"""The one way evidence JSON is parsed. Hostile JSON (nested 100,000 deep, 5,000-digit integers, invalid bytes)
is a JsonProblem with a message a gate can print, never a RecursionError or an internal error."""

from __future__ import annotations

import json
from typing import Any


class JsonProblem(ValueError):
    """JSON that cannot be taken as evidence: `msg` says why, `lineno` where (when the parser knows)."""

    def __init__(self, msg: str, lineno: int | None = None) -> None:
        super().__init__(msg if lineno is None else f"{msg} (line {lineno})")
        self.msg = msg
        self.lineno = lineno


def load_json(data: str | bytes | bytearray) -> Any:
    """Parse one JSON document (bytes are decoded as UTF-8/16/32 by the json module). Raises JsonProblem."""
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"is not valid JSON: {exc.msg}", exc.lineno) from None
    except RecursionError:
        raise JsonProblem("is nested too deeply to read (more levels than the parser's recursion limit)") from None
    except UnicodeDecodeError:
        raise JsonProblem("is not valid JSON: its bytes are not UTF-8, UTF-16 or UTF-32 text") from None
    except ValueError as exc:  # an integer with more digits than Python converts (sys.int_info.str_digits_check)
        raise JsonProblem(f"is not usable JSON: {exc}") from None
