"""The one way evidence JSON and YAML are parsed. Hostile input (nested 100,000 deep, 5,000-digit integers,
invalid bytes, a YAML flow bomb) is a JsonProblem with a message a gate can print, never a RecursionError or an
internal error."""

from __future__ import annotations

import json
import re
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


YAML_BYTES = 8 * 1024 * 1024  # a config or a tracker's meta.yaml is kilobytes; PyYAML reads about 1 MB/s
YAML_DEPTH = 64  # flow collections nested deeper than this are refused before parsing (PyYAML recurses)
_FLOW = re.compile(r"[\[\]{}]")


def load_yaml(text: str) -> Any:
    """Parse one YAML document safely (never constructs objects): a JsonProblem (a ValueError, with the line
    where known) for invalid YAML, a document over YAML_BYTES, flow nesting deeper than YAML_DEPTH, or values
    Python cannot hold."""
    import yaml  # only folders with YAML evidence pay for it

    if len(text) > YAML_BYTES:
        raise JsonProblem(f"is larger than the {YAML_BYTES >> 20} MiB limit for a YAML document: not read")
    depth = deepest = 0
    for bracket in _FLOW.finditer(text):  # brackets in quoted strings count too: an over-estimate, never under
        depth = depth + 1 if bracket.group() in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    if deepest > YAML_DEPTH:
        raise JsonProblem(f"nests collections {deepest} levels deep (more than {YAML_DEPTH}): not read")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise JsonProblem(f"is not valid YAML: {getattr(exc, 'problem', None) or exc}",
                          mark.line + 1 if mark is not None else None) from None
    except RecursionError:
        raise JsonProblem("is nested too deeply to read") from None
    except (ValueError, OverflowError, TypeError) as exc:  # an integer of 5,000 digits, a huge float
        raise JsonProblem(f"is not usable YAML: {str(exc)[:120]}") from None
