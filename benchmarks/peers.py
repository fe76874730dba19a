"""cse against the official clients' encrypt and decrypt pipelines, on the same bytes, with no network.

* S3: ``s3_encryption`` 4.0.x ``PutEncryptedObjectPipeline.encrypt`` and
  ``GetEncryptedObjectPipeline.decrypt`` (what ``S3EncryptionClient.put_object``/``get_object`` run in
  their botocore event handlers), with a ``KmsKeyring`` over :class:`~common.LocalKms`, the default
  algorithm suite (key-committing GCM, S3 V3) and delayed authentication off (the default: the whole
  object is verified before it is released). cse: ``EncryptionClient(AwsKmsProvider(arn, client=<the
  same LocalKms>), format="s3-v3").put`` then ``.get`` into :class:`~common.BenchStore`, one request per
  object (``multipart_threshold`` above the size).
* OSS: oss2 ``CryptoBucket``'s steps with ``RsaProvider`` (RSA-2048 PKCS#1 v1.5, AES-256-CTR via
  pycryptodome): ``create_content_material`` + ``make_encrypt_adapter(data, cipher)`` read in 8 KiB blocks
  (the block ``http.client`` reads a request body in) + ``to_object_meta``; then ``ContentCryptoMaterial
  .from_object_meta`` + ``decrypt_encrypted_key``/``_iv`` + ``make_decrypt_adapter(body, cipher).read()``
  (``GetObjectResult.read()``). cse: ``EncryptionClient("rsa://...", format="oss-v2").put`` then ``.get``
  into :class:`~common.BenchStore` with the same RSA key pair.

Transport checks (CRC64 on OSS, MD5 on S3) are the store's, not the pipeline's, and are left out on both
sides. Figures are cse throughput / peer throughput (higher is better for cse).
"""

from __future__ import annotations

import copy
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from common import KEY_ARN, BenchStore, KiB, LocalKms, MiB, alternate, mib_s, rsa_keypair

from cse.client import EncryptionClient
from cse.config import TransferConfig

#: (object size, objects per timed repetition)
SIZES = [(4 * KiB, 200), (1 * MiB, 16), (64 * MiB, 1)]


def _config() -> TransferConfig:
    return TransferConfig(multipart_threshold=256 * MiB, max_authenticated_buffer=256 * MiB)


def _s3(size: int, count: int, repeat: int) -> list[dict[str, Any]]:
    from botocore.response import StreamingBody
    from cse_aws_kms import AwsKmsProvider
    from s3_encryption.materials.crypto_materials_manager import DefaultCryptoMaterialsManager
    from s3_encryption.materials.kms_keyring import KmsKeyring
    from s3_encryption.materials.materials import AlgorithmSuite, CommitmentPolicy
    from s3_encryption.pipelines import GetEncryptedObjectPipeline, PutEncryptedObjectPipeline

    kms = LocalKms()
    cmm = DefaultCryptoMaterialsManager(KmsKeyring(kms_client=kms, kms_key_id=KEY_ARN))
    suite = AlgorithmSuite.ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    policy = CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    client = EncryptionClient(AwsKmsProvider(KEY_ARN, client=kms), format="s3-v3", config=_config())
    store = BenchStore()
    data = os.urandom(size)
    stored: list[tuple[bytes, dict[str, str]]] = []

    def official_put() -> None:
        stored.clear()
        for _ in range(count):
            stored.append(PutEncryptedObjectPipeline(cmm, suite).encrypt(data))

    def official_get() -> None:
        for ct, meta in stored:
            response = {
                "Body": StreamingBody(io.BytesIO(ct), len(ct)),
                "Metadata": meta,
                "ContentLength": len(ct),
            }
            body = GetEncryptedObjectPipeline(cmm, commitment_policy=policy).decrypt(
                response, instruction_suffix=".instruction", enable_delayed_authentication=False
            )
            assert len(body.read()) == size

    def cse_put() -> None:
        store.clear_objects()  # as the official side drops its previous outputs first
        for i in range(count):
            client.put((store, f"o{i}"), data)

    def cse_get() -> None:
        for i in range(count):
            assert len(client.get((store, f"o{i}"))) == size

    # Warm up (and check that each side reads its own output).
    official_put()
    official_get()
    cse_put()
    assert client.get((store, "o0")) == data
    put = alternate(repeat, official=official_put, cse=cse_put)
    get = alternate(repeat, official=official_get, cse=cse_get)
    return _rows("s3_encryption 4.0 (KmsKeyring, local KMS stand-in)", size, count, put, get)


def _oss(size: int, count: int, repeat: int, key_uri: str, pems: dict[str, str]) -> list[dict[str, Any]]:
    import oss2
    from oss2 import http as oss2_http
    from oss2.models import ContentCryptoMaterial

    provider = oss2.crypto.RsaProvider(key_pair=pems)
    client = EncryptionClient(key_uri, format="oss-v2", config=_config())
    store = BenchStore()
    data = os.urandom(size)
    stored: list[tuple[bytes, Any]] = []

    def official_put() -> None:
        stored.clear()
        for _ in range(count):
            material = provider.create_content_material()
            adapter = provider.make_encrypt_adapter(data, material.cipher)
            headers = material.to_object_meta(oss2_http.CaseInsensitiveDict())
            out = io.BytesIO()
            while block := adapter.read(8 * KiB):
                out.write(block)
            stored.append((out.getvalue(), headers))

    def official_get() -> None:
        for ct, headers in stored:
            material = ContentCryptoMaterial(provider.cipher, provider.wrap_alg)
            material.from_object_meta(headers)
            key = provider.decrypt_encrypted_key(material.encrypted_key)
            iv = provider.decrypt_encrypted_iv(material.encrypted_iv)
            cipher = copy.copy(material.cipher)
            cipher.initialize(key, iv, 0)
            plain = provider.make_decrypt_adapter(io.BytesIO(ct), cipher).read()
            assert len(plain) == size

    def cse_put() -> None:
        store.clear_objects()  # as the official side drops its previous outputs first
        for i in range(count):
            client.put((store, f"o{i}"), data)

    def cse_get() -> None:
        for i in range(count):
            assert len(client.get((store, f"o{i}"))) == size

    official_put()
    official_get()
    cse_put()
    assert client.get((store, "o0")) == data
    put = alternate(repeat, official=official_put, cse=cse_put)
    get = alternate(repeat, official=official_get, cse=cse_get)
    return _rows("oss2 CryptoBucket (RsaProvider, RSA-2048)", size, count, put, get)


def _rows(
    peer: str, size: int, count: int, put: dict[str, float], get: dict[str, float]
) -> list[dict[str, Any]]:
    rows = []
    for op, t in (("put (encrypt)", put), ("get (decrypt)", get)):
        rows.append(
            {
                "peer": peer,
                "op": op,
                "object_size": size,
                "objects": count,
                "cse_mib_s": mib_s(size * count, t["cse"]),
                "peer_mib_s": mib_s(size * count, t["official"]),
                "ratio": t["official"] / t["cse"],
            }
        )
    return rows


def bench_peers(repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        key_uri, pems = rsa_keypair(Path(tmp))
        for size, count in SIZES:
            rows += _s3(size, count, repeat)
        for size, count in SIZES:
            rows += _oss(size, count, repeat, key_uri, pems)
    return rows
