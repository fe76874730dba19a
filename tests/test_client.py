"""EncryptionClient behaviour over the built-in stores, for every content codec."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from cse.client import EncryptionClient
from cse.config import TransferConfig
from cse.exceptions import (
    AuthenticatedSizeLimitError,
    ConfigurationError,
    DecryptionError,
    InvalidRangeError,
    MultipartError,
    NoMatchingKeyError,
    StoreError,
)
from cse.stores.memory import MemoryStore
from tests import json_formats

json_formats.register()

FORMATS = ["cse-v1", "test-gcm", "test-committing", "test-ctr"]
SIZES = [0, 1, 999, 1000, 1001, 64 * 1024, 64 * 1024 + 1, 300_000]


def _bodies(data: bytes) -> list[object]:
    return [data, io.BytesIO(data), iter([data[i : i + 777] for i in range(0, len(data), 777)])]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", SIZES)
def test_round_trip_every_format_and_body_kind(
    fmt: str, size: int, key_a: str, small_config: TransferConfig
) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a, format=fmt, config=small_config)
    data = os.urandom(size)
    for i, body in enumerate(_bodies(data)):
        result = client.put((store, f"obj{i}"), body)  # type: ignore[arg-type]
        assert result.size == size
        assert result.envelope.format == fmt
        assert (result.parts > 0) == (size > small_config.multipart_threshold)
        assert client.get((store, f"obj{i}")) == data
        assert client.head((store, f"obj{i}")).size == size
        assert b"".join(client.iter_chunks((store, f"obj{i}"))) == data


@pytest.mark.parametrize("fmt", FORMATS)
def test_multipart_parts_are_equal_and_the_last_is_not_empty(fmt: str, key_a: str) -> None:
    store = MemoryStore()
    config = TransferConfig(multipart_threshold=0, part_size=16 * 1024, chunk_size=4096, segment_size=4096)
    client = EncryptionClient(key_a, format=fmt, config=config)
    data = os.urandom(5 * 16 * 1024)  # plaintext an exact multiple of the part size
    result = client.put((store, "k"), io.BytesIO(data))
    stored = store.head("k").size
    assert result.stored_size == stored
    assert result.parts == -(-stored // (16 * 1024))
    assert client.get((store, "k")) == data


def test_file_store_round_trip_and_download(tmp_path: Path, key_a: str, small_config: TransferConfig) -> None:
    client = EncryptionClient(key_a, config=small_config)
    data = os.urandom(200_000)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    url = f"file://{tmp_path}/vault/dir/out.bin"
    put = client.upload_file(src, url)
    assert put.parts > 0
    client.download_file(url, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data
    assert [p.name for p in tmp_path.iterdir() if "cse-partial" in p.name] == []


@pytest.mark.parametrize("fmt", ["cse-v1", "test-ctr"])
@pytest.mark.parametrize(
    ("rng", "expect"),
    [
        ("0-0", slice(0, 1)),
        ("999-1000", slice(999, 1001)),
        ("12345-", slice(12345, None)),
        ("-100", slice(-100, None)),
        ("-999999", slice(0, None)),
        ("29990-99999999", slice(29990, None)),
        ((5, 17), slice(5, 18)),
        ((None, 3), slice(-3, None)),
    ],
)
def test_ranges_follow_http_rules(
    fmt: str, rng: object, expect: slice, key_a: str, small_config: TransferConfig
) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a, format=fmt, config=small_config)
    data = os.urandom(30_000)
    client.put((store, "k"), data)
    assert client.get((store, "k"), range=rng) == data[expect]  # type: ignore[arg-type]


def test_range_past_the_end_and_empty_object_are_not_satisfiable(key_a: str) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a)
    client.put((store, "k"), b"abc")
    client.put((store, "empty"), b"")
    with pytest.raises(InvalidRangeError):
        client.get((store, "k"), range="3-")
    with pytest.raises(InvalidRangeError):
        client.get((store, "empty"), range="0-")
    with pytest.raises(ConfigurationError, match="A-B, A- or -N"):
        client.get((store, "k"), range="x-y")
    assert client.get((store, "empty")) == b""


@pytest.mark.parametrize("fmt", ["test-gcm", "test-committing"])
def test_ranged_read_of_whole_object_authenticated_format_needs_opt_in(fmt: str, key_a: str) -> None:
    store = MemoryStore()
    data = os.urandom(5000)
    EncryptionClient(key_a, format=fmt).put((store, "k"), data)
    with pytest.raises(ConfigurationError, match="allow_unauthenticated_ranges"):
        EncryptionClient(key_a).get((store, "k"), range="100-200")
    opted = EncryptionClient(key_a, allow_unauthenticated_ranges=True)
    for a, b in [(0, 0), (15, 16), (100, 200), (4000, 4999), (17, 4999)]:
        assert opted.get((store, "k"), range=(a, b)) == data[a : b + 1]


@pytest.mark.parametrize("fmt", ["test-gcm", "test-committing"])
def test_large_whole_object_authenticated_get_names_the_ways_out(
    fmt: str, key_a: str, tmp_path: Path
) -> None:
    store = MemoryStore()
    data = os.urandom(10_000)
    EncryptionClient(key_a, format=fmt).put((store, "k"), data)
    capped = EncryptionClient(key_a, config=TransferConfig(max_authenticated_buffer=4096))
    with pytest.raises(AuthenticatedSizeLimitError) as info:
        capped.get((store, "k"))
    assert "download_file" in str(info.value) and "delayed_authentication=True" in str(info.value)
    with pytest.raises(AuthenticatedSizeLimitError):
        capped.open((store, "k"))
    capped.download_file((store, "k"), tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    delayed = EncryptionClient(
        key_a, config=TransferConfig(max_authenticated_buffer=4096), delayed_authentication=True
    )
    assert delayed.get((store, "k")) == data
    reader = delayed.open((store, "k"))
    assert not reader.seekable()
    assert reader.read() == data


def _flip_stored_byte(store: MemoryStore, key: str, index: int) -> None:
    info = store.head(key)
    body = bytearray(store.read_all(key))
    body[index] ^= 0x01
    store.put(key, bytes(body), info.metadata)


@pytest.mark.parametrize("fmt", ["test-gcm", "test-committing", "cse-v1"])
def test_download_of_a_tampered_object_leaves_no_file(fmt: str, key_a: str, tmp_path: Path) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a, format=fmt, config=TransferConfig(segment_size=1024, chunk_size=4096))
    client.put((store, "k"), os.urandom(50_000))
    _flip_stored_byte(store, "k", 49_000)
    target = tmp_path / "out.bin"
    with pytest.raises(DecryptionError):
        client.download_file((store, "k"), target)
    assert list(tmp_path.iterdir()) == []


def test_delayed_authentication_still_fails_at_the_end(key_a: str) -> None:
    store = MemoryStore()
    EncryptionClient(key_a, format="test-gcm").put((store, "k"), os.urandom(5000))
    _flip_stored_byte(store, "k", 10)
    client = EncryptionClient(key_a, delayed_authentication=True)
    reader = client.open((store, "k"))
    with pytest.raises(DecryptionError):
        reader.read()


def test_open_is_seekable_and_reads_only_what_it_needs(key_a: str) -> None:
    store = MemoryStore()
    config = TransferConfig(segment_size=4096, chunk_size=4096)
    client = EncryptionClient(key_a, config=config)
    data = os.urandom(1_000_000)
    client.put((store, "k"), data)
    with client.open((store, "k")) as reader:
        assert reader.size == len(data)
        reader.seek(500_000)
        assert reader.read(10) == data[500_000:500_010]
        reader.seek(-5, io.SEEK_END)
        assert reader.read() == data[-5:]
        reader.seek(0)
        assert reader.read(4097) == data[:4097]
        assert reader.tell() == 4097


class FlakyStore(MemoryStore):
    """Fails chosen part uploads, to test retries and aborts."""

    def __init__(self, fail_parts: dict[int, int]) -> None:
        super().__init__()
        self.fail_parts = dict(fail_parts)
        self.sent: dict[int, list[bytes]] = {}

    def upload_part(self, key, upload_id, part_number, data, headers=None):  # type: ignore[no-untyped-def]
        self.sent.setdefault(part_number, []).append(bytes(data))
        if self.fail_parts.get(part_number, 0) > 0:
            self.fail_parts[part_number] -= 1
            raise StoreError(f"injected failure of part {part_number}")
        return super().upload_part(key, upload_id, part_number, data, headers)


@pytest.mark.parametrize("fmt", ["cse-v1", "test-gcm"])
def test_a_failed_part_is_retried_with_the_same_ciphertext(fmt: str, key_a: str) -> None:
    store = FlakyStore({2: 2})
    config = TransferConfig(multipart_threshold=0, part_size=16 * 1024, chunk_size=4096, part_attempts=3)
    client = EncryptionClient(key_a, format=fmt, config=config)
    data = os.urandom(100_000)
    client.put((store, "k"), data)
    assert len(store.sent[2]) == 3 and len(set(store.sent[2])) == 1
    assert client.get((store, "k")) == data


def test_a_part_that_keeps_failing_aborts_the_upload(key_a: str) -> None:
    store = FlakyStore({3: 99})
    config = TransferConfig(multipart_threshold=0, part_size=16 * 1024, chunk_size=4096, part_attempts=2)
    client = EncryptionClient(key_a, config=config)
    with pytest.raises(MultipartError, match="aborted"):
        client.put((store, "k"), os.urandom(100_000))
    assert store.list_multipart_uploads() == []
    assert list(store.list()) == []


def test_a_failing_source_aborts_the_upload(key_a: str) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a, config=TransferConfig(multipart_threshold=0, part_size=16 * 1024))

    def chunks():  # type: ignore[no-untyped-def]
        yield os.urandom(50_000)
        raise OSError("disk went away")

    with pytest.raises(OSError):
        client.put((store, "k"), chunks())
    assert store.list_multipart_uploads() == []
    assert list(store.list()) == []


def test_several_wrap_keys_each_decrypt(key_a: str, key_b: str) -> None:
    store = MemoryStore()
    writer = EncryptionClient([key_a], wrap_keys=[key_a, key_b])
    data = os.urandom(3000)
    result = writer.put((store, "k"), data)
    assert len(result.envelope.wrapped_keys) == 2
    assert EncryptionClient(key_a).get((store, "k")) == data
    assert EncryptionClient(key_b).get((store, "k")) == data


def test_a_wrong_key_names_what_the_object_asks_for(key_a: str, key_b: str) -> None:
    store = MemoryStore()
    EncryptionClient(key_a).put((store, "k"), b"secret")
    with pytest.raises(NoMatchingKeyError) as info:
        EncryptionClient(key_b).get((store, "k"))
    message = str(info.value)
    assert "RSA-OAEP-SHA256" in message and "key id" in message
    assert "secret" not in message


def test_rewrap_in_place_retires_the_old_key(key_a: str, key_b: str) -> None:
    store = MemoryStore()
    data = os.urandom(20_000)
    EncryptionClient(key_a).put((store, "k"), data)
    body_before = store.read_all("k")
    EncryptionClient(key_a).rewrap((store, "k"), to_keys=[key_b])
    assert store.read_all("k") == body_before
    assert EncryptionClient(key_b).get((store, "k")) == data
    with pytest.raises(DecryptionError):
        EncryptionClient(key_a).get((store, "k"))


def test_copy_within_a_store_is_server_side(key_a: str) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a)
    data = os.urandom(10_000)
    client.put((store, "a"), data)
    store.requests.clear()
    client.copy((store, "a"), (store, "b"))
    assert ("copy", "a") in store.requests or any(op == "copy" for op, _ in store.requests)
    assert not any(op in ("put", "upload_part") for op, _ in store.requests)
    assert client.get((store, "b")) == data


def test_copy_between_stores_reencrypts(key_a: str, key_b: str, tmp_path: Path) -> None:
    src = MemoryStore()
    client = EncryptionClient(key_a, format="test-gcm")
    data = os.urandom(70_000)
    client.put((src, "a"), data)
    dst_url = f"file://{tmp_path}/vault/a"
    result = EncryptionClient(key_a).copy((src, "a"), dst_url, to_keys=[key_b])
    assert result.envelope.format == "cse-v1"
    assert EncryptionClient(key_b).get(dst_url) == data


def test_copy_of_a_tampered_source_never_lands(key_a: str, tmp_path: Path) -> None:
    src = MemoryStore()
    data = os.urandom(200_000)
    EncryptionClient(key_a, format="test-gcm").put((src, "a"), data)
    _flip_stored_byte(src, "a", 150_000)
    config = TransferConfig(multipart_threshold=0, part_size=16 * 1024)
    dst = MemoryStore()
    with pytest.raises(DecryptionError):
        EncryptionClient(key_a, config=config).copy((src, "a"), (dst, "a"))
    assert list(dst.list()) == []
    assert dst.list_multipart_uploads() == []


def test_encryption_context_is_recorded_and_bound(key_a: str) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a, encryption_context={"tenant": "t1"})
    client.put((store, "k"), b"hello", encryption_context={"purpose": "test", "ü": "ñ"})
    head = client.head((store, "k"))
    assert head.envelope.encryption_context == {"tenant": "t1", "purpose": "test", "ü": "ñ"}
    assert client.get((store, "k")) == b"hello"


def test_content_length_mismatch_is_an_error(key_a: str) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a)
    with pytest.raises(ConfigurationError, match="fewer bytes"):
        client.put((store, "k"), io.BytesIO(b"abc"), content_length=10)
    with pytest.raises(ConfigurationError, match="more bytes"):
        client.put((store, "k"), io.BytesIO(b"abcdef"), content_length=3)
    assert list(store.list()) == []


def test_client_requires_a_key() -> None:
    with pytest.raises(ConfigurationError, match="at least one key"):
        EncryptionClient([])


def test_repr_of_results_has_no_key_material(key_a: str) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a)
    result = client.put((store, "k"), b"plaintext-marker")
    obj = client._open((store, "k"))
    assert obj.material.key.hex() not in repr(obj.material)
    assert obj.material.key.hex() not in repr(result)
    assert "plaintext-marker" not in repr(result)


@pytest.mark.parametrize(
    ("declared", "actual", "word"), [(200_000, 150_000, "fewer"), (100_000, 150_000, "more")]
)
def test_multipart_content_length_mismatch_aborts(declared: int, actual: int, word: str, key_a: str) -> None:
    store = MemoryStore()
    client = EncryptionClient(
        key_a, config=TransferConfig(multipart_threshold=64 * 1024, part_size=32 * 1024)
    )
    with pytest.raises(ConfigurationError, match=f"{word} bytes than content_length={declared}"):
        client.put((store, "k"), io.BytesIO(os.urandom(actual)), content_length=declared)
    assert store.list_multipart_uploads() == []
    assert list(store.list()) == []


def test_rewrap_keeps_user_metadata_and_replaces_the_envelope(key_a: str, key_b: str) -> None:
    store = MemoryStore()
    EncryptionClient(key_a).put((store, "k"), b"data")
    meta = dict(store.head("k").metadata)
    store.put("k", store.read_all("k"), {**meta, "owner": "team-x"})
    EncryptionClient(key_a).rewrap((store, "k"), to_keys=[key_b])
    after = store.head("k").metadata
    assert after["owner"] == "team-x"
    assert after["cse-v1"] != meta["cse-v1"]
    assert EncryptionClient(key_b).get((store, "k")) == b"data"


@pytest.mark.parametrize("size", [10, 300_000])  # one PUT, and multipart with small_config
def test_put_stores_user_metadata_beside_the_envelope(
    size: int, key_a: str, small_config: TransferConfig
) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a, config=small_config)
    data = os.urandom(size)
    result = client.put((store, "k"), data, metadata={"owner": "team-x", "cse-source-etag": "abc"})
    assert (result.parts > 0) == (size > small_config.multipart_threshold)
    meta = store.head("k").metadata
    assert (meta["owner"], meta["cse-source-etag"]) == ("team-x", "abc")
    assert "cse-v1" in meta
    assert client.head((store, "k")).metadata["owner"] == "team-x"
    assert client.get((store, "k")) == data


def test_put_refuses_metadata_named_like_the_formats_own(key_a: str) -> None:
    store = MemoryStore()
    with pytest.raises(ConfigurationError, match="cse-v1 are the cse-v1 format's own"):
        EncryptionClient(key_a).put((store, "k"), b"data", metadata={"CSE-V1": "forged"})
    assert list(store.list()) == []


def test_commitment_policy_governs_writing_and_reading(key_a: str) -> None:
    from cse.config import CommitmentPolicy

    json_formats.register_policed()
    store = MemoryStore()
    with pytest.raises(ConfigurationError, match="forbid-encrypt-allow-decrypt"):
        EncryptionClient(key_a, format="test-gcm-policed").put((store, "v2"), b"x")
    writer = EncryptionClient(
        key_a, format="test-gcm-policed", commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
    )
    writer.put((store, "v2"), b"old style")
    with pytest.raises(ConfigurationError, match="does not commit to its key.*require-encrypt-allow-decrypt"):
        EncryptionClient(key_a).get((store, "v2"))
    reader = EncryptionClient(key_a, commitment_policy="require-encrypt-allow-decrypt")
    assert reader.get((store, "v2")) == b"old style"
    assert writer.get((store, "v2")) == b"old style"
    # Committing objects: written by default, refused by a policy that forbids commitment on encrypt.
    EncryptionClient(key_a, format="test-committing-policed").put((store, "v3"), b"new")
    with pytest.raises(ConfigurationError, match="does not allow writing test-committing-policed"):
        writer.put((store, "v3b"), b"new", format="test-committing-policed")
    assert EncryptionClient(key_a).get((store, "v3")) == b"new"
    # Formats outside the policy (cse-v1, CTR) are unaffected by any policy.
    writer.put((store, "native"), b"n", format="cse-v1")
    assert EncryptionClient(key_a).get((store, "native")) == b"n"
    with pytest.raises(ConfigurationError, match="unknown commitment policy"):
        EncryptionClient(key_a, commitment_policy="sometimes")


def test_an_expected_encryption_context_must_match(key_a: str, tmp_path: Path) -> None:
    from cse.exceptions import EncryptionContextMismatchError

    store = MemoryStore()
    client = EncryptionClient(key_a)
    client.put((store, "k"), b"ctx", encryption_context={"tenant": "t1", "purpose": "audit"})
    assert client.get((store, "k"), encryption_context={"purpose": "audit", "tenant": "t1"}) == b"ctx"
    for wrong in (
        {"tenant": "t2", "purpose": "audit"},
        {"tenant": "t1"},
        {},
        {"tenant": "t1", "purpose": "audit", "x": "1"},
    ):
        with pytest.raises(EncryptionContextMismatchError) as info:
            client.get((store, "k"), encryption_context=wrong)
        assert isinstance(info.value, DecryptionError)
    with pytest.raises(EncryptionContextMismatchError, match="'tenant'"):
        client.download_file(
            (store, "k"), tmp_path / "out", encryption_context={"tenant": "t2", "purpose": "audit"}
        )
    assert not (tmp_path / "out").exists()
    with pytest.raises(EncryptionContextMismatchError):
        client.open((store, "k"), encryption_context={"tenant": "t2"})


def test_concurrent_reads_reusing_buffers_return_the_right_bytes(key_a: str) -> None:
    """Reads reuse their (1 MiB) buffers once they end: concurrent gets, iter_chunks and open() on one client
    never see each other's bytes."""
    from concurrent.futures import ThreadPoolExecutor

    store = MemoryStore()
    client = EncryptionClient(key_a, format="oss-v2")
    objects = {f"k{i}": os.urandom(1_500_000 + i) for i in range(6)}
    for key, value in objects.items():
        client.put((store, key), value)

    def read(i: int) -> bool:
        key = f"k{i % 6}"
        if i % 3 == 0:
            got = client.get((store, key))
        elif i % 3 == 1:
            got = b"".join(client.iter_chunks((store, key)))
        else:
            with client.open((store, key)) as fh:
                got = fh.read()
        return got == objects[key]

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(read, range(120)))
    assert sum(len(sets) for sets in client._free_buffers.values()) <= 2 * client.config.max_concurrency + 2
