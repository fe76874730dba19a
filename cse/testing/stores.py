"""The :class:`~cse.stores.base.Store` conformance suite.

Subclass :class:`StoreConformance` under a name pytest collects and give it a ``store`` fixture::

    import pytest
    from cse.testing.stores import StoreConformance

    class TestMyStore(StoreConformance):
        md5_etags = True  # if the store's ETags are S3-style MD5 digests

        @pytest.fixture
        def store(self):
            store = MyStore(...)
            yield store
            store.close()

Every test works below a fresh prefix (the ``prefix`` fixture, ``cse-conformance/<random>/``) and removes
what it wrote, so the suite can run against a real, shared bucket. Multipart tests use parts of
``max(store.min_part_size, 1024)`` bytes, so a store with S3's 5 MiB minimum moves a few tens of MiB.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import ClassVar

import pytest

from cse.exceptions import ConfigurationError, InvalidRangeError, ObjectNotFoundError, StoreError
from cse.stores.base import SSE_MODES, ObjectInfo, ObjectSettings, PartInfo, ServerSideEncryption, Store

__all__ = ["StoreConformance"]


def _data(size: int, seed: int = 0) -> bytes:
    """``size`` reproducible pseudo-random bytes (every byte value occurs in larger samples)."""
    return random.Random(seed).randbytes(size)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _norm_etag(etag: str) -> str:
    return etag.strip('"').lower()


def _keys(infos: Iterator[ObjectInfo]) -> list[str]:
    return [info.key for info in infos]


#: The content settings and tags the settings tests write (tag values within S3's and OSS's alphabets).
_SETTINGS = ObjectSettings(
    content_type="text/plain; charset=utf-8",
    content_disposition='attachment; filename="report.txt"',
    cache_control="max-age=60",
    tags={"project": "cse", "stage": "test 1"},
)


def _content(settings: ObjectSettings) -> tuple[str | None, str | None, str | None]:
    return settings.content_type, settings.content_disposition, settings.cache_control


class StoreConformance:
    """Tests every :class:`~cse.stores.base.Store` must pass. Subclass it and define a ``store`` fixture."""

    #: Whether the store's ETags are S3-style MD5 digests (``md5`` hex, or ``md5(md5s)-N`` for multipart),
    #: to check them exactly. Leave False for stores with opaque ETags.
    md5_etags: ClassVar[bool] = False
    #: Threads used by the concurrency tests.
    threads: ClassVar[int] = 8
    #: Whether the store keeps :class:`~cse.stores.base.ObjectSettings` (content type, disposition, cache
    #: control, tags). Leave True unless the store predates settings.
    object_settings: ClassVar[bool] = True
    #: A storage class the store keeps, by the store's own name (``"STANDARD_IA"``, ``"IA"``), for the
    #: storage class tests; ``None`` skips them.
    storage_class: ClassVar[str | None] = None

    # ------------------------------------------------------------------------------------------- fixtures

    @pytest.fixture
    def store(self) -> Store:
        """The store under test. Override this fixture in your subclass."""
        raise NotImplementedError("subclass StoreConformance and define a `store` fixture (your Store)")

    @pytest.fixture
    def prefix(self, store: Store) -> Iterator[str]:
        """A fresh key prefix for one test; what is below it is deleted (uploads aborted) afterwards."""
        value = f"cse-conformance/{uuid.uuid4().hex}/"
        yield value
        for upload in store.list_multipart_uploads(value):
            with contextlib.suppress(StoreError):
                store.abort_multipart(upload.key, upload.upload_id)
        for info in list(store.list(value)):
            with contextlib.suppress(StoreError):
                store.delete(info.key)

    @staticmethod
    def part_size(store: Store) -> int:
        """The size of the (non-last) parts the multipart tests upload."""
        return max(store.min_part_size, 1024)

    # --------------------------------------------------------------------------------- put / get / head

    def test_put_then_get_returns_the_bytes(self, store: Store, prefix: str) -> None:
        """What goes in comes out, with the info ``put`` returned."""
        key = prefix + "object.bin"
        data = _data(100_000, 1)
        info = store.put(key, data, {})
        assert info.key == key
        assert info.size == len(data)
        with store.get(key) as result:
            assert result.body.read() == data
            assert (result.start, result.end) == (0, len(data) - 1)
            assert result.info.size == len(data)
        assert store.read_all(key) == data

    def test_put_accepts_bytearray_and_memoryview(self, store: Store, prefix: str) -> None:
        """``put`` takes any contiguous bytes-like object and does not keep a reference to a mutable one."""
        data = bytearray(_data(5000, 2))
        store.put(prefix + "ba", data, {})
        store.put(prefix + "mv", memoryview(data)[100:200], {})
        expected = bytes(data)
        data[:] = b"\0" * len(data)  # the caller reuses its buffer
        assert store.read_all(prefix + "ba") == expected
        assert store.read_all(prefix + "mv") == expected[100:200]

    def test_put_replaces(self, store: Store, prefix: str) -> None:
        """A second put of a key replaces the bytes and the metadata."""
        key = prefix + "replaced"
        store.put(key, b"first version, longer", {"v": "1"})
        store.put(key, b"second", {"w": "2"})
        assert store.read_all(key) == b"second"
        info = store.head(key)
        assert info.size == len(b"second")
        if store.supports_metadata:
            assert dict(info.metadata) == {"w": "2"}

    def test_head_matches_put(self, store: Store, prefix: str) -> None:
        """``head`` reports the size and the ETag ``put`` returned."""
        key = prefix + "headed"
        data = _data(4321, 3)
        put = store.put(key, data, {"a": "b"})
        info = store.head(key)
        assert info.key == key
        assert info.size == len(data)
        assert info.etag
        assert _norm_etag(info.etag) == _norm_etag(put.etag)
        assert info.last_modified is None or isinstance(info.last_modified, datetime)
        if self.md5_etags:
            assert _norm_etag(info.etag) == _md5(data)

    def test_missing_object(self, store: Store, prefix: str) -> None:
        """``head`` and ``get`` of an absent key raise ObjectNotFoundError (a FileNotFoundError) naming it."""
        key = prefix + "missing-object"
        with pytest.raises(ObjectNotFoundError) as caught:
            store.head(key)
        assert isinstance(caught.value, FileNotFoundError)
        assert "missing-object" in str(caught.value)
        with pytest.raises(ObjectNotFoundError, match="missing-object"):
            store.get(key)
        with pytest.raises(ObjectNotFoundError):
            store.get(key, 10, 20)

    def test_binary_and_unicode_keys(self, store: Store, prefix: str) -> None:
        """Keys with spaces and non-ASCII characters work, in listing and in URLs too."""
        key = prefix + "dir/with space/ünïcödé-ключ.bin"
        data = bytes(range(256)) * 4
        store.put(key, data, {})
        assert store.read_all(key) == data
        assert _keys(store.list(prefix + "dir/")) == [key]
        other, other_key = type(store).from_url(store.url(key))
        assert other.read_all(other_key) == data

    # ------------------------------------------------------------------------------------------ metadata

    def test_metadata_round_trip(self, store: Store, prefix: str) -> None:
        """Lower-case keys and string values come back exactly, on head, get and copy."""
        if not store.supports_metadata:
            pytest.skip("the store does not keep user metadata")
        wrapped = [{"alg": "RSA-OAEP-SHA1", "key": _data(720, 4).hex()}]
        long_value = json.dumps({"wrapped": wrapped, "context": {"purpose": "test"}})
        assert 1400 < len(long_value) < 1700
        metadata = {"x-cse-simple": "value", "x-cse-json": long_value, "x-cse-empty-ish": "-", "n": "123"}
        key = prefix + "with-metadata"
        store.put(key, b"payload", metadata)
        assert dict(store.head(key).metadata) == metadata
        with store.get(key) as result:
            assert dict(result.info.metadata) == metadata
            assert result.body.read() == b"payload"
        store.copy(key, key + "-copy")
        assert dict(store.head(key + "-copy").metadata) == metadata

    def test_empty_metadata(self, store: Store, prefix: str) -> None:
        """An object stored without metadata has none."""
        key = prefix + "no-metadata"
        store.put(key, b"x", {})
        assert dict(store.head(key).metadata) == {}

    # ---------------------------------------------------------------------------------------- byte ranges

    @pytest.mark.parametrize(
        ("start", "end", "first", "last"),
        [
            (0, None, 0, 99),
            (10, None, 10, 99),
            (10, 19, 10, 19),
            (0, 0, 0, 0),
            (50, 50, 50, 50),
            (99, None, 99, 99),
            (99, 99, 99, 99),
            (0, 99, 0, 99),
            (90, 1000, 90, 99),
            (0, 100, 0, 99),
        ],
    )
    def test_ranged_get(
        self, store: Store, prefix: str, start: int, end: int | None, first: int, last: int
    ) -> None:
        """``get(key, start, end)`` returns bytes start..end inclusive; an end past the object is clamped."""
        key = prefix + "ranged"
        data = _data(100, 5)
        store.put(key, data, {})
        with store.get(key, start, end) as result:
            assert (result.start, result.end) == (first, last)
            assert result.info.size == 100
            assert result.body.read() == data[first : last + 1]
            assert result.body.read() == b""

    @pytest.mark.parametrize(("start", "end"), [(100, None), (100, 200), (150, None), (1000, 2000)])
    def test_range_past_the_end(self, store: Store, prefix: str, start: int, end: int | None) -> None:
        """A range starting at or past the end of a non-empty object raises InvalidRangeError."""
        key = prefix + "short"
        store.put(key, _data(100, 6), {})
        with pytest.raises(InvalidRangeError):
            store.get(key, start, end)

    def test_body_reads_in_chunks_and_stops_at_end(self, store: Store, prefix: str) -> None:
        """The body can be read in small pieces and never yields bytes past the range."""
        key = prefix + "chunked"
        data = _data(300_000, 7)
        store.put(key, data, {})
        with store.get(key, 1000, 200_000) as result:
            pieces = []
            while chunk := result.body.read(7777):
                assert len(chunk) <= 7777
                pieces.append(chunk)
            assert b"".join(pieces) == data[1000:200_001]

    def test_empty_object(self, store: Store, prefix: str) -> None:
        """An empty object stores, heads, lists and reads back as no bytes (end = start - 1)."""
        key = prefix + "empty"
        info = store.put(key, b"", {"k": "v"})
        assert info.size == 0
        assert store.head(key).size == 0
        if self.md5_etags:
            assert _norm_etag(store.head(key).etag) == _md5(b"")
        with store.get(key) as result:
            assert result.body.read() == b""
            assert result.start == 0
            assert result.end == result.start - 1
            assert result.info.size == 0
        assert store.read_all(key) == b""
        assert [(i.key, i.size) for i in store.list(prefix)] == [(key, 0)]

    # ------------------------------------------------------------------------------------ delete and list

    def test_delete(self, store: Store, prefix: str) -> None:
        """Delete removes only the key; deleting an absent key (again, or never stored) is not an error."""
        store.put(prefix + "a", b"1", {})
        store.put(prefix + "ab", b"2", {})
        store.delete(prefix + "a")
        with pytest.raises(ObjectNotFoundError):
            store.head(prefix + "a")
        assert store.read_all(prefix + "ab") == b"2"
        store.delete(prefix + "a")
        store.delete(prefix + "never-stored")
        store.delete(prefix + "never/stored/deeper")
        assert _keys(store.list(prefix)) == [prefix + "ab"]

    def test_list_order_and_prefix(self, store: Store, prefix: str) -> None:
        """``list`` yields keys in (code point) order, filtered by plain string prefix, not by folder."""
        names = ["x/a", "x/ab", "x/b-d", "x/b/c", "x/b/c2", "y", "x/A", "x/b/0/z"]
        shuffled = names[:]
        random.Random(8).shuffle(shuffled)
        for i, name in enumerate(shuffled):
            store.put(prefix + name, b"z" * (i + 1), {})
        expected = sorted(prefix + name for name in names)
        infos = list(store.list(prefix))
        assert [i.key for i in infos] == expected
        sizes = {prefix + name: i + 1 for i, name in enumerate(shuffled)}
        assert all(info.size == sizes[info.key] for info in infos)
        assert _keys(store.list(prefix + "x/a")) == [prefix + "x/a", prefix + "x/ab"]
        assert _keys(store.list(prefix + "x/b")) == [
            prefix + "x/b-d",
            prefix + "x/b/0/z",
            prefix + "x/b/c",
            prefix + "x/b/c2",
        ]
        assert _keys(store.list(prefix + "x/b/")) == [prefix + "x/b/0/z", prefix + "x/b/c", prefix + "x/b/c2"]
        assert _keys(store.list(prefix + "x/b/c")) == [prefix + "x/b/c", prefix + "x/b/c2"]
        assert _keys(store.list(prefix + "y")) == [prefix + "y"]
        assert _keys(store.list(prefix + "nothing-here")) == []
        assert _keys(store.list(prefix + "x/b/c2/")) == []

    def test_list_empty(self, store: Store, prefix: str) -> None:
        """Listing a prefix with no objects yields nothing."""
        assert list(store.list(prefix)) == []

    # ----------------------------------------------------------------------------------------------- copy

    def test_copy_keeps_metadata(self, store: Store, prefix: str) -> None:
        """Without ``metadata``, a copy has the source's bytes and metadata; the source is unchanged."""
        data = _data(10_000, 9)
        meta = {"x-a": "1", "x-b": "two"}
        store.put(prefix + "src", data, meta)
        info = store.copy(prefix + "src", prefix + "dst")
        assert info.key == prefix + "dst"
        assert info.size == len(data)
        assert store.read_all(prefix + "dst") == data
        assert store.read_all(prefix + "src") == data
        if store.supports_metadata:
            assert dict(store.head(prefix + "dst").metadata) == meta
            assert dict(store.head(prefix + "src").metadata) == meta

    def test_copy_replaces_metadata(self, store: Store, prefix: str) -> None:
        """With ``metadata``, the copy's metadata is exactly that (even ``{}``); the source keeps its own."""
        data = _data(777, 10)
        store.put(prefix + "src", data, {"old": "1", "keep": "no"})
        info = store.copy(prefix + "src", prefix + "dst", {"new": "2"})
        assert info.size == len(data)
        store.copy(prefix + "src", prefix + "bare", {})
        assert store.read_all(prefix + "dst") == data
        assert store.read_all(prefix + "bare") == data
        if store.supports_metadata:
            assert dict(store.head(prefix + "dst").metadata) == {"new": "2"}
            assert dict(store.head(prefix + "bare").metadata) == {}
            assert dict(store.head(prefix + "src").metadata) == {"old": "1", "keep": "no"}

    def test_copy_onto_itself_replaces_metadata(self, store: Store, prefix: str) -> None:
        """Copying a key onto itself with new metadata (how cse re-wraps keys) keeps the bytes."""
        key = prefix + "rewrapped"
        data = _data(5000, 11)
        store.put(key, data, {"wrapped": "old"})
        store.copy(key, key, {"wrapped": "new"})
        assert store.read_all(key) == data
        assert store.head(key).size == len(data)
        if store.supports_metadata:
            assert dict(store.head(key).metadata) == {"wrapped": "new"}

    def test_copy_overwrites_destination(self, store: Store, prefix: str) -> None:
        """A copy replaces an object already at the destination."""
        store.put(prefix + "src", b"new bytes", {})
        store.put(prefix + "dst", b"old bytes that are longer", {"stale": "1"})
        store.copy(prefix + "src", prefix + "dst")
        assert store.read_all(prefix + "dst") == b"new bytes"
        if store.supports_metadata:
            assert dict(store.head(prefix + "dst").metadata) == {}

    def test_copy_missing_source(self, store: Store, prefix: str) -> None:
        """Copying an absent key raises ObjectNotFoundError and creates nothing."""
        with pytest.raises(ObjectNotFoundError):
            store.copy(prefix + "absent", prefix + "dst")
        with pytest.raises(ObjectNotFoundError):
            store.head(prefix + "dst")

    # ------------------------------------------------------------------------------------------ multipart

    def _upload(self, store: Store, key: str, upload_id: str, number: int, data: bytes) -> PartInfo:
        part = store.upload_part(key, upload_id, number, data)
        assert part.part_number == number
        assert part.size == len(data)
        assert part.etag
        if self.md5_etags:
            assert _norm_etag(part.etag) == _md5(data)
        return part

    def test_multipart_out_of_order(self, store: Store, prefix: str) -> None:
        """Parts uploaded in any order assemble in part-number order; the object appears only on complete."""
        key = prefix + "multi/object"
        size = self.part_size(store)
        chunks = [_data(size, 20), _data(size, 21), _data(size // 3 + 1, 22)]
        meta = {"x-cse-envelope": json.dumps({"parts": 3})}
        upload_id = store.create_multipart(key, meta)
        assert isinstance(upload_id, str)
        assert upload_id
        parts = {n: self._upload(store, key, upload_id, n, chunks[n - 1]) for n in (3, 1, 2)}
        with pytest.raises(ObjectNotFoundError):
            store.head(key)
        assert _keys(store.list(prefix)) == []
        listed = store.list_parts(key, upload_id)
        assert [p.part_number for p in listed] == [1, 2, 3]
        assert [p.size for p in listed] == [len(c) for c in chunks]
        assert [_norm_etag(p.etag) for p in listed] == [_norm_etag(parts[n].etag) for n in (1, 2, 3)]
        info = store.complete_multipart(key, upload_id, [parts[1], parts[2], parts[3]])
        whole = b"".join(chunks)
        assert info.key == key
        assert info.size == len(whole)
        assert store.read_all(key) == whole
        head = store.head(key)
        assert head.size == len(whole)
        assert _norm_etag(head.etag) == _norm_etag(info.etag)
        if store.supports_metadata:
            assert dict(head.metadata) == meta
        if self.md5_etags:
            digests = b"".join(hashlib.md5(c, usedforsecurity=False).digest() for c in chunks)
            assert _norm_etag(head.etag) == f"{_md5(digests)}-3"
        assert [u.upload_id for u in store.list_multipart_uploads(prefix)] == []
        with pytest.raises(ObjectNotFoundError):
            store.list_parts(key, upload_id)
        with store.get(key, size - 5, size + 4) as result:
            assert result.body.read() == whole[size - 5 : size + 5]

    def test_multipart_reupload_replaces_part(self, store: Store, prefix: str) -> None:
        """Uploading a part number again replaces the part; list_parts and complete see the new one."""
        key = prefix + "reuploaded"
        size = self.part_size(store)
        first, second, tail = _data(size, 30), _data(size, 31), _data(10, 32)
        upload_id = store.create_multipart(key, {})
        self._upload(store, key, upload_id, 1, first)
        p1 = self._upload(store, key, upload_id, 1, second)
        p2 = self._upload(store, key, upload_id, 2, tail)
        listed = store.list_parts(key, upload_id)
        assert [(p.part_number, p.size, _norm_etag(p.etag)) for p in listed] == [
            (1, size, _norm_etag(p1.etag)),
            (2, 10, _norm_etag(p2.etag)),
        ]
        store.complete_multipart(key, upload_id, listed)
        assert store.read_all(key) == second + tail

    def test_multipart_single_small_part(self, store: Store, prefix: str) -> None:
        """One part smaller than ``min_part_size`` is a valid upload (the last part may be short)."""
        key = prefix + "single"
        upload_id = store.create_multipart(key, {"one": "part"})
        part = self._upload(store, key, upload_id, 1, b"tiny")
        info = store.complete_multipart(key, upload_id, [part])
        assert info.size == 4
        assert store.read_all(key) == b"tiny"
        if self.md5_etags:
            digest = hashlib.md5(b"tiny", usedforsecurity=False).digest()
            assert _norm_etag(store.head(key).etag) == f"{_md5(digest)}-1"

    def test_multipart_replaces_existing_object(self, store: Store, prefix: str) -> None:
        """Completing an upload replaces an object already at the key (which stays readable until then)."""
        key = prefix + "existing"
        store.put(key, b"old", {"old": "1"})
        upload_id = store.create_multipart(key, {"new": "1"})
        part = self._upload(store, key, upload_id, 1, b"new content")
        assert store.read_all(key) == b"old"
        store.complete_multipart(key, upload_id, [part])
        assert store.read_all(key) == b"new content"
        if store.supports_metadata:
            assert dict(store.head(key).metadata) == {"new": "1"}

    def test_abort_multipart(self, store: Store, prefix: str) -> None:
        """Abort frees the upload: it is no longer listed, its parts are gone and no object appears."""
        key = prefix + "aborted"
        upload_id = store.create_multipart(key, {})
        self._upload(store, key, upload_id, 1, _data(self.part_size(store), 40))
        assert [u.upload_id for u in store.list_multipart_uploads(prefix)] == [upload_id]
        store.abort_multipart(key, upload_id)
        assert store.list_multipart_uploads(prefix) == []
        with pytest.raises(ObjectNotFoundError):
            store.list_parts(key, upload_id)
        with pytest.raises(ObjectNotFoundError):
            store.upload_part(key, upload_id, 2, b"late")
        with pytest.raises(ObjectNotFoundError):
            store.head(key)
        assert list(store.list(prefix)) == []
        store.abort_multipart(key, upload_id)  # aborting twice is not an error

    def test_abort_unknown_upload(self, store: Store, prefix: str) -> None:
        """Aborting an upload that never existed is not an error."""
        store.abort_multipart(prefix + "nothing", "0" * 32)
        store.abort_multipart(prefix + "nothing", "no-such-upload")

    def test_unknown_upload(self, store: Store, prefix: str) -> None:
        """Parts of, and the parts list of, an unknown upload raise ObjectNotFoundError."""
        key = prefix + "unknown-upload"
        with pytest.raises(ObjectNotFoundError):
            store.upload_part(key, "0" * 32, 1, b"data")
        with pytest.raises(ObjectNotFoundError):
            store.list_parts(key, "0" * 32)
        with pytest.raises(ObjectNotFoundError):
            store.complete_multipart(key, "0" * 32, [PartInfo(1, _md5(b"data"), 4)])

    def test_bad_part_number(self, store: Store, prefix: str) -> None:
        """Part numbers outside 1..max_parts are refused."""
        key = prefix + "bad-part"
        upload_id = store.create_multipart(key, {})
        for number in (0, -1, store.max_parts + 1):
            with pytest.raises((ConfigurationError, StoreError)):
                store.upload_part(key, upload_id, number, b"x")
        store.abort_multipart(key, upload_id)

    def test_list_multipart_uploads(self, store: Store, prefix: str) -> None:
        """Unfinished uploads are listed by key prefix with the metadata given at creation."""
        meta_a = {"x-cse-a": "1", "x-cse-json": json.dumps({"k": "v" * 100})}
        meta_b = {"x-cse-b": "2"}
        id_a = store.create_multipart(prefix + "u/first", meta_a)
        id_b = store.create_multipart(prefix + "v/second", meta_b)
        id_c = store.create_multipart(prefix + "u/first", {})
        uploads = store.list_multipart_uploads(prefix)
        assert sorted((u.key, u.upload_id) for u in uploads) == sorted(
            [(prefix + "u/first", id_a), (prefix + "v/second", id_b), (prefix + "u/first", id_c)]
        )
        assert [u.key for u in uploads] == sorted(u.key for u in uploads)
        by_id = {u.upload_id: u for u in uploads}
        if store.supports_metadata:
            assert dict(by_id[id_a].metadata) == meta_a
            assert dict(by_id[id_b].metadata) == meta_b
            assert dict(by_id[id_c].metadata) == {}
        assert {u.upload_id for u in store.list_multipart_uploads(prefix + "u/")} == {id_a, id_c}
        assert {u.upload_id for u in store.list_multipart_uploads(prefix + "v")} == {id_b}
        assert store.list_multipart_uploads(prefix + "w") == []
        assert all(u.initiated is None or isinstance(u.initiated, datetime) for u in uploads)
        store.abort_multipart(prefix + "u/first", id_a)
        assert {u.upload_id for u in store.list_multipart_uploads(prefix)} == {id_b, id_c}

    # ---------------------------------------------------------------------------------------- concurrency

    def test_concurrent_part_uploads(self, store: Store, prefix: str) -> None:
        """Several threads uploading parts of one upload at once (as cse does) assemble correctly."""
        key = prefix + "concurrent"
        size = self.part_size(store)
        count = self.threads * 2
        chunks = [_data(size if n < count else size // 2 + 7, 100 + n) for n in range(1, count + 1)]
        upload_id = store.create_multipart(key, {"threads": str(self.threads)})
        barrier = threading.Barrier(self.threads)

        def upload(number: int) -> PartInfo:
            if number <= self.threads:
                barrier.wait(timeout=30)  # start the first wave together
            return store.upload_part(key, upload_id, number, chunks[number - 1])

        with ThreadPoolExecutor(self.threads) as pool:
            parts = list(pool.map(upload, range(count, 0, -1)))
        parts.sort(key=lambda p: p.part_number)
        assert [p.part_number for p in store.list_parts(key, upload_id)] == list(range(1, count + 1))
        info = store.complete_multipart(key, upload_id, parts)
        whole = b"".join(chunks)
        assert info.size == len(whole)
        assert store.read_all(key) == whole

    def test_concurrent_puts_and_gets(self, store: Store, prefix: str) -> None:
        """Threads writing and reading different keys at once do not disturb each other."""

        def work(n: int) -> bool:
            key = f"{prefix}threads/{n}"
            data = _data(1000 + n, 200 + n)
            store.put(key, data, {"n": str(n)})
            ok = store.read_all(key) == data and store.head(key).size == len(data)
            store.copy(key, key + ".copy")
            return ok and store.read_all(key + ".copy") == data

        with ThreadPoolExecutor(self.threads) as pool:
            assert all(pool.map(work, range(self.threads * 3)))
        assert len(list(store.list(prefix + "threads/"))) == self.threads * 6

    # ------------------------------------------------------------------------------------------- settings

    def _need_settings(self) -> None:
        if not self.object_settings:
            pytest.skip("the store keeps no object settings (object_settings = False)")

    @staticmethod
    def _sse_mode(store: Store) -> str:
        if not store.sse_modes:
            pytest.skip(f"{store.scheme}:// has no server-side encryption (sse_modes is empty)")
        return "aes256" if "aes256" in store.sse_modes else sorted(store.sse_modes)[0]

    def _multipart(
        self, store: Store, key: str, settings: ObjectSettings, data: bytes = b"multipart settings"
    ) -> ObjectInfo:
        upload_id = store.create_multipart(key, {"m": "1"}, settings)
        part = self._upload(store, key, upload_id, 1, data)
        return store.complete_multipart(key, upload_id, [part])

    def test_settings_put(self, store: Store, prefix: str) -> None:
        """Content type, disposition and cache control given to ``put`` are reported by ``head`` and
        ``get``; the tags by ``get_tags``."""
        self._need_settings()
        key = prefix + "settings.txt"
        store.put(key, b"settings", {"m": "1"}, _SETTINGS)
        assert _content(store.head(key).settings) == _content(_SETTINGS)
        with store.get(key) as result:
            assert _content(result.info.settings) == _content(_SETTINGS)
            assert result.body.read() == b"settings"
        assert store.get_tags(key) == dict(_SETTINGS.tags)
        assert not store.head(key).settings.tags  # tags are read with get_tags

    def test_settings_multipart(self, store: Store, prefix: str) -> None:
        """Settings given to ``create_multipart`` are the completed object's."""
        self._need_settings()
        key = prefix + "multipart-settings"
        self._multipart(store, key, _SETTINGS)
        assert _content(store.head(key).settings) == _content(_SETTINGS)
        assert store.get_tags(key) == dict(_SETTINGS.tags)

    @pytest.mark.parametrize("replace", [False, True], ids=["keep-metadata", "replace-metadata"])
    def test_copy_keeps_settings(self, store: Store, prefix: str, replace: bool) -> None:
        """A copy keeps the source's settings and tags, also when its metadata is replaced."""
        self._need_settings()
        store.put(prefix + "src", b"copied settings", {"old": "1"}, _SETTINGS)
        store.copy(prefix + "src", prefix + "dst", {"new": "2"} if replace else None)
        assert _content(store.head(prefix + "dst").settings) == _content(_SETTINGS)
        assert store.get_tags(prefix + "dst") == dict(_SETTINGS.tags)
        assert store.read_all(prefix + "dst") == b"copied settings"
        if store.supports_metadata:
            assert dict(store.head(prefix + "dst").metadata) == ({"new": "2"} if replace else {"old": "1"})

    def test_copy_replaces_given_settings(self, store: Store, prefix: str) -> None:
        """Settings given to ``copy`` replace the source's; the others are kept."""
        self._need_settings()
        store.put(prefix + "src", b"x", {}, _SETTINGS)
        store.copy(
            prefix + "src",
            prefix + "dst",
            {},
            ObjectSettings(content_type="application/json", tags={"k": "v"}),
        )
        settings = store.head(prefix + "dst").settings
        assert settings.content_type == "application/json"
        assert (settings.content_disposition, settings.cache_control) == _content(_SETTINGS)[1:]
        assert store.get_tags(prefix + "dst") == {"k": "v"}
        assert _content(store.head(prefix + "src").settings) == _content(_SETTINGS)

    def test_copy_onto_itself_keeps_settings(self, store: Store, prefix: str) -> None:
        """Re-wrapping (a copy onto itself with new metadata) keeps the settings and tags."""
        self._need_settings()
        key = prefix + "rewrapped"
        store.put(key, b"x", {"wrapped": "old"}, _SETTINGS)
        store.copy(key, key, {"wrapped": "new"})
        assert _content(store.head(key).settings) == _content(_SETTINGS)
        assert store.get_tags(key) == dict(_SETTINGS.tags)

    def test_sse_kept(self, store: Store, prefix: str) -> None:
        """Server-side encryption given to ``put`` and ``create_multipart`` is reported by ``head``, and
        kept by a copy with new metadata. Skipped for stores without server-side encryption."""
        mode = self._sse_mode(store)
        sse = ServerSideEncryption(mode)
        store.put(prefix + "put", b"encrypted at rest", {}, ObjectSettings(sse=sse))
        self._multipart(store, prefix + "multipart", ObjectSettings(sse=sse))
        store.copy(prefix + "put", prefix + "copy", {"new": "1"})
        for name in ("put", "multipart", "copy"):
            found = store.head(prefix + name).settings.sse
            assert found is not None and found.mode == mode, name

    def test_unsupported_sse_refused(self, store: Store, prefix: str) -> None:
        """A server-side encryption mode the store has not is refused with ConfigurationError before
        anything is written: no object, no upload."""
        missing = [mode for mode in SSE_MODES if mode not in store.sse_modes]
        if not missing:
            pytest.skip("the store has every server-side encryption mode")
        for mode in missing:
            settings = ObjectSettings(sse=ServerSideEncryption(mode))
            with pytest.raises(ConfigurationError, match=mode):
                store.check_settings(settings)
            with pytest.raises(ConfigurationError, match=mode):
                store.put(prefix + "refused", b"x", {}, settings)
            with pytest.raises(ConfigurationError, match=mode):
                store.create_multipart(prefix + "refused", {}, settings)
        with pytest.raises(ObjectNotFoundError):
            store.head(prefix + "refused")
        assert store.list_multipart_uploads(prefix) == []

    def test_storage_class_kept(self, store: Store, prefix: str) -> None:
        """The storage class given to ``put`` and ``create_multipart`` is reported by ``head`` and kept by
        a copy with new metadata. Skipped unless the subclass names a :attr:`storage_class`."""
        if self.storage_class is None:
            pytest.skip("no storage_class to test (set the class attribute)")
        settings = ObjectSettings(storage_class=self.storage_class)
        store.put(prefix + "put", b"x", {}, settings)
        self._multipart(store, prefix + "multipart", settings)
        store.copy(prefix + "put", prefix + "copy", {"new": "1"})
        for name in ("put", "multipart", "copy"):
            assert store.head(prefix + name).settings.storage_class == self.storage_class, name

    # ------------------------------------------------------------------------------------------------ URLs

    def test_url_round_trip(self, store: Store, prefix: str) -> None:
        """``from_url(store.url(key))`` opens a store that reads the same object under the same URL."""
        key = prefix + "nested/url-object"
        store.put(key, b"by url", {})
        url = store.url(key)
        assert url.startswith(f"{store.scheme}://")
        other, other_key = type(store).from_url(url)
        assert isinstance(other, type(store))
        assert other.url(other_key) == url
        assert other.read_all(other_key) == b"by url"
        root = store.url("")
        assert url.startswith(root)
