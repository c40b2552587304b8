"""auditor.evidence.crc32c: check values, and the chunked fast path and the column form against the byte-wise
routine."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.evidence.crc32c import CHUNK, INVERT, crc32c, crc32c_bytewise, crc_lanes

FAST = 4 * CHUNK  # from this length on crc32c takes the chunked path

# (data, CRC-32C): the usual check value, RFC 3720 B.4, and long inputs (past FAST) whose values were computed
# with tensorboard's pure-Python crc32c and a bit-at-a-time reference
CHECK = [
    (b"123456789", 0xE3069283),
    (b"", 0x00000000),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (bytes(4096), 0x98F94189),
    (bytes(5000), 0xE68075D0),
    (b"\xff" * 5000, 0xE21726A8),
    (bytes(range(256)) * 20, 0x0CBCA9C8),
    (b"123456789" * 1000, 0xD601351D),
    (b"123456789" * 1000 + b"x", 0x069CD51A),
]


@pytest.mark.parametrize(("data", "want"), CHECK, ids=lambda v: str(len(v)) if isinstance(v, bytes) else None)
def test_check_values(data: bytes, want: int) -> None:
    assert crc32c(data) == want
    assert crc32c_bytewise(data) == want
    assert crc32c_bytewise(memoryview(data)) == want


def test_long_check_values_take_the_fast_path() -> None:
    assert sum(len(data) >= FAST for data, _ in CHECK) >= 5


def _message(seed: int, length: int) -> bytes:
    return random.Random(seed).randbytes(length)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.one_of(st.integers(0, 3 * CHUNK), st.integers(FAST - 8, FAST + 8),
                                        st.integers(FAST, 8 * CHUNK + 7)))
def test_fast_path_equals_bytewise(seed: int, length: int) -> None:
    data = _message(seed, length)
    assert crc32c(data) == crc32c_bytewise(data)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(4, 40), st.integers(1, 12), st.booleans())
def test_column_form_equals_bytewise(seed: int, length: int, count: int, shared_column: bool) -> None:
    rng = random.Random(seed)
    messages = [rng.randbytes(length) for _ in range(count)]
    if shared_column:  # a column with the same byte in every message takes crc_lanes' constant branch
        messages = [m[:1] + b"\x07" + m[2:] for m in messages]
    columns = [bytes(m[j] for m in messages) for j in range(length)]
    columns = [c.translate(INVERT) for c in columns[:4]] + columns[4:]  # the initial value 0xffffffff
    lanes, varying = crc_lanes(columns, count)
    got = [((lanes >> (64 * i)) & 0xFFFFFFFF) ^ 0xFFFFFFFF for i in range(count)]
    assert got == [crc32c_bytewise(m) for m in messages]
    assert varying == [j for j in range(length) if len({m[j] for m in messages}) > 1]
