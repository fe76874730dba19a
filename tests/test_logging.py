"""Logging: what the ``cse`` loggers record, the CLI's -v/-vv/--log-json, and a scan of every record and
error message for secrets.

The secret scan runs the error paths with secret markers in the credentials (moto's server, and the OSS
and Alibaba KMS emulators, which check signatures, are given marker secrets) and in the keys (an AES key
file, an RSA passphrase), records every data key the providers produce or unwrap, and looks for the
markers and for those keys (raw, hex, base64) in every captured log record and exception message.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cse import EncryptionClient
from cse.cache import DataKeyCache
from cse.cli import main
from cse.providers import DataKey, KeyRequest
from cse.stores.memory import MemoryStore

cse_rsa = pytest.importorskip("cse_rsa")
cse_aws_kms = pytest.importorskip("cse_aws_kms")

MARK = "S3CR3TMARK"
AWS_SECRET = f"aws-{MARK}-0123456789abcdefghij"
ALI_SECRET = f"ali{MARK}0123456789abcdef"
ALI_AK = "LTAI5tLogScanTestKey01"
PASSPHRASE = f"pass-{MARK}-phrase"


class _Recorded:
    """The content keys the recording providers saw, in every spelling a leak could take."""

    keys: list[bytes] = []

    @classmethod
    def add(cls, key: bytes) -> None:
        cls.keys.append(bytes(key))

    @classmethod
    def spellings(cls) -> list[str]:
        out = []
        for key in cls.keys:
            out += [key.hex(), key.hex().upper(), base64.b64encode(key).decode(), repr(key)[2:-1]]
        return out


class RecordingAes(cse_rsa.AesKeyProvider):  # type: ignore[misc,name-defined]
    """The real AES provider, recording the data keys it makes and unwraps."""

    def generate_data_key(self, request: KeyRequest) -> DataKey:
        key = super().generate_data_key(request)
        _Recorded.add(key.plaintext)
        return key

    def unwrap(self, ciphertext: bytes, request: KeyRequest) -> bytes:
        plain = super().unwrap(ciphertext, request)
        _Recorded.add(plain)
        return bytes(plain)


class RecordingKms(cse_aws_kms.AwsKmsProvider):  # type: ignore[misc,name-defined]
    """The real AWS KMS provider, recording the data keys it makes and unwraps."""

    def generate_data_key(self, request: KeyRequest) -> DataKey:
        key = super().generate_data_key(request)
        _Recorded.add(key.plaintext)
        return key

    def unwrap(self, ciphertext: bytes, request: KeyRequest) -> bytes:
        plain = super().unwrap(ciphertext, request)
        _Recorded.add(plain)
        return bytes(plain)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the ``cse`` loggers, at DEBUG."""
    caplog.set_level(logging.DEBUG, logger="cse")
    return caplog


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [r.cse for r in caplog.records if r.name == name and isinstance(getattr(r, "cse", None), dict)]


# ------------------------------------------------------------------------------------------ records


def test_kms_requests_are_logged_with_operation_key_region_and_attempts(
    moto_endpoint: str, kms_key_id: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    key = f"aws-kms://{kms_key_id}?region=us-east-1&endpoint-url={moto_endpoint}"
    client = EncryptionClient(key)
    client.put("memory://log-kms/a", b"data")
    assert client.get("memory://log-kms/a") == b"data"
    kms = _events(debug_logs, "cse.kms")
    assert [e["operation"] for e in kms] == ["GenerateDataKey", "Decrypt"]
    for e in kms:
        assert e["key"] == kms_key_id and e["region"] == "us-east-1" and e["provider"] == "aws-kms"
        assert e["attempts"] == 1 and e["outcome"] == "ok" and e["duration_ms"] >= 0


def test_a_failed_kms_request_is_logged_with_its_error(
    moto_endpoint: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    from cse.exceptions import CseError

    key = f"aws-kms://alias/no-such-alias?region=us-east-1&endpoint-url={moto_endpoint}"
    with pytest.raises(CseError):
        EncryptionClient(key).put("memory://log-kms-fail/a", b"data")
    (record,) = _events(debug_logs, "cse.kms")
    assert record["operation"] == "GenerateDataKey" and record["outcome"] not in ("ok", None)


def test_store_requests_and_cache_uses_are_logged(key_a: str, debug_logs: pytest.LogCaptureFixture) -> None:
    client = EncryptionClient(key_a, key_cache=DataKeyCache(max_objects=10))
    client.put("memory://log-store/a", b"x" * 100)
    client.put("memory://log-store/b", b"y" * 50)
    assert client.get("memory://log-store/a", range="bytes=0-9") == b"x" * 10
    stores = _events(debug_logs, "cse.store")
    puts = [e for e in stores if e["operation"] == "put"]
    assert [e["url"] for e in puts] == ["memory://log-store/a", "memory://log-store/b"]
    assert all(e["bytes"] > 0 and e["store"] == "memory" and e["outcome"] == "ok" for e in puts)
    assert any(e["operation"] == "get" and e["bytes"] > 0 for e in stores)
    cache = [r.getMessage() for r in debug_logs.records if r.name == "cse.cache"]
    assert cache[0].startswith("data-key cache miss") and cache[1].startswith("data-key cache hit")


def test_multipart_parts_are_logged(key_a: str, debug_logs: pytest.LogCaptureFixture) -> None:
    from cse.config import TransferConfig

    config = TransferConfig(multipart_threshold=1024 * 1024, part_size=1024 * 1024)
    EncryptionClient(key_a, config=config).put("memory://log-mp/a", os.urandom(3 * 1024 * 1024 + 5))
    ops = [e["operation"] for e in _events(debug_logs, "cse.store")]
    assert ops.count("upload_part") >= 3 and "create_multipart" in ops and "complete_multipart" in ops


def test_security_weakening_opt_ins_warn(key_a: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cse")
    EncryptionClient(key_a)
    assert not [r for r in caplog.records if r.name.startswith("cse")]
    EncryptionClient(key_a, allow_legacy=True, delayed_authentication=True, allow_unauthenticated_ranges=True)
    options = {r.cse["option"] for r in caplog.records if r.levelno == logging.WARNING}
    assert options == {"allow_legacy", "delayed_authentication", "allow_unauthenticated_ranges"}


def test_unauthenticated_ranged_read_warns_when_it_happens(
    key_a: str, caplog: pytest.LogCaptureFixture
) -> None:
    writer = EncryptionClient(key_a, format="s3-v3")
    writer.put("memory://log-range/a", b"0123456789" * 10)
    reader = EncryptionClient(key_a, allow_unauthenticated_ranges=True)
    caplog.set_level(logging.WARNING, logger="cse")
    caplog.clear()
    assert reader.get("memory://log-range/a", range="bytes=10-19") == b"0123456789"
    assert [r.getMessage() for r in caplog.records if "unauthenticated ranged read" in r.getMessage()]


def test_cli_verbosity_and_json_lines(key_a: str, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"hello")
    url = f"file://{tmp_path}/store/a.txt"
    runner = CliRunner()
    quiet = runner.invoke(main, ["put", str(source), url, "--key", key_a])
    assert quiet.exit_code == 0, quiet.output
    assert "store request" not in quiet.stderr
    info = runner.invoke(main, ["-v", "cat", url, "--key", key_a])
    assert info.exit_code == 0 and "DEBUG" not in info.stderr
    debug = runner.invoke(main, ["-vv", "--log-json", "cat", url, "--key", key_a])
    assert debug.exit_code == 0, debug.stderr
    lines = [json.loads(line) for line in debug.stderr.splitlines() if line.startswith("{")]
    gets = [e for e in lines if e.get("operation") == "get"]
    assert gets and gets[0]["logger"] == "cse.store" and gets[0]["url"] == url and gets[0]["level"] == "debug"
    logging.getLogger("cse").setLevel(logging.NOTSET)


# ------------------------------------------------------------------------------------- secret scan


@pytest.fixture
def marked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto, the OSS emulator and the Alibaba KMS emulator, all with marker secrets in the environment;
    an AES key file and a passphrase-protected RSA key."""
    from cse_aliyun_kms.testing import KmsEmulator
    from cse_oss.testing import OssEmulator
    from moto.server import ThreadedMotoServer

    _Recorded.keys = []
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", f"AKIA{MARK}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", f"token-{MARK}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("RSA_PASS", PASSPHRASE)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    aes_path = tmp_path / "k.bin"
    cse_rsa.generate_aes_key(aes_path)
    cse_rsa.generate_keypair(
        tmp_path / "r.pem", tmp_path / "r.pub.pem", bits=2048, passphrase=PASSPHRASE.encode()
    )
    with (
        OssEmulator(access_key_id=ALI_AK, access_key_secret=ALI_SECRET) as oss,
        KmsEmulator(access_key_id=ALI_AK, access_key_secret=ALI_SECRET, region="cn-hangzhou") as ali_kms,
    ):
        for name, value in {
            "OSS_ENDPOINT": oss.endpoint,
            "OSS_REGION": "cn-hangzhou",
            "OSS_ACCESS_KEY_ID": ALI_AK,
            "OSS_ACCESS_KEY_SECRET": ALI_SECRET,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": ALI_AK,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ALI_SECRET,
            "CSE_ALIYUN_KMS_ENDPOINT": ali_kms.endpoint,
        }.items():
            monkeypatch.setenv(name, value)
        oss.create_bucket("scan-bucket")
        yield {
            "endpoint": f"http://{host}:{port}",
            "aes_path": aes_path,
            "aes_bytes": aes_path.read_bytes(),
            "rsa": f"rsa://{tmp_path / 'r.pem'}?passphrase-env=RSA_PASS",
            "ali_key": str(ali_kms.create_key("scan")),
            "tmp": tmp_path,
        }
    moto.stop()


def _secret_spellings(marked: dict[str, Any]) -> list[str]:
    raw = bytes(marked["aes_bytes"])
    return [
        MARK,
        AWS_SECRET,
        ALI_SECRET,
        PASSPHRASE,
        raw.hex(),
        base64.b64encode(raw).decode(),
        *_Recorded.spellings(),
    ]


def test_no_secret_in_any_log_record_or_error(
    marked: dict[str, Any], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import boto3
    from botocore.config import Config

    from cse.exceptions import CseError
    from cse.log import JsonFormatter

    caplog.set_level(logging.DEBUG, logger="cse")
    endpoint = marked["endpoint"]
    s3 = boto3.client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="scan")
    kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")
    kms_key = kms.create_key()["KeyMetadata"]["KeyId"]
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    aes = RecordingAes.from_uri(f"aes://{marked['aes_path']}")
    cse_rsa.generate_aes_key(tmp_path / "other.bin")
    other_aes = RecordingAes.from_uri(f"aes://{tmp_path / 'other.bin'}")
    aws = RecordingKms(kms_key, region="us-east-1", endpoint_url=endpoint)
    messages: list[str] = []

    def expect_error(action: Callable[[], object]) -> None:
        try:
            action()
        except (CseError, ValueError, OSError) as exc:
            messages.extend([str(exc), repr(exc)])
            cause = exc.__cause__
            while cause is not None:
                messages.append(str(cause))
                cause = cause.__cause__
        else:
            raise AssertionError(f"{action} did not fail")

    try:
        # Successful round trips on every store and key kind, with the cache, so that every debug path runs.
        cache = DataKeyCache(max_objects=5)
        ali = f"aliyun-kms://cn-hangzhou/{marked['ali_key']}"
        every = (aws, marked["rsa"], ali, aes)  # aes last: the error paths below read with it
        for url, keys in (
            ("s3://scan/a", (aes, aws, marked["rsa"])),
            ("oss://scan-bucket/a", (marked["rsa"], ali)),
            (f"file://{tmp_path}/store/a", every),
            ("memory://scan/a", every),
        ):
            for key in keys:
                client = EncryptionClient(key, key_cache=cache)
                client.put(url, b"plaintext-" + MARK.encode())
                assert client.get(url) == b"plaintext-" + MARK.encode()
        # The error paths.
        expect_error(lambda: EncryptionClient(other_aes).get("memory://scan/a"))  # wrong key
        expect_error(lambda: EncryptionClient(aes).get("memory://scan/missing"))  # missing object
        expect_error(lambda: EncryptionClient(aes).get("nosuch://scan/a"))  # unknown store
        expect_error(lambda: EncryptionClient("rsa://relative/path.pem"))  # bad key URI
        expect_error(lambda: EncryptionClient(f"rsa://{tmp_path / 'r.pem'}"))  # no passphrase
        store = MemoryStore.shared("scan")
        info = store.head("a")
        body = bytearray(store.read_all("a"))
        body[5] ^= 1
        store.put("tampered", bytes(body), info.metadata)
        expect_error(lambda: EncryptionClient(aes).get("memory://scan/tampered"))  # tampered body
        meta = dict(info.metadata)
        for name in list(meta):
            meta[name] = meta[name][:-4] + "AAAA"
        store.put("mangled", store.read_all("a"), meta)
        expect_error(lambda: EncryptionClient(aes).get("memory://scan/mangled"))  # mangled metadata
        missing = RecordingKms("alias/absent", region="us-east-1", endpoint_url=endpoint)
        expect_error(lambda: EncryptionClient(missing).put("memory://scan/x", b"x"))  # AWS KMS: no key
        kms.disable_key(KeyId=kms_key)
        expect_error(lambda: EncryptionClient(aws).get("s3://scan/a"))  # AWS KMS: disabled key
        wrong_ali = "aliyun-kms://cn-hangzhou/00000000-0000-0000-0000-000000000000"
        expect_error(lambda: EncryptionClient(wrong_ali).put("memory://scan/y", b"y"))  # Alibaba: no key
        os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = f"wrong{MARK}"
        os.environ["OSS_ACCESS_KEY_SECRET"] = f"wrong{MARK}"
        expect_error(
            lambda: EncryptionClient(f"aliyun-kms://cn-hangzhou/{marked['ali_key']}").put(
                "memory://scan/z", b"z"
            )
        )  # Alibaba KMS: bad signature
        expect_error(lambda: EncryptionClient(aes).get("oss://scan-bucket/a"))  # OSS: bad signature
        # The security warnings.
        EncryptionClient(
            aes, allow_legacy=True, delayed_authentication=True, allow_unauthenticated_ranges=True
        )
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)

    formatter = JsonFormatter()
    text = "\n".join(
        [record.getMessage() for record in caplog.records]
        + [formatter.format(record) for record in caplog.records]
        + messages
    )
    assert len(caplog.records) > 50 and len(messages) >= 12
    assert _Recorded.keys, "the recording providers saw no data key"
    found = [spelling for spelling in _secret_spellings(marked) if spelling in text]
    assert not found, f"secrets in logs or errors: {found[:3]}"


def test_migration_steps_are_logged(key_a: str, key_b: str, debug_logs: pytest.LogCaptureFixture) -> None:
    from cse.migrate import migrate

    client = EncryptionClient(key_a)
    for name in ("one", "two"):
        client.put(f"memory://log-mig/src/{name}", name.encode())
    MemoryStore.shared("log-mig").put("src/plain", b"not encrypted", {})
    summary = migrate("memory://log-mig/src/", "memory://log-mig/dst/", keys=[key_a], to_keys=[key_b])
    assert (summary.copied, summary.failed) == (2, 1)
    steps = {(e["event"], e["src"]) for e in _events(debug_logs, "cse.migrate")}
    assert ("migrate copied", "memory://log-mig/src/one") in steps
    assert ("migrate failed", "memory://log-mig/src/plain") in steps
    failed = [r for r in debug_logs.records if r.name == "cse.migrate" and r.levelno == logging.INFO]
    assert failed and "reason=" in failed[0].getMessage()
