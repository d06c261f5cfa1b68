"""Fossil deltas: the delta format of the Fossil SCM, which Centrifugo's delta compression
(``delta: "fossil"``) sends and its SDKs apply.

The format (fossil-scm ``www/delta_format.wiki``)::

    delta   = INT "\\n" segment* INT ";"     target length, segments, checksum of the target
    segment = INT "@" INT ","                copy COUNT bytes of the source from OFFSET
            | INT ":" <COUNT bytes>          insert the COUNT bytes that follow

An INT is written in base 64, most significant digit first, with the digits
``0-9 A-Z _ a-z ~`` (values 0 to 63); zero is ``0``. The checksum is the sum modulo 2**32 of
the target read as big-endian 32-bit words, the last one padded with zero bytes.

Guarantees:

- :func:`apply` of :func:`create`'s delta gives the target back, byte for byte, for any two
  byte strings.
- Copies in a delta made by :func:`create` start and end on UTF-8 character boundaries of the
  target, so every inserted run of a UTF-8 target is whole characters: the delta of two UTF-8
  texts is UTF-8 text itself, which the JSON protocol sends as a JSON string (the SDKs encode
  that string back to the delta's bytes).
- :func:`apply` never returns bytes the delta does not account for: a copy outside the
  source, an insert past the end of the delta, a length or checksum that does not match, a
  number too long, a target over ``max_size`` or anything unterminated raise
  :class:`DeltaError` (a ``ValueError``), and nothing bigger than ``max_size`` is built.

The encoder follows the idea of Fossil's own (described in ``delta_encoder_algorithm.wiki``):
the source is cut into blocks of :data:`BLOCK` bytes, each target position is looked up among
them, and a hit is extended backwards and forwards into the longest common run, which becomes
a copy when it is shorter to say than to insert. Fossil finds candidates with a rolling hash
of the window; here the window's bytes are the key of a dict (their hash computed in C), and
runs are extended by comparing slices of doubling length, so that the cost in Python stays a
few operations per changed region rather than per byte: a 4 KiB JSON text with a small change
takes some tens of microseconds. What both texts begin and end with is found first, in a few
comparisons, and only the middle is searched. Searching costs ~0.1 us per target byte found
nowhere in the source, and stops after :data:`MAX_MISSES` of them (the rest goes in as it is).
"""

from __future__ import annotations

import struct
from typing import Final

#: Bytes per source block: the shortest run the encoder looks for.
BLOCK: Final = 16
#: The base-64 digits of the format's numbers.
DIGITS: Final = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
#: Most digits :func:`apply` reads in one number (64**11 > 2**64).
MAX_DIGITS: Final = 11
#: What :func:`apply` builds at most unless told otherwise.
MAX_TARGET: Final = 64 * 1024 * 1024
#: Target positions :func:`create` looks up in vain before it inserts the rest of the changed
#: region as it is (about 7 ms of search): unrelated data costs bounded time, not a delta.
MAX_MISSES: Final = 1 << 16

_VALUE: Final = {digit: value for value, digit in enumerate(DIGITS)}


class DeltaError(ValueError):
    """A delta that does not apply to the source it was given."""


def number(n: int) -> bytes:
    """``n`` (>= 0) as the format writes it."""
    if n < 64:
        return DIGITS[n : n + 1]
    out = bytearray()
    while n:
        out.append(DIGITS[n & 63])
        n >>= 6
    out.reverse()
    return bytes(out)


def checksum(data: bytes) -> int:
    """The format's checksum of ``data`` (see the module docstring)."""
    tail = len(data) % 4
    if tail:
        data = data + b"\0" * (4 - tail)
    words: tuple[int, ...] = struct.unpack(f">{len(data) // 4}I", data)
    return sum(words) & 0xFFFFFFFF


def _forward(a: bytes, ai: int, b: bytes, bi: int, limit: int) -> int:
    """How many bytes ``a[ai:]`` and ``b[bi:]`` have in common at their start (at most
    ``limit``): slices of doubling length, then a binary search in the first that differs."""
    done = 0
    step = 32
    while done < limit:
        size = min(step, limit - done)
        x, y = ai + done, bi + done
        if a[x : x + size] == b[y : y + size]:
            done += size
            step *= 2
            continue
        low, high = 0, size  # a run of `low` matches, one of `high` does not
        while high - low > 1:
            mid = (low + high) // 2
            if a[x : x + mid] == b[y : y + mid]:
                low = mid
            else:
                high = mid
        return done + low
    return done


def _backward(a: bytes, ai: int, b: bytes, bi: int, limit: int) -> int:
    """How many bytes ``a[:ai]`` and ``b[:bi]`` have in common at their end (at most
    ``limit``)."""
    done = 0
    step = 32
    while done < limit:
        size = min(step, limit - done)
        x, y = ai - done, bi - done
        if a[x - size : x] == b[y - size : y]:
            done += size
            step *= 2
            continue
        low, high = 0, size
        while high - low > 1:
            mid = (low + high) // 2
            if a[x - mid : x] == b[y - mid : y]:
                low = mid
            else:
                high = mid
        return done + low
    return done


def _inside_character(data: bytes, i: int) -> bool:
    """Whether position ``i`` of ``data`` falls inside a UTF-8 character (at a continuation
    byte)."""
    return i < len(data) and data[i] & 0xC0 == 0x80


def create(source: bytes, target: bytes, *, max_misses: int = MAX_MISSES) -> bytes:
    """A delta that turns ``source`` into ``target`` (see the module guarantees); after
    ``max_misses`` positions of the target found nowhere in the source, the rest of the
    changed region is inserted without looking further."""
    size = len(target)
    out = [number(size), b"\n"]
    # What both begin and end with (the usual update changes a few places): copies, found
    # in a few slice comparisons; only the middle of the target is searched for blocks.
    head = _forward(source, 0, target, 0, min(len(source), size))
    tail = _backward(source, len(source), target, size, min(len(source), size) - head)
    while head and _inside_character(target, head):
        head -= 1
    while tail and _inside_character(target, size - tail):
        tail -= 1
    stop = size - tail  # the middle is target[head:stop]
    base = 0  # start of the target bytes not yet in the delta
    if head > len(number(head)) + len(number(0)) + 2:
        out += (number(head), b"@0,")
        base = head
    if len(source) >= BLOCK and stop - base >= BLOCK:
        base = _middle(source, target, base, stop, out, max_misses)
    if tail > len(number(tail)) + len(number(len(source) - tail)) + 2:
        if base < stop:
            out += (number(stop - base), b":", target[base:stop])
        out += (number(tail), b"@", number(len(source) - tail), b",")
        base = size
    if base < size:
        out += (number(size - base), b":", target[base:])
    out += (number(checksum(target)), b";")
    return b"".join(out)


def _middle(
    source: bytes, target: bytes, base: int, stop: int, out: list[bytes], misses: int
) -> int:
    """Append to ``out`` the segments of ``target[base:stop]`` up to its last copy (looking
    up at most ``misses`` positions in vain); returns where the bytes not yet in the delta
    start."""
    # The last offset of each block's content; later ones win, as the head of Fossil's
    # hash chains.
    offsets = range(0, len(source) - BLOCK + 1, BLOCK)
    blocks = dict(zip([source[o : o + BLOCK] for o in offsets], offsets, strict=True))
    find = blocks.get
    i = base
    last = stop - BLOCK
    while i <= last:
        offset = find(target[i : i + BLOCK])
        if offset is None:
            misses -= 1
            if misses < 0:
                break
            i += 1
            continue
        back = _backward(source, offset, target, i, min(i - base, offset))
        limit = min(len(source) - offset, stop - i) - BLOCK
        ahead = BLOCK + _forward(source, offset + BLOCK, target, i + BLOCK, limit)
        start, end, origin = i - back, i + ahead, offset - back
        while start < end and _inside_character(target, start):
            start += 1
            origin += 1
        while end > start and _inside_character(target, end):
            end -= 1
        count = end - start
        copy = b"".join((number(count), b"@", number(origin), b","))
        literal = start - base
        if count <= len(copy) + (len(number(literal)) + 1 if literal else 0):
            i += 1  # cheaper to insert than to say
            continue
        if literal:
            out += (number(literal), b":", target[base:start])
        out.append(copy)
        base = i = end
    return base


class _Reader:
    """The delta being applied: numbers and operators at a position."""

    __slots__ = ("delta", "pos")

    def __init__(self, delta: bytes) -> None:
        self.delta = delta
        self.pos = 0

    def number(self) -> int:
        delta, start = self.delta, self.pos
        value = 0
        pos = start
        end = min(len(delta), start + MAX_DIGITS + 1)
        while pos < end:
            digit = _VALUE.get(delta[pos])
            if digit is None:
                break
            value = (value << 6) | digit
            pos += 1
        if pos == start:
            raise DeltaError("a number was expected")
        if pos - start > MAX_DIGITS:
            raise DeltaError("a number is too long")
        self.pos = pos
        return value

    def operator(self) -> int:
        if self.pos >= len(self.delta):
            raise DeltaError("the delta is unterminated")
        op = self.delta[self.pos]
        self.pos += 1
        return op


_NEWLINE, _COPY, _COMMA, _INSERT, _END = b"\n@,:;"


def apply(source: bytes, delta: bytes, *, max_size: int = MAX_TARGET) -> bytes:
    """The target that ``delta`` makes of ``source``; DeltaError when the delta does not
    apply (see the module guarantees)."""
    reader = _Reader(delta)
    limit = reader.number()
    if reader.operator() != _NEWLINE:
        raise DeltaError("the target length is not followed by a newline")
    if limit > max_size:
        raise DeltaError(f"the target would be {limit} bytes, more than {max_size}")
    parts: list[bytes] = []
    total = 0
    while True:
        count = reader.number()
        op = reader.operator()
        if op == _COPY:
            offset = reader.number()
            if reader.operator() != _COMMA:
                raise DeltaError("a copy is not followed by a comma")
            if offset + count > len(source):
                raise DeltaError("a copy reaches past the end of the source")
            total += count
            if total > limit:
                raise DeltaError("the segments make more than the target length")
            parts.append(source[offset : offset + count])
        elif op == _INSERT:
            start = reader.pos
            if start + count > len(delta):
                raise DeltaError("an insert reaches past the end of the delta")
            total += count
            if total > limit:
                raise DeltaError("the segments make more than the target length")
            parts.append(delta[start : start + count])
            reader.pos = start + count
        elif op == _END:
            if total != limit:
                raise DeltaError("the segments make less than the target length")
            target = b"".join(parts)
            if count != checksum(target):
                raise DeltaError("the checksum does not match")
            if reader.pos != len(delta):
                raise DeltaError("bytes follow the checksum")
            return target
        else:
            raise DeltaError(f"unknown operator {bytes((op,))!r}")
