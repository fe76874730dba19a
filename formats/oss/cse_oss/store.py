"""``oss://BUCKET/KEY``: Alibaba Cloud OSS (and the OSS emulator) through an ``oss2.Bucket``.

``OssStore(bucket)`` takes an ``oss2.Bucket`` (signed with V1 ``oss2.Auth`` or V4 ``oss2.AuthV4``, STS
tokens with ``oss2.StsAuth``), and uses it as it is. :meth:`OssStore.from_url` and
``OssStore.open(name)`` build one with :func:`default_bucket`:

* the endpoint comes from ``OSS_ENDPOINT`` (``https://oss-cn-hangzhou.aliyuncs.com``, or the emulator's
  ``http://127.0.0.1:PORT``);
* the region from ``OSS_REGION`` (``cn-hangzhou``). With a region, requests are signed with V4, without
  one with V1;
* credentials from ``OSS_ACCESS_KEY_ID`` / ``OSS_ACCESS_KEY_SECRET`` (and ``OSS_SESSION_TOKEN``), or else
  ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` (and
  ``ALIBABA_CLOUD_SECURITY_TOKEN``);
* timeouts: 5 s to connect, 30 s without a byte read.

Retries. oss2 sends each request once; the store owns the retry budget of a request: at most 4 sends
(:data:`REQUEST_ATTEMPTS`), retried only after a connection failure or time-out, throttling or a 5xx answer,
with full-jitter backoff (:mod:`cse.retry`), rewinding a streamed body. cse's multipart engine sends each
part once (:attr:`cse.TransferConfig.part_attempts`), so a part is sent at most 4 times.

User metadata travels as ``x-oss-meta-*`` headers, ASCII only.

CRC-64. Every upload (put and each part) computes the CRC-64/ECMA of the bytes sent and compares it with
the ``x-oss-hash-crc64ecma`` the server answers; a completed multipart upload is checked against the
CRCs of its parts, combined. A whole-object read computes the CRC-64 of the bytes received and compares it
with the header when the last byte arrives, *before* that byte is handed on, so a body corrupted in transit
raises :class:`~cse.exceptions.StoreError` and is never returned as good data. A ranged read cannot be
checked this way (the header is the whole object's CRC). The default bucket turns oss2's own CRC checks
off, since the store does them; with a bucket given with ``enable_crc=True``, oss2 checks uploads itself and
the store takes its verified answer rather than computing the CRC again.

The CRC catches corruption between the server and the client. It does not catch a change at rest: the
server recomputes the CRC of what it stores. OSS V2 (AES-CTR) has no integrity of its own, so only
``cse-v1`` detects a changed body (see ``docs/oss.md``).

Ranges are requested with ``x-oss-range-behavior: standard``, so a range that starts past the end of the
object is refused (416) rather than silently answered with the whole object, and one that runs past the
end is clamped.

Object settings (:class:`~cse.stores.base.ObjectSettings`) travel as oss2 headers: ``Content-Type``,
``Content-Disposition``, ``Cache-Control``, ``x-oss-storage-class``, ``x-oss-tagging`` and
``x-oss-server-side-encryption`` (``AES256``, ``KMS``, ``SM4``) with ``-key-id``, on PutObject,
InitiateMultipartUpload and CopyObject; ``head``/``get`` report what OSS answers, tags come from
GetObjectTagging. ``x-oss-metadata-directive: REPLACE`` drops the content headers, so ``copy`` sends the
source's again, with its SSE and storage class.

Multipart: part numbers 1..10,000, parts of at least 100 KiB but the last. Each UploadPart carries the
client-side-encryption headers that the format gives (for OSS V2 the whole crypto context, data size and
part size, as the official SDKs send). :meth:`OssStore.upload_context` reads back the crypto context of an
unfinished upload from ListParts, which is how an upload started elsewhere can be resumed.
"""

from __future__ import annotations

import builtins
import contextlib
import http.client
import logging
import os
import re
import threading
import types
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, BinaryIO, ClassVar, NoReturn, cast
from urllib.parse import quote, urlencode

import oss2  # type: ignore[import-untyped,unused-ignore]
from oss2 import exceptions as oss_errors  # type: ignore[import-untyped,unused-ignore]

from cse.exceptions import (
    ConfigurationError,
    CseError,
    InvalidRangeError,
    ObjectNotFoundError,
    StoreError,
)
from cse.retry import Attempts, RetryPolicy, retry_call
from cse.stores.base import (
    BufferReader,
    GetResult,
    ObjectInfo,
    ObjectSettings,
    PartInfo,
    ResponseBody,
    ServerSideEncryption,
    Store,
    UploadInfo,
    check_tag_limits,
    clean_metadata,
    completion_parts,
    parse_bucket_url,
    resolve_get_range,
)
from cse_oss.crc64 import BACKEND as CRC64_BACKEND
from cse_oss.crc64 import crc64, crc64_combine

__all__ = ["MAX_COPY_SIZE", "REQUEST_ATTEMPTS", "OssStore", "default_bucket"]

_PREFIX = "oss://"
_META = "x-oss-meta-"
_SSE = "x-oss-server-side-encryption"
_SSE_KEY_ID = "x-oss-server-side-encryption-key-id"
_STORAGE_CLASS = "x-oss-storage-class"
_TAGGING = "x-oss-tagging"
#: cse's server-side encryption modes and OSS's ``x-oss-server-side-encryption`` values.
_SSE_VALUES = {"aes256": "AES256", "kms": "KMS", "sm4": "SM4"}
_SSE_MODES = {value: mode for mode, value in _SSE_VALUES.items()}
KiB = 1024
MiB = 1024 * KiB
#: Sends of one request, the first included (the store retries; oss2 does not).
REQUEST_ATTEMPTS = 4
# No retry starts after 5 minutes (a part of 8 MiB moves in well under that on a working network).
_REQUEST_POLICY = RetryPolicy(max_attempts=REQUEST_ATTEMPTS, deadline=300.0, base_delay=0.2, max_delay=5.0)
_RETRYABLE_CODES = frozenset(
    {
        "RequestTimeout",
        "SlowDown",
        "Throttling",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeTooSkewed",
    }
)


# What oss2 lets through when an answer is cut while it reads it (not wrapped in an OssError): requests'
# exceptions (OSError subclasses, such as ChunkedEncodingError) and http.client's.
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)


def _retryable(exc: BaseException) -> bool:
    """Whether another send can help: no answer (connection failure, time-out), throttling, or a 5xx."""
    if isinstance(exc, (oss_errors.RequestError, *_TRANSPORT_ERRORS)):
        return True
    if isinstance(exc, oss_errors.ServerError):
        status = getattr(exc, "status", 0)
        return status >= 500 or status == 429 or str(getattr(exc, "code", "") or "") in _RETRYABLE_CODES
    return False


#: The largest object a single CopyObject copies; larger ones are copied part by part (UploadPartCopy).
MAX_COPY_SIZE = 1024 * MiB
#: Part size of such copies.
COPY_PART_SIZE = 256 * MiB
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
# ListParts elements that carry an upload's client-side-encryption context, and the metadata names of each.
_UPLOAD_CONTEXT = (
    ("ClientEncryptionKey", "client-side-encryption-key"),
    ("ClientEncryptionStart", "client-side-encryption-start"),
    ("ClientEncryptionCekAlg", "client-side-encryption-cek-alg"),
    ("ClientEncryptionWrapAlg", "client-side-encryption-wrap-alg"),
    ("ClientEncryptionDataSize", "client-side-encryption-data-size"),
    ("ClientEncryptionPartSize", "client-side-encryption-part-size"),
)
_AUTH_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
        "SecurityTokenExpired",
        "InvalidSecurityToken",
    }
)


class _RawReadWarningFilter(logging.Filter):
    """Drop oss2's warning that a plain ``Bucket`` returns encrypted objects as they are stored.

    That is exactly what the store asks for (cse decrypts); the warning would otherwise reach stderr on
    every read of an encrypted object.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for that one warning."""
        return not str(record.msg).startswith("Using Bucket to get an encrypted object")


logging.getLogger("oss2.models").addFilter(_RawReadWarningFilter())


def _env(*names: str) -> str:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return ""


_CHAIN: Any = None
_CHAIN_LOCK = threading.Lock()


class _ChainCredentials(oss2.credentials.CredentialsProvider):  # type: ignore[misc]
    """oss2 credentials from Alibaba Cloud's default credential chain (``alibabacloud-credentials``), asked
    for each request: the chain's sources cache STS credentials and renew them before they expire."""

    def get_credentials(self) -> Any:
        """The chain's current credentials, as oss2 takes them."""
        global _CHAIN
        try:
            from alibabacloud_credentials.provider import (  # type: ignore[import-untyped]
                DefaultCredentialsProvider,
            )

            with _CHAIN_LOCK:
                if _CHAIN is None:  # one chain per process
                    _CHAIN = DefaultCredentialsProvider()
            found = _CHAIN.get_credentials()
        except Exception:
            raise ConfigurationError(
                "no OSS credentials: set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET (or "
                "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET), with OSS_SESSION_TOKEN "
                "for STS credentials, or configure the default credential chain (a profile in "
                "~/.alibabacloud/credentials.ini or ~/.aliyun/config.json, an ECS RAM role, RRSA's OIDC "
                "variables, ALIBABA_CLOUD_CREDENTIALS_URI); the chain found none"
            ) from None
        return oss2.credentials.Credentials(
            found.get_access_key_id(), found.get_access_key_secret(), found.get_security_token() or None
        )


def default_bucket(name: str, *, endpoint: str | None = None, region: str | None = None) -> Any:
    """An ``oss2.Bucket`` for ``name`` as cse builds one by default (see the module docstring).

    :param endpoint: default ``OSS_ENDPOINT``.
    :param region: default ``OSS_REGION``; with a region requests are signed with V4, without one with V1.
    """
    endpoint = endpoint or _env("OSS_ENDPOINT")
    if not endpoint:
        raise ConfigurationError(
            "no OSS endpoint: set OSS_ENDPOINT (for example https://oss-cn-hangzhou.aliyuncs.com, or the "
            "emulator's http://127.0.0.1:PORT)"
        )
    region = region or _env("OSS_REGION") or None
    ak = _env("OSS_ACCESS_KEY_ID") or _env("ALIBABA_CLOUD_ACCESS_KEY_ID")
    secret = (
        _env("OSS_ACCESS_KEY_SECRET")
        if _env("OSS_ACCESS_KEY_ID")
        else _env("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    )
    token = _env("OSS_SESSION_TOKEN") if _env("OSS_ACCESS_KEY_ID") else _env("ALIBABA_CLOUD_SECURITY_TOKEN")
    provider: Any
    if ak and secret:
        provider = oss2.credentials.StaticCredentialsProvider(ak, secret, token)
    else:  # the official default chain: profile files, OIDC (RRSA), the ECS RAM role, a credentials URI
        provider = _ChainCredentials()
        provider.get_credentials()  # fail here, with what to do, rather than on the first request
    auth = oss2.ProviderAuthV4(provider) if region else oss2.ProviderAuth(provider)
    try:
        return oss2.Bucket(
            auth,
            endpoint,
            name,
            session=oss2.Session(pool_size=32),
            connect_timeout=(5, 30),
            enable_crc=False,
            region=region,
            app_name="cse-oss",
        )
    except (oss_errors.ClientError, ValueError) as exc:
        raise ConfigurationError(f"cannot open the OSS bucket {name!r} at {endpoint}: {exc}") from exc


def _etag(value: Any) -> str:
    return str(value or "").strip('"')


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"an object key is a non-empty string, not {key!r}")


def _meta_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in clean_metadata(metadata).items():
        if not (name.isascii() and value.isascii()):
            raise ConfigurationError(
                f"OSS user metadata is ASCII; the metadata {name!r} holds other characters"
            )
        out[_META + name] = value
    return out


def _user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower()[len(_META) :]: v for k, v in headers.items() if k.lower().startswith(_META)}


def _tagging(tags: Mapping[str, str]) -> str:
    """``x-oss-tagging``: the tags URL-encoded as a query string, as oss2's ``TaggingRule`` writes them."""
    return urlencode(list(tags.items()), quote_via=quote)


def _sse_headers(sse: ServerSideEncryption | None) -> dict[str, str]:
    if sse is None:
        return {}
    headers = {_SSE: _SSE_VALUES[sse.mode]}
    if sse.key_id is not None:
        headers[_SSE_KEY_ID] = sse.key_id
    return headers


def _settings_headers(settings: ObjectSettings | None, *, tags: bool = True) -> dict[str, str]:
    """The OSS headers of ``settings``: ``Content-Type``, ``Content-Disposition``, ``Cache-Control``,
    ``x-oss-storage-class``, ``x-oss-server-side-encryption`` (and ``-key-id``), ``x-oss-tagging``."""
    if settings is None:
        return {}
    headers: dict[str, str] = {}
    for name, value in (
        ("Content-Type", settings.content_type),
        ("Content-Disposition", settings.content_disposition),
        ("Cache-Control", settings.cache_control),
        (_STORAGE_CLASS, settings.storage_class),
    ):
        if value is not None:
            headers[name] = value
    headers.update(_sse_headers(settings.sse))
    if tags and settings.tags:
        headers[_TAGGING] = _tagging(settings.tags)
    return headers


def _response_sse(headers: Mapping[str, str]) -> ServerSideEncryption | None:
    mode = _SSE_MODES.get(str(headers.get(_SSE) or "").upper())
    if mode is None:
        return None
    key_id = headers.get(_SSE_KEY_ID) if mode == "kms" else None
    return ServerSideEncryption(mode, str(key_id) if key_id else None)


def _response_settings(headers: Mapping[str, str]) -> ObjectSettings:
    """The settings of a HeadObject or GetObject answer (oss2's case-insensitive headers)."""

    def text(name: str) -> str | None:
        value = headers.get(name)
        return str(value) if value else None

    return ObjectSettings(
        content_type=text("Content-Type"),
        content_disposition=text("Content-Disposition"),
        cache_control=text("Cache-Control"),
        storage_class=text(_STORAGE_CLASS),
        sse=_response_sse(headers),
    )


def _written_settings(settings: ObjectSettings | None, headers: Mapping[str, str]) -> ObjectSettings:
    """What a write reports: the settings given (without tags), with the SSE that OSS answered (which
    includes a bucket default and the key id OSS chose)."""
    given = settings or ObjectSettings()
    return ObjectSettings(
        given.content_type,
        given.content_disposition,
        given.cache_control,
        given.storage_class,
        sse=_response_sse(headers) or given.sse,
    )


def _when(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and value > 0:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    return None


def _crc_header(headers: Mapping[str, str]) -> int | None:
    raw = headers.get("x-oss-hash-crc64ecma")
    return int(raw) if raw is not None and str(raw).isdigit() else None


class _Body(ResponseBody):
    """The body of a GetObject, CRC-64 checked when the whole object is read.

    ``expected_crc`` is checked the moment the last of ``length`` bytes is read, before it is returned.
    """

    def __init__(self, result: Any, url: str, length: int, expected_crc: int | None) -> None:
        super().__init__()
        self._result = result
        self._raw = result.resp.response.raw
        self._url = url
        self._left = length
        self._expected = expected_crc
        self._crc = 0

    def _read(self, size: int) -> bytes:
        if size < 0:  # all that is left, in pieces, each checked as it comes
            parts = []
            while chunk := self._read(8 * MiB):
                parts.append(chunk)
            return b"".join(parts)
        if self._left <= 0:
            return b""
        try:
            data = self._raw.read(min(size, self._left), decode_content=False)
        except Exception as exc:  # urllib3 and socket errors: the transfer broke
            raise StoreError(f"reading {self._url} failed: {exc}") from exc
        if not data:
            raise StoreError(
                f"reading {self._url} failed: the connection ended {self._left} bytes before the end of the "
                "body; read it again"
            )
        self._left -= len(data)
        if self._expected is not None:
            self._crc = crc64(data, self._crc)
            if self._left == 0 and self._crc != self._expected:
                raise StoreError(
                    f"{self._url} was corrupted in transit: the CRC-64 of the bytes received "
                    f"({self._crc}) is not the server's x-oss-hash-crc64ecma ({self._expected}); "
                    "read it again"
                )
        return bytes(data)

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._result.close()


class OssStore(Store):
    """An OSS bucket (``oss://BUCKET/KEY``) over an ``oss2.Bucket``. Thread-safe, as oss2 buckets are.

    :param bucket: an ``oss2.Bucket`` (used as it is), or a bucket name to open with
        :func:`default_bucket`.
    """

    scheme: ClassVar[str] = "oss"
    min_part_size: ClassVar[int] = 100 * KiB
    max_parts: ClassVar[int] = 10_000
    #: The format cse writes to OSS unless told otherwise: the official SDKs' V2.
    default_format: ClassVar[str] = "oss-v2"
    #: SSE-OSS with AES-256 or SM4, and SSE-KMS.
    sse_modes: ClassVar[frozenset[str]] = frozenset({"aes256", "kms", "sm4"})

    def __init__(self, bucket: Any) -> None:
        """Use ``bucket`` (an ``oss2.Bucket``, or a name for :func:`default_bucket`)."""
        if isinstance(bucket, str):
            if not bucket or "/" in bucket:
                raise ConfigurationError(f"an OSS bucket name is non-empty and has no '/': {bucket!r}")
            bucket = default_bucket(bucket)
        if not hasattr(bucket, "bucket_name") or not hasattr(bucket, "put_object"):
            raise ConfigurationError(
                f"OssStore takes an oss2.Bucket or a bucket name, not {type(bucket).__name__}"
            )
        #: The ``oss2.Bucket``.
        self.bucket: Any = bucket
        #: Objects larger than this are copied part by part; tests may lower it.
        self.max_copy_size = MAX_COPY_SIZE
        #: Part size of such copies.
        self.copy_part_size = COPY_PART_SIZE
        self._uploads: dict[str, dict[str, str]] = {}
        self._upload_settings: dict[str, ObjectSettings] = {}
        self._crcs: dict[str, dict[int, tuple[int, int]]] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The bucket name."""
        return str(self.bucket.bucket_name)

    def __repr__(self) -> str:
        return f"OssStore(bucket={self.name!r}, endpoint={getattr(self.bucket, 'endpoint', '')!r})"

    @classmethod
    def from_url(cls, url: str) -> tuple[Store, str]:
        """``oss://BUCKET/KEY`` -> (a store of ``BUCKET`` on the default bucket, ``"KEY"``), key verbatim."""
        bucket, key = parse_bucket_url(url, "oss")
        return cls(bucket), key

    def url(self, key: str) -> str:
        """``oss://BUCKET/KEY``."""
        return f"{_PREFIX}{self.name}/{key}"

    # ----------------------------------------------------------------------------------------- plumbing

    def _fail(self, exc: Exception, action: str, key: str, upload_id: str | None = None) -> NoReturn:
        """Raise the cse error for an oss2 error (``raise ... from``)."""
        url = self.url(key)
        if isinstance(exc, oss_errors.RequestError):
            raise StoreError(
                f"{action} {url}: cannot reach OSS at {getattr(self.bucket, 'endpoint', '?')} "
                f"({exc.body or exc}); "
                "check OSS_ENDPOINT and the network"
            ) from exc
        if isinstance(exc, oss_errors.InconsistentError):
            raise StoreError(f"{action} {url}: CRC-64 mismatch ({exc.message}); try again") from exc
        if not isinstance(exc, oss_errors.OssError):
            raise StoreError(f"{action} {url} failed: {exc}") from exc
        status, code = exc.status, str(exc.code or "")
        message = str(getattr(exc, "message", "") or "")
        if code == "NoSuchUpload":
            raise ObjectNotFoundError(f"no multipart upload {upload_id!r} of {url}") from exc
        if code == "NoSuchBucket":
            raise StoreError(f"{action} {url}: the bucket {self.name!r} does not exist") from exc
        if code == "NoSuchKey" or (status == 404 and not code):
            raise ObjectNotFoundError(f"no such object: {url}") from exc
        if code == "InvalidRange" or status == 416:
            raise InvalidRangeError(f"{action} {url}: the byte range is not satisfiable") from exc
        hint = ""
        if code in _AUTH_CODES or status == 403:
            hint = (
                " (check OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET, OSS_SESSION_TOKEN for STS credentials, "
                "and "
                "OSS_REGION for V4 signing)"
            )
        request_id = getattr(exc, "request_id", "")
        rid = f", request id {request_id}" if request_id else ""
        raise StoreError(f"{action} {url} failed: {code or status} ({message}{rid}){hint}") from exc

    def _call(
        self,
        action: str,
        key: str,
        method: str,
        *args: Any,
        upload_id: str | None = None,
        _tally: Attempts | None = None,
        **kw: Any,
    ) -> Any:
        fn = getattr(self.bucket, method)
        bodies = [(a, a.tell()) for a in (*args, *kw.values()) if hasattr(a, "seek") and hasattr(a, "tell")]

        def send() -> Any:
            for body, at in bodies:  # a retry re-sends a streamed body from where it started
                body.seek(at)
            return fn(*args, **kw)

        try:
            return retry_call(send, _REQUEST_POLICY, _retryable, _tally)
        except (oss_errors.OssError, *_TRANSPORT_ERRORS) as exc:  # oss2 lets a body cut mid-read through
            self._fail(exc, action, key, upload_id)

    def _body(self, view: memoryview) -> Any:
        """What oss2 sends: the buffer itself (one send, no copy), or a stream over it when oss2 wraps
        bodies in its own CRC adapter (``enable_crc=True``), which reads only streams and bytes."""
        return BufferReader(view) if getattr(self.bucket, "enable_crc", False) else view

    def _crc_while_sending(self, view: memoryview) -> Callable[[], int | None]:
        """Start the CRC-64 of ``view`` beside the request (the socket send waits on the server, and the
        CRC runs meanwhile on the other core); the returned callable gives it. None when oss2 checks the
        upload itself (``enable_crc``)."""
        if getattr(self.bucket, "enable_crc", False):
            return lambda: None
        if len(view) < MiB or CRC64_BACKEND == "fastcrc":
            # fastcrc does GB/s: computing it here costs less than starting a thread.
            value = crc64(view)
            return lambda: value
        box: list[int] = []

        def run() -> None:
            # In pieces: crcmod holds the GIL, and the sending thread needs it between its socket writes.
            value = 0
            for at in range(0, len(view), 256 * KiB):
                value = crc64(view[at : at + 256 * KiB], value)
            box.append(value)

        worker = threading.Thread(target=run, name="cse-oss-crc", daemon=True)
        worker.start()

        def result() -> int:
            worker.join()
            return box[0] if box else crc64(view)

        return result

    def _checked_crc(self, action: str, key: str, view: memoryview, sent: int | None, result: Any) -> int:
        """The CRC-64 of the bytes sent, checked against the server's. A bucket with ``enable_crc`` has
        had oss2 make the same check already (a mismatch raised): its verified answer is taken."""
        server = getattr(result, "crc", None)
        if sent is None and server is not None:
            return int(server)
        if sent is None:  # oss2 had nothing to check against: compute it for the multipart total
            sent = crc64(view)
        if server is not None and int(server) != sent:
            raise StoreError(
                f"{action} {self.url(key)}: the server's CRC-64 ({server}) is not that of the bytes sent "
                f"({sent}); "
                "the upload was corrupted in transit, send it again"
            )
        return sent

    # ------------------------------------------------------------------------------------------- settings

    def check_settings(self, settings: ObjectSettings) -> None:
        """Refuse SSE modes OSS has not (``dsse``) and tags beyond OSS's limits (10 tags, keys of at
        most 128 characters, values of at most 256), before any request."""
        super().check_settings(settings)
        check_tag_limits(settings.tags, "OSS")

    def get_tags(self, key: str) -> dict[str, str]:
        """GetObjectTagging."""
        _check_key(key)
        result = self._call("get_tags", key, "get_object_tagging", key)
        return {str(k): str(v) for k, v in result.tag_set.tagging_rule.items()}

    def get_bucket_encryption(self) -> ServerSideEncryption | None:
        """GetBucketEncryption (``None`` for NoSuchServerSideEncryptionRule, or an algorithm cse has no
        name for)."""
        try:
            result = retry_call(self.bucket.get_bucket_encryption, _REQUEST_POLICY, _retryable)
        except oss_errors.NoSuchServerSideEncryptionRule:
            return None
        except (oss_errors.OssError, *_TRANSPORT_ERRORS) as exc:
            self._fail(exc, "get_bucket_encryption", "")
        return _response_sse(
            {_SSE: str(result.sse_algorithm or ""), _SSE_KEY_ID: str(result.kms_master_keyid or "")}
        )

    def put_bucket_encryption(self, sse: ServerSideEncryption) -> None:
        """PutBucketEncryption: ``sse`` as the rule's ``SSEAlgorithm`` (and ``KMSMasterKeyID``)."""
        self.check_settings(ObjectSettings(sse=sse))
        rule = oss2.models.ServerSideEncryptionRule(_SSE_VALUES[sse.mode], sse.key_id)
        self._call("put_bucket_encryption", "", "put_bucket_encryption", rule)

    def delete_bucket_encryption(self) -> None:
        """DeleteBucketEncryption (not an error if the bucket has none)."""
        self._call("delete_bucket_encryption", "", "delete_bucket_encryption")

    # -------------------------------------------------------------------------------------------- objects

    def put(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        metadata: Mapping[str, str],
        settings: ObjectSettings | None = None,
    ) -> ObjectInfo:
        """PutObject ``data`` under ``key`` with ``settings`` as headers (``Content-Type``,
        ``Content-Disposition``, ``Cache-Control``, ``x-oss-storage-class``, ``x-oss-tagging``,
        ``x-oss-server-side-encryption`` and ``-key-id``); the server's CRC-64 must match the bytes sent."""
        _check_key(key)
        if settings:
            self.check_settings(settings)
        headers = _meta_headers(metadata)
        headers.update(_settings_headers(settings))
        view = memoryview(data).cast("B")
        crc = self._crc_while_sending(view)
        result = self._call("put", key, "put_object", key, self._body(view), headers=headers)
        self._checked_crc("put", key, view, crc(), result)
        written = _written_settings(settings, result.headers)
        return ObjectInfo(key, len(view), _etag(result.etag), _user_metadata(headers), settings=written)

    def get(self, key: str, start: int = 0, end: int | None = None) -> GetResult:
        """GetObject bytes ``start..end`` (inclusive) of ``key``; see :meth:`Store.get` and the CRC notes."""
        _check_key(key)
        url = self.url(key)
        if start < 0 or (end is not None and end < start):
            raise InvalidRangeError(f"invalid byte range {start}-{'' if end is None else end} for {url}")
        headers = {"x-oss-range-behavior": "standard", "Accept-Encoding": "identity"}
        ranged = bool(start) or end is not None
        try:
            result = self._call(
                "get", key, "get_object", key, byte_range=(start, end) if ranged else None, headers=headers
            )
        except InvalidRangeError:
            if start:
                raise
            result = self._call("get", key, "get_object", key, headers=headers)  # empty objects answer 416
        response_headers = result.headers
        content_range = _CONTENT_RANGE.fullmatch(str(response_headers.get("Content-Range") or ""))
        length = int(response_headers.get("Content-Length") or 0)
        if content_range and content_range.group(3) != "*":
            size = int(content_range.group(3))
            first, last = int(content_range.group(1)), int(content_range.group(2))
        else:
            size = length
            first, last = resolve_get_range(size, start, end, url)
            if (first, last) != (0, size - 1) and size:
                result.close()
                raise StoreError(f"OSS ignored the byte range asked of {url}")
        whole = first == 0 and last == size - 1
        expected = _crc_header(response_headers) if whole else None
        info = ObjectInfo(
            key,
            size,
            _etag(response_headers.get("ETag")),
            _user_metadata(response_headers),
            _when(getattr(result, "last_modified", None)),
            _response_settings(response_headers),
        )
        return GetResult(info, cast(BinaryIO, _Body(result, url, length, expected)), first, last)

    def head(self, key: str) -> ObjectInfo:
        """HeadObject: size, ETag, metadata and the settings OSS reports."""
        _check_key(key)
        result = self._call("head", key, "head_object", key)
        return ObjectInfo(
            key,
            int(result.content_length or 0),
            _etag(result.etag),
            _user_metadata(result.headers),
            _when(getattr(result, "last_modified", None)),
            _response_settings(result.headers),
        )

    def delete(self, key: str) -> None:
        """DeleteObject ``key``; absent keys are not an error."""
        _check_key(key)
        self._call("delete", key, "delete_object", key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """ListObjectsV2, paginated, in key order. Metadata is empty."""
        try:
            for item in oss2.ObjectIteratorV2(self.bucket, prefix=prefix):
                if item.is_prefix():
                    continue
                yield ObjectInfo(
                    str(item.key), int(item.size), _etag(item.etag), {}, _when(item.last_modified)
                )
        except (oss_errors.OssError, *_TRANSPORT_ERRORS) as exc:
            self._fail(exc, "list", prefix)

    def copy(
        self,
        src_key: str,
        dst_key: str,
        metadata: Mapping[str, str] | None = None,
        settings: ObjectSettings | None = None,
    ) -> ObjectInfo:
        """CopyObject (``x-oss-metadata-directive: REPLACE`` with ``metadata``, COPY without); part by part
        (UploadPartCopy) above :attr:`max_copy_size`.

        REPLACE drops the content headers, so the source's settings (from a HeadObject of it) are sent
        again, with those set in ``settings`` in their place; its server-side encryption and storage class
        are sent too. Tags are copied by OSS (``x-oss-tagging-directive: Copy``) unless ``settings`` has
        tags (``Replace``); a copy in parts reads them with GetObjectTagging.
        """
        _check_key(src_key)
        _check_key(dst_key)
        if settings:
            self.check_settings(settings)
        src = self.head(src_key)
        kept = (settings or ObjectSettings()).over(src.settings)
        meta = dict(src.metadata) if metadata is None else _user_metadata(_meta_headers(metadata))
        if src.size > self.max_copy_size:
            tags = dict(settings.tags) if settings and settings.tags else self.get_tags(src_key)
            return self._copy_in_parts(src_key, dst_key, src.size, meta, ObjectSettings(tags=tags).over(kept))
        headers = _settings_headers(kept, tags=False)
        content = settings is not None and settings.content_headers
        if metadata is None and not content:
            # COPY keeps the content headers (and ignores any sent); SSE and storage class are sent.
            for name in ("Content-Type", "Content-Disposition", "Cache-Control"):
                headers.pop(name, None)
            headers["x-oss-metadata-directive"] = "COPY"
        else:
            headers.update({"x-oss-metadata-directive": "REPLACE", **_meta_headers(meta)})
        if settings is not None and settings.tags:
            headers.update({"x-oss-tagging-directive": "Replace", _TAGGING: _tagging(settings.tags)})
        result = self._call("copy", dst_key, "copy_object", self.name, src_key, dst_key, headers=headers)
        return ObjectInfo(
            dst_key, src.size, _etag(result.etag), meta, settings=_written_settings(kept, result.headers)
        )

    def _copy_in_parts(
        self, src_key: str, dst_key: str, size: int, metadata: dict[str, str], settings: ObjectSettings
    ) -> ObjectInfo:
        part = max(self.copy_part_size, self.min_part_size, -(-size // self.max_parts))
        upload_id = self.create_multipart(dst_key, metadata, settings)

        def copy_part(number: int) -> PartInfo:
            """UploadPartCopy of part ``number``."""
            first = (number - 1) * part
            last = min(size, first + part) - 1
            result = self._call(
                "copy",
                dst_key,
                "upload_part_copy",
                self.name,
                src_key,
                (first, last),
                dst_key,
                upload_id,
                number,
                upload_id=upload_id,
            )
            return PartInfo(number, _etag(result.etag), last - first + 1)

        try:
            with ThreadPoolExecutor(max_workers=4, thread_name_prefix="cse-oss-copy") as pool:
                parts = builtins.list(pool.map(copy_part, range(1, -(-size // part) + 1)))
            return self.complete_multipart(dst_key, upload_id, parts)
        except BaseException:
            with contextlib.suppress(CseError):
                self.abort_multipart(dst_key, upload_id)
            raise

    # ------------------------------------------------------------------------------------------ multipart

    def create_multipart(
        self, key: str, metadata: Mapping[str, str], settings: ObjectSettings | None = None
    ) -> str:
        """InitiateMultipartUpload with ``metadata`` and ``settings`` (the headers :meth:`put` sends; the
        parts need no SSE headers of their own, OSS applies the upload's)."""
        _check_key(key)
        if settings:
            self.check_settings(settings)
        headers = _meta_headers(metadata)
        meta_only = dict(headers)
        headers.update(_settings_headers(settings))
        tally = Attempts()
        try:
            result = self._call(
                "create_multipart", key, "init_multipart_upload", key, headers=headers, _tally=tally
            )
        except CseError:
            self._abort_lost_creates(key, headers, keep=None)
            raise
        upload_id = str(result.upload_id)
        if tally.count > 1:
            self._abort_lost_creates(key, headers, keep=upload_id)
        with self._lock:
            self._uploads[upload_id] = _user_metadata(meta_only)
            self._upload_settings[upload_id] = _written_settings(settings, getattr(result, "headers", {}))
            self._crcs[upload_id] = {}
        return upload_id

    def upload_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        data: bytes | bytearray | memoryview,
        headers: Mapping[str, str] | None = None,
    ) -> PartInfo:
        """UploadPart ``part_number`` (1..10,000) with ``headers`` as ``x-oss-meta-*``; CRC-64 checked."""
        if not isinstance(part_number, int) or not 1 <= part_number <= self.max_parts:
            raise ConfigurationError(f"part numbers run from 1 to {self.max_parts}, not {part_number}")
        view = memoryview(data).cast("B")
        sent = self._crc_while_sending(view)
        result = self._call(
            "upload_part",
            key,
            "upload_part",
            key,
            upload_id,
            part_number,
            self._body(view),
            headers=_meta_headers(headers or {}),
            upload_id=upload_id,
        )
        crc = self._checked_crc(f"upload part {part_number} of", key, view, sent(), result)
        with self._lock:
            self._crcs.setdefault(upload_id, {})[part_number] = (crc, len(view))
        return PartInfo(part_number, _etag(result.etag), len(view))

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[PartInfo]) -> ObjectInfo:
        """CompleteMultipartUpload with ``parts``; the object's CRC-64 must be that of its parts combined.

        A mismatch deletes the object just made and raises: the upload must be sent again.
        """
        ordered = completion_parts(parts, self.url(key))
        with self._lock:
            crcs = dict(self._crcs.get(upload_id, {}))
        combined: int | None = None
        if ordered and all(p.part_number in crcs for p in ordered):
            combined = crcs[ordered[0].part_number][0]
            for p in ordered[1:]:
                crc, size = crcs[p.part_number]
                combined = crc64_combine(combined, crc, size)
        tally = Attempts()
        try:
            result = self._call(
                "complete_multipart",
                key,
                "complete_multipart_upload",
                key,
                upload_id,
                [oss2.models.PartInfo(p.part_number, f'"{p.etag}"') for p in ordered],
                upload_id=upload_id,
                _tally=tally,
            )
        except ObjectNotFoundError:
            # Sent again after an answer was lost, the completion finds its upload gone because the first
            # send completed it: the object's size and CRC-64 (that of the parts sent) say if it is ours.
            if tally.count < 2 or combined is None:
                raise
            result = self._completed_already(key, ordered, combined)
            if result is None:
                raise
        with self._lock:
            metadata = self._uploads.pop(upload_id, {})
            settings = self._upload_settings.pop(upload_id, ObjectSettings())
            self._crcs.pop(upload_id, None)
        server = getattr(result, "crc", None)
        if server is not None and combined is not None and combined != int(server):
            with contextlib.suppress(CseError):
                self.delete(key)
            raise StoreError(
                f"complete {self.url(key)}: the object's CRC-64 ({server}) is not that of the parts sent "
                f"({combined}); the object was deleted, upload it again"
            )
        return ObjectInfo(key, sum(p.size for p in ordered), _etag(result.etag), metadata, settings=settings)

    def _completed_already(self, key: str, ordered: Sequence[PartInfo], crc: int) -> Any:
        """HeadObject's answer if ``key`` is the object these parts make (same size and CRC-64), else None."""
        try:
            head = self._call("head", key, "head_object", key)
        except CseError:
            return None
        size = sum(p.size for p in ordered)
        if getattr(head, "content_length", None) != size or str(getattr(head, "server_crc", "")) != str(crc):
            return None
        return types.SimpleNamespace(crc=head.server_crc, etag=head.etag)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; unknown uploads are not an error."""
        with self._lock:
            self._uploads.pop(upload_id, None)
            self._upload_settings.pop(upload_id, None)
            self._crcs.pop(upload_id, None)
        with contextlib.suppress(ObjectNotFoundError):
            self._call("abort_multipart", key, "abort_multipart_upload", key, upload_id, upload_id=upload_id)

    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:
        """ListParts, paginated, in part-number order."""
        found: builtins.list[PartInfo] = []

        def listing() -> builtins.list[Any]:
            return builtins.list(oss2.PartIterator(self.bucket, key, upload_id))

        try:
            for part in retry_call(listing, _REQUEST_POLICY, _retryable):
                found.append(PartInfo(int(part.part_number), _etag(part.etag), int(part.size)))
        except (oss_errors.OssError, *_TRANSPORT_ERRORS) as exc:
            self._fail(exc, "list_parts", key, upload_id)
        found.sort(key=lambda p: p.part_number)
        return found

    def _abort_lost_creates(self, key: str, headers: Mapping[str, str], keep: str | None) -> None:
        """After an InitiateMultipartUpload that was sent more than once (an answer lost on the way), abort
        the uploads the lost answers created: those of ``key`` whose wrapped content key (unique to this
        object, which ListParts reports) is the one just sent. Best effort: errors are swallowed."""
        wrapped = _user_metadata(headers).get("client-side-encryption-key")
        if not wrapped:
            return  # not an OSS V2 upload: ours cannot be told apart from others'
        with contextlib.suppress(Exception):  # never fail (or lose) the upload that was made
            for upload in self.list_multipart_uploads(key):
                if (
                    upload.key == key
                    and upload.upload_id != keep
                    and upload.metadata.get("client-side-encryption-key") == wrapped
                ):
                    self.abort_multipart(key, upload.upload_id)

    def upload_context(self, key: str, upload_id: str) -> dict[str, str]:
        """The client-side-encryption context ListParts reports for an unfinished upload, as metadata.

        OSS returns the wrapped key, wrapped IV, algorithms, data size and part size given at Initiate
        (``client-side-encryption-*`` names, without ``x-oss-meta-``); ``{}`` for a plain upload.
        """

        def ask() -> bytes:
            response = self.bucket._do(
                "GET", self.name, key, params={"uploadId": upload_id, "max-parts": "1"}
            )
            return bytes(response.read())

        try:
            body = retry_call(ask, _REQUEST_POLICY, _retryable)
        except (oss_errors.OssError, *_TRANSPORT_ERRORS) as exc:
            self._fail(exc, "list_parts", key, upload_id)
        try:
            root = ET.fromstring(body)  # noqa: S314 - the answer of the configured OSS endpoint
        except ET.ParseError as exc:
            raise StoreError(f"ListParts of {self.url(key)} answered malformed XML: {exc}") from exc
        out: dict[str, str] = {}
        for element, name in _UPLOAD_CONTEXT:
            node = root.find(element)
            if node is not None and node.text:
                out[name] = node.text.strip()
        return out

    def list_multipart_uploads(self, prefix: str = "") -> builtins.list[UploadInfo]:
        """ListMultipartUploads, paginated, by key then start time. Metadata: what this instance was given
        at creation, else the crypto context ListParts reports (:meth:`upload_context`)."""
        found: builtins.list[UploadInfo] = []
        try:
            items = retry_call(
                lambda: builtins.list(oss2.MultipartUploadIterator(self.bucket, prefix=prefix)),
                _REQUEST_POLICY,
                _retryable,
            )
        except (oss_errors.OssError, *_TRANSPORT_ERRORS) as exc:
            self._fail(exc, "list_multipart_uploads", prefix)
        for item in items:
            if item.is_prefix():
                continue
            upload_id = str(item.upload_id)
            with self._lock:
                known = self._uploads.get(upload_id)
            if known is None:
                try:
                    known = self.upload_context(str(item.key), upload_id)
                except ObjectNotFoundError:  # finished or aborted meanwhile
                    continue
            found.append(UploadInfo(str(item.key), upload_id, _when(item.initiation_date), dict(known)))
        found.sort(key=lambda u: (u.key, u.initiated.timestamp() if u.initiated else 0.0, u.upload_id))
        return found
