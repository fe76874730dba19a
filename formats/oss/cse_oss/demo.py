"""The OSS leg of ``cse demo``: the round trip on the OSS and Alibaba Cloud KMS emulators on 127.0.0.1.

Registered in the ``cse.demo`` entry-point group. It encrypts the demo data into ``oss://`` as ``oss-v2``
(the format of the official OSS SDKs) under an Alibaba Cloud KMS key, shows the object's headers, decrypts
it and checks it. oss2 and the Python alibabacloud-oss-v2 SDK have no KMS master key that reads Go/Java-style
KMS objects, so the official-SDK read-back uses a second object under a local RSA key: oss2's
``CryptoBucket`` with ``RsaProvider``, and alibabacloud-oss-v2's ``EncryptionClient`` when it is installed.

Both emulators run in this process, with their own throw-away credentials, and are stopped at the end. The
leg passes stores and key providers to cse explicitly: it reads and changes no environment variable.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cse.client import EncryptionClient
from cse.exceptions import CseError

__all__ = ["run_oss_leg"]

_AK = "cse-demo-access-key-id"
_SECRET = "cse-demo-access-key-secret"  # noqa: S105 - the throw-away credential of a local emulator
_REGION = "cn-hangzhou"
_BUCKET = "cse-demo"
_META = "client-side-encryption-"


def run_oss_leg(root: Path, data: bytes, say: Callable[[str], Any]) -> dict[str, Any]:
    """Encrypt ``data`` into OSS (emulator) as ``oss-v2`` under Alibaba Cloud KMS (emulator), and verify it.

    Then writes a second object under an RSA key made in ``root/keys`` and reads it back with the official
    SDKs (oss2 ``CryptoBucket``; alibabacloud-oss-v2 ``EncryptionClient`` if installed). Prints its steps
    with ``say`` and returns a report; raises :class:`~cse.exceptions.CseError` if a check fails.
    """
    try:
        kms_testing = importlib.import_module("cse_aliyun_kms.testing")
        kms_provider = importlib.import_module("cse_aliyun_kms")
        acs = importlib.import_module("aliyunsdkcore.client")
    except ImportError:
        say("9. OSS leg       skipped: Alibaba Cloud KMS needs cse-aliyun-kms (pip install 'cse[aliyun]')")
        return {"skipped": "cse-aliyun-kms is not installed"}
    import oss2  # type: ignore[import-untyped,unused-ignore]

    from cse_oss.store import OssStore
    from cse_oss.testing import OssEmulator

    oss_server = OssEmulator(_AK, _SECRET, "127.0.0.1", 0, buckets=[_BUCKET])
    kms_server = kms_testing.KmsEmulator(_AK, _SECRET, "127.0.0.1", 0, region=_REGION)
    try:
        oss_server.start()
        kms_server.start()
        key_id = str(kms_server.create_key("cse demo"))
        say(
            f"9. OSS leg       OSS emulator on {oss_server.endpoint}, bucket {_BUCKET}; "
            f"KMS emulator on {kms_server.endpoint}, key {key_id}"
        )
        bucket = oss2.Bucket(
            oss2.AuthV4(_AK, _SECRET), oss_server.endpoint, _BUCKET, region=_REGION, enable_crc=False
        )
        store = OssStore(bucket)
        kms = acs.AcsClient(_AK, _SECRET, _REGION, auto_retry=False)
        kms.add_endpoint(_REGION, "Kms", kms_server.endpoint)
        provider = kms_provider.AliyunKmsProvider(_REGION, key_id, client=kms)
        digest = hashlib.sha256(data).digest()

        client = EncryptionClient(provider)
        put = client.put((store, "sample.bin"), data)
        head = client.head((store, "sample.bin"))
        meta = head.metadata
        say(
            f"   encrypted     oss://{_BUCKET}/sample.bin as {head.envelope.format} under "
            f"{provider.describe()} ({put.stored_size} bytes, {put.parts or 1} request(s))"
        )
        names = ", ".join(sorted(name[len(_META) :] for name in meta if name.startswith(_META)))
        say(f"   headers       x-oss-meta-{_META}{{{names}}}")
        cek, wrap = meta.get(_META + "cek-alg"), meta.get(_META + "wrap-alg")
        length = meta.get(_META + "unencrypted-content-length")
        say(f"                 cek-alg {cek}, wrap-alg {wrap}, unencrypted length {length}")
        if hashlib.sha256(client.get((store, "sample.bin"))).digest() != digest:
            raise CseError("demo: the object decrypted from OSS differs from the original")
        say("   decrypted     sha256 matches (oss-v2 is AES-CTR: no integrity of its own; CRC-64 in transit)")

        key_uri = _rsa_key(root)
        rsa_client = EncryptionClient(key_uri)
        rsa_client.put((store, "sample-rsa.bin"), data)
        rsa_head = rsa_client.head((store, "sample-rsa.bin"))
        rsa_wrap, rsa_format = rsa_head.metadata.get(_META + "wrap-alg"), rsa_head.envelope.format
        say(f"   rsa key       oss://{_BUCKET}/sample-rsa.bin as {rsa_format}, wrap-alg {rsa_wrap}")
        if hashlib.sha256(rsa_client.get((store, "sample-rsa.bin"))).digest() != digest:
            raise CseError("demo: the RSA-wrapped object decrypted from OSS differs from the original")
        pems = _pems(root)
        auth = oss2.AuthV4(_AK, _SECRET)
        crypto = oss2.CryptoBucket(
            auth,
            oss_server.endpoint,
            _BUCKET,
            crypto_provider=oss2.crypto.RsaProvider(key_pair=pems),
            region=_REGION,
        )
        if hashlib.sha256(crypto.get_object("sample-rsa.bin").read()).digest() != digest:
            raise CseError("demo: oss2's CryptoBucket read different bytes")
        say("   interop       oss2's CryptoBucket (RsaProvider) decrypts it to the same bytes")
        official_v2 = _read_with_ossv2(oss_server.endpoint, pems)
        if official_v2 is None:
            say("   interop       alibabacloud-oss-v2 skipped: pip install alibabacloud-oss-v2")
        elif hashlib.sha256(official_v2).digest() != digest:
            raise CseError("demo: alibabacloud-oss-v2's EncryptionClient read different bytes")
        else:
            say("   interop       alibabacloud-oss-v2's EncryptionClient decrypts it to the same bytes")
        return {
            "ok": True,
            "url": f"oss://{_BUCKET}/sample.bin",
            "format": head.envelope.format,
            "key": provider.describe(),
            "metadata_keys": sorted(meta),
            "rsa_url": f"oss://{_BUCKET}/sample-rsa.bin",
            "rsa_key_uri": key_uri,
            "oss2_read": True,
            "alibabacloud_oss_v2_read": official_v2 is not None,
        }
    finally:
        kms_server.stop()
        oss_server.stop()


def _rsa_paths(root: Path) -> tuple[Path, Path]:
    keys = root / "keys"
    return keys / "oss-demo-private.pem", keys / "oss-demo-public.pem"


def _rsa_key(root: Path) -> str:
    """The key URI of the leg's RSA key pair in ``root/keys``, made if it does not exist yet."""
    import cse_rsa

    private, public = _rsa_paths(root)
    private.parent.mkdir(parents=True, exist_ok=True)
    if not private.exists():
        cse_rsa.generate_keypair(private, public, bits=2048)
    return f"rsa://{quote(str(private.resolve()))}"


def _pems(root: Path) -> dict[str, str]:
    """The leg's key pair as PEM text, as the official SDKs take it."""
    private, public = _rsa_paths(root)
    return {"private_key": private.read_text(), "public_key": public.read_text()}


def _read_with_ossv2(endpoint: str, pems: dict[str, str]) -> bytes | None:
    """``sample-rsa.bin`` decrypted by alibabacloud-oss-v2's EncryptionClient, or None if not installed."""
    try:
        oss = importlib.import_module("alibabacloud_oss_v2")
        rsa_cipher = importlib.import_module("alibabacloud_oss_v2.crypto.master_rsa_cipher")
    except ImportError:
        return None
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(_AK, _SECRET)
    cfg.region = _REGION
    cfg.endpoint = endpoint
    cfg.use_path_style = True
    cfg.disable_ssl = True
    master = rsa_cipher.MasterRsaCipher(public_key=pems["public_key"], private_key=pems["private_key"])
    client = oss.EncryptionClient(oss.Client(cfg), master)
    result = client.get_object(oss.GetObjectRequest(bucket=_BUCKET, key="sample-rsa.bin"))
    return bytes(result.body.read())
