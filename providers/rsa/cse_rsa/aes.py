"""The ``aes`` key provider: local 256-bit AES keys, the S3 Encryption Client's ``AES/GCM`` key wrap.

Wrap algorithm (``WrapAlgorithm.AES_GCM``, S3 ``x-amz-wrap-alg: AES/GCM`` / ``x-amz-w: 02``), as the Java
S3 Encryption Client's ``AesKeyring`` writes it::

    wrapped = IV (12 random bytes) || AES-256-GCM(wrapping key, IV, secret, AAD) || tag (16 bytes)
    AAD     = UTF-8 of the content algorithm: "AES/GCM/NoPadding" (S3 V2), "115" (S3 V3), or the
              cse-v1 algorithm name for cse-v1 objects

so a wrapped key unwraps only for the content algorithm it was wrapped for. Unwrapping any damaged,
truncated or foreign wrapped key raises the opaque :class:`~cse.exceptions.DecryptionError`.

Key files hold exactly one 256-bit key, in one of three forms: the 32 raw bytes (what
:func:`generate_aes_key` writes), or a text file holding the key as 64 hex digits or as base64 (standard or
URL-safe alphabet, padding optional), surrounding whitespace ignored. Anything else is refused with
:class:`~cse.exceptions.KeyMaterialError` naming the file, never its content. A 32-byte file made only of
printable ASCII characters is refused too: it is a password or a 128-bit key in hex, not 32 random bytes.

Key id: ``"sha256:"`` followed by the hex of the first 16 bytes of ``SHA-256(b"cse aes key id" || key)``.
The prefix keeps the id from being the plain hash of the key; the id reveals nothing usable about the key.

Key URI (the syntax of the ``rsa`` provider, without ``passphrase-env``)::

    aes:///ABSOLUTE/PATH/key.bin[?matdesc=URL-ENCODED-JSON][&desc=NAME=VALUE ...]
                                [&also=/ABSOLUTE/PATH/older.bin[&desc=...] ...]

``matdesc=JSON`` and ``desc=NAME=VALUE`` (repeatable, merged) give the material description of the key file
named last before them; ``also=`` adds a key file. The first key wraps new objects; every key unwraps the
objects whose key id, or else whose material description, selects it (key rotation)::

    aes:///keys/2025.bin?desc=generation=2025&also=/keys/2024.bin&desc=generation=2024

Percent-encode ``&``, ``=``, ``+``, ``#`` and ``%`` in values. ``aes://localhost/ABSOLUTE/PATH`` is accepted
too; ``aes://relative/key.bin`` is not (``relative`` would be a host name).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import string
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cse.envelope import WrapAlgorithm
from cse.exceptions import (
    ConfigurationError,
    DecryptionError,
    KeyMaterialError,
    KeyProviderError,
)
from cse.providers import KeyRequest
from cse_rsa._keyset import LocalKeySetProvider
from cse_rsa._uri import parse_key_uri
from cse_rsa.keys import (
    StrPath,
    _check_material_description,
    _exists,
    _unlink_quietly,
    _write_new,
    _write_temporary,
)

__all__ = ["AES_KEY_BYTES", "AesKey", "AesKeyProvider", "generate_aes_key"]

#: The length of an ``aes`` wrapping key in bytes (AES-256).
AES_KEY_BYTES = 32
_IV_BYTES = 12
_TAG_BYTES = 16
_KEY_ID_PREFIX = b"cse aes key id"
#: A text key file is at most 64 hex digits plus whitespace; anything much larger is not a key file.
_MAX_KEY_FILE = 4096
_HEX = frozenset(string.hexdigits)
_PRINTABLE = frozenset(string.printable.encode("ascii"))
_EXPECTED = (
    "expected 32 raw bytes, or text holding 64 hex digits or the base64 of 32 bytes; "
    "make a new key with cse_rsa.generate_aes_key"
)


def _key_id(key: bytes) -> str:
    return "sha256:" + hashlib.sha256(_KEY_ID_PREFIX + key).digest()[:16].hex()


def _decode_key_file(data: bytes, what: str) -> bytes:
    """The 32-byte key a key file holds; KeyMaterialError (naming ``what``, never the data) otherwise."""
    if len(data) == AES_KEY_BYTES:
        if all(b in _PRINTABLE for b in data):
            raise KeyMaterialError(
                f"{what} holds 32 printable characters, which is a password or a 128-bit key in hex, "
                f"not a 256-bit key ({_EXPECTED})"
            )
        return data
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise KeyMaterialError(f"{what} is not an AES-256 key file ({_EXPECTED})") from None
    if len(text) == 2 * AES_KEY_BYTES and all(c in _HEX for c in text):
        return bytes.fromhex(text)
    if len(text) in (43, 44):
        candidate = text.rstrip("=")
        if len(candidate) == 43:
            alphabet = "-_" if ("-" in candidate or "_" in candidate) else "+/"
            try:
                key = base64.b64decode(candidate + "=", altchars=alphabet.encode(), validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if len(key) == AES_KEY_BYTES:
                return key
    raise KeyMaterialError(f"{what} is not an AES-256 key file ({_EXPECTED})")


class AesKey:
    """One 256-bit AES wrapping key and the material description that selects it.

    Build it with :meth:`from_bytes`, :meth:`from_file` or :meth:`generate`. It is immutable and thread-safe.
    The ``repr`` shows the key id, material description and source file, never the key.
    """

    __slots__ = ("_aead", "_key_id", "_material_description", "_source")

    def __init__(
        self,
        key: bytes | bytearray | memoryview,
        *,
        material_description: Mapping[str, str] | None = None,
        source: str | None = None,
    ) -> None:
        """Use the 32 bytes ``key``; ``source`` (a file name) only appears in messages and repr."""
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise KeyMaterialError(f"an AES key is 32 bytes, not {type(key).__name__}")
        raw = bytes(key)
        if len(raw) != AES_KEY_BYTES:
            raise KeyMaterialError(
                f"{source or 'the AES key'} is {len(raw)} bytes; an AES-256 wrapping key is 32 bytes"
            )
        self._aead = AESGCM(raw)
        self._key_id = _key_id(raw)
        self._material_description = MappingProxyType(_check_material_description(material_description))
        self._source = source

    @classmethod
    def from_bytes(
        cls, data: bytes, *, material_description: Mapping[str, str] | None = None, source: str | None = None
    ) -> AesKey:
        """Decode a key in any key-file form (32 raw bytes, 64 hex digits, base64 of 32 bytes)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise KeyMaterialError(f"AES key data is bytes, not {type(data).__name__}")
        key = _decode_key_file(bytes(data), source or "the AES key data")
        return cls(key, material_description=material_description, source=source)

    @classmethod
    def from_file(cls, path: StrPath, *, material_description: Mapping[str, str] | None = None) -> AesKey:
        """Load a key file (see the module docstring for its forms).

        Every failure is a :class:`~cse.exceptions.KeyMaterialError` that names the file, never its content.
        """
        name = os.fspath(path)
        try:
            with open(name, "rb") as f:
                data = f.read(_MAX_KEY_FILE + 1)
        except FileNotFoundError:
            raise KeyMaterialError(
                f"key file {name} does not exist; create one with cse_rsa.generate_aes_key({name!r})"
            ) from None
        except OSError as exc:
            raise KeyMaterialError(f"cannot read key file {name}: {exc.strerror or exc}") from None
        if len(data) > _MAX_KEY_FILE:
            raise KeyMaterialError(f"key file {name} is not an AES-256 key file (it is larger than 4 KiB)")
        key = _decode_key_file(data, f"key file {name}")
        return cls(key, material_description=material_description, source=name)

    @classmethod
    def generate(cls, *, material_description: Mapping[str, str] | None = None) -> AesKey:
        """A new random key, held in memory only."""
        return cls(os.urandom(AES_KEY_BYTES), material_description=material_description)

    @property
    def key_id(self) -> str:
        """``sha256:`` and the hex of the first 16 bytes of SHA-256(``b"cse aes key id"`` || key)."""
        return self._key_id

    @property
    def material_description(self) -> Mapping[str, str]:
        """The material description that selects this key (read-only)."""
        return self._material_description

    @property
    def source(self) -> str | None:
        """Where the key was loaded from (a file name), if known."""
        return self._source

    def matches(self, material_description: Mapping[str, str]) -> bool:
        """Whether ``material_description`` selects this key (compared as dicts)."""
        return dict(material_description) == dict(self._material_description)

    def wrap(self, secret: bytes, aad: bytes) -> bytes:
        """``IV || AES-256-GCM(secret, aad) || tag`` with a fresh random 12-byte IV."""
        iv = os.urandom(_IV_BYTES)
        return iv + self._aead.encrypt(iv, secret, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """Open what :meth:`wrap` made; raise the opaque DecryptionError if it does not open."""
        if len(wrapped) < _IV_BYTES + _TAG_BYTES + 1:
            raise DecryptionError()
        try:
            return self._aead.decrypt(wrapped[:_IV_BYTES], wrapped[_IV_BYTES:], aad)
        except InvalidTag:
            pass
        raise DecryptionError()

    def __repr__(self) -> str:
        source = f", source={self._source!r}" if self._source else ""
        return (
            f"AesKey(key_id={self._key_id!r}, material_description={dict(self._material_description)!r}"
            f"{source})"
        )


def generate_aes_key(
    path: StrPath, overwrite: bool = False, *, material_description: Mapping[str, str] | None = None
) -> AesKey:
    """Write a new random 256-bit key as 32 raw bytes with mode 0600; return it as an :class:`AesKey`.

    An existing file is refused with :class:`~cse.exceptions.ConfigurationError` unless ``overwrite`` is true
    (then it is replaced atomically). A failure to write is a :class:`~cse.exceptions.KeyMaterialError`.
    """
    name = os.fspath(path)
    if not overwrite and os.path.lexists(name):
        raise ConfigurationError(_exists(name))
    key = os.urandom(AES_KEY_BYTES)
    try:
        if overwrite:
            tmp = _write_temporary(name, key, 0o600)
            try:
                os.replace(tmp, name)
            except OSError:
                _unlink_quietly(tmp)
                raise
        else:
            _write_new(name, key, 0o600)
    except FileExistsError:
        raise ConfigurationError(_exists(name)) from None
    except OSError as exc:
        raise KeyMaterialError(f"cannot write key file {name}: {exc.strerror or exc}") from None
    return AesKey(key, material_description=material_description, source=name)


class AesKeyProvider(LocalKeySetProvider[AesKey]):
    """Wraps content keys with local AES-256 keys (S3 ``AES/GCM``).

    ``keys`` is one :class:`AesKey` or several: the first wraps new objects (its key id and material
    description are this provider's), and any of them unwraps the objects whose key id or, when the object
    records none (S3), whose material description selects it. When several keys match, each is tried.
    Instances are immutable and thread-safe. See the module docstring for the wrap and the key URI syntax.
    """

    scheme: ClassVar[str] = "aes"
    wrap_algorithms: ClassVar[tuple[str, ...]] = (WrapAlgorithm.AES_GCM,)
    _key_class = AesKey
    _kind = "AES"
    _load_hint = "load a key file with AesKey.from_file"

    @classmethod
    def from_uri(cls, uri: str) -> AesKeyProvider:
        """Load the key file(s) a key URI names; see the module docstring for the syntax.

        Raises :class:`~cse.exceptions.ConfigurationError` for a malformed URI (a relative path, an unknown
        parameter) and :class:`~cse.exceptions.KeyMaterialError` for a missing, unreadable or malformed key.
        """
        specs = parse_key_uri(uri, scheme=cls.scheme, example_file="key.bin")
        return cls([AesKey.from_file(s.path, material_description=s.material_description) for s in specs])

    def describe(self) -> str:
        """A one-line, secret-free description: the wrapping key, its file, and how many more keys."""
        first = self._keys[0]
        where = f" from {first.source}" if first.source else ""
        more = len(self._keys) - 1
        also = f", and {more} more key{'s' if more > 1 else ''}" if more else ""
        return f"aes:{first.key_id} (256-bit AES key{where}{also})"

    def wrap(self, plaintext: bytes, request: KeyRequest) -> bytes:
        """Wrap ``plaintext`` with the first key, the AAD being ``request.content_algorithm``.

        ``request.material_description`` must be this provider's :attr:`material_description` (the one the
        format records), else the object could not select its key again: that is a ConfigurationError.
        """
        key = self._wrapping_key(request)
        secret = bytes(plaintext)
        if not secret:
            raise KeyProviderError("nothing to wrap: the secret is empty")
        return key.wrap(secret, request.content_algorithm.encode("utf-8"))

    def unwrap(self, ciphertext: bytes, request: KeyRequest) -> bytes:
        """Unwrap with the key(s) ``request.key_id`` (or else ``request.material_description``) selects.

        Raises :class:`~cse.exceptions.NoMatchingKeyError` if no key is selected, and the opaque
        :class:`~cse.exceptions.DecryptionError` if none of them opens the ciphertext.
        """
        selected = self._unwrapping_keys(request)
        data = bytes(ciphertext)
        aad = request.content_algorithm.encode("utf-8")
        for key in selected:
            try:
                return key.unwrap(data, aad)
            except DecryptionError:
                continue
        raise DecryptionError()
