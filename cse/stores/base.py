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
    "BufferReader",
    "ResponseBody",
    "GetResult",
    "ObjectInfo",
    "PartInfo",
    "Store",
    "UploadInfo",
    "clean_metadata",
    "completion_parts",
    "parse_bucket_url",
    "resolve_get_range",
]


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows of one stored object."""

    key: str
    #: Stored (ciphertext) size in bytes.
    size: int
    etag: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None


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
    def put(self, key: str, data: bytes | bytearray | memoryview, metadata: Mapping[str, str]) -> ObjectInfo:
        """Store ``data`` under ``key`` with ``metadata``, replacing any object there."""

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
    def copy(self, src_key: str, dst_key: str, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Server-side copy. With ``metadata``, the copy's metadata is replaced by it; else it is kept."""

    @abstractmethod
    def create_multipart(self, key: str, metadata: Mapping[str, str]) -> str:
        """Start a multipart upload; return its upload id."""

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
