"""The metadata formats of the Alibaba Cloud OSS client-side encryption SDKs: ``oss-v2`` and ``oss-v1``.

User-metadata keys, without the ``x-oss-meta-`` prefix that OSS adds (names from ``oss2/headers.py`` and
``alibabacloud_oss_v2/encryption_client.py``):

* ``client-side-encryption-key``: base64 of the wrapped 32-byte content key (KMS: see below);
* ``client-side-encryption-start``: base64 of the *wrapped* 16-byte CTR IV (KMS: see below);
* ``client-side-encryption-cek-alg``: ``AES/CTR/NoPadding``;
* ``client-side-encryption-wrap-alg``: ``RSA/NONE/PKCS1Padding`` or ``KMS/ALICLOUD`` (written), or
  ``RSA/NONE/OAEPWithSHA-1AndMGF1Padding`` (read: oss2's deprecated ``LocalRsaProvider``);
* ``client-side-encryption-matdesc``: the material description, a JSON object of strings; omitted when
  empty;
* ``client-side-encryption-unencrypted-content-length``: the plaintext length, decimal, when known;
* ``client-side-encryption-unencrypted-content-md5``: base64 of the plaintext's MD5, when known;
* ``client-side-encryption-data-size`` and ``client-side-encryption-part-size``: multipart plaintext size
  and part size, decimal, sent on Initiate and, with the rest of the crypto context, on every UploadPart
  (:meth:`OssV2Format.part_headers`).

The IV is wrapped with the same key provider as the content key, with one wrap call each (the client does
that when :attr:`Format.wraps_iv` is true); a decoded envelope carries it in
:attr:`~cse.envelope.WrappedKey.wrapped_iv` and leaves :attr:`~cse.envelope.Envelope.iv` ``None``.

Material description. It belongs to the wrapped key (:attr:`~cse.envelope.WrappedKey.material_description`)
and is written as compact JSON with sorted keys and ASCII escapes (``{"a":"1","b":"2"}``), which is what
Go's ``json.Marshal`` of a ``map[string]string`` gives; alibabacloud-oss-v2 selects a master key by
comparing this raw string, so Go-written and cse-written objects select the same key. Readers parse any
JSON formatting (oss2 and the Python alibabacloud-oss-v2 write ``json.dumps`` with spaces).

Encryption context. OSS stores none. oss2's ``AliKMSProvider(passphrase=...)`` sends
``EncryptionContext='{"x-passphrase":"<passphrase>"}'`` to KMS on every call but records nothing in the
object, so the reader must know the passphrase out of band: that is a setting of the Alibaba Cloud KMS key
provider, not of this format. :meth:`OssV2Format.encode` therefore refuses an envelope with a non-empty
encryption context (it would be lost), and decoded envelopes have an empty one.

KMS ciphertext representation (``KMS/ALICLOUD``). The KMS API speaks base64 text: ``CiphertextBlob`` is a
base64 string, and ``Decrypt`` takes it back as a string. For a ``KMS/ALICLOUD`` key,
:attr:`WrappedKey.ciphertext <cse.envelope.WrappedKey.ciphertext>` and
:attr:`WrappedKey.wrapped_iv <cse.envelope.WrappedKey.wrapped_iv>` hold **the CiphertextBlob text, as its
ASCII bytes** -- exactly the string to send to KMS ``Decrypt`` -- whichever SDK wrote the object:

* Go, Java, C++ and alibabacloud-oss-v2 write the header as base64 of the raw blob bytes, which is the
  CiphertextBlob string itself (single base64). ``b64decode(header)`` is binary. cse takes the header
  verbatim: ``ciphertext = header.encode("ascii")``.
* oss2's ``AliKMSProvider`` writes ``base64(CiphertextBlob text)`` (double base64). ``b64decode(header)`` is
  itself base64 text. cse takes that: ``ciphertext = b64decode(header)``.

The two are told apart by :func:`kms_blob_text`: the header is oss2 style when ``b64decode(header)`` is
non-empty canonical base64 text (only ``A-Z a-z 0-9 + /``, ``=`` padding, a multiple of 4 long) that itself
decodes to at least :data:`MIN_KMS_BLOB` bytes. A real (binary) KMS blob of that length is all base64
characters with probability below 2**-32. :meth:`OssV2Format.encode` always writes the Go/Java style
(header = the CiphertextBlob text verbatim), so an oss2-style object re-encoded (``rewrap``) changes style;
oss2 itself cannot read Go-style KMS objects (formats.md: "the two do not interoperate"), but every other
SDK can.

In both styles ``Decrypt`` returns ``Plaintext`` = base64 of the secret (the 32-byte key or the 16-byte IV):
Go and oss2 ``Encrypt`` the IV with ``Plaintext=b64(iv)``; oss2 ``GenerateDataKey`` returns the key's
``Plaintext`` in base64 and Go ``Encrypt``\\ s ``b64(key)``. So the KMS provider sends ``ciphertext`` (as
text) to ``Decrypt`` and base64-decodes ``Plaintext``; when wrapping it returns the ``CiphertextBlob`` text
as ASCII bytes (``GenerateDataKey`` for the key, ``Encrypt(Plaintext=b64(iv))`` for the IV).

V1 (``oss-v1``, oss2 2.4 to 2.10, read only, legacy): ``oss-crypto-key``, ``oss-crypto-start``,
``oss-cek-alg`` (says ``AES/GCM/NoPadding`` though the data is CTR), ``oss-wrap-alg`` (``rsa`` = RSA-OAEP
SHA-1, ``kms``), ``oss-crypto-matdesc``, and the plaintext length and MD5 (``unencrypted-content-length``/
``-md5`` as oss2 2.4-2.10 wrote them, ``oss-crypto-unencrypted-content-length``/``-md5`` as later oss2 reads
them). Its "start" is not an IV but a wrapped *decimal counter string*; ``int(text)`` is the initial 128-bit
counter, that is the IV ``int(text).to_bytes(16, "big")`` (:func:`legacy_counter_to_iv`). With ``rsa`` both
headers are base64 of the OAEP ciphertext; with ``kms`` both are the CiphertextBlob text verbatim, and the
counter's ``Decrypt`` ``Plaintext`` is the decimal string itself (not base64), while the key's is base64.
:class:`OssV1Format` says so to the client (:attr:`~cse.formats.base.Format.wrapped_iv_is_text`), which asks
the key provider for text and turns it into the IV with :meth:`OssV1Format.content_iv`.

The deprecated RSA-OAEP wrap (``RSA/NONE/OAEPWithSHA-1AndMGF1Padding``, oss2's ``LocalRsaProvider``) and V1
are read only in the legacy mode (``allow_legacy=True``, ``--allow-legacy``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from pydantic import ValidationError

from cse.envelope import ContentAlgorithm, Envelope, WrapAlgorithm, WrappedKey
from cse.exceptions import ConfigurationError, MetadataError
from cse.formats.base import Format
from cse.formats.fields import b64encode as _b64
from cse.formats.fields import decode_b64 as _b64decode
from cse.formats.fields import first_validation_error as _first_error
from cse.formats.fields import json_text_map
from cse.formats.fields import required_field as _required

__all__ = [
    "MIN_KMS_BLOB",
    "OssV1Format",
    "OssV2Format",
    "kms_blob_text",
    "legacy_counter_to_iv",
]

# ---------------------------------------------------------------------------------------- metadata keys

KEY = "client-side-encryption-key"
START = "client-side-encryption-start"
CEK_ALG = "client-side-encryption-cek-alg"
WRAP_ALG = "client-side-encryption-wrap-alg"
MATDESC = "client-side-encryption-matdesc"
UNENCRYPTED_LENGTH = "client-side-encryption-unencrypted-content-length"
UNENCRYPTED_MD5 = "client-side-encryption-unencrypted-content-md5"
#: cse's own MAC of the plaintext (base64 of 32 bytes), which the official SDKs ignore (docs/oss.md).
PLAINTEXT_MAC = "cse-plaintext-mac"
DATA_SIZE = "client-side-encryption-data-size"
PART_SIZE = "client-side-encryption-part-size"

V1_KEY = "oss-crypto-key"
V1_START = "oss-crypto-start"
V1_CEK_ALG = "oss-cek-alg"
V1_WRAP_ALG = "oss-wrap-alg"
V1_MATDESC = "oss-crypto-matdesc"
V1_UNENCRYPTED_LENGTH = "oss-crypto-unencrypted-content-length"
V1_UNENCRYPTED_MD5 = "oss-crypto-unencrypted-content-md5"
#: What oss2 2.4 to 2.10 actually wrote for the plaintext length and MD5 of V1 objects.
V1_OLD_UNENCRYPTED_LENGTH = "unencrypted-content-length"
V1_OLD_UNENCRYPTED_MD5 = "unencrypted-content-md5"

#: The keys whose presence makes :meth:`OssV2Format.detect` claim the metadata.
V2_MARKERS = (KEY, START, CEK_ALG, WRAP_ALG)
#: The keys whose presence makes :meth:`OssV1Format.detect` claim the metadata.
V1_MARKERS = (V1_KEY, V1_START, V1_CEK_ALG, V1_WRAP_ALG)

#: The shortest decoded blob for which a base64-text header is taken as oss2's double base64.
MIN_KMS_BLOB = 16

#: ``client-side-encryption-wrap-alg`` values cse reads.
_V2_WRAPS = frozenset({WrapAlgorithm.RSA_PKCS1, WrapAlgorithm.ALIYUN_KMS, WrapAlgorithm.RSA_OAEP_SHA1_OSS})
#: ``oss-wrap-alg`` values of oss2 2.4-2.10, and what they mean.
V1_WRAPS: Mapping[str, str] = {"rsa": WrapAlgorithm.RSA_OAEP_SHA1_OSS, "kms": WrapAlgorithm.ALIYUN_KMS}
#: ``oss-cek-alg`` values V1 objects carry (oss2 2.4-2.10 wrote GCM for data that is CTR).
_V1_CEK_ALGS = frozenset({"AES/GCM/NoPadding", ContentAlgorithm.AES_CTR})

_DECIMAL = re.compile(r"[0-9]{1,19}")
_COUNTER = re.compile(rb"[0-9]{1,39}")
_B64_TEXT = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


# ----------------------------------------------------------------------------------------------- helpers


def kms_blob_text(header: str, field: str = KEY, fmt: str = "oss-v2") -> bytes:
    """The KMS CiphertextBlob text (ASCII bytes) a ``KMS/ALICLOUD`` key or start header holds.

    Go/Java/alibabacloud-oss-v2 headers are the CiphertextBlob verbatim; oss2 headers are base64 of it
    (double base64); see the module docstring. Raises :class:`MetadataError` naming ``field`` if the header
    is not base64.
    """
    raw = _b64decode(header, field, fmt)
    if _looks_like_blob_text(raw):
        return raw  # oss2: base64(CiphertextBlob text)
    return header.encode("ascii")  # Go/Java: the CiphertextBlob text itself


def _looks_like_blob_text(raw: bytes) -> bool:
    if not raw or len(raw) % 4 or not _B64_TEXT.fullmatch(raw):
        return False
    try:
        return len(base64.b64decode(raw, validate=True)) >= MIN_KMS_BLOB
    except (binascii.Error, ValueError):
        return False


def legacy_counter_to_iv(counter: bytes) -> bytes:
    """The 16-byte CTR IV of an unwrapped oss2 V1 ``oss-crypto-start`` counter (a decimal ASCII string).

    oss2 reads V1 objects with ``cipher.initial_by_counter(key, int(counter))``, a 128-bit big-endian
    counter, which is CTR with this IV. Raises :class:`MetadataError` for anything but 1 to 39 decimal digits
    below 2**128.
    """
    text = bytes(counter).strip()
    if not _COUNTER.fullmatch(text):
        raise MetadataError(f"the unwrapped {V1_START!r} is not a decimal counter")
    value = int(text)
    if value >= 1 << 128:
        raise MetadataError(f"the unwrapped {V1_START!r} counter does not fit in 128 bits")
    return value.to_bytes(16, "big")


def _wrapped_bytes(metadata: Mapping[str, str], field: str, wrap: str, fmt: str) -> bytes:
    """A key or start header as :attr:`WrappedKey.ciphertext` holds it (KMS: the blob text)."""
    value = _required(metadata, field, fmt)
    if wrap == WrapAlgorithm.ALIYUN_KMS:
        return kms_blob_text(value, field, fmt)
    return _b64decode(value, field, fmt)


def _matdesc(metadata: Mapping[str, str], field: str, fmt: str) -> dict[str, str]:
    return json_text_map(metadata, field, fmt) or {}


def _dump_matdesc(value: Mapping[str, str]) -> str:
    """Compact, sorted, ASCII JSON: what Go's ``json.Marshal`` of a ``map[string]string`` writes."""
    return json.dumps(dict(value), separators=(",", ":"), sort_keys=True)


def _decimal(metadata: Mapping[str, str], field: str, fmt: str, positive: bool = False) -> int | None:
    raw = metadata.get(field)
    if raw is None:
        return None
    if not isinstance(raw, str) or not _DECIMAL.fullmatch(raw):
        raise MetadataError(f"{fmt} metadata field {field!r} must be a decimal byte count")
    value = int(raw)
    if positive and value == 0:
        raise MetadataError(f"{fmt} metadata field {field!r} must be positive")
    return value


def _md5(metadata: Mapping[str, str], field: str, fmt: str) -> str | None:
    raw = metadata.get(field)
    if raw is None:
        return None
    if not isinstance(raw, str) or len(_b64decode(raw, field, fmt)) != 16:
        raise MetadataError(f"{fmt} metadata field {field!r} must be the base64 of a 16-byte MD5")
    return raw


def _ctr_envelope(
    fmt: str,
    wrap: str,
    ciphertext: bytes,
    wrapped_iv: bytes,
    description: dict[str, str],
    *,
    plaintext_length: int | None,
    plaintext_md5: str | None,
    data_size: int | None = None,
    part_size: int | None = None,
    plaintext_mac: bytes | None = None,
) -> Envelope:
    """The envelope of an OSS object: AES-CTR, one wrapped key with its wrapped IV, and its sizes."""
    try:
        wrapped = WrappedKey(
            wrap_algorithm=wrap,
            ciphertext=ciphertext,
            wrapped_iv=wrapped_iv,
            material_description=description,
        )
        return Envelope(
            format=fmt,
            content_algorithm=ContentAlgorithm.AES_CTR,
            wrapped_keys=(wrapped,),
            plaintext_length=plaintext_length,
            plaintext_md5=plaintext_md5,
            data_size=data_size,
            part_size=part_size,
            plaintext_mac=plaintext_mac,
        )
    except ValidationError as exc:
        raise MetadataError(f"{fmt} metadata is invalid: {_first_error(exc)}") from None


def _plaintext_mac(metadata: Mapping[str, str], fmt: str) -> bytes | None:
    """cse's plaintext MAC, if the object has one: base64 of exactly 32 bytes, else MetadataError."""
    value = metadata.get(PLAINTEXT_MAC)
    if value is None:
        return None
    try:
        mac = base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, UnicodeError):
        mac = b""
    if len(mac) != 32:
        raise MetadataError(f"{fmt} metadata field {PLAINTEXT_MAC!r} is not base64 of a 32-byte MAC")
    return mac


def _blob_text(value: bytes, what: str, fmt: str) -> str:
    """The header for a KMS blob text, refusing bytes that are not base64 text (a provider bug)."""
    if not _B64_TEXT.fullmatch(value) or len(value) % 4:
        raise ConfigurationError(
            f"the {fmt} format records a KMS/ALICLOUD {what} as the KMS CiphertextBlob text; the key "
            "provider gave bytes that are not base64 text"
        )
    return value.decode("ascii")


# ------------------------------------------------------------------------------------------------ formats


class OssV2Format(Format):
    """OSS client-side encryption V2: AES-256-CTR with the key and the IV wrapped separately.

    Written and read by oss2 (``CryptoBucket``), alibabacloud-oss-v2 (``EncryptionClient``) and the Go,
    Java and C++ SDKs. Not authenticated: CTR has no integrity check (the OSS SDKs rely on the server's
    CRC-64 of the ciphertext); any byte range decrypts directly.
    """

    name = "oss-v2"
    content_algorithm = ContentAlgorithm.AES_CTR
    wrap_algorithms = (WrapAlgorithm.RSA_PKCS1, WrapAlgorithm.ALIYUN_KMS)
    legacy_wrap_algorithms = frozenset({WrapAlgorithm.RSA_OAEP_SHA1_OSS})
    wraps_iv = True
    writable = True
    legacy = False
    key_committing = False
    commitment_policy_applies = False

    def detect(self, metadata: Mapping[str, str]) -> bool:
        """True when any of the key, start, cek-alg and wrap-alg fields is present (decode checks them all).

        Claiming metadata that holds only some of them turns a damaged object into a
        :class:`MetadataError` naming the missing field rather than "not encrypted by a known format".
        """
        return any(field in metadata for field in V2_MARKERS)

    def decode(self, metadata: Mapping[str, str]) -> Envelope:
        """Parse V2 metadata; every problem raises :class:`MetadataError` naming the field."""
        fmt = self.name
        legacy = [field for field in V1_MARKERS if field in metadata]
        if legacy:
            raise MetadataError(
                f"refusing: {fmt} metadata sits beside the legacy V1 field {legacy[0]!r}; no SDK writes both "
                "(oss2 would read the object as V1), so cse will not guess which to trust"
            )
        content = _required(metadata, CEK_ALG, fmt)
        if content != ContentAlgorithm.AES_CTR:
            raise MetadataError(
                f"{fmt} metadata field {CEK_ALG!r} is {content!r}; expected {ContentAlgorithm.AES_CTR!r}"
            )
        wrap = _required(metadata, WRAP_ALG, fmt)
        if wrap not in _V2_WRAPS:
            raise MetadataError(
                f"{fmt} metadata field {WRAP_ALG!r} is {wrap!r}; "
                f"expected one of {', '.join(sorted(_V2_WRAPS))}"
            )
        ciphertext = _wrapped_bytes(metadata, KEY, wrap, fmt)
        wrapped_iv = _wrapped_bytes(metadata, START, wrap, fmt)
        return _ctr_envelope(
            fmt,
            wrap,
            ciphertext,
            wrapped_iv,
            _matdesc(metadata, MATDESC, fmt),
            plaintext_length=_decimal(metadata, UNENCRYPTED_LENGTH, fmt),
            plaintext_md5=_md5(metadata, UNENCRYPTED_MD5, fmt),
            data_size=_decimal(metadata, DATA_SIZE, fmt),
            part_size=_decimal(metadata, PART_SIZE, fmt, positive=True),
            plaintext_mac=_plaintext_mac(metadata, fmt),
        )

    def encode(self, envelope: Envelope) -> dict[str, str]:
        """V2 metadata for ``envelope``: one wrapped key with its wrapped IV, no encryption context."""
        fmt = self.name
        if envelope.content_algorithm != ContentAlgorithm.AES_CTR:
            raise ConfigurationError(
                f"{fmt} carries only {ContentAlgorithm.AES_CTR}, not {envelope.content_algorithm}"
            )
        if len(envelope.wrapped_keys) != 1:
            raise ConfigurationError(
                f"the {fmt} format records exactly one wrapped key, not {len(envelope.wrapped_keys)}"
            )
        if envelope.iv is not None:
            raise ConfigurationError(f"the {fmt} format wraps the IV; it cannot record an IV in the clear")
        if envelope.encryption_context:
            raise ConfigurationError(
                f"the {fmt} format stores no encryption context, so it would be lost; drop it (an oss2 KMS "
                "passphrase is a setting of the Alibaba Cloud KMS key, not of the object), or write cse-v1"
            )
        wrapped = envelope.wrapped_keys[0]
        wrap = wrapped.wrap_algorithm
        if wrap not in _V2_WRAPS:
            raise ConfigurationError(
                f"the {fmt} format cannot describe a key wrapped with {wrap}; it takes "
                f"{', '.join(self.wrap_algorithms)}"
            )
        if not wrapped.wrapped_iv:
            raise ConfigurationError(f"the {fmt} format needs the wrapped IV")
        if wrap == WrapAlgorithm.ALIYUN_KMS:
            key = _blob_text(wrapped.ciphertext, "key", fmt)
            start = _blob_text(wrapped.wrapped_iv, "IV", fmt)
        else:
            key, start = _b64(wrapped.ciphertext), _b64(wrapped.wrapped_iv)
        out = {KEY: key, START: start, CEK_ALG: ContentAlgorithm.AES_CTR, WRAP_ALG: wrap}
        if wrapped.material_description:
            out[MATDESC] = _dump_matdesc(wrapped.material_description)
        if envelope.plaintext_length is not None:
            out[UNENCRYPTED_LENGTH] = str(envelope.plaintext_length)
        if envelope.plaintext_md5 is not None:
            out[UNENCRYPTED_MD5] = envelope.plaintext_md5
        if envelope.data_size is not None:
            out[DATA_SIZE] = str(envelope.data_size)
        if envelope.part_size is not None:
            out[PART_SIZE] = str(envelope.part_size)
        if envelope.plaintext_mac is not None:
            out[PLAINTEXT_MAC] = _b64(envelope.plaintext_mac)
        return out

    def part_headers(self, envelope: Envelope) -> dict[str, str]:
        """What every UploadPart carries: the crypto context (wrapped key and IV, algorithms, material
        description) with ``data-size`` and ``part-size``, as oss2 and alibabacloud-oss-v2 send it.

        The plaintext length and MD5 belong to the whole object and are left out. Empty when the envelope
        has no multipart layout.
        """
        if envelope.part_size is None:
            return {}
        encoded = self.encode(envelope)
        return {
            k: v for k, v in encoded.items() if k not in (UNENCRYPTED_LENGTH, UNENCRYPTED_MD5, PLAINTEXT_MAC)
        }


class OssV1Format(Format):
    """OSS client-side encryption V1 (oss2 2.4 to 2.10): legacy, read only (``allow_legacy``).

    The "start" is a wrapped *decimal counter string*, not a wrapped IV: the client asks the key provider
    for text (:attr:`wrapped_iv_is_text`) and :meth:`content_iv` turns it into the IV
    (:func:`legacy_counter_to_iv`). ``rsa`` wraps both with RSA-OAEP (SHA-1) and base64; ``kms`` stores both
    CiphertextBlobs as they are. The plaintext length is read from ``oss-crypto-unencrypted-content-length``
    or, as oss2 2.4 to 2.10 wrote it, ``unencrypted-content-length``.
    """

    name = "oss-v1"
    content_algorithm = ContentAlgorithm.AES_CTR
    wrap_algorithms = ()
    wraps_iv = True
    writable = False
    legacy = True
    key_committing = False
    commitment_policy_applies = False
    wrapped_iv_is_text = True

    def detect(self, metadata: Mapping[str, str]) -> bool:
        """True when any of ``oss-crypto-key``, ``oss-crypto-start``, ``oss-cek-alg``, ``oss-wrap-alg``."""
        return any(field in metadata for field in V1_MARKERS)

    def content_iv(self, secret: bytes) -> bytes:
        """The IV of the unwrapped decimal counter (:func:`legacy_counter_to_iv`)."""
        return legacy_counter_to_iv(secret)

    def decode(self, metadata: Mapping[str, str]) -> Envelope:
        """Parse V1 metadata; every problem raises :class:`MetadataError` naming the field."""
        fmt = self.name
        content = _required(metadata, V1_CEK_ALG, fmt)
        if content not in _V1_CEK_ALGS:
            raise MetadataError(
                f"{fmt} metadata field {V1_CEK_ALG!r} is {content!r}; expected one of "
                f"{', '.join(sorted(_V1_CEK_ALGS))}"
            )
        code = _required(metadata, V1_WRAP_ALG, fmt)
        wrap = V1_WRAPS.get(code)
        if wrap is None:
            raise MetadataError(
                f"{fmt} metadata field {V1_WRAP_ALG!r} is {code!r}; expected one of {', '.join(V1_WRAPS)}"
            )
        ciphertext = _wrapped_bytes(metadata, V1_KEY, wrap, fmt)
        wrapped_iv = _wrapped_bytes(metadata, V1_START, wrap, fmt)
        length_field = (
            V1_UNENCRYPTED_LENGTH if V1_UNENCRYPTED_LENGTH in metadata else V1_OLD_UNENCRYPTED_LENGTH
        )
        md5_field = V1_UNENCRYPTED_MD5 if V1_UNENCRYPTED_MD5 in metadata else V1_OLD_UNENCRYPTED_MD5
        return _ctr_envelope(
            fmt,
            wrap,
            ciphertext,
            wrapped_iv,
            _matdesc(metadata, V1_MATDESC, fmt),
            plaintext_length=_decimal(metadata, length_field, fmt),
            plaintext_md5=_md5(metadata, md5_field, fmt),
        )

    def encode(self, envelope: Envelope) -> dict[str, str]:
        """Always raises :class:`~cse.exceptions.ConfigurationError`: V1 is never written."""
        raise ConfigurationError(f"the legacy {self.name} format is read only; write oss-v2")
