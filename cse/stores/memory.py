"""``memory://``: an in-process object store, the fake that every other test builds on.

``memory://BUCKET/KEY`` names ``KEY`` in the process-wide bucket ``BUCKET``: every
:meth:`MemoryStore.from_url` (and :meth:`MemoryStore.shared`) of the same bucket returns the same store, so
two clients of one process see each other's objects. ``MemoryStore()`` makes a private, empty store with a
generated bucket name; its URLs resolve back to it for as long as it is alive.

The store behaves like S3 where the contract leaves room: ETags are the MD5 hex digest of the data, or for a
multipart object the MD5 of the parts' binary MD5 digests followed by ``-N``; metadata keys are stored
lower-cased; ``complete_multipart`` checks every part's ETag. Every call is recorded in
:attr:`MemoryStore.requests` so tests can assert what travelled (for example, that a copy moved no body).
"""

from __future__ import annotations

import builtins
import hashlib
import io
import secrets
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import ClassVar

from cse.exceptions import ConfigurationError, ObjectNotFoundError, StoreError
from cse.stores.base import (
    GetResult,
    ObjectInfo,
    ObjectSettings,
    PartInfo,
    ServerSideEncryption,
    Store,
    UploadInfo,
    clean_metadata,
    resolve_get_range,
)

__all__ = ["MemoryStore"]

_PREFIX = "memory://"
_PRIVATE_PREFIX = "private-"

#: The process-wide stores of ``memory://`` bucket names, and the private stores (while they are alive).
_buckets: dict[str, MemoryStore] = {}
_private: weakref.WeakValueDictionary[str, MemoryStore] = weakref.WeakValueDictionary()
_buckets_lock = threading.Lock()


def _md5(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"an object key is a non-empty string, not {key!r}")


@dataclass
class _Object:
    data: bytes
    etag: str
    metadata: dict[str, str]
    last_modified: datetime
    settings: ObjectSettings = field(default_factory=ObjectSettings)

    def info(self, key: str) -> ObjectInfo:
        # Tags are read with get_tags, as on S3 and OSS.
        shown = ObjectSettings(
            self.settings.content_type,
            self.settings.content_disposition,
            self.settings.cache_control,
            self.settings.storage_class,
            sse=self.settings.sse,
        )
        return ObjectInfo(key, len(self.data), self.etag, dict(self.metadata), self.last_modified, shown)


@dataclass
class _Part:
    data: bytes
    etag: str
    headers: dict[str, str]


@dataclass
class _Upload:
    key: str
    metadata: dict[str, str]
    initiated: datetime
    parts: dict[int, _Part] = field(default_factory=dict)
    settings: ObjectSettings = field(default_factory=ObjectSettings)


class MemoryStore(Store):
    """An in-memory object store (``memory://BUCKET/KEY``). Thread-safe.

    ``MemoryStore()`` is a fresh private store; :meth:`shared` and :meth:`from_url` return the process-wide
    store of a bucket name. :attr:`requests` logs every call as an ``(operation, key)`` tuple, where the
    operation is the method name and the key is the object key it acted on (the destination key for
    ``copy``, the prefix for ``list`` and ``list_multipart_uploads``).
    """

    scheme: ClassVar[str] = "memory"
    #: The format cse writes to this store unless told otherwise.
    default_format: ClassVar[str] = "cse-v1"
    #: Objects live in this process only.
    process_local: ClassVar[bool] = True
    #: Kept and reported as given, like S3's SSE-S3 and SSE-KMS (the bytes are not encrypted again).
    sse_modes: ClassVar[frozenset[str]] = frozenset({"aes256", "kms"})

    def __init__(self) -> None:
        """A new, empty, private store with a generated bucket name (``private-<hex>``)."""
        self._init(_PRIVATE_PREFIX + secrets.token_hex(8))
        with _buckets_lock:
            _private[self.bucket] = self

    def __repr__(self) -> str:
        return f"MemoryStore(bucket={self.bucket!r})"

    def _init(self, bucket: str) -> None:
        #: The bucket name this store answers to in ``memory://`` URLs.
        self.bucket = bucket
        #: Every call so far, as ``(operation, key)``; tests may inspect and ``clear()`` it.
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._objects: dict[str, _Object] = {}
        self._uploads: dict[str, _Upload] = {}
        self._bucket_sse: ServerSideEncryption | None = None

    # ------------------------------------------------------------------------------------ bucket registry

    @classmethod
    def shared(cls, bucket: str) -> MemoryStore:
        """The process-wide store of ``bucket``, created empty on first use."""
        if not bucket or "/" in bucket:
            raise ConfigurationError(f"a memory bucket name is non-empty and has no '/': {bucket!r}")
        with _buckets_lock:
            found = _buckets.get(bucket) or _private.get(bucket)
            if found is None:
                found = cls.__new__(cls)
                found._init(bucket)
                _buckets[bucket] = found
            return found

    @classmethod
    def reset_shared(cls, bucket: str | None = None) -> None:
        """Forget the process-wide store of ``bucket`` (of every bucket if ``None``). For test isolation."""
        with _buckets_lock:
            if bucket is None:
                _buckets.clear()
            else:
                _buckets.pop(bucket, None)

    @classmethod
    def from_url(cls, url: str) -> tuple[Store, str]:
        """``memory://BUCKET/KEY`` -> (the store of ``BUCKET``, ``"KEY"``). The key is taken verbatim."""
        if not url.lower().startswith(_PREFIX):
            raise ConfigurationError(f"{url!r} is not a memory:// URL (expected memory://BUCKET/KEY)")
        rest = url[len(_PREFIX) :]
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise ConfigurationError(f"{url!r} names no bucket (expected memory://BUCKET/KEY)")
        return cls.shared(bucket), key

    def url(self, key: str) -> str:
        """``memory://BUCKET/KEY``."""
        return f"{_PREFIX}{self.bucket}/{key}"

    def _log(self, operation: str, key: str) -> None:
        with self._lock:
            self.requests.append((operation, key))

    # -------------------------------------------------------------------------------------------- objects

    def _object(self, key: str) -> _Object:
        obj = self._objects.get(key)
        if obj is None:
            raise ObjectNotFoundError(f"no such object: {self.url(key)}")
        return obj

    def _settings(self, settings: ObjectSettings | None) -> ObjectSettings:
        """What an object written with ``settings`` keeps: the bucket default SSE when it names none."""
        settings = settings or ObjectSettings()
        self.check_settings(settings)
        if settings.sse is None and self._bucket_sse is not None:
            settings = ObjectSettings(sse=self._bucket_sse).over(settings)
        return settings

    def put(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        metadata: Mapping[str, str],
        settings: ObjectSettings | None = None,
    ) -> ObjectInfo:
        """Store a copy of ``data`` under ``key`` with ``metadata`` and ``settings``, replacing any object
        there."""
        self._log("put", key)
        _check_key(key)
        meta = clean_metadata(metadata)
        kept = self._settings(settings)
        body = bytes(data)
        obj = _Object(body, _md5(body).hex(), meta, _now(), kept)
        with self._lock:
            self._objects[key] = obj
        return obj.info(key)

    def get(self, key: str, start: int = 0, end: int | None = None) -> GetResult:
        """Read bytes ``start..end`` (inclusive) of ``key``; see :meth:`Store.get`."""
        self._log("get", key)
        with self._lock:
            obj = self._object(key)
        first, last = resolve_get_range(len(obj.data), start, end, self.url(key))
        body = io.BytesIO(memoryview(obj.data)[first : last + 1])
        return GetResult(obj.info(key), body, first, last)

    def head(self, key: str) -> ObjectInfo:
        """The object's size, ETag and metadata."""
        self._log("head", key)
        with self._lock:
            return self._object(key).info(key)

    def delete(self, key: str) -> None:
        """Delete ``key``; absent keys are not an error."""
        self._log("delete", key)
        with self._lock:
            self._objects.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The objects whose key starts with ``prefix``, in key order, with their metadata.

        The listing is a snapshot taken when iteration starts.
        """
        self._log("list", prefix)
        with self._lock:
            found = [obj.info(key) for key, obj in self._objects.items() if key.startswith(prefix)]
        found.sort(key=lambda info: info.key)
        return iter(found)

    def copy(
        self,
        src_key: str,
        dst_key: str,
        metadata: Mapping[str, str] | None = None,
        settings: ObjectSettings | None = None,
    ) -> ObjectInfo:
        """Copy ``src_key`` to ``dst_key`` without moving the body; replace the metadata if given. The
        source's settings are kept, except those set in ``settings``."""
        self._log("copy", dst_key)
        _check_key(dst_key)
        meta = clean_metadata(metadata) if metadata is not None else None
        if settings:
            self.check_settings(settings)
        with self._lock:
            src = self._object(src_key)
            kept = (settings or ObjectSettings()).over(src.settings)
            obj = _Object(src.data, src.etag, dict(src.metadata) if meta is None else meta, _now(), kept)
            self._objects[dst_key] = obj
        return obj.info(dst_key)

    def get_tags(self, key: str) -> dict[str, str]:
        """The tags the object was written with."""
        self._log("get_tags", key)
        with self._lock:
            return dict(self._object(key).settings.tags)

    def get_bucket_encryption(self) -> ServerSideEncryption | None:
        """The default server-side encryption set by :meth:`put_bucket_encryption`, if any."""
        return self._bucket_sse

    def put_bucket_encryption(self, sse: ServerSideEncryption) -> None:
        """Make ``sse`` the default of objects written without server-side encryption of their own."""
        self.check_settings(ObjectSettings(sse=sse))
        self._bucket_sse = sse

    def delete_bucket_encryption(self) -> None:
        """Remove the bucket default."""
        self._bucket_sse = None

    # ------------------------------------------------------------------------------------------ multipart

    def _upload(self, key: str, upload_id: str) -> _Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise ObjectNotFoundError(f"no multipart upload {upload_id!r} of {self.url(key)}")
        return upload

    def create_multipart(
        self, key: str, metadata: Mapping[str, str], settings: ObjectSettings | None = None
    ) -> str:
        """Start a multipart upload of ``key``; the object appears only on completion."""
        self._log("create_multipart", key)
        _check_key(key)
        meta = clean_metadata(metadata)
        kept = self._settings(settings)
        upload_id = secrets.token_hex(16)
        with self._lock:
            self._uploads[upload_id] = _Upload(key, meta, _now(), settings=kept)
        return upload_id

    def upload_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        data: bytes | bytearray | memoryview,
        headers: Mapping[str, str] | None = None,
    ) -> PartInfo:
        """Store a copy of part ``part_number`` (1..:attr:`max_parts`), replacing an earlier upload of it."""
        self._log("upload_part", key)
        if not 1 <= part_number <= self.max_parts:
            raise ConfigurationError(f"part numbers run from 1 to {self.max_parts}, not {part_number}")
        body = bytes(data)
        part = _Part(body, _md5(body).hex(), dict(headers or {}))
        with self._lock:
            self._upload(key, upload_id).parts[part_number] = part
        return PartInfo(part_number, part.etag, len(body))

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[PartInfo]) -> ObjectInfo:
        """Assemble ``parts`` into ``key``; each part's ETag must match what was uploaded."""
        self._log("complete_multipart", key)
        with self._lock:
            upload = self._upload(key, upload_id)
            chosen = _check_parts(self, key, upload.parts, parts)
            body = b"".join(part.data for part in chosen)
            digests = b"".join(bytes.fromhex(part.etag) for part in chosen)
            etag = f"{_md5(digests).hex()}-{len(chosen)}"
            obj = _Object(body, etag, dict(upload.metadata), _now(), upload.settings)
            self._objects[key] = obj
            del self._uploads[upload_id]
        return obj.info(key)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; unknown uploads are not an error."""
        self._log("abort_multipart", key)
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is not None and upload.key == key:
                del self._uploads[upload_id]

    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:
        """The parts uploaded so far, in part-number order."""
        self._log("list_parts", key)
        with self._lock:
            upload = self._upload(key, upload_id)
            return [
                PartInfo(number, part.etag, len(part.data)) for number, part in sorted(upload.parts.items())
            ]

    def list_multipart_uploads(self, prefix: str = "") -> builtins.list[UploadInfo]:
        """Unfinished uploads whose key starts with ``prefix``, by key then start time."""
        self._log("list_multipart_uploads", prefix)
        with self._lock:
            found = [
                UploadInfo(upload.key, upload_id, upload.initiated, dict(upload.metadata))
                for upload_id, upload in self._uploads.items()
                if upload.key.startswith(prefix)
            ]
        found.sort(key=lambda u: (u.key, u.initiated or _now(), u.upload_id))
        return found


def _check_parts(
    store: Store, key: str, uploaded: Mapping[int, _Part], parts: Sequence[PartInfo]
) -> list[_Part]:
    """The uploaded parts ``parts`` names, in part-number order, after S3's checks."""
    if not parts:
        raise StoreError(f"completing the multipart upload of {store.url(key)} needs at least one part")
    ordered = sorted(parts, key=lambda p: p.part_number)
    chosen: list[_Part] = []
    for i, want in enumerate(ordered):
        if i and ordered[i - 1].part_number == want.part_number:
            raise StoreError(f"part {want.part_number} is listed twice in the completion of {store.url(key)}")
        have = uploaded.get(want.part_number)
        if have is None:
            raise StoreError(f"part {want.part_number} of {store.url(key)} was never uploaded")
        if want.etag.strip('"').lower() != have.etag:
            raise StoreError(
                f"part {want.part_number} of {store.url(key)} has ETag {have.etag}, not {want.etag} "
                "(it was re-uploaded since; list the parts again)"
            )
        if i + 1 < len(ordered) and len(have.data) < store.min_part_size:
            raise StoreError(
                f"part {want.part_number} of {store.url(key)} is {len(have.data)} bytes; every part but "
                f"the last needs at least {store.min_part_size}"
            )
        chosen.append(have)
    return chosen
