"""Zstandard decompression (RFC 8878) in pure Python, for the small metadata frames of checkpoint formats: OCDBT
manifests and B+tree nodes (Orbax), where the array names, dtypes and shapes live. No dictionaries; the optional
frame checksum is skipped (the OCDBT CRC-32C around each node covers it). Speed is about 1 MB/s: callers bound what
they decompress with `limit`. Also `frame_extent`: where a frame ends and how many bytes it declares, from its
block headers alone, without decompressing (a truncated array chunk is seen from that)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

MAGIC = 0xFD2FB528
MAX_BLOCK = 128 * 1024


class ZstdError(ValueError):
    """The bytes are not a well-formed Zstandard frame (or need a dictionary); the message says where."""


# RFC 8878 3.1.1.3.2.2: predefined distributions (accuracy logs 6, 5, 6); -1 is a "less than 1" probability
_LL_DEFAULT = (4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
               -1, -1, -1, -1)
_OF_DEFAULT = (1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1)
_ML_DEFAULT = (1, 4, 3, 2, 2, 2, 2, 2, 2) + (1,) * 37 + (-1,) * 7
# literal-length and match-length codes: (baseline, extra bits)
_LL_CODES = [(i, 0) for i in range(16)] + [
    (16, 1), (18, 1), (20, 1), (22, 1), (24, 2), (28, 2), (32, 3), (40, 3), (48, 4), (64, 6), (128, 7),
    (256, 8), (512, 9), (1024, 10), (2048, 11), (4096, 12), (8192, 13), (16384, 14), (32768, 15), (65536, 16)]
_ML_CODES = [(i + 3, 0) for i in range(32)] + [
    (35, 1), (37, 1), (39, 1), (41, 1), (43, 2), (47, 2), (51, 3), (59, 3), (67, 4), (83, 4), (99, 5), (131, 7),
    (259, 8), (515, 9), (1027, 10), (2051, 11), (4099, 12), (8195, 13), (16387, 14), (32771, 15), (65539, 16)]


class _Forward:
    """Bits read least-significant first from the start (FSE table descriptions)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.bit = data, 0

    def read(self, n: int) -> int:
        start, end = self.bit >> 3, (self.bit + n + 7) >> 3
        if end > len(self.data):
            raise ZstdError("FSE table description runs past its block")
        value = (int.from_bytes(self.data[start:end], "little") >> (self.bit & 7)) & ((1 << n) - 1)
        self.bit += n
        return value


class _Backward:
    """Bits read from the end towards the start, after the final byte's marker bit (FSE and Huffman streams).
    `pos` counts the bits left; it goes negative when a decoder reads past the start, which yields zeros."""

    def __init__(self, data: bytes) -> None:
        if not data or data[-1] == 0:
            raise ZstdError("bitstream has no end marker")
        self.data = data
        self.pos = len(data) * 8 - 9 + data[-1].bit_length()

    def read(self, n: int) -> int:
        if n == 0:
            return 0
        self.pos -= n
        low = max(self.pos, 0)
        top = self.pos + n
        if top <= 0:
            return 0
        value = int.from_bytes(self.data[low >> 3:(top + 7) >> 3], "little") >> (low & 7)
        return (value & ((1 << (top - low)) - 1)) << (low - self.pos)


@dataclass
class _Fse:
    """An FSE decoding table: per state the symbol, the bits to read and the baseline of the next state."""

    log: int
    symbol: list[int]
    bits: list[int]
    base: list[int]


def _fse_table(counts: tuple[int, ...] | list[int], log: int) -> _Fse:
    size = 1 << log
    symbol = [0] * size
    high = size - 1
    for s, c in enumerate(counts):
        if c == -1:
            symbol[high] = s
            high -= 1
    step, mask, position = (size >> 1) + (size >> 3) + 3, size - 1, 0
    for s, c in enumerate(counts):
        for _ in range(max(c, 0)):
            symbol[position] = s
            position = (position + step) & mask
            while position > high:
                position = (position + step) & mask
    if position != 0:
        raise ZstdError("FSE probabilities do not fill the table")
    following = [1 if c == -1 else max(c, 0) for c in counts]
    bits, base = [0] * size, [0] * size
    for state in range(size):
        s = symbol[state]
        n = following[s]
        following[s] += 1
        bits[state] = log - (n.bit_length() - 1)
        base[state] = (n << bits[state]) - size
    return _Fse(log, symbol, bits, base)


def _read_fse(data: bytes, max_log: int, max_symbol: int) -> tuple[_Fse, int]:
    """An FSE table description (RFC 8878 4.1.1) and the bytes it took."""
    bits = _Forward(data)
    log = bits.read(4) + 5
    if log > max_log:
        raise ZstdError(f"FSE accuracy log {log} exceeds {max_log}")
    remaining, threshold, width = (1 << log) + 1, 1 << log, log + 1
    counts: list[int] = []
    while remaining > 1:
        if len(counts) > max_symbol:
            raise ZstdError("FSE table has too many symbols")
        biggest = 2 * threshold - 1 - remaining
        low = bits.read(width - 1)
        if low < biggest:
            value = low
        else:
            value = low | (bits.read(1) << (width - 1))
            if value >= threshold:
                value -= biggest
        count = value - 1
        remaining -= abs(count)
        counts.append(count)
        if count == 0:  # zero probability: 2-bit repeat flags of further zeros follow
            while True:
                repeat = bits.read(2)
                counts.extend([0] * repeat)
                if repeat != 3:
                    break
        while remaining < threshold and threshold > 1:
            width -= 1
            threshold >>= 1
    if remaining != 1 or len(counts) > max_symbol + 1:
        raise ZstdError("FSE probabilities do not sum to the table size")
    return _fse_table(counts, log), (bits.bit + 7) >> 3


_PREDEFINED = {"ll": _fse_table(_LL_DEFAULT, 6), "of": _fse_table(_OF_DEFAULT, 5), "ml": _fse_table(_ML_DEFAULT, 6)}
_LIMITS = {"ll": (9, 35), "of": (8, 31), "ml": (9, 52)}  # max accuracy log, max symbol


@dataclass
class _Huffman:
    """A Huffman decoding table indexed by the next `bits` bits: the symbol and its code length."""

    bits: int
    symbol: list[int]
    length: list[int]


def _huffman(weights: list[int]) -> _Huffman:
    total = sum(1 << (w - 1) for w in weights if w)
    if total == 0:
        raise ZstdError("Huffman weights are all zero")
    bits = total.bit_length()
    left = (1 << bits) - total
    if left & (left - 1) or bits > 11:
        raise ZstdError("Huffman weights do not form a prefix code")
    weights = [*weights, left.bit_length()]  # the last symbol's weight is implied
    symbol, length = [0] * (1 << bits), [0] * (1 << bits)
    position = 0
    for weight in range(1, bits + 1):
        for s, w in enumerate(weights):
            if w == weight:
                span = 1 << (w - 1)
                symbol[position:position + span] = [s] * span
                length[position:position + span] = [bits + 1 - w] * span
                position += span
    return _Huffman(bits, symbol, length)


def _read_huffman(data: bytes) -> tuple[_Huffman, int]:
    """A Huffman tree description (RFC 8878 4.2.1) and the bytes it took."""
    if not data:
        raise ZstdError("missing Huffman tree description")
    header = data[0]
    if header >= 128:  # weights stored directly, 4 bits each
        count = header - 127
        raw = data[1:1 + (count + 1) // 2]
        if len(raw) < (count + 1) // 2:
            raise ZstdError("Huffman weights run past the block")
        weights = [(raw[i // 2] >> (0 if i % 2 else 4)) & 15 for i in range(count)]
        return _huffman(weights), 1 + len(raw)
    table, used = _read_fse(data[1:1 + header], 6, 15)
    stream = _Backward(data[1 + used:1 + header])
    weights = []
    one, two = stream.read(table.log), stream.read(table.log)
    while len(weights) < 255:  # two interleaved states share one table (RFC 8878 4.2.1.2)
        weights.append(table.symbol[one])
        one = table.base[one] + stream.read(table.bits[one])
        if stream.pos < 0:
            weights.append(table.symbol[two])
            break
        weights.append(table.symbol[two])
        two = table.base[two] + stream.read(table.bits[two])
        if stream.pos < 0:
            weights.append(table.symbol[one])
            break
    return _huffman(weights), 1 + header


def _huffman_stream(table: _Huffman, data: bytes, count: int) -> bytes:
    stream = _Backward(data)
    mask = (1 << table.bits) - 1
    state = stream.read(table.bits)
    out = bytearray(count)
    symbol, length = table.symbol, table.length
    for i in range(count):
        out[i] = symbol[state]
        n = length[state]
        state = ((state << n) | stream.read(n)) & mask
    if stream.pos != -table.bits:
        raise ZstdError("Huffman stream length does not match its symbols")
    return bytes(out)


@dataclass
class _Frame:
    """What a frame's blocks share: the previous Huffman and FSE tables and the repeat offsets."""

    start: int
    huffman: _Huffman | None = None
    tables: dict[str, _Fse] = field(default_factory=dict)
    reps: list[int] = field(default_factory=lambda: [1, 4, 8])


def _literals(block: bytes, frame: _Frame) -> tuple[bytes, int]:
    kind, form = block[0] & 3, (block[0] >> 2) & 3
    if kind < 2:  # raw or RLE
        if form in (0, 2):
            size, at = block[0] >> 3, 1
        elif form == 1:
            size, at = (block[0] >> 4) + (block[1] << 4), 2
        else:
            size, at = (block[0] >> 4) + (block[1] << 4) + (block[2] << 12), 3
        if kind == 0:
            if at + size > len(block):
                raise ZstdError("raw literals run past the block")
            return block[at:at + size], at + size
        if at >= len(block):
            raise ZstdError("RLE literals run past the block")
        return bytes([block[at]]) * size, at + 1
    header_bytes, field_bits = {0: (3, 10), 1: (3, 10), 2: (4, 14), 3: (5, 18)}[form]
    if header_bytes > len(block):
        raise ZstdError("literals header runs past the block")
    header = int.from_bytes(block[:header_bytes], "little") >> 4
    size, compressed = header & ((1 << field_bits) - 1), header >> field_bits
    data = block[header_bytes:header_bytes + compressed]
    if len(data) < compressed:
        raise ZstdError("compressed literals run past the block")
    at = 0
    if kind == 2:
        frame.huffman, at = _read_huffman(data)
    if frame.huffman is None:
        raise ZstdError("treeless literals with no previous Huffman table")
    if form == 0:
        out = _huffman_stream(frame.huffman, data[at:], size)
    else:
        if at + 6 > len(data):
            raise ZstdError("literals jump table runs past the block")
        sizes = [int.from_bytes(data[at + 2 * i:at + 2 * i + 2], "little") for i in range(3)]
        sizes.append(len(data) - at - 6 - sum(sizes))
        quarter = (size + 3) // 4
        counts = [quarter, quarter, quarter, size - 3 * quarter]
        if sizes[3] < 0 or counts[3] < 0:
            raise ZstdError("literals jump table exceeds the streams")
        out, cursor = b"", at + 6
        for n, count in zip(sizes, counts, strict=True):
            out += _huffman_stream(frame.huffman, data[cursor:cursor + n], count)
            cursor += n
    return out, header_bytes + compressed


def _sequence_table(name: str, mode: int, data: bytes, frame: _Frame) -> int:
    max_log, max_symbol = _LIMITS[name]
    if mode == 0:
        frame.tables[name] = _PREDEFINED[name]
        return 0
    if mode == 1:
        if not data or data[0] > max_symbol:
            raise ZstdError(f"bad RLE {name} symbol")
        frame.tables[name] = _Fse(0, [data[0]], [0], [0])
        return 1
    if mode == 2:
        frame.tables[name], used = _read_fse(data, max_log, max_symbol)
        return used
    if name not in frame.tables:
        raise ZstdError(f"repeat {name} table with no previous table")
    return 0


def _block(block: bytes, frame: _Frame, out: bytearray, limit: int) -> None:
    literals, at = _literals(block, frame)
    if at >= len(block):
        raise ZstdError("block ends before its sequences section")
    count = block[at]
    if count < 128:
        at += 1
    elif count < 255:
        count, at = ((count - 128) << 8) + block[at + 1], at + 2
    else:
        count, at = block[at + 1] + (block[at + 2] << 8) + 0x7F00, at + 3
    if count == 0:
        if len(out) + len(literals) > limit:
            raise ZstdError(f"decompressed data exceeds {limit} bytes")
        out += literals
        return
    if at >= len(block):
        raise ZstdError("block ends before its compression modes")
    modes = block[at]
    at += 1
    for name, shift in (("ll", 6), ("of", 4), ("ml", 2)):
        at += _sequence_table(name, (modes >> shift) & 3, block[at:], frame)
    stream = _Backward(block[at:])
    ll_t, of_t, ml_t = frame.tables["ll"], frame.tables["of"], frame.tables["ml"]
    ll, of, ml = stream.read(ll_t.log), stream.read(of_t.log), stream.read(ml_t.log)
    reps, cursor = frame.reps, 0
    for i in range(count):
        of_code, ll_code, ml_code = of_t.symbol[of], ll_t.symbol[ll], ml_t.symbol[ml]
        value = (1 << of_code) + stream.read(of_code)
        base, extra = _ML_CODES[ml_code]
        match = base + stream.read(extra)
        base, extra = _LL_CODES[ll_code]
        length = base + stream.read(extra)
        if value > 3:
            offset = value - 3
            reps[:] = [offset, reps[0], reps[1]]
        else:
            index = value - 1 + (length == 0)
            if index:
                offset = reps[index] if index < 3 else reps[0] - 1
                reps[:] = [offset, reps[0], reps[1] if index > 1 else reps[2]]
            else:
                offset = reps[0]
        if i + 1 < count:  # state updates: literal length, match length, offset
            ll = ll_t.base[ll] + stream.read(ll_t.bits[ll])
            ml = ml_t.base[ml] + stream.read(ml_t.bits[ml])
            of = of_t.base[of] + stream.read(of_t.bits[of])
        if cursor + length > len(literals):
            raise ZstdError("sequence takes more literals than the block holds")
        out += literals[cursor:cursor + length]
        cursor += length
        if offset <= 0 or offset > len(out) - frame.start:
            raise ZstdError(f"match offset {offset} reaches before the frame")
        if len(out) + match > limit:
            raise ZstdError(f"decompressed data exceeds {limit} bytes")
        start = len(out) - offset
        if offset >= match:
            out += out[start:start + match]
        else:  # overlapping copy: the match repeats its last `offset` bytes
            chunk = out[start:]
            out += (chunk * (match // offset + 1))[:match]
    if stream.pos != 0:
        raise ZstdError("sequence bitstream length does not match its sequences")
    if len(out) + len(literals) - cursor > limit:
        raise ZstdError(f"decompressed data exceeds {limit} bytes")
    out += literals[cursor:]


@dataclass(frozen=True)
class FrameExtent:
    """Where a frame ends (bytes from its start) and the content size its header declares (None if it does not)."""

    end: int
    content_size: int | None


def _header(read: Callable[[int, int], bytes], pos: int) -> tuple[int, int | None, bool]:
    """Parse a frame header at `pos` (after the magic): where the blocks start, the declared size, checksum flag."""
    head = read(pos, 14)
    if not head:
        raise ZstdError("frame header missing")
    descriptor = head[0]
    if descriptor & 0x08:
        raise ZstdError("reserved bit set in frame header")
    single = bool(descriptor & 0x20)
    dict_bytes = (0, 1, 2, 4)[descriptor & 3]
    size_flag = descriptor >> 6
    size_bytes = (1 if single else 0, 2, 4, 8)[size_flag]
    at = 1 + (0 if single else 1)
    if len(head) < at + dict_bytes + size_bytes:
        raise ZstdError("frame header truncated")
    if dict_bytes and int.from_bytes(head[at:at + dict_bytes], "little"):
        raise ZstdError("frame needs a dictionary")
    at += dict_bytes
    declared = int.from_bytes(head[at:at + size_bytes], "little") if size_bytes else None
    if declared is not None and size_bytes == 2:
        declared += 256
    return pos + at + size_bytes, declared, bool(descriptor & 0x04)


def frame_extent(read: Callable[[int, int], bytes], size: int) -> FrameExtent:
    """Walk one frame's block headers through `read(offset, n)` over `size` bytes: its end and declared size."""
    if int.from_bytes(read(0, 4), "little") != MAGIC:
        raise ZstdError("not a Zstandard frame (bad magic)")
    pos, declared, checksum = _header(read, 4)
    while True:
        raw = read(pos, 3)
        if len(raw) < 3:
            raise ZstdError(f"block header at byte {pos} is past the end ({size} bytes): truncated")
        header = int.from_bytes(raw, "little")
        kind, length = (header >> 1) & 3, header >> 3
        if kind == 3:
            raise ZstdError(f"reserved block type at byte {pos}")
        pos += 3 + (1 if kind == 1 else length)
        if pos > size:
            raise ZstdError(f"block at byte {pos} runs past the end ({size} bytes): truncated")
        if header & 1:
            break
    pos += 4 if checksum else 0
    if pos > size:
        raise ZstdError(f"frame checksum past the end ({size} bytes): truncated")
    return FrameExtent(pos, declared)


def decompress(data: bytes, limit: int) -> bytes:
    """Every frame of `data` decompressed (skippable frames skipped); ZstdError if malformed or over `limit`."""
    out = bytearray()
    pos = 0

    def read(offset: int, n: int) -> bytes:
        return data[offset:offset + n]

    while pos < len(data):
        magic = int.from_bytes(data[pos:pos + 4], "little")
        if 0x184D2A50 <= magic <= 0x184D2A5F:
            pos += 8 + int.from_bytes(data[pos + 4:pos + 8], "little")
            continue
        if magic != MAGIC:
            raise ZstdError(f"not a Zstandard frame at byte {pos}")
        at, declared, checksum = _header(read, pos + 4)
        frame = _Frame(start=len(out))
        while True:
            if at + 3 > len(data):
                raise ZstdError("block header past the end: truncated")
            header = int.from_bytes(data[at:at + 3], "little")
            kind, length = (header >> 1) & 3, header >> 3
            at += 3
            if kind == 1:
                length, body = 1, data[at:at + 1]
            else:
                body = data[at:at + length]
            if len(body) < length or kind == 3 or length > MAX_BLOCK:
                raise ZstdError("block truncated or malformed")
            if kind == 0:
                out += body
            elif kind == 1:
                out += body * (header >> 3)
            else:
                try:
                    _block(body, frame, out, limit)
                except IndexError:  # a length field pointing past its section
                    raise ZstdError("compressed block is malformed") from None
            if len(out) > limit:
                raise ZstdError(f"decompressed data exceeds {limit} bytes")
            at += length
            if header & 1:
                break
        if declared is not None and len(out) - frame.start != declared:
            raise ZstdError(f"frame declares {declared} bytes but holds {len(out) - frame.start}")
        pos = at + (4 if checksum else 0)
    return bytes(out)
