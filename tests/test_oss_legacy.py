"""The legacy OSS formats, read only behind the legacy opt-in: V1 (oss2 2.4 to 2.10) and OSS V2 with the
deprecated RSA-OAEP wrap (oss2's ``LocalRsaProvider``).

V2 OAEP objects are written by today's oss2. V1 objects are built here exactly as oss2 2.10's
``LocalRsaProvider``/``AliKMSProvider`` and ``AESCipher`` built them (pycryptodome's OAEP and a 128-bit CTR
counter starting at the decimal "start"); today's oss2, which still reads V1, decrypts each one first, so
the construction is checked by the official SDK before cse reads it."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import oss2
import pytest
from Crypto.Cipher import AES, PKCS1_OAEP
from Crypto.PublicKey import RSA
from Crypto.Util import Counter
from oss2.crypto import AliKMSProvider, LocalRsaProvider

from cse.client import EncryptionClient
from cse.exceptions import ConfigurationError
from tests.conftest import OSS_AK, OSS_REGION, OSS_SECRET, oss2_bucket

KiB = 1024


@pytest.fixture
def pem(key_a: str) -> Path:
    """The private key file of key a."""
    return Path(key_a.removeprefix("rsa://"))


@pytest.fixture
def local_rsa(pem: Path, tmp_path: Path) -> LocalRsaProvider:
    """oss2's deprecated LocalRsaProvider over key a (its files named as it wants them)."""
    keys = tmp_path / "local-rsa"
    keys.mkdir()
    shutil.copy(pem, keys / "a.private_key.pem")
    shutil.copy(pem.with_name("a.pub.pem"), keys / "a.public_key.pem")
    return LocalRsaProvider(dir=str(keys), key="a")


def _crypto_bucket(emulator: Any, name: str, provider: Any) -> oss2.CryptoBucket:
    return oss2.CryptoBucket(
        oss2.AuthV4(OSS_AK, OSS_SECRET), emulator.endpoint, name, crypto_provider=provider, region=OSS_REGION
    )


def _kms_provider(kms: Any, key_id: str) -> AliKMSProvider:
    provider = AliKMSProvider(OSS_AK, OSS_SECRET, OSS_REGION, key_id)
    provider.kms_client.add_endpoint(OSS_REGION, "Kms", kms.endpoint)
    return provider


def _ctr(key: bytes, counter: int, data: bytes) -> bytes:
    """oss2 2.10's AESCipher: AES-256-CTR with a 128-bit counter starting at ``counter``."""
    return AES.new(key, AES.MODE_CTR, counter=Counter.new(128, initial_value=counter)).encrypt(data)


def _put_v1(emulator: Any, bucket: str, name: str, body: bytes, headers: dict[str, str]) -> None:
    oss2_bucket(emulator, bucket).put_object(name, body, headers=headers)


@pytest.mark.parametrize("size", [0, 1, 17, 300 * KiB + 5])
def test_v2_with_deprecated_oaep_wrap_needs_the_legacy_opt_in(
    oss_emulator: Any, oss_bucket_name: str, local_rsa: LocalRsaProvider, key_a: str, size: int
) -> None:
    """oss2's LocalRsaProvider writes OSS V2 with RSA-OAEP; cse reads it only with allow_legacy."""
    data = os.urandom(size)
    _crypto_bucket(oss_emulator, oss_bucket_name, local_rsa).put_object("oaep", data)
    meta = oss_emulator.get_object_metadata(oss_bucket_name, "oaep")
    assert meta["x-oss-meta-client-side-encryption-wrap-alg"] == "RSA/NONE/OAEPWithSHA-1AndMGF1Padding"
    url = (oss2_bucket(oss_emulator, oss_bucket_name), "oaep")
    from cse_oss.store import OssStore

    ref = (OssStore(url[0]), "oaep")
    with pytest.raises(
        ConfigurationError, match=r"deprecated RSA/NONE/OAEPWithSHA-1AndMGF1Padding.*allow_legacy"
    ):
        EncryptionClient(key_a).get(ref)
    client = EncryptionClient(key_a, allow_legacy=True)
    assert client.get(ref) == data
    if size > 20:
        assert client.get(ref, range="5-") == data[5:]


@pytest.mark.parametrize(
    ("size", "counter"), [(0, 3), (1, 10), (17, 7), (300 * KiB + 5, 1), (4000, 2**64 - 1)]
)
def test_v1_rsa_objects_read_with_the_legacy_opt_in(
    oss_emulator: Any,
    oss_bucket_name: str,
    local_rsa: LocalRsaProvider,
    pem: Path,
    key_a: str,
    size: int,
    counter: int,
) -> None:
    """V1 with ``rsa`` (OAEP-SHA1 of the key and of the decimal counter), as oss2 2.10 wrote it."""
    from cse_oss.store import OssStore

    data = os.urandom(size)
    key = os.urandom(32)
    oaep = PKCS1_OAEP.new(RSA.importKey(pem.with_name("a.pub.pem").read_bytes()))
    headers = {
        "x-oss-meta-oss-crypto-key": base64.b64encode(oaep.encrypt(key)).decode(),
        "x-oss-meta-oss-crypto-start": base64.b64encode(oaep.encrypt(str(counter).encode())).decode(),
        "x-oss-meta-oss-cek-alg": "AES/GCM/NoPadding",
        "x-oss-meta-oss-wrap-alg": "rsa",
        "x-oss-meta-unencrypted-content-length": str(size),
    }
    _put_v1(oss_emulator, oss_bucket_name, "v1", _ctr(key, counter, data), headers)
    # Today's oss2 still reads V1: the object is what oss2 expects.
    assert _crypto_bucket(oss_emulator, oss_bucket_name, local_rsa).get_object("v1").read() == data
    ref = (OssStore(oss2_bucket(oss_emulator, oss_bucket_name)), "v1")
    with pytest.raises(ConfigurationError, match="legacy oss-v1 format.*allow_legacy"):
        EncryptionClient(key_a).get(ref)
    client = EncryptionClient(key_a, allow_legacy=True)
    assert client.get(ref) == data
    head = client.head(ref)
    assert head.envelope.format == "oss-v1"
    assert head.envelope.plaintext_length == size
    if size > 100:
        for start, end in ((0, 15), (16, 31), (17, 99), (size - 50, size - 1)):
            assert client.get(ref, range=f"{start}-{end}") == data[start : end + 1]


@pytest.mark.parametrize("size", [0, 33, 200 * KiB + 3])
def test_v1_kms_objects_read_with_the_legacy_opt_in(
    oss_emulator: Any, oss_bucket_name: str, aliyun_kms: Any, aliyun_kms_key: str, size: int
) -> None:
    """V1 with ``kms``: the key from GenerateDataKey, the counter from Encrypt(Plaintext="<decimal>"), both
    CiphertextBlobs stored as they are, as oss2 2.10's AliKMSProvider did."""
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkkms.request.v20160120.EncryptRequest import EncryptRequest
    from aliyunsdkkms.request.v20160120.GenerateDataKeyRequest import GenerateDataKeyRequest
    from cse_aliyun_kms import AliyunKmsProvider
    from cse_oss.store import OssStore

    acs = AcsClient(OSS_AK, OSS_SECRET, OSS_REGION)
    acs.add_endpoint(OSS_REGION, "Kms", aliyun_kms.endpoint)
    generate = GenerateDataKeyRequest()
    generate.set_KeyId(aliyun_kms_key)
    generate.set_KeySpec("AES_256")
    generate.set_NumberOfBytes(32)
    made = json.loads(acs.do_action_with_exception(generate))
    key = base64.b64decode(made["Plaintext"])
    counter = 9
    encrypt = EncryptRequest()
    encrypt.set_KeyId(aliyun_kms_key)
    encrypt.set_Plaintext(str(counter))
    start_blob = json.loads(acs.do_action_with_exception(encrypt))["CiphertextBlob"]
    data = os.urandom(size)
    headers = {
        "x-oss-meta-oss-crypto-key": made["CiphertextBlob"],
        "x-oss-meta-oss-crypto-start": start_blob,
        "x-oss-meta-oss-cek-alg": "AES/GCM/NoPadding",
        "x-oss-meta-oss-wrap-alg": "kms",
    }
    _put_v1(oss_emulator, oss_bucket_name, "v1kms", _ctr(key, counter, data), headers)
    official = _crypto_bucket(oss_emulator, oss_bucket_name, _kms_provider(aliyun_kms, aliyun_kms_key))
    assert official.get_object("v1kms").read() == data
    ref = (OssStore(oss2_bucket(oss_emulator, oss_bucket_name)), "v1kms")
    client = EncryptionClient(AliyunKmsProvider(OSS_REGION, aliyun_kms_key, client=acs), allow_legacy=True)
    assert client.get(ref) == data
    if size > 100:
        assert client.get(ref, range="-50") == data[-50:]


def test_v1_object_can_be_re_encrypted_as_v2(
    oss_emulator: Any, oss_bucket_name: str, local_rsa: LocalRsaProvider, pem: Path, key_a: str
) -> None:
    """The way off V1: cse cp (decrypt, re-encrypt) writes OSS V2, which today's oss2 reads."""
    from cse_oss.store import OssStore

    data = os.urandom(5000)
    key = os.urandom(32)
    oaep = PKCS1_OAEP.new(RSA.importKey(pem.with_name("a.pub.pem").read_bytes()))
    headers = {
        "x-oss-meta-oss-crypto-key": base64.b64encode(oaep.encrypt(key)).decode(),
        "x-oss-meta-oss-crypto-start": base64.b64encode(oaep.encrypt(b"4")).decode(),
        "x-oss-meta-oss-cek-alg": "AES/GCM/NoPadding",
        "x-oss-meta-oss-wrap-alg": "rsa",
    }
    _put_v1(oss_emulator, oss_bucket_name, "old", _ctr(key, 4, data), headers)
    store = OssStore(oss2_bucket(oss_emulator, oss_bucket_name))
    client = EncryptionClient(key_a, allow_legacy=True)
    client.copy((store, "old"), (store, "new"), format="oss-v2")
    assert client.head((store, "new")).envelope.format == "oss-v2"
    from oss2.crypto import RsaProvider

    pair = {"private_key": pem.read_text(), "public_key": pem.with_name("a.pub.pem").read_text()}
    assert (
        _crypto_bucket(oss_emulator, oss_bucket_name, RsaProvider(key_pair=pair)).get_object("new").read()
        == data
    )
