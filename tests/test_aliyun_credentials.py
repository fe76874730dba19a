"""Alibaba Cloud credentials from the official default chain (alibabacloud-credentials), for the OSS store
and the Alibaba KMS provider, against the emulators (which check signatures and STS tokens).

The chain reads its environment when it is imported, so each case runs ``cse`` in a fresh process with a
clean environment: no ``ALIBABA_CLOUD_ACCESS_KEY_*`` / ``OSS_ACCESS_KEY_*`` variables, a HOME of its own,
the ECS metadata service off (it lives at 100.100.100.200, which tests cannot serve).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alibabacloud_credentials")
pytest.importorskip("cse_oss")
pytest.importorskip("cse_aliyun_kms")

AK = "LTAI5tChainTestKey0001"
SECRET = "chainTestSecret0123456789abcd"
STS_AK = "STS.NChainTestKey0002"
STS_SECRET = "chainStsSecret0123456789abcd"
STS_TOKEN = "CAIS-chain-test-token-0001"
REGION = "cn-hangzhou"


@pytest.fixture(scope="module")
def emulators() -> Iterator[tuple[Any, Any]]:
    """OSS and KMS emulators that accept the long-term key, and the STS key only with its token."""
    from cse_aliyun_kms.testing import KmsEmulator
    from cse_oss.testing import OssEmulator

    with (
        OssEmulator(access_key_id=AK, access_key_secret=SECRET) as oss,
        KmsEmulator(access_key_id=AK, access_key_secret=SECRET, region=REGION) as kms,
    ):
        kms.add_credentials(STS_AK, STS_SECRET, STS_TOKEN)
        oss.create_bucket("chain")
        yield oss, kms


@pytest.fixture(scope="module")
def sts_oss() -> Iterator[Any]:
    """An OSS emulator that takes only the STS key with its token."""
    from cse_oss.testing import OssEmulator

    with OssEmulator(access_key_id=STS_AK, access_key_secret=STS_SECRET, security_token=STS_TOKEN) as oss:
        oss.create_bucket("chain")
        yield oss


def _cse() -> str:
    found = shutil.which("cse", path=os.path.dirname(sys.executable))
    if found is None:
        pytest.skip("the cse script is not installed beside this interpreter")
    return found


def _env(home: Path, oss: Any, kms: Any, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "SYSTEMROOT", "TMPDIR")}
    return {
        **keep,
        "HOME": str(home),
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true",
        "OSS_ENDPOINT": oss.endpoint,
        "OSS_REGION": REGION,
        "CSE_ALIYUN_KMS_ENDPOINT": kms.endpoint,
        **extra,
    }


def _round_trip(env: dict[str, str], tmp_path: Path, key: str) -> subprocess.CompletedProcess[str]:
    src = tmp_path / "in.txt"
    src.write_text("through the chain")
    put = subprocess.run(
        [_cse(), "put", str(src), "oss://chain/a.txt", "--key", key],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if put.returncode != 0:
        return put
    return subprocess.run(
        [_cse(), "cat", "oss://chain/a.txt", "--key", key],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_profile_file(emulators: tuple[Any, Any], tmp_path: Path) -> None:
    oss, kms = emulators
    key = f"aliyun-kms://{REGION}/{kms.create_key('chain profile')}"
    ini = tmp_path / "credentials.ini"
    ini.write_text(
        f"[default]\nenable = false\ntype = access_key\naccess_key_id = nope\naccess_key_secret = nope\n\n"
        f"[ops]\nenable = true\ntype = access_key\naccess_key_id = {AK}\naccess_key_secret = {SECRET}\n"
    )
    env = _env(tmp_path, oss, kms, ALIBABA_CLOUD_CREDENTIALS_FILE=str(ini), ALIBABA_CLOUD_PROFILE="ops")
    result = _round_trip(env, tmp_path, key)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "through the chain"


def test_default_profile_file_in_home(emulators: tuple[Any, Any], tmp_path: Path) -> None:
    oss, kms = emulators
    key = f"aliyun-kms://{REGION}/{kms.create_key('chain home')}"
    (tmp_path / ".alibabacloud").mkdir()
    (tmp_path / ".alibabacloud" / "credentials.ini").write_text(
        f"[default]\nenable = true\ntype = access_key\naccess_key_id = {AK}\naccess_key_secret = {SECRET}\n"
    )
    result = _round_trip(_env(tmp_path, oss, kms), tmp_path, key)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "through the chain"


class _CredentialsUri(BaseHTTPRequestHandler):
    """ALIBABA_CLOUD_CREDENTIALS_URI: STS credentials as the documented JSON, counting the requests."""

    requests = 0

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        type(self).requests += 1
        body = json.dumps(
            {
                "Code": "Success",
                "AccessKeyId": STS_AK,
                "AccessKeySecret": STS_SECRET,
                "SecurityToken": STS_TOKEN,
                "Expiration": "2099-01-01T00:00:00Z",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_credentials_uri_sts(emulators: tuple[Any, Any], sts_oss: Any, tmp_path: Path) -> None:
    """STS credentials (with their token) from a credentials URI sign both the OSS and the KMS requests."""
    _, kms = emulators
    key = f"aliyun-kms://{REGION}/{kms.create_key('chain uri')}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CredentialsUri)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}/credentials"
        env = _env(tmp_path, sts_oss, kms, ALIBABA_CLOUD_CREDENTIALS_URI=uri)
        result = _round_trip(env, tmp_path, key)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert result.stdout == "through the chain"
    assert _CredentialsUri.requests >= 2  # one per process at least: the chain was asked


def test_no_credentials_anywhere_says_what_to_do(emulators: tuple[Any, Any], tmp_path: Path) -> None:
    oss, kms = emulators
    key = f"aliyun-kms://{REGION}/{kms.create_key('chain none')}"
    result = _round_trip(_env(tmp_path, oss, kms), tmp_path, key)
    assert result.returncode != 0
    assert "no OSS credentials" in result.stderr or "no Alibaba Cloud credentials" in result.stderr
    assert "ALIBABA_CLOUD_CREDENTIALS_URI" in result.stderr and "credentials.ini" in result.stderr
    assert "Traceback" not in result.stderr  # the chain's own records are shown with -vv only
