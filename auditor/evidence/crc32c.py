"""CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial value and final XOR 0xffffffff), the checksum of
TFRecord (TensorBoard event files) and OCDBT (Orbax), which zlib lacks; the standard library only.

`crc32c_bytewise` is the table-driven routine. `crc32c` uses it for a short message and otherwise cuts the
message into chunks whose CRCs are computed together by `crc_lanes`, the column form: the CRCs of many messages
of one length at once, with bytes.translate over each byte column. A CRC is linear, so a message's CRC
(zero initial value) is the XOR of its bytes' contributions, and a byte's contribution depends only on the byte
and its distance from the message's end: `_planes(d)` tabulates it."""

from __future__ import annotations

import sys
from array import array

CHUNK = 1024  # bytes per chunk of a long message; a message under 4 chunks is done byte by byte
_POLY = 0x82F63B78
_LITTLE = sys.byteorder == "little"


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_POLY if crc & 1 else 0)
        table.append(crc)
    return table


TABLE = _table()  # TABLE[b]: the CRC of byte b with a zero initial value (one step of the byte-wise routine)
INVERT = bytes(255 - b for b in range(256))  # a translate table: the initial value 0xffffffff flips 4 bytes
# _PLANES[d][k][b]: byte k of the CRC contribution of byte b lying d bytes before the end of a message (zero
# initial value)
_PLANES: list[tuple[bytes, bytes, bytes, bytes]] = [
    tuple(bytes((t >> (8 * k)) & 0xFF for t in TABLE) for k in range(4))]  # type: ignore[list-item]
_TPLANES = _PLANES[0]


def _planes(distance: int) -> tuple[bytes, bytes, bytes, bytes]:
    """Translate tables: byte k of the contribution of each byte value lying `distance` bytes before the end."""
    while len(_PLANES) <= distance:  # one more zero byte after the message: a table lookup on the low byte
        low, *rest = _PLANES[-1]
        shifted = [low.translate(_TPLANES[k]) for k in range(4)]
        _PLANES.append(tuple(_xor(shifted[k], rest[k]) if k < 3 else shifted[k]  # type: ignore[arg-type]
                             for k in range(4)))
    return _PLANES[distance]


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(len(a), "little")


def _contribution(distance: int, byte: int) -> int:
    planes = _planes(distance)
    return planes[0][byte] | planes[1][byte] << 8 | planes[2][byte] << 16 | planes[3][byte] << 24


def crc32c_bytewise(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of `data`, one table lookup per byte."""
    crc = 0xFFFFFFFF
    table = TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`; a long message is cut into chunks whose CRCs are computed together."""
    if len(data) < 4 * CHUNK:
        return crc32c_bytewise(data)
    # The initial value 0xffffffff is the same as flipping the first 4 bytes; leading zero bytes change nothing
    # then, so the message is padded at its front to whole chunks, whose CRCs combine by shifting.
    width = CHUNK
    flipped = data[:4].translate(INVERT) + data[4:]
    padded = bytes(-len(flipped) % width) + flipped
    count = len(padded) // width
    lanes, _ = crc_lanes([padded[j::width] for j in range(width)], count)
    crcs = array("Q", lanes.to_bytes(8 * count, "little"))
    if not _LITTLE:
        crcs.byteswap()
    shift = [[_contribution(width - 1 - k, b) for b in range(256)] for k in range(4)]
    crc = 0
    for chunk in crcs:  # crc, then `width` zero bytes, then this chunk
        crc = shift[0][crc & 0xFF] ^ shift[1][(crc >> 8) & 0xFF] ^ shift[2][(crc >> 16) & 0xFF] ^ \
            shift[3][crc >> 24] ^ chunk
    return crc ^ 0xFFFFFFFF


def crc_lanes(columns: list[bytes], count: int) -> tuple[int, list[int]]:
    """Zero-initial CRC-32C of `count` messages given as byte columns (columns[j][i]: byte j of message i), as one
    integer whose 8-byte lane i holds message i's CRC; and the columns that are not the same in every message.
    (Translate the first 4 columns by INVERT first for the standard initial value; no final XOR is applied.)"""
    length = len(columns)
    acc = [0, 0, 0, 0]
    const = 0
    varying = []
    for j, column in enumerate(columns):
        distance = length - 1 - j
        if column.count(column[:1]) == count:  # the same byte in every message: one number
            const ^= _contribution(distance, column[0])
            continue
        varying.append(j)
        planes = _planes(distance)
        for k in range(4):
            acc[k] ^= int.from_bytes(column.translate(planes[k]), "little")
    lanes = bytearray(8 * count)
    for k in range(4):
        lanes[k::8] = (acc[k] ^ int.from_bytes(bytes(((const >> (8 * k)) & 0xFF,)) * count, "little")).to_bytes(
            count, "little")
    return int.from_bytes(lanes, "little"), varying
