"""Object settings and server-side encryption through the Store API, checked with the plain SDKs: the S3
store on moto's server (boto3 ``head_object``) and the OSS store on the OSS emulator (oss2 ``head_object``).

SSE-S3/SSE-OSS (AES256), SSE-KMS with and without a key id, OSS SM4 and S3 DSSE-KMS, by single put and by
multipart upload; copies with new metadata (single CopyObject and part by part) that keep SSE, content type,
storage class and tags; bucket default encryption; modes a store has not refused before any request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import oss2
import pytest
from cse_oss.store import OssStore
from cse_s3 import S3Store

from cse.exceptions import ConfigurationError
from cse.stores.base import ObjectSettings, ServerSideEncryption, parse_sse
from tests.conftest import oss2_bucket

MiB = 1024 * 1024
TAGS = {"project": "cse", "stage": "test 1"}


def _write(store: Any, key: str, settings: ObjectSettings, how: str, data: bytes = b"sse data") -> None:
    """Write ``key`` with ``settings`` by a single put or a one-part multipart upload."""
    if how == "put":
        store.put(key, data, {"m": "1"}, settings)
        return
    upload_id = store.create_multipart(key, {"m": "1"}, settings)
    part = store.upload_part(key, upload_id, 1, data)
    store.complete_multipart(key, upload_id, [part])


# ------------------------------------------------------------------------------------------------- S3


def _moto_object(bucket: str, key: str) -> Any:
    """The object as moto's (in-process) server stores it."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys[key]


@pytest.fixture
def s3_store(s3_client: Any, s3_bucket: str) -> Iterator[S3Store]:
    """An S3 store on a fresh moto bucket."""
    store = S3Store(s3_bucket, client=s3_client)
    yield store
    store.close()


@pytest.fixture
def s3_requests(s3_client: Any) -> list[str]:
    """The names of the S3 operations ``s3_client`` sends from now on."""
    sent: list[str] = []

    def record(model: Any, **_: Any) -> None:
        sent.append(str(model.name))

    s3_client.meta.events.register("before-call.s3", record)
    return sent


@pytest.mark.parametrize("how", ["put", "multipart"])
@pytest.mark.parametrize(
    ("mode", "keyed", "wire"),
    [
        ("aes256", False, "AES256"),
        ("kms", False, "aws:kms"),
        ("kms", True, "aws:kms"),
        ("dsse", False, "aws:kms:dsse"),
        ("dsse", True, "aws:kms:dsse"),
    ],
)
def test_s3_sse(
    s3_store: S3Store,
    s3_client: Any,
    s3_bucket: str,
    kms_key_id: str,
    how: str,
    mode: str,
    keyed: bool,
    wire: str,
) -> None:
    """Each S3 mode reaches S3 as boto3 would send it, and head reports it back."""
    sse = ServerSideEncryption(mode, kms_key_id if keyed else None)
    _write(s3_store, "obj", ObjectSettings(sse=sse), how)
    head = s3_client.head_object(Bucket=s3_bucket, Key="obj")
    assert head["ServerSideEncryption"] == wire
    if keyed and mode == "kms":
        assert head["SSEKMSKeyId"] == kms_key_id
    elif keyed:  # moto 5.2 keeps a DSSE key id but answers it only for aws:kms: read what it stored
        assert _moto_object(s3_bucket, "obj").kms_key_id == kms_key_id
    reported = s3_store.head("obj").settings.sse
    assert reported is not None and reported.mode == mode
    if keyed and mode == "kms":
        assert reported.key_id == kms_key_id
    assert s3_store.read_all("obj") == b"sse data"


@pytest.mark.parametrize("in_parts", [False, True], ids=["copy-object", "upload-part-copy"])
def test_s3_copy_with_new_metadata_keeps_settings(
    s3_store: S3Store, s3_client: Any, s3_bucket: str, kms_key_id: str, in_parts: bool
) -> None:
    """CopyObject alone would reset SSE and storage class and (with REPLACE) drop the content type; the
    store sends them again, and the tags are kept, by CopyObject and by UploadPartCopy."""
    if in_parts:
        s3_store.max_copy_size = 0
        s3_store.copy_part_size = 5 * MiB
    settings = ObjectSettings(
        content_type="text/csv",
        content_disposition="attachment",
        cache_control="no-store",
        storage_class="STANDARD_IA",
        tags=TAGS,
        sse=ServerSideEncryption("kms", kms_key_id),
    )
    s3_store.put("src", b"a,b\n1,2\n", {"wrapped": "old"}, settings)
    s3_store.copy("src", "dst", {"wrapped": "new"})
    head = s3_client.head_object(Bucket=s3_bucket, Key="dst")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == kms_key_id
    assert head["ContentType"] == "text/csv"
    assert head["ContentDisposition"] == "attachment"
    assert head["CacheControl"] == "no-store"
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["Metadata"] == {"wrapped": "new"}
    tags = s3_client.get_object_tagging(Bucket=s3_bucket, Key="dst")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == TAGS
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert s3_store.read_all("dst") == b"a,b\n1,2\n"


def test_s3_copy_keeping_metadata_keeps_sse_and_class(
    s3_store: S3Store, s3_client: Any, s3_bucket: str
) -> None:
    """A copy with MetadataDirective COPY still gets the source's SSE and storage class."""
    s3_store.put("src", b"x", {"a": "1"}, ObjectSettings(storage_class="ONEZONE_IA", sse=parse_sse("AES256")))
    s3_store.copy("src", "dst")
    head = s3_client.head_object(Bucket=s3_bucket, Key="dst")
    assert (head["ServerSideEncryption"], head["StorageClass"], head["Metadata"]) == (
        "AES256",
        "ONEZONE_IA",
        {"a": "1"},
    )


def test_s3_copy_settings_replace_the_sources(
    s3_store: S3Store, s3_client: Any, s3_bucket: str, kms_key_id: str
) -> None:
    """Settings given to copy win: here SSE-KMS becomes SSE-S3 and the tags are replaced."""
    s3_store.put("src", b"x", {}, ObjectSettings(tags=TAGS, sse=ServerSideEncryption("kms", kms_key_id)))
    s3_store.copy("src", "dst", None, ObjectSettings(tags={"k": "v"}, sse=ServerSideEncryption("aes256")))
    head = s3_client.head_object(Bucket=s3_bucket, Key="dst")
    assert head["ServerSideEncryption"] == "AES256"
    assert "SSEKMSKeyId" not in head
    assert s3_store.get_tags("dst") == {"k": "v"}
    assert s3_store.get_tags("src") == TAGS


def test_s3_bucket_default_encryption(
    s3_store: S3Store, s3_client: Any, s3_bucket: str, kms_key_id: str
) -> None:
    """Bucket default encryption is set, read back (also with boto3) and removed; new objects get it."""
    assert s3_store.get_bucket_encryption() is None
    s3_store.put_bucket_encryption(ServerSideEncryption("kms", kms_key_id))
    assert s3_store.get_bucket_encryption() == ServerSideEncryption("kms", kms_key_id)
    rule = s3_client.get_bucket_encryption(Bucket=s3_bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": kms_key_id,
    }
    s3_store.put("plain", b"x", {})
    head = s3_client.head_object(Bucket=s3_bucket, Key="plain")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", kms_key_id)
    s3_store.delete_bucket_encryption()
    assert s3_store.get_bucket_encryption() is None
    with pytest.raises(ConfigurationError, match="sm4"):
        s3_store.put_bucket_encryption(ServerSideEncryption("sm4"))


def test_s3_refuses_sm4_before_any_request(
    s3_store: S3Store, s3_client: Any, s3_bucket: str, s3_requests: list[str]
) -> None:
    """S3 has no SM4: put, create_multipart and copy refuse it, listing S3's modes, sending nothing."""
    settings = ObjectSettings(sse=ServerSideEncryption("sm4"))
    with pytest.raises(ConfigurationError, match="aes256, kms, dsse"):
        s3_store.put("k", b"x", {}, settings)
    with pytest.raises(ConfigurationError, match="sm4"):
        s3_store.create_multipart("k", {}, settings)
    with pytest.raises(ConfigurationError, match="sm4"):
        s3_store.copy("k", "k2", None, settings)
    assert s3_requests == []
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_s3_refuses_too_many_tags(s3_store: S3Store, s3_requests: list[str]) -> None:
    """More than S3's 10 tags are refused before any request."""
    with pytest.raises(ConfigurationError, match="10 tags"):
        s3_store.put("k", b"x", {}, ObjectSettings(tags={f"t{i}": "v" for i in range(11)}))
    assert s3_requests == []


def test_s3_reports_its_default_content_type(s3_store: S3Store) -> None:
    """S3 reports binary/octet-stream for an object written without a content type: reported as is."""
    s3_store.put("k", b"x", {})
    assert s3_store.head("k").settings.content_type == "binary/octet-stream"
    assert s3_store.get_tags("k") == {}


# ------------------------------------------------------------------------------------------------ OSS


@pytest.fixture(params=["v4", "v1"])
def signing(request: pytest.FixtureRequest) -> str:
    """The oss2 signature version."""
    return str(request.param)


@pytest.fixture
def plain(oss_emulator: Any, oss_bucket_name: str, signing: str) -> Any:
    """An unmodified oss2.Bucket on a fresh emulator bucket."""
    return oss2_bucket(oss_emulator, oss_bucket_name, signing)


@pytest.fixture
def oss_store(plain: Any) -> OssStore:
    """An OSS store over that bucket."""
    return OssStore(plain)


@pytest.mark.parametrize("how", ["put", "multipart"])
@pytest.mark.parametrize(
    ("mode", "key_id", "wire"),
    [("aes256", None, "AES256"), ("kms", None, "KMS"), ("kms", "my-cmk", "KMS"), ("sm4", None, "SM4")],
)
def test_oss_sse(
    oss_store: OssStore,
    plain: Any,
    oss_emulator: Any,
    how: str,
    mode: str,
    key_id: str | None,
    wire: str,
) -> None:
    """Each OSS mode reaches OSS as oss2 sends it; KMS without a key id gets OSS's default key."""
    _write(oss_store, "obj", ObjectSettings(sse=ServerSideEncryption(mode, key_id)), how)
    headers = plain.head_object("obj").headers
    assert headers["x-oss-server-side-encryption"] == wire
    if mode == "kms":
        expected = key_id or oss_emulator.default_kms_key_id
        assert headers["x-oss-server-side-encryption-key-id"] == expected
    else:
        assert "x-oss-server-side-encryption-key-id" not in headers
    reported = oss_store.head("obj").settings.sse
    assert reported == ServerSideEncryption(
        mode, (key_id or oss_emulator.default_kms_key_id) if mode == "kms" else None
    )
    assert oss_store.read_all("obj") == b"sse data"  # the CRC-64 check passes as before


@pytest.mark.parametrize("in_parts", [False, True], ids=["copy-object", "upload-part-copy"])
def test_oss_copy_with_new_metadata_keeps_settings(oss_store: OssStore, plain: Any, in_parts: bool) -> None:
    """With x-oss-metadata-directive REPLACE the content headers are dropped unless sent again; the store
    sends them, with SSE and storage class; tags are kept, by CopyObject and by UploadPartCopy."""
    if in_parts:
        oss_store.max_copy_size = 0
    settings = ObjectSettings(
        content_type="text/csv",
        content_disposition="attachment",
        cache_control="no-store",
        storage_class="IA",
        tags=TAGS,
        sse=ServerSideEncryption("kms", "my-cmk"),
    )
    oss_store.put("src", b"a,b\n1,2\n", {"wrapped": "old"}, settings)
    oss_store.copy("src", "dst", {"wrapped": "new"})
    headers = plain.head_object("dst").headers
    assert headers["x-oss-server-side-encryption"] == "KMS"
    assert headers["x-oss-server-side-encryption-key-id"] == "my-cmk"
    assert headers["Content-Type"] == "text/csv"
    assert headers["Content-Disposition"] == "attachment"
    assert headers["Cache-Control"] == "no-store"
    assert headers["x-oss-storage-class"] == "IA"
    assert headers["x-oss-meta-wrapped"] == "new"
    assert plain.get_object_tagging("dst").tag_set.tagging_rule == TAGS
    assert list(oss2.MultipartUploadIterator(plain)) == []
    assert oss_store.read_all("dst") == b"a,b\n1,2\n"


def test_oss_copy_settings_replace_the_sources(oss_store: OssStore, plain: Any) -> None:
    """Settings given to copy win: SSE-KMS becomes SM4, the tags are replaced, the rest is kept."""
    oss_store.put("src", b"x", {}, ObjectSettings(content_type="text/plain", tags=TAGS, sse=parse_sse("KMS")))
    oss_store.copy("src", "dst", None, ObjectSettings(tags={"k": "v"}, sse=parse_sse("SM4")))
    headers = plain.head_object("dst").headers
    assert headers["x-oss-server-side-encryption"] == "SM4"
    assert "x-oss-server-side-encryption-key-id" not in headers
    assert headers["Content-Type"] == "text/plain"
    assert plain.get_object_tagging("dst").tag_set.tagging_rule == {"k": "v"}


def test_oss_bucket_default_encryption(oss_store: OssStore, plain: Any, oss_emulator: Any) -> None:
    """Bucket default encryption is set, read back (also with oss2) and removed; new objects get it."""
    assert oss_store.get_bucket_encryption() is None
    oss_store.put_bucket_encryption(ServerSideEncryption("kms", "bucket-cmk"))
    assert oss_store.get_bucket_encryption() == ServerSideEncryption("kms", "bucket-cmk")
    rule = plain.get_bucket_encryption()
    assert (rule.sse_algorithm, rule.kms_master_keyid) == ("KMS", "bucket-cmk")
    oss_store.put("plain", b"x", {})
    _write(oss_store, "parts", ObjectSettings(content_type="text/plain"), "multipart")
    for key in ("plain", "parts"):
        headers = plain.head_object(key).headers
        assert headers["x-oss-server-side-encryption"] == "KMS"
        assert headers["x-oss-server-side-encryption-key-id"] == "bucket-cmk"
    oss_store.put("own", b"x", {}, ObjectSettings(sse=parse_sse("aes256")))  # an object's own SSE wins
    assert plain.head_object("own").headers["x-oss-server-side-encryption"] == "AES256"
    oss_store.put_bucket_encryption(ServerSideEncryption("sm4"))
    assert oss_store.get_bucket_encryption() == ServerSideEncryption("sm4")
    oss_store.delete_bucket_encryption()
    assert oss_store.get_bucket_encryption() is None
    with pytest.raises(oss2.exceptions.NoSuchServerSideEncryptionRule):
        plain.get_bucket_encryption()
    oss_store.put("after", b"x", {})
    assert "x-oss-server-side-encryption" not in plain.head_object("after").headers
    assert oss_store.head("after").settings.sse is None


def test_oss_refuses_dsse_before_any_request(oss_store: OssStore, plain: Any, oss_emulator: Any) -> None:
    """OSS has no DSSE: put, create_multipart, copy and the bucket default refuse it, sending nothing."""
    settings = ObjectSettings(sse=ServerSideEncryption("dsse"))
    before = len(oss_emulator.request_log)
    with pytest.raises(ConfigurationError, match="aes256, kms, sm4"):
        oss_store.put("k", b"x", {}, settings)
    with pytest.raises(ConfigurationError, match="dsse"):
        oss_store.create_multipart("k", {}, settings)
    with pytest.raises(ConfigurationError, match="dsse"):
        oss_store.copy("k", "k2", None, settings)
    with pytest.raises(ConfigurationError, match="dsse"):
        oss_store.put_bucket_encryption(ServerSideEncryption("dsse"))
    with oss_emulator.lock:
        sent = [r for r in oss_emulator.request_log[before:] if r[1] == plain.bucket_name]
    assert sent == []
    assert list(oss2.ObjectIteratorV2(plain)) == []
    assert list(oss2.MultipartUploadIterator(plain)) == []


def test_oss_emulator_refusals_reach_the_store(oss_store: OssStore, plain: Any) -> None:
    """What the store cannot check itself (a storage class OSS has not) comes back as OSS's error."""
    from cse.exceptions import StoreError

    with pytest.raises(StoreError, match="InvalidArgument"):
        oss_store.put("k", b"x", {}, ObjectSettings(storage_class="Glacier"))
    with pytest.raises(StoreError, match="InvalidArgument"):
        oss_store.create_multipart("k", {}, ObjectSettings(storage_class="Glacier"))
    assert list(oss2.ObjectIteratorV2(plain)) == []
    assert list(oss2.MultipartUploadIterator(plain)) == []


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"x-oss-server-side-encryption": "DES"}, "InvalidEncryptionAlgorithmError"),
        ({"x-oss-server-side-encryption": "aws:kms"}, "InvalidEncryptionAlgorithmError"),
        (
            {"x-oss-server-side-encryption": "AES256", "x-oss-server-side-encryption-key-id": "k"},
            "InvalidArgument",
        ),
        ({"x-oss-server-side-encryption-key-id": "k"}, "InvalidArgument"),
        ({"x-oss-storage-class": "Glacier"}, "InvalidArgument"),
    ],
)
def test_oss_emulator_refuses_invalid_values(plain: Any, headers: dict[str, str], code: str) -> None:
    """The emulator answers invalid SSE and storage class headers as OSS does (400 and OSS's code), on
    PutObject, InitiateMultipartUpload and CopyObject, and writes nothing."""
    plain.put_object("src", b"x")
    for call in (
        lambda: plain.put_object("bad", b"x", headers=headers),
        lambda: plain.init_multipart_upload("bad", headers=headers),
        lambda: plain.copy_object(plain.bucket_name, "src", "bad", headers=headers),
    ):
        with pytest.raises(oss2.exceptions.OssError) as caught:
            call()
        assert (caught.value.status, caught.value.code) == (400, code)
        if code == "InvalidEncryptionAlgorithmError":
            assert "Supported value: AES256/KMS/SM4" in caught.value.message
    assert [o.key for o in oss2.ObjectIteratorV2(plain)] == ["src"]
    assert list(oss2.MultipartUploadIterator(plain)) == []


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        (oss2.models.ServerSideEncryptionRule("DES"), "InvalidEncryptionAlgorithmError"),
        (oss2.models.ServerSideEncryptionRule("AES256", "cmk"), "InvalidArgument"),
    ],
)
def test_oss_emulator_refuses_invalid_bucket_rules(plain: Any, rule: Any, code: str) -> None:
    """PutBucketEncryption with an unknown algorithm, or a key id without KMS, is refused as OSS does."""
    with pytest.raises(oss2.exceptions.OssError) as caught:
        plain.put_bucket_encryption(rule)
    assert (caught.value.status, caught.value.code) == (400, code)
    with pytest.raises(oss2.exceptions.NoSuchServerSideEncryptionRule):
        plain.get_bucket_encryption()


def test_s3_instruction_files_get_their_objects_sse(s3_client: Any, s3_bucket: str, kms_key_id: str) -> None:
    """An instruction file is server-side encrypted as its object (a bucket policy requiring SSE-KMS
    applies to it too), when written by put and when copied along."""
    store = S3Store(s3_bucket, client=s3_client, write_instruction_file=True)
    v2 = {
        "x-amz-key-v2": "d3JhcHBlZA==",
        "x-amz-iv": "aXZpdml2aXZpdml2",
        "x-amz-cek-alg": "AES/GCM/NoPadding",
        "x-amz-wrap-alg": "kms+context",
        "x-amz-matdesc": "{}",
        "x-amz-tag-len": "128",
    }
    store.put("obj", b"ciphertext", v2, ObjectSettings(sse=ServerSideEncryption("kms", kms_key_id)))
    store.copy("obj", "copy")
    for key in ("obj.instruction", "copy.instruction", "copy"):
        head = s3_client.head_object(Bucket=s3_bucket, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", kms_key_id), key
    assert "x-amz-key-v2" not in s3_client.head_object(Bucket=s3_bucket, Key="obj")["Metadata"]
