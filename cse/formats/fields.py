"""Helpers for format implementations: strict reading of metadata fields, with errors that name the field.

Every function raises :class:`~cse.exceptions.MetadataError` naming the format and the field, so a plugin's
``decode`` reports untrusted metadata the way cse's own formats do.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cse.exceptions import MetadataError

__all__ = [
    "b64_field",
    "b64encode",
    "decode_b64",
    "first_validation_error",
    "json_text_map",
    "reject_repeated_names",
    "required_field",
]


def b64encode(value: bytes) -> str:
    """Standard base64, as text."""
    return base64.b64encode(value).decode("ascii")


def decode_b64(value: str, field: str, fmt: str, length: int | None = None) -> bytes:
    """Strict base64 of a non-empty value (of ``length`` bytes, if given)."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise MetadataError(f"{fmt} metadata field {field!r} is not valid base64") from None
    if not raw:
        raise MetadataError(f"{fmt} metadata field {field!r} is empty")
    if length is not None and len(raw) != length:
        raise MetadataError(f"{fmt} metadata field {field!r} must hold {length} bytes, not {len(raw)}")
    return raw


def required_field(metadata: Mapping[str, str], field: str, fmt: str) -> str:
    """The value of ``field``; it must be present and a string."""
    value = metadata.get(field)
    if value is None:
        raise MetadataError(f"{fmt} metadata is missing the field {field!r}")
    if not isinstance(value, str):
        raise MetadataError(f"{fmt} metadata field {field!r} is not a string")
    return value


def b64_field(metadata: Mapping[str, str], field: str, fmt: str, length: int | None = None) -> bytes:
    """The bytes of a required base64 field."""
    return decode_b64(required_field(metadata, field, fmt), field, fmt, length)


def reject_repeated_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A ``json.loads`` ``object_pairs_hook`` refusing repeated member names (parsers disagree on them)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("repeated JSON member name")
    return out


def json_text_map(metadata: Mapping[str, str], field: str, fmt: str) -> dict[str, str] | None:
    """The JSON object of strings in ``field``, or None if the field is absent."""
    raw = metadata.get(field)
    if raw is None:
        return None
    try:
        value = json.loads(raw, object_pairs_hook=reject_repeated_names)
    except (ValueError, TypeError, RecursionError):
        raise MetadataError(
            f"{fmt} metadata field {field!r} is not a JSON object (or repeats a name)"
        ) from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise MetadataError(f"{fmt} metadata field {field!r} must be a JSON object of strings")
    return value


def first_validation_error(exc: ValidationError) -> str:
    """The first problem pydantic found, as ``location: message``."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid"))
