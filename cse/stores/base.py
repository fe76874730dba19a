"""The store contract: the small surface every object store implements.

Everything else (encryption, multipart planning, retries of whole operations, ranged reads) is built once
in :class:`cse.EncryptionClient`. Stores move opaque ciphertext bytes and string metadata, and map their
backend's errors into :mod:`cse.exceptions` with ``raise ... from``.

Metadata is *user* metadata: lower-case keys without the transport prefix (``x-amz-meta-``,
``x-oss-meta-``), string values. Stores lower-case keys given to them, as S3 and OSS do.

``GetResult.body`` supports ``read`` and, for speed, ``readinto``. Bad arguments (a part number outside
1..``max_parts``, a negative range) raise :class:`~cse.exceptions.ConfigurationError` or
:class:`~cse.exceptions.InvalidRangeError`.
"""

from __future__ import annotations

import builtins
import functools
import io
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, ClassVar

from cse.exceptions import ConfigurationError, InvalidRangeError, StoreError
from cse.log import get_logger, timed

_STORE_LOG = get_logger("store")
#: The store operations logged on ``cse.store`` at DEBUG, with the position of their ``data`` argument
#: after ``self``.
_LOGGED_OPERATIONS: dict[str, int | None] = {
    "put": 1,
    "get": None,
    "head": None,
    "delete": None,
    "copy": None,
    "create_multipart": None,
    "upload_part": 3,
    "complete_multipart": None,
    "abort_multipart": None,
    "list_parts": None,
}


def _logged(name: str, data_index: int | None, method: Any) -> Any:
    """``method`` of a store, logging each call: operation, URL, bytes, duration and outcome."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        if not _STORE_LOG.isEnabledFor(logging.DEBUG):
            return method(self, *args, **kwargs)
        key = args[0] if args else kwargs.get("key", kwargs.get("src_key", ""))
        try:
            where = self.url(str(key))
        except Exception:
            where = str(key)
        data = None
        if data_index is not None:
            data = args[data_index] if len(args) > data_index else kwargs.get("data")
        with timed(_STORE_LOG, "store request", store=self.scheme, operation=name, url=where) as fields:
            if isinstance(data, (bytes, bytearray, memoryview)):
                fields["bytes"] = memoryview(data).nbytes
            result = method(self, *args, **kwargs)
            if isinstance(result, GetResult):
                fields["bytes"] = max(0, result.end - result.start + 1)
            return result

    wrapper.__cse_logged__ = True  # type: ignore[attr-defined]
    return wrapper


__all__ = [
    "SSE_MODES",
    "BufferReader",
    "ResponseBody",
    "GetResult",
    "ObjectInfo",
    "ObjectSettings",
    "PartInfo",
    "ServerSideEncryption",
    "Store",
    "UploadInfo",
    "check_tag_limits",
    "clean_metadata",
    "completion_parts",
    "parse_bucket_url",
    "parse_sse",
    "resolve_get_range",
]

#: The server-side encryption modes, by cse's names: ``aes256`` (SSE-S3, SSE-OSS), ``kms`` (SSE-KMS, with an
#: optional key id), ``sm4`` (SSE-OSS with SM4, OSS only) and ``dsse`` (S3's dual-layer ``aws:kms:dsse``,
#: with an optional key id).
SSE_MODES: tuple[str, ...] = ("aes256", "kms", "sm4", "dsse")
#: The modes that take a KMS key id.
_SSE_KEYED = frozenset({"kms", "dsse"})
#: Every spelling :func:`parse_sse` accepts (lower-cased), the stores' native values included.
_SSE_NAMES = {
    "aes256": "aes256",
    "aes-256": "aes256",
    "sse-s3": "aes256",
    "sse-oss": "aes256",
    "kms": "kms",
    "aws:kms": "kms",
    "sse-kms": "kms",
    "sm4": "sm4",
    "dsse": "dsse",
    "aws:kms:dsse": "dsse",
    "dsse-kms": "dsse",
}


@dataclass(frozen=True)
class ServerSideEncryption:
    """Server-side encryption of an object, under (not instead of) cse's client-side encryption.

    ``mode`` is one of :data:`SSE_MODES`; ``key_id`` names the KMS key of ``kms`` and ``dsse`` (``None``:
    the store's default key). Stores translate it into their own headers (S3 ``x-amz-server-side-encryption``
    ``AES256``/``aws:kms``/``aws:kms:dsse``, OSS ``x-oss-server-side-encryption`` ``AES256``/``KMS``/``SM4``).
    Build one from user input with :func:`parse_sse`.
    """

    mode: str
    key_id: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in SSE_MODES:
            raise ConfigurationError(
                f"{self.mode!r} is not a server-side encryption mode; use one of {', '.join(SSE_MODES)}"
            )
        if self.key_id is not None and (not isinstance(self.key_id, str) or not self.key_id):
            raise ConfigurationError("a server-side encryption key id is a non-empty string")
        if self.key_id is not None and self.mode not in _SSE_KEYED:
            raise ConfigurationError(
                f"server-side encryption {self.mode} takes no key id; a key id goes with kms or dsse"
            )


def parse_sse(mode: str, key_id: str | None = None) -> ServerSideEncryption:
    """The :class:`ServerSideEncryption` a user named: ``kms``, ``aes256``, ``sm4`` or ``dsse``, in any case,
    or a store's native value (``aws:kms``, ``aws:kms:dsse``, ``KMS``, ``AES256``, ``SM4``).

    Raises :class:`~cse.exceptions.ConfigurationError` listing the modes for anything else, and for a key id
    given to a mode that has none.
    """
    if not isinstance(mode, str) or mode.strip().lower() not in _SSE_NAMES:
        raise ConfigurationError(
            f"{mode!r} is not a server-side encryption mode; use one of {', '.join(SSE_MODES)} "
            "(or the store's own value: aws:kms, aws:kms:dsse, AES256, KMS, SM4)"
        )
    return ServerSideEncryption(_SSE_NAMES[mode.strip().lower()], key_id or None)


@dataclass(frozen=True)
class ObjectSettings:
    """The settings of a stored object beside its bytes and user metadata, as boto3 and oss2 users pass
    them: ``ContentType``, ``ContentDisposition``, ``CacheControl``, tags, ``StorageClass`` and server-side
    encryption.

    Stores store them as the plain SDK would (they are not encrypted), and report what the store returns in
    :attr:`ObjectInfo.settings` (tags are read separately, with :meth:`Store.get_tags`). An unset field
    (``None``, no tags) is left to the store's default. ``bool(settings)`` is false when nothing is set.
    """

    content_type: str | None = None
    content_disposition: str | None = None
    cache_control: str | None = None
    storage_class: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    sse: ServerSideEncryption | None = None

    def __post_init__(self) -> None:
        for name in ("content_type", "content_disposition", "cache_control", "storage_class"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigurationError(f"{name} is a non-empty string, not {value!r}")
        for tag, value in self.tags.items():
            if not isinstance(tag, str) or not tag or not isinstance(value, str):
                raise ConfigurationError(f"tags map non-empty strings to strings, not {tag!r}: {value!r}")
        if self.sse is not None and not isinstance(self.sse, ServerSideEncryption):
            raise ConfigurationError("sse is a cse.stores.base.ServerSideEncryption (see parse_sse)")

    def __bool__(self) -> bool:
        return any(
            getattr(self, name) is not None
            for name in ("content_type", "content_disposition", "cache_control", "storage_class", "sse")
        ) or bool(self.tags)

    @property
    def content_headers(self) -> bool:
        """Whether a content header (type, disposition, cache control) is set: a copy that changes one
        must replace the metadata, on S3 and OSS alike."""
        return any(v is not None for v in (self.content_type, self.content_disposition, self.cache_control))

    def over(self, base: ObjectSettings) -> ObjectSettings:
        """These settings, with every field left unset here taken from ``base``."""
        return ObjectSettings(
            content_type=self.content_type if self.content_type is not None else base.content_type,
            content_disposition=(
                self.content_disposition if self.content_disposition is not None else base.content_disposition
            ),
            cache_control=self.cache_control if self.cache_control is not None else base.cache_control,
            storage_class=self.storage_class if self.storage_class is not None else base.storage_class,
            tags=dict(self.tags) if self.tags else dict(base.tags),
            sse=self.sse if self.sse is not None else base.sse,
        )


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows of one stored object."""

    key: str
    #: Stored (ciphertext) size in bytes.
    size: int
    etag: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None
    #: The object's settings as the store returns them (content type, server-side encryption, ...). From
    #: :meth:`Store.head` and :meth:`Store.get`; listings may leave it empty. Tags are not here.
    settings: ObjectSettings = field(default_factory=ObjectSettings)


@dataclass(frozen=True)
class PartInfo:
    """One uploaded part of a multipart upload."""

    part_number: int
    etag: str
    size: int


@dataclass(frozen=True)
class UploadInfo:
    """An unfinished multipart upload."""

    key: str
    upload_id: str
    initiated: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass
class GetResult:
    """The answer to a (ranged) get: the object's info and a stream of the requested bytes.

    ``start``/``end`` are the first and last byte offsets (inclusive) of the returned bytes in the stored
    object; ``end`` is ``start - 1`` for an empty object. Close ``body`` when done (or use ``with``).
    """

    info: ObjectInfo
    body: BinaryIO
    start: int
    end: int

    def __enter__(self) -> GetResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.body.close()


class Store(ABC):
    """An object store. Implementations must be thread-safe for concurrent part uploads.

    Set :attr:`scheme` and implement every abstract method. ``from_url`` turns a URL of the scheme into a
    store and a key. Keys are ``/``-separated strings.
    """

    #: The URL scheme, e.g. ``"file"``.
    scheme: ClassVar[str] = ""
    #: The smallest part size a multipart upload accepts (all parts but the last).
    min_part_size: ClassVar[int] = 1
    #: The largest number of parts a multipart upload takes.
    max_parts: ClassVar[int] = 10_000
    #: Whether user metadata can be read back on every object (False if a store drops it).
    supports_metadata: ClassVar[bool] = True
    #: The format cse writes to this store unless told otherwise (S3: ``s3-v3``, OSS: ``oss-v2``).
    default_format: ClassVar[str] = "cse-v1"
    #: The store's objects exist in this process only (``memory://``): engines that work in other processes
    #: (the Dask engine of :func:`cse.migrate.migrate`) refuse it.
    process_local: ClassVar[bool] = False
    #: The server-side encryption modes (of :data:`SSE_MODES`) the store has; empty: none.
    sse_modes: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every store's requests are logged on ``cse.store`` (see :mod:`cse.log`), plugins' included."""
        super().__init_subclass__(**kwargs)
        for name, data_index in _LOGGED_OPERATIONS.items():
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "__cse_logged__", False):
                setattr(cls, name, _logged(name, data_index, method))

    @classmethod
    @abstractmethod
    def from_url(cls, url: str) -> tuple[Store, str]:
        """Open the store a URL names; return it and the key (or prefix) part of the URL."""

    @abstractmethod
    def url(self, key: str) -> str:
        """The URL of ``key`` in this store (the inverse of :meth:`from_url`)."""

    @abstractmethod
    def put(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        metadata: Mapping[str, str],
        settings: ObjectSettings | None = None,
    ) -> ObjectInfo:
        """Store ``data`` under ``key`` with ``metadata`` and ``settings``, replacing any object there.

        cse passes ``settings`` only when some are set (so a store written before settings existed keeps
        working for calls without them), after :meth:`check_settings`.
        """

    @abstractmethod
    def get(self, key: str, start: int = 0, end: int | None = None) -> GetResult:
        """Read bytes ``start..end`` (inclusive; ``end=None`` means to the end) of ``key``.

        ``end`` past the object is clamped. ``start`` at or past the end of a non-empty object raises
        :class:`~cse.exceptions.InvalidRangeError`; ``get(key)`` of an empty object returns no bytes.
        """

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """The object's size, ETag and metadata; :class:`~cse.exceptions.ObjectNotFoundError` if absent."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key``. Deleting an absent key is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order. ``metadata`` may be empty here."""

    @abstractmethod
    def copy(
        self,
        src_key: str,
        dst_key: str,
        metadata: Mapping[str, str] | None = None,
        settings: ObjectSettings | None = None,
    ) -> ObjectInfo:
        """Server-side copy. With ``metadata``, the copy's metadata is replaced by it; else it is kept.

        The copy keeps the source's settings (content type, disposition, cache control, storage class,
        tags and server-side encryption), also when the metadata is replaced: where the backend would drop
        or reset one on a copy (S3 resets SSE and storage class, and a metadata replace drops the content
        headers), the store sends the source's value again. Fields set in ``settings`` replace the source's.
        """

    @abstractmethod
    def create_multipart(
        self, key: str, metadata: Mapping[str, str], settings: ObjectSettings | None = None
    ) -> str:
        """Start a multipart upload with the object's ``metadata`` and ``settings``; return its upload id.

        Parts carry whatever the store requires of them for those settings.
        """

    @abstractmethod
    def upload_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        data: bytes | bytearray | memoryview,
        headers: Mapping[str, str] | None = None,
    ) -> PartInfo:
        """Upload part ``part_number`` (1-based). Re-uploading a number replaces it. ``headers`` are
        per-part metadata some formats need (OSS sends ``data-size``/``part-size`` with every part)."""

    @abstractmethod
    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[PartInfo]) -> ObjectInfo:
        """Assemble ``parts`` into the object. Callers pass them in part-number order; every part's ETag must
        match what was uploaded. An empty or duplicate list raises :class:`~cse.exceptions.StoreError`; a
        failed complete leaves the upload in place, to be retried or aborted by the caller."""

    @abstractmethod
    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abandon the upload and free its parts. Aborting an unknown upload is not an error."""

    @abstractmethod
    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:
        """The parts uploaded so far, in part-number order."""

    @abstractmethod
    def list_multipart_uploads(self, prefix: str = "") -> builtins.list[UploadInfo]:
        """Unfinished uploads whose key starts with ``prefix``, with the metadata given at creation."""

    def check_settings(self, settings: ObjectSettings) -> None:
        """Refuse, before anything is written, settings this store cannot keep.

        The default checks the server-side encryption mode against :attr:`sse_modes` and raises
        :class:`~cse.exceptions.ConfigurationError` listing the modes the store has. Stores with more
        rules (storage classes, tag limits) extend it.
        """
        if settings.sse is not None and settings.sse.mode not in self.sse_modes:
            have = ", ".join(m for m in SSE_MODES if m in self.sse_modes)
            if not have:
                raise ConfigurationError(
                    f"{self.scheme}:// has no server-side encryption at all (asked for "
                    f"{settings.sse.mode!r}); leave sse (--sse) out"
                )
            raise ConfigurationError(
                f"{self.scheme}:// has no server-side encryption {settings.sse.mode!r}; it has {have}"
            )

    def get_tags(self, key: str) -> dict[str, str]:
        """The object's tags (``{}`` if it has none, or the store keeps no tags)."""
        self.head(key)
        return {}

    def get_bucket_encryption(self) -> ServerSideEncryption | None:
        """The bucket's default server-side encryption, or ``None`` if it has none (or the store has no
        buckets)."""
        return None

    def put_bucket_encryption(self, sse: ServerSideEncryption) -> None:
        """Set the bucket's default server-side encryption. The default raises
        :class:`~cse.exceptions.ConfigurationError`: the store has no bucket settings."""
        raise ConfigurationError(f"{self.scheme}:// has no bucket default encryption to set")

    def delete_bucket_encryption(self) -> None:
        """Remove the bucket's default server-side encryption (not an error if it has none)."""
        raise ConfigurationError(f"{self.scheme}:// has no bucket default encryption to remove")

    def read_all(self, key: str) -> bytes:
        """Read a whole (small) object into memory. Convenience for tests and tools."""
        with self.get(key) as result:
            buf = io.BytesIO()
            while chunk := result.body.read(1 << 20):
                buf.write(chunk)
            return buf.getvalue()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The default does nothing."""


class BufferReader(io.RawIOBase):
    """A seekable, read-only stream over a caller's buffer, for store implementations.

    HTTP libraries (botocore, requests) read such a body in blocks and seek back to retry; handing them
    ``bytes(memoryview)`` instead would copy every in-flight part once more.
    """

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        """Read ``data`` (not copied) from its start."""
        super().__init__()
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def __len__(self) -> int:
        return len(self._view)

    def readable(self) -> bool:
        """Always true."""
        return True

    def seekable(self) -> bool:
        """Always true."""
        return True

    def tell(self) -> int:
        """The read position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the read position."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        """Copy the next bytes into ``buffer``."""
        out = memoryview(buffer).cast("B")
        n = max(0, min(len(out), len(self._view) - self._pos))
        out[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        """The next ``size`` bytes (all that is left if negative)."""
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        data = bytes(self._view[self._pos : end])
        self._pos = max(self._pos, end)
        return data


class ResponseBody(io.RawIOBase):
    """The body of a store's GET response as a raw stream (``read``, ``readinto``, ``readall``), for store
    implementations: subclasses implement :meth:`_read` (mapping their SDK's errors to
    :class:`~cse.exceptions.StoreError`) and :meth:`_release`."""

    def _read(self, size: int) -> bytes:
        """Up to ``size`` bytes (all that is left if ``size`` is negative); ``b""`` at the end."""
        raise NotImplementedError

    def _release(self) -> None:
        """Give the connection back (called once, by :meth:`close`)."""

    def readable(self) -> bool:
        """Always true."""
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all that is left if negative or None)."""
        return self._read(-1 if size is None else size)

    def readall(self) -> bytes:
        """All that is left."""
        return self._read(-1)

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer``; 0 at the end."""
        view = memoryview(buffer).cast("B")
        data = self._read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Release the connection."""
        if not self.closed:
            self._release()
        super().close()


def clean_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Copy user metadata with lower-cased keys, checking that keys and values are strings.

    For store implementations: S3 and OSS lower-case metadata names, and so do cse's stores.
    """
    out: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"metadata keys are non-empty strings, not {name!r}")
        if not isinstance(value, str):
            raise ConfigurationError(f"the metadata value of {name!r} is a {type(value).__name__}, not a str")
        out[name.lower()] = value
    return out


def check_tag_limits(
    tags: Mapping[str, str], cloud: str, *, max_tags: int = 10, max_key: int = 128, max_value: int = 256
) -> None:
    """Refuse tags beyond a store's limits (S3's and OSS's: 10 tags, keys of at most 128 characters, values
    of at most 256) with a :class:`~cse.exceptions.ConfigurationError` naming ``cloud``. For store
    implementations' :meth:`Store.check_settings`."""
    if len(tags) > max_tags:
        raise ConfigurationError(f"{cloud} keeps at most {max_tags} tags per object, not {len(tags)}")
    for tag, value in tags.items():
        if len(tag) > max_key or len(value) > max_value:
            raise ConfigurationError(
                f"{cloud} tag keys have at most {max_key} characters and values {max_value}; "
                f"the tag {tag[:40]!r} is longer"
            )


def resolve_get_range(size: int, start: int, end: int | None, url: str) -> tuple[int, int]:
    """The inclusive byte range that ``Store.get(key, start, end)`` returns for an object of ``size`` bytes.

    For store implementations, per the contract of :meth:`Store.get`: the end is clamped, an empty object
    read from 0 gives ``(0, -1)``, and a start at or past the end raises
    :class:`~cse.exceptions.InvalidRangeError`.
    """
    if start < 0 or (end is not None and end < start):
        raise InvalidRangeError(f"invalid byte range {start}-{'' if end is None else end} for {url}")
    if size == 0 and start == 0:
        return 0, -1
    if start >= size:
        raise InvalidRangeError(f"byte range starts at {start}, past the end of {url} ({size} bytes)")
    return start, size - 1 if end is None else min(end, size - 1)


def parse_bucket_url(url: str, scheme: str) -> tuple[str, str]:
    """``SCHEME://BUCKET/KEY`` -> ``(BUCKET, KEY)``, the key verbatim (empty for a bucket or prefix URL).

    For store implementations' :meth:`Store.from_url`; a URL of another scheme, or without a bucket, raises
    :class:`~cse.exceptions.ConfigurationError`.
    """
    prefix = f"{scheme}://"
    if not isinstance(url, str) or not url.lower().startswith(prefix):
        raise ConfigurationError(f"{url!r} is not an {prefix} URL (expected {prefix}BUCKET/KEY)")
    bucket, _, key = url[len(prefix) :].partition("/")
    if not bucket:
        raise ConfigurationError(f"{url!r} names no bucket (expected {prefix}BUCKET/KEY)")
    return bucket, key


def completion_parts(parts: Sequence[PartInfo], url: str) -> builtins.list[PartInfo]:
    """The parts of a ``complete_multipart`` call in part-number order, per the contract of
    :meth:`Store.complete_multipart`: an empty list or a part listed twice raises
    :class:`~cse.exceptions.StoreError`."""
    if not parts:
        raise StoreError(f"completing the multipart upload of {url} needs at least one part")
    numbers = [p.part_number for p in parts]
    if len(set(numbers)) != len(numbers):
        raise StoreError(f"a part is listed twice in the completion of {url}")
    return sorted(parts, key=lambda p: p.part_number)
