"""Tamper tests for S3 V3 and V2 objects written by cse under AWS KMS on moto's server.

Every metadata key changed, removed or swapped with another object's; every body byte flipped; the tag
truncated. Each case must raise DecryptionError (or a subclass) and return no plaintext.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from cse.client import EncryptionClient
from cse.config import CommitmentPolicy
from cse.exceptions import DecryptionError

pytest.importorskip("cse_s3")
from cse_aws_kms import AwsKmsProvider  # noqa: E402
from cse_s3 import S3Store  # noqa: E402

PLAINTEXT = b"transfer 1,000,000 to account 42; " * 3


@pytest.fixture(params=[3, 2], ids=["v3", "v2"])
def setup(request: Any, s3_client: Any, s3_bucket: str, kms_client: Any, kms_key_id: str) -> Any:
    version = request.param
    policy = (
        CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
        if version == 3
        else CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
    )
    client = EncryptionClient(
        AwsKmsProvider(kms_key_id, client=kms_client), format=f"s3-v{version}", commitment_policy=policy
    )
    store = S3Store(s3_bucket, client=s3_client)
    client.put((store, "victim"), PLAINTEXT, encryption_context={"tenant": "alpha"})
    client.put((store, "other"), b"another object entirely", encryption_context={"tenant": "beta"})
    victim = dict(s3_client.head_object(Bucket=s3_bucket, Key="victim")["Metadata"])
    other = dict(s3_client.head_object(Bucket=s3_bucket, Key="other")["Metadata"])
    body = s3_client.get_object(Bucket=s3_bucket, Key="victim")["Body"].read()
    assert client.get((store, "victim")) == PLAINTEXT
    return client, store, s3_client, s3_bucket, victim, other, body


def _write(s3: Any, bucket: str, body: bytes, metadata: dict[str, str]) -> None:
    s3.put_object(Bucket=bucket, Key="victim", Body=body, Metadata=metadata)


def _refused(client: EncryptionClient, store: Any, tmp_path: Path) -> None:
    with pytest.raises(DecryptionError):
        client.get((store, "victim"))
    target = tmp_path / "out"
    with pytest.raises(DecryptionError):
        client.download_file((store, "victim"), target)
    assert not target.exists()


def _variants(value: str) -> list[str]:
    out = [value + "0", "", "x" if value != "x" else "y"]
    try:
        raw = bytearray(base64.b64decode(value, validate=True))
    except ValueError:
        raw = bytearray()
    if raw:
        raw[len(raw) // 2] ^= 1
        out.append(base64.b64encode(bytes(raw)).decode())
    if value.startswith("{"):
        out += ["{}", value.replace('"alpha"', '"alphb"'), value[:-1]]
    if value.isdigit():
        out += [str(int(value) + 1), str(max(int(value) - 1, 0))]
    return [v for v in out if v != value]


def test_every_metadata_key_changed(setup: Any, tmp_path: Path) -> None:
    client, store, s3, bucket, victim, _, body = setup
    cases = 0
    for key, value in victim.items():
        for changed in _variants(value):
            _write(s3, bucket, body, {**victim, key: changed})
            with pytest.raises(DecryptionError):
                client.get((store, "victim"))
            cases += 1
    assert cases >= 25


#: Written when known, and checked against the body when present, but not needed to decrypt: the official
#: clients do not always write it, so an object without it is still read.
OPTIONAL = {"x-amz-unencrypted-content-length"}


def test_every_metadata_key_removed(setup: Any, tmp_path: Path) -> None:
    client, store, s3, bucket, victim, _, body = setup
    for key in victim:
        _write(s3, bucket, body, {k: v for k, v in victim.items() if k != key})
        if key in OPTIONAL:
            assert client.get((store, "victim")) == PLAINTEXT
        else:
            _refused(client, store, tmp_path)


def test_every_metadata_key_swapped_with_another_objects(setup: Any, tmp_path: Path) -> None:
    client, store, s3, bucket, victim, other, body = setup
    swapped = 0
    for key in victim:
        if other.get(key) == victim[key] or key not in other:
            continue
        _write(s3, bucket, body, {**victim, key: other[key]})
        _refused(client, store, tmp_path)
        swapped += 1
    assert swapped >= 3


def test_every_body_byte_flipped(setup: Any, tmp_path: Path) -> None:
    client, store, s3, bucket, victim, _, body = setup
    for i in range(len(body)):
        tampered = bytearray(body)
        tampered[i] ^= 0x40
        _write(s3, bucket, bytes(tampered), victim)
        with pytest.raises(DecryptionError):
            client.get((store, "victim"))
    _refused(client, store, tmp_path)


@pytest.mark.parametrize("cut", [1, 8, 16, 17])
def test_tag_truncated(setup: Any, cut: int, tmp_path: Path) -> None:
    client, store, s3, bucket, victim, _, body = setup
    _write(s3, bucket, body[:-cut], victim)
    _refused(client, store, tmp_path)
