"""Server-side encryption under client-side encryption, end to end (issue 16): on moto's S3 with AWS KMS and
on the OSS emulator.

Objects cse writes with SSE-KMS or SSE-S3/SSE-OSS, single and multipart, with content type, tags and a
storage class: the plain SDK (boto3, oss2 ``head_object``) sees them server-side encrypted; cse and the
official encryption clients (``s3_encryption``, oss2's ``CryptoBucket``) decrypt them; ``cse head --json``
reports both layers; a rewrap (metadata replace) keeps SSE on both stores; migrate S3 -> OSS keeps SSE by
the cross-store rule of :mod:`cse.settings`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

s3_encryption = pytest.importorskip("s3_encryption")
oss2 = pytest.importorskip("oss2")

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from cse_aws_kms import AwsKmsProvider  # noqa: E402
from cse_oss.store import OssStore  # noqa: E402
from cse_s3 import S3Store  # noqa: E402
from s3_encryption import S3EncryptionClient, S3EncryptionClientConfig  # noqa: E402
from s3_encryption.materials.kms_keyring import KmsKeyring  # noqa: E402

from cse.cli import main  # noqa: E402
from cse.client import EncryptionClient  # noqa: E402
from cse.config import TransferConfig  # noqa: E402
from cse.exceptions import ConfigurationError  # noqa: E402
from cse.migrate import migrate  # noqa: E402
from cse.stores.base import ServerSideEncryption  # noqa: E402
from tests.conftest import oss2_bucket  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

MiB = 1024 * 1024
MULTIPART = TransferConfig(multipart_threshold=8 * MiB, part_size=5 * MiB)
CONTENT: dict[str, Any] = {
    "content_type": "text/csv",
    "content_disposition": 'attachment; filename="r.csv"',
    "cache_control": "max-age=60",
    "tags": {"team": "data"},
}


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(s3={"addressing_style": "path"})
    )


def _ok(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return str(result.output)


# ------------------------------------------------------------------------------------------------- S3


@pytest.fixture
def s3(moto_endpoint: str, kms_client: Any, kms_key_id: str, s3_bucket: str) -> Any:
    """``(cse client factory, store, official client)`` on one bucket, all with the same KMS key."""
    store = S3Store(s3_bucket, client=_s3(moto_endpoint))

    def client(config: TransferConfig | None = None) -> EncryptionClient:
        return EncryptionClient(AwsKmsProvider(kms_key_id, client=kms_client), config=config)

    official = S3EncryptionClient(
        wrapped_s3_client=_s3(moto_endpoint),
        config=S3EncryptionClientConfig(keyring=KmsKeyring(kms_client=kms_client, kms_key_id=kms_key_id)),
    )
    return client, store, official


@pytest.mark.parametrize("multipart", [False, True], ids=["single", "multipart"])
@pytest.mark.parametrize("mode", ["kms", "aes256"])
def test_s3_sse_under_cse_plain_sdk_sees_it_and_both_clients_read_it(
    s3: Any, s3_client: Any, s3_bucket: str, kms_key_id: str, mode: str, multipart: bool
) -> None:
    make, store, official = s3
    client = make(MULTIPART if multipart else None)
    data = os.urandom(17 * MiB + 3 if multipart else 1000)
    key_id = kms_key_id if mode == "kms" else None
    result = client.put(
        (store, "k"), data, sse=mode, sse_key_id=key_id, storage_class="STANDARD_IA", **CONTENT
    )
    assert (result.parts > 0) == multipart
    plain = s3_client.head_object(Bucket=s3_bucket, Key="k")
    assert plain["ServerSideEncryption"] == ("aws:kms" if mode == "kms" else "AES256")
    if mode == "kms":
        assert kms_key_id in plain["SSEKMSKeyId"]
    assert plain["ContentType"] == "text/csv" and plain["CacheControl"] == "max-age=60"
    assert plain["ContentDisposition"] == CONTENT["content_disposition"]
    assert plain["StorageClass"] == "STANDARD_IA"
    tags = s3_client.get_object_tagging(Bucket=s3_bucket, Key="k")["TagSet"]
    assert tags == [{"Key": "team", "Value": "data"}]
    assert client.get((store, "k")) == data
    assert official.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == data
    head = client.head((store, "k"))
    assert head.sse_source == "object" and head.server_side_encryption is not None
    assert head.server_side_encryption.mode == mode
    assert head.settings.content_type == "text/csv" and head.settings.storage_class == "STANDARD_IA"


def test_s3_instruction_file_gets_the_same_sse_not_the_content_settings(
    s3: Any, s3_client: Any, s3_bucket: str, kms_key_id: str
) -> None:
    make, store, official = s3
    store.write_instruction_file = True
    client = make()
    client.put((store, "k"), b"data", sse="kms", sse_key_id=kms_key_id, **CONTENT)
    instruction = s3_client.head_object(Bucket=s3_bucket, Key="k.instruction")
    assert instruction["ServerSideEncryption"] == "aws:kms" and kms_key_id in instruction["SSEKMSKeyId"]
    assert instruction.get("ContentType") != "text/csv"
    assert s3_client.get_object_tagging(Bucket=s3_bucket, Key="k.instruction")["TagSet"] == []
    assert client.get((store, "k")) == b"data"
    assert official.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"data"


def test_s3_cli_put_head_and_rewrap_keep_sse(
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    s3_client: Any,
    s3_bucket: str,
    kms_client: Any,
    kms_key_id: str,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    other = kms_client.create_key(Description="the new key")["KeyMetadata"]["KeyId"]
    key, new = f"aws-kms://{kms_key_id}?region=us-east-1", f"aws-kms://{other}?region=us-east-1"
    src = tmp_path / "in.csv"
    src.write_bytes(b"a,b\n")
    url = f"s3://{s3_bucket}/r.csv"
    _ok(
        "put", str(src), url, "--key", key, "--sse", "aws:kms", "--sse-key-id", kms_key_id,
        "--content-type", "text/csv", "--tag", "team=data", "--storage-class", "STANDARD_IA",
    )  # fmt: skip
    head = json.loads(_ok("head", url, "--json"))
    sse = head["server_side_encryption"]
    assert sse["mode"] == "kms" and kms_key_id in sse["key_id"] and sse["source"] == "object"
    assert head["content_type"] == "text/csv" and head["storage_class"] == "STANDARD_IA"
    assert head["format"] == "s3-v3"
    # A rewrap in place (CopyObject with metadata REPLACE) and a copy with new metadata keep SSE.
    _ok("cp", url, url, "--key", key, "--to-key", new)
    _ok("cp", url, f"s3://{s3_bucket}/meta.csv", "--key", new, "--metadata", "owner=x")
    for name in ("r.csv", "meta.csv"):
        plain = s3_client.head_object(Bucket=s3_bucket, Key=name)
        assert plain["ServerSideEncryption"] == "aws:kms" and kms_key_id in plain["SSEKMSKeyId"], name
        assert plain["ContentType"] == "text/csv" and plain["StorageClass"] == "STANDARD_IA", name
        assert s3_client.get_object_tagging(Bucket=s3_bucket, Key=name)["TagSet"] == [
            {"Key": "team", "Value": "data"}
        ]
    assert s3_client.head_object(Bucket=s3_bucket, Key="meta.csv")["Metadata"]["owner"] == "x"
    assert CliRunner().invoke(main, ["cat", url, "--key", new]).stdout_bytes == b"a,b\n"
    refused = CliRunner().invoke(main, ["put", str(src), url + "2", "--key", key, "--sse", "sm4"])
    assert refused.exit_code == 1 and "aes256, kms, dsse" in refused.output
    assert "Contents" not in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="r.csv2")


def test_s3_bucket_default_is_reported_as_such(s3: Any, s3_client: Any, s3_bucket: str) -> None:
    make, store, _ = s3
    client = make()
    client.put((store, "k"), b"x")
    head = client.head((store, "k"))
    if head.sse_source == "object":
        # S3 (and moto) reports SSE-S3 on every object of a bucket with default encryption.
        assert head.server_side_encryption == ServerSideEncryption("aes256")
    s3_client.put_bucket_encryption(
        Bucket=s3_bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
        },
    )
    assert store.get_bucket_encryption() == ServerSideEncryption("kms")


# ------------------------------------------------------------------------------------------------ OSS


@pytest.fixture
def oss_side(oss_emulator: Any, oss_bucket_name: str, key_a: str) -> Any:
    """``(cse client factory, store, oss2 plain bucket, oss2 CryptoBucket)`` with RSA key a."""
    from tests.test_oss_interop import _oss2_rsa_bucket

    store = OssStore(oss2_bucket(oss_emulator, oss_bucket_name))

    def client(config: TransferConfig | None = None) -> EncryptionClient:
        return EncryptionClient(key_a, config=config)

    plain = oss2_bucket(oss_emulator, oss_bucket_name)
    return client, store, plain, _oss2_rsa_bucket(oss_emulator, oss_bucket_name, key_a)


@pytest.mark.parametrize("multipart", [False, True], ids=["single", "multipart"])
@pytest.mark.parametrize("mode", ["kms", "aes256", "sm4"])
def test_oss_sse_under_cse_plain_sdk_sees_it_and_crypto_bucket_reads_it(
    oss_side: Any, mode: str, multipart: bool
) -> None:
    make, store, plain, crypto = oss_side
    client = make(MULTIPART if multipart else None)
    data = os.urandom(17 * MiB + 3 if multipart else 1000)
    result = client.put((store, "k"), data, sse=mode, storage_class="IA", **CONTENT)
    assert (result.parts > 0) == multipart
    headers = plain.head_object("k").headers
    assert headers["x-oss-server-side-encryption"] == {"kms": "KMS", "aes256": "AES256", "sm4": "SM4"}[mode]
    assert headers["Content-Type"] == "text/csv" and headers["x-oss-storage-class"] == "IA"
    assert headers["Cache-Control"] == "max-age=60"
    assert plain.get_object_tagging("k").tag_set.tagging_rule == {"team": "data"}
    assert client.get((store, "k")) == data
    assert crypto.get_object("k").read() == data
    head = client.head((store, "k"))
    assert head.server_side_encryption is not None and head.server_side_encryption.mode == mode
    assert head.sse_source == "object" and head.settings.storage_class == "IA"


def test_oss_refuses_dsse_before_writing(oss_side: Any) -> None:
    make, store, plain, _ = oss_side
    with pytest.raises(ConfigurationError, match="oss:// has no server-side encryption 'dsse'"):
        make(MULTIPART).put((store, "k"), os.urandom(9 * MiB), sse="dsse")
    assert not plain.object_exists("k")
    assert store.list_multipart_uploads() == []


def test_oss_cli_head_and_rewrap_keep_sse(
    oss_env: str, oss_side: Any, oss_bucket_name: str, key_a: str, key_b: str, tmp_path: Path
) -> None:
    _, store, plain, _ = oss_side
    src = tmp_path / "in.csv"
    src.write_bytes(b"a,b\n")
    url = f"oss://{oss_bucket_name}/r.csv"
    _ok("put", str(src), url, "--key", key_a, "--sse", "KMS", "--content-type", "text/csv", "--tag", "t=1")
    head = json.loads(_ok("head", url, "--json"))
    assert head["server_side_encryption"]["mode"] == "kms" and head["format"] == "oss-v2"
    assert head["server_side_encryption"]["source"] == "object"
    assert head["content_type"] == "text/csv"
    _ok("cp", url, url, "--key", key_a, "--to-key", key_b)
    _ok("cp", url, f"oss://{oss_bucket_name}/meta.csv", "--key", key_b, "--metadata", "owner=x")
    for name in ("r.csv", "meta.csv"):
        headers = plain.head_object(name).headers
        assert headers["x-oss-server-side-encryption"] == "KMS", name
        assert headers["Content-Type"] == "text/csv", name
        assert plain.get_object_tagging(name).tag_set.tagging_rule == {"t": "1"}, name
    assert CliRunner().invoke(main, ["cat", url, "--key", key_b]).stdout_bytes == b"a,b\n"


# --------------------------------------------------------------------------------- S3 -> OSS migrate


@pytest.mark.parametrize("mode", ["native", "rewrap"])
def test_migrate_s3_to_oss_keeps_sse_by_the_cross_store_rule(
    s3: Any, oss_side: Any, kms_client: Any, kms_key_id: str, key_a: str, mode: str
) -> None:
    make, s3_store, _ = s3
    _, oss_store, plain, crypto = oss_side
    client = make()
    client.put((s3_store, "p/kms"), b"kms", sse="kms", sse_key_id=kms_key_id, storage_class="STANDARD_IA")
    client.put((s3_store, "p/s3"), b"aes", sse="aes256", storage_class="GLACIER_IR", **CONTENT)
    client.put((s3_store, "p/dsse"), b"dsse", sse="dsse")
    reader = AwsKmsProvider(kms_key_id, client=kms_client)
    summary = migrate(
        (s3_store, "p/"),
        (oss_store, "p/"),
        keys=[reader],
        to_keys=[key_a] if mode == "native" else None,
        mode=mode,  # type: ignore[arg-type]
        allow_cse_only=True,
    )
    assert summary.copied == 2 and summary.failed == 1, summary.objects
    (failed,) = [o for o in summary.objects if o.state == "failed"]
    assert failed.src_url.endswith("p/dsse") and "dsse, which oss:// does not have" in failed.error
    kms = plain.head_object("p/kms").headers
    assert kms["x-oss-server-side-encryption"] == "KMS"
    assert kms_key_id not in kms.get("x-oss-server-side-encryption-key-id", "")  # the S3 key is dropped
    assert kms["x-oss-storage-class"] == "IA"  # STANDARD_IA means IA
    aes = plain.head_object("p/s3").headers
    assert aes["x-oss-server-side-encryption"] == "AES256"
    assert aes["x-oss-storage-class"] == "Standard"  # GLACIER_IR has no counterpart: the default
    assert aes["Content-Type"] == "text/csv" and plain.get_object_tagging("p/s3").tag_set.tagging_rule == {
        "team": "data"
    }
    if mode == "native":
        assert crypto.get_object("p/kms").read() == b"kms"
    # With an override, the dsse object goes too.
    again = migrate(
        (s3_store, "p/dsse"),
        (oss_store, "p/dsse"),
        keys=[reader],
        to_keys=[key_a] if mode == "native" else None,
        mode=mode,  # type: ignore[arg-type]
        allow_cse_only=True,
        sse="sm4",
    )
    assert again.copied == 1 and not again.failed
    assert plain.head_object("p/dsse").headers["x-oss-server-side-encryption"] == "SM4"
