"""CRC-64/ECMA-182 as OSS computes it (`x-oss-hash-crc64ecma`), and the combination of two CRCs.

The checksum itself is crcmod's C extension (crcmod-plus, which the official OSS SDK V2 depends on).
`combine` gives crc(a + b) from crc(a), crc(b) and len(b) without the bytes (zlib's crc32_combine
method in GF(2), for 64 bits), so a multipart object's CRC comes from its parts' CRCs. The operator
for a length is cached: the parts of an upload nearly all have one size.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import crcmod

# crcmod-plus ships types, crcmod 1.7 (which oss2 requires) none, and both install this one package:
# whichever pip wrote last is here, so kiln types the little it uses itself
_crcmod: Any = crcmod

POLY = 0x142F0E1EBA9EA3693
_REFLECTED = 0xC96C5795D7870F42  # POLY's low 64 bits, bit-reversed
_MASK = (1 << 64) - 1


def new() -> Any:
    """A running CRC: `.update(bytes)`, `.crcValue`."""
    return _crcmod.Crc(POLY, initCrc=0, rev=True, xorOut=_MASK)


def of(data: bytes) -> int:
    crc = new()
    crc.update(data)
    return int(crc.crcValue)


def _times(matrix: tuple[int, ...], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _compose(after: tuple[int, ...], before: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(_times(after, column) for column in before)


@lru_cache(maxsize=64)
def _zeros_operator(length: int) -> tuple[int, ...]:
    """The linear map that runs a CRC register through `length` zero bytes."""
    odd = (_REFLECTED, *(1 << n for n in range(63)))  # one zero bit
    even = _compose(odd, odd)  # two
    odd = _compose(even, even)  # four
    result = tuple(1 << n for n in range(64))
    while True:
        even = _compose(odd, odd)  # 8, 32, ... bits: 1, 4, 16 ... bytes
        if length & 1:
            result = _compose(even, result)
        length >>= 1
        if not length:
            return result
        odd = _compose(even, even)
        if length & 1:
            result = _compose(odd, result)
        length >>= 1
        if not length:
            return result


def combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC of a + b, given crc1 = CRC(a), crc2 = CRC(b) and length2 = len(b)."""
    if length2 == 0:
        return crc1
    return (_times(_zeros_operator(length2), crc1) ^ crc2) & _MASK
