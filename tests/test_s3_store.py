"""The S3 store on moto's S3 server: the store conformance suite, instruction files, URLs, errors, and
EncryptionClient round trips on ``s3://`` URLs in s3-v3, s3-v2 and cse-v1."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from cse_s3 import S3Store

from cse.client import EncryptionClient
from cse.config import CommitmentPolicy, TransferConfig
from cse.exceptions import (
    ConfigurationError,
    DecryptionError,
    InvalidRangeError,
    MetadataError,
    ObjectNotFoundError,
    StoreError,
)
from cse.testing.stores import StoreConformance

MiB = 1024 * 1024
V2_POLICY = CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT  # writes and reads s3-v2 (no key commitment)


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point default boto3 clients (``S3Store.from_url``, ``s3://`` URLs) at moto's server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    return moto_endpoint


@pytest.fixture
def moto_no_such_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto answer UploadPart and CompleteMultipartUpload of an unknown upload as S3 does (404
    NoSuchUpload).

    moto 5.2 looks the upload up without a check there and answers 500 (a KeyError); this fixes the fake,
    not the code under test.
    """
    from moto.s3.exceptions import NoSuchUpload
    from moto.s3.models import S3Backend

    for name in ("upload_part", "complete_multipart_upload"):
        original = getattr(S3Backend, name)

        def checked(
            self: Any, bucket_name: str, multipart_id: str, *args: Any, _original: Any = original
        ) -> Any:
            if multipart_id not in self.get_bucket(bucket_name).multiparts:
                raise NoSuchUpload(upload_id=multipart_id)
            return _original(self, bucket_name, multipart_id, *args)

        monkeypatch.setattr(S3Backend, name, checked)


@pytest.fixture
def store(s3_client: Any, s3_bucket: str, s3_env: str) -> Iterator[S3Store]:
    """An S3 store on a fresh bucket."""
    s = S3Store(s3_bucket, client=s3_client)
    yield s
    s.close()


@pytest.fixture
def writer(s3_client: Any, s3_bucket: str, s3_env: str) -> S3Store:
    """A store of the same bucket that writes instruction files."""
    return S3Store(s3_bucket, client=s3_client, write_instruction_file=True)


class TestS3StoreConformance(StoreConformance):
    """The shared store suite against a fresh moto bucket."""

    md5_etags = True
    storage_class = "STANDARD_IA"

    @pytest.fixture
    def store(
        self, s3_client: Any, s3_bucket: str, s3_env: str, moto_no_such_upload: None
    ) -> Iterator[S3Store]:
        s = S3Store(s3_bucket, client=s3_client)
        yield s
        s.close()


def _data(size: int) -> bytes:
    return os.urandom(size)


def _raw_meta(s3_client: Any, bucket: str, key: str) -> dict[str, str]:
    return dict(s3_client.head_object(Bucket=bucket, Key=key)["Metadata"])


# ------------------------------------------------------------------------------------- URLs and errors


def test_from_url_and_url(s3_env: str, s3_bucket: str) -> None:
    """s3://BUCKET/KEY opens a default client on the bucket; the key is verbatim."""
    store, key = S3Store.from_url(f"s3://{s3_bucket}/a/b c/ü.bin")
    assert isinstance(store, S3Store)
    assert (store.bucket, key) == (s3_bucket, "a/b c/ü.bin")
    assert store.url(key) == f"s3://{s3_bucket}/a/b c/ü.bin"
    assert store.url("") == f"s3://{s3_bucket}/"
    assert S3Store.from_url(f"s3://{s3_bucket}")[1] == ""
    assert store.default_format == "s3-v3"
    assert (store.min_part_size, store.max_parts) == (5 * MiB, 10_000)
    store.close()
    for bad in ("s3://", "s3:///key", "file:///x"):
        with pytest.raises(ConfigurationError):
            S3Store.from_url(bad)


def test_errors_are_mapped(store: S3Store, s3_client: Any) -> None:
    """Missing objects, unsatisfiable ranges, missing buckets and bad arguments become cse errors."""
    with pytest.raises(ObjectNotFoundError, match=f"s3://{store.bucket}/nope") as caught:
        store.head("nope")
    assert caught.value.__cause__ is not None
    store.put("short", b"0123456789", {})
    with pytest.raises(InvalidRangeError):
        store.get("short", 10)
    with pytest.raises(InvalidRangeError):
        store.get("short", 5, 4)
    other = S3Store("cse-no-such-bucket-for-sure", client=s3_client)
    with pytest.raises(StoreError, match="does not exist"):
        other.get("x")  # (a HEAD has no body to say which of bucket and key is missing)
    with pytest.raises(ConfigurationError, match="ASCII"):
        store.put("k", b"", {"note": "café"})
    with pytest.raises(ConfigurationError):
        S3Store("a/b", client=s3_client)


def test_list_multipart_uploads_reports_metadata_only_from_this_instance(
    store: S3Store, s3_client: Any
) -> None:
    """S3 does not return an upload's metadata: another store instance sees {}."""
    upload_id = store.create_multipart("pending", {"x-note": "mine"})
    other = S3Store(store.bucket, client=s3_client)
    assert [(u.upload_id, dict(u.metadata)) for u in store.list_multipart_uploads()] == [
        (upload_id, {"x-note": "mine"})
    ]
    assert [dict(u.metadata) for u in other.list_multipart_uploads()] == [{}]
    store.abort_multipart("pending", upload_id)


def test_copy_of_large_objects_goes_part_by_part(store: S3Store) -> None:
    """Above max_copy_size, copy uses UploadPartCopy; bytes and (replaced) metadata come out right."""
    data = _data(11 * MiB)
    store.put("big", data, {"old": "1"})
    store.max_copy_size = 6 * MiB
    store.copy_part_size = 5 * MiB
    info = store.copy("big", "big-copy", {"new": "2"})
    assert info.size == len(data)
    assert info.etag.endswith("-3")
    assert store.read_all("big-copy") == data
    assert dict(store.head("big-copy").metadata) == {"new": "2"}
    store.copy("big", "big-kept")
    assert dict(store.head("big-kept").metadata) == {"old": "1"}
    assert store.list_multipart_uploads() == []


# ------------------------------------------------------------------------------ EncryptionClient on S3


@pytest.mark.parametrize(("fmt", "policy"), [("s3-v3", None), ("s3-v2", V2_POLICY)])
def test_round_trip_single_put(
    fmt: str, policy: CommitmentPolicy | None, key_a: str, s3_bucket: str, s3_client: Any, s3_env: str
) -> None:
    """put/get/head on s3:// URLs with an rsa:// key (RSA-OAEP-SHA1 for S3)."""
    url = f"s3://{s3_bucket}/dir/single.bin"
    data = _data(100_000)
    kwargs: dict[str, Any] = {"commitment_policy": policy} if policy else {}
    with EncryptionClient(key_a, format=fmt, **kwargs) as client:
        result = client.put(url, data)
        assert (result.parts, result.size, result.stored_size) == (0, len(data), len(data) + 16)
        assert client.get(url) == data
        head = client.head(url)
        assert (head.size, head.stored_size, head.envelope.format) == (len(data), len(data) + 16, fmt)
    md = _raw_meta(s3_client, s3_bucket, "dir/single.bin")
    assert md["x-amz-unencrypted-content-length"] == str(len(data))
    if fmt == "s3-v3":
        assert md["x-amz-c"] == "115"
        assert md["x-amz-w"] == "22"
        assert {"x-amz-3", "x-amz-i", "x-amz-d"} <= set(md)
        assert not {"x-amz-key-v2", "x-amz-tag-len", "x-amz-t"} & set(md)
    else:
        assert md["x-amz-cek-alg"] == "AES/GCM/NoPadding"
        assert md["x-amz-wrap-alg"] == "RSA-OAEP-SHA1"
        assert (md["x-amz-tag-len"], md["x-amz-matdesc"]) == ("128", "{}")
        assert "x-amz-3" not in md


@pytest.mark.parametrize(("fmt", "policy"), [("s3-v3", None), ("s3-v2", V2_POLICY)])
def test_round_trip_multipart_and_ranges(
    fmt: str, policy: CommitmentPolicy | None, key_a: str, s3_bucket: str, s3_client: Any, s3_env: str
) -> None:
    """An 11 MiB object goes up in 5 MiB parts; ranged reads need allow_unauthenticated_ranges."""
    url = f"s3://{s3_bucket}/multi.bin"
    data = _data(11 * MiB + 123)
    config = TransferConfig(multipart_threshold=1 * MiB, part_size=5 * MiB)
    kwargs: dict[str, Any] = {"commitment_policy": policy} if policy else {}
    with EncryptionClient(key_a, format=fmt, config=config, **kwargs) as client:
        result = client.put(url, data)
        assert result.parts == 3
        assert client.get(url) == data
        assert client.head(url).size == len(data)
        with pytest.raises(ConfigurationError, match="allow_unauthenticated_ranges"):
            client.get(url, range="bytes=100-199")
    md = _raw_meta(s3_client, s3_bucket, "multi.bin")
    assert md["x-amz-unencrypted-content-length"] == str(len(data))
    with EncryptionClient(key_a, allow_unauthenticated_ranges=True, **kwargs) as client:
        for start, end in [(0, 0), (100, 199), (5 * MiB - 3, 5 * MiB + 20), (len(data) - 17, len(data) - 1)]:
            assert client.get(url, range=f"bytes={start}-{end}") == data[start : end + 1]


def test_tampered_body_fails_authentication(key_a: str, s3_bucket: str, s3_client: Any, s3_env: str) -> None:
    """Flip one body byte, keep the metadata: the opaque DecryptionError."""
    url = f"s3://{s3_bucket}/tampered.bin"
    with EncryptionClient(key_a) as client:
        client.put(url, b"attack at dawn" * 100)
        raw = s3_client.get_object(Bucket=s3_bucket, Key="tampered.bin")
        body = bytearray(raw["Body"].read())
        body[10] ^= 1
        s3_client.put_object(Bucket=s3_bucket, Key="tampered.bin", Body=bytes(body), Metadata=raw["Metadata"])
        with pytest.raises(DecryptionError) as caught:
            client.get(url)
        assert type(caught.value) is DecryptionError


def test_v2_needs_the_commitment_policy_opt_in(key_a: str, s3_bucket: str, s3_env: str) -> None:
    """As the official client: s3-v2 is written and read only with a policy that allows it."""
    url = f"s3://{s3_bucket}/v2.bin"
    with pytest.raises(ConfigurationError, match="commitment"):
        EncryptionClient(key_a, format="s3-v2").put(url, b"x")
    EncryptionClient(key_a, format="v2", commitment_policy=V2_POLICY).put(url, b"x")
    with pytest.raises(ConfigurationError, match="commitment"):
        EncryptionClient(key_a).get(url)
    allow = CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
    assert EncryptionClient(key_a, commitment_policy=allow).get(url) == b"x"


def test_cse_v1_on_s3(key_a: str, s3_bucket: str, s3_env: str) -> None:
    """cse-v1 works on S3 too, with authenticated ranges."""
    url = f"s3://{s3_bucket}/native.bin"
    data = _data(600_000)
    with EncryptionClient(key_a, format="cse-v1") as client:
        client.put(url, data)
        assert client.head(url).envelope.format == "cse-v1"
        assert client.get(url) == data
        assert client.get(url, range="bytes=300000-300099") == data[300000:300100]


def test_more_than_one_wrapped_key_field_is_refused_on_read(
    key_a: str, s3_bucket: str, s3_client: Any, s3_env: str
) -> None:
    """An object carrying x-amz-3 and x-amz-key-v2 is refused, whatever the settings."""
    url = f"s3://{s3_bucket}/confused.bin"
    with EncryptionClient(key_a) as client:
        client.put(url, b"secret")
    raw = s3_client.get_object(Bucket=s3_bucket, Key="confused.bin")
    md = {**raw["Metadata"], "x-amz-key-v2": raw["Metadata"]["x-amz-3"]}
    s3_client.put_object(Bucket=s3_bucket, Key="confused.bin", Body=raw["Body"].read(), Metadata=md)
    client = EncryptionClient(key_a, allow_legacy=True, commitment_policy=V2_POLICY)
    with pytest.raises(MetadataError, match="several formats"):
        client.get(url)


# ------------------------------------------------------------------------------------ instruction files


def _to_instruction_layout(s3_client: Any, bucket: str, key: str, v3: bool) -> dict[str, str]:
    """Rewrite an object written with metadata into the Java instruction-file layout, by plain boto3."""
    raw = s3_client.get_object(Bucket=bucket, Key=key)
    md = dict(raw["Metadata"])
    in_file = (
        ("x-amz-3", "x-amz-w", "x-amz-t", "x-amz-m") if v3 else tuple(k for k in md if k.startswith("x-amz-"))
    )
    in_file = tuple(k for k in in_file if k in md and k != "x-amz-unencrypted-content-length")
    instruction = {k: md.pop(k) for k in in_file}
    s3_client.put_object(Bucket=bucket, Key=key, Body=raw["Body"].read(), Metadata=md)
    s3_client.put_object(
        Bucket=bucket,
        Key=key + ".instruction",
        Body=json.dumps(instruction, separators=(",", ":")).encode(),
        Metadata={"x-amz-crypto-instr-file": ""},
    )
    return instruction


@pytest.mark.parametrize(("fmt", "policy"), [("s3-v3", None), ("s3-v2", V2_POLICY)])
def test_reads_instruction_files(
    fmt: str, policy: CommitmentPolicy | None, key_a: str, s3_bucket: str, s3_client: Any, s3_env: str
) -> None:
    """Objects whose key material is in KEY.instruction (both layouts) decrypt; the store merges."""
    url = f"s3://{s3_bucket}/inst.bin"
    data = _data(3000)
    kwargs: dict[str, Any] = {"commitment_policy": policy} if policy else {}
    with EncryptionClient(key_a, format=fmt, **kwargs) as client:
        client.put(url, data)
        instruction = _to_instruction_layout(s3_client, s3_bucket, "inst.bin", fmt == "s3-v3")
        own = _raw_meta(s3_client, s3_bucket, "inst.bin")
        assert not ({"x-amz-3", "x-amz-key-v2"} & set(own))
        head = client.head(url)
        assert head.envelope.instruction_file
        assert head.metadata["x-amz-crypto-instr-file"] == ""
        assert {k: head.metadata[k] for k in instruction} == instruction
        assert client.get(url) == data
        assert [i.key for i in client.list(f"s3://{s3_bucket}/")] == ["inst.bin"]
        client.delete(url)
    assert "Contents" not in s3_client.list_objects_v2(Bucket=s3_bucket)


def test_instruction_file_refusals(key_a: str, s3_bucket: str, s3_client: Any, store: S3Store) -> None:
    """Tampered instruction files are refused as the official clients refuse them."""
    url = store.url("inst.bin")
    client = EncryptionClient(key_a)
    client.put((store, "inst.bin"), b"payload")
    instruction = _to_instruction_layout(s3_client, s3_bucket, "inst.bin", v3=True)
    own = _raw_meta(s3_client, s3_bucket, "inst.bin")

    def put_instruction(content: dict[str, str]) -> None:
        s3_client.put_object(
            Bucket=s3_bucket, Key="inst.bin.instruction", Body=json.dumps(content).encode(), Metadata={}
        )

    put_instruction({**instruction, "x-amz-d": own["x-amz-d"]})  # V3 object keys may not be in the file
    with pytest.raises(MetadataError, match="x-amz-d"):
        store.head("inst.bin")
    put_instruction({**instruction, "x-amz-note": "x"})  # keys no client writes
    with pytest.raises(MetadataError, match="x-amz-note"):
        store.head("inst.bin")
    s3_client.put_object(Bucket=s3_bucket, Key="inst.bin.instruction", Body=b"not json")
    with pytest.raises(MetadataError, match="JSON"):
        client.get(url)
    s3_client.delete_object(Bucket=s3_bucket, Key="inst.bin.instruction")
    with pytest.raises(MetadataError, match="instruction file"):
        client.get(url)
    # a V2 key swapped in for a V3 object's key material (a downgrade) is refused
    put_instruction(
        {
            "x-amz-key-v2": instruction["x-amz-3"],
            "x-amz-iv": "AAAAAAAAAAAAAAAA",
            "x-amz-cek-alg": "AES/GCM/NoPadding",
            "x-amz-wrap-alg": "RSA-OAEP-SHA1",
            "x-amz-tag-len": "128",
        }
    )
    with pytest.raises(MetadataError):
        EncryptionClient(key_a, commitment_policy=V2_POLICY).get(url)


def test_v1_v2_instruction_file_with_content_keys_on_the_object_is_refused(
    key_a: str, s3_bucket: str, s3_client: Any, store: S3Store
) -> None:
    """A V1/V2 instruction file while the object itself carries x-amz-iv: refused."""
    EncryptionClient(key_a, format="s3-v2", commitment_policy=V2_POLICY).put((store, "v2.bin"), b"p")
    instruction = _to_instruction_layout(s3_client, s3_bucket, "v2.bin", v3=False)
    raw = s3_client.get_object(Bucket=s3_bucket, Key="v2.bin")
    s3_client.put_object(
        Bucket=s3_bucket,
        Key="v2.bin",
        Body=raw["Body"].read(),
        Metadata={"x-amz-iv": instruction["x-amz-iv"]},
    )
    with pytest.raises(MetadataError, match="x-amz-iv"):
        store.head("v2.bin")


def test_plain_objects_beside_unrelated_instruction_named_objects(store: S3Store, s3_client: Any) -> None:
    """A plain object "x" with an unrelated plain "x.instruction" is left alone."""
    store.put("notes", b"plain", {"a": "b"})
    s3_client.put_object(Bucket=store.bucket, Key="notes.instruction", Body=b"my own notes")
    assert dict(store.head("notes").metadata) == {"a": "b"}
    with store.get("notes") as result:
        assert dict(result.info.metadata) == {"a": "b"}
    raw = S3Store(store.bucket, client=s3_client, instruction_files=False)
    assert [i.key for i in raw.list()] == ["notes", "notes.instruction"]
    assert [i.key for i in store.list()] == ["notes"]


@pytest.mark.parametrize(("fmt", "policy"), [("s3-v3", None), ("s3-v2", V2_POLICY)])
def test_writes_instruction_files_on_request(
    fmt: str, policy: CommitmentPolicy | None, key_a: str, writer: S3Store, s3_client: Any, store: S3Store
) -> None:
    """write_instruction_file=True: the Java layout, single and multipart; any S3 store reads it back."""
    kwargs: dict[str, Any] = {"commitment_policy": policy} if policy else {}
    config = TransferConfig(multipart_threshold=1 * MiB, part_size=5 * MiB)
    client = EncryptionClient(key_a, format=fmt, config=config, **kwargs)
    small, large = _data(1000), _data(6 * MiB)
    client.put((writer, "small.bin"), small)
    assert client.put((writer, "large.bin"), large).parts == 2
    for key, data in (("small.bin", small), ("large.bin", large)):
        own = _raw_meta(s3_client, writer.bucket, key)
        instruction_object = s3_client.get_object(Bucket=writer.bucket, Key=key + ".instruction")
        assert instruction_object["Metadata"] == {"x-amz-crypto-instr-file": ""}
        instruction = json.loads(instruction_object["Body"].read())
        assert own["x-amz-unencrypted-content-length"] == str(len(data))
        if fmt == "s3-v3":
            assert {"x-amz-c", "x-amz-d", "x-amz-i"} <= set(own)
            assert set(instruction) == {"x-amz-3", "x-amz-w"}
        else:
            assert not [k for k in own if k != "x-amz-unencrypted-content-length"]
            assert set(instruction) == {
                "x-amz-key-v2",
                "x-amz-iv",
                "x-amz-cek-alg",
                "x-amz-wrap-alg",
                "x-amz-tag-len",
                "x-amz-matdesc",
            }
        assert client.get((store, key)) == data
        assert client.head((store, key)).envelope.instruction_file
    writer.delete("small.bin")
    with pytest.raises(ObjectNotFoundError):
        store.head("small.bin.instruction")


def test_rewrap_and_copy_keep_the_instruction_file_layout(
    key_a: str, key_b: str, writer: S3Store, store: S3Store, s3_client: Any
) -> None:
    """Re-wrapping an instruction-file object rewrites the file (even through a store that would not
    write one); a copy without new metadata takes the file along."""
    EncryptionClient(key_a).put((writer, "obj.bin"), b"rotate me")
    old = s3_client.get_object(Bucket=store.bucket, Key="obj.bin.instruction")["Body"].read()
    EncryptionClient(key_a).rewrap((store, "obj.bin"), to_keys=[key_b])
    own = _raw_meta(s3_client, store.bucket, "obj.bin")
    assert "x-amz-3" not in own
    assert "x-amz-crypto-instr-file" not in own
    new = s3_client.get_object(Bucket=store.bucket, Key="obj.bin.instruction")["Body"].read()
    assert new != old
    assert EncryptionClient(key_b).get((store, "obj.bin")) == b"rotate me"
    with pytest.raises(DecryptionError):
        EncryptionClient(key_a).get((store, "obj.bin"))
    store.copy("obj.bin", "copy.bin")
    assert EncryptionClient(key_b).get((store, "copy.bin")) == b"rotate me"
    assert sorted(i.key for i in store.list()) == ["copy.bin", "obj.bin"]


def test_kms_context_round_trip(kms_client: Any, kms_key_id: str, store: S3Store, s3_client: Any) -> None:
    """kms+context (x-amz-w 12): x-amz-t holds the user's context plus aws:x-amz-cek-alg, as KMS saw it."""
    cse_aws_kms = pytest.importorskip("cse_aws_kms")
    provider = cse_aws_kms.AwsKmsProvider(kms_key_id, client=kms_client)
    client = EncryptionClient(provider, encryption_context={"team": "finance"})
    client.put((store, "kms.bin"), b"under kms")
    md = _raw_meta(s3_client, store.bucket, "kms.bin")
    assert md["x-amz-w"] == "12"
    assert json.loads(md["x-amz-t"]) == {"team": "finance", "aws:x-amz-cek-alg": "115"}
    head = client.head((store, "kms.bin"))
    assert head.envelope.encryption_context == {"team": "finance", "aws:x-amz-cek-alg": "115"}
    assert client.get((store, "kms.bin")) == b"under kms"
    with pytest.raises(ConfigurationError, match="aws:x-amz-cek-alg"):
        client.put((store, "bad.bin"), b"x", encryption_context={"aws:x-amz-cek-alg": "AES/GCM/NoPadding"})
