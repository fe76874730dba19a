"""``s3://BUCKET/KEY``: Amazon S3 (and S3-compatible services) through boto3.

``S3Store(bucket, client=...)`` works over any boto3 S3 client; :meth:`S3Store.from_url` and
``S3Store(bucket)`` build one with :func:`default_client`, which takes credentials, region and endpoint
the way boto3 does (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` for S3-compatible services, then with
path-style addressing), with bounded connect/read timeouts and retries.

User metadata travels as ``x-amz-meta-*`` headers; boto3 hands it back lower-cased without the prefix,
which is what the formats read. S3 keeps at most 2 KB of user metadata per object, and only ASCII.

Instruction files (see :mod:`cse_s3.instruction`):

* reading (``instruction_files=True``, the default, as the official clients): when an object's metadata
  carries no wrapped key (and is not cse-v1's), ``head`` and ``get`` look for ``KEY.instruction`` and return
  the object's metadata merged with the file's keys (and ``x-amz-crypto-instr-file: ""``), so the formats
  see one map. That costs one extra request for each ``head``/``get`` of an object that is not encrypted.
  ``delete`` also removes ``KEY.instruction``, ``copy`` without new metadata copies it along, and ``list``
  skips ``*.instruction``.
* writing (``write_instruction_file=True``, off by default as the specification requires): ``put``,
  ``copy`` with metadata and ``complete_multipart`` store the key material in ``KEY.instruction`` (user
  metadata ``x-amz-crypto-instr-file: ""``) in the Java client's layout; the object keeps the rest. Metadata
  that came from an instruction file (it carries ``x-amz-crypto-instr-file``) is written back the same way
  whatever the setting, so re-wrapping keeps an object's layout. The object is written first and its
  instruction file right after; for a multipart upload, the file is written on completion from what this
  store instance remembers of ``create_multipart``.

Object settings (:class:`~cse.stores.base.ObjectSettings`) travel as boto3 passes them: ``ContentType``,
``ContentDisposition``, ``CacheControl``, ``StorageClass``, ``Tagging`` (URL-encoded) and
``ServerSideEncryption`` (``AES256``, ``aws:kms``, ``aws:kms:dsse``) with ``SSEKMSKeyId``, on PutObject,
CreateMultipartUpload and CopyObject; ``head``/``get`` report what S3 answers (a ``ContentType`` of
``binary/octet-stream`` when none was set, no ``StorageClass`` for STANDARD), tags come from
GetObjectTagging. CopyObject gives a copy the bucket default encryption and STANDARD, and REPLACE drops the
content headers: ``copy`` sends the source's again (``Expires``, ``ContentEncoding`` and
``ContentLanguage``, which cse does not model, are still dropped by a metadata replace). Instruction files
get their object's server-side encryption.

``list_multipart_uploads`` cannot read metadata back from S3 (ListMultipartUploads does not return it): it
reports the metadata this store instance was given at ``create_multipart``, and ``{}`` for uploads that
another process started.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, ClassVar, NoReturn, cast
from urllib.parse import quote, urlencode

import boto3  # type: ignore[import-untyped,unused-ignore]
from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]
from botocore.exceptions import (  # type: ignore[import-untyped,unused-ignore]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
)

from cse.exceptions import (
    ConfigurationError,
    CseError,
    InvalidRangeError,
    MetadataError,
    ObjectNotFoundError,
    StoreError,
)
from cse.formats.native import METADATA_KEY as NATIVE_METADATA_KEY
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
from cse_s3.formats import INSTRUCTION_FILE_MARKER, V3_OBJECT_KEYS
from cse_s3.instruction import (
    INSTRUCTION_SUFFIX,
    MAX_INSTRUCTION_FILE_SIZE,
    has_wrapped_key,
    instruction_file_body,
    merge_instruction_file,
    parse_instruction_file,
    split_for_instruction_file,
)

__all__ = ["MAX_COPY_SIZE", "S3Store", "default_client"]

_PREFIX = "s3://"
MiB = 1024 * 1024
#: The largest object a single CopyObject copies; larger ones are copied part by part (UploadPartCopy).
MAX_COPY_SIZE = 5 * 1024 * MiB
#: Part size of a multipart copy (raised to fit in 10,000 parts).
COPY_PART_SIZE = 512 * MiB
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_client_lock = threading.Lock()
#: cse's server-side encryption modes and S3's ``ServerSideEncryption`` values.
_SSE_VALUES = {"aes256": "AES256", "kms": "aws:kms", "dsse": "aws:kms:dsse"}
_SSE_MODES = {value: mode for mode, value in _SSE_VALUES.items()}


def default_client() -> Any:
    """A boto3 S3 client as cse uses by default.

    Credentials, region and endpoint come from the usual boto3 sources (environment, config files,
    instance roles); ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` select an S3-compatible service, and then
    path-style addressing is used. Connect timeout 5 s, read timeout 30 s (the longest wait for a byte),
    at most 4 sends of a request in botocore's standard retry mode (which retries only time-outs, connection
    failures, throttling such as ``SlowDown``, and 5xx, with jittered backoff), 32 pooled connections. The
    S3 client owns the retry budget: cse's multipart engine sends each part once
    (:attr:`cse.TransferConfig.part_attempts`).
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"total_max_attempts": 4, "mode": "standard"},
        max_pool_connections=32,
        s3={"addressing_style": "path"} if endpoint else {},
        user_agent_extra="cse-s3",
    )
    try:
        with _client_lock:  # boto3 sessions are not safe to create clients from concurrently
            return boto3.session.Session().client("s3", config=config)
    except (BotoCoreError, ValueError) as exc:
        raise ConfigurationError(f"cannot create an S3 client: {exc}") from exc


def _etag(value: Any) -> str:
    return str(value or "").strip('"')


def _quoted(etag: str) -> str:
    return f'"{etag.strip(chr(34))}"'


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"an object key is a non-empty string, not {key!r}")


def _ascii_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    meta = clean_metadata(metadata)
    for name, value in meta.items():
        if not (name.isascii() and value.isascii()):
            raise ConfigurationError(
                f"S3 user metadata is ASCII; the metadata {name!r} holds other characters"
            )
    return meta


def _body(data: bytes | bytearray | memoryview) -> BufferReader:
    return BufferReader(data)


def _sse_params(sse: ServerSideEncryption | None) -> dict[str, Any]:
    """boto3's ``ServerSideEncryption`` and ``SSEKMSKeyId`` for ``sse``."""
    if sse is None:
        return {}
    params: dict[str, Any] = {"ServerSideEncryption": _SSE_VALUES[sse.mode]}
    if sse.key_id is not None:
        params["SSEKMSKeyId"] = sse.key_id
    return params


def _tagging(tags: Mapping[str, str]) -> str:
    """S3's ``Tagging`` parameter: the tags URL-encoded as a query string (spaces as ``%20``)."""
    return urlencode(list(tags.items()), quote_via=quote)


def _settings_params(settings: ObjectSettings | None, *, tags: bool = True) -> dict[str, Any]:
    """boto3's parameters of PutObject, CreateMultipartUpload and CopyObject for ``settings``."""
    if settings is None:
        return {}
    params: dict[str, Any] = {}
    for name, value in (
        ("ContentType", settings.content_type),
        ("ContentDisposition", settings.content_disposition),
        ("CacheControl", settings.cache_control),
        ("StorageClass", settings.storage_class),
    ):
        if value is not None:
            params[name] = value
    params.update(_sse_params(settings.sse))
    if tags and settings.tags:
        params["Tagging"] = _tagging(settings.tags)
    return params


def _response_sse(response: Mapping[str, Any]) -> ServerSideEncryption | None:
    """The server-side encryption an S3 answer reports (``None`` for none, or one cse has no name for)."""
    mode = _SSE_MODES.get(str(response.get("ServerSideEncryption") or ""))
    if mode is None:
        return None
    key_id = response.get("SSEKMSKeyId") if mode != "aes256" else None
    return ServerSideEncryption(mode, str(key_id) if key_id else None)


def _response_settings(response: Mapping[str, Any]) -> ObjectSettings:
    """The settings HeadObject or GetObject reports, as S3 returns them (S3 reports a ContentType even
    when none was set, and no StorageClass for STANDARD)."""

    def text(name: str) -> str | None:
        value = response.get(name)
        return str(value) if value else None

    return ObjectSettings(
        content_type=text("ContentType"),
        content_disposition=text("ContentDisposition"),
        cache_control=text("CacheControl"),
        storage_class=text("StorageClass"),
        sse=_response_sse(response),
    )


def _written_settings(settings: ObjectSettings | None, response: Mapping[str, Any]) -> ObjectSettings:
    """What a write reports: the settings given (without tags), with the SSE that S3 answered (which
    includes a bucket default)."""
    given = settings or ObjectSettings()
    return ObjectSettings(
        given.content_type,
        given.content_disposition,
        given.cache_control,
        given.storage_class,
        sse=_response_sse(response) or given.sse,
    )


class _Body(ResponseBody):
    """A botocore StreamingBody, errors mapped to StoreError."""

    def __init__(self, stream: Any, url: str) -> None:
        super().__init__()
        self._stream = stream
        self._url = url

    def _read(self, size: int) -> bytes:
        try:
            data = self._stream.read(None if size < 0 else size)
        except (BotoCoreError, OSError, ValueError) as exc:
            raise StoreError(f"reading {self._url} failed: {exc}") from exc
        return bytes(data)

    def _release(self) -> None:
        self._stream.close()


@dataclass(frozen=True)
class _Upload:
    key: str
    metadata: dict[str, str]
    instruction: dict[str, str]
    settings: ObjectSettings = field(default_factory=ObjectSettings)


class S3Store(Store):
    """An S3 bucket (``s3://BUCKET/KEY``). Thread-safe: boto3 clients are.

    :param bucket: the bucket name.
    :param client: a boto3 S3 client; default: :func:`default_client`.
    :param instruction_files: read instruction files, delete them with their objects, copy them along,
        and leave them out of listings (see the module docstring).
    :param write_instruction_file: store the key material of new objects in ``KEY.instruction``, in the
        Java S3 Encryption Client's layout, instead of in the object's metadata.
    :param instruction_suffix: the suffix of instruction files.
    """

    scheme: ClassVar[str] = "s3"
    min_part_size: ClassVar[int] = 5 * MiB
    max_parts: ClassVar[int] = 10_000
    #: The format cse writes to S3 unless told otherwise: the official client's V3.
    default_format: ClassVar[str] = "s3-v3"
    #: SSE-S3 (``AES256``), SSE-KMS (``aws:kms``) and DSSE-KMS (``aws:kms:dsse``).
    sse_modes: ClassVar[frozenset[str]] = frozenset({"aes256", "kms", "dsse"})

    def __init__(
        self,
        bucket: str,
        client: Any = None,
        *,
        instruction_files: bool = True,
        write_instruction_file: bool = False,
        instruction_suffix: str = INSTRUCTION_SUFFIX,
    ) -> None:
        """Open ``bucket`` with ``client`` (or the default client)."""
        if not isinstance(bucket, str) or not bucket or "/" in bucket:
            raise ConfigurationError(f"an S3 bucket name is non-empty and has no '/': {bucket!r}")
        if not instruction_suffix:
            raise ConfigurationError("the instruction file suffix must not be empty")
        #: The bucket name.
        self.bucket = bucket
        self._owns_client = client is None
        #: The boto3 S3 client.
        self.client: Any = default_client() if client is None else client
        self.instruction_files = instruction_files
        self.write_instruction_file = write_instruction_file
        self.instruction_suffix = instruction_suffix
        #: Objects larger than this are copied part by part; tests may lower it.
        self.max_copy_size = MAX_COPY_SIZE
        #: Part size of such copies.
        self.copy_part_size = COPY_PART_SIZE
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r})"

    @classmethod
    def from_url(cls, url: str) -> tuple[Store, str]:
        """``s3://BUCKET/KEY`` -> (a store of ``BUCKET`` with the default client, ``"KEY"``), key verbatim."""
        bucket, key = parse_bucket_url(url, "s3")
        return cls(bucket), key

    def url(self, key: str) -> str:
        """``s3://BUCKET/KEY``."""
        return f"{_PREFIX}{self.bucket}/{key}"

    def close(self) -> None:
        """Close the client if this store created it."""
        if self._owns_client:
            close = getattr(self.client, "close", None)
            if close is not None:
                close()

    # ----------------------------------------------------------------------------------------- plumbing

    def _fail(self, exc: Exception, action: str, key: str, upload_id: str | None = None) -> NoReturn:
        """Raise the cse error for a botocore error (``raise ... from``)."""
        url = self.url(key)
        if isinstance(exc, (NoCredentialsError, NoRegionError)):
            raise ConfigurationError(
                f"{action} {url}: {exc} (configure AWS credentials and a region as for boto3: environment, "
                "~/.aws/config, or an instance role)"
            ) from exc
        if not isinstance(exc, ClientError):
            raise StoreError(f"{action} {url} failed: {exc}") from exc
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(error.get("Message", "")) or str(exc)
        if code == "NoSuchUpload":
            raise ObjectNotFoundError(f"no multipart upload {upload_id!r} of {url}") from exc
        if code == "NoSuchBucket":
            raise StoreError(f"{action} {url}: the bucket {self.bucket!r} does not exist") from exc
        if code in _NOT_FOUND:
            raise ObjectNotFoundError(f"no such object: {url}") from exc
        if code == "InvalidRange" or status == 416:
            raise InvalidRangeError(f"{action} {url}: the byte range is not satisfiable") from exc
        hint = ""
        if status == 403 and action == "head":
            hint = " (S3 answers 403 for a missing key when the caller may not list the bucket)"
        raise StoreError(f"{action} {url} failed: {code or status} ({message}){hint}") from exc

    def _call(self, action: str, key: str, method: str, upload_id: str | None = None, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, action, key, upload_id)

    def _info(
        self,
        key: str,
        response: Mapping[str, Any],
        size: int,
        metadata: Mapping[str, str],
        settings: ObjectSettings | None = None,
    ) -> ObjectInfo:
        modified = response.get("LastModified")
        return ObjectInfo(
            key,
            size,
            _etag(response.get("ETag")),
            dict(metadata),
            modified if isinstance(modified, datetime) else None,
            settings or ObjectSettings(),
        )

    def check_settings(self, settings: ObjectSettings) -> None:
        """Refuse SSE modes S3 has not (``sm4``) and tags beyond S3's limits (10 tags, keys of at most
        128 characters, values of at most 256), before any request."""
        super().check_settings(settings)
        check_tag_limits(settings.tags, "S3")

    def _instruction_key(self, key: str) -> str:
        return key + self.instruction_suffix

    def _is_instruction_file(self, key: str) -> bool:
        return self.instruction_files and key.endswith(self.instruction_suffix)

    # ------------------------------------------------------------------------------- instruction files

    def _with_instruction_file(self, key: str, metadata: dict[str, str]) -> dict[str, str]:
        """The object's metadata, merged with its instruction file when it needs one (module docstring)."""
        if (
            not self.instruction_files
            or has_wrapped_key(metadata)
            or NATIVE_METADATA_KEY in metadata  # a cse-v1 object: its keys are in its own metadata
            or self._is_instruction_file(key)
        ):
            return metadata
        ikey = self._instruction_key(key)
        where = self.url(ikey)
        required = set(metadata) >= V3_OBJECT_KEYS  # a V3 object whose wrapped key is elsewhere
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=ikey)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(exc.response.get("Error", {}).get("Code", ""))
            # Absent; or (403) unknowable without s3:ListBucket, which only matters if a file is required.
            if code in _NOT_FOUND or (status == 403 and not required):
                return metadata
            self._fail(exc, "get", ikey)
        except BotoCoreError as exc:
            self._fail(exc, "get", ikey)
        try:
            body = response["Body"].read(MAX_INSTRUCTION_FILE_SIZE + 1)
        except (BotoCoreError, OSError, ValueError) as exc:
            raise StoreError(f"reading the instruction file {where} failed: {exc}") from exc
        finally:
            response["Body"].close()
        # A file that must be an instruction file is checked strictly; another object that merely has the
        # name (a plain object "x" beside a plain "x.instruction") is left alone.
        meant = required or INSTRUCTION_FILE_MARKER in response.get("Metadata", {})
        try:
            parsed = parse_instruction_file(body, where)
        except MetadataError:
            if meant:
                raise
            return metadata
        return merge_instruction_file(metadata, parsed, where)

    def _split(self, metadata: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """(object metadata, instruction file keys or {}) for writing ``metadata``."""
        meta = _ascii_metadata(metadata)
        wanted = self.write_instruction_file or INSTRUCTION_FILE_MARKER in meta
        own, instruction = split_for_instruction_file(meta)
        return (own, instruction) if wanted else (meta, {})

    def _put_instruction_file(
        self, key: str, instruction: Mapping[str, str], sse: ServerSideEncryption | None = None
    ) -> None:
        """Write ``KEY.instruction``, server-side encrypted as its object (bucket policies that require
        SSE apply to it too)."""
        ikey = self._instruction_key(key)
        try:
            self._call(
                "put",
                ikey,
                "put_object",
                Key=ikey,
                Body=instruction_file_body(instruction),
                Metadata={INSTRUCTION_FILE_MARKER: ""},
                **_sse_params(sse),
            )
        except CseError as exc:
            raise StoreError(
                f"{self.url(key)} was written but its instruction file {self.url(ikey)} was not ({exc}); "
                "write the object again"
            ) from exc

    # -------------------------------------------------------------------------------------------- objects

    def put(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        metadata: Mapping[str, str],
        settings: ObjectSettings | None = None,
    ) -> ObjectInfo:
        """PutObject ``data`` under ``key`` (and its instruction file when one is written), with
        ``settings`` as ``ContentType``, ``ContentDisposition``, ``CacheControl``, ``StorageClass``,
        ``Tagging``, ``ServerSideEncryption`` and ``SSEKMSKeyId``."""
        _check_key(key)
        if settings:
            self.check_settings(settings)
        own, instruction = self._split(metadata)
        body = _body(data)
        params = _settings_params(settings)
        response = self._call("put", key, "put_object", Key=key, Body=body, Metadata=own, **params)
        if instruction:
            self._put_instruction_file(key, instruction, settings.sse if settings else None)
            own = {**own, **instruction, INSTRUCTION_FILE_MARKER: ""}
        return self._info(key, response, len(body), own, _written_settings(settings, response))

    def get(self, key: str, start: int = 0, end: int | None = None) -> GetResult:
        """GetObject bytes ``start..end`` (inclusive) of ``key``; see :meth:`Store.get`."""
        _check_key(key)
        url = self.url(key)
        if start < 0 or (end is not None and end < start):
            raise InvalidRangeError(f"invalid byte range {start}-{'' if end is None else end} for {url}")
        kwargs: dict[str, Any] = {"Key": key}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            response = self._call("get", key, "get_object", **kwargs)
        except InvalidRangeError:
            if start:
                raise
            response = self._call("get", key, "get_object", Key=key)  # S3 answers 416 for empty objects
        content_range = _CONTENT_RANGE.fullmatch(str(response.get("ContentRange") or ""))
        if content_range and content_range.group(3) != "*":
            size = int(content_range.group(3))
            first, last = int(content_range.group(1)), int(content_range.group(2))
        else:
            size = int(response.get("ContentLength", 0))
            first, last = resolve_get_range(size, start, end, url)
            if (first, last) != (0, size - 1) and size:
                response["Body"].close()
                raise StoreError(f"S3 ignored the byte range asked of {url}")
        try:
            metadata = self._with_instruction_file(key, dict(response.get("Metadata", {})))
        except BaseException:
            response["Body"].close()
            raise
        info = self._info(key, response, size, metadata, _response_settings(response))
        return GetResult(info, cast(BinaryIO, _Body(response["Body"], url)), first, last)

    def head(self, key: str) -> ObjectInfo:
        """HeadObject: size, ETag, metadata (merged with an instruction file where one is used) and the
        settings S3 reports."""
        _check_key(key)
        response = self._call("head", key, "head_object", Key=key)
        metadata = self._with_instruction_file(key, dict(response.get("Metadata", {})))
        size = int(response.get("ContentLength", 0))
        return self._info(key, response, size, metadata, _response_settings(response))

    def get_tags(self, key: str) -> dict[str, str]:
        """GetObjectTagging."""
        _check_key(key)
        response = self._call("get_tags", key, "get_object_tagging", Key=key)
        return {str(tag["Key"]): str(tag["Value"]) for tag in response.get("TagSet", ())}

    def get_bucket_encryption(self) -> ServerSideEncryption | None:
        """GetBucketEncryption: the first rule's default (``None`` if the bucket has no configuration,
        or one cse has no name for)."""
        try:
            response = self.client.get_bucket_encryption(Bucket=self.bucket)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) == (
                "ServerSideEncryptionConfigurationNotFoundError"
            ):
                return None
            self._fail(exc, "get_bucket_encryption", "")
        except BotoCoreError as exc:
            self._fail(exc, "get_bucket_encryption", "")
        rules = response.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        for rule in rules:
            default = rule.get("ApplyServerSideEncryptionByDefault") or {}
            found = _response_sse(
                {
                    "ServerSideEncryption": default.get("SSEAlgorithm"),
                    "SSEKMSKeyId": default.get("KMSMasterKeyID"),
                }
            )
            if found is not None:
                return found
        return None

    def put_bucket_encryption(self, sse: ServerSideEncryption) -> None:
        """PutBucketEncryption with one rule: ``sse`` as ``SSEAlgorithm`` (and ``KMSMasterKeyID``)."""
        self.check_settings(ObjectSettings(sse=sse))
        default: dict[str, str] = {"SSEAlgorithm": _SSE_VALUES[sse.mode]}
        if sse.key_id is not None:
            default["KMSMasterKeyID"] = sse.key_id
        self._call(
            "put_bucket_encryption",
            "",
            "put_bucket_encryption",
            ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": default}]},
        )

    def delete_bucket_encryption(self) -> None:
        """DeleteBucketEncryption (S3 then encrypts new objects with its own default, SSE-S3)."""
        self._call("delete_bucket_encryption", "", "delete_bucket_encryption")

    def delete(self, key: str) -> None:
        """DeleteObject ``key``, then its instruction file; absent keys are not an error."""
        _check_key(key)
        self._call("delete", key, "delete_object", Key=key)
        if self.instruction_files and not self._is_instruction_file(key):
            ikey = self._instruction_key(key)
            self._call("delete", ikey, "delete_object", Key=ikey)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """ListObjectsV2, paginated, in key order; instruction files are left out. Metadata is empty."""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", ()):
                    key = str(item["Key"])
                    if self._is_instruction_file(key):
                        continue
                    yield self._info(key, item, int(item.get("Size", 0)), {})
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "list", prefix)

    def copy(
        self,
        src_key: str,
        dst_key: str,
        metadata: Mapping[str, str] | None = None,
        settings: ObjectSettings | None = None,
    ) -> ObjectInfo:
        """CopyObject (MetadataDirective REPLACE with ``metadata``, COPY without); part by part above
        :attr:`max_copy_size`. Without new metadata, an instruction file is copied along; new metadata for
        an object onto itself whose key material lives in an instruction file rewrites only that file.

        S3 gives a copy the bucket's default encryption and the STANDARD storage class unless told
        otherwise, and REPLACE drops the content headers, so the source's settings (from a HeadObject of
        it) are sent again, with those set in ``settings`` in their place. Tags are copied by S3
        (TaggingDirective COPY) unless ``settings`` has tags (REPLACE); a copy in parts reads them with
        GetObjectTagging.
        """
        _check_key(src_key)
        _check_key(dst_key)
        if settings:
            self.check_settings(settings)
        src = self._call("copy", src_key, "head_object", Key=src_key)
        size = int(src.get("ContentLength", 0))
        src_metadata = dict(src.get("Metadata", {}))
        kept = (settings or ObjectSettings()).over(_response_settings(src))
        shown = _written_settings(kept, {})
        instruction: dict[str, str] = {}
        if metadata is None:
            own = src_metadata
        else:
            own, instruction = self._split(metadata)
        rotation = metadata is not None and src_key == dst_key and instruction and own == src_metadata
        if rotation and not settings:
            # Key rotation of an object that keeps its key material in an instruction file: the object
            # itself does not change, so only the instruction file is written.
            info = self._info(dst_key, src, size, own, shown)
        elif size > self.max_copy_size:
            tags = dict(settings.tags) if settings and settings.tags else self.get_tags(src_key)
            info = self._copy_in_parts(src_key, dst_key, size, own, ObjectSettings(tags=tags).over(kept))
        else:
            source = {"Bucket": self.bucket, "Key": src_key}
            params = _settings_params(kept, tags=False)
            content = settings is not None and settings.content_headers
            if metadata is None and not content:
                # COPY keeps the content headers (and ignores any sent); SSE and storage class are sent.
                for name in ("ContentType", "ContentDisposition", "CacheControl"):
                    params.pop(name, None)
                params["MetadataDirective"] = "COPY"
            else:
                params.update(MetadataDirective="REPLACE", Metadata=own)
            if settings is not None and settings.tags:
                params.update(TaggingDirective="REPLACE", Tagging=_tagging(settings.tags))
            response = self._call("copy", dst_key, "copy_object", Key=dst_key, CopySource=source, **params)
            info = self._info(dst_key, response.get("CopyObjectResult", {}), size, own, shown)
        if instruction:
            self._put_instruction_file(dst_key, instruction, kept.sse)
        elif metadata is None and self.instruction_files and not has_wrapped_key(src_metadata):
            self._copy_instruction_file(src_key, dst_key, kept.sse)
        return info

    def _copy_instruction_file(
        self, src_key: str, dst_key: str, sse: ServerSideEncryption | None = None
    ) -> None:
        if src_key == dst_key:
            return
        isrc, idst = self._instruction_key(src_key), self._instruction_key(dst_key)
        try:
            self._call(
                "copy",
                idst,
                "copy_object",
                Key=idst,
                CopySource={"Bucket": self.bucket, "Key": isrc},
                MetadataDirective="COPY",
                **_sse_params(sse),
            )
        except ObjectNotFoundError:
            return

    def _copy_in_parts(
        self, src_key: str, dst_key: str, size: int, metadata: dict[str, str], settings: ObjectSettings
    ) -> ObjectInfo:
        part = max(self.copy_part_size, self.min_part_size, -(-size // self.max_parts))
        # Not create_multipart: the metadata is already split for the destination's layout.
        created = self._call(
            "copy",
            dst_key,
            "create_multipart_upload",
            Key=dst_key,
            Metadata=metadata,
            **_settings_params(settings),
        )
        upload_id = str(created["UploadId"])
        with self._lock:
            self._uploads[upload_id] = _Upload(
                dst_key, dict(metadata), {}, _written_settings(settings, created)
            )
        source = {"Bucket": self.bucket, "Key": src_key}

        def copy_part(number: int) -> PartInfo:
            """UploadPartCopy of part ``number``."""
            first = (number - 1) * part
            last = min(size, first + part) - 1
            response = self._call(
                "copy",
                dst_key,
                "upload_part_copy",
                upload_id,
                Key=dst_key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=source,
                CopySourceRange=f"bytes={first}-{last}",
            )
            return PartInfo(number, _etag(response.get("CopyPartResult", {}).get("ETag")), last - first + 1)

        try:
            with ThreadPoolExecutor(max_workers=8, thread_name_prefix="cse-s3-copy") as pool:
                parts = list(pool.map(copy_part, range(1, -(-size // part) + 1)))
            return self.complete_multipart(dst_key, upload_id, parts)
        except BaseException:
            with contextlib.suppress(CseError):
                self.abort_multipart(dst_key, upload_id)
            raise

    # ------------------------------------------------------------------------------------------ multipart

    def create_multipart(
        self, key: str, metadata: Mapping[str, str], settings: ObjectSettings | None = None
    ) -> str:
        """CreateMultipartUpload with ``metadata`` and ``settings`` (as :meth:`put` sends them; S3's parts
        need nothing more for SSE-S3 or SSE-KMS). An instruction file is written on completion."""
        _check_key(key)
        if settings:
            self.check_settings(settings)
        full = _ascii_metadata(metadata)
        own, instruction = self._split(full)
        response = self._call(
            "create_multipart",
            key,
            "create_multipart_upload",
            Key=key,
            Metadata=own,
            **_settings_params(settings),
        )
        upload_id = str(response["UploadId"])
        with self._lock:
            self._uploads[upload_id] = _Upload(key, full, instruction, _written_settings(settings, response))
        return upload_id

    def upload_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        data: bytes | bytearray | memoryview,
        headers: Mapping[str, str] | None = None,
    ) -> PartInfo:
        """UploadPart ``part_number`` (1..10,000). S3 has no per-part metadata: ``headers`` are ignored."""
        if not isinstance(part_number, int) or not 1 <= part_number <= self.max_parts:
            raise ConfigurationError(f"part numbers run from 1 to {self.max_parts}, not {part_number}")
        body = _body(data)
        response = self._call(
            "upload_part",
            key,
            "upload_part",
            upload_id,
            Key=key,
            UploadId=upload_id,
            PartNumber=part_number,
            Body=body,
        )
        return PartInfo(part_number, _etag(response.get("ETag")), len(body))

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[PartInfo]) -> ObjectInfo:
        """CompleteMultipartUpload with ``parts`` (in part-number order), then the instruction file if any."""
        ordered = completion_parts(parts, self.url(key))
        size = sum(p.size for p in ordered)
        try:
            response: Any = self._call(
                "complete_multipart",
                key,
                "complete_multipart_upload",
                upload_id,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"ETag": _quoted(p.etag), "PartNumber": p.part_number} for p in ordered]
                },
            )
        except ObjectNotFoundError:
            # A completion whose answer was lost, sent again by botocore, finds its upload gone because the
            # first one completed it: the object's ETag (the MD5 of the parts' MD5s) says if it is ours.
            response = self._completed_already(key, ordered, size)
            if response is None:
                raise
        with self._lock:
            upload = self._uploads.pop(upload_id, None)
        metadata: dict[str, str] = {}
        settings = ObjectSettings()
        if upload is not None:
            metadata = dict(upload.metadata)
            settings = upload.settings
            if upload.instruction:
                self._put_instruction_file(key, upload.instruction, settings.sse)
        return self._info(key, response, size, metadata, settings)

    def _completed_already(self, key: str, ordered: Sequence[PartInfo], size: int) -> dict[str, Any] | None:
        """HeadObject's answer if ``key`` is the object these parts make (same size, ETag of these parts)."""
        try:
            digest = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in ordered), usedforsecurity=False)
            response = self._call("head", key, "head_object", Key=key)
        except (ValueError, CseError):
            return None
        expected = f"{digest.hexdigest()}-{len(ordered)}"
        if _etag(response.get("ETag")) != expected or int(response.get("ContentLength", -1)) != size:
            return None
        return dict(response)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; unknown uploads are not an error."""
        with self._lock:
            self._uploads.pop(upload_id, None)
        try:
            self._call(
                "abort_multipart", key, "abort_multipart_upload", upload_id, Key=key, UploadId=upload_id
            )
        except ObjectNotFoundError:
            return

    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:
        """ListParts, paginated, in part-number order."""
        found: builtins.list[PartInfo] = []
        try:
            pages = self.client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            )
            for page in pages:
                for part in page.get("Parts", ()):
                    found.append(
                        PartInfo(int(part["PartNumber"]), _etag(part.get("ETag")), int(part["Size"]))
                    )
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "list_parts", key, upload_id)
        found.sort(key=lambda p: p.part_number)
        return found

    def list_multipart_uploads(self, prefix: str = "") -> builtins.list[UploadInfo]:
        """ListMultipartUploads, paginated, by key then start time. Metadata: what this instance was given
        at creation (S3 does not return it), else ``{}``."""
        found: builtins.list[UploadInfo] = []
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Uploads", ()):
                    upload_id = str(item["UploadId"])
                    with self._lock:
                        known = self._uploads.get(upload_id)
                    initiated = item.get("Initiated")
                    found.append(
                        UploadInfo(
                            str(item["Key"]),
                            upload_id,
                            initiated if isinstance(initiated, datetime) else None,
                            dict(known.metadata) if known is not None else {},
                        )
                    )
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "list_multipart_uploads", prefix)
        found.sort(key=lambda u: (u.key, u.initiated.timestamp() if u.initiated else 0.0, u.upload_id))
        return found
