"""The OSS store on the OSS emulator: the store conformance suite (V1 and V4 signing), URLs and default
buckets from the environment, error mapping, the crypto context of unfinished uploads, and EncryptionClient
round trips on ``oss://`` URLs."""

from __future__ import annotations

import os
from typing import Any

import oss2
import pytest
from cse_oss.store import OssStore, default_bucket

from cse.client import EncryptionClient
from cse.config import TransferConfig
from cse.exceptions import ConfigurationError, InvalidRangeError, ObjectNotFoundError, StoreError
from cse.registry import open_store
from cse.testing.stores import StoreConformance
from tests.conftest import OSS_AK, OSS_REGION, OSS_SECRET, oss2_bucket

KiB = 1024


class TestOssStoreConformanceV4(StoreConformance):
    """The shared store suite against the emulator, requests signed with V4."""

    md5_etags = True
    threads = 4
    storage_class = "IA"

    @pytest.fixture
    def store(self, oss_emulator: Any, oss_bucket_name: str, oss_env: str) -> OssStore:
        """A store over a V4-signed oss2.Bucket."""
        return OssStore(oss2_bucket(oss_emulator, oss_bucket_name, "v4"))


class TestOssStoreConformanceV1(StoreConformance):
    """The shared store suite against the emulator, requests signed with V1."""

    md5_etags = True
    threads = 4
    storage_class = "IA"

    @pytest.fixture
    def store(self, oss_emulator: Any, oss_bucket_name: str, oss_env: str) -> OssStore:
        """A store over a V1-signed oss2.Bucket."""
        return OssStore(oss2_bucket(oss_emulator, oss_bucket_name, "v1"))


def test_url_and_default_bucket_from_env(oss_env: str, oss_bucket_name: str) -> None:
    """oss://BUCKET/KEY opens a default bucket from OSS_ENDPOINT, OSS_REGION and the OSS credentials."""
    store, key = open_store(f"oss://{oss_bucket_name}/a/b.txt")
    assert isinstance(store, OssStore)
    assert key == "a/b.txt"
    assert store.url(key) == f"oss://{oss_bucket_name}/a/b.txt"
    store.put(key, b"data", {"Name": "v"})
    assert store.read_all(key) == b"data"
    assert store.head(key).metadata == {"name": "v"}
    assert store.bucket.enable_crc is False  # the store checks CRC-64 itself


def test_default_bucket_falls_back_to_alibaba_cloud_credentials(
    oss_emulator: Any, oss_bucket_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without OSS_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET are used; V1 without a region."""
    for name in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_REGION", "OSS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", OSS_AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", OSS_SECRET)
    store = OssStore(default_bucket(oss_bucket_name, endpoint=oss_emulator.endpoint))
    store.put("k", b"x", {})
    assert store.read_all("k") == b"x"


def test_missing_settings_say_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """No endpoint, or no credentials: a ConfigurationError that names the variables."""
    for name in (
        "OSS_ENDPOINT",
        "OSS_ACCESS_KEY_ID",
        "OSS_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match="OSS_ENDPOINT"):
        OssStore.from_url("oss://bucket/key")
    monkeypatch.setenv("OSS_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="OSS_ACCESS_KEY_ID"):
        OssStore.from_url("oss://bucket/key")
    with pytest.raises(ConfigurationError, match="oss://BUCKET/KEY"):
        OssStore.from_url("oss:///key")
    with pytest.raises(ConfigurationError, match="oss2.Bucket"):
        OssStore(object())


def test_sts_token(oss_bucket_name: str) -> None:
    """STS credentials (oss2.StsAuth) sign with the security token; a wrong token is refused clearly."""
    from cse_oss.testing import OssEmulator

    with OssEmulator("STS.ak", "sts-secret", security_token="token-1", buckets=[oss_bucket_name]) as emulator:
        good = oss2.Bucket(
            oss2.StsAuth("STS.ak", "sts-secret", "token-1"), emulator.endpoint, oss_bucket_name
        )
        OssStore(good).put("k", b"v", {})
        bad = oss2.Bucket(oss2.StsAuth("STS.ak", "sts-secret", "token-2"), emulator.endpoint, oss_bucket_name)
        with pytest.raises(StoreError, match="OSS_SESSION_TOKEN"):
            OssStore(bad).head("k")


def test_wrong_secret_and_missing_bucket(oss_emulator: Any, oss_bucket_name: str) -> None:
    """Signature errors name the credentials to check; a missing bucket says so; a dead endpoint too."""
    wrong = oss2.Bucket(
        oss2.AuthV4(OSS_AK, "nope"), oss_emulator.endpoint, oss_bucket_name, region=OSS_REGION
    )
    with pytest.raises(StoreError, match="SignatureDoesNotMatch") as info:
        OssStore(wrong).put("k", b"v", {})
    assert "OSS_ACCESS_KEY_SECRET" in str(info.value)
    missing = OssStore(oss2_bucket(oss_emulator, "cse-no-such-bucket"))
    with pytest.raises(StoreError, match="does not exist"):
        missing.put("k", b"v", {})
    dead = OssStore(oss2.Bucket(oss2.Auth(OSS_AK, OSS_SECRET), "http://127.0.0.1:9", oss_bucket_name))
    with pytest.raises(StoreError, match="cannot reach OSS"):
        dead.head("k")


def test_ranges_past_the_end_and_suffix_like(oss_emulator: Any, oss_bucket_name: str) -> None:
    """Ranges are asked with x-oss-range-behavior: standard: past the end is clamped, a start past the
    end is InvalidRangeError (not the whole object, as OSS answers without the header)."""
    store = OssStore(oss2_bucket(oss_emulator, oss_bucket_name))
    store.put("k", b"0123456789", {})
    with store.get("k", 7, 100) as result:
        assert result.body.read() == b"789"
        assert (result.start, result.end) == (7, 9)
    with pytest.raises(InvalidRangeError):
        store.get("k", 10)
    with pytest.raises(ObjectNotFoundError):
        store.get("absent")


def test_upload_context_from_list_parts(oss_emulator: Any, oss_bucket_name: str) -> None:
    """An upload started by another process: its crypto context comes back from ListParts."""
    bucket = oss2_bucket(oss_emulator, oss_bucket_name)
    context = {
        "client-side-encryption-key": "a2V5",
        "client-side-encryption-start": "aXY=",
        "client-side-encryption-cek-alg": "AES/CTR/NoPadding",
        "client-side-encryption-wrap-alg": "RSA/NONE/PKCS1Padding",
        "client-side-encryption-data-size": "300000",
        "client-side-encryption-part-size": "102400",
    }
    upload_id = bucket.init_multipart_upload(
        "m", headers={f"x-oss-meta-{k}": v for k, v in context.items()}
    ).upload_id
    fresh = OssStore(oss2_bucket(oss_emulator, oss_bucket_name))
    assert fresh.upload_context("m", upload_id) == context
    [upload] = fresh.list_multipart_uploads("m")
    assert upload.upload_id == upload_id
    assert upload.metadata == context
    fresh.abort_multipart("m", upload_id)
    with pytest.raises(ObjectNotFoundError):
        fresh.upload_context("m", upload_id)


@pytest.mark.parametrize("fmt", ["oss-v2", "cse-v1"])
def test_client_round_trip_on_oss_urls(oss_env: str, oss_bucket_name: str, key_a: str, fmt: str) -> None:
    """EncryptionClient on oss:// URLs: single and multipart objects, whole and ranged reads."""
    config = TransferConfig(multipart_threshold=256 * KiB, part_size=100 * KiB)
    with EncryptionClient(key_a, format=fmt, config=config) as client:
        for size in (0, 17, 256 * KiB, 700 * KiB + 3):
            data = os.urandom(size)
            url = f"oss://{oss_bucket_name}/obj-{size}"
            result = client.put(url, data)
            assert result.envelope.format == fmt
            assert client.get(url) == data
            if size > 20:
                assert client.get(url, range=f"{size // 3}-{size // 2}") == data[size // 3 : size // 2 + 1]


@pytest.mark.parametrize("size", [1, 5000, 600 * KiB])
def test_body_corrupted_in_transit_is_caught_by_crc64(
    oss_emulator: Any, oss_bucket_name: str, key_a: str, tmp_path: Any, size: int
) -> None:
    """A byte flipped between server and client: the CRC-64 of the bytes received differs from the
    server's x-oss-hash-crc64ecma, and the read fails before the last byte is handed on; no file is left."""
    store = OssStore(oss2_bucket(oss_emulator, oss_bucket_name))
    config = TransferConfig(multipart_threshold=256 * KiB, part_size=100 * KiB)
    client = EncryptionClient(key_a, config=config)
    data = os.urandom(size)
    client.put((store, "obj"), data)
    oss_emulator.corrupt_next_get(oss_bucket_name, "obj", offset=size - 1)
    with pytest.raises(StoreError, match="corrupted in transit") as info:
        client.get((store, "obj"))
    assert "CRC-64" in str(info.value)
    oss_emulator.corrupt_next_get(oss_bucket_name, "obj", offset=0)
    target = tmp_path / "out.bin"
    with pytest.raises(StoreError, match="corrupted in transit"):
        client.download_file((store, "obj"), target)
    assert list(tmp_path.iterdir()) == []
    assert client.get((store, "obj")) == data  # the next read is clean


def test_raw_store_read_checks_crc_on_the_last_byte(oss_emulator: Any, oss_bucket_name: str) -> None:
    """Store level: reading up to the last byte raises; ranged reads are not CRC-checked (documented)."""
    store = OssStore(oss2_bucket(oss_emulator, oss_bucket_name))
    store.put("k", b"0123456789", {})
    oss_emulator.corrupt_next_get(oss_bucket_name, "k", offset=4)
    with store.get("k") as result:
        assert result.body.read(5) == b"0123" + bytes([ord("4") ^ 1])
        with pytest.raises(StoreError, match="corrupted in transit"):
            result.body.read(5)
    oss_emulator.corrupt_next_get(oss_bucket_name, "k", offset=0)
    with store.get("k", 2, 5) as result:
        assert result.body.read() == bytes([ord("2") ^ 1]) + b"345"
