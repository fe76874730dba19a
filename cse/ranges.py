"""HTTP-style byte ranges over plaintext."""

from __future__ import annotations

import re

from cse.exceptions import ConfigurationError, InvalidRangeError

__all__ = ["ByteRange", "parse_range"]

ByteRange = tuple[int | None, int | None]
"""``(first, last)`` inclusive: ``(a, b)`` is ``bytes=a-b``, ``(a, None)`` ``a-``, ``(None, n)`` ``-n``."""

_RANGE = re.compile(r"^(?:bytes=)?\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(text: str) -> ByteRange:
    """Parse ``A-B``, ``A-`` or ``-N`` (optionally prefixed ``bytes=``) into a :data:`ByteRange`."""
    m = _RANGE.match(text)
    if not m or (not m.group(1) and not m.group(2)):
        raise ConfigurationError(f"invalid byte range {text!r}; use A-B, A- or -N (HTTP byte-range rules)")
    first = int(m.group(1)) if m.group(1) else None
    last = int(m.group(2)) if m.group(2) else None
    if first is not None and last is not None and last < first:
        raise ConfigurationError(f"invalid byte range {text!r}: the last byte is before the first")
    return first, last


def resolve_range(byte_range: ByteRange, size: int) -> tuple[int, int]:
    """Resolve a range against an object of ``size`` bytes into inclusive ``(start, end)``.

    Follows RFC 9110: the end is clamped to the object; a suffix longer than the object means the whole
    object; a range starting at or past the end (or any range of an empty object) is not satisfiable.
    """
    first, last = byte_range
    if first is None:
        if last is None or last == 0:
            raise InvalidRangeError("a suffix range must ask for at least one byte")
        start, end = max(0, size - last), size - 1
    else:
        start, end = first, size - 1 if last is None else min(last, size - 1)
    if size == 0 or start >= size:
        raise InvalidRangeError(f"range not satisfiable: the object has {size} bytes")
    return start, end
