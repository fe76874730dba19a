"""RSA keys for the ``rsa`` key provider: loading PEM files, key ids, and key-pair generation.

An :class:`RsaKey` is one RSA key (a private key, which can wrap and unwrap, or a public key, which can only
wrap) together with the material description that selects it. It is immutable, and the key objects of
pyca/cryptography it holds are thread-safe, so one :class:`RsaKey` may be shared by any number of threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from types import MappingProxyType
from typing import Union

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cse.exceptions import ConfigurationError, KeyMaterialError

__all__ = [
    "DEFAULT_KEY_BITS",
    "MIN_KEY_BITS",
    "RsaKey",
    "canonical_material_description",
    "generate_keypair",
]

#: The smallest RSA modulus, in bits, that cse accepts.
MIN_KEY_BITS = 2048
#: The modulus size :func:`generate_keypair` uses by default.
DEFAULT_KEY_BITS = 3072
#: Key files larger than this are not PEM keys (a 16384-bit encrypted PKCS#8 key is about 13 KiB).
_MAX_KEY_FILE = 1024 * 1024

_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_EXPECTED = "a PEM block RSA PRIVATE KEY, PRIVATE KEY, ENCRYPTED PRIVATE KEY, RSA PUBLIC KEY or PUBLIC KEY"

StrPath = Union[str, "os.PathLike[str]"]


def canonical_material_description(material_description: Mapping[str, str]) -> str:
    """The canonical JSON of a material description: sorted keys, no spaces, ASCII only.

    cse-v1 uses its UTF-8 bytes as the RSA-OAEP-SHA256 label, and it is how OSS readers that compare raw
    strings expect a material description to be written.
    """
    return json.dumps(dict(material_description), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _check_material_description(value: Mapping[str, str] | None) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"a material description is a mapping of strings to strings, not {type(value).__name__}"
        )
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ConfigurationError("a material description maps strings to strings")
        out[k] = v
    return out


def _key_id(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).digest()[:16].hex()


def _keygen_hint(path: str) -> str:
    public = path[: -len(".pem")] + ".pub.pem" if path.endswith(".pem") else path + ".pub"
    return f"`cse keygen rsa --private {path} --public {public}`"


class RsaKey:
    """One RSA key and the material description that selects it.

    Build it from a key object of pyca/cryptography, or with :meth:`from_pem`, :meth:`from_file` or
    :meth:`generate`. A private key wraps and unwraps; a public key only wraps. Keys smaller than
    :data:`MIN_KEY_BITS` are refused with :class:`~cse.exceptions.KeyMaterialError`. The ``repr`` shows the
    key id, size, kind, material description and where the key came from, never key material.
    """

    __slots__ = ("_key_id", "_material_description", "_private_key", "_public_key", "_source")

    def __init__(
        self,
        key: rsa.RSAPrivateKey | rsa.RSAPublicKey,
        *,
        material_description: Mapping[str, str] | None = None,
        source: str | None = None,
    ) -> None:
        """Wrap a pyca/cryptography RSA key; ``source`` (a file name) only appears in messages and repr."""
        what = source or "the RSA key"
        if isinstance(key, rsa.RSAPrivateKey):
            private: rsa.RSAPrivateKey | None = key
            public = key.public_key()
        elif isinstance(key, rsa.RSAPublicKey):
            private, public = None, key
        else:
            raise KeyMaterialError(
                f"{what} is a {type(key).__name__}, not an RSA key (RSAPrivateKey or RSAPublicKey)"
            )
        if public.key_size < MIN_KEY_BITS:
            raise KeyMaterialError(
                f"{what} has {public.key_size} bits; cse needs RSA keys of at least {MIN_KEY_BITS} bits "
                f"(make a new one with `cse keygen rsa`)"
            )
        self._private_key = private
        self._public_key = public
        self._key_id = _key_id(public)
        self._material_description = MappingProxyType(_check_material_description(material_description))
        self._source = source

    # -- constructors ------------------------------------------------------------------------------------

    @classmethod
    def from_pem(
        cls,
        data: bytes,
        *,
        passphrase: bytes | None = None,
        material_description: Mapping[str, str] | None = None,
        source: str | None = None,
    ) -> RsaKey:
        """Load a PEM key: PKCS#1 or PKCS#8 private (maybe encrypted), PKCS#1 or SubjectPublicKeyInfo public.

        Raises :class:`~cse.exceptions.KeyMaterialError` if the data is not a PEM RSA key, is encrypted and
        no ``passphrase`` was given, or the passphrase is wrong. Messages never quote the data.
        """
        what = source or "the PEM data"
        key = _parse_pem(
            data,
            what,
            passphrase,
            missing_passphrase=f"{what} is an encrypted private key; give its passphrase",
            wrong_passphrase=f"the passphrase given for {what} does not decrypt it",
        )
        return cls(key, material_description=material_description, source=source)

    @classmethod
    def from_file(
        cls,
        path: StrPath,
        *,
        passphrase: bytes | None = None,
        passphrase_env: str | None = None,
        material_description: Mapping[str, str] | None = None,
    ) -> RsaKey:
        """Load a PEM key file (see :meth:`from_pem` for the encodings).

        An encrypted private key takes its ``passphrase``, or reads it (UTF-8) from the environment variable
        named by ``passphrase_env`` when it is needed. Every failure is a
        :class:`~cse.exceptions.KeyMaterialError` that names the file (and the variable), never its content.
        """
        name = os.fspath(path)
        try:
            with open(name, "rb") as f:
                data = f.read(_MAX_KEY_FILE + 1)
        except FileNotFoundError:
            raise KeyMaterialError(
                f"key file {name} does not exist; create one with {_keygen_hint(name)}"
            ) from None
        except OSError as exc:
            raise KeyMaterialError(f"cannot read key file {name}: {exc.strerror or exc}") from None
        if len(data) > _MAX_KEY_FILE:
            raise KeyMaterialError(f"key file {name} is not a PEM RSA key (it is larger than 1 MiB)")

        if passphrase is None and passphrase_env is not None:
            env = os.environ.get(passphrase_env)
            if env is not None:
                passphrase = env.encode("utf-8")
            missing = (
                f"key file {name} is an encrypted private key and the environment variable "
                f"{passphrase_env} that should hold its passphrase is not set"
            )
            wrong = (
                f"the passphrase in the environment variable {passphrase_env} does not decrypt "
                f"key file {name}"
            )
        elif passphrase is None:
            missing = (
                f"key file {name} is an encrypted private key; put its passphrase in an environment variable "
                f"and name it in the key URI: rsa://{name}?passphrase-env=VARIABLE"
            )
            wrong = f"the passphrase given does not decrypt key file {name}"  # not reachable
        else:
            missing = f"key file {name} is an encrypted private key; give its passphrase"  # not reachable
            wrong = f"the passphrase given does not decrypt key file {name}"
        key = _parse_pem(
            data, f"key file {name}", passphrase, missing_passphrase=missing, wrong_passphrase=wrong
        )
        return cls(key, material_description=material_description, source=name)

    @classmethod
    def generate(
        cls, bits: int = DEFAULT_KEY_BITS, *, material_description: Mapping[str, str] | None = None
    ) -> RsaKey:
        """A new random private key of ``bits`` bits (public exponent 65537), held in memory only."""
        _check_bits(bits)
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return cls(key, material_description=material_description)

    # -- properties --------------------------------------------------------------------------------------

    @property
    def key_id(self) -> str:
        """``sha256:`` and the hex of the first 16 bytes of SHA-256 over the DER SubjectPublicKeyInfo."""
        return self._key_id

    @property
    def material_description(self) -> Mapping[str, str]:
        """The material description that selects this key (read-only)."""
        return self._material_description

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        """The public key (also available for a private key)."""
        return self._public_key

    @property
    def private_key(self) -> rsa.RSAPrivateKey | None:
        """The private key, or ``None`` for a public-only key."""
        return self._private_key

    @property
    def has_private_key(self) -> bool:
        """Whether this key can unwrap (it holds the private key)."""
        return self._private_key is not None

    @property
    def bits(self) -> int:
        """The modulus size in bits."""
        return self._public_key.key_size

    @property
    def source(self) -> str | None:
        """Where the key was loaded from (a file name), if known."""
        return self._source

    def matches(self, material_description: Mapping[str, str]) -> bool:
        """Whether ``material_description`` selects this key (compared as dicts, as oss2 does)."""
        return dict(material_description) == dict(self._material_description)

    def __repr__(self) -> str:
        kind = "private" if self._private_key is not None else "public"
        source = f", source={self._source!r}" if self._source else ""
        return (
            f"RsaKey(key_id={self._key_id!r}, bits={self.bits}, kind={kind!r}, "
            f"material_description={dict(self._material_description)!r}{source})"
        )


# -- PEM parsing ----------------------------------------------------------------------------------------


def _parse_pem(
    data: bytes,
    what: str,
    passphrase: bytes | None,
    *,
    missing_passphrase: str,
    wrong_passphrase: str,
) -> rsa.RSAPrivateKey | rsa.RSAPublicKey:
    if not isinstance(data, bytes):
        raise KeyMaterialError(f"{what} must be bytes, not {type(data).__name__}")
    match = _PEM_LABEL.search(data)
    if match is None:
        raise KeyMaterialError(f"{what} is not a PEM RSA key (expected {_EXPECTED})")
    label = match.group(1)[:40]
    key: object
    malformed = f"{what} is not a PEM RSA key (its {label.decode()} block is malformed)"
    if label.endswith(b"PRIVATE KEY"):
        encrypted = label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in data
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except TypeError:
            # Either encrypted and no passphrase was given, or a passphrase was given for a plain key.
            if passphrase is None:
                raise KeyMaterialError(missing_passphrase) from None
            try:
                key = serialization.load_pem_private_key(data, password=None)
            except (TypeError, ValueError, UnsupportedAlgorithm):
                raise KeyMaterialError(malformed) from None
        except (ValueError, UnsupportedAlgorithm):
            if encrypted and passphrase is not None:
                raise KeyMaterialError(wrong_passphrase) from None
            raise KeyMaterialError(malformed) from None
    elif label.endswith(b"PUBLIC KEY"):
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            raise KeyMaterialError(malformed) from None
    else:
        raise KeyMaterialError(
            f"{what} is not a PEM RSA key (it holds a {label.decode()} block; expected {_EXPECTED})"
        )
    if not isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        raise KeyMaterialError(f"{what} is not an RSA key (it holds a {type(key).__name__})")
    return key


# -- key generation -------------------------------------------------------------------------------------


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool):
        raise ConfigurationError(f"the RSA key size is a number of bits, not {type(bits).__name__}")
    if bits < MIN_KEY_BITS or bits > 16384:
        raise ConfigurationError(f"an RSA key has {MIN_KEY_BITS} to 16384 bits, not {bits}")


def _write_new(path: str, data: bytes, mode: int) -> None:
    """Create ``path`` (never replacing a file) with ``mode``; remove it again if writing fails."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _unlink_quietly(path)
        raise


def _write_temporary(path: str, data: bytes, mode: int) -> str:
    """Write ``data`` to a new temporary file next to ``path`` (made 0600, then ``mode``); return its name."""
    directory, base = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{base}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def _exists(name: str) -> str:
    return (
        f"{name} already exists; refusing to overwrite a key file "
        "(remove it, or pass overwrite=True; --overwrite on the command line)"
    )


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def generate_keypair(
    private_path: StrPath,
    public_path: StrPath,
    bits: int = DEFAULT_KEY_BITS,
    passphrase: bytes | None = None,
    *,
    overwrite: bool = False,
) -> RsaKey:
    """Make a new RSA key pair and write it as PEM files; return the private :class:`RsaKey`.

    The private key is written as PKCS#8 (encrypted with ``passphrase`` when given) with mode 0600, the
    public key as SubjectPublicKeyInfo with mode 0644. Existing files are refused with
    :class:`~cse.exceptions.ConfigurationError` unless ``overwrite`` is true (then each file is replaced
    atomically). If writing the public key fails, the private key file just created is removed. This is
    what ``cse keygen rsa --private PATH --public PATH`` runs.
    """
    private_name, public_name = os.fspath(private_path), os.fspath(public_path)
    _check_bits(bits)
    if passphrase is not None and (not isinstance(passphrase, bytes) or not passphrase):
        raise ConfigurationError("the passphrase of a private key file is non-empty bytes")
    if os.path.abspath(private_name) == os.path.abspath(public_name):
        raise ConfigurationError(f"the private and the public key cannot both be written to {private_name}")
    if not overwrite:
        for name in (private_name, public_name):
            if os.path.lexists(name):
                raise ConfigurationError(_exists(name))

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    files = ((private_name, private_pem, 0o600), (public_name, public_pem, 0o644))
    current = private_name
    if overwrite:
        # Both files are written in full before either replaces an existing one.
        written: list[tuple[str, str]] = []
        try:
            for name, data, mode in files:
                current = name
                written.append((_write_temporary(name, data, mode), name))
            for tmp, name in written:
                current = name
                os.replace(tmp, name)
        except OSError as exc:
            for tmp, _ in written:
                _unlink_quietly(tmp)
            raise KeyMaterialError(f"cannot write key file {current}: {exc.strerror or exc}") from None
    else:
        created: list[str] = []
        try:
            for name, data, mode in files:
                current = name
                _write_new(name, data, mode)
                created.append(name)
        except OSError as exc:
            for name in created:  # nothing half-made is left behind
                _unlink_quietly(name)
            if isinstance(exc, FileExistsError):
                raise ConfigurationError(_exists(current)) from None
            raise KeyMaterialError(f"cannot write key file {current}: {exc.strerror or exc}") from None
    return RsaKey(key, source=private_name)
