"""The exception tree of cse.

Every error cse raises is a :class:`CseError`. Errors of the cloud SDKs and of the operating system are
caught at the edge (in stores and providers) and re-raised as one of these with ``raise ... from``, so
callers never need to import boto3, oss2 or botocore to handle a failure::

    CseError
    ├── ConfigurationError            bad settings or arguments given to cse
    │   ├── UnknownSchemeError        no plugin for a URL or key URI scheme
    │   └── MissingExtraError         the plugin exists but its distribution is not installed
    ├── KeyProviderError              a key provider could not do its job
    │   ├── KeyMaterialError          a key file is missing, unreadable, malformed or locked
    │   └── KmsError                  the key service refused or failed a request
    ├── StoreError                    a store operation failed
    │   ├── ObjectNotFoundError       no such object (also a FileNotFoundError)
    │   ├── InvalidRangeError         the byte range is not satisfiable
    │   └── MultipartError            a multipart upload failed (the upload was aborted)
    ├── EncryptionError               an object could not be encrypted
    └── DecryptionError               an object could not be decrypted; raised as such for
        │                             every authentication failure (bad tag, bad commitment,
        │                             wrong key), with one opaque message
        ├── MetadataError             the encryption metadata is missing or malformed; names the field
        ├── NoMatchingKeyError        no configured key can unwrap the object; names what was asked for
        ├── EncryptionContextMismatchError  the object's context is not the one the reader expects
        └── AuthenticatedSizeLimitError  the object is too large to authenticate in memory;
                                      names the two ways out

Messages never contain key material or plaintext.
"""

from __future__ import annotations

__all__ = [
    "AuthenticatedSizeLimitError",
    "ConfigurationError",
    "CseError",
    "DecryptionError",
    "EncryptionContextMismatchError",
    "EncryptionError",
    "InvalidRangeError",
    "KeyMaterialError",
    "KeyProviderError",
    "KmsError",
    "MetadataError",
    "MissingExtraError",
    "MultipartError",
    "NoMatchingKeyError",
    "ObjectNotFoundError",
    "StoreError",
    "UnknownSchemeError",
]

#: The one message of every authentication failure. It deliberately says nothing about which check failed.
AUTHENTICATION_FAILED = (
    "authentication failed: the ciphertext, its encryption metadata or the key is not the one it was "
    "encrypted with (the object may have been tampered with, truncated, or a wrong key was given)"
)


class CseError(Exception):
    """Base class of every error raised by cse."""


class ConfigurationError(CseError, ValueError):
    """A setting, argument, URL or key URI given to cse is not valid."""


class UnknownSchemeError(ConfigurationError):
    """No store, format or key provider is registered for a URL or key URI scheme."""


class MissingExtraError(ConfigurationError, ImportError):
    """A plugin is known but its distribution is not installed; the message names what to install."""


class KeyProviderError(CseError):
    """A key provider could not generate, wrap or unwrap a key for a reason other than authentication."""


class KeyMaterialError(KeyProviderError):
    """Key material is missing, unreadable, malformed, locked, or of the wrong kind (public vs private)."""


class KmsError(KeyProviderError):
    """A key management service refused or failed a request (after retries)."""


class StoreError(CseError):
    """A store operation failed."""


class ObjectNotFoundError(StoreError, FileNotFoundError):
    """The object (or multipart upload) does not exist."""


class InvalidRangeError(StoreError, ValueError):
    """The requested byte range cannot be satisfied (HTTP 416)."""


class MultipartError(StoreError):
    """A multipart upload failed; cse aborted it, so no orphaned upload is left."""


class EncryptionError(CseError):
    """An object could not be encrypted."""


class DecryptionError(CseError):
    """An object could not be decrypted.

    Raised as this exact class, with the opaque :data:`AUTHENTICATION_FAILED` message, whenever a tag, a key
    commitment or a key unwrap fails. Subclasses carry precise messages for failures that are not
    authentication failures but still mean the object cannot be decrypted.
    """

    def __init__(self, message: str = AUTHENTICATION_FAILED) -> None:
        super().__init__(message)


class MetadataError(DecryptionError):
    """The encryption metadata of an object is missing or malformed. The message names the field."""


class NoMatchingKeyError(DecryptionError):
    """None of the configured key providers can unwrap the object's content key.

    The message names the key ids, wrap algorithms and material descriptions that the object asks for.
    """


class EncryptionContextMismatchError(DecryptionError):
    """The reader gave the encryption context it expects, and the object's stored context differs.

    The message names the keys that differ (contexts are authenticated, not secret).
    """


class AuthenticatedSizeLimitError(DecryptionError):
    """An object authenticated only as a whole is larger than the in-memory verification buffer."""
