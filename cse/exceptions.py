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
    │   └── KmsError                  the key service refused or failed a request; .code, .service_code
    │       ├── KmsKeyDisabledError       the key is disabled: enable it
    │       ├── KmsKeyPendingDeletionError  the key is scheduled for deletion: cancel it
    │       ├── KmsKeyNotFoundError       no such key or alias: check the id, alias and region
    │       ├── KmsAccessDeniedError      the caller may not use the key; .action names the permission
    │       ├── KmsInvalidKeyUsageError   the key cannot encrypt (a signing or asymmetric key)
    │       ├── KmsThrottledError         still throttled after the retries
    │       └── KmsWrongRegionError       the key is in another region than the client; names both
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

from typing import Any

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
    "KmsAccessDeniedError",
    "KmsError",
    "KmsInvalidKeyUsageError",
    "KmsKeyDisabledError",
    "KmsKeyNotFoundError",
    "KmsKeyPendingDeletionError",
    "KmsThrottledError",
    "KmsWrongRegionError",
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
    """A key management service refused or failed a request (after retries).

    ``code`` is a stable, cloud-independent name of the failure, for programs to branch on (the subclasses
    below each have their own; see ``docs/errors.md`` for the list). ``service_code`` is the cloud's own
    error code (``DisabledException``, ``Forbidden.KeyNotFound`` ...), or ``None`` when the service did not
    answer (a network failure) or the failure was found by cse.
    """

    #: The stable code of errors of this class, unless one is given.
    default_code: str = "kms-error"

    def __init__(self, message: str, *, code: str | None = None, service_code: str | None = None) -> None:
        """``message`` says what happened and what to do; it must hold no key material."""
        super().__init__(message)
        self.code: str = code or self.default_code
        self.service_code: str | None = service_code

    def with_note(self, note: str) -> KmsError:
        """A copy of this error (same class and attributes) whose message ends with ``note``."""
        return _restore_kms_error(type(self), (f"{self} {note}",), dict(self.__dict__))

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only arguments, which the default reduce (cls(*args)) would lose:
        # rebuild from the arguments and the attributes, so the errors copy and pickle (process pools).
        return (_restore_kms_error, (type(self), self.args, dict(self.__dict__)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, code={self.code!r}, service_code={self.service_code!r})"


def _restore_kms_error(cls: type[KmsError], args: tuple[Any, ...], state: dict[str, Any]) -> KmsError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class KmsKeyDisabledError(KmsError):
    """The KMS key is disabled. Enable it (or use another key); retrying will not help."""

    default_code = "key-disabled"


class KmsKeyPendingDeletionError(KmsError):
    """The KMS key is scheduled for deletion. Cancel the deletion (and enable the key) to use it again."""

    default_code = "key-pending-deletion"


class KmsKeyNotFoundError(KmsError):
    """No such KMS key or alias, as far as the client's region and account can see: check the key id, the
    alias and the region."""

    default_code = "key-not-found"


class KmsAccessDeniedError(KmsError):
    """The caller's policies do not allow the KMS operation on the key; ``action`` names the missing
    permission (``kms:GenerateDataKey``, ``kms:Encrypt``, ``kms:Decrypt``)."""

    default_code = "access-denied"

    def __init__(
        self, message: str, *, action: str, code: str | None = None, service_code: str | None = None
    ) -> None:
        """``action`` is the permission the caller lacks, as the cloud's policies spell it."""
        super().__init__(message, code=code, service_code=service_code)
        self.action: str = action


class KmsInvalidKeyUsageError(KmsError):
    """The KMS key cannot encrypt: it is a signing, MAC or asymmetric key, not a symmetric encryption key."""

    default_code = "invalid-key-usage"


class KmsThrottledError(KmsError):
    """KMS kept throttling the requests after cse's bounded retries: slow down or raise the quota."""

    default_code = "throttled"


class KmsWrongRegionError(KmsError):
    """The key belongs to another region than the KMS client's; ``key_region`` and ``client_region`` say
    which."""

    default_code = "wrong-region"

    def __init__(
        self,
        message: str,
        *,
        key_region: str,
        client_region: str,
        code: str | None = None,
        service_code: str | None = None,
    ) -> None:
        """``key_region`` is the region of the key's ARN, ``client_region`` the region the client called."""
        super().__init__(message, code=code, service_code=service_code)
        self.key_region: str = key_region
        self.client_region: str = client_region


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
