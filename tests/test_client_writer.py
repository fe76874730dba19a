"""EncryptionClient.open_writer (EncryptingWriter) and DecryptingReader.read_at."""

from __future__ import annotations

import gc
import hashlib
import os
import tracemalloc

import pytest

from cse.client import EncryptingWriter, EncryptionClient
from cse.config import TransferConfig
from cse.exceptions import ConfigurationError, MultipartError, StoreError
from cse.stores.file import FileStore
from cse.stores.memory import MemoryStore


class Boom(Exception):
    pass


def test_writer_round_trip_single_request(client: EncryptionClient, memory_store: MemoryStore) -> None:
    with client.open_writer((memory_store, "a")) as w:
        assert isinstance(w, EncryptingWriter) and w.writable()
        w.write(b"hello, ")
        w.write(bytearray(b"world"))
        w.write(memoryview(b"!"))
        assert w.tell() == 13
    assert w.result is not None and w.result.parts == 0 and w.result.size == 13
    assert client.get((memory_store, "a")) == b"hello, world!"


def test_writer_goes_multipart_and_appears_on_close(
    key_a: str, small_config: TransferConfig, memory_store: MemoryStore
) -> None:
    client = EncryptionClient(key_a, config=small_config, encryption_context={"team": "t"})
    data = os.urandom(400_000)
    w = client.open_writer((memory_store, "big"), encryption_context={"run": "1"})
    for i in range(0, len(data), 9999):
        w.write(data[i : i + 9999])
    assert memory_store.list_multipart_uploads() or not list(memory_store.list(""))
    assert list(memory_store.list("")) == []
    w.close()
    assert w.result is not None and w.result.parts > 5
    assert client.get((memory_store, "big"), encryption_context={"team": "t", "run": "1"}) == data
    assert memory_store.list_multipart_uploads() == []
    w.close()  # closing twice is harmless
    with pytest.raises(ValueError):
        w.write(b"more")


def test_writer_memory_is_bounded(
    key_a: str, small_config: TransferConfig, tmp_path: os.PathLike[str]
) -> None:
    client = EncryptionClient(key_a, config=small_config)
    store = FileStore(tmp_path)
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        with client.open_writer((store, "stream.bin")) as w:
            for _ in range(128):  # 8 MiB in 64 KiB writes
                chunk = os.urandom(64 * 1024)
                digest.update(chunk)
                w.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, peak
    got = hashlib.sha256(client.get((store, "stream.bin"))).hexdigest()
    assert got == digest.hexdigest()


@pytest.mark.parametrize("size", [100, 300_000])
def test_exception_in_with_block_aborts(
    key_a: str, small_config: TransferConfig, memory_store: MemoryStore, size: int
) -> None:
    client = EncryptionClient(key_a, config=small_config)

    def write() -> None:
        with client.open_writer((memory_store, "x")) as w:
            w.write(os.urandom(size))
            raise Boom

    with pytest.raises(Boom):
        write()
    assert list(memory_store.list("")) == [] and memory_store.list_multipart_uploads() == []


def test_abort_and_garbage_collection_leave_nothing(
    key_a: str, small_config: TransferConfig, memory_store: MemoryStore
) -> None:
    client = EncryptionClient(key_a, config=small_config)
    w = client.open_writer((memory_store, "x"))
    w.write(os.urandom(200_000))
    w.abort()
    w.abort()
    assert list(memory_store.list("")) == [] and memory_store.list_multipart_uploads() == []
    w2 = client.open_writer((memory_store, "y"))
    w2.write(os.urandom(200_000))
    del w2
    gc.collect()
    assert list(memory_store.list("")) == [] and memory_store.list_multipart_uploads() == []


def test_upload_errors_surface_in_write_or_close(key_a: str, small_config: TransferConfig) -> None:
    class Failing(MemoryStore):
        def upload_part(self, *args: object, **kwargs: object) -> object:
            raise StoreError("the disk is full")

    store = Failing()
    client = EncryptionClient(key_a, config=TransferConfig(**{**small_config.__dict__, "part_attempts": 1}))
    w = client.open_writer((store, "x"))
    with pytest.raises(MultipartError, match="the disk is full"):  # noqa: PT012
        for _ in range(200):
            w.write(os.urandom(10_000))
        w.close()
    assert store.list_multipart_uploads() == [] and list(store.list("")) == []


def test_bad_format_fails_when_opening(client: EncryptionClient, memory_store: MemoryStore) -> None:
    with pytest.raises(ConfigurationError):
        client.open_writer((memory_store, "x"), format="no-such-format")


def test_read_at_is_ranged_verified_and_leaves_the_position(
    key_a: str, small_config: TransferConfig, memory_store: MemoryStore
) -> None:
    client = EncryptionClient(key_a, config=small_config)
    data = os.urandom(50_000)
    client.put((memory_store, "r"), data)
    with client.open((memory_store, "r")) as reader:
        reader.seek(10)
        memory_store.requests.clear()
        assert reader.read_at(20_000, 3000) == data[20_000:23_000]
        assert reader.read_at(49_990, 100) == data[49_990:]
        assert reader.read_at(60_000, 5) == b""
        assert reader.tell() == 10 and reader.read(5) == data[10:15]
        assert [op for op, _ in memory_store.requests].count("get") == 3
        with pytest.raises(ValueError):
            reader.read_at(-1, 5)
