"""The legacy ``AES/CBC/PKCS5Padding`` content codec of S3 V1 objects: decrypt only, unauthenticated.

The body is ``AES-256-CBC(key, iv, PKCS#7-padded plaintext)`` with the 16-byte IV from ``x-amz-iv``.
Nothing is authenticated: a modified body decrypts to modified plaintext (or fails the padding check).
Every failure (bad padding, a body that is not whole blocks, a length that disagrees with
``x-amz-unencrypted-content-length``) raises the one opaque :class:`~cse.exceptions.DecryptionError`, so
that no padding oracle is offered. cse reads these objects only with ``allow_legacy``.

Byte ranges are served block-aligned: the ciphertext block before the range is fetched as the CBC IV of
the first block, so any range costs at most 32 extra bytes.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from cse import ciphers
from cse.content import DEFAULT_SEGMENT_SIZE, ContentCodec, ContentMaterial, RangePlan
from cse.envelope import ContentAlgorithm, Envelope
from cse.exceptions import ConfigurationError, DecryptionError, MetadataError

__all__ = ["CbcCodec", "CbcDecryptor"]

_BLOCK = 16


class CbcDecryptor:
    """Streaming AES-256-CBC decryptor.

    ``iv=None`` takes the first 16 bytes of the stream as the IV (a ranged read fetches the block before
    its first one). With ``unpad``, the last block is held back and its PKCS#7 padding removed by
    ``finalize``; ``expected_length``, if given, is checked against the plaintext bytes produced.
    """

    def __init__(
        self, key: bytes, iv: bytes | None, *, unpad: bool, expected_length: int | None = None
    ) -> None:
        """Decrypt with ``key`` from ``iv`` (or from the stream's first block)."""
        if len(key) != 32:
            raise ValueError(f"content keys are 32 bytes (AES-256); got {len(key)} bytes")
        if iv is not None and len(iv) != _BLOCK:
            raise ValueError(f"AES-CBC takes a 16-byte IV; got {len(iv)} bytes")
        self._key = key
        self._ctx: Any = None if iv is None else self._start(iv)
        self._iv = b""
        self._unpad = unpad
        self._held = b""
        self._expected = expected_length
        self._produced = 0

    def _start(self, iv: bytes) -> Any:
        return Cipher(algorithms.AES(self._key), modes.CBC(iv)).decryptor()

    def output_size(self, input_length: int) -> int:
        """The buffer size ``update_into`` needs."""
        return input_length + 2 * _BLOCK

    def update_into(self, data: bytes | bytearray | memoryview, out: bytearray | memoryview) -> int:
        """Decrypt ``data`` into ``out`` (whole blocks; the last one is held back when unpadding)."""
        view = memoryview(data).cast("B")
        if self._ctx is None:
            need = _BLOCK - len(self._iv)
            self._iv += bytes(view[:need])
            view = view[need:]
            if len(self._iv) < _BLOCK:
                return 0
            self._ctx = self._start(self._iv)
        plain = self._held + self._ctx.update(bytes(view))
        if self._unpad and plain:
            keep = len(plain) - _BLOCK
            self._held, plain = plain[keep:], plain[:keep]
        n = len(plain)
        memoryview(out)[:n] = plain
        self._produced += n
        return n

    def finalize(self) -> bytes:
        """Check that the body was whole blocks, remove the padding, check the length; opaque on failure."""
        if self._ctx is None:
            if self._unpad or self._iv:
                raise DecryptionError()
            return b""
        try:
            self._ctx.finalize()  # ValueError if the body is not whole blocks
            tail = b""
            if self._unpad:
                if len(self._held) != _BLOCK:
                    raise DecryptionError()
                unpadder = padding.PKCS7(128).unpadder()
                tail = unpadder.update(self._held) + unpadder.finalize()
        except ValueError:
            raise DecryptionError() from None
        self._produced += len(tail)
        if self._expected is not None and self._produced != self._expected:
            raise DecryptionError()
        return tail


class CbcCodec(ContentCodec):
    """``AES/CBC/PKCS5Padding`` (S3 V1): decrypt only, no authentication, block-aligned ranged reads.

    The plaintext length comes from ``x-amz-unencrypted-content-length`` (:attr:`Envelope.plaintext_length`):
    CBC padding hides it otherwise, and cse needs it before the first byte is read.
    """

    algorithm: ClassVar[str] = ContentAlgorithm.AES_CBC
    iv_length: ClassVar[int] = 16
    authentication: ClassVar[Literal["none", "object", "segment"]] = "none"

    def new_parameters(self, key: bytes, segment_size: int = DEFAULT_SEGMENT_SIZE) -> dict[str, Any]:
        """Refused: CBC is a legacy, read-only algorithm."""
        raise ConfigurationError(
            f"{ContentAlgorithm.AES_CBC} is legacy and read-only in cse; write s3-v3 or cse-v1"
        )

    def ciphertext_length(self, envelope: Envelope, plaintext_length: int) -> int:
        """The PKCS#7-padded length: the next multiple of 16 above ``plaintext_length``."""
        return (plaintext_length // _BLOCK + 1) * _BLOCK

    def plaintext_length(self, envelope: Envelope, ciphertext_length: int) -> int:
        """The recorded plaintext length, checked against the body length."""
        length = envelope.plaintext_length
        if length is None:
            raise MetadataError(
                "this legacy CBC object has no 'x-amz-unencrypted-content-length' metadata, which cse needs "
                "to read it (CBC padding hides the plaintext length)"
            )
        if self.ciphertext_length(envelope, length) != ciphertext_length:
            raise DecryptionError()
        return length

    def encryptor(
        self, material: ContentMaterial, envelope: Envelope, plaintext_offset: int = 0, final: bool = True
    ) -> ciphers.StreamTransform:
        """Refused: CBC is a legacy, read-only algorithm."""
        raise ConfigurationError(
            f"{ContentAlgorithm.AES_CBC} is legacy and read-only in cse; write s3-v3 or cse-v1"
        )

    @staticmethod
    def _key_iv(material: ContentMaterial) -> tuple[bytes, bytes]:
        if material.iv is None or len(material.iv) != _BLOCK:
            raise MetadataError("the object's content IV is missing or is not 16 bytes")
        return material.key, material.iv

    def decryptor(
        self, material: ContentMaterial, envelope: Envelope, ciphertext_length: int
    ) -> ciphers.StreamTransform:
        """A whole-body decryptor that removes the padding and checks the recorded length."""
        key, iv = self._key_iv(material)
        return CbcDecryptor(key, iv, unpad=True, expected_length=envelope.plaintext_length)

    def plan_range(self, envelope: Envelope, ciphertext_length: int, start: int, end: int) -> RangePlan:
        """The blocks of the range, and the block before them as the IV; unauthenticated."""
        first = start // _BLOCK
        ct_end = min(ciphertext_length - 1, (end // _BLOCK + 1) * _BLOCK - 1)
        if first <= 1:  # decrypt from the start with the object's IV
            return RangePlan(0, ct_end, start, end - start + 1, authenticated=False)
        ct_start = (first - 1) * _BLOCK
        return RangePlan(ct_start, ct_end, start - first * _BLOCK, end - start + 1, authenticated=False)

    def range_decryptor(
        self, material: ContentMaterial, envelope: Envelope, ciphertext_length: int, plan: RangePlan
    ) -> ciphers.StreamTransform:
        """Raw CBC blocks (the client trims the padding away with the plan's length); a plan that starts
        past the first block takes its first fetched block as the IV."""
        key, iv = self._key_iv(material)
        return CbcDecryptor(key, iv if plan.ct_start == 0 else None, unpad=False)
