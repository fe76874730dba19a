"""Shared fixtures: RSA key pairs made once per session, stores, clients."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cse.client import EncryptionClient
from cse.config import TransferConfig
from cse.stores.file import FileStore
from cse.stores.memory import MemoryStore


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with three 2048-bit RSA key pairs: a, b and c."""
    import cse_rsa

    d = tmp_path_factory.mktemp("keys")
    for name in ("a", "b", "c"):
        cse_rsa.generate_keypair(d / f"{name}.pem", d / f"{name}.pub.pem", bits=2048)
    return d


@pytest.fixture(scope="session")
def key_a(key_dir: Path) -> str:
    """Key URI of private key a."""
    return f"rsa://{key_dir / 'a.pem'}"


@pytest.fixture(scope="session")
def key_b(key_dir: Path) -> str:
    """Key URI of private key b."""
    return f"rsa://{key_dir / 'b.pem'}"


@pytest.fixture
def small_config() -> TransferConfig:
    """Small thresholds so that multipart and many segments happen on small objects."""
    return TransferConfig(
        multipart_threshold=64 * 1024, part_size=32 * 1024, chunk_size=8192, segment_size=1000
    )


@pytest.fixture
def memory_store() -> MemoryStore:
    """A private in-memory store."""
    return MemoryStore()


@pytest.fixture
def file_store(tmp_path: Path) -> FileStore:
    """A file store in a temp dir."""
    return FileStore(tmp_path / "vault")


@pytest.fixture
def client(key_a: str) -> Iterator[EncryptionClient]:
    """A client with key a and default settings."""
    with EncryptionClient(key_a) as c:
        yield c


# --------------------------------------------------------------------------------- AWS: moto's server


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 and KMS server on 127.0.0.1 (a free port), with dummy credentials in the environment.

    boto3 clients reach it through ``endpoint_url``; the official S3 Encryption Client through the clients
    it is given. Stopped at the end of the session.
    """
    import os

    from moto.server import ThreadedMotoServer

    saved = {
        k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_client(moto_endpoint: str) -> object:
    """A plain boto3 S3 client on moto's server (path-style addressing)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def kms_client(moto_endpoint: str) -> object:
    """A plain boto3 KMS client on moto's server."""
    import boto3

    return boto3.client("kms", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_client: object) -> str:
    """A fresh, empty bucket on moto's server."""
    import uuid

    name = f"cse-test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


@pytest.fixture
def kms_key_id(kms_client: object) -> str:
    """A fresh symmetric KMS key on moto's server; returns its key id."""
    key = kms_client.create_key(Description="cse test key")  # type: ignore[attr-defined]
    return str(key["KeyMetadata"]["KeyId"])


# ------------------------------------------------------------------------ a KMS endpoint that stalls


@pytest.fixture
def stalled_endpoint() -> Iterator[str]:
    """A listening socket on 127.0.0.1 that accepts connections and never answers: a stalled endpoint."""
    import socket
    import threading

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)  # read nothing, answer nothing

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


# --------------------------------------------------------------------- Alibaba Cloud: the emulators

OSS_AK = "oss-test-ak"
OSS_SECRET = "oss-test-secret"
OSS_REGION = "cn-hangzhou"


@pytest.fixture(scope="session")
def oss_emulator() -> Iterator[Any]:
    """The OSS server emulator on 127.0.0.1, for the whole session."""
    from cse_oss.testing import OssEmulator

    with OssEmulator(access_key_id=OSS_AK, access_key_secret=OSS_SECRET) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def aliyun_kms() -> Iterator[Any]:
    """The Alibaba Cloud KMS emulator on 127.0.0.1 (same credentials as the OSS one), for the session."""
    from cse_aliyun_kms.testing import KmsEmulator

    with KmsEmulator(access_key_id=OSS_AK, access_key_secret=OSS_SECRET, region=OSS_REGION) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def aliyun_kms_key(aliyun_kms: Any) -> str:
    """A KMS key id in the emulator."""
    return str(aliyun_kms.create_key("cse tests"))


@pytest.fixture
def oss_bucket_name(oss_emulator: Any) -> str:
    """A fresh, empty bucket in the OSS emulator."""
    name = f"cse-{uuid.uuid4().hex[:20]}"
    oss_emulator.create_bucket(name)
    return name


def oss2_bucket(emulator: Any, name: str, signing: str = "v4") -> Any:
    """An unmodified ``oss2.Bucket`` on the emulator, signed with V1 or V4."""
    import oss2

    if signing == "v1":
        return oss2.Bucket(oss2.Auth(OSS_AK, OSS_SECRET), emulator.endpoint, name)
    return oss2.Bucket(oss2.AuthV4(OSS_AK, OSS_SECRET), emulator.endpoint, name, region=OSS_REGION)


@pytest.fixture
def oss_env(oss_emulator: Any, aliyun_kms: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point default OSS buckets (``oss://`` URLs) and ``aliyun-kms://`` keys at the emulators."""
    monkeypatch.setenv("OSS_ENDPOINT", oss_emulator.endpoint)
    monkeypatch.setenv("OSS_REGION", OSS_REGION)
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", OSS_AK)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", OSS_SECRET)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", OSS_AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", OSS_SECRET)
    monkeypatch.setenv("CSE_ALIYUN_KMS_ENDPOINT", aliyun_kms.endpoint)
    return str(oss_emulator.endpoint)
