"""Content codecs: how each content algorithm lays out an object body.

A codec turns an :class:`~cse.envelope.Envelope` plus the unwrapped :class:`ContentMaterial` into
streaming transforms from :mod:`cse.ciphers`: whole-body encryptors and decryptors, encryptors of parts
at an offset (for parallel multipart uploads), and decryptors of byte ranges. Codecs are looked up by
content algorithm with :func:`codec_for`; plugins add more with :func:`register_codec`.
"""

from __future__ import annotations

import hmac
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, ClassVar, Literal

from cse import ciphers
from cse.envelope import ContentAlgorithm, Envelope
from cse.exceptions import ConfigurationError, DecryptionError, MetadataError

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "PLAINTEXT_MAC_INFO",
    "plaintext_mac",
    "ContentCodec",
    "ContentMaterial",
    "RangePlan",
    "codec_for",
    "register_codec",
]

#: Default cse-v1 segment size, chosen by benchmark (``benchmarks/bench.py``, see docs/performance.md): from
#: 256 KiB up, sealing segment by segment runs as fast as raw AES-GCM (64 KiB loses ~18%, 4 MiB loses
#: cache locality), and 256 KiB fetches a quarter of what 1 MiB does on small ranged reads.
DEFAULT_SEGMENT_SIZE = 256 * 1024


@dataclass(frozen=True)
class ContentMaterial:
    """The unwrapped content key and IV of one object. ``repr`` hides both."""

    key: bytes = field(repr=False)
    iv: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RangePlan:
    """How to serve plaintext bytes ``start..end`` (inclusive) of an object.

    Fetch ciphertext ``ct_start..ct_end`` (inclusive), decrypt it, drop the first ``skip`` bytes of output
    and deliver ``length`` bytes. ``authenticated`` says whether every delivered byte is verified.
    """

    ct_start: int
    ct_end: int
    skip: int
    length: int
    authenticated: bool


class ContentCodec(ABC):
    """The body layout of one content algorithm."""

    algorithm: ClassVar[str] = ""
    #: Length of the content IV in bytes (0 if the algorithm has none of its own).
    iv_length: ClassVar[int] = 0
    #: ``"segment"``: every range is verified; ``"object"``: only the whole body; ``"none"``: nothing.
    authentication: ClassVar[Literal["none", "object", "segment"]] = "none"

    @abstractmethod
    def new_parameters(self, key: bytes, segment_size: int = DEFAULT_SEGMENT_SIZE) -> dict[str, Any]:
        """Fresh per-object envelope fields (IV, salt, commitment ...) for encrypting with ``key``."""

    @abstractmethod
    def ciphertext_length(self, envelope: Envelope, plaintext_length: int) -> int:
        """The body length for a plaintext of ``plaintext_length`` bytes."""

    @abstractmethod
    def plaintext_length(self, envelope: Envelope, ciphertext_length: int) -> int:
        """The plaintext length of a body; :class:`MetadataError`-free: raises :class:`DecryptionError`."""

    def part_alignment(self, envelope: Envelope) -> int:
        """Parts of this many plaintext bytes (or a multiple) can be encrypted independently; 0: never."""
        return 0

    #: Whether ``encryptor(material, envelope, plaintext_offset, final)`` can start a part anywhere on a
    #: :meth:`part_alignment` boundary, so that parts are encrypted in parallel and resumed.
    independent_parts: ClassVar[bool] = False

    def plaintext_chunk(self, envelope: Envelope, chunk_size: int) -> int:
        """How many plaintext bytes to feed the encryptor per step (a multiple of its natural unit)."""
        return chunk_size

    def ciphertext_chunk(self, envelope: Envelope, chunk_size: int) -> int:
        """How many ciphertext bytes to feed a decryptor per step (a multiple of its natural unit)."""
        return chunk_size

    def key_matches(self, material: ContentMaterial, envelope: Envelope) -> bool:
        """Whether ``material`` is the object's key, where the algorithm commits to it (constant time).

        Lets the client skip a wrapped key that unwraps to a wrong content key and try the next one.
        Algorithms without key commitment return True.
        """
        return True

    @abstractmethod
    def encryptor(
        self, material: ContentMaterial, envelope: Envelope, plaintext_offset: int = 0, final: bool = True
    ) -> ciphers.StreamTransform:
        """A streaming encryptor. A non-zero offset, or ``final=False``, needs :meth:`part_alignment`."""

    @abstractmethod
    def decryptor(
        self, material: ContentMaterial, envelope: Envelope, ciphertext_length: int
    ) -> ciphers.StreamTransform:
        """A streaming decryptor of the whole body; its ``finalize`` verifies what the algorithm can."""

    @abstractmethod
    def plan_range(self, envelope: Envelope, ciphertext_length: int, start: int, end: int) -> RangePlan:
        """How to read plaintext ``start..end`` (inclusive, already within the object)."""

    @abstractmethod
    def range_decryptor(
        self, material: ContentMaterial, envelope: Envelope, ciphertext_length: int, plan: RangePlan
    ) -> ciphers.StreamTransform:
        """A decryptor for the ciphertext that ``plan`` fetches."""


def _need_iv(material: ContentMaterial, length: int) -> bytes:
    if material.iv is None or len(material.iv) != length:
        raise MetadataError(f"the object's content IV is missing or is not {length} bytes")
    return material.iv


class GcmCodec(ContentCodec):
    """AES-256-GCM, body ``ciphertext || tag`` (S3 V2). Ranged reads decrypt as CTR, unauthenticated."""

    algorithm = ContentAlgorithm.AES_GCM
    authentication = "object"
    iv_length = 12

    def new_parameters(self, key: bytes, segment_size: int = DEFAULT_SEGMENT_SIZE) -> dict[str, Any]:
        """A random 12-byte IV and the 128-bit tag length."""
        return {"iv": os.urandom(12), "tag_length": 128}

    def _key_iv(self, material: ContentMaterial, envelope: Envelope) -> tuple[bytes, bytes]:
        return material.key, _need_iv(material, 12)

    def ciphertext_length(self, envelope: Envelope, plaintext_length: int) -> int:
        """Plaintext plus the 16-byte tag."""
        return plaintext_length + ciphers.GCM_TAG_LENGTH

    def plaintext_length(self, envelope: Envelope, ciphertext_length: int) -> int:
        """Body minus the 16-byte tag."""
        if ciphertext_length < ciphers.GCM_TAG_LENGTH:
            raise DecryptionError()
        return ciphertext_length - ciphers.GCM_TAG_LENGTH

    def encryptor(
        self, material: ContentMaterial, envelope: Envelope, plaintext_offset: int = 0, final: bool = True
    ) -> ciphers.StreamTransform:
        """A GCM encryptor; GCM bodies are written in one sequential stream."""
        if plaintext_offset or not final:
            raise ConfigurationError("AES-GCM bodies are encrypted in one sequential stream")
        key, iv = self._key_iv(material, envelope)
        return ciphers.GcmEncryptor(key, iv)

    def decryptor(
        self, material: ContentMaterial, envelope: Envelope, ciphertext_length: int
    ) -> ciphers.StreamTransform:
        """A GCM decryptor; the tag is checked in ``finalize``."""
        key, iv = self._key_iv(material, envelope)
        return ciphers.GcmDecryptor(key, iv)

    def plan_range(self, envelope: Envelope, ciphertext_length: int, start: int, end: int) -> RangePlan:
        """Block-aligned CTR read of the range; not authenticated."""
        aligned = start - start % 16
        return RangePlan(aligned, end, start - aligned, end - start + 1, authenticated=False)

    def range_decryptor(
        self, material: ContentMaterial, envelope: Envelope, ciphertext_length: int, plan: RangePlan
    ) -> ciphers.StreamTransform:
        """CTR with counter ``IV || uint32_be(2 + block)`` (GCM's J0 + 1 + block)."""
        key, iv = self._key_iv(material, envelope)
        return ciphers.CtrCipher(key, iv + (2).to_bytes(4, "big"), plan.ct_start)


class CommittingGcmCodec(GcmCodec):
    """S3 "V3" key-committing AES-256-GCM: derived key, fixed IV, AAD ``0x0073``, 28-byte commitment."""

    algorithm = ContentAlgorithm.AES_GCM_COMMITTING

    def new_parameters(self, key: bytes, segment_size: int = DEFAULT_SEGMENT_SIZE) -> dict[str, Any]:
        """A random 28-byte message id and the commitment derived from it."""
        message_id = os.urandom(ciphers.MESSAGE_ID_LENGTH)
        _, commitment = ciphers.derive_committing_keys(key, message_id)
        return {"message_id": message_id, "commitment": commitment}

    def _key_iv(self, material: ContentMaterial, envelope: Envelope) -> tuple[bytes, bytes]:
        assert envelope.message_id is not None and envelope.commitment is not None  # envelope-validated
        dek, expected = ciphers.derive_committing_keys(material.key, envelope.message_id)
        ciphers.check_commitment(expected, envelope.commitment)
        return dek, ciphers.COMMITTING_IV

    def key_matches(self, material: ContentMaterial, envelope: Envelope) -> bool:
        """Check the 28-byte commitment."""
        assert envelope.message_id is not None and envelope.commitment is not None
        _, expected = ciphers.derive_committing_keys(material.key, envelope.message_id)
        return hmac.compare_digest(expected, envelope.commitment)

    def encryptor(
        self, material: ContentMaterial, envelope: Envelope, plaintext_offset: int = 0, final: bool = True
    ) -> ciphers.StreamTransform:
        """A committing encryptor (sequential)."""
        if plaintext_offset or not final:
            raise ConfigurationError("AES-GCM bodies are encrypted in one sequential stream")
        assert envelope.message_id is not None
        return ciphers.CommittingGcmEncryptor(material.key, envelope.message_id)

    def decryptor(
        self, material: ContentMaterial, envelope: Envelope, ciphertext_length: int
    ) -> ciphers.StreamTransform:
        """Checks the commitment (constant time) before anything is decrypted."""
        assert envelope.message_id is not None and envelope.commitment is not None
        return ciphers.CommittingGcmDecryptor(material.key, envelope.message_id, envelope.commitment)


#: The HKDF ``info`` of the key of cse's plaintext MAC of OSS V2 objects.
PLAINTEXT_MAC_INFO = b"cse oss-v2 plaintext mac v1"


def _mac_key(material: ContentMaterial) -> bytes:
    """HKDF-SHA256(IKM = the content key, salt = the 16-byte CTR IV, info = PLAINTEXT_MAC_INFO), 32 bytes."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    iv = _need_iv(material, 16)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=iv, info=PLAINTEXT_MAC_INFO).derive(material.key)


def plaintext_mac(material: ContentMaterial, plaintext: bytes | bytearray | memoryview) -> bytes:
    """cse's MAC of an OSS V2 object's plaintext: HMAC-SHA256 under the key :func:`_mac_key` derives from
    the content key and IV, over the plaintext followed by its length as 8 big-endian bytes.

    Binding the key and the IV, it catches a swapped wrapped key or IV (``client-side-encryption-key`` /
    ``-start``) and any change of the body, on whole-object reads (docs/oss.md).
    """
    mac = hmac.new(_mac_key(material), digestmod="sha256")
    mac.update(plaintext)
    mac.update(len(memoryview(plaintext).cast("B")).to_bytes(8, "big"))
    return mac.digest()


class _MacCheckingCtr:
    """CTR decryption of a whole body that also MACs the plaintext; ``finalize`` checks the MAC."""

    def __init__(self, material: ContentMaterial, expected: bytes) -> None:
        self._ctr = ciphers.CtrCipher(material.key, _need_iv(material, 16))
        self._mac = hmac.new(_mac_key(material), digestmod="sha256")
        self._expected = expected
        self._length = 0

    def output_size(self, input_length: int) -> int:
        """As CTR."""
        return self._ctr.output_size(input_length)

    def update_into(self, data: bytes | bytearray | memoryview, out: bytearray | memoryview) -> int:
        """Decrypt, and MAC what came out."""
        n = self._ctr.update_into(data, out)
        self._mac.update(memoryview(out)[:n])
        self._length += n
        return n

    def finalize(self) -> bytes:
        """The opaque :class:`DecryptionError` unless the plaintext's MAC is the recorded one."""
        tail = self._ctr.finalize()
        self._mac.update(tail)
        self._length += len(tail)
        self._mac.update(self._length.to_bytes(8, "big"))
        if not hmac.compare_digest(self._mac.digest(), self._expected):
            raise DecryptionError()
        return tail


class CtrCodec(ContentCodec):
    """AES-256-CTR (OSS V2). Nothing is authenticated by the format; any byte range is served directly.
    Objects cse wrote in one request carry cse's plaintext MAC (:func:`plaintext_mac`), which the whole-body
    decryptor checks."""

    algorithm = ContentAlgorithm.AES_CTR
    authentication = "none"
    independent_parts = True
    iv_length = 16

    def new_parameters(self, key: bytes, segment_size: int = DEFAULT_SEGMENT_SIZE) -> dict[str, Any]:
        """16 random bytes with bytes 8..11 zeroed, as the OSS SDKs' counter arithmetic requires."""
        iv = bytearray(os.urandom(16))
        iv[8:12] = b"\x00\x00\x00\x00"
        return {"iv": bytes(iv)}

    def ciphertext_length(self, envelope: Envelope, plaintext_length: int) -> int:
        """CTR does not change the length."""
        return plaintext_length

    def plaintext_length(self, envelope: Envelope, ciphertext_length: int) -> int:
        """CTR does not change the length."""
        return ciphertext_length

    def part_alignment(self, envelope: Envelope) -> int:
        """Any block boundary."""
        return 16

    def encryptor(
        self, material: ContentMaterial, envelope: Envelope, plaintext_offset: int = 0, final: bool = True
    ) -> ciphers.StreamTransform:
        """CTR at ``plaintext_offset``."""
        return ciphers.CtrCipher(material.key, _need_iv(material, 16), plaintext_offset)

    def decryptor(
        self, material: ContentMaterial, envelope: Envelope, ciphertext_length: int
    ) -> ciphers.StreamTransform:
        """CTR from the start; checking cse's plaintext MAC at the end when the object has one."""
        if envelope.plaintext_mac is not None:
            return _MacCheckingCtr(material, envelope.plaintext_mac)
        return ciphers.CtrCipher(material.key, _need_iv(material, 16))

    def plan_range(self, envelope: Envelope, ciphertext_length: int, start: int, end: int) -> RangePlan:
        """The same bytes of ciphertext."""
        return RangePlan(start, end, 0, end - start + 1, authenticated=False)

    def range_decryptor(
        self, material: ContentMaterial, envelope: Envelope, ciphertext_length: int, plan: RangePlan
    ) -> ciphers.StreamTransform:
        """CTR at the range's first byte."""
        return ciphers.CtrCipher(material.key, _need_iv(material, 16), plan.ct_start)


def segment_aad(envelope: Envelope) -> bytes:
    """The cse-v1 per-segment AAD: SHA-256 over the version, segment size, nonce prefix, salt and context."""
    assert (
        envelope.segment_size is not None and envelope.nonce_prefix is not None and envelope.salt is not None
    )
    context = json.dumps(
        envelope.encryption_context, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    digest = sha256()
    digest.update(b"cse-v1\x00")
    digest.update(envelope.segment_size.to_bytes(4, "big"))
    digest.update(envelope.nonce_prefix)
    digest.update(envelope.salt)
    digest.update(context.encode("utf-8"))
    return digest.digest()


class SegmentedCodec(ContentCodec):
    """cse-v1: segmented, key-committing AES-256-GCM. Every range and every stream is authenticated."""

    algorithm = ContentAlgorithm.CSE_V1
    authentication = "segment"
    independent_parts = True

    def new_parameters(self, key: bytes, segment_size: int = DEFAULT_SEGMENT_SIZE) -> dict[str, Any]:
        """A random salt and nonce prefix, the segment size, and the key commitment."""
        salt = os.urandom(ciphers.SEGMENT_SALT_LENGTH)
        _, commitment = ciphers.derive_segment_keys(key, salt)
        return {
            "salt": salt,
            "nonce_prefix": os.urandom(ciphers.SEGMENT_NONCE_PREFIX_LENGTH),
            "segment_size": segment_size,
            "commitment": commitment,
        }

    @staticmethod
    def _size(envelope: Envelope) -> int:
        assert envelope.segment_size is not None
        return envelope.segment_size

    def ciphertext_length(self, envelope: Envelope, plaintext_length: int) -> int:
        """Plaintext plus one tag per segment."""
        return ciphers.segmented_ciphertext_length(plaintext_length, self._size(envelope))

    def plaintext_length(self, envelope: Envelope, ciphertext_length: int) -> int:
        """Body minus one tag per segment; a length no plaintext has fails authentication."""
        try:
            return ciphers.segmented_plaintext_length(ciphertext_length, self._size(envelope))
        except ValueError:
            raise DecryptionError() from None

    def _last_segment(self, envelope: Envelope, ciphertext_length: int) -> int:
        return self.plaintext_length(envelope, ciphertext_length) // self._size(envelope)

    def part_alignment(self, envelope: Envelope) -> int:
        """Whole segments."""
        return self._size(envelope)

    def plaintext_chunk(self, envelope: Envelope, chunk_size: int) -> int:
        """Whole segments, so that they are sealed in place."""
        size = self._size(envelope)
        return size * max(1, chunk_size // size)

    def ciphertext_chunk(self, envelope: Envelope, chunk_size: int) -> int:
        """Whole sealed segments, so that they are opened in place."""
        size = self._size(envelope)
        return (size + ciphers.GCM_TAG_LENGTH) * max(1, chunk_size // size)

    def key_matches(self, material: ContentMaterial, envelope: Envelope) -> bool:
        """Check the 32-byte commitment."""
        assert envelope.salt is not None and envelope.commitment is not None
        _, expected = ciphers.derive_segment_keys(material.key, envelope.salt)
        return hmac.compare_digest(expected, envelope.commitment)

    def _args(self, material: ContentMaterial, envelope: Envelope) -> tuple[bytes, bytes, bytes, int]:
        assert envelope.salt is not None and envelope.nonce_prefix is not None
        return material.key, envelope.salt, envelope.nonce_prefix, self._size(envelope)

    def encryptor(
        self, material: ContentMaterial, envelope: Envelope, plaintext_offset: int = 0, final: bool = True
    ) -> ciphers.StreamTransform:
        """A segmented encryptor starting at a segment boundary."""
        size = self._size(envelope)
        if plaintext_offset % size:
            raise ConfigurationError("cse-v1 parts start at a segment boundary")
        return ciphers.SegmentedEncryptor(
            *self._args(material, envelope),
            aad=segment_aad(envelope),
            first_segment=plaintext_offset // size,
            final=final,
        )

    def decryptor(
        self, material: ContentMaterial, envelope: Envelope, ciphertext_length: int
    ) -> ciphers.StreamTransform:
        """Checks the commitment first; releases only verified segments."""
        assert envelope.commitment is not None
        return ciphers.SegmentedDecryptor(
            *self._args(material, envelope),
            commitment=envelope.commitment,
            last_segment=self._last_segment(envelope, ciphertext_length),
            aad=segment_aad(envelope),
        )

    def plan_range(self, envelope: Envelope, ciphertext_length: int, start: int, end: int) -> RangePlan:
        """The whole segments that cover the range."""
        size = self._size(envelope)
        stride = size + ciphers.GCM_TAG_LENGTH
        first, last = start // size, end // size
        ct_end = min(ciphertext_length - 1, (last + 1) * stride - 1)
        return RangePlan(first * stride, ct_end, start - first * size, end - start + 1, authenticated=True)

    def range_decryptor(
        self, material: ContentMaterial, envelope: Envelope, ciphertext_length: int, plan: RangePlan
    ) -> ciphers.StreamTransform:
        """A segment decryptor for exactly the planned segments."""
        assert envelope.commitment is not None
        stride = self._size(envelope) + ciphers.GCM_TAG_LENGTH
        return ciphers.SegmentedDecryptor(
            *self._args(material, envelope),
            commitment=envelope.commitment,
            last_segment=self._last_segment(envelope, ciphertext_length),
            aad=segment_aad(envelope),
            first_segment=plan.ct_start // stride,
            stop_segment=plan.ct_end // stride,
        )


_CODECS: dict[str, ContentCodec] = {
    codec.algorithm: codec for codec in (GcmCodec(), CommittingGcmCodec(), CtrCodec(), SegmentedCodec())
}


def register_codec(codec: ContentCodec) -> None:
    """Register a content codec (a plugin's legacy algorithm, for instance) under its algorithm name."""
    _CODECS[codec.algorithm] = codec


def codec_for(algorithm: str) -> ContentCodec:
    """The codec of a content algorithm; :class:`MetadataError` if none is known."""
    try:
        return _CODECS[algorithm]
    except KeyError:
        raise MetadataError(
            f"unknown content algorithm {algorithm!r}; known: {', '.join(sorted(_CODECS))}"
        ) from None
