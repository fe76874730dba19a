"""The ``rsa`` key provider: local RSA key pairs, selected by material description.

Wrap algorithms (names from :class:`cse.envelope.WrapAlgorithm`):

``RSA-OAEP-SHA256`` (cse-v1)
    RSA-OAEP with SHA-256 and MGF1-SHA-256; the label is the UTF-8 of the canonical JSON of the request's
    material description (sorted keys, ``(",", ":")`` separators, ASCII only), so a changed material
    description does not unwrap.
``RSA-OAEP-SHA1`` (S3, ``x-amz-w: 22``)
    RSA-OAEP with SHA-1 and MGF1-SHA-1 over the pseudo-key ``len(key) (1 byte) || key || UTF-8(content
    algorithm)``, as the Java S3 Encryption Client writes it; unwrapping checks the length byte and that the
    suffix is the request's content algorithm (``AES/GCM/NoPadding`` for V2, ``115`` for V3).
``RSA/NONE/PKCS1Padding`` (OSS V2)
    RSA PKCS#1 v1.5 of the raw secret; the OSS format wraps the key and the IV with one call each. PKCS#1
    v1.5 is not authenticated: with OpenSSL's implicit rejection a damaged ciphertext decrypts to
    pseudo-random bytes, so unwrapping accepts only 16- and 32-byte results (and the requested key length)
    and a damaged key usually, but not always, fails here rather than later.
``RSA/NONE/OAEPWithSHA-1AndMGF1Padding`` (deprecated OSS ``LocalRsaProvider``)
    RSA-OAEP (SHA-1, MGF1-SHA-1) of the raw secret. Unwrap only.

Key URI::

    rsa:///ABSOLUTE/PATH/key.pem[?PARAM=VALUE&...]

The path names a PEM file holding a private key (PKCS#1 ``RSA PRIVATE KEY`` or PKCS#8 ``PRIVATE KEY``,
optionally encrypted) or a public key (PKCS#1 ``RSA PUBLIC KEY`` or ``PUBLIC KEY``). Parameters apply to the
key file named last before them, so several key files can be given; the first key wraps new objects and
every key can unwrap the objects its material description (or key id) selects:

``passphrase-env=VAR``
    the environment variable that holds the passphrase of an encrypted private key;
``matdesc=JSON``
    the key's material description, a URL-encoded JSON object of strings (``%7B%22v%22%3A%222%22%7D``);
``desc=NAME=VALUE``
    one entry of the material description (repeatable; merged with ``matdesc``);
``also=/ABSOLUTE/PATH/other.pem``
    one more key file; the parameters that follow apply to it.

For example, after a rotation (the new key wraps, the old key still unwraps older objects)::

    rsa:///keys/2025.pem?desc=generation=2025&also=/keys/2024.pem&desc=generation=2024&passphrase-env=OLD_PW

Percent-encode ``&``, ``=``, ``+``, ``#`` and ``%`` in values. ``rsa://localhost/ABSOLUTE/PATH`` is accepted
too; ``rsa://relative/key.pem`` is not (``relative`` would be a host name).
"""

from __future__ import annotations

import hmac
import re
from typing import ClassVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cse.envelope import WrapAlgorithm
from cse.exceptions import (
    ConfigurationError,
    DecryptionError,
    KeyMaterialError,
    KeyProviderError,
)
from cse.providers import KeyRequest
from cse_rsa._keyset import LocalKeySetProvider
from cse_rsa._uri import KeyFileSpec, parse_key_uri
from cse_rsa.keys import RsaKey, canonical_material_description

__all__ = ["RsaKeyProvider"]

_A = WrapAlgorithm
#: Plaintext lengths a PKCS#1 v1.5 unwrap accepts: an AES-256 key and an AES block (the OSS IV).
_PKCS1_LENGTHS = frozenset({16, 32})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _oaep(algorithm: hashes.HashAlgorithm, label: bytes | None = None) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm=algorithm), algorithm=algorithm, label=label)


def _max_plaintext(key_bytes: int, algorithm: str) -> int:
    if algorithm == _A.RSA_PKCS1:
        return key_bytes - 11
    if algorithm == _A.RSA_OAEP_SHA256:
        return key_bytes - 2 * 32 - 2
    return key_bytes - 2 * 20 - 2  # OAEP with SHA-1


def _label(request: KeyRequest) -> bytes:
    return canonical_material_description(request.material_description).encode("utf-8")


def _wrap(public_key: rsa.RSAPublicKey, secret: bytes, request: KeyRequest) -> bytes:
    algorithm = request.wrap_algorithm
    if not secret:
        raise KeyProviderError("nothing to wrap: the secret is empty")
    message = secret
    if algorithm == _A.RSA_OAEP_SHA1:
        if len(secret) > 255:
            raise KeyProviderError(f"the S3 RSA pseudo-key holds at most 255 key bytes, not {len(secret)}")
        message = bytes([len(secret)]) + secret + request.content_algorithm.encode("utf-8")
    limit = _max_plaintext((public_key.key_size + 7) // 8, algorithm)
    if len(message) > limit:
        raise KeyProviderError(
            f"a {public_key.key_size}-bit RSA key wraps at most {limit} bytes with {algorithm}, "
            f"not {len(message)}"
        )
    if algorithm == _A.RSA_PKCS1:
        return public_key.encrypt(message, padding.PKCS1v15())
    if algorithm == _A.RSA_OAEP_SHA256:
        return public_key.encrypt(message, _oaep(hashes.SHA256(), _label(request)))
    return public_key.encrypt(message, _oaep(hashes.SHA1()))  # noqa: S303 - the S3 format's choice


def _unwrap(private_key: rsa.RSAPrivateKey, ciphertext: bytes, request: KeyRequest) -> bytes:
    """Unwrap with one key; raise ValueError or DecryptionError on any failure."""
    algorithm = request.wrap_algorithm
    if len(ciphertext) != (private_key.key_size + 7) // 8:
        raise DecryptionError()
    if algorithm == _A.RSA_PKCS1:
        # OpenSSL's implicit rejection returns pseudo-random bytes for bad padding instead of an error.
        secret = private_key.decrypt(ciphertext, padding.PKCS1v15())
        if len(secret) not in _PKCS1_LENGTHS and len(secret) != request.key_length:
            raise DecryptionError()
        return secret
    if algorithm == _A.RSA_OAEP_SHA256:
        return private_key.decrypt(ciphertext, _oaep(hashes.SHA256(), _label(request)))
    if algorithm == _A.RSA_OAEP_SHA1_OSS:
        return private_key.decrypt(ciphertext, _oaep(hashes.SHA1()))  # noqa: S303 - OSS legacy
    pseudo = private_key.decrypt(ciphertext, _oaep(hashes.SHA1()))  # noqa: S303 - the S3 format's choice
    length = pseudo[0] if pseudo else 0
    if length == 0 or 1 + length > len(pseudo):
        raise DecryptionError()
    if not hmac.compare_digest(pseudo[1 + length :], request.content_algorithm.encode("utf-8")):
        raise DecryptionError()
    return pseudo[1 : 1 + length]


# -- key URIs ---------------------------------------------------------------------------------------------


def _check_passphrase_env(value: str, path: str) -> None:
    if not _ENV_NAME.match(value):
        raise ConfigurationError(
            f"passphrase-env={value!r} in the key URI is not an environment variable name"
        )


def _parse_uri(uri: str) -> list[KeyFileSpec]:
    return parse_key_uri(
        uri,
        scheme=RsaKeyProvider.scheme,
        example_file="key.pem",
        options={"passphrase-env": _check_passphrase_env},
    )


# -- the provider -----------------------------------------------------------------------------------------


class RsaKeyProvider(LocalKeySetProvider[RsaKey]):
    """Wraps content keys with local RSA keys.

    ``keys`` is one :class:`~cse_rsa.RsaKey` or several: the first wraps new objects (its key id and
    material description are this provider's), and any of them unwraps the objects whose key id or, when
    the object records none, whose material description selects it. A public-only key wraps but cannot
    unwrap. Instances are immutable and thread-safe. See the module docstring for the wrap algorithms and
    the key URI syntax.

    When several keys match an object (same material description, no key id recorded), each is tried in
    turn. Give keys distinct material descriptions: PKCS#1 v1.5 cannot tell a wrong key from the right one
    reliably (see the module docstring), so with it a wrong key may, rarely, be taken for the right one.
    """

    scheme: ClassVar[str] = "rsa"
    wrap_algorithms: ClassVar[tuple[str, ...]] = (
        _A.RSA_OAEP_SHA256,
        _A.RSA_OAEP_SHA1,
        _A.RSA_PKCS1,
        _A.RSA_OAEP_SHA1_OSS,
    )
    unwrap_only_algorithms: ClassVar[tuple[str, ...]] = (_A.RSA_OAEP_SHA1_OSS,)
    _key_class = RsaKey
    _kind = "RSA"
    _load_hint = "load a PEM file with RsaKey.from_file"

    @classmethod
    def from_uri(cls, uri: str) -> RsaKeyProvider:
        """Load the key file(s) a key URI names; see the module docstring for the syntax.

        Raises :class:`~cse.exceptions.ConfigurationError` for a malformed URI (a relative path, an unknown
        parameter) and :class:`~cse.exceptions.KeyMaterialError` for a missing, unreadable, malformed,
        locked or too small key.
        """
        keys = [
            RsaKey.from_file(
                spec.path,
                passphrase_env=spec.options.get("passphrase-env"),
                material_description=spec.material_description,
            )
            for spec in _parse_uri(uri)
        ]
        return cls(keys)

    def describe(self) -> str:
        """A one-line, secret-free description: the wrapping key, its file, and how many more keys."""
        first = self._keys[0]
        kind = "private" if first.has_private_key else "public-only"
        where = f" from {first.source}" if first.source else ""
        more = len(self._keys) - 1
        also = f", and {more} more key{'s' if more > 1 else ''}" if more else ""
        return f"rsa:{first.key_id} ({first.bits}-bit {kind} key{where}{also})"

    # -- wrap and unwrap -------------------------------------------------------------------------------

    def wrap(self, plaintext: bytes, request: KeyRequest) -> bytes:
        """Wrap ``plaintext`` (a content key or an OSS IV) with the first key and ``request.wrap_algorithm``.

        ``request.material_description`` must be this provider's :attr:`material_description` (the one the
        format records), else the object could not select its key again: that is a ConfigurationError.
        """
        self._check_algorithm(request.wrap_algorithm)
        if request.wrap_algorithm in self.unwrap_only_algorithms:
            raise ConfigurationError(
                f"{request.wrap_algorithm} is the deprecated OSS LocalRsaProvider wrapping; cse unwraps "
                f"it as read-only legacy but never writes it (write {_A.RSA_PKCS1} for OSS instead)"
            )
        key = self._wrapping_key(request)
        return _wrap(key.public_key, bytes(plaintext), request)

    def unwrap(self, ciphertext: bytes, request: KeyRequest) -> bytes:
        """Unwrap with the key(s) ``request.key_id`` (or else ``request.material_description``) selects.

        Raises :class:`~cse.exceptions.NoMatchingKeyError` if no key is selected,
        :class:`~cse.exceptions.KeyMaterialError` if the selected keys are public-only, and the opaque
        :class:`~cse.exceptions.DecryptionError` if none of them opens the ciphertext.
        """
        selected = self._unwrapping_keys(request)
        private = [key.private_key for key in selected if key.private_key is not None]
        if not private:
            raise KeyMaterialError(
                f"the RSA key {selected[0].key_id}"
                + (f" ({selected[0].source})" if selected[0].source else "")
                + " is public-only: it wraps but cannot unwrap; a private key is needed to decrypt, "
                "so give the private key PEM in the key URI"
            )
        data = bytes(ciphertext)
        for private_key in private:
            try:
                return _unwrap(private_key, data, request)
            except (ValueError, DecryptionError):
                continue
        raise DecryptionError()
