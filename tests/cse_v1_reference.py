"""An independent reference implementation of cse-v1, written from docs/cse-v1.md.

It shares no code with :mod:`cse`: HKDF is built by hand from :mod:`hmac` and :mod:`hashlib` (RFC 5869),
segments are sealed one by one with the one-shot ``AESGCM`` of pyca/cryptography, and both canonical JSON
encodings (the metadata document and the context in the AAD) are written out by hand instead of relying on
:func:`json.dumps`. It favours clarity over speed and holds whole bodies in memory.

Used by ``tests/vectors/cse-v1/generate.py`` to make the test vectors, and by ``tests/test_cse_v1_vectors.py``
to check that cse and this implementation agree.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CONTENT_ALGORITHM = "cse-v1/AES-256-GCM-HKDF-SHA256-STREAM"
METADATA_KEY = "cse-v1"
SEGMENT_KEY_INFO = b"cse-v1 segment key"
COMMITMENT_INFO = b"cse-v1 key commitment"
AAD_LABEL = b"cse-v1\x00"
TAG_LENGTH = 16
MIN_SEGMENT_SIZE = 16
MAX_SEGMENT_SIZE = 64 * 1024 * 1024
MAX_SEGMENTS = 2**32


class Invalid(Exception):
    """Decryption or parsing failed (the reference does not distinguish why)."""


# -------------------------------------------------------------------------------------------- HKDF


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with HMAC-SHA256: Extract, then Expand."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def derive(content_key: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """(segment key, key commitment), 32 bytes each."""
    if len(content_key) != 32 or len(salt) != 32:
        raise ValueError("the content key and the salt are 32 bytes")
    return (
        hkdf_sha256(content_key, salt, SEGMENT_KEY_INFO, 32),
        hkdf_sha256(content_key, salt, COMMITMENT_INFO, 32),
    )


# ------------------------------------------------------------------------------------ canonical JSON

_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def json_string(text: str, ascii_only: bool) -> str:
    """A JSON string literal.

    Always escaped: ``"`` and ``\\`` and the controls U+0000..U+001F (short forms ``\\b \\f \\n \\r \\t``,
    otherwise ``\\u00xx`` in lower-case hex). With ``ascii_only``, every other character outside
    U+0020..U+007E is escaped as ``\\uxxxx`` too (characters above U+FFFF as a UTF-16 surrogate pair).
    """
    out = ['"']
    for ch in text:
        cp = ord(ch)
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif cp < 0x20 or (ascii_only and not 0x20 <= cp <= 0x7E):
            if cp > 0xFFFF:
                cp -= 0x10000
                out.append(f"\\u{0xD800 | (cp >> 10):04x}\\u{0xDC00 | (cp & 0x3FF):04x}")
            else:
                out.append(f"\\u{cp:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical_json(value: Any, ascii_only: bool) -> str:
    """Compact JSON, object members sorted by name (by Unicode code point), for str/int/list/dict values."""
    if isinstance(value, bool) or value is None:
        raise TypeError("cse-v1 documents hold no booleans or nulls")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json_string(value, ascii_only)
    if isinstance(value, Sequence):
        return "[" + ",".join(canonical_json(v, ascii_only) for v in value) + "]"
    if isinstance(value, Mapping):
        # Python compares str by code point, which is also the order of the UTF-8 bytes.
        members = sorted(value.items(), key=lambda kv: [ord(c) for c in kv[0]])
        return (
            "{"
            + ",".join(f"{json_string(k, ascii_only)}:{canonical_json(v, ascii_only)}" for k, v in members)
            + "}"
        )
    raise TypeError(f"cannot encode {type(value).__name__}")


# ------------------------------------------------------------------------------------------ the body


def aad(segment_size: int, nonce_prefix: bytes, salt: bytes, context: Mapping[str, str]) -> bytes:
    """SHA-256("cse-v1" 0x00 || uint32_be(segment_size) || prefix || salt || UTF-8(canonical context))."""
    context_json = canonical_json(dict(context), ascii_only=False).encode("utf-8")
    return hashlib.sha256(
        AAD_LABEL + segment_size.to_bytes(4, "big") + nonce_prefix + salt + context_json
    ).digest()


def nonce(nonce_prefix: bytes, index: int, last: bool) -> bytes:
    """prefix (7) || uint32_be(index) || 0x01 if last else 0x00."""
    if len(nonce_prefix) != 7 or not 0 <= index < MAX_SEGMENTS:
        raise ValueError("bad nonce prefix or segment index")
    return nonce_prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def segment_count(plaintext_length: int, segment_size: int) -> int:
    """floor(plaintext_length / segment_size) + 1: the last segment holds the 0..S-1 remaining bytes."""
    return plaintext_length // segment_size + 1


def ciphertext_length(plaintext_length: int, segment_size: int) -> int:
    """plaintext + 16 per segment."""
    return plaintext_length + TAG_LENGTH * segment_count(plaintext_length, segment_size)


def plaintext_length(body_length: int, segment_size: int) -> int:
    """The inverse of :func:`ciphertext_length`; :class:`Invalid` for a length no plaintext has."""
    stride = segment_size + TAG_LENGTH
    full, last = divmod(body_length, stride)
    if last < TAG_LENGTH:
        raise Invalid("not a cse-v1 body length")
    return body_length - TAG_LENGTH * (full + 1)


@dataclass(frozen=True)
class Parameters:
    """Everything the body depends on besides the plaintext."""

    content_key: bytes = field(repr=False)
    salt: bytes
    nonce_prefix: bytes
    segment_size: int
    encryption_context: Mapping[str, str]

    def check(self) -> None:
        """Raise ValueError for out-of-range parameters."""
        if len(self.content_key) != 32 or len(self.salt) != 32 or len(self.nonce_prefix) != 7:
            raise ValueError("bad parameter length")
        if not MIN_SEGMENT_SIZE <= self.segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError("segment size out of range")

    @property
    def aad(self) -> bytes:
        """The per-segment AAD."""
        return aad(self.segment_size, self.nonce_prefix, self.salt, self.encryption_context)


def encrypt(params: Parameters, plaintext: bytes) -> tuple[bytes, bytes]:
    """Return (body, commitment)."""
    params.check()
    segment_key, commitment = derive(params.content_key, params.salt)
    aead, a, size = AESGCM(segment_key), params.aad, params.segment_size
    n = segment_count(len(plaintext), size)
    if n > MAX_SEGMENTS:
        raise ValueError("too many segments")
    body = b"".join(
        aead.encrypt(nonce(params.nonce_prefix, i, i == n - 1), plaintext[i * size : (i + 1) * size], a)
        for i in range(n)
    )
    return body, commitment


def decrypt(params: Parameters, commitment: bytes, body: bytes) -> bytes:
    """Check the commitment, then open every segment; :class:`Invalid` on any failure."""
    params.check()
    segment_key, expected = derive(params.content_key, params.salt)
    if not hmac.compare_digest(expected, commitment):
        raise Invalid("key commitment mismatch")
    size, stride = params.segment_size, params.segment_size + TAG_LENGTH
    length = plaintext_length(len(body), size)
    n = segment_count(length, size)
    aead, a = AESGCM(segment_key), params.aad
    out = []
    for i in range(n):
        try:
            out.append(
                aead.decrypt(
                    nonce(params.nonce_prefix, i, i == n - 1), body[i * stride : (i + 1) * stride], a
                )
            )
        except InvalidTag:
            raise Invalid(f"segment {i} does not authenticate") from None
    return b"".join(out)


def decrypt_range(
    params: Parameters, commitment: bytes, body_length: int, fetch: Any, start: int, end: int
) -> bytes:
    """Plaintext bytes ``start..end`` (inclusive); ``fetch(a, b)`` returns body bytes ``a..b`` inclusive."""
    params.check()
    segment_key, expected = derive(params.content_key, params.salt)
    if not hmac.compare_digest(expected, commitment):
        raise Invalid("key commitment mismatch")
    size, stride = params.segment_size, params.segment_size + TAG_LENGTH
    n = segment_count(plaintext_length(body_length, size), size)
    first, last = start // size, end // size
    data = fetch(first * stride, min(body_length - 1, (last + 1) * stride - 1))
    aead, a = AESGCM(segment_key), params.aad
    out = []
    for i in range(first, last + 1):
        sealed = data[(i - first) * stride : (i - first + 1) * stride]
        try:
            out.append(aead.decrypt(nonce(params.nonce_prefix, i, i == n - 1), sealed, a))
        except InvalidTag:
            raise Invalid(f"segment {i} does not authenticate") from None
    plain = b"".join(out)
    return plain[start - first * size : end - first * size + 1]


# ------------------------------------------------------------------------------------ the metadata


@dataclass(frozen=True)
class Key:
    """One entry of ``keys``."""

    provider: str
    wrap_algorithm: str
    key_id: str
    ciphertext: bytes
    material_description: Mapping[str, str] = field(default_factory=dict)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def metadata_document(params: Parameters, commitment: bytes, keys: Sequence[Key]) -> str:
    """The canonical ``cse-v1`` metadata document (ASCII only)."""
    entries = [
        {
            "provider": key.provider,
            "wrap_algorithm": key.wrap_algorithm,
            "key_id": key.key_id,
            "ciphertext": _b64(key.ciphertext),
            "material_description": dict(key.material_description),
        }
        for key in keys
    ]
    doc = {
        "version": 1,
        "content_algorithm": CONTENT_ALGORITHM,
        "segment_size": params.segment_size,
        "salt": _b64(params.salt),
        "nonce_prefix": _b64(params.nonce_prefix),
        "commitment": _b64(commitment),
        "encryption_context": dict(params.encryption_context),
        "keys": entries,
    }
    return canonical_json(doc, ascii_only=True)


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise Invalid("not an object of strings")
    return value


def _bytes(value: Any, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise Invalid("not a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except ValueError:
        raise Invalid("not base64") from None
    if length is not None and len(data) != length:
        raise Invalid("wrong length")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) != len(pairs):
        raise Invalid("duplicate member name")
    return dict(pairs)


def parse_document(text: str) -> tuple[int, bytes, bytes, bytes, dict[str, str], list[Key]]:
    """(segment_size, salt, nonce_prefix, commitment, encryption_context, keys); :class:`Invalid` if bad."""
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError:
        raise Invalid("not JSON") from None
    top = {"version", "content_algorithm", "segment_size", "salt", "nonce_prefix", "commitment",
           "encryption_context", "keys"}  # fmt: skip
    if not isinstance(doc, dict) or set(doc) != top:
        raise Invalid("wrong member names")
    if (
        type(doc["version"]) is not int
        or doc["version"] != 1
        or doc["content_algorithm"] != CONTENT_ALGORITHM
    ):
        raise Invalid("wrong version or algorithm")
    size = doc["segment_size"]
    if type(size) is not int or not MIN_SEGMENT_SIZE <= size <= MAX_SEGMENT_SIZE:
        raise Invalid("bad segment size")
    if not isinstance(doc["keys"], list) or not doc["keys"]:
        raise Invalid("no keys")
    keys = []
    names = {"provider", "wrap_algorithm", "key_id", "ciphertext", "material_description"}
    for entry in doc["keys"]:
        if not isinstance(entry, dict) or set(entry) != names:
            raise Invalid("bad key entry")
        for name in ("provider", "wrap_algorithm", "key_id"):
            if not isinstance(entry[name], str) or not entry[name]:
                raise Invalid("bad key entry")
        ciphertext = _bytes(entry["ciphertext"])
        if not ciphertext:
            raise Invalid("empty ciphertext")
        keys.append(
            Key(
                provider=entry["provider"],
                wrap_algorithm=entry["wrap_algorithm"],
                key_id=entry["key_id"],
                ciphertext=ciphertext,
                material_description=_strings(entry["material_description"]),
            )
        )
    return (
        size,
        _bytes(doc["salt"], 32),
        _bytes(doc["nonce_prefix"], 7),
        _bytes(doc["commitment"], 32),
        _strings(doc["encryption_context"]),
        keys,
    )
