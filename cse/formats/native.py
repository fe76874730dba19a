"""The native ``cse-v1`` format: one JSON document in the user-metadata field ``cse-v1``.

The document (specified in ``docs/cse-v1.md``)::

    {"version": 1,
     "content_algorithm": "cse-v1/AES-256-GCM-HKDF-SHA256-STREAM",
     "segment_size": 262144,
     "salt": b64(32), "nonce_prefix": b64(7), "commitment": b64(32),
     "encryption_context": {"k": "v"},
     "keys": [{"provider": "rsa", "wrap_algorithm": "RSA-OAEP-SHA256", "key_id": "...",
               "ciphertext": b64(...), "material_description": {...}}]}

Every field is required (a key's material description may be ``{}``), so a removed field is an error.

It is written as compact, ASCII-only JSON, so it travels as an HTTP header value on any store.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cse.envelope import ContentAlgorithm, Envelope, WrapAlgorithm, WrappedKey
from cse.exceptions import MetadataError
from cse.formats.base import Format
from cse.formats.fields import first_validation_error

__all__ = ["METADATA_KEY", "NativeFormat"]

#: The user-metadata key that holds the cse-v1 document.
METADATA_KEY = "cse-v1"
_TOP = {
    "version",
    "content_algorithm",
    "segment_size",
    "salt",
    "nonce_prefix",
    "commitment",
    "encryption_context",
    "keys",
}
_KEY = {"provider", "wrap_algorithm", "key_id", "ciphertext", "material_description"}


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _unb64(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise MetadataError(f"cse-v1 metadata field {field!r} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MetadataError(f"cse-v1 metadata field {field!r} is not valid base64") from None


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise MetadataError(f"the {METADATA_KEY!r} metadata repeats a JSON member name")
    return out


def _text_map(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise MetadataError(f"cse-v1 metadata field {field!r} must be an object of strings")
    return dict(value)


class NativeFormat(Format):
    """cse-v1: segmented, key-committing AES-256-GCM with one or more wrapped keys."""

    name = "cse-v1"
    content_algorithm = ContentAlgorithm.CSE_V1
    wrap_algorithms = (
        WrapAlgorithm.RSA_OAEP_SHA256,
        WrapAlgorithm.KMS_CONTEXT,
        WrapAlgorithm.ALIYUN_KMS,
        WrapAlgorithm.AES_GCM,
    )

    def detect(self, metadata: Mapping[str, str]) -> bool:
        """Whether the ``cse-v1`` field is present."""
        return METADATA_KEY in metadata

    def decode(self, metadata: Mapping[str, str]) -> Envelope:
        """Parse the document; every problem raises :class:`MetadataError` naming the field."""
        raw = metadata.get(METADATA_KEY)
        if raw is None:
            raise MetadataError(f"the object has no {METADATA_KEY!r} metadata; it was not written by cse-v1")
        try:
            doc = json.loads(raw, object_pairs_hook=_unique_names)
        except (ValueError, RecursionError):
            raise MetadataError(f"the {METADATA_KEY!r} metadata is not valid JSON") from None
        if not isinstance(doc, dict):
            raise MetadataError(f"the {METADATA_KEY!r} metadata must be a JSON object")
        missing = sorted(_TOP - set(doc))
        if missing:
            raise MetadataError(f"cse-v1 metadata is missing the field(s) {', '.join(map(repr, missing))}")
        unknown = sorted(set(doc) - _TOP)
        if unknown:
            raise MetadataError(f"cse-v1 metadata has unknown field(s) {', '.join(map(repr, unknown))}")
        if type(doc["version"]) is not int or doc["version"] != 1:
            raise MetadataError(
                f"cse-v1 metadata field 'version' is {doc['version']!r}; "
                "this cse reads version 1 (upgrade cse)"
            )
        if doc["content_algorithm"] != ContentAlgorithm.CSE_V1:
            raise MetadataError(
                f"cse-v1 metadata field 'content_algorithm' must be {ContentAlgorithm.CSE_V1!r}"
            )
        segment_size = doc["segment_size"]
        if not isinstance(segment_size, int) or isinstance(segment_size, bool):
            raise MetadataError("cse-v1 metadata field 'segment_size' must be an integer")
        keys = doc["keys"]
        if not isinstance(keys, list) or not keys:
            raise MetadataError("cse-v1 metadata field 'keys' must be a non-empty list")
        wrapped: list[WrappedKey] = []
        for i, entry in enumerate(keys):
            where = f"keys[{i}]"
            if not isinstance(entry, dict) or set(entry) != _KEY:
                raise MetadataError(
                    f"cse-v1 metadata field {where!r} must be an object with exactly the fields "
                    f"{', '.join(map(repr, sorted(_KEY)))}"
                )
            for name in ("provider", "key_id", "wrap_algorithm"):
                if not isinstance(entry[name], str) or not entry[name]:
                    raise MetadataError(f"cse-v1 metadata field '{where}.{name}' must be a non-empty string")
            try:
                wrapped.append(
                    WrappedKey(
                        wrap_algorithm=entry["wrap_algorithm"],
                        ciphertext=_unb64(entry["ciphertext"], f"{where}.ciphertext"),
                        key_id=entry["key_id"],
                        provider=entry["provider"],
                        material_description=_text_map(
                            entry["material_description"], f"{where}.material_description"
                        ),
                    )
                )
            except ValidationError as exc:
                raise MetadataError(
                    f"cse-v1 metadata field {where!r} is invalid: {first_validation_error(exc)}"
                ) from None
        try:
            return Envelope(
                format=self.name,
                content_algorithm=ContentAlgorithm.CSE_V1,
                wrapped_keys=tuple(wrapped),
                salt=_unb64(doc["salt"], "salt"),
                nonce_prefix=_unb64(doc["nonce_prefix"], "nonce_prefix"),
                commitment=_unb64(doc["commitment"], "commitment"),
                segment_size=segment_size,
                encryption_context=_text_map(doc["encryption_context"], "encryption_context"),
            )
        except ValidationError as exc:
            raise MetadataError(f"cse-v1 metadata is invalid: {first_validation_error(exc)}") from None

    def encode(self, envelope: Envelope) -> dict[str, str]:
        """The ``cse-v1`` field for ``envelope``."""
        if envelope.content_algorithm != ContentAlgorithm.CSE_V1:
            raise ValueError(
                f"cse-v1 carries only {ContentAlgorithm.CSE_V1}, not {envelope.content_algorithm}"
            )
        assert (
            envelope.salt is not None
            and envelope.nonce_prefix is not None
            and envelope.commitment is not None
        )
        keys: list[dict[str, Any]] = []
        for wk in envelope.wrapped_keys:
            if not wk.provider or not wk.key_id:
                raise ValueError("cse-v1 records the provider scheme and key id of every wrapped key")
            keys.append(
                {
                    "provider": wk.provider,
                    "wrap_algorithm": wk.wrap_algorithm,
                    "key_id": wk.key_id,
                    "ciphertext": _b64(wk.ciphertext),
                    "material_description": dict(wk.material_description),
                }
            )
        doc = {
            "version": 1,
            "content_algorithm": ContentAlgorithm.CSE_V1,
            "segment_size": envelope.segment_size,
            "salt": _b64(envelope.salt),
            "nonce_prefix": _b64(envelope.nonce_prefix),
            "commitment": _b64(envelope.commitment),
            "encryption_context": dict(envelope.encryption_context),
            "keys": keys,
        }
        return {METADATA_KEY: json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=True)}
