"""CRC-32 of a byte sequence from the CRC-32s of its pieces (zlib's ``crc32_combine``).

Chunks of a stream are checksummed in the worker that encodes them; the writer joins the pieces
into the CRC-32 of the whole dataset, in row order, as ``zlib.crc32`` of all the bytes would give.
Python's zlib does not expose ``crc32_combine``, so this is the same GF(2) algorithm, with the
operator for each piece length computed once (all chunks but the last have the same length).
"""
from __future__ import annotations

import functools
from typing import List

_POLYNOMIAL = 0xEDB88320


def _times(matrix: List[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _square(matrix: List[int]) -> List[int]:
    return [_times(matrix, matrix[n]) for n in range(32)]


@functools.lru_cache(maxsize=64)
def _shift_operator(length: int) -> tuple:
    """The GF(2) matrix that appends ``length`` zero bytes to a CRC-32 register."""
    operator = [1 << n for n in range(32)]          # identity
    power = [_POLYNOMIAL] + [1 << n for n in range(31)]  # one zero bit
    power = _square(_square(_square(power)))            # one zero byte
    while length:
        if length & 1:
            operator = [_times(power, column) for column in operator]
        length >>= 1
        if length:
            power = _square(power)
    return tuple(operator)


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of ``a + b`` from ``crc32(a)``, ``crc32(b)`` and ``len(b)``."""
    if length2 == 0:
        return crc1
    return _times(list(_shift_operator(length2)), crc1) ^ crc2
