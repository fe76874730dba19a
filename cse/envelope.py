"""The envelope: a validated model of what an object's encryption metadata says.

A :class:`~cse.formats.Format` decodes untrusted metadata into an :class:`Envelope` and encodes one back.
The model holds the union of what S3 V1/V2/V3, OSS V1/V2 and cse-v1 carry; a format uses the fields its
wire layout has and leaves the rest at their defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ContentAlgorithm", "Envelope", "WrapAlgorithm", "WrappedKey"]


class ContentAlgorithm:
    """Names of the content algorithms, as the wire formats spell them."""

    #: AES-256-GCM, 12-byte IV, 16-byte tag appended (S3 V2).
    AES_GCM = "AES/GCM/NoPadding"
    #: S3 "V3" key-committing AES-256-GCM (suite 0x0073, written as the decimal ``115``).
    AES_GCM_COMMITTING = "115"
    #: AES-256-CTR, 16-byte IV as a 128-bit big-endian counter (OSS V2).
    AES_CTR = "AES/CTR/NoPadding"
    #: AES-256-CBC with PKCS#5 padding (S3 V1, read only, legacy).
    AES_CBC = "AES/CBC/PKCS5Padding"
    #: cse-v1: segmented, key-committing AES-256-GCM (HKDF-SHA256), every segment authenticated.
    CSE_V1 = "cse-v1/AES-256-GCM-HKDF-SHA256-STREAM"


class WrapAlgorithm:
    """Names of the key-wrapping algorithms, as the wire formats spell them."""

    #: AWS KMS GenerateDataKey/Decrypt with the encryption context (S3 V2/V3).
    KMS_CONTEXT = "kms+context"
    #: AWS KMS without context (S3 V1, legacy, read only).
    KMS = "kms"
    #: Alibaba Cloud KMS (OSS V2).
    ALIYUN_KMS = "KMS/ALICLOUD"
    #: RSA PKCS#1 v1.5, key and IV wrapped separately (OSS V2).
    RSA_PKCS1 = "RSA/NONE/PKCS1Padding"
    #: RSA-OAEP (SHA-1, MGF1-SHA1), deprecated OSS LocalRsaProvider (read only).
    RSA_OAEP_SHA1_OSS = "RSA/NONE/OAEPWithSHA-1AndMGF1Padding"
    #: RSA-OAEP-SHA1 over the S3 pseudo-key ``len(key) || key || content algorithm``.
    RSA_OAEP_SHA1 = "RSA-OAEP-SHA1"
    #: RSA-OAEP-SHA256 with the material description as label (cse-v1).
    RSA_OAEP_SHA256 = "RSA-OAEP-SHA256"
    #: AES-256-GCM key wrap with the content algorithm as AAD (S3 ``AES/GCM``).
    AES_GCM = "AES/GCM"


def _check_text_map(value: Mapping[str, str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError(f"{what} maps strings to strings")
        if not (k + v).isascii():
            try:
                (k + v).encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"{what} holds a lone surrogate, which is not Unicode text") from None
        out[k] = v
    return out


class WrappedKey(BaseModel):
    """One wrapped content key, and what a provider needs to unwrap it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The wrap algorithm (see :class:`WrapAlgorithm`).
    wrap_algorithm: str = Field(min_length=1)
    #: The wrapped content key, as the provider's bytes (a KMS ciphertext blob, an RSA ciphertext ...).
    ciphertext: bytes = Field(min_length=1)
    #: The wrapped IV, for formats that wrap it (OSS). ``None`` elsewhere.
    wrapped_iv: bytes | None = None
    #: The key's identifier, where the format records one (a KMS key id or ARN, an RSA key fingerprint).
    key_id: str | None = None
    #: The URI scheme of the provider that wrapped it (``rsa``, ``aws-kms`` ...), where the format records it.
    provider: str | None = None
    #: Material description: the user's free-form key selector (OSS matdesc, S3 ``x-amz-m``).
    material_description: dict[str, str] = Field(default_factory=dict)

    @field_validator("material_description", mode="before")
    @classmethod
    def _text_map(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return _check_text_map(value, "a material description")
        return value

    def __repr__(self) -> str:  # wrapped keys are not secret, but keep logs short
        return (
            f"WrappedKey(wrap_algorithm={self.wrap_algorithm!r}, key_id={self.key_id!r}, "
            f"provider={self.provider!r}, material_description={self.material_description!r})"
        )


class Envelope(BaseModel):
    """Everything an object's encryption metadata says, validated.

    Built from untrusted metadata by a :class:`~cse.formats.Format`; a format turns a
    :class:`pydantic.ValidationError` into a :class:`~cse.exceptions.MetadataError` naming the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The metadata scheme: ``cse-v1``, ``s3-v3``, ``s3-v2``, ``s3-v1``, ``oss-v2``, ``oss-v1`` or a plugin's.
    format: str = Field(min_length=1)
    #: The content algorithm (see :class:`ContentAlgorithm`).
    content_algorithm: str = Field(min_length=1)
    #: The wrapped content key(s); any one of them may be unwrapped. At least one.
    wrapped_keys: tuple[WrappedKey, ...] = Field(min_length=1)
    #: The content IV in the clear (S3 V1/V2). ``None`` where the IV is fixed (S3 V3) or wrapped (OSS).
    iv: bytes | None = None
    #: S3 V3 message id (28 bytes), the HKDF salt of the committing key derivation.
    message_id: bytes | None = None
    #: Key commitment (28 bytes for S3 V3, 32 bytes for cse-v1), checked before decrypting.
    commitment: bytes | None = None
    #: cse-v1 HKDF salt (32 bytes).
    salt: bytes | None = None
    #: cse-v1 nonce prefix (7 bytes).
    nonce_prefix: bytes | None = None
    #: cse-v1 plaintext segment size in bytes.
    segment_size: int | None = Field(default=None, ge=16, le=64 * 1024 * 1024)
    #: GCM tag length in bits (S3 ``x-amz-tag-len``).
    tag_length: int | None = None
    #: Encryption context: authenticated, not secret (KMS context; bound into cse-v1 segments).
    encryption_context: dict[str, str] = Field(default_factory=dict)
    #: Plaintext length, where the writer recorded it (``x-amz-unencrypted-content-length``, OSS
    #: ``unencrypted-content-length``).
    plaintext_length: int | None = Field(default=None, ge=0)
    #: OSS ``unencrypted-content-md5``.
    plaintext_md5: str | None = None
    #: cse's MAC of the plaintext (32 bytes; OSS V2 objects cse wrote in one request, see
    #: :func:`cse.content.plaintext_mac`), checked on whole-object reads.
    plaintext_mac: bytes | None = Field(default=None, min_length=32, max_length=32)
    #: OSS multipart ``data-size`` and ``part-size``.
    data_size: int | None = Field(default=None, ge=0)
    part_size: int | None = Field(default=None, gt=0)
    #: The key material lives in an instruction file (S3), not in the object's metadata.
    instruction_file: bool = False

    @field_validator("encryption_context", mode="before")
    @classmethod
    def _context(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return _check_text_map(value, "the encryption context")
        return value

    @model_validator(mode="after")
    def _lengths(self) -> Envelope:
        alg = self.content_algorithm
        if alg == ContentAlgorithm.AES_GCM and self.iv is not None and len(self.iv) != 12:
            raise ValueError(f"an AES-GCM IV is 12 bytes, not {len(self.iv)}")
        if alg == ContentAlgorithm.AES_CTR and self.iv is not None and len(self.iv) != 16:
            raise ValueError(f"an AES-CTR IV is 16 bytes, not {len(self.iv)}")
        if alg == ContentAlgorithm.AES_GCM_COMMITTING:
            if self.message_id is None or len(self.message_id) != 28:
                raise ValueError("S3 V3 needs a 28-byte message id")
            if self.commitment is None or len(self.commitment) != 28:
                raise ValueError("S3 V3 needs a 28-byte key commitment")
        if alg == ContentAlgorithm.CSE_V1:
            if self.salt is None or len(self.salt) != 32:
                raise ValueError("cse-v1 needs a 32-byte salt")
            if self.nonce_prefix is None or len(self.nonce_prefix) != 7:
                raise ValueError("cse-v1 needs a 7-byte nonce prefix")
            if self.commitment is None or len(self.commitment) != 32:
                raise ValueError("cse-v1 needs a 32-byte key commitment")
            if self.segment_size is None:
                raise ValueError("cse-v1 needs a segment size")
        return self

    def __repr__(self) -> str:
        return (
            f"Envelope(format={self.format!r}, content_algorithm={self.content_algorithm!r}, "
            f"wrapped_keys={list(self.wrapped_keys)!r}, encryption_context={self.encryption_context!r})"
        )
