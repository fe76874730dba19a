"""1 GiB objects through ``file://``: upload_file then download_file, peak RSS measured in a child process.

Run with ``nox -s large`` (not part of the default run).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.large

GiB = 1024 * 1024 * 1024
RSS_LIMIT = 128 * 1024 * 1024

CHILD = r"""
import json, resource, sys, time
from cse.client import EncryptionClient
key, src, url, out = sys.argv[1:5]
client = EncryptionClient(key)
t0 = time.perf_counter()
put = client.upload_file(src, url)
t1 = time.perf_counter()
client.download_file(url, out)
t2 = time.perf_counter()
print(json.dumps({"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "parts": put.parts, "stored": put.stored_size, "upload_s": t1 - t0, "download_s": t2 - t1}))
"""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_one_gib_upload_and_download_through_file_store_in_bounded_memory(tmp_path: Path, key_a: str) -> None:
    src = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with src.open("wb") as fh:
        for i in range(GiB >> 20):
            fh.write(hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:])
    url = f"file://{tmp_path}/vault/big.bin"
    out = tmp_path / "back.bin"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, key_a, str(src), url, str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n1 GiB file:// round trip: {json.dumps(report)}")
    assert report["parts"] > 100
    assert _sha256(out) == _sha256(src)
    assert report["peak_rss"] < RSS_LIMIT, f"peak RSS {report['peak_rss'] / 2**20:.1f} MiB"


S3_CHILD = r"""
import json, resource, sys, time
import boto3
from cse.client import EncryptionClient
src, out = sys.argv[1:3]
boto3.client("s3").create_bucket(Bucket="cse-large")
key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
client = EncryptionClient(f"aws-kms://{key_id}")
t0 = time.perf_counter()
put = client.upload_file(src, "s3://cse-large/big.bin")
t1 = time.perf_counter()
client.download_file("s3://cse-large/big.bin", out)
t2 = time.perf_counter()
print(json.dumps({"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "format":
                  put.envelope.format, "parts": put.parts, "upload_s": t1 - t0, "download_s": t2 - t1}))
"""


@pytest.fixture
def moto_process(tmp_path: Path) -> Any:
    """moto's server in its own process (it holds every object in memory; its RSS is not cse's)."""
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not answer on {endpoint} (exit status {proc.poll()})")
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_one_gib_multipart_through_moto_in_bounded_memory(tmp_path: Path, moto_process: str) -> None:
    pytest.importorskip("cse_s3")
    src = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with src.open("wb") as fh:
        for i in range(GiB >> 20):
            fh.write(hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:])
    out = tmp_path / "back.bin"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_process,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", S3_CHILD, str(src), str(out)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n1 GiB s3:// (moto) round trip: {json.dumps(report)}")
    assert report["format"] == "s3-v3"
    assert report["parts"] > 100
    assert _sha256(out) == _sha256(src)
    assert report["peak_rss"] < RSS_LIMIT, f"peak RSS {report['peak_rss'] / 2**20:.1f} MiB"


OSS_CHILD = r"""
import json, resource, sys, time
from cse.client import EncryptionClient
key_uri, src, out = sys.argv[1:4]
client = EncryptionClient(key_uri)
t0 = time.perf_counter()
put = client.upload_file(src, "oss://cse-large/big.bin")
t1 = time.perf_counter()
client.download_file("oss://cse-large/big.bin", out)
t2 = time.perf_counter()
print(json.dumps({"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "format":
                  put.envelope.format, "parts": put.parts, "upload_s": t1 - t0, "download_s": t2 - t1}))
"""


def _serve(module: str, *args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start ``python -m module`` and return it with what it prints (``endpoint=...`` and more)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
    if "endpoint" not in fields:
        proc.kill()
        pytest.fail(f"{module} printed no endpoint: {line!r}")
    return proc, fields


def test_one_gib_multipart_through_the_oss_emulator_in_bounded_memory(tmp_path: Path) -> None:
    """1 GiB up (parts encrypted at their CTR offsets, 2 at once by default) and down through the OSS
    emulator, keys from the Alibaba Cloud KMS emulator; both emulators in their own processes."""
    pytest.importorskip("cse_oss")
    pytest.importorskip("cse_aliyun_kms")
    ak, secret = "large-ak", "large-secret"
    oss, oss_fields = _serve(
        "cse_oss.testing", "--access-key-id", ak, "--access-key-secret", secret, "--bucket", "cse-large"
    )
    kms, kms_fields = _serve("cse_aliyun_kms.testing", "--access-key-id", ak, "--access-key-secret", secret)
    oss_endpoint, kms_endpoint, key_id = oss_fields["endpoint"], kms_fields["endpoint"], kms_fields["key_id"]
    try:
        src = tmp_path / "big.bin"
        block = os.urandom(1 << 20)
        with src.open("wb") as fh:
            for i in range(GiB >> 20):
                fh.write(hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:])
        out = tmp_path / "back.bin"
        env = {
            **os.environ,
            "OSS_ENDPOINT": oss_endpoint,
            "OSS_REGION": "cn-hangzhou",
            "OSS_ACCESS_KEY_ID": ak,
            "OSS_ACCESS_KEY_SECRET": secret,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": ak,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": secret,
            "CSE_ALIYUN_KMS_ENDPOINT": kms_endpoint,
        }
        proc = subprocess.run(
            [sys.executable, "-c", OSS_CHILD, f"aliyun-kms://cn-hangzhou/{key_id}", str(src), str(out)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"\n1 GiB oss:// (emulator) round trip: {json.dumps(report)}")
        assert report["format"] == "oss-v2"
        assert report["parts"] == 128
        assert _sha256(out) == _sha256(src)
        assert report["peak_rss"] < RSS_LIMIT, f"peak RSS {report['peak_rss'] / 2**20:.1f} MiB"
    finally:
        for p in (oss, kms):
            p.terminate()
            p.wait(timeout=30)
