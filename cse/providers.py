"""The key provider contract.

A key provider makes, wraps and unwraps content keys. cse picks one by the scheme of its key URI
(``rsa:///path/key.pem``, ``aws-kms://alias/x``, ``aliyun-kms://region/key``) through the entry-point
group ``cse.providers``; see :mod:`cse.registry`.

Every call carries a :class:`KeyRequest`, because the same key wraps differently per format: an RSA key
uses PKCS#1 v1.5 for OSS (key and IV wrapped separately), OAEP-SHA1 over a pseudo-key for S3, and
OAEP-SHA256 for cse-v1. Providers must be thread-safe.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cse.envelope import WrappedKey
from cse.log import get_logger, timed

__all__ = ["DataKey", "KeyProvider", "KeyRequest"]


#: Guards every provider's call counts (increments are rare next to the requests they count).
_KMS_LOG = get_logger("kms")
_COUNT_LOCK = threading.Lock()


@dataclass(frozen=True)
class KeyRequest:
    """What a provider needs to know to generate, wrap or unwrap a key for one object."""

    #: The wrap algorithm the format asks for (see :class:`cse.envelope.WrapAlgorithm`).
    wrap_algorithm: str
    #: The content algorithm of the object (see :class:`cse.envelope.ContentAlgorithm`).
    content_algorithm: str
    #: The encryption context (authenticated, not secret).
    encryption_context: Mapping[str, str] = field(default_factory=dict)
    #: The material description that selects among a provider's keys.
    material_description: Mapping[str, str] = field(default_factory=dict)
    #: The key id recorded with the wrapped key, when unwrapping (``None`` when wrapping).
    key_id: str | None = None
    #: The length of the secret in bytes: the key to generate, or what an unwrap must yield (32 for a content
    #: key, the IV's length when an OSS-style format unwraps the IV).
    key_length: int = 32
    #: When unwrapping: the wrapped secret is ASCII text of up to ``key_length`` bytes (oss2 V1's decimal
    #: counter), not key bytes. A key service returns its plaintext as it is, without decoding it.
    secret_is_text: bool = False


@dataclass(frozen=True)
class DataKey:
    """A fresh content key and its wrapped form. ``repr`` never shows the plaintext key."""

    plaintext: bytes = field(repr=False)
    #: The wrapped key as the provider returns it.
    ciphertext: bytes = field(repr=False)
    #: The key id that wrapped it, if the provider reports one (a KMS key ARN).
    key_id: str | None = None


class KeyProvider(ABC):
    """Makes, wraps and unwraps content keys. Subclasses must be thread-safe.

    Class attributes to set: :attr:`scheme` (the key URI scheme) and :attr:`wrap_algorithms`.
    Implement :meth:`wrap`, :meth:`unwrap` and :meth:`from_uri`; override :meth:`generate_data_key` when
    the service generates keys (KMS), and :meth:`can_unwrap` to select keys by id or material description.
    """

    #: The key URI scheme this provider answers to, e.g. ``"rsa"``.
    scheme: ClassVar[str] = ""
    #: The wrap algorithms this provider implements, most preferred first.
    wrap_algorithms: ClassVar[tuple[str, ...]] = ()
    #: Those of :attr:`wrap_algorithms` that this provider only unwraps (legacy, read-only); :meth:`wrap`
    #: refuses them with a :class:`~cse.exceptions.ConfigurationError`, and writers must not choose them.
    unwrap_only_algorithms: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def from_uri(cls, uri: str) -> KeyProvider:
        """Build a provider from its key URI; :class:`~cse.exceptions.ConfigurationError` if malformed."""

    @property
    @abstractmethod
    def key_id(self) -> str:
        """The identifier recorded with keys this provider wraps (never secret)."""

    @property
    def material_description(self) -> Mapping[str, str]:
        """The material description recorded with keys this provider wraps."""
        return {}

    @property
    def can_encrypt(self) -> bool:
        """Whether this provider can wrap new keys (a provider that holds only decryption material cannot)."""
        return True

    def generate_data_key(self, request: KeyRequest) -> DataKey:
        """Make a fresh random content key and wrap it. The default wraps ``os.urandom`` bytes."""
        plaintext = os.urandom(request.key_length)
        return DataKey(plaintext=plaintext, ciphertext=self.wrap(plaintext, request), key_id=self.key_id)

    @abstractmethod
    def wrap(self, plaintext: bytes, request: KeyRequest) -> bytes:
        """Wrap a secret (a content key, or an OSS IV) with ``request.wrap_algorithm``."""

    @abstractmethod
    def unwrap(self, ciphertext: bytes, request: KeyRequest) -> bytes:
        """Unwrap a secret; raise the opaque :class:`~cse.exceptions.DecryptionError` if it does not open."""

    def can_unwrap(self, wrapped: WrappedKey) -> bool:
        """Whether this provider should try ``wrapped``. The default checks the wrap algorithm and scheme."""
        if wrapped.wrap_algorithm not in self.wrap_algorithms:
            return False
        return wrapped.provider is None or wrapped.provider == self.scheme

    def describe(self) -> str:
        """A one-line, secret-free description for errors and ``cse head``."""
        return f"{self.scheme}://{self.key_id}"

    def call_counts(self) -> dict[str, int]:
        """KMS requests this provider made, by operation name (``GenerateDataKey``, ``Encrypt``, ``Decrypt``
        ...), since it was created; for providers without a service, empty. A copy: later calls do not
        change it. Providers that call a service record each request with :meth:`_count_call`."""
        with _COUNT_LOCK:
            return dict(self.__dict__.get("_call_counts", {}))

    def _count_call(self, operation: str) -> None:
        """Record one request to the key service (for :meth:`call_counts`); thread-safe."""
        with _COUNT_LOCK:
            counts = self.__dict__.setdefault("_call_counts", {})
            counts[operation] = counts.get(operation, 0) + 1

    @contextmanager
    def _kms_request(self, operation: str, key: str, region: str | None) -> Iterator[dict[str, Any]]:
        """Count one request to the key service and log it on ``cse.kms`` at DEBUG when the block ends:
        operation, key id, region, duration, outcome, and what the block adds to the dict it is given
        (``attempts``). Never pass secrets: the fields are logged as they are."""
        self._count_call(operation)
        with timed(
            _KMS_LOG, "kms request", provider=self.scheme, operation=operation, key=key, region=region
        ) as f:
            yield f
