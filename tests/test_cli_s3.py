"""The ``cse`` command on ``s3://`` URLs with AWS KMS keys, against moto's server (via AWS_ENDPOINT_URL)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cse.cli import main

pytest.importorskip("cse_s3")


@pytest.fixture
def env(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, s3_bucket: str, kms_key_id: str
) -> dict[str, str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return {"bucket": s3_bucket, "key": f"aws-kms://{kms_key_id}?region=us-east-1"}


def _run(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def _ok(*args: str) -> str:
    result = _run(*args)
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_every_command_on_s3(env: dict[str, str], tmp_path: Path, s3_client: Any) -> None:
    bucket, key = env["bucket"], env["key"]
    data = os.urandom(300_000)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    url = f"s3://{bucket}/dir/a.bin"
    put = json.loads(_ok("put", str(src), url, "--key", key, "--context", "team=ops", "--json"))
    assert put["format"] == "s3-v3"
    head = json.loads(_ok("head", url, "--json"))
    assert head["size"] == len(data)
    assert head["authentication"] == "object"
    assert head["encryption_context"]["team"] == "ops"
    assert head["keys"][0]["wrap_algorithm"] == "kms+context"
    stored = s3_client.head_object(Bucket=bucket, Key="dir/a.bin")["Metadata"]
    assert stored["x-amz-c"] == "115"
    _ok("get", url, str(tmp_path / "out.bin"), "--key", key)
    assert (tmp_path / "out.bin").read_bytes() == data
    assert _run("cat", url, "--key", key).stdout_bytes == data
    assert _run("cat", url, "--key", key, "--context", "team=ops").stdout_bytes == data
    mismatch = _run("cat", url, "--key", key, "--context", "team=dev")
    assert (
        mismatch.exit_code == 1
        and "'team'" in mismatch.output
        and not mismatch.stdout_bytes.startswith(data[:16])
    )
    ranged = _run("cat", url, "--key", key, "--range", "100-199")
    assert ranged.exit_code == 1 and "allow-unauthenticated-ranges" in ranged.output
    ranged = _run("cat", url, "--key", key, "--range", "100-199", "--allow-unauthenticated-ranges")
    assert ranged.stdout_bytes == data[100:200]
    listing = json.loads(_ok("ls", f"s3://{bucket}/dir/", "--json"))
    assert [row["key"] for row in listing] == ["dir/a.bin"]
    _ok("cp", url, f"s3://{bucket}/dir/b.bin", "--key", key)
    assert _run("cat", f"s3://{bucket}/dir/b.bin", "--key", key).stdout_bytes == data
    _ok("rm", url)
    assert [row["key"] for row in json.loads(_ok("ls", f"s3://{bucket}/", "--json"))] == ["dir/b.bin"]


def test_v2_needs_the_policy_and_v3_is_the_default(
    env: dict[str, str], tmp_path: Path, s3_client: Any
) -> None:
    bucket, key = env["bucket"], env["key"]
    src = tmp_path / "in.bin"
    src.write_bytes(b"version two")
    url = f"s3://{bucket}/v2.bin"
    refused = _run("put", str(src), url, "--key", key, "--format", "v2")
    assert refused.exit_code == 1 and "forbid-encrypt-allow-decrypt" in refused.output
    _ok(
        "put",
        str(src),
        url,
        "--key",
        key,
        "--format",
        "v2",
        "--commitment-policy",
        "forbid-encrypt-allow-decrypt",
    )
    stored = s3_client.head_object(Bucket=bucket, Key="v2.bin")["Metadata"]
    assert stored["x-amz-cek-alg"] == "AES/GCM/NoPadding" and stored["x-amz-tag-len"] == "128"
    refused = _run("cat", url, "--key", key)
    assert refused.exit_code == 1 and "require-encrypt-allow-decrypt" in refused.output
    result = _run("cat", url, "--key", key, "--commitment-policy", "require-encrypt-allow-decrypt")
    assert result.stdout_bytes == b"version two"


def test_instruction_file_layout(env: dict[str, str], tmp_path: Path, s3_client: Any) -> None:
    bucket, key = env["bucket"], env["key"]
    src = tmp_path / "in.bin"
    src.write_bytes(b"key material elsewhere")
    url = f"s3://{bucket}/inst.bin"
    _ok("put", str(src), url, "--key", key, "--instruction-file")
    own = s3_client.head_object(Bucket=bucket, Key="inst.bin")["Metadata"]
    assert "x-amz-3" not in own and {"x-amz-c", "x-amz-d", "x-amz-i"} <= set(own)
    instruction = s3_client.get_object(Bucket=bucket, Key="inst.bin.instruction")
    assert "x-amz-crypto-instr-file" in instruction["Metadata"]
    assert "x-amz-3" in json.loads(instruction["Body"].read())
    assert _run("cat", url, "--key", key).stdout_bytes == b"key material elsewhere"
    assert [row["key"] for row in json.loads(_ok("ls", f"s3://{bucket}/", "--json"))] == ["inst.bin"]
    _ok("rm", url)
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    local = _run("put", str(src), f"file://{tmp_path}/v/x", "--key", key, "--instruction-file")
    assert local.exit_code == 2 and "s3://" in local.output
