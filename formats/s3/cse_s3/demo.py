"""The S3 leg of ``cse demo``: the same round trip on moto's S3 and KMS server on 127.0.0.1.

Registered in the ``cse.demo`` entry-point group. It needs moto's server (``pip install 'moto[server]'``);
when the official AWS S3 Encryption Client (``s3_encryption``) is installed too, it also reads cse's object
with it, to show the two agree.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cse.client import EncryptionClient
from cse.exceptions import CseError

__all__ = ["run_s3_leg"]


def run_s3_leg(root: Path, data: bytes, say: Callable[[str], Any]) -> dict[str, Any]:
    """Encrypt ``data`` into S3 (moto) under AWS KMS (moto) as S3 V3, inspect it, decrypt it, verify it."""
    try:
        server_module = importlib.import_module("moto.server")
    except ImportError:
        say("8. S3 leg        skipped: it runs on moto's server (pip install 'moto[server]')")
        return {"skipped": "moto[server] is not installed"}
    from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]
    from cse_aws_kms import AwsKmsProvider

    from cse_s3.store import S3Store

    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    access_log = logging.getLogger("werkzeug")
    level = access_log.level
    access_log.setLevel(logging.ERROR)  # the local server's request log is not the demo's output
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        session = _local_session()
        s3 = session.client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))
        kms = session.client("kms", endpoint_url=endpoint)
        s3.create_bucket(Bucket="cse-demo")
        key_id = kms.create_key(Description="cse demo")["KeyMetadata"]["KeyId"]
        say(f"8. S3 leg        moto's S3 and KMS on {endpoint}, bucket cse-demo, KMS key {key_id}")

        client = EncryptionClient(AwsKmsProvider(key_id, client=kms), encryption_context={"purpose": "demo"})
        store = S3Store("cse-demo", client=s3)
        put = client.put((store, "sample.bin"), data)
        head = client.head((store, "sample.bin"))
        names = ", ".join(sorted(head.metadata))
        say(f"   encrypted     s3://cse-demo/sample.bin as {head.envelope.format} ({put.stored_size} bytes)")
        say(f"   metadata      {names}")
        back = client.get((store, "sample.bin"))
        if hashlib.sha256(back).digest() != hashlib.sha256(data).digest():
            raise CseError("demo: the object decrypted from S3 differs from the original")
        say("   decrypted     sha256 matches")
        official = _read_with_official_client(s3, kms, key_id, endpoint)
        if official is not None:
            if official != data:
                raise CseError("demo: the official S3 Encryption Client read different bytes")
            say("   interop       the official AWS S3 Encryption Client decrypts it to the same bytes")
        return {
            "ok": True,
            "url": "s3://cse-demo/sample.bin",
            "format": head.envelope.format,
            "metadata_keys": sorted(head.metadata),
            "official_client_read": official is not None,
        }
    finally:
        server.stop()
        access_log.setLevel(level)


def _read_with_official_client(s3: Any, kms: Any, key_id: str, endpoint: str) -> bytes | None:
    try:
        s3ec = importlib.import_module("s3_encryption")
        keyring = importlib.import_module("s3_encryption.materials.kms_keyring")
    except ImportError:
        return None
    from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

    # The official client installs hooks on the S3 client it wraps, so it gets one of its own.
    wrapped = _local_session().client(
        "s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"})
    )
    config = s3ec.S3EncryptionClientConfig(keyring=keyring.KmsKeyring(kms_client=kms, kms_key_id=key_id))
    client = s3ec.S3EncryptionClient(wrapped_s3_client=wrapped, config=config)
    response = client.get_object(Bucket="cse-demo", Key="sample.bin", EncryptionContext={"purpose": "demo"})
    return bytes(response["Body"].read())


def _local_session() -> Any:
    """A boto3 session for moto's server on this machine, which accepts any credentials."""
    import boto3  # type: ignore[import-untyped,unused-ignore]

    credentials = {"aws_access_key_id": "demo", "aws_secret_access_key": "demo"}
    return boto3.session.Session(region_name="us-east-1", **credentials)
