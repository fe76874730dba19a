"""The ``aws-kms`` key provider: AWS KMS data keys, as the AWS S3 Encryption Client makes them.

Wrap algorithms (names from :class:`cse.envelope.WrapAlgorithm`):

``kms+context`` (S3 V2 and V3, ``x-amz-w: 12``; also cse-v1)
    A new content key is ``GenerateDataKey(KeyId=KEY, KeySpec="AES_256", EncryptionContext=CONTEXT)``;
    a second recipient or a rewrap is ``Encrypt(KeyId=KEY, Plaintext=CEK, EncryptionContext=CONTEXT)``.
    ``CONTEXT`` is the request's encryption context plus the reserved entry ``"aws:x-amz-cek-alg"`` holding
    the content algorithm: ``"115"`` for S3 V3, ``"AES/GCM/NoPadding"`` for S3 V2, exactly what the official
    S3 Encryption Client sends (its ``KmsKeyring.on_encrypt``), and, by the same rule, the cse-v1 algorithm
    name (``"cse-v1/AES-256-GCM-HKDF-SHA256-STREAM"``) for cse-v1 objects. KMS binds the context to the
    ciphertext, so the key unwraps only with the same context and content algorithm.

    Unwrapping is ``Decrypt(CiphertextBlob=..., EncryptionContext=STORED, KeyId=KEY)``, where ``STORED`` is
    the request's encryption context as the object stores it. The S3 formats store the reserved entry (the
    S3 ``x-amz-t`` / ``x-amz-matdesc``); when the request's context lacks it, as cse-v1 records only the
    user's context, it is added. When it is present it must name the request's content algorithm, else
    the object's metadata contradicts itself and unwrapping raises :class:`~cse.exceptions.MetadataError`.

    The user's encryption context may not set ``aws:x-amz-cek-alg`` to anything else than the content
    algorithm: wrapping then raises :class:`~cse.exceptions.ConfigurationError`. (The same value is
    accepted, so that a stored context can be passed back when rewrapping.)

``kms`` (S3 V1, legacy, read only)
    ``Decrypt(CiphertextBlob=..., EncryptionContext=STORED, KeyId=KEY)`` with the material description the
    V1 client stored (``x-amz-matdesc``, normally ``{"kms_cmk_id": "<the key id the writer used>"}``), as the
    official client's ``KmsKeyring.on_decrypt`` does. The stored context is taken from the request's
    encryption context, else its material description, else ``{"kms_cmk_id": <the recorded key id, else
    this provider's key>}``. Readable only by a provider built with ``allow_legacy=True``; otherwise
    :meth:`~AwsKmsProvider.can_unwrap` declines such keys and :meth:`~AwsKmsProvider.unwrap` raises a
    :class:`~cse.exceptions.ConfigurationError` naming the opt-in. Never written.

Key selection
    A provider built with a key (id, ARN, alias or alias ARN) unwraps with ``KeyId`` set to it, so KMS
    refuses a ciphertext of another key (``IncorrectKeyException``, reported as the opaque
    :class:`~cse.exceptions.DecryptionError`). When the wrapped key records a key ARN that is certainly
    another key, :meth:`~AwsKmsProvider.can_unwrap` declines it without asking KMS.

    With ``discovery=True`` the provider omits ``KeyId`` and KMS uses the key named inside the ciphertext,
    but only keys in ``discovery_accounts`` (required) and, when given, ``discovery_regions`` are trusted:
    the recorded key ARN is checked before the call, and the ARN KMS reports after it; a key outside the
    allow-list is refused with :class:`~cse.exceptions.NoMatchingKeyError` naming its account or region
    (the plaintext KMS returned is dropped). A discovery provider may still name a key, which it wraps
    with; without one it only unwraps (:attr:`~AwsKmsProvider.can_encrypt` is ``False``).

Errors
    A ``Decrypt`` that fails with ``InvalidCiphertextException`` or ``IncorrectKeyException`` (damaged
    blob, wrong context, wrong key) raises the opaque :class:`~cse.exceptions.DecryptionError`. So does a
    ``Decrypt`` ``AccessDeniedException`` that is not a policy denial: KMS answers "The ciphertext refers to
    a customer master key that does not exist, does not exist in this region, or you are not allowed to
    access" for a blob whose key it cannot resolve (a damaged key reference, a key of another region or
    account; moto's server sends this, and a key mismatch, with no message at all).

    Every other refusal, and every network failure (cannot connect, connect or read timeout), raises a
    :class:`~cse.exceptions.KmsError` naming the operation, the key, the region, the endpoint and the
    attempts, saying what to do, with the stable ``code`` and KMS's own ``service_code``, raised ``from``
    the botocore error:

    - ``DisabledException``: :class:`~cse.exceptions.KmsKeyDisabledError` (enable the key);
    - ``KMSInvalidStateException`` saying "pending deletion":
      :class:`~cse.exceptions.KmsKeyPendingDeletionError` (cancel the deletion); in another state a
      ``KmsError`` with code ``invalid-key-state``;
    - ``NotFoundException``: :class:`~cse.exceptions.KmsKeyNotFoundError` (check the id, alias and region),
      or :class:`~cse.exceptions.KmsWrongRegionError` naming both regions when the key (or, on unwrap, the
      key the object records) is an ARN of another region than the client's; so is a ``Decrypt``
      ``AccessDeniedException`` of a blob KMS cannot resolve when the object records a key ARN of another
      region (as in discovery mode);
    - ``AccessDeniedException`` saying the caller "is not authorized to perform" the action (an IAM or key
      policy denial): :class:`~cse.exceptions.KmsAccessDeniedError`, whose ``action`` is the missing
      ``kms:GenerateDataKey``, ``kms:Encrypt`` or ``kms:Decrypt``;
    - ``InvalidKeyUsageException``: :class:`~cse.exceptions.KmsInvalidKeyUsageError` (the key cannot
      encrypt: a SIGN_VERIFY, MAC or asymmetric key);
    - ``ThrottlingException`` and ``LimitExceededException``, once the retries are used:
      :class:`~cse.exceptions.KmsThrottledError`;
    - bad credentials: code ``credentials``; network failures and KMS-side failures: ``unavailable``.

    No message holds key material, plaintext or credentials.

Clients
    An injected boto3 KMS client (``client=boto3.client("kms", ...)``) is used as is, with its own retries.
    Otherwise the provider builds one on first use (once, thread-safely) from a new
    :class:`boto3.session.Session` with ``botocore.config.Config(connect_timeout=2, read_timeout=4,
    retries={"total_max_attempts": 1})``, and the provider owns the retries (:mod:`cse.retry`): at most
    ``max_attempts`` (3) sends per call, the first included, retried only after a time-out, a connection
    failure, throttling or a KMS-side 5xx, with full-jitter backoff, and none started after ``deadline``
    (15 s) or when its read timeout would not fit in what is left. A KMS that accepts connections and never
    answers fails a call in about 12 s (3 x 4 s); the error names the endpoint, the region, the attempts
    and the time spent. boto3 reads the
    standard AWS settings itself: credentials, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``
    and ``AWS_ENDPOINT_URL_KMS``, and the config files. boto3 ignores ``AWS_REGION``, so the provider
    reads it. The region is the one given, else the key ARN's, else ``AWS_REGION``, else boto3's default.

Key URI::

    aws-kms://KEY[?PARAM=VALUE&...]

``KEY`` is a key id, key ARN, alias name or alias ARN, for example ``aws-kms://alias/backups``,
``aws-kms://1234abcd-12ab-34cd-56ef-1234567890ab`` or
``aws-kms://arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab``. It may be left
out with ``discovery=true`` (``aws-kms://?discovery=true&discovery-accounts=111122223333``). Parameters:

``region=REGION``
    the KMS region (must agree with a key ARN's region);
``endpoint-url=URL``
    the KMS endpoint (a VPC endpoint, or a local emulator); ``AWS_ENDPOINT_URL_KMS`` does the same;
``profile=NAME``
    the AWS profile of the shared config files;
``connect-timeout=SECONDS``, ``read-timeout=SECONDS``, ``max-attempts=N``, ``deadline=SECONDS``
    the default client's timeouts (2 and 4 s), attempts per call, the first included (3), and the time
    after which no attempt starts (15 s);
``discovery=true``
    unwrap with whatever key the ciphertext names, within the allow-list below;
``discovery-accounts=ACCOUNT[,ACCOUNT...]``, ``discovery-regions=REGION[,REGION...]``
    the accounts (required with discovery) and regions (default: any) whose keys discovery trusts;
    repeatable;
``allow-legacy=true``
    read the legacy S3 V1 ``kms`` wrapping.

Boolean values are ``true``/``false`` (also ``1``/``0``, ``yes``/``no``). Percent-encode ``&``, ``#``,
``%`` and ``+`` in values.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote

from cse.envelope import WrapAlgorithm, WrappedKey
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
    MetadataError,
    NoMatchingKeyError,
)
from cse.providers import DataKey, KeyProvider, KeyRequest
from cse.retry import Attempts, RetryPolicy, retry_call
from cse_aws_kms.names import (
    KEY_REFERENCE_HELP,
    KeyReference,
    check_account,
    check_region,
    parse_key_reference,
    try_parse_key_reference,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_READ_TIMEOUT",
    "LEGACY_CONTEXT_KEY",
    "RESERVED_CONTEXT_KEY",
    "AwsKmsProvider",
]

_A = WrapAlgorithm

#: The encryption context entry the S3 Encryption Client reserves for the content algorithm.
RESERVED_CONTEXT_KEY = "aws:x-amz-cek-alg"
#: The material description entry in which the S3 V1 client recorded its KMS key (legacy ``kms``).
LEGACY_CONTEXT_KEY = "kms_cmk_id"
#: The default client's connect timeout, in seconds.
DEFAULT_CONNECT_TIMEOUT = 2.0
#: The default client's read timeout, in seconds (KMS answers in milliseconds).
DEFAULT_READ_TIMEOUT = 4.0
#: The attempts per call, the first included (the provider retries; botocore sends once).
DEFAULT_MAX_ATTEMPTS = 3
#: Seconds over all attempts of one call after which no attempt starts.
DEFAULT_DEADLINE = 15.0

#: KMS accepts ciphertext blobs of 1 to 6144 bytes.
_MAX_CIPHERTEXT = 6144
#: KMS errors that mean "this ciphertext does not open with this key and context".
_AUTHENTICATION_CODES = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})
#: What an AccessDeniedException says when it is an IAM or key policy denial (not a statement about the blob).
_POLICY_DENIAL_MESSAGE = "not authorized"
_THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "LimitExceededException", "RequestLimitExceeded", "TooManyRequests"}
)
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
    }
)
#: What KMSInvalidStateException says for a key scheduled for deletion ("<arn> is pending deletion.").
_PENDING_DELETION = ("pending deletion", "pendingdeletion")
_HINTS = {
    "KeyUnavailableException": "the key is unavailable for now; try again later",
    "DependencyTimeoutException": "KMS timed out internally; try again later",
    "KMSInternalException": "KMS failed internally; try again later",
}
_METHODS = {"GenerateDataKey": "generate_data_key", "Encrypt": "encrypt", "Decrypt": "decrypt"}

_URI_HELP = (
    "aws-kms://KEY[?region=REGION&endpoint-url=URL&profile=NAME&connect-timeout=SECONDS"
    "&read-timeout=SECONDS&max-attempts=N&deadline=SECONDS&discovery=true&discovery-accounts=ACCOUNT,...&discovery-regions="
    "REGION,...&allow-legacy=true], where KEY is " + KEY_REFERENCE_HELP
)
_SINGLE_PARAMS = {
    "region": "region",
    "endpoint-url": "endpoint_url",
    "profile": "profile",
    "connect-timeout": "connect_timeout",
    "read-timeout": "read_timeout",
    "max-attempts": "max_attempts",
    "deadline": "deadline",
    "discovery": "discovery",
    "allow-legacy": "allow_legacy",
}
_LIST_PARAMS = {"discovery-accounts": "discovery_accounts", "discovery-regions": "discovery_regions"}
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


# -- key URIs ---------------------------------------------------------------------------------------------


def _parse_bool(uri: str, name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigurationError(
        f"{name}={value!r} in the key URI {uri!r} is not a boolean; write {name}=true or {name}=false"
    )


def _parse_number(uri: str, name: str, value: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number of seconds"
        raise ConfigurationError(f"{name}={value!r} in the key URI {uri!r} is not {what}") from None


def _parse_uri(uri: str) -> tuple[str | None, dict[str, Any]]:
    """Split an aws-kms key URI into the key reference (or None) and constructor keyword arguments."""
    if not isinstance(uri, str):
        raise ConfigurationError(f"a key URI is a string, not {type(uri).__name__}")
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() != AwsKmsProvider.scheme:
        raise ConfigurationError(f"{uri!r} is not an aws-kms key URI; write {_URI_HELP}")
    if "#" in rest:
        raise ConfigurationError(f"the key URI {uri!r} has a '#' fragment; percent-encode '#' as %23")
    raw_key, _, query = rest.partition("?")
    key: str | None = unquote(raw_key)
    if key in ("", "/"):
        key = None
    try:
        params = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigurationError(
            f"the query of the key URI {uri!r} is malformed; it is NAME=VALUE pairs joined by '&': "
            f"{_URI_HELP}"
        ) from None
    options: dict[str, Any] = {}
    lists: dict[str, list[str]] = {}
    for name, value in params:
        if name in _LIST_PARAMS:
            items = [item.strip() for item in value.split(",") if item.strip()]
            if not items:
                raise ConfigurationError(f"{name}= in the key URI {uri!r} is empty")
            lists.setdefault(_LIST_PARAMS[name], []).extend(items)
            continue
        if name not in _SINGLE_PARAMS:
            known = ", ".join([*_SINGLE_PARAMS, *_LIST_PARAMS])
            raise ConfigurationError(
                f"unknown parameter {name!r} in the key URI {uri!r}; aws-kms takes {known}"
            )
        arg = _SINGLE_PARAMS[name]
        if arg in options:
            raise ConfigurationError(f"the key URI {uri!r} gives {name} twice")
        if not value:
            raise ConfigurationError(f"{name}= in the key URI {uri!r} has no value")
        if name in ("discovery", "allow-legacy"):
            options[arg] = _parse_bool(uri, name, value)
        elif name in ("connect-timeout", "read-timeout", "deadline"):
            options[arg] = _parse_number(uri, name, value, float)
        elif name == "max-attempts":
            options[arg] = int(_parse_number(uri, name, value, int))
        else:
            options[arg] = value
    options.update(lists)
    return key, options


# -- the provider -----------------------------------------------------------------------------------------


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


def _names(values: Iterable[str] | str | None, check: Any, what: str) -> frozenset[str] | None:
    if values is None:
        return None
    items = [values] if isinstance(values, str) else list(values)
    try:
        return frozenset(check(item) for item in items)
    except ValueError as exc:
        raise ConfigurationError(f"{what}: {exc}") from None


class AwsKmsProvider(KeyProvider):
    """Makes, wraps and unwraps content keys with an AWS KMS key.

    ``key_id`` names the KMS key: a key id, key ARN, alias name (``alias/NAME``) or alias ARN. It wraps new
    objects and, unless ``discovery`` is set, is the ``KeyId`` of every unwrap. See the module docstring
    for the wrap algorithms, the encryption context sent to KMS, key selection, errors and the key URI.

    ``client`` is a boto3 KMS client to use as is. Without one, the provider builds one on first use from
    ``region``, ``endpoint_url``, ``profile``, ``connect_timeout`` (default 5 s), ``read_timeout``
    (default 30 s) and ``max_attempts`` (default 3, the first attempt included, botocore's "standard"
    retry mode); these settings cannot be combined with ``client``.

    ``discovery=True`` unwraps with whatever key the ciphertext names, if it belongs to one of
    ``discovery_accounts`` (12-digit account ids, required) and, when given, one of ``discovery_regions``.
    ``allow_legacy=True`` lets the provider read the legacy S3 V1 ``kms`` wrapping.

    Instances are immutable (but for the lazily built client) and thread-safe; ``repr`` shows no secret.
    """

    scheme: ClassVar[str] = "aws-kms"
    wrap_algorithms: ClassVar[tuple[str, ...]] = (_A.KMS_CONTEXT, _A.KMS)
    unwrap_only_algorithms: ClassVar[tuple[str, ...]] = (_A.KMS,)

    def __init__(
        self,
        key_id: str | None = None,
        *,
        client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_attempts: int | None = None,
        deadline: float | None = None,
        discovery: bool = False,
        discovery_accounts: Iterable[str] | str | None = None,
        discovery_regions: Iterable[str] | str | None = None,
        allow_legacy: bool = False,
    ) -> None:
        """Configure the provider; raise :class:`~cse.exceptions.ConfigurationError` for bad settings.

        No request is made and no client is built here.
        """
        self._key: KeyReference | None = None
        if key_id is not None:
            try:
                self._key = parse_key_reference(key_id)
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from None
        elif not discovery:
            raise ConfigurationError(
                f"an aws-kms key provider needs a KMS key: give {KEY_REFERENCE_HELP} "
                f"(or discovery=True with discovery_accounts to only decrypt)"
            )
        self._discovery = bool(discovery)
        self._allow_legacy = bool(allow_legacy)
        self._discovery_accounts = _names(discovery_accounts, check_account, "discovery_accounts")
        self._discovery_regions = _names(discovery_regions, check_region, "discovery_regions")
        if not self._discovery and (
            self._discovery_accounts is not None or self._discovery_regions is not None
        ):
            raise ConfigurationError(
                "discovery_accounts and discovery_regions apply to discovery mode only; pass discovery=True "
                "(discovery=true in a key URI) or leave them out"
            )
        if self._discovery and not self._discovery_accounts:
            raise ConfigurationError(
                "discovery=True decrypts with whatever KMS key a ciphertext names, so it needs "
                "discovery_accounts: the AWS account ids (12 digits) whose keys you trust "
                "(discovery-accounts=111122223333 in a key URI); discovery_regions narrows it further"
            )
        if self._discovery_regions is not None and not self._discovery_regions:
            raise ConfigurationError("discovery_regions is empty; leave it out to allow every region")

        if region is not None:
            try:
                check_region(region)
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from None
        key_region = self._key.region if self._key is not None else None
        if region is not None and key_region is not None and region != key_region:
            raise ConfigurationError(
                f"the key ARN {self._key.text if self._key else ''} is in region {key_region}, but region "
                f"{region} was given; leave the region out or give the key's region"
            )
        self._region: str | None = region or key_region

        self._client: Any = client
        self._injected = client is not None
        if self._injected:
            given = {
                "endpoint_url": endpoint_url,
                "profile": profile,
                "connect_timeout": connect_timeout,
                "read_timeout": read_timeout,
                "max_attempts": max_attempts,
                "deadline": deadline,
            }
            clashes = [name for name, value in given.items() if value is not None]
            if clashes:
                raise ConfigurationError(
                    f"{', '.join(clashes)} configure the client the provider builds; an injected KMS client "
                    f"is used as is, so configure it instead"
                )
            client_region = _client_region(client)
            if self._region is not None and client_region is not None and self._region != client_region:
                what = f"region {region} was given" if region else f"the key ARN is in region {self._region}"
                raise ConfigurationError(
                    f"{what}, but the injected KMS client is in region {client_region}; give a client of "
                    f"the key's region"
                )
            if self._region is None:
                self._region = client_region
        self._endpoint_url = endpoint_url or None
        self._profile = profile or None
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
        self._client_lock = threading.Lock()

    @classmethod
    def from_uri(cls, uri: str, *, client: Any = None) -> AwsKmsProvider:
        """Build a provider from an ``aws-kms://`` key URI (syntax in the module docstring).

        ``client``, if given, is a boto3 KMS client to use as is (the URI then may not set the client's
        endpoint, profile, timeouts or attempts). Raises :class:`~cse.exceptions.ConfigurationError` for a
        malformed URI, explaining the syntax. No request is made.
        """
        key, options = _parse_uri(uri)
        try:
            return cls(key, client=client, **options)
        except ConfigurationError as exc:
            raise ConfigurationError(f"the key URI {uri!r}: {exc}") from None

    # -- description -----------------------------------------------------------------------------------

    @property
    def key_id(self) -> str:
        """The KMS key as configured (key id, key ARN, alias or alias ARN); ``""`` for discovery only."""
        return self._key.text if self._key is not None else ""

    @property
    def key(self) -> KeyReference | None:
        """The configured KMS key, parsed; ``None`` for a discovery-only provider."""
        return self._key

    @property
    def can_encrypt(self) -> bool:
        """Whether a KMS key is configured to wrap new keys (a discovery-only provider only unwraps)."""
        return self._key is not None

    @property
    def region(self) -> str | None:
        """The region given, or the key ARN's, or the injected client's; ``None`` leaves it to boto3."""
        return self._region

    @property
    def discovery(self) -> bool:
        """Whether unwrapping lets KMS use the key named in the ciphertext (within the allow-list)."""
        return self._discovery

    @property
    def discovery_accounts(self) -> frozenset[str] | None:
        """The accounts whose keys discovery trusts; ``None`` when not in discovery mode."""
        return self._discovery_accounts

    @property
    def discovery_regions(self) -> frozenset[str] | None:
        """The regions whose keys discovery trusts; ``None`` for any region (or not in discovery mode)."""
        return self._discovery_regions

    @property
    def allow_legacy(self) -> bool:
        """Whether the legacy S3 V1 ``kms`` wrapping is readable."""
        return self._allow_legacy

    @property
    def client(self) -> Any:
        """The boto3 KMS client: the injected one, or the one built on first use (built now if need be)."""
        return self._kms()

    def describe(self) -> str:
        """A one-line, secret-free description: ``aws-kms://KEY (region R)``, plus discovery and legacy."""
        details = [f"region {self._region_label()}"]
        if self._discovery:
            accounts = ", ".join(sorted(self._discovery_accounts or ()))
            regions = ", ".join(sorted(self._discovery_regions)) if self._discovery_regions else "any"
            details.append(f"discovery in accounts {accounts}, regions {regions}")
        if self._allow_legacy:
            details.append("legacy kms readable")
        where = f"aws-kms://{self._key.text}" if self._key is not None else "aws-kms discovery-only provider"
        return f"{where} ({'; '.join(details)})"

    def __repr__(self) -> str:
        return (
            f"AwsKmsProvider(key_id={self.key_id!r}, region={self._region!r}, discovery={self._discovery!r}, "
            f"discovery_accounts={sorted(self._discovery_accounts or ())!r}, "
            f"allow_legacy={self._allow_legacy!r}, "
            f"client={'injected' if self._injected else 'default'})"
        )

    # -- clients ---------------------------------------------------------------------------------------

    def _kms(self) -> Any:
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._build_client()
                client = self._client
        return client

    def _build_client(self) -> Any:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]
        from botocore.exceptions import NoRegionError, ProfileNotFound  # type: ignore[import-untyped]

        from cse_aws_kms import __version__

        region = self._region or os.environ.get("AWS_REGION") or None
        config = Config(
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},  # the provider retries (_call)
            user_agent_extra=f"cse-aws-kms/{__version__}",
        )
        try:
            session = boto3.session.Session(profile_name=self._profile, region_name=region)
            return session.client("kms", region_name=region, endpoint_url=self._endpoint_url, config=config)
        except NoRegionError:
            raise ConfigurationError(
                f"no AWS region for the KMS key {self.key_id or '(discovery)'}: give a key ARN, "
                f"region= (?region= in the key URI), or set AWS_REGION or AWS_DEFAULT_REGION"
            ) from None
        except ProfileNotFound as exc:
            raise ConfigurationError(f"the AWS profile {self._profile!r} is not configured: {exc}") from exc
        except ValueError as exc:  # botocore rejects a malformed endpoint URL with ValueError
            raise ConfigurationError(f"the KMS client cannot be built: {exc}") from exc

    def _region_label(self) -> str:
        if self._region is not None:
            return self._region
        client = self._client
        if client is not None:
            return _client_region(client) or "unknown"
        env = os.environ.get("AWS_REGION")
        if env:
            return env
        try:
            import botocore.session  # type: ignore[import-untyped]

            found = botocore.session.Session(profile=self._profile).get_config_variable("region")
        except Exception:  # a broken profile: describe() must not fail
            found = None
        return str(found) if found else "not configured"

    # -- KMS calls -------------------------------------------------------------------------------------

    def _retry_policy(self) -> RetryPolicy:
        """One send for an injected client (its own retries apply); else the provider's budget."""
        if self._injected:
            return RetryPolicy(max_attempts=1, deadline=self._deadline)
        return RetryPolicy(
            max_attempts=self._max_attempts, deadline=self._deadline, attempt_timeout=self._read_timeout
        )

    def _call(
        self, operation: str, key_label: str, *, recorded_key: str | None = None, **params: Any
    ) -> Mapping[str, Any]:
        """Send one KMS request under the retry budget; map a failure into the error tree.

        ``recorded_key`` is the key the object's metadata names (for unwrap), used to tell a key of another
        region from a missing one.
        """
        client = self._kms()
        policy = self._retry_policy()
        tally = Attempts()
        method = getattr(client, _METHODS[operation])
        with self._kms_request(operation, key_label, self._region_label()) as fields:
            try:
                response: Mapping[str, Any] = retry_call(lambda: method(**params), policy, _retryable, tally)
            except Exception as exc:
                fields["attempts"] = tally.count
                mapped = self._map_error(exc, operation, key_label, client, recorded_key=recorded_key)
                if mapped is None:
                    raise
                if isinstance(mapped, KmsError):
                    fields["error_code"], fields["service_code"] = mapped.code, mapped.service_code
                    endpoint = (
                        getattr(getattr(client, "meta", None), "endpoint_url", None) or "(unknown endpoint)"
                    )
                    region = self._region or _client_region(client) or "unknown"
                    mapped = mapped.with_note(
                        f"[endpoint {endpoint}, region {region}, {tally.describe(policy)}]"
                    )
                raise mapped from exc
            meta = response.get("ResponseMetadata")
            sdk_retries = int(meta.get("RetryAttempts", 0)) if isinstance(meta, Mapping) else 0
            fields["attempts"] = tally.count + sdk_retries
        return response

    def _map_error(
        self,
        exc: Exception,
        operation: str,
        key_label: str,
        client: Any,
        *,
        recorded_key: str | None = None,
    ) -> CseError | None:
        """The error of the tree for ``exc`` (a botocore error), or None for an error not botocore's."""
        try:
            from botocore import exceptions as bce
        except ImportError:  # an injected client that is not botocore's
            return None
        region = self._region or _client_region(client) or "unknown"
        where = f"{operation} with key {key_label} in region {region}"
        if isinstance(exc, bce.ClientError):
            error = exc.response.get("Error", {}) if isinstance(exc.response, Mapping) else {}
            code = str(error.get("Code", "") or "")
            message = str(error.get("Message", "") or "").strip()
            detail = f"{code}: {message}" if message else code or str(exc)
            failed = f"AWS KMS {where} failed: {detail}"
            if operation == "Decrypt":
                if code in _AUTHENTICATION_CODES:
                    return DecryptionError()
                if code == "AccessDeniedException" and _POLICY_DENIAL_MESSAGE not in message.lower():
                    # KMS cannot resolve the blob's key. When the object records a key ARN of another
                    # region (discovery reads whatever key the blob names), say so; else it is opaque.
                    key_region = _arn_region(recorded_key)
                    if key_region is not None and region not in ("unknown", key_region):
                        return _wrong_region(failed, key_region, region, code)
                    return DecryptionError()
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            unavailable = isinstance(status, int) and status >= 500
            return _classify(code, message, failed, operation, key_label, region, recorded_key, unavailable)
        if isinstance(exc, (bce.ConnectionError, bce.HTTPClientError)):
            endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None) or "(unknown endpoint)"
            return KmsError(
                f"could not reach AWS KMS at {endpoint} for {where}: {exc}; check the network, the "
                f"endpoint (endpoint-url=, AWS_ENDPOINT_URL_KMS) and the timeouts (connect-timeout=, "
                f"read-timeout=)",
                code="unavailable",
            )
        if isinstance(
            exc, (bce.NoCredentialsError, bce.PartialCredentialsError, bce.CredentialRetrievalError)
        ):
            return KmsError(
                f"no usable AWS credentials for KMS {where}: {exc}; set AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or pass a configured client",
                code="credentials",
            )
        if isinstance(exc, bce.ParamValidationError):
            detail = "" if operation == "Encrypt" else f": {exc}"  # Encrypt's report could echo the plaintext
            return ConfigurationError(f"botocore refused the parameters of KMS {where}{detail}")
        if isinstance(exc, bce.BotoCoreError):
            return KmsError(f"AWS KMS {where} failed: {exc}")
        return None

    # -- contexts and checks ---------------------------------------------------------------------------

    def _check_algorithm(self, algorithm: str) -> None:
        if algorithm not in self.wrap_algorithms:
            raise ConfigurationError(
                f"the aws-kms key provider does not implement the wrap algorithm {algorithm!r}; it "
                f"implements {', '.join(self.wrap_algorithms)}"
            )

    def _wrapping_key(self, request: KeyRequest) -> KeyReference:
        self._check_algorithm(request.wrap_algorithm)
        if request.wrap_algorithm in self.unwrap_only_algorithms:
            raise ConfigurationError(
                f"{request.wrap_algorithm} is the legacy S3 V1 KMS wrapping, which does not bind the "
                f"content algorithm; cse reads it (with allow_legacy=True) but never writes it: write "
                f"{_A.KMS_CONTEXT}"
            )
        if self._key is None:
            raise ConfigurationError(
                "this aws-kms provider is discovery-only: it decrypts but names no KMS key to encrypt with; "
                "give a key id, ARN or alias"
            )
        return self._key

    @staticmethod
    def _wrap_context(request: KeyRequest) -> dict[str, str]:
        context = dict(request.encryption_context)
        given = context.get(RESERVED_CONTEXT_KEY)
        if given is not None and given != request.content_algorithm:
            raise ConfigurationError(
                f"the encryption context sets {RESERVED_CONTEXT_KEY!r}, which the S3 Encryption Client "
                f"reserves for the content algorithm ({request.content_algorithm!r}); leave it out of the "
                f"encryption context, cse adds it"
            )
        context[RESERVED_CONTEXT_KEY] = request.content_algorithm
        return context

    def _unwrap_context(self, request: KeyRequest) -> dict[str, str]:
        if request.wrap_algorithm == _A.KMS:
            if request.encryption_context:
                return dict(request.encryption_context)
            if request.material_description:
                return dict(request.material_description)
            recorded = request.key_id or self.key_id
            return {LEGACY_CONTEXT_KEY: recorded} if recorded else {}
        context = dict(request.encryption_context)
        stored = context.get(RESERVED_CONTEXT_KEY)
        if stored is None:
            context[RESERVED_CONTEXT_KEY] = request.content_algorithm
        elif stored != request.content_algorithm:
            raise MetadataError(
                f"the encryption context's {RESERVED_CONTEXT_KEY} is {stored!r}, but the object's content "
                f"algorithm is {request.content_algorithm!r}; the metadata contradicts itself"
            )
        return context

    def _discovery_refusal(self, key: KeyReference) -> str | None:
        """Why discovery refuses ``key`` (an ARN), or None if the allow-list admits it."""
        accounts = self._discovery_accounts or frozenset()
        if key.account not in accounts:
            return (
                f"discovery refuses the KMS key {key.text}: its account {key.account} is not one of the "
                f"discovery accounts ({', '.join(sorted(accounts))})"
            )
        if self._discovery_regions is not None and key.region not in self._discovery_regions:
            return (
                f"discovery refuses the KMS key {key.text}: its region {key.region} is not one of the "
                f"discovery regions ({', '.join(sorted(self._discovery_regions))})"
            )
        return None

    # -- selection -------------------------------------------------------------------------------------

    def can_unwrap(self, wrapped: WrappedKey) -> bool:
        """Whether to try ``wrapped``: a ``kms+context`` key (or ``kms`` with ``allow_legacy``) whose recorded
        key, if any, may be this provider's key, or in discovery mode lies within the allow-list."""
        if not super().can_unwrap(wrapped):
            return False
        if wrapped.wrap_algorithm == _A.KMS and not self._allow_legacy:
            return False
        recorded = try_parse_key_reference(wrapped.key_id)
        if recorded is None:
            return True
        if self._discovery:
            return not recorded.is_arn or self._discovery_refusal(recorded) is None
        return self._key is None or self._key.may_be(recorded)

    # -- generate, wrap and unwrap ---------------------------------------------------------------------

    def generate_data_key(self, request: KeyRequest) -> DataKey:
        """``GenerateDataKey`` with the request's context plus ``aws:x-amz-cek-alg`` (see the module doc).

        Returns the plaintext key, the ``CiphertextBlob``, and the key ARN KMS reports as ``key_id``.
        """
        key = self._wrapping_key(request)
        params: dict[str, Any] = {"KeyId": key.text, "EncryptionContext": self._wrap_context(request)}
        if request.key_length == 32:
            params["KeySpec"] = "AES_256"
        else:
            params["NumberOfBytes"] = request.key_length
        response = self._call("GenerateDataKey", key.text, **params)
        plaintext = bytes(response["Plaintext"])
        if len(plaintext) != request.key_length:
            raise KmsError(
                f"AWS KMS GenerateDataKey with key {key.text} returned a {len(plaintext)}-byte key, "
                f"not {request.key_length} bytes"
            )
        return DataKey(
            plaintext=plaintext,
            ciphertext=bytes(response["CiphertextBlob"]),
            key_id=str(response.get("KeyId") or key.text),
        )

    def wrap(self, plaintext: bytes, request: KeyRequest) -> bytes:
        """``Encrypt`` a secret (a second recipient, or a rewrap) with the same context as
        :meth:`generate_data_key`; returns the ``CiphertextBlob``."""
        key = self._wrapping_key(request)
        secret = bytes(plaintext)
        if not secret:
            raise KeyProviderError("nothing to wrap: the secret is empty")
        response = self._call(
            "Encrypt",
            key.text,
            KeyId=key.text,
            Plaintext=secret,
            EncryptionContext=self._wrap_context(request),
        )
        return bytes(response["CiphertextBlob"])

    def unwrap(self, ciphertext: bytes, request: KeyRequest) -> bytes:
        """``Decrypt`` a ``kms+context`` (or, with ``allow_legacy``, ``kms``) ciphertext blob.

        Raises the opaque :class:`~cse.exceptions.DecryptionError` if KMS does not open it with this key and
        context, :class:`~cse.exceptions.NoMatchingKeyError` if the ciphertext's key is certainly another
        key or, in discovery mode, outside the allow-list, :class:`~cse.exceptions.KmsError` if KMS refuses
        or cannot be reached, and :class:`~cse.exceptions.ConfigurationError` for ``kms`` without
        ``allow_legacy``.
        """
        self._check_algorithm(request.wrap_algorithm)
        if request.wrap_algorithm == _A.KMS and not self._allow_legacy:
            raise ConfigurationError(
                "this object's key is wrapped with the legacy S3 V1 'kms' algorithm, which does not bind the "
                "content algorithm; to read it, opt in with allow_legacy=True (allow-legacy=true in the "
                "aws-kms key URI)"
            )
        data = bytes(ciphertext)
        if not 1 <= len(data) <= _MAX_CIPHERTEXT:
            raise DecryptionError()
        params: dict[str, Any] = {"CiphertextBlob": data, "EncryptionContext": self._unwrap_context(request)}
        recorded = try_parse_key_reference(request.key_id)
        if self._discovery:
            if recorded is not None and recorded.is_arn:
                refusal = self._discovery_refusal(recorded)
                if refusal is not None:
                    raise NoMatchingKeyError(refusal)
            label = request.key_id or "(the key named in the ciphertext; discovery)"
        else:
            assert self._key is not None  # the constructor requires a key without discovery
            if recorded is not None and not self._key.may_be(recorded):
                raise NoMatchingKeyError(
                    f"the wrapped key was made by the KMS key {recorded.text}, not by this provider's key "
                    f"{self._key.text}"
                )
            params["KeyId"] = label = self._key.text
        response = self._call("Decrypt", label, recorded_key=request.key_id, **params)
        if self._discovery:
            used = try_parse_key_reference(str(response.get("KeyId") or ""))
            if used is None or not used.is_arn:
                raise NoMatchingKeyError(
                    f"discovery cannot check the key KMS decrypted with ({response.get('KeyId')!r} is not a "
                    f"key ARN), so it refuses it"
                )
            refusal = self._discovery_refusal(used)
            if refusal is not None:
                raise NoMatchingKeyError(refusal)
        return bytes(response["Plaintext"])

    # -- plain Encrypt / Decrypt, for integrations with a wire format of their own --------------------

    def encrypt_secret(self, plaintext: bytes, encryption_context: Mapping[str, str] | None = None) -> bytes:
        """``Encrypt(KeyId=KEY, Plaintext=secret)`` with exactly ``encryption_context`` (none by default);
        returns the ``CiphertextBlob``.

        For integrations whose peers call KMS themselves (Parquet modular encryption's KMS clients send no
        context); objects use :meth:`wrap`. Errors as for :meth:`wrap`; no message holds the secret.
        """
        key = self._wrapping_key(KeyRequest(wrap_algorithm=_A.KMS_CONTEXT, content_algorithm=""))
        secret = bytes(plaintext)
        if not secret:
            raise KeyProviderError("nothing to wrap: the secret is empty")
        params: dict[str, Any] = {"KeyId": key.text, "Plaintext": secret}
        if encryption_context:
            params["EncryptionContext"] = dict(encryption_context)
        return bytes(self._call("Encrypt", key.text, **params)["CiphertextBlob"])

    def decrypt_secret(self, ciphertext: bytes, encryption_context: Mapping[str, str] | None = None) -> bytes:
        """``Decrypt(CiphertextBlob=..., KeyId=KEY)`` with exactly ``encryption_context`` (none by default):
        the inverse of :meth:`encrypt_secret`.

        Raises the opaque :class:`~cse.exceptions.DecryptionError` if KMS does not open the blob with this
        key, and :class:`~cse.exceptions.KmsError` if KMS refuses (a disabled key ...) or cannot be reached.
        """
        data = bytes(ciphertext)
        if not 1 <= len(data) <= _MAX_CIPHERTEXT:
            raise DecryptionError()
        params: dict[str, Any] = {"CiphertextBlob": data}
        if encryption_context:
            params["EncryptionContext"] = dict(encryption_context)
        if self._key is not None and not self._discovery:
            params["KeyId"] = label = self._key.text
        else:
            label = "(the key named in the ciphertext; discovery)"
        response = self._call("Decrypt", label, **params)
        if self._discovery:
            used = try_parse_key_reference(str(response.get("KeyId") or ""))
            refusal = "not a key ARN" if used is None or not used.is_arn else self._discovery_refusal(used)
            if refusal is not None:
                raise NoMatchingKeyError(refusal)
        return bytes(response["Plaintext"])


def _arn_region(key: str | None) -> str | None:
    """The region of a key or alias ARN; None for a key id, an alias name or nothing."""
    parsed = try_parse_key_reference(key or "")
    return parsed.region if parsed is not None and parsed.is_arn else None


def _wrong_region(failed: str, key_region: str, region: str, code: str) -> KmsWrongRegionError:
    return KmsWrongRegionError(
        f"{failed} (the key is in region {key_region}, but the KMS client calls region {region}: a key "
        f"exists in its own region only; use a client of region {key_region} (region= in the key URI), or "
        f"a multi-Region replica of the key in region {region})",
        key_region=key_region,
        client_region=region,
        service_code=code,
    )


def _classify(
    code: str,
    message: str,
    failed: str,
    operation: str,
    key: str,
    region: str,
    recorded_key: str | None,
    unavailable: bool = False,
) -> KmsError:
    """The :class:`~cse.exceptions.KmsError` (subclass) for a KMS refusal ``code``; ``failed`` opens the
    message ("AWS KMS <operation> with key K in region R failed: <code>: <message>"), and the advice follows.
    """
    action = f"kms:{operation}"
    if code == "NotFoundException":
        key_region = _arn_region(key) or _arn_region(recorded_key)
        if key_region is not None and region not in ("unknown", key_region):
            return _wrong_region(failed, key_region, region, code)
        return KmsKeyNotFoundError(
            f"{failed} (check the key id or alias and the region: the key or alias {key} must exist in "
            f"region {region} of the caller's account)",
            service_code=code,
        )
    if code == "DisabledException":
        return KmsKeyDisabledError(
            f"{failed} (the key is disabled: enable it, e.g. aws kms enable-key --key-id {key}, or use "
            f"another key)",
            service_code=code,
        )
    if code == "KMSInvalidStateException":
        if any(marker in message.lower() for marker in _PENDING_DELETION):
            return KmsKeyPendingDeletionError(
                f"{failed} (the key is pending deletion: cancel the deletion, e.g. aws kms "
                f"cancel-key-deletion --key-id {key}, then enable the key; once deleted, what it wrapped "
                f"cannot be decrypted)",
                service_code=code,
            )
        return KmsError(
            f"{failed} (the key is in a state that does not allow {operation}, e.g. pending import or "
            f"unavailable; check its state with aws kms describe-key --key-id {key})",
            code="invalid-key-state",
            service_code=code,
        )
    if code == "AccessDeniedException":
        return KmsAccessDeniedError(
            f"{failed} (access denied: the caller's IAM policy and the key policy must allow {action} on "
            f"the key)",
            action=action,
            service_code=code,
        )
    if code == "InvalidKeyUsageException":
        return KmsInvalidKeyUsageError(
            f"{failed} (the key cannot encrypt: it is not a symmetric ENCRYPT_DECRYPT key but, e.g., a "
            f"SIGN_VERIFY, GENERATE_VERIFY_MAC or asymmetric key; use a symmetric encryption key)",
            service_code=code,
        )
    if code in _THROTTLING_CODES:
        return KmsThrottledError(
            f"{failed} (still throttled; raise max-attempts or ask AWS for a higher request quota)",
            service_code=code,
        )
    if code in _CREDENTIAL_CODES:
        return KmsError(
            f"{failed} (check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE ...) and the clock)",
            code="credentials",
            service_code=code,
        )
    hint = _HINTS.get(code, "")
    return KmsError(
        failed + (f" ({hint})" if hint else ""),
        code="unavailable" if unavailable or code in _RETRYABLE_CODES else "kms-error",
        service_code=code or None,
    )


#: KMS error codes a retry can help with (besides any HTTP 5xx).
_RETRYABLE_CODES = _THROTTLING_CODES | {
    "KMSInternalException",
    "DependencyTimeoutException",
    "KeyUnavailableException",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
}


def _retryable(exc: BaseException) -> bool:
    """Whether another attempt can help: a time-out, a failed or reset connection, throttling, a 5xx."""
    try:
        from botocore import exceptions as bce
    except ImportError:  # pragma: no cover - boto3 is this package's dependency
        return False
    if isinstance(exc, bce.SSLError):
        return False
    if isinstance(exc, (bce.ConnectionError, bce.HTTPClientError)):
        return True
    if isinstance(exc, bce.ClientError):
        response = exc.response if isinstance(exc.response, Mapping) else {}
        code = str(response.get("Error", {}).get("Code", "") or "")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in _RETRYABLE_CODES or (isinstance(status, int) and status >= 500)
    return False


def _client_region(client: Any) -> str | None:
    region = getattr(getattr(client, "meta", None), "region_name", None)
    return str(region) if region else None
