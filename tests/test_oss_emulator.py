"""The OSS emulator (cse_oss.testing) against the unmodified official SDKs, oss2 and alibabacloud-oss-v2."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

oss2 = pytest.importorskip("oss2")
oss = pytest.importorskip("alibabacloud_oss_v2")

from cse_oss.testing import Crc64, OssEmulator, crc64, crc64_combine  # noqa: E402

AK = "LTAI-test-access-key"
SK = "test-secret-0123456789"
BUCKET = "cse-test"


@pytest.fixture(scope="module")
def emulator() -> Iterator[OssEmulator]:
    with OssEmulator(access_key_id=AK, access_key_secret=SK, host="127.0.0.1", port=0) as emu:
        emu.create_bucket(BUCKET)
        yield emu


@pytest.fixture(params=["v1", "v4"])
def bucket(request: pytest.FixtureRequest, emulator: OssEmulator) -> oss2.Bucket:
    if request.param == "v1":
        return oss2.Bucket(oss2.Auth(AK, SK), emulator.endpoint, BUCKET)
    return oss2.Bucket(oss2.AuthV4(AK, SK), emulator.endpoint, BUCKET, region="cn-hangzhou")


def _v2_client(emulator: OssEmulator, secret: str = SK, **extra: object) -> oss.Client:
    cfg = oss.config.load_default()
    for name, value in extra.items():
        setattr(cfg, name, value)
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(AK, secret)
    cfg.region = "cn-hangzhou"
    cfg.endpoint = emulator.endpoint
    cfg.use_path_style = True
    cfg.disable_ssl = True
    cfg.retry_max_attempts = 1
    return oss.Client(cfg)


def _oss2_crc(data: bytes) -> int:
    c = oss2.utils.Crc64()
    c.update(data)
    return int(c.crc)


# --------------------------------------------------------------------------- CRC-64


@pytest.mark.parametrize("name", ["fastcrc", "crcmod", "python"])
def test_every_crc64_backend_gives_oss2s_values(name: str) -> None:
    from cse_oss import crc64 as module

    found = module.backends()
    if name not in found:
        pytest.skip(f"{name} is not importable here")
    crc = found[name]
    rng = random.Random(64)
    for n in (0, 1, 7, 8, 9, 15, 16, 17, 1000, 65537, 1 << 20):
        data = rng.randbytes(n)
        assert crc(data) == _oss2_crc(data)
        assert crc(memoryview(bytearray(data))) == _oss2_crc(data)
        cut = n // 3
        assert crc(data[cut:], crc(data[:cut])) == _oss2_crc(data)
        assert crc64_combine(crc(data[:cut]), crc(data[cut:]), n - cut) == _oss2_crc(data)


def test_the_fast_crc64_backend_is_used_where_it_is_installed() -> None:
    from cse_oss import crc64 as module

    in_use = module.BACKEND
    assert in_use == ("fastcrc" if "fastcrc" in module.backends() else "crcmod")


def test_crc64_matches_oss2() -> None:
    for n in (0, 1, 7, 8, 9, 15, 16, 17, 1000, 65537):
        data = os.urandom(n)
        assert crc64(data) == _oss2_crc(data)
    a, b = os.urandom(3001), os.urandom(777)
    assert crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b)
    assert crc64(b, crc64(a)) == crc64(a + b)
    inc = Crc64()
    inc.update(a)
    inc.update(b)
    assert inc.value == _oss2_crc(a + b)


# --------------------------------------------------------------------------- oss2, V1 and V4


def test_put_get_head_delete(bucket: oss2.Bucket, emulator: OssEmulator) -> None:
    key = f"dir/obj {bucket.auth.auth_version()}+ü.bin"
    data = os.urandom(5000)
    put = bucket.put_object(key, data, headers={"x-oss-meta-Color": "Blue", "Content-Type": "text/x-test"})
    assert put.etag == hashlib.md5(data).hexdigest().upper()
    assert put.crc == crc64(data)
    assert put.request_id
    got = bucket.get_object(key)
    assert got.read() == data  # oss2 checks the CRC64 of the download
    assert got.headers["x-oss-meta-color"] == "Blue"
    assert got.headers["Content-Type"] == "text/x-test"
    head = bucket.head_object(key)
    assert head.content_length == 5000
    assert head.etag == put.etag
    assert head.headers["x-oss-meta-color"] == "Blue"
    assert bucket.get_object_meta(key).content_length == 5000
    assert emulator.get_object_metadata(BUCKET, key) == {"x-oss-meta-color": "Blue"}
    assert bucket.object_exists(key)
    bucket.delete_object(key)
    bucket.delete_object(key)  # idempotent
    assert not bucket.object_exists(key)
    with pytest.raises(oss2.exceptions.NoSuchKey) as info:
        bucket.get_object(key)
    assert info.value.status == 404
    assert info.value.request_id
    with pytest.raises(oss2.exceptions.NotFound):
        bucket.head_object(key)


def test_put_with_content_md5(bucket: oss2.Bucket) -> None:
    data = b"checked body"
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    bucket.put_object("md5-ok", data, headers={"Content-MD5": good})
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(oss2.exceptions.InvalidDigest) as info:
        bucket.put_object("md5-bad", data, headers={"Content-MD5": bad})
    assert info.value.status == 400


def test_conditions_and_forbid_overwrite(bucket: oss2.Bucket) -> None:
    etag = bucket.put_object("cond", b"abc").etag
    assert bucket.get_object("cond", headers={"If-Match": f'"{etag}"'}).read() == b"abc"
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.get_object("cond", headers={"If-Match": '"0123"'})
    with pytest.raises(oss2.exceptions.NotModified):
        bucket.get_object("cond", headers={"If-None-Match": f'"{etag}"'})
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.put_object("cond", b"new", headers={"x-oss-forbid-overwrite": "true"})
    assert (info.value.status, info.value.code) == (409, "FileAlreadyExists")
    assert bucket.get_object("cond").read() == b"abc"


def test_copy_object_directives(bucket: oss2.Bucket) -> None:
    data = os.urandom(2048)
    bucket.put_object("copy-src", data, headers={"x-oss-meta-a": "1", "Content-Type": "text/plain"})
    bucket.copy_object(BUCKET, "copy-src", "copy-dst")
    dst = bucket.get_object("copy-dst")
    assert dst.read() == data
    assert dst.headers["x-oss-meta-a"] == "1"
    assert dst.headers["Content-Type"] == "text/plain"
    bucket.copy_object(
        BUCKET,
        "copy-src",
        "copy-rep",
        headers={"x-oss-metadata-directive": "REPLACE", "x-oss-meta-b": "2", "Content-Type": "image/png"},
    )
    rep = bucket.head_object("copy-rep")
    assert rep.headers.get("x-oss-meta-a") is None
    assert rep.headers["x-oss-meta-b"] == "2"
    assert rep.content_type == "image/png"
    assert bucket.get_object("copy-rep").read() == data
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.copy_object(BUCKET, "no-such-src", "x")


def test_ranges(bucket: oss2.Bucket) -> None:
    data = bytes(range(256)) * 4
    bucket.put_object("ranged", data)
    r = bucket.get_object("ranged", byte_range=(10, 19))
    assert r.status == 206
    assert r.headers["Content-Range"] == "bytes 10-19/1024"
    assert r.read() == data[10:20]
    assert bucket.get_object("ranged", byte_range=(1000, None)).read() == data[1000:]
    assert bucket.get_object("ranged", byte_range=(None, 24)).read() == data[-24:]
    assert bucket.get_object("ranged", byte_range=(1000, 5000)).read() == data[1000:]
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.get_object("ranged", byte_range=(1024, 2000))
    assert info.value.status == 416
    assert info.value.code == "InvalidRange"
    # OSS ignores an invalid range and sends the whole object with 200
    whole = bucket.get_object("ranged", headers={"Range": "bytes=20-10"})
    assert whole.status == 200
    assert whole.read() == data
    assert bucket.get_object("ranged", headers={"Range": "items=0-3"}).status == 200
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.get_object("ranged", headers={"Range": "bytes=20-10", "x-oss-range-behavior": "standard"})
    assert info.value.status == 416


def test_list_v1_and_v2_pagination(bucket: oss2.Bucket) -> None:
    prefix = f"list-{bucket.auth.auth_version()}/"
    keys = (
        [f"{prefix}a/{i:02d}" for i in range(5)] + [f"{prefix}b {i}" for i in range(4)] + [f"{prefix}c/x/y"]
    )
    for k in keys:
        bucket.put_object(k, k.encode())
    assert sorted(o.key for o in oss2.ObjectIterator(bucket, prefix=prefix, max_keys=3)) == sorted(keys)
    assert sorted(o.key for o in oss2.ObjectIteratorV2(bucket, prefix=prefix, max_keys=3)) == sorted(keys)
    page = bucket.list_objects(prefix=prefix, delimiter="/", max_keys=100)
    assert page.prefix_list == [f"{prefix}a/", f"{prefix}c/"]
    assert [o.key for o in page.object_list] == [f"{prefix}b {i}" for i in range(4)]
    first = bucket.list_objects_v2(prefix=prefix, delimiter="/", max_keys=2)
    assert first.is_truncated
    assert first.prefix_list == [f"{prefix}a/"]
    second = bucket.list_objects_v2(
        prefix=prefix, delimiter="/", max_keys=100, continuation_token=first.next_continuation_token
    )
    assert not second.is_truncated
    assert [o.key for o in first.object_list + second.object_list] == [f"{prefix}b {i}" for i in range(4)]
    assert second.prefix_list == [f"{prefix}c/"]
    after = bucket.list_objects_v2(prefix=prefix, start_after=f"{prefix}b 2", fetch_owner=True)
    assert [o.key for o in after.object_list] == [f"{prefix}b 3", f"{prefix}c/x/y"]
    assert after.object_list[0].owner is not None
    v1 = bucket.list_objects(prefix=prefix, marker=f"{prefix}b 1", max_keys=2)
    assert [o.key for o in v1.object_list] == [f"{prefix}b 2", f"{prefix}b 3"]
    assert v1.is_truncated and v1.next_marker == f"{prefix}b 3"


def test_multipart_cycle(bucket: oss2.Bucket) -> None:
    key = f"mp-{bucket.auth.auth_version()}"
    size = 100 * 1024
    parts_data = [os.urandom(size), os.urandom(size), os.urandom(1000)]
    upload_id = bucket.init_multipart_upload(key, headers={"x-oss-meta-kind": "multi"}).upload_id
    assert any(u.upload_id == upload_id for u in oss2.MultipartUploadIterator(bucket))
    parts = []
    for n, chunk in enumerate(parts_data, 1):
        result = bucket.upload_part(key, upload_id, n, chunk)
        assert result.crc == crc64(chunk)
        parts.append(oss2.models.PartInfo(n, result.etag, size=len(chunk), part_crc=result.crc))
    listed = bucket.list_parts(key, upload_id)
    assert [(p.part_number, p.etag, p.size) for p in listed.parts] == [
        (p.part_number, p.etag, p.size) for p in parts
    ]
    assert [p.part_number for p in oss2.PartIterator(bucket, key, upload_id, max_parts=1)] == [1, 2, 3]
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.complete_multipart_upload(key, upload_id, [parts[0], parts[0]])  # oss2 sorts; a duplicate
    assert (info.value.status, info.value.code) == (400, "InvalidPartOrder")
    wrong = oss2.models.PartInfo(2, "0" * 32)
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.complete_multipart_upload(key, upload_id, [parts[0], wrong])
    assert (info.value.status, info.value.code) == (400, "InvalidPart")
    done = bucket.complete_multipart_upload(key, upload_id, parts)  # oss2 checks the combined CRC64
    whole = b"".join(parts_data)
    md5s = b"".join(hashlib.md5(p).digest() for p in parts_data)
    assert done.etag == hashlib.md5(md5s).hexdigest().upper() + "-3"
    got = bucket.get_object(key)
    assert got.read() == whole
    assert got.headers["x-oss-meta-kind"] == "multi"
    assert int(got.headers["x-oss-hash-crc64ecma"]) == crc64(whole)
    assert bucket.get_object(key, byte_range=(size - 5, size + 4)).read() == whole[size - 5 : size + 5]
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.list_parts(key, upload_id)
    abort_id = bucket.init_multipart_upload(key + "-abort").upload_id
    bucket.upload_part(key + "-abort", abort_id, 1, b"x" * 10)
    bucket.abort_multipart_upload(key + "-abort", abort_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload) as info:
        bucket.upload_part(key + "-abort", abort_id, 2, b"y")
    assert info.value.status == 404
    assert not any(u.upload_id == abort_id for u in oss2.MultipartUploadIterator(bucket))


def test_list_multipart_uploads_pagination(bucket: oss2.Bucket) -> None:
    prefix = f"lmu-{bucket.auth.auth_version()}/"
    ids = [bucket.init_multipart_upload(f"{prefix}{k}").upload_id for k in ("a", "a", "b", "c/d")]
    listed = [
        (u.key, u.upload_id) for u in oss2.MultipartUploadIterator(bucket, prefix=prefix, max_uploads=1)
    ]
    assert listed == list(zip([f"{prefix}a", f"{prefix}a", f"{prefix}b", f"{prefix}c/d"], ids))
    page = bucket.list_multipart_uploads(prefix=prefix, delimiter="/")
    assert page.prefix_list == [f"{prefix}c/"]
    assert [u.upload_id for u in page.upload_list] == ids[:3]
    for key, upload_id in listed:
        bucket.abort_multipart_upload(key, upload_id)


def test_small_parts_are_rejected(bucket: oss2.Bucket) -> None:
    upload_id = bucket.init_multipart_upload("tiny").upload_id
    parts = [oss2.models.PartInfo(n, bucket.upload_part("tiny", upload_id, n, b"ab").etag) for n in (1, 2)]
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.complete_multipart_upload("tiny", upload_id, parts)
    assert info.value.code == "EntityTooSmall"
    bucket.abort_multipart_upload("tiny", upload_id)


def test_upload_part_copy(bucket: oss2.Bucket, emulator: OssEmulator) -> None:
    version = bucket.auth.auth_version()
    src_key, key = f"upc/src {version}+ü&.bin", f"upc/dst-{version}"
    size = 100 * 1024
    data = os.urandom(2 * size + 777)
    bucket.put_object(src_key, data)
    upload_id = bucket.init_multipart_upload(key).upload_id
    ranges = [(0, size - 1), (size, 2 * size - 1), (2 * size, None)]  # (first, None) is bytes=first-
    parts = []
    for n, byte_range in enumerate(ranges, 1):
        piece = data[byte_range[0] : None if byte_range[1] is None else byte_range[1] + 1]
        result = bucket.upload_part_copy(BUCKET, src_key, byte_range, key, upload_id, n)
        assert result.etag == hashlib.md5(piece).hexdigest().upper()
        assert result.crc == crc64(piece)
        parts.append(oss2.models.PartInfo(n, result.etag, size=len(piece), part_crc=result.crc))
    assert [p.size for p in bucket.list_parts(key, upload_id).parts] == [size, size, 777]
    bucket.complete_multipart_upload(key, upload_id, parts)  # oss2 checks the combined CRC64
    assert bucket.get_object(key).read() == data
    assert emulator.get_object_bytes(BUCKET, key) == data

    upload_id = bucket.init_multipart_upload(key).upload_id
    bucket.upload_part_copy(BUCKET, src_key, None, key, upload_id, 1)  # no range: the whole source
    bucket.upload_part_copy(BUCKET, src_key, (10, 5), key, upload_id, 2)  # malformed: the whole source
    assert [p.size for p in bucket.list_parts(key, upload_id).parts] == [len(data), len(data)]
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.upload_part_copy(BUCKET, src_key, (len(data) - 1, len(data)), key, upload_id, 3)
    assert (info.value.status, info.value.code) == (400, "InvalidArgument")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.upload_part_copy(BUCKET, src_key, (len(data), len(data) + 9), key, upload_id, 3)
    assert (info.value.status, info.value.code) == (400, "InvalidArgument")
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.upload_part_copy(BUCKET, "upc/missing", (0, 9), key, upload_id, 3)
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.upload_part_copy(
            BUCKET, src_key, (0, 9), key, upload_id, 3, headers={"x-oss-copy-source-if-match": '"0123"'}
        )
    bucket.abort_multipart_upload(key, upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.upload_part_copy(BUCKET, src_key, (0, 9), key, upload_id, 1)


def test_v2_sdk_upload_part_copy(emulator: OssEmulator) -> None:
    client = _v2_client(emulator)
    data = os.urandom(5000)
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="v2/upc-src", body=data))
    init = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key="v2/upc"))
    res = client.upload_part_copy(
        oss.UploadPartCopyRequest(
            bucket=BUCKET,
            key="v2/upc",
            upload_id=init.upload_id,
            part_number=1,
            source_key="v2/upc-src",
            source_range="bytes=100-1099",
        )
    )
    assert res.etag == f'"{hashlib.md5(data[100:1100]).hexdigest().upper()}"'
    assert res.last_modified is not None
    client.complete_multipart_upload(
        oss.CompleteMultipartUploadRequest(
            bucket=BUCKET,
            key="v2/upc",
            upload_id=init.upload_id,
            complete_multipart_upload=oss.CompleteMultipartUpload(
                parts=[oss.UploadPart(part_number=1, etag=res.etag)]
            ),
        )
    )
    assert emulator.get_object_bytes(BUCKET, "v2/upc") == data[100:1100]


# --------------------------------------------------------------------------- fault injection


def test_corrupt_next_get(emulator: OssEmulator, tmp_path: Path) -> None:
    bucket = oss2.Bucket(oss2.Auth(AK, SK), emulator.endpoint, BUCKET)
    data = os.urandom(300 * 1024)
    put = bucket.put_object("fault/transit", data)
    emulator.corrupt_next_get(BUCKET, "fault/transit", offset=200 * 1024, xor=0x80)
    assert bucket.head_object("fault/transit").etag == put.etag  # a HEAD does not consume the fault
    with pytest.raises(oss2.exceptions.InconsistentError):
        bucket.get_object_to_file("fault/transit", str(tmp_path / "bad"))
    flipped = bytearray(data)
    flipped[200 * 1024] ^= 0x80
    assert (tmp_path / "bad").read_bytes() == flipped
    bucket.get_object_to_file("fault/transit", str(tmp_path / "good"))  # one-shot
    assert (tmp_path / "good").read_bytes() == data
    emulator.corrupt_next_get(BUCKET, "fault/transit", offset=3)  # offset within the served range
    got = bucket.get_object("fault/transit", byte_range=(10, 19))
    assert got.headers["x-oss-hash-crc64ecma"] == str(crc64(data))
    assert got.read() == data[10:13] + bytes([data[13] ^ 1]) + data[14:20]
    assert emulator.get_object_bytes(BUCKET, "fault/transit") == data
    with pytest.raises(KeyError):
        emulator.corrupt_next_get(BUCKET, "fault/none")


def test_tamper_object(emulator: OssEmulator, tmp_path: Path) -> None:
    bucket = oss2.Bucket(oss2.Auth(AK, SK), emulator.endpoint, BUCKET)
    data = os.urandom(4000)
    put = bucket.put_object("fault/rest", data, headers={"x-oss-meta-a": "1"})
    bucket.copy_object(BUCKET, "fault/rest", "fault/rest-copy")  # shares the stored bytes
    emulator.tamper_object(BUCKET, "fault/rest", 5, xor=0xFF)
    tampered = data[:5] + bytes([data[5] ^ 0xFF]) + data[6:]
    bucket.get_object_to_file("fault/rest", str(tmp_path / "t"))  # the CRC is that of the stored bytes
    assert (tmp_path / "t").read_bytes() == tampered
    head = bucket.head_object("fault/rest")
    assert (head.etag, head.server_crc, head.headers["x-oss-meta-a"]) == (put.etag, crc64(tampered), "1")
    assert head.etag != hashlib.md5(tampered).hexdigest().upper()
    assert emulator.get_object_bytes(BUCKET, "fault/rest-copy") == data
    with pytest.raises(IndexError):
        emulator.tamper_object(BUCKET, "fault/rest", 4000)


def test_truncate_object(emulator: OssEmulator) -> None:
    bucket = oss2.Bucket(oss2.Auth(AK, SK), emulator.endpoint, BUCKET)
    size = 100 * 1024
    key = "fault/short"
    upload_id = bucket.init_multipart_upload(key, headers={"x-oss-meta-k": "v"}).upload_id
    chunks = [os.urandom(size), os.urandom(500)]
    parts = [
        oss2.models.PartInfo(n, bucket.upload_part(key, upload_id, n, c).etag)
        for n, c in enumerate(chunks, 1)
    ]
    etag = bucket.complete_multipart_upload(key, upload_id, parts).etag
    emulator.truncate_object(BUCKET, key, size + 10)  # cuts inside the second segment
    head = bucket.head_object(key)
    assert (head.content_length, head.etag, head.headers["x-oss-meta-k"]) == (size + 10, etag, "v")
    assert bucket.get_object(key).read() == (chunks[0] + chunks[1])[: size + 10]  # CRC checked on read
    assert head.server_crc == crc64((chunks[0] + chunks[1])[: size + 10])
    emulator.truncate_object(BUCKET, key, 0)
    assert bucket.get_object(key).read() == b""
    with pytest.raises(ValueError):
        emulator.truncate_object(BUCKET, key, 1)


def test_replace_metadata(emulator: OssEmulator) -> None:
    bucket = oss2.Bucket(oss2.Auth(AK, SK), emulator.endpoint, BUCKET)
    put = bucket.put_object("fault/meta", b"payload", headers={"x-oss-meta-a": "1", "Content-Type": "text/x"})
    emulator.replace_metadata(BUCKET, "fault/meta", {"B": "2", "Other-Name": "k"})
    assert emulator.get_object_metadata(BUCKET, "fault/meta") == {
        "x-oss-meta-b": "2",
        "x-oss-meta-other-name": "k",
    }
    head = bucket.head_object("fault/meta")
    assert head.headers.get("x-oss-meta-a") is None
    assert (head.headers["x-oss-meta-b"], head.etag, head.content_type) == ("2", put.etag, "text/x")
    assert bucket.get_object("fault/meta").read() == b"payload"
    emulator.replace_metadata(BUCKET, "fault/meta", {})
    assert emulator.get_object_metadata(BUCKET, "fault/meta") == {}


def test_wrong_secret_and_unknown_key(emulator: OssEmulator) -> None:
    for auth, kw in ((oss2.Auth(AK, "wrong"), {}), (oss2.AuthV4(AK, "wrong"), {"region": "cn-hangzhou"})):
        bad = oss2.Bucket(auth, emulator.endpoint, BUCKET, **kw)
        with pytest.raises(oss2.exceptions.SignatureDoesNotMatch) as info:
            bad.put_object("denied", b"data")
        assert info.value.status == 403
        with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
            bad.get_object("anything")
    unknown = oss2.Bucket(oss2.Auth("nobody", SK), emulator.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.ServerError) as err:
        unknown.get_object("x")
    assert (err.value.status, err.value.code) == (403, "InvalidAccessKeyId")
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), emulator.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.AccessDenied):
        anonymous.get_object("x")


def test_buckets(emulator: OssEmulator) -> None:
    auth = oss2.Auth(AK, SK)
    new = oss2.Bucket(auth, emulator.endpoint, "created-by-sdk")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        new.put_object("k", b"v")
    new.create_bucket()
    new.put_object("k", b"v")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        new.create_bucket()
    assert (info.value.status, info.value.code) == (409, "BucketAlreadyExists")
    assert new.get_bucket_acl().acl == "private"
    assert new.get_object_acl("k").acl == "default"
    assert new.get_bucket_location().location == "oss-cn-hangzhou"
    assert _v2_client(emulator).is_bucket_exist("created-by-sdk")
    assert not _v2_client(emulator).is_bucket_exist("no-such-bucket-here")
    assert _v2_client(emulator).is_object_exist("created-by-sdk", "k")
    assert not _v2_client(emulator).is_object_exist("created-by-sdk", "missing")
    names = [b.name for b in oss2.BucketIterator(oss2.Service(auth, emulator.endpoint))]
    assert "created-by-sdk" in names and BUCKET in names
    with pytest.raises(oss2.exceptions.BucketNotEmpty):
        new.delete_bucket()
    new.delete_object("k")
    new.delete_bucket()


def test_sts_token() -> None:
    with OssEmulator(AK, SK, security_token="sts-token-1", buckets=["sts-bucket"]) as emu:
        good = oss2.Bucket(oss2.StsAuth(AK, SK, "sts-token-1"), emu.endpoint, "sts-bucket")
        good.put_object("k", b"v")
        assert good.get_object("k").read() == b"v"
        bad = oss2.Bucket(oss2.StsAuth(AK, SK, "other"), emu.endpoint, "sts-bucket")
        with pytest.raises(oss2.exceptions.ServerError) as info:
            bad.get_object("k")
        assert info.value.status == 403
        without = oss2.Bucket(oss2.Auth(AK, SK), emu.endpoint, "sts-bucket")
        with pytest.raises(oss2.exceptions.ServerError):
            without.get_object("k")


def test_resumable_upload_and_download(emulator: OssEmulator, tmp_path: Path) -> None:
    bucket = oss2.Bucket(oss2.Auth(AK, SK), emulator.endpoint, BUCKET)
    data = os.urandom(3 * 1024 * 1024)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    oss2.resumable_upload(
        bucket,
        "resumable.bin",
        str(src),
        store=oss2.ResumableStore(root=str(tmp_path)),
        multipart_threshold=100 * 1024,
        part_size=100 * 1024,
        num_threads=4,
    )
    head = bucket.head_object("resumable.bin")
    assert head.content_length == len(data)
    assert head.etag.endswith("-31")
    assert head.server_crc == crc64(data)
    dst = tmp_path / "dst.bin"
    oss2.resumable_download(
        bucket,
        "resumable.bin",
        str(dst),
        store=oss2.ResumableDownloadStore(root=str(tmp_path)),
        multiget_threshold=200 * 1024,
        part_size=512 * 1024,
        num_threads=3,
    )
    assert dst.read_bytes() == data
    assert emulator.get_object_bytes(BUCKET, "resumable.bin") == data


def test_crypto_bucket_rsa(emulator: OssEmulator) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    provider = oss2.crypto.RsaProvider(key_pair={"private_key": private_pem, "public_key": public_pem})
    crypto = oss2.CryptoBucket(oss2.Auth(AK, SK), emulator.endpoint, BUCKET, crypto_provider=provider)
    data = os.urandom(10_000)
    crypto.put_object("cse-simple", data)
    stored = emulator.get_object_bytes(BUCKET, "cse-simple")
    assert stored != data and len(stored) == len(data)
    meta = emulator.get_object_metadata(BUCKET, "cse-simple")
    assert meta["x-oss-meta-client-side-encryption-cek-alg"] == "AES/CTR/NoPadding"
    assert meta["x-oss-meta-client-side-encryption-wrap-alg"] == "RSA/NONE/PKCS1Padding"
    assert crypto.get_object("cse-simple").read() == data
    assert crypto.get_object("cse-simple", byte_range=(100, 299)).read() == data[100:300]

    part_size = 100 * 1024
    whole = os.urandom(2 * part_size + 777)
    context = oss2.models.MultipartUploadCryptoContext(data_size=len(whole), part_size=part_size)
    upload_id = crypto.init_multipart_upload("cse-multi", upload_context=context).upload_id
    parts = []
    for n, start in enumerate(range(0, len(whole), part_size), 1):
        res = crypto.upload_part(
            "cse-multi", upload_id, n, whole[start : start + part_size], upload_context=context
        )
        parts.append(
            oss2.models.PartInfo(n, res.etag, size=len(whole[start : start + part_size]), part_crc=res.crc)
        )

    # ListParts echoes the client-encryption fields given at Initiate, as real OSS does
    client = _v2_client(emulator)
    listed = client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key="cse-multi", upload_id=upload_id))
    assert listed.client_encryption_cek_alg == "AES/CTR/NoPadding"
    assert listed.client_encryption_wrap_alg == "RSA/NONE/PKCS1Padding"
    assert listed.client_encryption_data_size == len(whole)
    assert listed.client_encryption_part_size == part_size
    assert listed.client_encryption_key and listed.client_encryption_start
    assert [p.hash_crc64 for p in listed.parts] == [str(p.part_crc) for p in parts]

    crypto.complete_multipart_upload("cse-multi", upload_id, parts)
    assert crypto.get_object("cse-multi").read() == whole
    meta = emulator.get_object_metadata(BUCKET, "cse-multi")
    assert meta["x-oss-meta-client-side-encryption-data-size"] == str(len(whole))


# --------------------------------------------------------------------------- alibabacloud-oss-v2


def test_v2_encryption_client_rsa(emulator: OssEmulator) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()
    )
    cipher = oss.crypto.MasterRsaCipher(mat_desc={"k": "v"}, public_key=public_pem, private_key=private_pem)
    eclient = oss.EncryptionClient(_v2_client(emulator), cipher)
    data = os.urandom(5000)
    eclient.put_object(oss.PutObjectRequest(bucket=BUCKET, key="v2-cse/simple", body=data))
    assert emulator.get_object_bytes(BUCKET, "v2-cse/simple") != data
    assert eclient.get_object(oss.GetObjectRequest(bucket=BUCKET, key="v2-cse/simple")).body.read() == data

    part_size = 100 * 1024
    whole = os.urandom(part_size + 4321)
    init = eclient.initiate_multipart_upload(
        oss.InitiateMultipartUploadRequest(
            bucket=BUCKET, key="v2-cse/multi", cse_part_size=part_size, cse_data_size=len(whole)
        )
    )
    parts = []
    for n, start in enumerate(range(0, len(whole), part_size), 1):
        res = eclient.upload_part(
            oss.UploadPartRequest(
                bucket=BUCKET,
                key="v2-cse/multi",
                upload_id=init.upload_id,
                part_number=n,
                body=whole[start : start + part_size],
                cse_multipart_context=init.cse_multipart_context,
            )
        )
        parts.append(oss.UploadPart(part_number=n, etag=res.etag))
    listed = eclient.list_parts(
        oss.ListPartsRequest(bucket=BUCKET, key="v2-cse/multi", upload_id=init.upload_id)
    )
    assert listed.client_encryption_part_size == part_size
    eclient.complete_multipart_upload(
        oss.CompleteMultipartUploadRequest(
            bucket=BUCKET,
            key="v2-cse/multi",
            upload_id=init.upload_id,
            complete_multipart_upload=oss.CompleteMultipartUpload(parts=parts),
        )
    )
    got = eclient.get_object(oss.GetObjectRequest(bucket=BUCKET, key="v2-cse/multi"))
    assert got.body.read() == whole
    # oss2's CryptoBucket reads what alibabacloud-oss-v2 wrote
    provider = oss2.crypto.RsaProvider(
        key_pair={"private_key": private_pem, "public_key": public_pem}, mat_desc={"k": "v"}
    )
    crypto = oss2.CryptoBucket(oss2.Auth(AK, SK), emulator.endpoint, BUCKET, crypto_provider=provider)
    assert crypto.get_object("v2-cse/multi").read() == whole


def test_v2_sdk_objects(emulator: OssEmulator) -> None:
    client = _v2_client(emulator)
    data = os.urandom(4096)
    put = client.put_object(
        oss.PutObjectRequest(bucket=BUCKET, key="v2/obj one", body=data, metadata={"Owner": "me"})
    )
    assert put.etag == f'"{hashlib.md5(data).hexdigest().upper()}"'
    assert put.hash_crc64 == str(crc64(data))
    got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="v2/obj one"))
    assert got.body.read() == data
    assert got.metadata == {"owner": "me"} or got.metadata == {"Owner": "me"}
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="v2/obj one"))
    assert head.content_length == 4096
    part = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="v2/obj one", range_header="bytes=-100"))
    assert part.body.read() == data[-100:]
    assert part.content_range == "bytes 3996-4095/4096"
    client.copy_object(
        oss.CopyObjectRequest(bucket=BUCKET, key="v2/copy", source_bucket=BUCKET, source_key="v2/obj one")
    )
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="v2/copy")).body.read() == data
    client.copy_object(
        oss.CopyObjectRequest(
            bucket=BUCKET,
            key="v2/copy2",
            source_bucket=BUCKET,
            source_key="v2/obj one",
            metadata_directive="REPLACE",
            metadata={"New": "yes"},
        )
    )
    meta = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="v2/copy2")).metadata
    assert {k.lower(): v for k, v in meta.items()} == {"new": "yes"}
    for i in range(5):
        client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=f"v2/page/{i}", body=b"x"))
    keys: list[str] = []
    for page in client.list_objects_v2_paginator().iter_page(
        oss.ListObjectsV2Request(bucket=BUCKET, prefix="v2/page/", max_keys=2)
    ):
        keys += [o.key for o in page.contents or []]
    assert keys == [f"v2/page/{i}" for i in range(5)]
    keys = []
    for page in client.list_objects_paginator().iter_page(
        oss.ListObjectsRequest(bucket=BUCKET, prefix="v2/page/", max_keys=2)
    ):
        keys += [o.key for o in page.contents or []]
    assert keys == [f"v2/page/{i}" for i in range(5)]
    client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key="v2/copy"))
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="v2/copy"))
    err = info.value.unwrap()
    assert (err.status_code, err.code) == (404, "NoSuchKey")
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="v2/obj one", range_header="bytes=5000-"))
    assert (info.value.unwrap().status_code, info.value.unwrap().code) == (416, "InvalidRange")


def test_v2_sdk_multipart(emulator: OssEmulator) -> None:
    client = _v2_client(emulator)
    key = "v2/multi"
    init = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key=key))
    chunks = [os.urandom(100 * 1024), os.urandom(333)]
    parts = []
    for n, chunk in enumerate(chunks, 1):
        res = client.upload_part(
            oss.UploadPartRequest(bucket=BUCKET, key=key, upload_id=init.upload_id, part_number=n, body=chunk)
        )
        parts.append(oss.UploadPart(part_number=n, etag=res.etag))
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.complete_multipart_upload(
            oss.CompleteMultipartUploadRequest(
                bucket=BUCKET,
                key=key,
                upload_id=init.upload_id,
                complete_multipart_upload=oss.CompleteMultipartUpload(parts=parts[::-1]),
            )
        )
    assert (info.value.unwrap().status_code, info.value.unwrap().code) == (400, "InvalidPartOrder")
    listed = client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key=key, upload_id=init.upload_id))
    assert [p.size for p in listed.parts] == [len(c) for c in chunks]
    uploads = client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket=BUCKET, prefix="v2/"))
    assert [u.upload_id for u in uploads.uploads] == [init.upload_id]
    done = client.complete_multipart_upload(
        oss.CompleteMultipartUploadRequest(
            bucket=BUCKET,
            key=key,
            upload_id=init.upload_id,
            complete_multipart_upload=oss.CompleteMultipartUpload(parts=parts),
        )
    )
    assert done.hash_crc64 == str(crc64(b"".join(chunks)))
    got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key))
    assert got.body.read() == b"".join(chunks)
    other = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key=key))
    client.abort_multipart_upload(
        oss.AbortMultipartUploadRequest(bucket=BUCKET, key=key, upload_id=other.upload_id)
    )
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key=key, upload_id=other.upload_id))
    assert info.value.unwrap().code == "NoSuchUpload"


def test_v2_sdk_v1_signer(emulator: OssEmulator) -> None:
    client = _v2_client(emulator, signature_version="v1")
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="v2/extra?x=1&y", body=b"0123456789"))
    got = client.get_object(
        oss.GetObjectRequest(bucket=BUCKET, key="v2/extra?x=1&y", range_header="bytes=2-4")
    )
    assert got.body.read() == b"234"
    bad = _v2_client(emulator, secret="nope", signature_version="v1")
    with pytest.raises(oss.exceptions.OperationError) as info:
        bad.get_object(oss.GetObjectRequest(bucket=BUCKET, key="v2/extra?x=1&y"))
    assert info.value.unwrap().code == "SignatureDoesNotMatch"


def _send(method: str, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_v4_additional_headers(emulator: OssEmulator) -> None:
    """Neither SDK's client passes AdditionalHeaders, so sign with their V4 signers directly."""
    from alibabacloud_oss_v2.signer.v4 import SignerV4
    from alibabacloud_oss_v2.types import HttpRequest, SigningContext

    oss2.Bucket(oss2.Auth(AK, SK), emulator.endpoint, BUCKET).put_object("extra key", b"0123456789")
    url = f"{emulator.endpoint}/{BUCKET}/extra%20key?response-content-type=text%2Fplain"
    for secret, status in ((SK, 206), ("nope", 403)):
        req = HttpRequest("GET", url, headers={"Range": "bytes=2-4", "X-Extra": "yes", "User-Agent": "t"})
        ctx = SigningContext(
            product="oss",
            region="cn-hangzhou",
            bucket=BUCKET,
            key="extra key",
            request=req,
            credentials=oss.credentials.Credentials(AK, secret),
            additional_headers={"range", "x-extra"},
        )
        SignerV4().sign(ctx)
        assert "AdditionalHeaders=range;x-extra" in req.headers["Authorization"]
        code, body = _send("GET", url, dict(req.headers.items()))
        assert code == status, body
        if status == 206:
            assert body == b"234"

        oreq = oss2.http.Request(
            "GET",
            f"{emulator.endpoint}/{BUCKET}/extra%20key",
            params={"response-content-type": "text/plain"},
            headers={"Range": "bytes=2-4", "X-Extra": "yes"},
            region="cn-hangzhou",
            product="oss",
        )
        oss2.AuthV4(AK, secret)._sign_request(
            oreq, BUCKET, "extra key", in_additional_headers={"range", "x-extra"}
        )
        assert "AdditionalHeaders=" in oreq.headers["authorization"]
        code, body = _send("GET", url, {k: v for k, v in oreq.headers.items() if v is not None})
        assert code == status, body


def test_presigned_urls(bucket: oss2.Bucket, emulator: OssEmulator) -> None:
    bucket.put_object("presigned key", b"signed content")
    url = bucket.sign_url("GET", "presigned key", 60)
    assert _send("GET", url, {}) == (200, b"signed content")
    put_url = bucket.sign_url("PUT", "presigned put", 60, headers={"Content-Type": "text/plain"})
    assert _send_body("PUT", put_url, b"uploaded")[0] == 200
    assert bucket.get_object("presigned put").read() == b"uploaded"
    tampered = url.replace("presigned%20key", "other")
    assert _send("GET", tampered, {})[0] == 403
    code, body = _send("GET", bucket.sign_url("GET", "presigned key", -10), {})
    assert code == 403 and b"expired" in body
    client = _v2_client(emulator)
    result = client.presign(oss.GetObjectRequest(bucket=BUCKET, key="presigned key"))
    assert _send(result.method, result.url, dict(result.signed_headers or {})) == (200, b"signed content")


def _send_body(method: str, url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_chunked_upload(bucket: oss2.Bucket) -> None:
    chunks = [os.urandom(70_000) for _ in range(5)]
    bucket.put_object("chunked", iter(chunks))  # a generator is sent with Transfer-Encoding: chunked
    assert bucket.get_object("chunked").read() == b"".join(chunks)


def test_v2_sdk_wrong_secret(emulator: OssEmulator) -> None:
    client = _v2_client(emulator, secret="wrong")
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="denied", body=b"x"))
    err = info.value.unwrap()
    assert (err.status_code, err.code) == (403, "SignatureDoesNotMatch")


# --------------------------------------------------------------------------- emulator API and CLI


def test_request_log(emulator: OssEmulator) -> None:
    bucket = oss2.Bucket(oss2.Auth(AK, SK), emulator.endpoint, BUCKET)
    emulator.clear_log()
    upload_id = bucket.init_multipart_upload("logged").upload_id
    bucket.abort_multipart_upload("logged", upload_id)
    assert emulator.request_log == [
        ("POST", BUCKET, "logged", ("uploads",)),
        ("DELETE", BUCKET, "logged", ("uploadId",)),
    ]


def test_method_not_allowed_and_error_xml(emulator: OssEmulator) -> None:
    bucket = oss2.Bucket(oss2.Auth(AK, SK), emulator.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.get_object("missing-key")
    body = info.value.body.decode()
    assert "<Code>NoSuchKey</Code>" in body and "<RequestId>" in body and "<HostId>" in body
    assert info.value.request_id == info.value.headers["x-oss-request-id"]


def test_cli_prints_endpoint() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cse_oss.testing", "--port", "0", "--access-key-id", "cli-ak",
         "--access-key-secret", "cli-sk", "--bucket", "cli-bucket"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        fields = dict(part.split("=", 1) for part in line.split())
        assert fields["access_key_id"] == "cli-ak"
        assert fields["access_key_secret"] == "cli-sk"
        endpoint = fields["endpoint"]
        assert endpoint.startswith("http://127.0.0.1:")
        with pytest.raises(urllib.error.HTTPError) as info:  # unsigned: 403 OSS error XML
            urllib.request.urlopen(endpoint + "/cli-bucket/k", timeout=5)
        assert info.value.code == 403
        assert b"<Code>AccessDenied</Code>" in info.value.read()
        bucket = oss2.Bucket(oss2.Auth("cli-ak", "cli-sk"), endpoint, "cli-bucket")
        bucket.put_object("k", b"v")
        assert bucket.get_object("k").read() == b"v"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- server-side encryption, settings


def test_sse_headers_stored_and_echoed(bucket: oss2.Bucket, emulator: OssEmulator) -> None:
    """PutObject, InitiateMultipartUpload and UploadPart answer the object's SSE; GET and HEAD report it;
    the completed object keeps the upload's. Both signature versions sign the x-oss-* headers."""
    sse = {"x-oss-server-side-encryption": "KMS", "x-oss-server-side-encryption-key-id": "cmk-1"}
    put = bucket.put_object("sse/put", b"abc", headers=sse)
    assert put.headers["x-oss-server-side-encryption"] == "KMS"
    assert put.headers["x-oss-server-side-encryption-key-id"] == "cmk-1"
    got = bucket.get_object("sse/put")
    assert (got.headers["x-oss-server-side-encryption"], got.read()) == ("KMS", b"abc")
    init = bucket.init_multipart_upload("sse/mpu", headers={"x-oss-server-side-encryption": "KMS"})
    assert init.headers["x-oss-server-side-encryption-key-id"] == emulator.default_kms_key_id
    part = bucket.upload_part("sse/mpu", init.upload_id, 1, b"part")
    assert part.headers["x-oss-server-side-encryption"] == "KMS"
    assert part.headers["x-oss-server-side-encryption-key-id"] == emulator.default_kms_key_id
    bucket.complete_multipart_upload("sse/mpu", init.upload_id, [oss2.models.PartInfo(1, part.etag)])
    head = bucket.head_object("sse/mpu")
    assert head.headers["x-oss-server-side-encryption"] == "KMS"
    assert head.headers["x-oss-server-side-encryption-key-id"] == emulator.default_kms_key_id
    sm4 = bucket.put_object("sse/sm4", b"x", headers={"x-oss-server-side-encryption": "SM4"})
    assert sm4.headers["x-oss-server-side-encryption"] == "SM4"
    assert "x-oss-server-side-encryption-key-id" not in bucket.head_object("sse/sm4").headers
    assert "x-oss-server-side-encryption" not in bucket.put_object("sse/none", b"x").headers


def test_copy_keeps_sse_and_storage_class_unless_given(bucket: oss2.Bucket) -> None:
    """CopyObject keeps the source's SSE and storage class (with COPY and with REPLACE metadata), takes
    the request's when given; REPLACE drops the content headers not sent again."""
    bucket.put_object(
        "copy/src",
        b"data",
        headers={
            "x-oss-server-side-encryption": "AES256",
            "x-oss-storage-class": "IA",
            "Content-Type": "text/plain",
            "Content-Disposition": "inline",
            "Cache-Control": "no-cache",
            "x-oss-meta-a": "1",
        },
    )
    bucket.copy_object(BUCKET, "copy/src", "copy/same")
    bucket.copy_object(BUCKET, "copy/src", "copy/replaced", headers={"x-oss-metadata-directive": "REPLACE"})
    for key in ("copy/same", "copy/replaced"):
        headers = bucket.head_object(key).headers
        assert headers["x-oss-server-side-encryption"] == "AES256", key
        assert headers["x-oss-storage-class"] == "IA", key
    same = bucket.head_object("copy/same").headers
    assert (same["Content-Type"], same["Content-Disposition"], same["Cache-Control"]) == (
        "text/plain",
        "inline",
        "no-cache",
    )
    assert same["x-oss-meta-a"] == "1"
    replaced = bucket.head_object("copy/replaced").headers
    assert "Content-Disposition" not in replaced and "x-oss-meta-a" not in replaced
    bucket.copy_object(
        BUCKET,
        "copy/src",
        "copy/changed",
        headers={"x-oss-server-side-encryption": "SM4", "x-oss-storage-class": "Archive"},
    )
    changed = bucket.head_object("copy/changed").headers
    assert (changed["x-oss-server-side-encryption"], changed["x-oss-storage-class"]) == ("SM4", "Archive")
    listed = {o.key: o.storage_class for o in oss2.ObjectIteratorV2(bucket, prefix="copy/")}
    assert listed["copy/changed"] == "Archive" and listed["copy/src"] == "IA"


def test_tagging(bucket: oss2.Bucket) -> None:
    """x-oss-tagging on PutObject, InitiateMultipartUpload and CopyObject (x-oss-tagging-directive),
    GetObjectTagging's XML, x-oss-tagging-count on HEAD and GET, Put/DeleteObjectTagging."""
    rule = oss2.models.TaggingRule()
    rule.add("project", "cse")
    rule.add("note", "a b&c=d")
    bucket.put_object("tags/src", b"x", headers={"x-oss-tagging": rule.to_query_string()})
    assert bucket.get_object_tagging("tags/src").tag_set.tagging_rule == {"project": "cse", "note": "a b&c=d"}
    assert bucket.head_object("tags/src").headers["x-oss-tagging-count"] == "2"
    assert bucket.get_object("tags/src").headers["x-oss-tagging-count"] == "2"
    bucket.copy_object(BUCKET, "tags/src", "tags/copied", headers={"x-oss-metadata-directive": "REPLACE"})
    assert bucket.get_object_tagging("tags/copied").tag_set.tagging_rule == {
        "project": "cse",
        "note": "a b&c=d",
    }
    bucket.copy_object(
        BUCKET,
        "tags/src",
        "tags/replaced",
        headers={"x-oss-tagging-directive": "Replace", "x-oss-tagging": "k=v"},
    )
    assert bucket.get_object_tagging("tags/replaced").tag_set.tagging_rule == {"k": "v"}
    with pytest.raises(oss2.exceptions.OssError) as caught:
        bucket.copy_object(BUCKET, "tags/src", "tags/bad", headers={"x-oss-tagging-directive": "Merge"})
    assert (caught.value.status, caught.value.code) == (400, "InvalidArgument")
    init = bucket.init_multipart_upload("tags/mpu", headers={"x-oss-tagging": "stage=mpu"})
    part = bucket.upload_part("tags/mpu", init.upload_id, 1, b"p")
    bucket.complete_multipart_upload("tags/mpu", init.upload_id, [oss2.models.PartInfo(1, part.etag)])
    assert bucket.get_object_tagging("tags/mpu").tag_set.tagging_rule == {"stage": "mpu"}
    new = oss2.models.TaggingRule()
    new.add("x", "1")
    bucket.put_object_tagging("tags/mpu", oss2.models.Tagging(new))
    assert bucket.get_object_tagging("tags/mpu").tag_set.tagging_rule == {"x": "1"}
    bucket.delete_object_tagging("tags/mpu")
    assert bucket.get_object_tagging("tags/mpu").tag_set.tagging_rule == {}
    assert "x-oss-tagging-count" not in bucket.head_object("tags/mpu").headers
    eleven = "&".join(f"t{i}=v" for i in range(11))
    with pytest.raises(oss2.exceptions.OssError) as caught:
        bucket.put_object("tags/many", b"x", headers={"x-oss-tagging": eleven})
    assert (caught.value.status, caught.value.code) == (400, "InvalidArgument")


def test_bucket_encryption(emulator: OssEmulator) -> None:
    """?encryption: Put/Get/DeleteBucketEncryption with oss2's ServerSideEncryptionRule, 404
    NoSuchServerSideEncryptionRule without one, and the default applied to new objects (not to those
    with their own header, nor to objects written before)."""
    emulator.create_bucket("cse-sse-default")
    for auth in (oss2.Auth(AK, SK), oss2.AuthV4(AK, SK)):
        b = oss2.Bucket(auth, emulator.endpoint, "cse-sse-default", region="cn-hangzhou")
        with pytest.raises(oss2.exceptions.NoSuchServerSideEncryptionRule):
            b.get_bucket_encryption()
        b.put_object("before", b"x")
        b.put_bucket_encryption(oss2.models.ServerSideEncryptionRule("KMS", "bucket-cmk"))
        rule = b.get_bucket_encryption()
        assert (rule.sse_algorithm, rule.kms_master_keyid) == ("KMS", "bucket-cmk")
        b.put_object("after", b"x")
        b.put_object("own", b"x", headers={"x-oss-server-side-encryption": "AES256"})
        assert b.head_object("after").headers["x-oss-server-side-encryption-key-id"] == "bucket-cmk"
        assert b.head_object("own").headers["x-oss-server-side-encryption"] == "AES256"
        assert "x-oss-server-side-encryption" not in b.head_object("before").headers
        b.put_bucket_encryption(oss2.models.ServerSideEncryptionRule("AES256"))
        rule = b.get_bucket_encryption()
        assert (rule.sse_algorithm, rule.kms_master_keyid) == ("AES256", None)
        b.delete_bucket_encryption()
        b.delete_bucket_encryption()  # not an error without one
        with pytest.raises(oss2.exceptions.NoSuchServerSideEncryptionRule):
            b.get_bucket_encryption()
        for key in ("before", "after", "own"):
            b.delete_object(key)


def test_v2_sdk_sse_and_settings(emulator: OssEmulator) -> None:
    """alibabacloud-oss-v2's request fields for SSE, storage class and tagging reach the emulator."""
    client = _v2_client(emulator)
    client.put_object(
        oss.PutObjectRequest(
            bucket=BUCKET,
            key="v2/sse",
            body=b"x",
            server_side_encryption="KMS",
            server_side_encryption_key_id="v2-cmk",
            storage_class="ColdArchive",
            tagging="a=1&b=2",
        )
    )
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="v2/sse"))
    assert (head.server_side_encryption, head.server_side_encryption_key_id) == ("KMS", "v2-cmk")
    assert (head.storage_class, head.tagging_count) == ("ColdArchive", 2)
