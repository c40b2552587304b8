"""The protobuf wire format, read without protobuf: varints and the fields of a message as spans. TensorBoard
events and W&B records are protobuf messages; their readers decode the few fields they need through this."""

from __future__ import annotations

from collections.abc import Iterator


class WireError(ValueError):
    """Bytes that are not a protobuf message: what is wrong, in words."""


def varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """The base-128 varint at buf[pos:end] and the position after it. Raises WireError."""
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def spans(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, a, b) of each field of the message buf[pos:end], in order: for a varint its
    value and start, else the span buf[a:b] of its bytes. Raises WireError (groups and field 0 included)."""
    while pos < end:
        key, pos = varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            start = pos
            value, pos = varint(buf, pos, end)
            yield number, 0, value, start
            continue
        if wire == 2:
            size, pos = varint(buf, pos, end)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:
            raise WireError(f"wire type {wire}")
        if pos + size > end:
            raise WireError("field runs past its message")
        yield number, wire, pos, pos + size
        pos += size
