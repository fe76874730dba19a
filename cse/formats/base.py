"""The format contract: one class per metadata scheme.

A format turns an object's user metadata into a validated :class:`~cse.envelope.Envelope`
(:meth:`Format.decode`) and back (:meth:`Format.encode`). Formats are found through the entry-point group
``cse.formats``; on read, cse asks each registered format whether it :meth:`~Format.detect`\\ s the metadata.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from cse.envelope import Envelope
from cse.exceptions import ConfigurationError
from cse.providers import KeyProvider

__all__ = ["Format"]


class Format(ABC):
    """A metadata scheme. Subclasses set the class attributes and implement the three methods."""

    #: The format's name, as users select it (``--format cse-v1``) and as :attr:`Envelope.format` holds it.
    name: ClassVar[str] = ""
    #: The content algorithm this format writes.
    content_algorithm: ClassVar[str] = ""
    #: The wrap algorithms this format can describe when writing, most preferred first.
    wrap_algorithms: ClassVar[tuple[str, ...]] = ()
    #: Whether the format wraps the content IV with the key provider (OSS) instead of storing it in clear.
    wraps_iv: ClassVar[bool] = False
    #: Whether objects can be written in this format; legacy formats are read-only.
    writable: ClassVar[bool] = True
    #: Whether reading this format is a legacy, opt-in mode.
    legacy: ClassVar[bool] = False
    #: Whether the format commits to its content key (S3 V3 and cse-v1 do; S3 V2 does not).
    key_committing: ClassVar[bool] = True
    #: Whether the client's :class:`~cse.config.CommitmentPolicy` governs this format. True for the S3 family,
    #: as in the official S3 Encryption Client; formats with no committing variant (OSS) leave it False.
    commitment_policy_applies: ClassVar[bool] = False
    #: Context keys the format itself adds (S3: ``aws:x-amz-cek-alg``), left out when a reader's expected
    #: encryption context is compared with the stored one.
    reserved_context_keys: ClassVar[frozenset[str]] = frozenset()
    #: Wrap algorithms this format reads only in the legacy, opt-in mode (OSS V2's deprecated RSA-OAEP).
    legacy_wrap_algorithms: ClassVar[frozenset[str]] = frozenset()
    #: Whether the wrapped IV unwraps to text rather than to the IV's bytes (oss2 V1's decimal counter): the
    #: client then asks the provider for text (:attr:`KeyRequest.secret_is_text`) and turns it into the IV
    #: with :meth:`content_iv`.
    wrapped_iv_is_text: ClassVar[bool] = False

    @abstractmethod
    def detect(self, metadata: Mapping[str, str]) -> bool:
        """Whether ``metadata`` (user metadata, lower-case keys, no transport prefix) is in this format."""

    @abstractmethod
    def decode(self, metadata: Mapping[str, str]) -> Envelope:
        """Parse and validate metadata; raise :class:`~cse.exceptions.MetadataError` naming the bad field."""

    @abstractmethod
    def encode(self, envelope: Envelope) -> dict[str, str]:
        """The user metadata that describes ``envelope``."""

    def choose_wrap_algorithm(self, provider: KeyProvider) -> str:
        """The first of this format's wrap algorithms that ``provider`` implements."""
        for algorithm in self.wrap_algorithms:
            if algorithm in provider.wrap_algorithms and algorithm not in provider.unwrap_only_algorithms:
                return algorithm
        raise ConfigurationError(
            f"the {self.name} format cannot describe a key wrapped by {provider.scheme}:// "
            f"(the format takes {', '.join(self.wrap_algorithms)}; the provider offers "
            f"{', '.join(provider.wrap_algorithms)}); choose another key or another --format"
        )

    def content_iv(self, secret: bytes) -> bytes:
        """The content IV from what the wrapped IV unwrapped to. Default: that is the IV."""
        return secret

    def part_headers(self, envelope: Envelope) -> dict[str, str]:
        """Per-part metadata for multipart uploads (OSS repeats data-size/part-size). Default: none."""
        return {}
