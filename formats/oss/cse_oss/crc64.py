"""CRC-64/ECMA-182 as OSS computes it (the ``x-oss-hash-crc64ecma`` header).

This is the reflected CRC-64 with polynomial 0x42F0E1EBA9EA3693 (reversed 0xC96C5795D7870F42), initial value
and final XOR all ones (the CRC-64/XZ parameters), the same value ``oss2.utils.Crc64`` computes. The bytes
go through the first of these that is importable and gives the check value:

* ``fastcrc`` (a dependency of ``cse-oss`` where it has wheels: x86-64 and ARM64), its ``crc64.xz``, which
  uses the CPU's carry-less multiply: several GB/s;
* ``crcmod``'s C extension (oss2 depends on crcmod): about 400 MiB/s;
* a pure-Python slicing-by-8 loop over eight-byte words: about 14 MiB/s, so the OSS emulator still needs
  nothing but the standard library.

:data:`BACKEND` names the one in use; all three give identical values (a test runs each against the
others). :func:`crc64_combine` joins the CRCs of two adjacent pieces without reading their bytes again (how a
multipart object's CRC follows from its parts').
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

__all__ = ["BACKEND", "Crc64", "backends", "crc64", "crc64_combine"]

_POLY_REVERSED = 0xC96C5795D7870F42
_MASK = 0xFFFFFFFFFFFFFFFF


def _make_tables() -> list[list[int]]:
    base: list[int] = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY_REVERSED if crc & 1 else crc >> 1
        base.append(crc)
    tables = [base]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(value >> 8) ^ base[value & 0xFF] for value in prev])
    return tables


_TABLES = _make_tables()
_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7 = _TABLES
_WORDS = struct.Struct("<Q")


def _update_python(register: int, data: bytes | bytearray | memoryview) -> int:
    """Advance the raw (pre-inverted) register over ``data``."""
    view = memoryview(data).cast("B")
    n = len(view)
    whole = n - n % 8
    t0, t1, t2, t3, t4, t5, t6, t7 = _T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7
    crc = register
    if whole:
        for (word,) in _WORDS.iter_unpack(view[:whole]):
            crc ^= word
            crc = (
                t7[crc & 0xFF]
                ^ t6[(crc >> 8) & 0xFF]
                ^ t5[(crc >> 16) & 0xFF]
                ^ t4[(crc >> 24) & 0xFF]
                ^ t3[(crc >> 32) & 0xFF]
                ^ t2[(crc >> 40) & 0xFF]
                ^ t1[(crc >> 48) & 0xFF]
                ^ t0[crc >> 56]
            )
    for byte in view[whole:]:
        crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _load_extension() -> Callable[[int, bytes | bytearray | memoryview], int] | None:
    """crcmod's C routine for reflected 64-bit CRCs, bound to this CRC's table, or None without it."""
    try:
        from crcmod import _crcfunext  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    table = struct.pack("<256Q", *_TABLES[0])
    fun = _crcfunext._crc64r

    def update(register: int, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        return int(fun(view, register, table)) if len(view) else register

    try:  # the extension takes any buffer in some builds and only bytes in others: find out once
        if update(_MASK, b"123456789") ^ _MASK != 0x995DC9BBDF1939FA:
            return None
        update(_MASK, memoryview(b"1"))
    except (TypeError, ValueError):

        def update_bytes(register: int, data: bytes | bytearray | memoryview) -> int:
            return int(fun(bytes(data), register, table)) if len(data) else register

        return update_bytes
    return update


def _load_fastcrc() -> Callable[[int, bytes | bytearray | memoryview], int] | None:
    """fastcrc's CRC-64/XZ on the raw register, or None without fastcrc (or if it gives another value)."""
    try:
        from fastcrc import crc64 as fast  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    xz = fast.xz

    def update(register: int, data: bytes | bytearray | memoryview) -> int:
        # fastcrc continues from a finished CRC (``initial``), the register is the CRC before the final XOR.
        return int(xz(data, initial=register ^ _MASK)) ^ _MASK if len(data) else register

    try:
        if update(_MASK, memoryview(b"123456789")) ^ _MASK != 0x995DC9BBDF1939FA:
            return None
        if update(update(_MASK, b"1234"), b"56789") ^ _MASK != 0x995DC9BBDF1939FA:
            return None
    except (TypeError, ValueError):
        return None
    return update


def _choose() -> tuple[str, Callable[[int, bytes | bytearray | memoryview], int]]:
    fast = _load_fastcrc()
    if fast is not None:
        return "fastcrc", fast
    extension = _load_extension()
    if extension is not None:
        return "crcmod", extension
    return "python", _update_python


#: The implementation in use: ``"fastcrc"``, ``"crcmod"`` or ``"python"``.
BACKEND, _update = _choose()


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Return the CRC-64/ECMA of ``data``, continuing from ``crc`` (the CRC of the bytes before it)."""
    return _update(crc ^ _MASK, data) ^ _MASK


def backends() -> dict[str, Callable[[bytes | bytearray | memoryview, int], int]]:
    """Every implementation importable here, by name (``fastcrc``, ``crcmod``, ``python``), each a
    function like :func:`crc64`: for tests that hold them to each other, and for benchmarks."""
    found = {"fastcrc": _load_fastcrc(), "crcmod": _load_extension(), "python": _update_python}

    def bound(update: Callable[[int, bytes | bytearray | memoryview], int]) -> Any:
        return lambda data, crc=0: update(crc ^ _MASK, data) ^ _MASK

    return {name: bound(update) for name, update in found.items() if update is not None}


class Crc64:
    """An incremental CRC-64/ECMA: feed chunks with :meth:`update`, read :attr:`value`."""

    def __init__(self, crc: int = 0) -> None:
        """Start from ``crc`` (0 for an empty input)."""
        self._register = crc ^ _MASK

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Add ``data`` to the checksum."""
        self._register = _update(self._register, data)

    @property
    def value(self) -> int:
        """The CRC-64 of everything fed so far."""
        return self._register ^ _MASK


def _gf2_times(matrix: list[int], vector: int) -> int:
    total = 0
    i = 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(64)]


def crc64_combine(crc1: int, crc2: int, len2: int) -> int:
    """Return the CRC-64 of ``A + B`` from ``crc1 = crc64(A)``, ``crc2 = crc64(B)`` and ``len2 = len(B)``."""
    if len2 <= 0:
        return crc1
    odd = [_POLY_REVERSED] + [1 << n for n in range(63)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2
