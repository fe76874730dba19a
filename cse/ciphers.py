"""Streaming content ciphers.

These are the building blocks under :class:`cse.EncryptionClient`. Each algorithm has a streaming encryptor
and decryptor with the same two methods:

* ``update_into(data, out) -> int`` transforms ``data`` into the caller's reusable buffer ``out`` and
  returns how many bytes it wrote. ``out`` must hold at least ``output_size(len(data))`` bytes.
* ``finalize() -> bytes`` ends the stream and returns the trailing bytes (the GCM tag when encrypting, the
  last segment for the segmented cipher). Decryptors verify here and raise
  :class:`~cse.exceptions.DecryptionError`.

Decryptors of whole-object authenticated ciphers (AES-GCM, committing AES-GCM) release plaintext *before*
the tag is verified in ``finalize``; the client layer is what withholds it. The segmented cipher of
``cse-v1`` releases only verified segments.

Whole-bytes helpers (``encrypt_*`` / ``decrypt_*``) are built on the streaming objects.
"""

from __future__ import annotations

import hmac
import struct
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cse.exceptions import AUTHENTICATION_FAILED, DecryptionError

__all__ = [
    "COMMITTING_AAD",
    "COMMITTING_IV",
    "COMMITMENT_LENGTH",
    "GCM_TAG_LENGTH",
    "MESSAGE_ID_LENGTH",
    "CommittingGcmDecryptor",
    "CommittingGcmEncryptor",
    "CtrCipher",
    "GcmDecryptor",
    "GcmEncryptor",
    "SegmentedDecryptor",
    "SegmentedEncryptor",
    "StreamTransform",
    "aes_ctr",
    "check_commitment",
    "decrypt_committing_gcm",
    "decrypt_gcm",
    "decrypt_segmented",
    "derive_committing_keys",
    "derive_segment_keys",
    "encrypt_committing_gcm",
    "encrypt_gcm",
    "encrypt_segmented",
    "segment_nonce",
    "segmented_ciphertext_length",
    "segmented_plaintext_length",
]

KEY_LENGTH = 32
GCM_IV_LENGTH = 12
GCM_TAG_LENGTH = 16
CTR_IV_LENGTH = 16
_BLOCK = 16

#: S3 "V3" (suite 0x0073): the 28-byte message id, the 28-byte commitment, the fixed IV and the AAD.
MESSAGE_ID_LENGTH = 28
COMMITMENT_LENGTH = 28
COMMITTING_IV = b"\x01" * 12
COMMITTING_AAD = b"\x00\x73"
_DERIVE_INFO = COMMITTING_AAD + b"DERIVEKEY"
_COMMIT_INFO = COMMITTING_AAD + b"COMMITKEY"

#: cse-v1 segmented AEAD: nonce prefix, salt and commitment lengths; HKDF info strings.
SEGMENT_NONCE_PREFIX_LENGTH = 7
SEGMENT_SALT_LENGTH = 32
SEGMENT_COMMITMENT_LENGTH = 32
_SEGMENT_KEY_INFO = b"cse-v1 segment key"
_SEGMENT_COMMIT_INFO = b"cse-v1 key commitment"
_MAX_SEGMENTS = 1 << 32


class StreamTransform(Protocol):
    """What every streaming encryptor and decryptor offers."""

    def output_size(self, input_length: int) -> int:
        """The buffer size ``update_into`` needs for ``input_length`` bytes of input."""
        ...

    def update_into(self, data: bytes | bytearray | memoryview, out: bytearray | memoryview) -> int:
        """Transform ``data`` into ``out``; return the number of bytes written."""
        ...

    def finalize(self) -> bytes:
        """End the stream; return the trailing output. Decryptors verify here."""
        ...


def _check_key(key: bytes) -> None:
    if len(key) != KEY_LENGTH:
        raise ValueError(f"content keys are 32 bytes (AES-256); got {len(key)} bytes")


# --------------------------------------------------------------------------------------------------- GCM


class GcmEncryptor:
    """AES-256-GCM encryptor. ``finalize()`` returns the 16-byte tag, which follows the ciphertext."""

    def __init__(self, key: bytes, iv: bytes, aad: bytes = b"") -> None:
        _check_key(key)
        if len(iv) != GCM_IV_LENGTH:
            raise ValueError(f"AES-GCM takes a 12-byte IV; got {len(iv)} bytes")
        self._ctx = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
        if aad:
            self._ctx.authenticate_additional_data(aad)

    def output_size(self, input_length: int) -> int:
        """The buffer size ``update_into`` needs."""
        return input_length + _BLOCK - 1

    def update_into(self, data: bytes | bytearray | memoryview, out: bytearray | memoryview) -> int:
        """Encrypt ``data`` into ``out``."""
        return self._ctx.update_into(data, out)

    def finalize(self) -> bytes:
        """Return the tag."""
        self._ctx.finalize()
        return self._ctx.tag


class GcmDecryptor:
    """AES-256-GCM decryptor for a body of ``ciphertext || tag``.

    The last 16 bytes seen are held back as the tag; ``finalize()`` verifies it. If the tag is known in
    advance (``tag=``), nothing is held back. Plaintext is released before verification: callers decide
    what to do with it until ``finalize()`` returns.
    """

    def __init__(self, key: bytes, iv: bytes, aad: bytes = b"", tag: bytes | None = None) -> None:
        _check_key(key)
        if len(iv) != GCM_IV_LENGTH:
            raise ValueError(f"AES-GCM takes a 12-byte IV; got {len(iv)} bytes")
        self._ctx = Cipher(algorithms.AES(key), modes.GCM(iv)).decryptor()
        if aad:
            self._ctx.authenticate_additional_data(aad)
        self._tag = tag
        self._held = b""

    def output_size(self, input_length: int) -> int:
        """The buffer size ``update_into`` needs."""
        return input_length + GCM_TAG_LENGTH + _BLOCK - 1

    def update_into(self, data: bytes | bytearray | memoryview, out: bytearray | memoryview) -> int:
        """Decrypt ``data`` (holding back the trailing tag) into ``out``."""
        if self._tag is not None:
            return self._ctx.update_into(data, out)
        n = len(data)
        if n >= GCM_TAG_LENGTH:
            view = memoryview(data)
            written = self._ctx.update_into(self._held, out) if self._held else 0
            body = view[: n - GCM_TAG_LENGTH]
            if len(body):
                written += self._ctx.update_into(body, memoryview(out)[written:])
            self._held = bytes(view[n - GCM_TAG_LENGTH :])
            return written
        joined = self._held + bytes(data)
        cut = len(joined) - GCM_TAG_LENGTH
        if cut <= 0:
            self._held = joined
            return 0
        self._held = joined[cut:]
        return self._ctx.update_into(joined[:cut], out)

    def finalize(self) -> bytes:
        """Verify the tag; raise :class:`DecryptionError` if it does not match."""
        try:
            if self._tag is not None:
                self._ctx.finalize_with_tag(self._tag)
            else:
                if len(self._held) != GCM_TAG_LENGTH:
                    raise DecryptionError(AUTHENTICATION_FAILED)
                self._ctx.finalize_with_tag(self._held)
        except InvalidTag:
            raise DecryptionError(AUTHENTICATION_FAILED) from None
        return b""


def encrypt_gcm(key: bytes, iv: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Encrypt ``plaintext`` with AES-256-GCM; return ``ciphertext || tag``."""
    enc = GcmEncryptor(key, iv, aad)
    out = bytearray(enc.output_size(len(plaintext)))
    n = enc.update_into(plaintext, out)
    return bytes(out[:n]) + enc.finalize()


def decrypt_gcm(key: bytes, iv: bytes, body: bytes, aad: bytes = b"") -> bytes:
    """Decrypt and verify ``ciphertext || tag``; raise :class:`DecryptionError` on a bad tag."""
    dec = GcmDecryptor(key, iv, aad)
    out = bytearray(dec.output_size(len(body)))
    n = dec.update_into(body, out)
    dec.finalize()
    return bytes(out[:n])


# ------------------------------------------------------------------------------------ committing GCM (S3 V3)


def derive_committing_keys(data_key: bytes, message_id: bytes) -> tuple[bytes, bytes]:
    """Derive the S3 "V3" (suite 0x0073) data encryption key and 28-byte commitment.

    ``PRK = HMAC-SHA512(key=message_id, msg=data_key)``; the DEK is
    ``HKDF-Expand(PRK, 0x0073 "DERIVEKEY", 32)``
    and the commitment ``HKDF-Expand(PRK, 0x0073 "COMMITKEY", 28)``.
    """
    _check_key(data_key)
    if len(message_id) != MESSAGE_ID_LENGTH:
        raise ValueError(f"the message id is {MESSAGE_ID_LENGTH} bytes; got {len(message_id)} bytes")
    dek = HKDF(hashes.SHA512(), KEY_LENGTH, salt=message_id, info=_DERIVE_INFO).derive(data_key)
    commitment = HKDF(hashes.SHA512(), COMMITMENT_LENGTH, salt=message_id, info=_COMMIT_INFO).derive(data_key)
    return dek, commitment


def check_commitment(expected: bytes, stored: bytes) -> None:
    """Compare a key commitment in constant time; raise the opaque :class:`DecryptionError` on mismatch."""
    if not hmac.compare_digest(expected, stored):
        raise DecryptionError(AUTHENTICATION_FAILED)


class CommittingGcmEncryptor(GcmEncryptor):
    """S3 "V3" key-committing AES-256-GCM encryptor; ``commitment`` is stored beside the object."""

    def __init__(self, data_key: bytes, message_id: bytes) -> None:
        dek, self.commitment = derive_committing_keys(data_key, message_id)
        super().__init__(dek, COMMITTING_IV, COMMITTING_AAD)


class CommittingGcmDecryptor(GcmDecryptor):
    """S3 "V3" decryptor. The commitment is checked, in constant time, before any decryption."""

    def __init__(self, data_key: bytes, message_id: bytes, commitment: bytes) -> None:
        dek, expected = derive_committing_keys(data_key, message_id)
        check_commitment(expected, commitment)
        super().__init__(dek, COMMITTING_IV, COMMITTING_AAD)


def encrypt_committing_gcm(data_key: bytes, message_id: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    """Encrypt with S3 "V3"; return ``(ciphertext || tag, commitment)``."""
    enc = CommittingGcmEncryptor(data_key, message_id)
    out = bytearray(enc.output_size(len(plaintext)))
    n = enc.update_into(plaintext, out)
    return bytes(out[:n]) + enc.finalize(), enc.commitment


def decrypt_committing_gcm(data_key: bytes, message_id: bytes, commitment: bytes, body: bytes) -> bytes:
    """Check the commitment, then decrypt and verify an S3 "V3" body."""
    dec = CommittingGcmDecryptor(data_key, message_id, commitment)
    out = bytearray(dec.output_size(len(body)))
    n = dec.update_into(body, out)
    dec.finalize()
    return bytes(out[:n])


# --------------------------------------------------------------------------------------------------- CTR


class CtrCipher:
    """AES-256-CTR with a 16-byte IV read as a 128-bit big-endian counter (it wraps modulo 2**128).

    ``offset`` is the byte position in the stream where this cipher starts; it may be any byte, not only
    a block boundary. Encryption and decryption are the same operation. CTR authenticates nothing.
    """

    def __init__(self, key: bytes, iv: bytes, offset: int = 0) -> None:
        _check_key(key)
        if len(iv) != CTR_IV_LENGTH:
            raise ValueError(f"AES-CTR takes a 16-byte IV; got {len(iv)} bytes")
        if offset < 0:
            raise ValueError("the CTR offset must not be negative")
        counter = (int.from_bytes(iv, "big") + offset // _BLOCK) % (1 << 128)
        self._ctx = Cipher(algorithms.AES(key), modes.CTR(counter.to_bytes(16, "big"))).encryptor()
        skip = offset % _BLOCK
        if skip:
            self._ctx.update(bytes(skip))

    def output_size(self, input_length: int) -> int:
        """The buffer size ``update_into`` needs."""
        return input_length + _BLOCK - 1

    def update_into(self, data: bytes | bytearray | memoryview, out: bytearray | memoryview) -> int:
        """XOR ``data`` with the key stream into ``out``."""
        return self._ctx.update_into(data, out)

    def finalize(self) -> bytes:
        """CTR has no trailer."""
        self._ctx.finalize()
        return b""


def aes_ctr(key: bytes, iv: bytes, data: bytes, offset: int = 0) -> bytes:
    """Encrypt or decrypt ``data`` with AES-256-CTR starting at byte ``offset`` of the stream."""
    c = CtrCipher(key, iv, offset)
    out = bytearray(c.output_size(len(data)))
    n = c.update_into(data, out)
    return bytes(out[:n])


# ------------------------------------------------------------------------------- segmented AEAD (cse-v1)


def derive_segment_keys(content_key: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """Derive the cse-v1 segment key and 32-byte key commitment (HKDF-SHA256 of the content key, salted)."""
    _check_key(content_key)
    if len(salt) != SEGMENT_SALT_LENGTH:
        raise ValueError(f"the cse-v1 salt is {SEGMENT_SALT_LENGTH} bytes; got {len(salt)} bytes")
    key = HKDF(hashes.SHA256(), KEY_LENGTH, salt=salt, info=_SEGMENT_KEY_INFO).derive(content_key)
    commitment = HKDF(
        hashes.SHA256(), SEGMENT_COMMITMENT_LENGTH, salt=salt, info=_SEGMENT_COMMIT_INFO
    ).derive(content_key)
    return key, commitment


def segment_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    """The 12-byte nonce of segment ``index``: ``prefix(7) || uint32_be(index) || last-flag(1)``."""
    if not 0 <= index < _MAX_SEGMENTS:
        raise ValueError("a cse-v1 object has at most 2**32 segments")
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def segmented_ciphertext_length(plaintext_length: int, segment_size: int) -> int:
    """Ciphertext length of a cse-v1 body: ``L // S`` full segments, then a last one of ``L % S`` bytes
    (possibly empty), each with a 16-byte tag."""
    return plaintext_length + GCM_TAG_LENGTH * (plaintext_length // segment_size + 1)


def segmented_plaintext_length(ciphertext_length: int, segment_size: int) -> int:
    """Plaintext length of a cse-v1 body; raise :class:`ValueError` if no plaintext has that length."""
    full, rest = divmod(ciphertext_length, segment_size + GCM_TAG_LENGTH)
    if rest < GCM_TAG_LENGTH:
        raise ValueError(f"{ciphertext_length} bytes is not a valid cse-v1 body length for this segment size")
    return ciphertext_length - GCM_TAG_LENGTH * (full + 1)


class _Segmented:
    def __init__(
        self, content_key: bytes, salt: bytes, nonce_prefix: bytes, segment_size: int, aad: bytes
    ) -> None:
        if len(nonce_prefix) != SEGMENT_NONCE_PREFIX_LENGTH:
            raise ValueError(f"the cse-v1 nonce prefix is {SEGMENT_NONCE_PREFIX_LENGTH} bytes")
        if segment_size < 1:
            raise ValueError("the segment size must be positive")
        key, self.commitment = derive_segment_keys(content_key, salt)
        self._aead = AESGCM(key)
        self._prefix = nonce_prefix
        self._aad = aad
        self.segment_size = segment_size


class SegmentedEncryptor(_Segmented):
    """cse-v1 segmented, key-committing AES-256-GCM encryptor (STREAM construction).

    Plaintext is cut into ``segment_size`` segments; each is sealed under the nonce
    ``prefix || index || last`` with ``aad``. Every full segment is sealed as soon as it is complete (input
    that arrives in multiples of the segment size is sealed in place, without copying); ``finalize()``
    seals the rest, 0 to ``segment_size - 1`` bytes, as the last segment. ``first_segment`` starts the
    index elsewhere than 0, for parts encrypted in parallel; a part that does not end the object must be
    given whole segments and has ``final=False``.
    """

    def __init__(
        self,
        content_key: bytes,
        salt: bytes,
        nonce_prefix: bytes,
        segment_size: int,
        aad: bytes = b"",
        first_segment: int = 0,
        final: bool = True,
    ) -> None:
        super().__init__(content_key, salt, nonce_prefix, segment_size, aad)
        self._index = first_segment
        self._final = final
        self._buf = bytearray(segment_size)
        self._fill = 0

    def output_size(self, input_length: int) -> int:
        """The buffer size ``update_into`` needs."""
        return input_length + self.segment_size + GCM_TAG_LENGTH * (input_length // self.segment_size + 2)

    def _seal(self, segment: bytes | bytearray | memoryview, out: memoryview, last: bool) -> int:
        nonce = segment_nonce(self._prefix, self._index, last)
        self._index += 1
        n = len(segment) + GCM_TAG_LENGTH
        self._aead.encrypt_into(nonce, segment, self._aad, out[:n])
        return n

    def update_into(self, data: bytes | bytearray | memoryview, out: bytearray | memoryview) -> int:
        """Seal every complete segment; keep the remainder for the next call or ``finalize``."""
        view = memoryview(data)
        dst = memoryview(out)
        size = self.segment_size
        written = 0
        pos = 0
        end = len(view)
        while pos < end:
            if self._fill == 0 and end - pos >= size:
                written += self._seal(view[pos : pos + size], dst[written:], last=False)
                pos += size
                continue
            take = min(size - self._fill, end - pos)
            self._buf[self._fill : self._fill + take] = view[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == size:
                written += self._seal(self._buf, dst[written:], last=False)
                self._fill = 0
        return written

    def finalize(self) -> bytes:
        """Seal the remaining 0..S-1 bytes as the last segment (nothing when ``final=False``)."""
        if not self._final:
            if self._fill:
                raise ValueError("a part that does not end the object must hold whole segments")
            return b""
        out = bytearray(self._fill + GCM_TAG_LENGTH)
        self._seal(memoryview(self._buf)[: self._fill], memoryview(out), last=True)
        self._fill = 0
        return bytes(out)


class SegmentedDecryptor(_Segmented):
    """cse-v1 decryptor. Checks the commitment first, then releases only verified segments.

    ``first_segment`` is the index of the first segment given; ``last_segment`` is the index of the
    object's last segment (known from its ciphertext length). For a ranged read, ``stop_segment`` is the
    last segment the stream will be given; ``finalize`` then checks that exactly those segments came.
    """

    def __init__(
        self,
        content_key: bytes,
        salt: bytes,
        nonce_prefix: bytes,
        segment_size: int,
        commitment: bytes,
        last_segment: int,
        aad: bytes = b"",
        first_segment: int = 0,
        stop_segment: int | None = None,
    ) -> None:
        super().__init__(content_key, salt, nonce_prefix, segment_size, aad)
        check_commitment(self.commitment, commitment)
        self._index = first_segment
        self._last = last_segment
        self._stop = last_segment if stop_segment is None else min(stop_segment, last_segment)
        self._stride = segment_size + GCM_TAG_LENGTH
        self._buf = bytearray(self._stride)
        self._fill = 0

    def output_size(self, input_length: int) -> int:
        """The buffer size ``update_into`` needs."""
        return input_length + self.segment_size

    def _open(self, segment: bytes | bytearray | memoryview, out: memoryview) -> int:
        if self._index > self._last:
            raise DecryptionError(AUTHENTICATION_FAILED)
        nonce = segment_nonce(self._prefix, self._index, self._index == self._last)
        self._index += 1
        n = len(segment) - GCM_TAG_LENGTH
        if n < 0:
            raise DecryptionError(AUTHENTICATION_FAILED)
        try:
            self._aead.decrypt_into(nonce, segment, self._aad, out[:n])
        except InvalidTag:
            raise DecryptionError(AUTHENTICATION_FAILED) from None
        return n

    def update_into(self, data: bytes | bytearray | memoryview, out: bytearray | memoryview) -> int:
        """Open every complete segment in ``data``; raise :class:`DecryptionError` on a bad one."""
        view = memoryview(data)
        dst = memoryview(out)
        stride = self._stride
        written = 0
        pos = 0
        end = len(view)
        while pos < end:
            if self._fill == 0 and end - pos >= stride and self._index < self._last:
                written += self._open(view[pos : pos + stride], dst[written:])
                pos += stride
                continue
            if self._fill == stride:
                # The held segment is the last one, yet more ciphertext follows: the body was extended.
                raise DecryptionError(AUTHENTICATION_FAILED)
            take = min(stride - self._fill, end - pos)
            self._buf[self._fill : self._fill + take] = view[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == stride and self._index < self._last:
                written += self._open(self._buf, dst[written:])
                self._fill = 0
        return written

    def finalize(self) -> bytes:
        """Open the last segment; raise :class:`DecryptionError` if the stream was cut short or altered."""
        if self._stop < self._last:
            if self._fill or self._index != self._stop + 1:
                raise DecryptionError(AUTHENTICATION_FAILED)
            return b""
        out = bytearray(max(self._fill - GCM_TAG_LENGTH, 0))
        if self._index != self._last:
            raise DecryptionError(AUTHENTICATION_FAILED)
        self._open(memoryview(self._buf)[: self._fill], memoryview(out))
        self._fill = 0
        return bytes(out)


def encrypt_segmented(
    content_key: bytes,
    salt: bytes,
    nonce_prefix: bytes,
    segment_size: int,
    plaintext: bytes,
    aad: bytes = b"",
) -> tuple[bytes, bytes]:
    """Encrypt a whole cse-v1 body; return ``(body, commitment)``."""
    enc = SegmentedEncryptor(content_key, salt, nonce_prefix, segment_size, aad)
    out = bytearray(enc.output_size(len(plaintext)))
    n = enc.update_into(plaintext, out)
    return bytes(out[:n]) + enc.finalize(), enc.commitment


def decrypt_segmented(
    content_key: bytes,
    salt: bytes,
    nonce_prefix: bytes,
    segment_size: int,
    commitment: bytes,
    body: bytes,
    aad: bytes = b"",
) -> bytes:
    """Check the commitment and decrypt a whole cse-v1 body."""
    try:
        plaintext_length = segmented_plaintext_length(len(body), segment_size)
    except ValueError:
        raise DecryptionError(AUTHENTICATION_FAILED) from None
    last = plaintext_length // segment_size
    dec = SegmentedDecryptor(content_key, salt, nonce_prefix, segment_size, commitment, last, aad)
    out = bytearray(dec.output_size(len(body)))
    n = dec.update_into(body, out)
    return bytes(out[:n]) + dec.finalize()
