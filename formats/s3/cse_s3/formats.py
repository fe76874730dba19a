"""The metadata formats of the AWS S3 Encryption Client: V3 (``s3-v3``), V2 (``s3-v2``), V1 (``s3-v1``).

User-metadata keys, without the ``x-amz-meta-`` prefix that S3 adds (names from the official clients and
the S3EC specification's ``content-metadata.md``):

==================================  ========================  ========================  =====================
meaning                             V3 (``s3-v3``)            V2 (``s3-v2``)            V1 (``s3-v1``, read)
==================================  ========================  ========================  =====================
content algorithm                   ``x-amz-c`` = ``115``     ``x-amz-cek-alg``         (CBC; optional
                                                              = ``AES/GCM/NoPadding``   ``x-amz-cek-alg``)
wrapped content key (base64)        ``x-amz-3``               ``x-amz-key-v2``          ``x-amz-key``
wrap algorithm                      ``x-amz-w``: ``02``,      ``x-amz-wrap-alg``        ``x-amz-wrap-alg``
                                    ``12``, ``22``                                      (optional)
IV / message id (base64)            ``x-amz-i`` (28 bytes)    ``x-amz-iv`` (12 bytes)   ``x-amz-iv`` (16 B)
key commitment (base64)             ``x-amz-d`` (28 bytes)
tag length                                                    ``x-amz-tag-len`` = 128
KMS encryption context (JSON)       ``x-amz-t``               ``x-amz-matdesc``         ``x-amz-matdesc``
raw key material description        ``x-amz-m``               ``x-amz-matdesc``         ``x-amz-matdesc``
==================================  ========================  ========================  =====================

All three also carry the plaintext length in ``x-amz-unencrypted-content-length`` when it is known.

``x-amz-w`` codes: ``02`` = ``AES/GCM``, ``12`` = ``kms+context``, ``22`` = ``RSA-OAEP-SHA1``.

Detection follows the official clients, and refuses format confusion: an object that carries more than one
of ``x-amz-key``, ``x-amz-key-v2`` and ``x-amz-3`` is detected by every format whose key it carries, and
each of their ``decode`` raises :class:`~cse.exceptions.MetadataError` ("refusing: ..."); V2 metadata
beside V3 content keys (``x-amz-c``, ``x-amz-d``, ``x-amz-i``), which only an instruction file swapped by an
attacker produces, is refused too. An ``x-amz-key-v2`` object whose ``x-amz-cek-alg`` is
``AES/CBC/PKCS5Padding`` (the Java V1 client writes that in its default mode) is legacy CBC and read
by ``s3-v1``.

The encryption context. For ``kms+context`` the KMS encryption context is stored (``x-amz-t``,
``x-amz-matdesc``) as the official clients send it to KMS: the user's context plus the reserved key
``aws:x-amz-cek-alg`` = the content algorithm (``115`` for V3, ``AES/GCM/NoPadding`` for V2). A decoded
:class:`~cse.envelope.Envelope` holds that stored context *including* the reserved key, which is exactly
what KMS ``Decrypt`` must be given; ``encode`` adds the reserved key when it is absent. So a key provider
for ``kms+context`` must call ``GenerateDataKey`` with the request's context plus
``aws:x-amz-cek-alg`` = the request's content algorithm, and ``Decrypt`` with the request's context as it
is. A user context that gives the reserved key with another value, or any non-ASCII key or value (S3
metadata is ASCII; the official Python client refuses them too), is a
:class:`~cse.exceptions.ConfigurationError`. The raw-key wrappings (``RSA-OAEP-SHA1``, ``AES/GCM``)
authenticate no encryption context, so a non-empty one is refused with them rather than stored
unauthenticated; their material description goes to ``x-amz-m`` (V3, only when non-empty, as the Java
client writes it) or ``x-amz-matdesc`` (V2, ``{}`` when empty).

``x-amz-t`` (V3) and ``x-amz-matdesc`` (V2) are required with ``kms+context`` (every client stores at
least the reserved key there); the material description is optional (absent means ``{}``, as the Java
client reads it), and so is ``x-amz-matdesc`` for V1 and raw-key V2 objects.

JSON maps are written as the official Python client writes them, ``json.dumps`` with its default
separators (``{"k": "v", "aws:x-amz-cek-alg": "115"}``); readers parse any JSON formatting.

Instruction files (the key material in a separate object ``KEY.instruction``) are handled by the S3 store,
which merges them into the metadata it returns and marks the result with ``x-amz-crypto-instr-file``; the
formats turn that marker into :attr:`Envelope.instruction_file` and write it back, so that a store that
writes instruction files keeps an object's layout when its key is re-wrapped.

Importing this module registers :class:`CbcCodec`, the decrypt-only codec of the legacy
``AES/CBC/PKCS5Padding`` content (S3 V1).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import ValidationError

from cse.envelope import ContentAlgorithm, Envelope, WrapAlgorithm, WrappedKey
from cse.exceptions import ConfigurationError, MetadataError
from cse.formats.base import Format
from cse.formats.fields import b64_field as _unb64
from cse.formats.fields import b64encode as _b64
from cse.formats.fields import first_validation_error as _first_error
from cse.formats.fields import json_text_map as _json_map
from cse.formats.fields import required_field as _required
from cse_s3.cbc import CbcCodec

__all__ = [
    "INSTRUCTION_FILE_MARKER",
    "RESERVED_CONTEXT_KEY",
    "S3V1Format",
    "S3V2Format",
    "S3V3Format",
    "V3_WRAP_CODES",
]

#: Marks the instruction object itself (Java writes it as the instruction file's user metadata) and, in
#: the metadata the S3 store returns, says that key material was merged in from an instruction file.
INSTRUCTION_FILE_MARKER = "x-amz-crypto-instr-file"
#: The encryption-context key the S3 clients reserve for the content algorithm (``kms+context`` only).
RESERVED_CONTEXT_KEY = "aws:x-amz-cek-alg"
#: V1's KMS key id in the material description (legacy ``kms`` wrapping); reserved as well.
KMS_CMK_ID = "kms_cmk_id"

# ---------------------------------------------------------------------------------------- metadata keys

KEY_V1 = "x-amz-key"
KEY_V2 = "x-amz-key-v2"
WRAP_ALG = "x-amz-wrap-alg"
MATDESC = "x-amz-matdesc"
IV = "x-amz-iv"
CEK_ALG = "x-amz-cek-alg"
TAG_LEN = "x-amz-tag-len"
CONTENT_V3 = "x-amz-c"
KEY_V3 = "x-amz-3"
MATDESC_V3 = "x-amz-m"
CONTEXT_V3 = "x-amz-t"
WRAP_V3 = "x-amz-w"
COMMITMENT_V3 = "x-amz-d"
MESSAGE_ID_V3 = "x-amz-i"
UNENCRYPTED_LENGTH = "x-amz-unencrypted-content-length"

#: The keys of which an object carries exactly one.
EXCLUSIVE_KEYS = (KEY_V1, KEY_V2, KEY_V3)
#: The V3 keys that always stay in the object's own metadata (never in an instruction file).
V3_OBJECT_KEYS = frozenset({CONTENT_V3, COMMITMENT_V3, MESSAGE_ID_V3})
#: Every key the S3 Encryption Clients write (what an instruction file may hold), as the Python client lists.
S3EC_KEYS = frozenset(
    {
        KEY_V1,
        KEY_V2,
        WRAP_ALG,
        MATDESC,
        IV,
        CEK_ALG,
        TAG_LEN,
        INSTRUCTION_FILE_MARKER,
        CONTENT_V3,
        KEY_V3,
        MATDESC_V3,
        CONTEXT_V3,
        WRAP_V3,
        COMMITMENT_V3,
        MESSAGE_ID_V3,
    }
)

#: ``x-amz-w`` code -> wrap algorithm.
V3_WRAP_CODES: Mapping[str, str] = {
    "02": WrapAlgorithm.AES_GCM,
    "12": WrapAlgorithm.KMS_CONTEXT,
    "22": WrapAlgorithm.RSA_OAEP_SHA1,
}
_V3_WRAP_NAMES = {name: code for code, name in V3_WRAP_CODES.items()}
#: Java V1's legacy wrappings (readable names only: no cse provider implements them).
AES_WRAP = "AESWrap"
RSA_OAEP_SHA256_ECB = "RSA/ECB/OAEPWithSHA-256AndMGF1Padding"
#: What Java infers for V1 objects without ``x-amz-wrap-alg`` (the key's own JCE default cipher).
LEGACY_AES = "AES"
LEGACY_RSA = "RSA"
#: The ``x-amz-wrap-alg`` values of the specification.
_V2_WRAPS = frozenset(
    {
        WrapAlgorithm.AES_GCM,
        AES_WRAP,
        WrapAlgorithm.KMS_CONTEXT,
        WrapAlgorithm.KMS,
        RSA_OAEP_SHA256_ECB,
        WrapAlgorithm.RSA_OAEP_SHA1,
    }
)
_KMS_WRAPS = frozenset({WrapAlgorithm.KMS_CONTEXT, WrapAlgorithm.KMS})
_DECIMAL = re.compile(r"[0-9]{1,19}")


# ----------------------------------------------------------------------------------------------- helpers


def _dump_map(value: Mapping[str, str]) -> str:
    """A JSON object as the official Python client writes it (``json.dumps`` defaults: ASCII, ``", "``)."""
    return json.dumps(dict(value))


def _plaintext_length(metadata: Mapping[str, str], fmt: str) -> int | None:
    raw = metadata.get(UNENCRYPTED_LENGTH)
    if raw is None:
        return None
    if not isinstance(raw, str) or not _DECIMAL.fullmatch(raw):
        raise MetadataError(f"{fmt} metadata field {UNENCRYPTED_LENGTH!r} must be a decimal byte count")
    return int(raw)


def _refuse_mixed_versions(metadata: Mapping[str, str], fmt: str) -> None:
    present = [key for key in EXCLUSIVE_KEYS if key in metadata]
    if len(present) > 1:
        raise MetadataError(
            f"refusing: the metadata carries {' and '.join(present)}; an S3-encrypted object carries exactly "
            f"one of {', '.join(EXCLUSIVE_KEYS)} (the object or its instruction file may have been tampered "
            f"with), so {fmt} will not guess which one to trust"
        )


def _check_ascii(value: Mapping[str, str], what: str) -> None:
    for k, v in value.items():
        if not (k.isascii() and v.isascii()):
            raise ConfigurationError(
                f"{what} keys and values must be US-ASCII in the S3 formats (S3 metadata is ASCII, and the "
                f"official S3 Encryption Client refuses the rest); {k!r} is not"
            )


def _kms_context(envelope: Envelope, fmt: str) -> dict[str, str]:
    """The stored KMS context: the envelope's, with ``aws:x-amz-cek-alg`` = the content algorithm."""
    context = dict(envelope.encryption_context)
    expected = envelope.content_algorithm
    given = context.get(RESERVED_CONTEXT_KEY)
    if given is not None and given != expected:
        raise ConfigurationError(
            f"the encryption context key {RESERVED_CONTEXT_KEY!r} is reserved by the S3 formats (the "
            f"{fmt} format sets it to {expected!r}); remove it from your encryption context"
        )
    context.setdefault(RESERVED_CONTEXT_KEY, expected)
    _check_ascii(context, "encryption context")
    return context


def _raw_wrap_context(envelope: Envelope, wrapped: WrappedKey, fmt: str) -> None:
    """Refuse an encryption context with a raw-key wrapping (nothing would authenticate it)."""
    rest = {
        k: v
        for k, v in envelope.encryption_context.items()
        if not (k == RESERVED_CONTEXT_KEY and v == envelope.content_algorithm)
    }
    if rest:
        raise ConfigurationError(
            f"the {fmt} format authenticates an encryption context only with kms+context; with "
            f"{wrapped.wrap_algorithm} it would be stored unauthenticated. Drop the encryption context, use "
            f"an aws-kms:// key, or write cse-v1 (which binds the context into every segment)"
        )


def _single_key(envelope: Envelope, fmt: str) -> WrappedKey:
    if len(envelope.wrapped_keys) != 1:
        raise ConfigurationError(
            f"the {fmt} format records exactly one wrapped key, not {len(envelope.wrapped_keys)}"
        )
    wrapped = envelope.wrapped_keys[0]
    if wrapped.wrapped_iv is not None:
        raise ConfigurationError(
            f"the {fmt} format stores the IV in the clear; it cannot record a wrapped IV"
        )
    return wrapped


def _common_tail(envelope: Envelope, out: dict[str, str]) -> dict[str, str]:
    if envelope.plaintext_length is not None:
        out[UNENCRYPTED_LENGTH] = str(envelope.plaintext_length)
    if envelope.instruction_file:
        out[INSTRUCTION_FILE_MARKER] = ""
    return out


def _envelope(fmt: str, **fields: Any) -> Envelope:
    try:
        return Envelope(format=fmt, **fields)
    except ValidationError as exc:
        raise MetadataError(f"{fmt} metadata is invalid: {_first_error(exc)}") from None


def _wrapped(fmt: str, **fields: Any) -> WrappedKey:
    try:
        return WrappedKey(**fields)
    except ValidationError as exc:
        raise MetadataError(f"{fmt} metadata holds an invalid wrapped key: {_first_error(exc)}") from None


def _context_or_description(
    wrap: str, stored: dict[str, str], fmt: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Split a V1/V2 ``x-amz-matdesc`` into (encryption context, material description) by wrap algorithm."""
    if wrap in _KMS_WRAPS:
        return stored, {}
    return {}, stored


# ------------------------------------------------------------------------------------------------ formats


class _S3Format(Format):
    """What the three S3 formats share."""

    commitment_policy_applies: ClassVar[bool] = True
    reserved_context_keys: ClassVar[frozenset[str]] = frozenset({RESERVED_CONTEXT_KEY, KMS_CMK_ID})
    #: The keys whose presence makes :meth:`detect` claim the metadata.
    _markers: ClassVar[tuple[str, ...]] = ()


class S3V3Format(_S3Format):
    """S3 Encryption Client V3: key-committing AES-256-GCM (``x-amz-c: 115``), the default on S3."""

    name = "s3-v3"
    content_algorithm = ContentAlgorithm.AES_GCM_COMMITTING
    wrap_algorithms = (WrapAlgorithm.KMS_CONTEXT, WrapAlgorithm.RSA_OAEP_SHA1, WrapAlgorithm.AES_GCM)
    key_committing = True

    def detect(self, metadata: Mapping[str, str]) -> bool:
        """True when ``x-amz-3`` or ``x-amz-c`` is present (decode then checks the rest)."""
        return KEY_V3 in metadata or CONTENT_V3 in metadata

    def decode(self, metadata: Mapping[str, str]) -> Envelope:
        """Parse V3 metadata; every problem raises :class:`MetadataError` naming the field."""
        fmt = self.name
        _refuse_mixed_versions(metadata, fmt)
        if KEY_V3 not in metadata and CONTENT_V3 in metadata:
            raise MetadataError(
                f"{fmt} metadata has no {KEY_V3!r}: the object keeps its wrapped key in an instruction file "
                "(KEY.instruction), which was not found, or the store does not read instruction files"
            )
        content = _required(metadata, CONTENT_V3, fmt)
        if content != ContentAlgorithm.AES_GCM_COMMITTING:
            raise MetadataError(
                f"{fmt} metadata field {CONTENT_V3!r} is {content!r}; the V3 format takes only "
                f"{ContentAlgorithm.AES_GCM_COMMITTING!r}"
            )
        code = _required(metadata, WRAP_V3, fmt)
        wrap = V3_WRAP_CODES.get(code)
        if wrap is None:
            raise MetadataError(
                f"{fmt} metadata field {WRAP_V3!r} is {code!r}; expected one of {', '.join(V3_WRAP_CODES)}"
            )
        ciphertext = _unb64(metadata, KEY_V3, fmt)
        message_id = _unb64(metadata, MESSAGE_ID_V3, fmt, 28)
        commitment = _unb64(metadata, COMMITMENT_V3, fmt, 28)
        context = _json_map(metadata, CONTEXT_V3, fmt)
        description = _json_map(metadata, MATDESC_V3, fmt)
        if wrap == WrapAlgorithm.KMS_CONTEXT:
            # As the Java and Python clients: x-amz-t for kms+context, x-amz-m for raw keys (other ignored)
            if context is None:
                raise MetadataError(
                    f"{fmt} metadata is missing the field {CONTEXT_V3!r}, the encryption context of its "
                    "kms+context key (every S3 client stores at least aws:x-amz-cek-alg there)"
                )
            description = {}
            given = context.get(RESERVED_CONTEXT_KEY)
            if given is not None and given != ContentAlgorithm.AES_GCM_COMMITTING:
                raise MetadataError(
                    f"{fmt} metadata field {CONTEXT_V3!r} gives {RESERVED_CONTEXT_KEY}={given!r}, which "
                    f"contradicts {CONTENT_V3}={ContentAlgorithm.AES_GCM_COMMITTING!r}"
                )
        else:
            context, description = {}, description or {}
        return _envelope(
            fmt,
            content_algorithm=ContentAlgorithm.AES_GCM_COMMITTING,
            wrapped_keys=(
                _wrapped(fmt, wrap_algorithm=wrap, ciphertext=ciphertext, material_description=description),
            ),
            message_id=message_id,
            commitment=commitment,
            encryption_context=context,
            plaintext_length=_plaintext_length(metadata, fmt),
            instruction_file=INSTRUCTION_FILE_MARKER in metadata,
        )

    def encode(self, envelope: Envelope) -> dict[str, str]:
        """V3 metadata for ``envelope`` (see the module docstring for the encryption context rules)."""
        fmt = self.name
        if envelope.content_algorithm != ContentAlgorithm.AES_GCM_COMMITTING:
            raise ConfigurationError(
                f"{fmt} carries only {ContentAlgorithm.AES_GCM_COMMITTING}, not {envelope.content_algorithm}"
            )
        assert envelope.message_id is not None and envelope.commitment is not None  # envelope-validated
        wrapped = _single_key(envelope, fmt)
        code = _V3_WRAP_NAMES.get(wrapped.wrap_algorithm)
        if code is None:
            raise ConfigurationError(
                f"the {fmt} format cannot describe a key wrapped with {wrapped.wrap_algorithm}; it takes "
                f"{', '.join(V3_WRAP_CODES.values())}"
            )
        out = {
            CONTENT_V3: ContentAlgorithm.AES_GCM_COMMITTING,
            KEY_V3: _b64(wrapped.ciphertext),
            WRAP_V3: code,
            MESSAGE_ID_V3: _b64(envelope.message_id),
            COMMITMENT_V3: _b64(envelope.commitment),
        }
        if wrapped.wrap_algorithm == WrapAlgorithm.KMS_CONTEXT:
            out[CONTEXT_V3] = _dump_map(_kms_context(envelope, fmt))
        else:
            _raw_wrap_context(envelope, wrapped, fmt)
            _check_ascii(wrapped.material_description, "material description")
            if wrapped.material_description:
                out[MATDESC_V3] = _dump_map(wrapped.material_description)
        return _common_tail(envelope, out)


class S3V2Format(_S3Format):
    """S3 Encryption Client V2: AES-256-GCM without key commitment (``x-amz-cek-alg: AES/GCM/NoPadding``)."""

    name = "s3-v2"
    content_algorithm = ContentAlgorithm.AES_GCM
    wrap_algorithms = (WrapAlgorithm.KMS_CONTEXT, WrapAlgorithm.RSA_OAEP_SHA1, WrapAlgorithm.AES_GCM)
    key_committing = False

    def detect(self, metadata: Mapping[str, str]) -> bool:
        """True when ``x-amz-key-v2`` is present, unless ``x-amz-cek-alg`` says legacy CBC (that is V1's)."""
        return KEY_V2 in metadata and metadata.get(CEK_ALG) != ContentAlgorithm.AES_CBC

    def decode(self, metadata: Mapping[str, str]) -> Envelope:
        """Parse V2 metadata; every problem raises :class:`MetadataError` naming the field."""
        fmt = self.name
        _refuse_mixed_versions(metadata, fmt)
        mixed = sorted(V3_OBJECT_KEYS & set(metadata))
        if mixed:
            raise MetadataError(
                f"refusing: {fmt} metadata sits beside the V3 content keys {', '.join(mixed)}; no client "
                "writes that (an instruction file may have been swapped to downgrade a V3 object)"
            )
        content = _required(metadata, CEK_ALG, fmt)
        if content != ContentAlgorithm.AES_GCM:
            raise MetadataError(
                f"{fmt} metadata field {CEK_ALG!r} is {content!r}; expected {ContentAlgorithm.AES_GCM!r}"
            )
        tag_length = _required(metadata, TAG_LEN, fmt)
        if tag_length != "128":
            raise MetadataError(f"{fmt} metadata field {TAG_LEN!r} is {tag_length!r}; expected '128'")
        wrap = _required(metadata, WRAP_ALG, fmt)
        if wrap not in _V2_WRAPS:
            raise MetadataError(
                f"{fmt} metadata field {WRAP_ALG!r} is {wrap!r}; "
                f"expected one of {', '.join(sorted(_V2_WRAPS))}"
            )
        ciphertext = _unb64(metadata, KEY_V2, fmt)
        iv = _unb64(metadata, IV, fmt, 12)
        stored = _json_map(metadata, MATDESC, fmt)
        if stored is None and wrap == WrapAlgorithm.KMS_CONTEXT:
            raise MetadataError(
                f"{fmt} metadata is missing the field {MATDESC!r}, the encryption context of its kms+context "
                "key (every S3 client stores at least aws:x-amz-cek-alg there)"
            )
        context, description = _context_or_description(wrap, stored or {}, fmt)
        if wrap == WrapAlgorithm.KMS_CONTEXT:
            given = context.get(RESERVED_CONTEXT_KEY)
            if given is not None and given != ContentAlgorithm.AES_GCM:
                raise MetadataError(
                    f"{fmt} metadata field {MATDESC!r} gives {RESERVED_CONTEXT_KEY}={given!r}, which "
                    f"contradicts {CEK_ALG}={ContentAlgorithm.AES_GCM!r}"
                )
        return _envelope(
            fmt,
            content_algorithm=ContentAlgorithm.AES_GCM,
            wrapped_keys=(
                _wrapped(fmt, wrap_algorithm=wrap, ciphertext=ciphertext, material_description=description),
            ),
            iv=iv,
            tag_length=128,
            encryption_context=context,
            plaintext_length=_plaintext_length(metadata, fmt),
            instruction_file=INSTRUCTION_FILE_MARKER in metadata,
        )

    def encode(self, envelope: Envelope) -> dict[str, str]:
        """V2 metadata for ``envelope``, with ``x-amz-tag-len: 128`` (the Java reader requires it)."""
        fmt = self.name
        if envelope.content_algorithm != ContentAlgorithm.AES_GCM:
            raise ConfigurationError(
                f"{fmt} carries only {ContentAlgorithm.AES_GCM}, not {envelope.content_algorithm}"
            )
        if envelope.iv is None:
            raise ConfigurationError(f"{fmt} needs the 12-byte content IV")
        if envelope.tag_length not in (None, 128):
            raise ConfigurationError(f"{fmt} writes 128-bit GCM tags only, not {envelope.tag_length}")
        wrapped = _single_key(envelope, fmt)
        wrap = wrapped.wrap_algorithm
        if wrap not in _V2_WRAPS:
            raise ConfigurationError(
                f"the {fmt} format cannot describe a key wrapped with {wrap}; it takes "
                f"{', '.join(self.wrap_algorithms)}"
            )
        if wrap == WrapAlgorithm.KMS_CONTEXT:
            stored = _kms_context(envelope, fmt)
        elif wrap == WrapAlgorithm.KMS:
            stored = dict(envelope.encryption_context)  # legacy: the context KMS was called with, as it is
            _check_ascii(stored, "encryption context")
        else:
            _raw_wrap_context(envelope, wrapped, fmt)
            stored = dict(wrapped.material_description)
            _check_ascii(stored, "material description")
        out = {
            KEY_V2: _b64(wrapped.ciphertext),
            IV: _b64(envelope.iv),
            CEK_ALG: ContentAlgorithm.AES_GCM,
            WRAP_ALG: wrap,
            TAG_LEN: "128",
            MATDESC: _dump_map(stored),
        }
        return _common_tail(envelope, out)


class S3V1Format(_S3Format):
    """S3 Encryption Client V1: legacy AES-256-CBC, unauthenticated. Read only, behind ``allow_legacy``.

    Reading a CBC body needs its plaintext length, so ``x-amz-unencrypted-content-length`` (which the
    official V1 clients write) is required to decrypt; the metadata decodes without it.
    """

    name = "s3-v1"
    content_algorithm = ContentAlgorithm.AES_CBC
    wrap_algorithms = ()
    writable = False
    legacy = True
    key_committing = False

    def detect(self, metadata: Mapping[str, str]) -> bool:
        """True when ``x-amz-key`` is present, or ``x-amz-key-v2`` with ``x-amz-cek-alg`` CBC."""
        return KEY_V1 in metadata or (
            KEY_V2 in metadata and metadata.get(CEK_ALG) == ContentAlgorithm.AES_CBC
        )

    def decode(self, metadata: Mapping[str, str]) -> Envelope:
        """Parse V1 metadata; every problem raises :class:`MetadataError` naming the field."""
        fmt = self.name
        _refuse_mixed_versions(metadata, fmt)
        mixed = sorted(V3_OBJECT_KEYS & set(metadata))
        if mixed:
            raise MetadataError(
                f"refusing: {fmt} metadata sits beside the V3 content keys {', '.join(mixed)}"
            )
        content = metadata.get(CEK_ALG, ContentAlgorithm.AES_CBC)
        if content != ContentAlgorithm.AES_CBC:
            raise MetadataError(
                f"{fmt} metadata field {CEK_ALG!r} is {content!r}; an {KEY_V1!r} object is "
                f"{ContentAlgorithm.AES_CBC!r}"
            )
        if TAG_LEN in metadata:
            raise MetadataError(
                f"refusing: {fmt} metadata has {TAG_LEN!r}, which only GCM objects carry (was the content "
                "algorithm changed to CBC?)"
            )
        key_field = KEY_V1 if KEY_V1 in metadata else KEY_V2
        ciphertext = _unb64(metadata, key_field, fmt)
        iv = _unb64(metadata, IV, fmt, 16)
        wrap = metadata.get(WRAP_ALG)
        if wrap is None:
            # As the Java client: without x-amz-wrap-alg the key's own JCE default wrapped it, AES or RSA.
            wrap = LEGACY_RSA if len(ciphertext) > 48 else LEGACY_AES
        elif wrap not in _V2_WRAPS:
            raise MetadataError(
                f"{fmt} metadata field {WRAP_ALG!r} is {wrap!r}; "
                f"expected one of {', '.join(sorted(_V2_WRAPS))}"
            )
        stored = _json_map(metadata, MATDESC, fmt)
        context, description = _context_or_description(wrap, stored or {}, fmt)
        return _envelope(
            fmt,
            content_algorithm=ContentAlgorithm.AES_CBC,
            wrapped_keys=(
                _wrapped(fmt, wrap_algorithm=wrap, ciphertext=ciphertext, material_description=description),
            ),
            iv=iv,
            encryption_context=context,
            plaintext_length=_plaintext_length(metadata, fmt),
            instruction_file=INSTRUCTION_FILE_MARKER in metadata,
        )

    def encode(self, envelope: Envelope) -> dict[str, str]:
        """V1 metadata for ``envelope`` (to describe existing objects and build test fixtures)."""
        fmt = self.name
        if envelope.content_algorithm != ContentAlgorithm.AES_CBC:
            raise ConfigurationError(
                f"{fmt} carries only {ContentAlgorithm.AES_CBC}, not {envelope.content_algorithm}"
            )
        if envelope.iv is None or len(envelope.iv) != 16:
            raise ConfigurationError(f"{fmt} needs the 16-byte content IV")
        wrapped = _single_key(envelope, fmt)
        wrap = wrapped.wrap_algorithm
        if wrap in _KMS_WRAPS:
            stored = dict(envelope.encryption_context)
        else:
            _raw_wrap_context(envelope, wrapped, fmt)
            stored = dict(wrapped.material_description)
        _check_ascii(stored, "material description")
        out = {KEY_V1: _b64(wrapped.ciphertext), IV: _b64(envelope.iv), MATDESC: _dump_map(stored)}
        inferred = LEGACY_RSA if len(wrapped.ciphertext) > 48 else LEGACY_AES
        if wrap != inferred:
            if wrap not in _V2_WRAPS:
                raise ConfigurationError(f"the {fmt} format cannot describe a key wrapped with {wrap}")
            out[WRAP_ALG] = wrap
        return _common_tail(envelope, out)


def _register() -> None:
    from cse.content import register_codec

    register_codec(CbcCodec())


_register()
