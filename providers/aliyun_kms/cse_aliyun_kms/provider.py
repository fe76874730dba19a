"""The ``aliyun-kms`` key provider: Alibaba Cloud KMS data keys, as the OSS encryption clients make them.

Wrap algorithm (name from :class:`cse.envelope.WrapAlgorithm`):

``KMS/ALICLOUD`` (OSS client-side encryption V2: oss2, alibabacloud-oss-v2, Go, Java, C++)
    A new content key is ``GenerateDataKey(KeyId=KEY, KeySpec="AES_256", EncryptionContext=CONTEXT)``
    (``NumberOfBytes=N`` for another length); a secret to wrap (the OSS IV, a second recipient, a rewrap)
    is ``Encrypt(KeyId=KEY, Plaintext=base64(secret), EncryptionContext=CONTEXT)``, as oss2 and Go wrap the
    IV. Unwrapping is ``Decrypt(CiphertextBlob=TEXT, EncryptionContext=CONTEXT)``, whose ``Plaintext`` is
    base64 of the secret.

    The wrapped form (:attr:`cse.providers.DataKey.ciphertext`, and what :meth:`~AliyunKmsProvider.wrap`
    returns and :meth:`~AliyunKmsProvider.unwrap` takes) is **the CiphertextBlob text as ASCII bytes**,
    exactly the string KMS returns and takes back: the representation :mod:`cse_oss.formats` uses for both
    the Go/Java style (single base64) and the oss2 style (double base64, see
    :func:`cse_oss.formats.kms_blob_text`) of the OSS headers.

    ``CONTEXT`` is the request's encryption context, plus ``{"x-passphrase": PASSPHRASE}`` when the
    provider has a passphrase, sent as compact JSON with sorted keys; KMS binds it to the ciphertext, so a
    key unwraps only with the same context. It is left out when empty. The OSS formats store no encryption
    context, so for OSS objects the context is just the passphrase entry, if any.

Passphrase (oss2 interoperability)
    oss2's ``AliKMSProvider(..., passphrase=P)`` sends ``EncryptionContext='{"x-passphrase":"P"}'`` on every
    KMS call but records nothing in the object; such objects decrypt only with the same passphrase. Give it
    with ``passphrase=`` (or ``passphrase-env=VAR`` in the key URI, which reads the environment variable
    ``VAR`` when the provider is built) to read, and write, objects compatible with such an oss2 client.
    The passphrase is never shown by ``repr`` or :meth:`~AliyunKmsProvider.describe`.

Errors
    A ``Decrypt`` refused because of the blob or the context (``InvalidCiphertext``; ``InvalidParameter``,
    which KMS answers for a blob that is not base64; ``Forbidden.KeyNotFound``, which KMS answers for a
    blob whose key reference does not resolve: a damaged blob, or a deleted key), and a blob that is not
    ASCII text or a ``Plaintext`` that is not base64 of a secret of the requested length, raise the opaque
    :class:`~cse.exceptions.DecryptionError`. Every other refusal and every network failure (cannot
    connect, connect or read timeout) raise a :class:`~cse.exceptions.KmsError` naming the operation, the
    key, the region, the endpoint and the attempts, saying what to do, with the stable ``code`` and KMS's
    own ``service_code``, raised ``from`` the SDK's error (``from None`` on the rare occasion where that
    error's text would show a secret or the passphrase): ``Rejected.Disabled`` is a
    :class:`~cse.exceptions.KmsKeyDisabledError`, ``Rejected.PendingDeletion`` a
    :class:`~cse.exceptions.KmsKeyPendingDeletionError`, ``Forbidden.KeyNotFound`` and
    ``Forbidden.AliasNotFound`` a :class:`~cse.exceptions.KmsKeyNotFoundError` (or, for a key ARN of
    another region than the provider's, a :class:`~cse.exceptions.KmsWrongRegionError` naming both),
    ``Forbidden.NoPermission`` and ``Forbidden.RAM`` a :class:`~cse.exceptions.KmsAccessDeniedError` whose
    ``action`` is the missing ``kms:GenerateDataKey``, ``kms:Encrypt`` or ``kms:Decrypt``,
    ``UnsupportedOperation`` a :class:`~cse.exceptions.KmsInvalidKeyUsageError`, and ``Throttling``,
    ``Throttling.User`` and ``Throttling.Api`` after the retries a
    :class:`~cse.exceptions.KmsThrottledError`. Messages never hold key material: the SDK's texts are
    scrubbed of request query strings and of the "string to sign" some gateways echo.

Clients
    An injected ``aliyunsdkcore.client.AcsClient`` (``client=``) is used as is, with its own retries.
    Otherwise the provider builds one on first use (once, thread-safely) with ``connect_timeout`` (default
    2 s), ``timeout`` (the read timeout, default 4 s) and ``auto_retry=False``, and the provider owns the
    retries (:mod:`cse.retry`): at most ``max_attempts`` (3) sends per call, the first included, retried
    only after a time-out, a connection failure, throttling or a 5xx, with full-jitter backoff, and none
    started after ``deadline`` (15 s) or when its read timeout would not fit in what is left. A KMS that
    accepts connections and never answers fails a call in about 12 s; the error names the endpoint, the
    region, the attempts and the time spent. Its credentials come
    from ``ALIBABA_CLOUD_ACCESS_KEY_ID`` and ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` (with
    ``ALIBABA_CLOUD_SECURITY_TOKEN``, an STS ``StsTokenCredential``), else ``OSS_ACCESS_KEY_ID`` and
    ``OSS_ACCESS_KEY_SECRET`` (with ``OSS_SESSION_TOKEN``). The endpoint is the SDK's regional KMS endpoint,
    unless ``endpoint=`` (``?endpoint=`` in the URI) or the environment variable
    ``CSE_ALIYUN_KMS_ENDPOINT`` names another (for example a local emulator, ``http://127.0.0.1:PORT``),
    which is applied with ``client.add_endpoint(region, "Kms", endpoint)``.

Key URI::

    aliyun-kms://REGION/KEY[?PARAM=VALUE&...]

``REGION`` is the KMS region (``cn-hangzhou``), ``KEY`` a key id, an alias (``alias/NAME``) or an ARN
(``acs:kms:REGION:UID:key/ID``), for example ``aliyun-kms://cn-hangzhou/alias/backups``. Parameters:

``endpoint=URL``
    the KMS endpoint (a VPC endpoint, or a local emulator); ``CSE_ALIYUN_KMS_ENDPOINT`` does the same;
``connect-timeout=SECONDS``, ``read-timeout=SECONDS``, ``max-attempts=N``, ``deadline=SECONDS``
    the default client's timeouts (2 and 4 s), attempts per call, the first included (3), and the time
    after which no attempt starts (15 s);
``passphrase-env=VAR``
    the environment variable holding the oss2 passphrase (see above);
``style=oss2``
    write wrapped keys as oss2's ``AliKMSProvider`` does (base64 of the CiphertextBlob), so that oss2 reads
    the objects; the default, ``style=go``, writes the CiphertextBlob as it is, as the Go, Java and C++ SDKs
    and alibabacloud-oss-v2 do. Both styles are always read; the two SDK families cannot read each other's.

Percent-encode ``&``, ``#``, ``%`` and ``+`` in values.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import os
import re
import threading
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, unquote

from cse.envelope import WrapAlgorithm
from cse.exceptions import (
    ConfigurationError,
    CseError,
    DecryptionError,
    KeyProviderError,
    KmsAccessDeniedError,
    KmsError,
    KmsInvalidKeyUsageError,
    KmsKeyDisabledError,
    KmsKeyNotFoundError,
    KmsKeyPendingDeletionError,
    KmsThrottledError,
    KmsWrongRegionError,
)
from cse.providers import DataKey, KeyProvider, KeyRequest
from cse.retry import Attempts, RetryPolicy, retry_call

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_READ_TIMEOUT",
    "ENDPOINT_ENV",
    "PASSPHRASE_CONTEXT_KEY",
    "AliyunKmsProvider",
]

_A = WrapAlgorithm

#: The default client's connect timeout, in seconds.
DEFAULT_CONNECT_TIMEOUT = 2.0
#: The default client's read timeout, in seconds (KMS answers in milliseconds).
DEFAULT_READ_TIMEOUT = 4.0
#: The attempts per call, the first included (the provider retries; the SDK sends once).
DEFAULT_MAX_ATTEMPTS = 3
#: Seconds over all attempts of one call after which no attempt starts.
DEFAULT_DEADLINE = 15.0
#: The environment variable that overrides the KMS endpoint of the default client.
ENDPOINT_ENV = "CSE_ALIYUN_KMS_ENDPOINT"
#: The encryption context entry in which oss2's ``AliKMSProvider`` sends its passphrase.
PASSPHRASE_CONTEXT_KEY = "x-passphrase"  # noqa: S105 - a context key name, not a password

#: The longest CiphertextBlob text cse sends to Decrypt (KMS blobs are a few hundred characters).
_MAX_BLOB_TEXT = 8192
#: Secret lengths unwrap accepts besides ``request.key_length``: a content key or an OSS IV.
_SECRET_LENGTHS = frozenset({16, 32})
_B64_TEXT = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
#: Decrypt refusals that are statements about the blob or the context (opaque DecryptionError).
_AUTHENTICATION_CODES = frozenset({"InvalidCiphertext", "InvalidParameter", "Forbidden.KeyNotFound"})
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId",
        "InvalidAccessKeyId.Inactive",
        "InvalidAccessKeySecret",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidSecurityToken.Expired",
        "InvalidSecurityToken.Malformed",
        "InvalidSecurityToken.MismatchWithAccessKey",
        "InvalidTimeStamp.Expired",
    }
)
# Error codes. Checked against the KMS API reference (the Decrypt page and the common error codes):
# Forbidden.KeyNotFound and Forbidden.AliasNotFound (404), Forbidden.NoPermission (403), Rejected.Disabled,
# Rejected.PendingDeletion, Rejected.PendingImport and Rejected.Unavailable (409), UnsupportedOperation (400),
# InternalFailure (500), ServiceUnavailableTemporary (503). Not found on a KMS page, and so matched by name
# (and for throttling also by the "Throttling." prefix): Forbidden.RAM (the RAM denial other Alibaba Cloud
# products answer), Forbidden.ResourceNotFound, and the gateway's flow control Throttling, Throttling.User
# and Throttling.Api. That UnsupportedOperation is the answer for a key that cannot encrypt (an asymmetric
# or signing key) is inferred from its text, "This action is not supported.".
_THROTTLING_CODES = frozenset({"Throttling", "Throttling.User", "Throttling.Api"})
_UNAVAILABLE_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableTemporary",
        "SerivceUnavailableTemporary",  # sic: so the KMS common error table spells it
        "InternalError",
        "InternalFailure",
    }
)
_NOT_FOUND_CODES = frozenset(
    {"Forbidden.KeyNotFound", "Forbidden.AliasNotFound", "Forbidden.ResourceNotFound"}
)
_ACCESS_DENIED_CODES = frozenset({"Forbidden.NoPermission", "Forbidden.RAM", "NoPermission"})
_KEY_STATE_CODES = frozenset({"Rejected.PendingImport", "Rejected.Unavailable"})
#: What KMS answers for an operation the key does not support (Encrypt with an asymmetric or signing key).
_KEY_USAGE_CODES = frozenset({"UnsupportedOperation", "Rejected.UnsupportedOperation"})
_HINTS = {
    "Forbidden.DKMSInstanceStateInvalid": "the KMS instance the key belongs to is not running; check it",
}
_URI_HELP = (
    "aliyun-kms://REGION/KEY[?endpoint=URL&connect-timeout=SECONDS&read-timeout=SECONDS&max-attempts=N&deadline=S"
    "&passphrase-env=VAR&style=oss2], where REGION is a KMS region such as cn-hangzhou and KEY a key id, "
    "alias/NAME or key ARN"
)
_PARAMS = {
    "endpoint": "endpoint",
    "connect-timeout": "connect_timeout",
    "read-timeout": "read_timeout",
    "max-attempts": "max_attempts",
    "deadline": "deadline",
    "passphrase-env": "passphrase_env",
    "style": "style",
}
_QUERY_STRING = re.compile(r"\?[^\s'\")]*")
_STRING_TO_SIGN = re.compile(r"string to sign is.*", re.IGNORECASE | re.DOTALL)


#: Error codes a retry can help with (besides any HTTP 5xx and the SDK's network failures).
_RETRYABLE_CODES = _THROTTLING_CODES | _UNAVAILABLE_CODES


def _retryable(exc: BaseException) -> bool:
    """Whether another attempt can help: a time-out or failed connection, throttling, a 5xx."""
    if isinstance(exc, OSError):
        return True
    code = getattr(exc, "get_error_code", None)
    if code is None:
        return False
    text = str(code() or "")
    if text in ("SDK.HttpError", "SDK.ServerUnreachable"):
        return True
    status = getattr(exc, "get_http_status", lambda: None)()
    return (
        text in _RETRYABLE_CODES
        or text.startswith("Throttling.")
        or (isinstance(status, int) and status >= 500)
    )


def _arn_region(key: str) -> str | None:
    """The region of a key or alias ARN (``acs:kms:REGION:UID:key/ID``); None for an id or alias name."""
    if not key.startswith("acs:kms:"):
        return None
    parts = key.split(":", 4)
    return parts[2] if len(parts) == 5 and parts[2] else None


# -- key URIs ---------------------------------------------------------------------------------------------


def _parse_uri(uri: str) -> tuple[str, str, dict[str, Any]]:
    """Split an aliyun-kms key URI into region, key and constructor keyword arguments."""
    if not isinstance(uri, str):
        raise ConfigurationError(f"a key URI is a string, not {type(uri).__name__}")
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() != AliyunKmsProvider.scheme:
        raise ConfigurationError(f"{uri!r} is not an aliyun-kms key URI; write {_URI_HELP}")
    if "#" in rest:
        raise ConfigurationError(f"the key URI {uri!r} has a '#' fragment; percent-encode '#' as %23")
    path, _, query = rest.partition("?")
    raw_region, slash, raw_key = path.partition("/")
    region, key = unquote(raw_region), unquote(raw_key)
    if not slash or not region or not key:
        raise ConfigurationError(f"the key URI {uri!r} lacks a region or a key; write {_URI_HELP}")
    try:
        params = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigurationError(
            f"the query of the key URI {uri!r} is malformed; it is NAME=VALUE pairs joined by '&': "
            f"{_URI_HELP}"
        ) from None
    options: dict[str, Any] = {}
    for name, value in params:
        if name not in _PARAMS:
            raise ConfigurationError(
                f"unknown parameter {name!r} in the key URI {uri!r}; aliyun-kms takes {', '.join(_PARAMS)}"
            )
        arg = _PARAMS[name]
        if arg in options:
            raise ConfigurationError(f"the key URI {uri!r} gives {name} twice")
        if not value:
            raise ConfigurationError(f"{name}= in the key URI {uri!r} has no value")
        if name in ("connect-timeout", "read-timeout", "deadline"):
            try:
                options[arg] = float(value)
            except ValueError:
                raise ConfigurationError(
                    f"{name}={value!r} in the key URI {uri!r} is not a number of seconds"
                ) from None
        elif name == "max-attempts":
            try:
                options[arg] = int(value)
            except ValueError:
                raise ConfigurationError(
                    f"{name}={value!r} in the key URI {uri!r} is not a whole number"
                ) from None
        else:
            options[arg] = value
    return region, key, options


def _positive(name: str, value: float | None, default: float) -> float:
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def _spellings(value: str | None) -> list[str]:
    """How a request parameter may show in an SDK error: as is, percent-encoded once (a URL) or twice (the
    RPC string to sign)."""
    if not value:
        return []
    once = quote(value, safe="~")
    return [value, once, quote(once, safe="~")]


def _scrub(text: str) -> str:
    """An SDK error text without request query strings or an echoed string to sign (they hold parameters)."""
    return _QUERY_STRING.sub(
        "?(query omitted)", _STRING_TO_SIGN.sub("string to sign (omitted)", text)
    ).strip()


# -- the provider -----------------------------------------------------------------------------------------


class AliyunKmsProvider(KeyProvider):
    """Makes, wraps and unwraps content keys with an Alibaba Cloud KMS key (``KMS/ALICLOUD``).

    ``region`` is the KMS region and ``key_id`` the key (id, ``alias/NAME`` or ARN). Wrapped keys are the
    KMS CiphertextBlob text as ASCII bytes; see the module docstring for the KMS calls, the passphrase,
    errors, clients and the key URI.

    ``client`` is an ``aliyunsdkcore.client.AcsClient`` to use as is. Without one, the provider builds one
    on first use from the environment's credentials, with ``endpoint`` (else ``CSE_ALIYUN_KMS_ENDPOINT``),
    ``connect_timeout`` (default 5 s), ``read_timeout`` (default 30 s) and ``max_attempts`` (default 3, the
    first attempt included); these settings cannot be combined with ``client``.

    ``passphrase`` adds ``{"x-passphrase": passphrase}`` to every encryption context, as oss2's
    ``AliKMSProvider(passphrase=...)`` does.

    Instances are immutable (but for the lazily built client) and thread-safe; ``repr`` shows no secret.
    """

    scheme: ClassVar[str] = "aliyun-kms"
    wrap_algorithms: ClassVar[tuple[str, ...]] = (_A.ALIYUN_KMS,)

    def __init__(
        self,
        region: str,
        key_id: str,
        *,
        client: Any = None,
        endpoint: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_attempts: int | None = None,
        deadline: float | None = None,
        passphrase: str | None = None,
        style: str = "go",
    ) -> None:
        """Configure the provider; raise :class:`~cse.exceptions.ConfigurationError` for bad settings.

        ``style`` is how wrapped keys are written: ``go`` (the CiphertextBlob text as it is, as the Go, Java
        and C++ SDKs and alibabacloud-oss-v2 write it; the default) or ``oss2`` (base64 of that text, as
        oss2's ``AliKMSProvider`` writes it, for objects oss2 must read; the others then cannot). Both are
        read. No request is made and no client is built here.
        """
        if style not in ("go", "oss2"):
            raise ConfigurationError(f"style is go or oss2, not {style!r}")
        self._style = style
        if not isinstance(region, str) or not _REGION.fullmatch(region):
            raise ConfigurationError(
                f"{region!r} is not an Alibaba Cloud region id; give one such as cn-hangzhou"
            )
        if not isinstance(key_id, str) or not key_id.strip() or key_id != key_id.strip():
            raise ConfigurationError(
                f"{key_id!r} is not a KMS key; give a key id, alias/NAME or key ARN (acs:kms:...)"
            )
        self._region = region
        self._key = key_id
        self._client: Any = client
        self._injected = client is not None
        if self._injected:
            given = {
                "endpoint": endpoint,
                "connect_timeout": connect_timeout,
                "read_timeout": read_timeout,
                "max_attempts": max_attempts,
                "deadline": deadline,
            }
            clashes = [name for name, value in given.items() if value is not None]
            if clashes:
                raise ConfigurationError(
                    f"{', '.join(clashes)} configure the client the provider builds; an injected AcsClient "
                    f"is used as is, so configure it instead"
                )
        if endpoint is not None and (not isinstance(endpoint, str) or not endpoint.strip()):
            raise ConfigurationError(f"endpoint must be a host name or URL, not {endpoint!r}")
        self._endpoint = endpoint or None
        self._connect_timeout = _positive("connect_timeout", connect_timeout, DEFAULT_CONNECT_TIMEOUT)
        self._read_timeout = _positive("read_timeout", read_timeout, DEFAULT_READ_TIMEOUT)
        if max_attempts is None:
            max_attempts = DEFAULT_MAX_ATTEMPTS
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigurationError(
                f"max_attempts must be a whole number of at least 1, not {max_attempts!r}"
            )
        self._max_attempts = max_attempts
        self._deadline = _positive("deadline", deadline, DEFAULT_DEADLINE)
        if passphrase is not None and (not isinstance(passphrase, str) or not passphrase):
            raise ConfigurationError("the passphrase must be a non-empty string")
        self._passphrase = passphrase
        self._client_lock = threading.Lock()
        #: (access key id, token) of the credentials the client was built with, when they came from the
        #: default credential chain (they are renewed there); None for credentials from the environment.
        self._chain_identity: tuple[str, str | None] | None = None

    @classmethod
    def from_uri(cls, uri: str, *, client: Any = None) -> AliyunKmsProvider:
        """Build a provider from an ``aliyun-kms://REGION/KEY`` key URI (syntax in the module docstring).

        ``client``, if given, is an ``AcsClient`` to use as is (the URI then may not set the endpoint,
        timeouts or attempts). ``passphrase-env=VAR`` reads the passphrase from the environment variable
        ``VAR`` now. Raises :class:`~cse.exceptions.ConfigurationError` for a malformed URI, explaining the
        syntax. No request is made.
        """
        region, key, options = _parse_uri(uri)
        variable = options.pop("passphrase_env", None)
        if variable is not None:
            passphrase = os.environ.get(variable)
            if not passphrase:
                raise ConfigurationError(
                    f"the key URI {uri!r} reads the passphrase from the environment variable {variable}, "
                    f"which is not set or empty"
                )
            options["passphrase"] = passphrase
        try:
            return cls(region, key, client=client, **options)
        except ConfigurationError as exc:
            raise ConfigurationError(f"the key URI {uri!r}: {exc}") from None

    # -- description -----------------------------------------------------------------------------------

    @property
    def key_id(self) -> str:
        """The KMS key as configured (key id, alias or ARN)."""
        return self._key

    @property
    def region(self) -> str:
        """The KMS region."""
        return self._region

    @property
    def has_passphrase(self) -> bool:
        """Whether an oss2 passphrase is added to the encryption context."""
        return self._passphrase is not None

    @property
    def client(self) -> Any:
        """The ``AcsClient``: the injected one, or the one built on first use (built now if need be)."""
        return self._kms()

    def describe(self) -> str:
        """A one-line, secret-free description: ``aliyun-kms://REGION/KEY``."""
        return f"{self.scheme}://{self._region}/{self._key}"

    def __repr__(self) -> str:
        return (
            f"AliyunKmsProvider(region={self._region!r}, key_id={self._key!r}, "
            f"endpoint={self._endpoint_label()!r}, passphrase={'set' if self._passphrase else 'none'}, "
            f"client={'injected' if self._injected else 'default'})"
        )

    # -- clients ---------------------------------------------------------------------------------------

    def _endpoint_setting(self) -> str | None:
        return self._endpoint or os.environ.get(ENDPOINT_ENV) or None

    def _endpoint_label(self) -> str:
        if self._injected:
            return "(injected client)"
        return self._endpoint_setting() or f"kms.{self._region}.aliyuncs.com"

    def _kms(self) -> Any:
        client = self._client
        if client is None or (
            self._chain_identity is not None
            and _chain_credentials(self.describe())[::2] != self._chain_identity
        ):  # first use, or the credential chain's STS credentials were renewed
            with self._client_lock:
                self._client = self._build_client()
                client = self._client
        return client

    def _build_client(self) -> Any:
        from aliyunsdkcore.auth.credentials import (  # type: ignore[import-untyped,unused-ignore]
            StsTokenCredential,
        )
        from aliyunsdkcore.client import AcsClient  # type: ignore[import-untyped,unused-ignore]

        env = os.environ
        ak, secret, token = (
            env.get("ALIBABA_CLOUD_ACCESS_KEY_ID"),
            env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
            env.get("ALIBABA_CLOUD_SECURITY_TOKEN"),
        )
        if not (ak and secret):
            ak, secret, token = (
                env.get("OSS_ACCESS_KEY_ID"),
                env.get("OSS_ACCESS_KEY_SECRET"),
                env.get("OSS_SESSION_TOKEN"),
            )
        self._chain_identity = None
        if not (ak and secret):
            # The official default chain: profile files, OIDC (RRSA), the ECS RAM role, a credentials URI.
            ak, secret, token = _chain_credentials(self.describe())
            self._chain_identity = (ak, token)
        retry: dict[str, Any] = {"auto_retry": False}  # the provider retries (_call)
        common: dict[str, Any] = {
            "region_id": self._region,
            "connect_timeout": self._connect_timeout,
            "timeout": self._read_timeout,
            "pool_size": 32,
            **retry,
        }
        if token:
            client = AcsClient(credential=StsTokenCredential(ak, secret, token), **common)
        else:
            client = AcsClient(ak, secret, **common)
        endpoint = self._endpoint_setting()
        if endpoint:
            client.add_endpoint(self._region, "Kms", endpoint)
        return client

    # -- KMS calls -------------------------------------------------------------------------------------

    def _call(self, operation: str, request: Any, sensitive: tuple[str, ...] = ()) -> Mapping[str, Any]:
        from aliyunsdkcore.acs_exception.exceptions import (  # type: ignore[import-untyped,unused-ignore]
            ClientException,
            ServerException,
        )

        client = self._kms()
        policy = (
            RetryPolicy(max_attempts=1, deadline=self._deadline)
            if self._injected
            else RetryPolicy(self._max_attempts, self._deadline, attempt_timeout=self._read_timeout)
        )
        tally = Attempts()
        with self._kms_request(operation, str(self._key), self._region) as fields:
            try:
                body = retry_call(lambda: client.do_action_with_exception(request), policy, _retryable, tally)
            except (ServerException, ClientException) as exc:
                fields["attempts"] = tally.count
                mapped = self._map_error(exc, operation, isinstance(exc, ServerException))
                if isinstance(mapped, KmsError):
                    fields["error_code"], fields["service_code"] = mapped.code, mapped.service_code
                    mapped = mapped.with_note(f"[{tally.describe(policy)}]")
                text = str(exc)
                if any(
                    spelling in text
                    for value in (*sensitive, self._passphrase)
                    for spelling in _spellings(value)
                ):
                    raise mapped from None
                raise mapped from exc
            except OSError as exc:
                fields["attempts"] = tally.count
                raise KmsError(
                    f"could not reach Alibaba Cloud KMS for {self._where(operation)}: {_scrub(str(exc))} "
                    f"[{tally.describe(policy)}]",
                    code="unavailable",
                ) from exc
            fields["attempts"] = tally.count
        try:
            response = json.loads(body)
        except (TypeError, ValueError):
            raise KmsError(
                f"Alibaba Cloud KMS {self._where(operation)} returned a body that is not JSON"
            ) from None
        if not isinstance(response, dict):
            raise KmsError(f"Alibaba Cloud KMS {self._where(operation)} returned an unexpected body")
        return response

    def _where(self, operation: str) -> str:
        return (
            f"{operation} with key {self._key} in region {self._region} (endpoint {self._endpoint_label()})"
        )

    def _map_error(self, exc: Any, operation: str, server: bool) -> CseError:
        """The error of the tree for an SDK error (``server``: KMS answered, else the SDK failed)."""
        code = str(exc.get_error_code() or "")
        message = _scrub(str(exc.get_error_msg() or ""))
        where = self._where(operation)
        if server:
            if operation == "Decrypt" and code in _AUTHENTICATION_CODES:
                return DecryptionError()
            status = exc.get_http_status()
            detail = f"{code}: {message}" if message else code
            request_id = exc.get_request_id()
            failed = f"Alibaba Cloud KMS {where} failed (HTTP {status}, request id {request_id}): {detail}"
            return self._classify(code, failed, operation, isinstance(status, int) and status >= 500)
        if code in ("SDK.HttpError", "SDK.ServerUnreachable"):
            return KmsError(
                f"could not reach Alibaba Cloud KMS for {where}: {message}; check the network, the "
                f"endpoint (endpoint=, {ENDPOINT_ENV}) and the timeouts (connect-timeout=, read-timeout=)",
                code="unavailable",
            )
        return KmsError(f"Alibaba Cloud KMS {where} failed in the SDK: {code}: {message}")

    def _classify(self, code: str, failed: str, operation: str, server_error: bool) -> KmsError:
        """The :class:`~cse.exceptions.KmsError` (subclass) for the KMS error ``code``, with advice."""
        key, region = self._key, self._region
        action = f"kms:{operation}"
        if code in _NOT_FOUND_CODES:
            key_region = _arn_region(key)
            if key_region is not None and key_region != region:
                return KmsWrongRegionError(
                    f"{failed} (the key ARN is in region {key_region}, but the KMS client calls region "
                    f"{region}: a key exists in its own region only; give the key's region, "
                    f"aliyun-kms://{key_region}/...)",
                    key_region=key_region,
                    client_region=region,
                    service_code=code,
                )
            what = "alias" if code == "Forbidden.AliasNotFound" else "key"
            return KmsKeyNotFoundError(
                f"{failed} (no such {what}: check the key id or alias and the region; {key} must exist in "
                f"region {region} of the caller's account)",
                service_code=code,
            )
        if code == "Rejected.Disabled":
            return KmsKeyDisabledError(
                f"{failed} (the key is disabled: enable it (EnableKey, or the KMS console) or use another "
                f"key)",
                service_code=code,
            )
        if code == "Rejected.PendingDeletion":
            return KmsKeyPendingDeletionError(
                f"{failed} (the key is pending deletion: cancel the deletion (CancelKeyDeletion, or the KMS "
                f"console); once deleted, what it wrapped cannot be decrypted)",
                service_code=code,
            )
        if code in _ACCESS_DENIED_CODES:
            return KmsAccessDeniedError(
                f"{failed} (access denied: the RAM policy must allow {action} on the key)",
                action=action,
                service_code=code,
            )
        if code in _KEY_USAGE_CODES:
            return KmsInvalidKeyUsageError(
                f"{failed} (the key cannot encrypt: it is not a symmetric ENCRYPT/DECRYPT key but, e.g., an "
                f"asymmetric or signing (SIGN/VERIFY) key; use a symmetric key such as Aliyun_AES_256)",
                service_code=code,
            )
        if code in _THROTTLING_CODES or code.startswith("Throttling."):
            return KmsThrottledError(
                f"{failed} (still throttled; raise max-attempts or try again later)", service_code=code
            )
        if code in _CREDENTIAL_CODES:
            return KmsError(
                f"{failed} (check the credentials (ALIBABA_CLOUD_ACCESS_KEY_ID, "
                f"ALIBABA_CLOUD_ACCESS_KEY_SECRET, ALIBABA_CLOUD_SECURITY_TOKEN) and the clock)",
                code="credentials",
                service_code=code,
            )
        if code in _KEY_STATE_CODES:
            return KmsError(
                f"{failed} (the key's state does not allow {operation}; check it in the KMS console)",
                code="invalid-key-state",
                service_code=code,
            )
        hint = _HINTS.get(code, "")
        return KmsError(
            failed + (f" ({hint})" if hint else ""),
            code="unavailable" if server_error or code in _UNAVAILABLE_CODES else "kms-error",
            service_code=code or None,
        )

    # -- contexts and checks ---------------------------------------------------------------------------

    def _check_algorithm(self, algorithm: str) -> None:
        if algorithm not in self.wrap_algorithms:
            raise ConfigurationError(
                f"the aliyun-kms key provider does not implement the wrap algorithm {algorithm!r}; it "
                f"implements {', '.join(self.wrap_algorithms)}"
            )

    def _context(self, request: KeyRequest) -> str | None:
        """The EncryptionContext parameter: compact sorted JSON, or None when empty."""
        context = dict(request.encryption_context)
        if self._passphrase is not None:
            given = context.get(PASSPHRASE_CONTEXT_KEY)
            if given is not None and given != self._passphrase:
                raise ConfigurationError(
                    f"the encryption context sets {PASSPHRASE_CONTEXT_KEY!r}, which the provider's "
                    f"passphrase sets; leave it out of the encryption context"
                )
            context[PASSPHRASE_CONTEXT_KEY] = self._passphrase
        if not context:
            return None
        return json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    # -- generate, wrap and unwrap ---------------------------------------------------------------------

    def generate_data_key(self, request: KeyRequest) -> DataKey:
        """``GenerateDataKey`` (``KeySpec=AES_256``, or ``NumberOfBytes``) with the request's context.

        Returns the plaintext key, the CiphertextBlob text as ASCII bytes, and the key id KMS reports.
        """
        from aliyunsdkkms.request.v20160120.GenerateDataKeyRequest import (  # type: ignore[import-untyped,unused-ignore]
            GenerateDataKeyRequest,
        )

        self._check_algorithm(request.wrap_algorithm)
        if not 1 <= request.key_length <= 1024:
            raise ConfigurationError(f"KMS makes data keys of 1 to 1024 bytes, not {request.key_length}")
        req = GenerateDataKeyRequest()
        req.set_KeyId(self._key)
        if request.key_length == 32:
            req.set_KeySpec("AES_256")
        else:
            req.set_NumberOfBytes(request.key_length)
        context = self._context(request)
        if context is not None:
            req.set_EncryptionContext(context)
        response = self._call("GenerateDataKey", req)
        try:
            plaintext = base64.b64decode(str(response["Plaintext"]), validate=True)
            blob = str(response["CiphertextBlob"]).encode("ascii")
        except (KeyError, binascii.Error, ValueError):
            raise KmsError(
                f"Alibaba Cloud KMS {self._where('GenerateDataKey')} returned a malformed response"
            ) from None
        if len(plaintext) != request.key_length or not blob:
            raise KmsError(
                f"Alibaba Cloud KMS {self._where('GenerateDataKey')} returned a {len(plaintext)}-byte key, "
                f"not {request.key_length} bytes"
            )
        return DataKey(
            plaintext=plaintext, ciphertext=self._styled(blob), key_id=str(response.get("KeyId") or self._key)
        )

    def wrap(self, plaintext: bytes, request: KeyRequest) -> bytes:
        """``Encrypt(Plaintext=base64(secret))`` with the request's context; returns the CiphertextBlob text
        as ASCII bytes (how OSS wraps the IV)."""
        from aliyunsdkkms.request.v20160120.EncryptRequest import (  # type: ignore[import-untyped,unused-ignore]
            EncryptRequest,
        )

        self._check_algorithm(request.wrap_algorithm)
        secret = bytes(plaintext)
        if not secret:
            raise KeyProviderError("nothing to wrap: the secret is empty")
        encoded = base64.b64encode(secret).decode("ascii")
        req = EncryptRequest()
        req.set_KeyId(self._key)
        req.set_Plaintext(encoded)
        context = self._context(request)
        if context is not None:
            req.set_EncryptionContext(context)
        response = self._call("Encrypt", req, sensitive=(encoded, encoded.rstrip("=")))
        try:
            blob = str(response["CiphertextBlob"]).encode("ascii")
        except (KeyError, UnicodeEncodeError):
            raise KmsError(
                f"Alibaba Cloud KMS {self._where('Encrypt')} returned a malformed response"
            ) from None
        if not blob:
            raise KmsError(f"Alibaba Cloud KMS {self._where('Encrypt')} returned an empty CiphertextBlob")
        return self._styled(blob)

    def _styled(self, blob: bytes) -> bytes:
        """A CiphertextBlob text as this provider writes wrapped keys (``style``)."""
        return base64.b64encode(blob) if self._style == "oss2" else blob

    @staticmethod
    def _blob(data: bytes) -> bytes:
        """The CiphertextBlob text of a wrapped key in either style (oss2's is base64 of it)."""
        if len(data) >= 8 and _B64_TEXT.fullmatch(data):
            with contextlib.suppress(binascii.Error, ValueError):
                inner = base64.b64decode(data, validate=True)
                if len(inner) >= 64 and _B64_TEXT.fullmatch(inner) and len(inner) % 4 == 0:
                    return inner
        return data

    def unwrap(self, ciphertext: bytes, request: KeyRequest) -> bytes:
        """``Decrypt`` a CiphertextBlob text (ASCII bytes) with the request's context.

        Returns the secret (base64-decoded ``Plaintext``), which must be ``request.key_length`` bytes long
        (or 16 or 32 bytes, an IV or a content key); with ``request.secret_is_text`` (oss2 V1's counter),
        ``Plaintext`` itself, as ASCII bytes.
        Raises the opaque :class:`~cse.exceptions.DecryptionError` if the blob does not open with this
        context (or is not blob text), and :class:`~cse.exceptions.KmsError` if KMS refuses for another
        reason or cannot be reached.
        """
        from aliyunsdkkms.request.v20160120.DecryptRequest import (  # type: ignore[import-untyped,unused-ignore]
            DecryptRequest,
        )

        self._check_algorithm(request.wrap_algorithm)
        data = self._blob(bytes(ciphertext))
        if not 1 <= len(data) <= _MAX_BLOB_TEXT or not _B64_TEXT.fullmatch(data):
            raise DecryptionError()
        req = DecryptRequest()
        req.set_CiphertextBlob(data.decode("ascii"))
        context = self._context(request)
        if context is not None:
            req.set_EncryptionContext(context)
        response = self._call("Decrypt", req)
        if request.secret_is_text:  # oss2 V1's counter: Encrypt(Plaintext="<decimal>") returns it as it is
            try:
                text = str(response["Plaintext"]).encode("ascii")
            except (KeyError, UnicodeEncodeError):
                raise DecryptionError() from None
            if not 1 <= len(text) <= request.key_length:
                raise DecryptionError()
            return text
        try:
            secret = base64.b64decode(str(response["Plaintext"]), validate=True)
        except (KeyError, binascii.Error, ValueError):
            raise DecryptionError() from None
        if len(secret) != request.key_length and len(secret) not in _SECRET_LENGTHS:
            raise DecryptionError()
        return secret


_CHAIN: Any = None
_CHAIN_LOCK = threading.Lock()


def _chain_credentials(what: str) -> tuple[str, str, str | None]:
    """Credentials from Alibaba Cloud's default credential chain (``alibabacloud-credentials``): the
    ``ALIBABA_CLOUD_*`` variables, OIDC (RRSA), the CLI's and the SDK's profile files, the ECS RAM role,
    and ``ALIBABA_CLOUD_CREDENTIALS_URI``. A :class:`~cse.exceptions.ConfigurationError` when none has any."""
    try:
        from alibabacloud_credentials.provider import (  # type: ignore[import-untyped]
            DefaultCredentialsProvider,
        )
    except ImportError:  # pragma: no cover - a dependency of this distribution
        chain_error = "alibabacloud-credentials is not installed"
    else:
        global _CHAIN
        try:
            with _CHAIN_LOCK:
                if _CHAIN is None:  # one chain per process: its sources cache and renew what they fetch
                    _CHAIN = DefaultCredentialsProvider()
            found = _CHAIN.get_credentials()
        except Exception as exc:
            # Not quoted: a credentials URI's malformed answer, which the chain's message carries, may
            # hold a secret.
            chain_error = f"the default credential chain found none ({type(exc).__name__})"
        else:
            return (
                found.get_access_key_id(),
                found.get_access_key_secret(),
                found.get_security_token() or None,
            )
    raise ConfigurationError(
        f"no Alibaba Cloud credentials for the KMS key {what}: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET (and ALIBABA_CLOUD_SECURITY_TOKEN for STS credentials), or "
        "OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET, or configure the default credential chain (a profile "
        "in ~/.alibabacloud/credentials.ini or ~/.aliyun/config.json, an ECS RAM role, RRSA's OIDC "
        f"variables, ALIBABA_CLOUD_CREDENTIALS_URI), or pass a configured AcsClient ({chain_error})"
    )
