"""Interop with the official AWS S3 Encryption Client (``s3_encryption`` 4.0.x), in both directions.

Both sides talk to moto's server on 127.0.0.1 over HTTP, with AWS KMS (moto) wrapping the data keys. The
official client wraps its own boto3 S3 client (it installs event handlers on it), so cse gets a separate one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from cse.client import EncryptionClient
from cse.config import CommitmentPolicy, TransferConfig

s3_encryption = pytest.importorskip("s3_encryption")
from cse_aws_kms import AwsKmsProvider  # noqa: E402
from cse_s3 import S3Store  # noqa: E402
from s3_encryption import S3EncryptionClient, S3EncryptionClientConfig  # noqa: E402
from s3_encryption.materials.kms_keyring import KmsKeyring  # noqa: E402
from s3_encryption.materials.materials import AlgorithmSuite  # noqa: E402
from s3_encryption.materials.materials import CommitmentPolicy as OfficialPolicy  # noqa: E402

MiB = 1024 * 1024
SIZES = [0, 1, 16 * MiB]
CONTEXTS = [None, {"department": "finance", "purpose": "interop"}]


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(s3={"addressing_style": "path"})
    )


@pytest.fixture
def official(moto_endpoint: str, kms_client: Any, kms_key_id: str) -> Any:
    """A factory of official clients: ``official(version)`` with version 3 or 2."""

    def make(version: int) -> Any:
        if version == 3:
            config = S3EncryptionClientConfig(
                keyring=KmsKeyring(kms_client=kms_client, kms_key_id=kms_key_id)
            )
        else:
            config = S3EncryptionClientConfig(
                keyring=KmsKeyring(kms_client=kms_client, kms_key_id=kms_key_id),
                encryption_algorithm=AlgorithmSuite.ALG_AES_256_GCM_IV12_TAG16_NO_KDF,
                commitment_policy=OfficialPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT,
            )
        return S3EncryptionClient(wrapped_s3_client=_s3(moto_endpoint), config=config)

    return make


@pytest.fixture
def cse_side(moto_endpoint: str, kms_client: Any, kms_key_id: str, s3_bucket: str) -> Any:
    """A factory of cse clients and the store they write to: ``cse_side(version) -> (client, store)``."""
    store = S3Store(s3_bucket, client=_s3(moto_endpoint))

    def make(version: int, config: TransferConfig | None = None) -> tuple[EncryptionClient, S3Store]:
        client = EncryptionClient(
            AwsKmsProvider(kms_key_id, client=kms_client),
            format=f"s3-v{version}",
            config=config,
            commitment_policy=(
                CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
                if version == 3
                else CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
            ),
        )
        return client, store

    return make


def _data(size: int) -> bytes:
    return os.urandom(size)


def _official_get(client: Any, bucket: str, key: str, context: dict[str, str] | None) -> bytes:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if context:
        kwargs["EncryptionContext"] = context
    return bytes(client.get_object(**kwargs)["Body"].read())


@pytest.mark.parametrize("version", [3, 2])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("context", CONTEXTS)
def test_official_writes_cse_reads(
    version: int, size: int, context: dict[str, str] | None, official: Any, cse_side: Any, s3_bucket: str
) -> None:
    data = _data(size)
    kwargs: dict[str, Any] = {"Bucket": s3_bucket, "Key": "from-official", "Body": data}
    if context:
        kwargs["EncryptionContext"] = context
    official(version).put_object(**kwargs)
    client, store = cse_side(version)
    head = client.head((store, "from-official"))
    assert head.envelope.format == f"s3-v{version}"
    assert head.size == size
    assert client.get((store, "from-official")) == data
    for key, value in (context or {}).items():
        assert head.envelope.encryption_context[key] == value


@pytest.mark.parametrize("version", [3, 2])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("context", CONTEXTS)
def test_cse_writes_official_reads(
    version: int, size: int, context: dict[str, str] | None, official: Any, cse_side: Any, s3_bucket: str
) -> None:
    data = _data(size)
    client, store = cse_side(version)
    result = client.put((store, "from-cse"), data, encryption_context=context)
    assert result.parts == 0
    assert _official_get(official(version), s3_bucket, "from-cse", context) == data


@pytest.mark.parametrize("version", [3, 2])
def test_cse_multipart_official_reads(version: int, official: Any, cse_side: Any, s3_bucket: str) -> None:
    data = _data(17 * MiB + 3)
    config = TransferConfig(multipart_threshold=8 * MiB, part_size=5 * MiB)
    client, store = cse_side(version, config)
    context = {"job": "multipart"}
    result = client.put((store, "mp"), data, encryption_context=context)
    assert result.parts == 4
    assert _official_get(official(version), s3_bucket, "mp", context) == data


@pytest.mark.parametrize("version", [3, 2])
def test_official_upload_file_multipart_cse_reads_whole_and_ranges(
    version: int, official: Any, cse_side: Any, s3_bucket: str, tmp_path: Path
) -> None:
    data = _data(13 * MiB + 7)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    official(version).upload_file(
        str(src), s3_bucket, "uploaded", multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB
    )
    client, store = cse_side(version)
    assert client.get((store, "uploaded")) == data
    out = tmp_path / "out.bin"
    client.download_file((store, "uploaded"), out)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    ranged = EncryptionClient(
        client.keys[0], allow_unauthenticated_ranges=True, commitment_policy=client.commitment_policy
    )
    for start, end in [(0, 0), (15, 16), (5 * MiB - 3, 5 * MiB + 20), (len(data) - 100, len(data) - 1)]:
        assert ranged.get((store, "uploaded"), range=(start, end)) == data[start : end + 1]
    assert ranged.get((store, "uploaded"), range="-77") == data[-77:]


def test_default_policy_refuses_v2_and_names_the_opt_in(official: Any, cse_side: Any, s3_bucket: str) -> None:
    official(2).put_object(Bucket=s3_bucket, Key="v2", Body=b"legacy")
    client, store = cse_side(3)
    with pytest.raises(Exception, match="require-encrypt-allow-decrypt"):
        client.get((store, "v2"))


def test_expected_context_is_checked_like_the_official_client(
    official: Any, cse_side: Any, s3_bucket: str
) -> None:
    from cse.exceptions import EncryptionContextMismatchError

    context = {"department": "finance"}
    official(3).put_object(Bucket=s3_bucket, Key="ctx", Body=b"ledger", EncryptionContext=context)
    client, store = cse_side(3)
    # The stored context also holds aws:x-amz-cek-alg, which the format reserves: it is not compared.
    assert "aws:x-amz-cek-alg" in client.head((store, "ctx")).envelope.encryption_context
    assert client.get((store, "ctx"), encryption_context=context) == b"ledger"
    with pytest.raises(EncryptionContextMismatchError, match="'department'"):
        client.get((store, "ctx"), encryption_context={"department": "sales"})
    with pytest.raises(Exception):  # the official client refuses the same mismatch
        _official_get(official(3), s3_bucket, "ctx", {"department": "sales"})
