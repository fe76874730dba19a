"""End-to-end migrations with :mod:`cse.migrate` (``cse migrate``, ``cse rewrap``), over HTTP on 127.0.0.1.

AWS is moto's server (S3 and KMS); Alibaba Cloud is the project's OSS and KMS emulators. The official SDKs
are used unmodified: the S3 Encryption Client (``s3_encryption``, which writes multipart objects itself with
``upload_file``), oss2's ``CryptoBucket`` (``AliKMSProvider``, ``RsaProvider``) and alibabacloud-oss-v2's
``EncryptionClient``. alibabacloud-oss-v2 ships no KMS master cipher; :class:`Oss2StyleKmsCipher` below is
the one a user plugs in to read the oss2 style (the header is base64 of the KMS CiphertextBlob text), which
is what cse writes with ``aliyun-kms://REGION/KEY?style=oss2`` so that oss2 reads the objects too.

What is shown:

* a mixed corpus (200 objects, 0 B to 20 MiB, some multipart) written by the official S3 client under AWS
  KMS moves to OSS under Alibaba KMS (native mode) and both OSS SDKs read every object; ``cse migrate``
  moves it back to S3 and the official S3 client reads every object;
* rewrap within one bucket is a server-side copy (no body moves, from a request log on S3 and on OSS), after
  which only the new key opens the objects and the official SDKs still read them;
* a ``cse migrate`` killed with SIGKILL halfway and run again delivers every object exactly once, with no
  multipart upload left behind;
* a tampered object fails alone, with its reason in the summary, and the exit code is 1;
* a data-key cache cuts 1,000 KMS ``GenerateDataKey`` calls (one per object) to a handful.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from botocore.config import Config
from click.testing import CliRunner

from cse.cache import DataKeyCache
from cse.cli import main
from cse.client import EncryptionClient
from cse.config import TransferConfig
from cse.exceptions import CseError
from cse.migrate import migrate, rewrap_prefix
from cse.stores.memory import MemoryStore

s3_encryption = pytest.importorskip("s3_encryption")
oss2 = pytest.importorskip("oss2")
oss = pytest.importorskip("alibabacloud_oss_v2")
pytest.importorskip("aliyunsdkkms")

from alibabacloud_oss_v2.crypto import (  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
    MasterCipher,
    MasterRsaCipher,
)
from aliyunsdkcore.client import AcsClient  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
from aliyunsdkkms.request.v20160120.DecryptRequest import (  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
    DecryptRequest,
)
from cse_oss.store import OssStore  # noqa: E402
from cse_oss.testing import server as oss_server  # noqa: E402
from s3_encryption import S3EncryptionClient, S3EncryptionClientConfig  # noqa: E402
from s3_encryption.materials.kms_keyring import KmsKeyring  # noqa: E402

from tests.conftest import OSS_AK, OSS_REGION, OSS_SECRET, oss2_bucket  # noqa: E402

# oss2 logs with the deprecated Logger.warn when a plain Bucket (cse's store) reads an encrypted object.
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

KiB = 1024
MiB = 1024 * KiB
META = "x-oss-meta-client-side-encryption-"
T = TypeVar("T")
R = TypeVar("R")


# ------------------------------------------------------------------------------------------------ helpers


def _parallel(fn: Callable[[T], R], items: Iterable[T], workers: int = 6) -> list[R]:
    """``fn`` over ``items`` on a few threads, in order; the first exception propagates."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def _s3(endpoint: str) -> Any:
    """A plain boto3 S3 client on moto (path style)."""
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(s3={"addressing_style": "path"})
    )


def _official(endpoint: str, kms_client: Any, key_id: str) -> Any:
    """The official S3 Encryption Client (V3, key-committing) under the AWS KMS key ``key_id``."""
    config = S3EncryptionClientConfig(keyring=KmsKeyring(kms_client=kms_client, kms_key_id=key_id))
    return S3EncryptionClient(wrapped_s3_client=_s3(endpoint), config=config)


def _official_put(official: Any, bucket: str, key: str, data: bytes, tmp_path: Path) -> None:
    """Put with the official client: ``put_object`` up to 5 MiB, multipart ``upload_file`` (5 MiB parts)
    above."""
    if len(data) <= 5 * MiB:
        official.put_object(Bucket=bucket, Key=key, Body=data)
        return
    source = tmp_path / hashlib.sha256(key.encode()).hexdigest()
    source.write_bytes(data)
    official.upload_file(str(source), bucket, key, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    source.unlink()


def _official_get(official: Any, bucket: str, key: str, context: dict[str, str] | None = None) -> bytes:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if context:
        kwargs["EncryptionContext"] = context
    return bytes(official.get_object(**kwargs)["Body"].read())


def _aws_kms_uri(key_id: str, endpoint: str) -> str:
    return f"aws-kms://{key_id}?region=us-east-1&endpoint-url={endpoint}"


def _kms_acs(kms: Any) -> AcsClient:
    """An unmodified aliyun-python-sdk-core client pointed at the KMS emulator."""
    client = AcsClient(OSS_AK, OSS_SECRET, OSS_REGION, auto_retry=False)
    client.add_endpoint(OSS_REGION, "Kms", kms.endpoint)
    return client


class Oss2StyleKmsCipher(MasterCipher):  # type: ignore[misc,unused-ignore]
    """A read-only ``KMS/ALICLOUD`` master cipher for alibabacloud-oss-v2 that reads oss2-style headers.

    The SDK base64-decodes the header and hands the result to :meth:`decrypt`; in the oss2 style that is the
    KMS CiphertextBlob *text*, sent to KMS ``Decrypt`` as it is; the answer's ``Plaintext`` is base64.
    """

    def __init__(self, client: AcsClient) -> None:
        """Decrypt through ``client``."""
        self._client = client

    def encrypt(self, data: bytes) -> bytes:
        """Not needed here: these tests only read with it."""
        raise NotImplementedError

    def decrypt(self, data: bytes) -> bytes:
        """Unwrap the CiphertextBlob text ``data``."""
        request = DecryptRequest()
        request.set_accept_format("JSON")
        request.set_method("POST")
        request.set_CiphertextBlob(data.decode("ascii"))
        answer = json.loads(self._client.do_action_with_exception(request))
        return base64.b64decode(answer["Plaintext"])

    def get_wrap_algorithm(self) -> str:
        """``KMS/ALICLOUD``."""
        return "KMS/ALICLOUD"

    def get_mat_desc(self) -> str:
        """No material description."""
        return ""


def _ossv2_client(emulator: Any) -> Any:
    """An unmodified alibabacloud-oss-v2 client on the OSS emulator (path style, plain HTTP)."""
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(OSS_AK, OSS_SECRET)
    cfg.region = OSS_REGION
    cfg.endpoint = emulator.endpoint
    cfg.use_path_style = True
    cfg.disable_ssl = True
    return oss.Client(cfg)


def _ossv2_get(client: Any, bucket: str, key: str) -> bytes:
    return bytes(client.get_object(oss.GetObjectRequest(bucket=bucket, key=key)).body.read())


def _oss2_crypto(emulator: Any, bucket: str, provider: Any) -> Any:
    return oss2.CryptoBucket(
        oss2.AuthV4(OSS_AK, OSS_SECRET),
        emulator.endpoint,
        bucket,
        crypto_provider=provider,
        region=OSS_REGION,
    )


def _oss2_kms_provider(kms: Any, key_id: str) -> Any:
    provider = oss2.crypto.AliKMSProvider(OSS_AK, OSS_SECRET, OSS_REGION, key_id)
    provider.kms_client.add_endpoint(OSS_REGION, "Kms", kms.endpoint)
    return provider


def _pems(key_uri: str) -> dict[str, str]:
    """The PEM texts of the key pair behind ``rsa:///.../a.pem`` (``a.pem`` and ``a.pub.pem``)."""
    private = Path(key_uri.removeprefix("rsa://"))
    public = private.with_name(private.stem + ".pub.pem")
    return {"private_key": private.read_text(), "public_key": public.read_text()}


def _oss_keys(emulator: Any, bucket: str) -> list[str]:
    """The object keys of an OSS bucket, listed over HTTP with oss2."""
    return sorted(o.key for o in oss2.ObjectIteratorV2(oss2_bucket(emulator, bucket)))


def _oss_uploads(emulator: Any, bucket: str) -> list[str]:
    """The keys of unfinished multipart uploads in an OSS bucket, listed over HTTP with oss2."""
    return [u.key for u in oss2.MultipartUploadIterator(oss2_bucket(emulator, bucket))]


def _s3_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _gdk_calls(kms: Any, start: int) -> int:
    """Successful GenerateDataKey requests the Alibaba KMS emulator received after log entry ``start``."""
    return sum(1 for r in kms.request_log[start:] if r.action == "GenerateDataKey" and r.status == 200)


def _corpus(n: int = 200) -> dict[str, bytes]:
    """``n`` objects from 0 B to 20 MiB: edge sizes, mostly 0-64 KiB, a few 1-6 MiB, one of 20 MiB; two keys
    with characters that need escaping. About 38 MiB in all."""
    rng = random.Random(20240601)
    sizes = [0, 1, 15, 16, 17, 4095, 4096, 4097, 64 * KiB, 1 * MiB + 3, 3 * MiB, 5 * MiB + 1, 6 * MiB + 5]
    sizes.append(20 * MiB + 7)
    sizes += [rng.randrange(64 * KiB) for _ in range(n - len(sizes))]
    data = {}
    for i, size in enumerate(sizes):
        group = ("edge", "big", "small")[0 if i < 9 else 1 if i < 14 else 2]
        data[f"{group}/{i:03d}.bin"] = rng.randbytes(size)
    data["small/odd name+plus=eq.bin"] = data.pop("small/198.bin")
    data["small/ünïcode-ключ.bin"] = data.pop("small/199.bin")
    return data


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point default boto3 S3 and KMS clients (``s3://`` URLs, ``aws-kms://`` keys) at moto's server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto_endpoint)
    return moto_endpoint


@pytest.fixture
def record_oss_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """What the OSS emulator did with each object PUT: ``("copy" | "put", bucket, key)``.

    The emulator's request log does not tell a CopyObject (a PUT with ``x-oss-copy-source``) from a PUT with
    a body; this records the handler the emulator dispatched to, server side.
    """
    calls: list[tuple[str, str, str]] = []
    handler = oss_server._Handler
    for name, label in (("_copy_object", "copy"), ("_put_object", "put"), ("_upload_part", "upload_part")):
        original = getattr(handler, name)

        def wrapped(self: Any, bucket: Any, _original: Any = original, _label: str = label) -> None:
            calls.append((_label, self.bucket, self.key))
            _original(self, bucket)

        monkeypatch.setattr(handler, name, wrapped)
    return calls


# --------------------------------------------------------------------------- 1-3: S3 -> OSS -> S3, native


def test_native_round_trip_s3_to_oss_and_back(
    moto_endpoint: str,
    s3_env: str,
    kms_client: Any,
    kms_key_id: str,
    s3_bucket: str,
    oss_env: str,
    oss_emulator: Any,
    aliyun_kms: Any,
    aliyun_kms_key: str,
    oss_bucket_name: str,
    tmp_path: Path,
) -> None:
    """200 objects (0 B-20 MiB, three of them multipart) written by the official S3 Encryption Client under
    AWS KMS move to OSS under Alibaba KMS with ``migrate`` (native): every one is copied and verified, lands
    at the same relative key in ``oss-v2`` (multipart above 2 MiB), and both oss2's CryptoBucket
    (AliKMSProvider) and alibabacloud-oss-v2's EncryptionClient read each with the right bytes. ``cse
    migrate`` then moves them back to another S3 bucket under a second AWS KMS key, and the official S3
    client reads every object. Objects outside the source prefix stay where they are."""
    corpus = _corpus()
    assert len(corpus) == 200
    official = _official(moto_endpoint, kms_client, kms_key_id)
    _parallel(lambda kv: _official_put(official, s3_bucket, f"data/{kv[0]}", kv[1], tmp_path), corpus.items())
    official.put_object(Bucket=s3_bucket, Key="other/not-moved", Body=b"outside the prefix")
    raw = _s3(moto_endpoint)
    assert raw.head_object(Bucket=s3_bucket, Key="data/big/013.bin")["ETag"].endswith('-5"')  # multipart

    # S3 -> OSS (library), oss2-style KMS headers so that oss2 reads them as well.
    kms_mark = len(aliyun_kms.request_log)
    summary = migrate(
        f"s3://{s3_bucket}/data/",
        f"oss://{oss_bucket_name}/imported/",
        keys=[_aws_kms_uri(kms_key_id, moto_endpoint)],
        to_keys=[f"aliyun-kms://{OSS_REGION}/{aliyun_kms_key}?style=oss2"],
        config=TransferConfig(multipart_threshold=2 * MiB, part_size=1 * MiB),
        verify=True,
        workers=4,
    )
    assert (summary.copied, summary.failed, summary.skipped) == (200, 0, 0), [
        o.error for o in summary.objects if o.error
    ]
    assert summary.bytes == sum(len(v) for v in corpus.values())
    assert all(o.verified and o.format == "oss-v2" for o in summary.objects)
    assert _gdk_calls(aliyun_kms, kms_mark) == 200  # one data key per object, no cache
    assert summary.kms_calls_by_operation.get("GenerateDataKey") == 200
    assert _oss_keys(oss_emulator, oss_bucket_name) == sorted(f"imported/{k}" for k in corpus)
    assert _oss_uploads(oss_emulator, oss_bucket_name) == []
    for key, value in corpus.items():
        meta = oss_emulator.get_object_metadata(oss_bucket_name, f"imported/{key}")
        assert meta[META + "wrap-alg"] == "KMS/ALICLOUD"
        assert (META + "part-size" in meta) == (len(value) > 2 * MiB), key
    big = oss_emulator.get_object_metadata(oss_bucket_name, "imported/big/013.bin")
    assert big[META + "data-size"] == str(20 * MiB + 7)

    # oss2 reads every object.
    local = threading.local()

    def oss2_get(key: str) -> bytes:
        if not hasattr(local, "bucket"):
            provider = _oss2_kms_provider(aliyun_kms, aliyun_kms_key)
            local.bucket = _oss2_crypto(oss_emulator, oss_bucket_name, provider)
        return bytes(local.bucket.get_object(f"imported/{key}").read())

    got = _parallel(oss2_get, corpus)
    assert [k for k, v in zip(corpus, got, strict=True) if corpus[k] != v] == []

    # alibabacloud-oss-v2 reads every object (with a KMS master cipher for the oss2 style).
    v2 = oss.EncryptionClient(_ossv2_client(oss_emulator), Oss2StyleKmsCipher(_kms_acs(aliyun_kms)))
    got = _parallel(lambda k: _ossv2_get(v2, oss_bucket_name, f"imported/{k}"), corpus)
    assert [k for k, v in zip(corpus, got, strict=True) if corpus[k] != v] == []

    # OSS -> S3 with the cse migrate command, under another AWS KMS key.
    back_key = str(kms_client.create_key(Description="migrated back")["KeyMetadata"]["KeyId"])
    back_bucket = f"{s3_bucket}-back"
    raw.create_bucket(Bucket=back_bucket)
    result = CliRunner().invoke(
        main,
        [
            "migrate",
            f"oss://{oss_bucket_name}/imported/",
            f"s3://{back_bucket}/back/",
            "--key",
            f"aliyun-kms://{OSS_REGION}/{aliyun_kms_key}",
            "--to-key",
            _aws_kms_uri(back_key, moto_endpoint),
            "--workers",
            "4",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["copied"], report["failed"], report["ok"]) == (200, 0, True)
    assert report["kms_calls"] >= 400  # Alibaba Decrypt (key and IV) and AWS GenerateDataKey per object
    assert {o["format"] for o in report["objects"]} == {"s3-v3"}
    assert _s3_keys(raw, back_bucket, "") == sorted(f"back/{k}" for k in corpus)
    back = _official(moto_endpoint, kms_client, back_key)
    got = _parallel(lambda k: _official_get(back, back_bucket, f"back/{k}"), corpus)
    assert [k for k, v in zip(corpus, got, strict=True) if corpus[k] != v] == []


# ------------------------------------------------------------------------------------------ 4: rewrap


def test_rewrap_s3_in_place_is_a_server_side_copy(
    moto_endpoint: str, kms_client: Any, kms_key_id: str, s3_bucket: str, tmp_path: Path
) -> None:
    """Key rotation in place on S3 (``rewrap_prefix`` on one S3Store): the S3 client the store uses sends
    only ListObjectsV2, HeadObject and CopyObject (no GetObject, PutObject or UploadPart), the stored
    ciphertext is unchanged byte for byte, the old AWS KMS key no longer opens the objects (cse and the
    official client) and the new one does; the official client reads every object, the multipart one and the
    one with an encryption context included."""
    official = _official(moto_endpoint, kms_client, kms_key_id)
    data = {
        f"vault/o{i:02d}": os.urandom(size) for i, size in enumerate([0, 1, 17, 4096, 100 * KiB, 6 * MiB])
    }
    _parallel(lambda kv: _official_put(official, s3_bucket, kv[0], kv[1], tmp_path), data.items())
    context = {"team": "payments"}
    data["vault/with-context"] = os.urandom(3000)
    official.put_object(
        Bucket=s3_bucket, Key="vault/with-context", Body=data["vault/with-context"], EncryptionContext=context
    )
    raw = _s3(moto_endpoint)
    assert raw.head_object(Bucket=s3_bucket, Key="vault/o05")["ETag"].endswith('-2"')  # multipart
    before = {k: raw.get_object(Bucket=s3_bucket, Key=k) for k in data}
    stored = {k: r["Body"].read() for k, r in before.items()}

    from cse_s3 import S3Store

    hooked = _s3(moto_endpoint)
    operations: list[str] = []
    hooked.meta.events.register("before-call.s3.*", lambda model, **_: operations.append(model.name))
    store = S3Store(s3_bucket, client=hooked)
    new_key = str(kms_client.create_key(Description="rotated")["KeyMetadata"]["KeyId"])
    old_uri, new_uri = _aws_kms_uri(kms_key_id, moto_endpoint), _aws_kms_uri(new_key, moto_endpoint)
    summary = rewrap_prefix((store, "vault/"), keys=[old_uri], to_keys=[new_uri])

    assert (summary.copied, summary.failed) == (len(data), 0), [o.error for o in summary.objects]
    counts = Counter(operations)
    assert set(counts) <= {"ListObjectsV2", "HeadObject", "CopyObject"}, counts
    assert counts["CopyObject"] == len(data)
    assert not {"GetObject", "PutObject", "UploadPart", "CreateMultipartUpload"} & set(counts)
    assert summary.kms_calls_by_operation.get("Decrypt") == len(data)
    for key in data:
        after = raw.get_object(Bucket=s3_bucket, Key=key)
        assert after["Body"].read() == stored[key], key  # the ciphertext is untouched
        assert after["Metadata"] != before[key]["Metadata"], key  # the wrapped key is new

    new_official = _official(moto_endpoint, kms_client, new_key)
    with EncryptionClient(new_uri) as new_cse, EncryptionClient(old_uri) as old_cse:
        for key, value in data.items():
            ctx = context if key == "vault/with-context" else None
            assert _official_get(new_official, s3_bucket, key, ctx) == value, key
            assert new_cse.get((store, key)) == value, key
            with pytest.raises(CseError):
                old_cse.get((store, key))
            with pytest.raises(Exception):  # noqa: B017 - the official client's own error types
                _official_get(official, s3_bucket, key, ctx)


def test_rewrap_oss_in_place_with_cse_rewrap(
    oss_env: str,
    oss_emulator: Any,
    oss_bucket_name: str,
    key_a: str,
    key_b: str,
    record_oss_writes: list[tuple[str, str, str]],
    tmp_path: Path,
) -> None:
    """``cse rewrap`` on OSS from RSA key a to RSA key b, over objects written by oss2's CryptoBucket (one of
    them multipart with ``resumable_upload``): the emulator sees HEADs, one bucket listing and one
    CopyObject per object (no GET of an object, no PUT with a body, no UploadPart); the stored bytes are
    unchanged; oss2 and alibabacloud-oss-v2 read every object with key b, and neither they nor cse open them
    with key a any more."""
    pems_a, pems_b = _pems(key_a), _pems(key_b)
    writer = _oss2_crypto(oss_emulator, oss_bucket_name, oss2.crypto.RsaProvider(key_pair=pems_a))
    data = {f"enc/o{i}": os.urandom(size) for i, size in enumerate([0, 1, 16, 17, 5000, 300 * KiB])}
    for key, value in data.items():
        writer.put_object(key, value)
    data["enc/mp"] = os.urandom(700 * KiB + 3)
    source = tmp_path / "mp.bin"
    source.write_bytes(data["enc/mp"])
    oss2.resumable_upload(
        writer,
        "enc/mp",
        str(source),
        store=oss2.ResumableStore(root=str(tmp_path / "checkpoints")),
        multipart_threshold=100 * KiB,
        part_size=100 * KiB,
    )
    assert oss_emulator.get_object_metadata(oss_bucket_name, "enc/mp")[META + "part-size"] == str(100 * KiB)
    stored = {k: oss_emulator.get_object_bytes(oss_bucket_name, k) for k in data}
    wrapped = {k: oss_emulator.get_object_metadata(oss_bucket_name, k)[META + "key"] for k in data}
    oss_emulator.clear_log()
    record_oss_writes.clear()

    result = CliRunner().invoke(
        main, ["rewrap", f"oss://{oss_bucket_name}/enc/", "--key", key_a, "--to-key", key_b, "--json"]
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["copied"], report["failed"], report["mode"]) == (len(data), 0, "rewrap")
    log = [r for r in oss_emulator.request_log if r[1] == oss_bucket_name]
    object_methods = Counter(method for method, _, key, _ in log if key)
    assert set(object_methods) <= {"HEAD", "PUT"}, log
    assert object_methods["PUT"] == len(data)
    assert {r[0] for r in log if not r[2]} == {"GET"}  # the bucket listing (ListObjectsV2)
    assert sorted(record_oss_writes) == sorted(("copy", oss_bucket_name, k) for k in data)
    for key in data:
        assert oss_emulator.get_object_bytes(oss_bucket_name, key) == stored[key], key
        assert oss_emulator.get_object_metadata(oss_bucket_name, key)[META + "key"] != wrapped[key]

    reader_b = _oss2_crypto(oss_emulator, oss_bucket_name, oss2.crypto.RsaProvider(key_pair=pems_b))
    v2 = oss.EncryptionClient(
        _ossv2_client(oss_emulator),
        MasterRsaCipher(public_key=pems_b["public_key"], private_key=pems_b["private_key"]),
    )
    store = OssStore(oss2_bucket(oss_emulator, oss_bucket_name))
    with EncryptionClient(key_a) as old_cse:
        for key, value in data.items():
            assert bytes(reader_b.get_object(key).read()) == value, key
            assert _ossv2_get(v2, oss_bucket_name, key) == value, key
            with pytest.raises(CseError):
                old_cse.get((store, key))
            with pytest.raises(Exception):  # noqa: B017 - oss2's own error types
                writer.get_object(key).read()


# ---------------------------------------------------------------------------------- 5: kill and resume


def _journal_states(path: Path) -> dict[str, str]:
    """``{src_url: state}`` from a journal that another process writes (empty until it exists)."""
    if not path.exists():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            return dict(db.execute("SELECT src_url, state FROM objects").fetchall())
    except sqlite3.OperationalError:
        return {}


def test_killed_migration_resumes_exactly_once(
    moto_endpoint: str,
    s3_env: str,
    s3_client: Any,
    s3_bucket: str,
    oss_env: str,
    oss_emulator: Any,
    aliyun_kms: Any,
    aliyun_kms_key: str,
    oss_bucket_name: str,
    key_a: str,
    tmp_path: Path,
) -> None:
    """``cse migrate`` S3 -> OSS in a subprocess, SIGKILLed while it has a multipart upload open at the
    destination (with part of the objects done), then run again with the same journal: the second run skips
    what was done and copies the rest; the destination has exactly the source keys, no unfinished multipart
    upload, and every object's right bytes; an object done before the kill was written once only."""
    from cse_s3 import S3Store

    rng = random.Random(5)
    data = {f"in/s{i:03d}": rng.randbytes(rng.randrange(1, 48 * KiB)) for i in range(90)}
    data["in/s040-big"] = rng.randbytes(17 * MiB)  # above the default 16 MiB threshold: multipart at OSS
    data["in/s060-big"] = rng.randbytes(17 * MiB + 5)
    src = S3Store(s3_bucket, client=s3_client)
    with EncryptionClient(key_a, config=TransferConfig(multipart_threshold=64 * MiB)) as writer:
        _parallel(lambda kv: writer.put((src, kv[0]), kv[1]), data.items())
    journal = tmp_path / "journal.db"
    command = [
        sys.executable,
        "-m",
        "cse.cli",
        "migrate",
        f"s3://{s3_bucket}/in/",
        f"oss://{oss_bucket_name}/out/",
        "--key",
        key_a,
        "--to-key",
        f"aliyun-kms://{OSS_REGION}/{aliyun_kms_key}",
        "--journal",
        str(journal),
        "--workers",
        "3",
        "--json",
    ]
    total = len(data)
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while True:
            assert first.poll() is None, f"the first run ended before it was killed: {first.communicate()}"
            assert time.monotonic() < deadline, "the first run made no progress"
            with oss_emulator.lock:
                uploading = bool(oss_emulator.buckets[oss_bucket_name].uploads)
            done = sum(1 for s in _journal_states(journal).values() if s == "done")
            if uploading and done >= 10:
                break
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == -signal.SIGKILL
    states = _journal_states(journal)
    done_keys = {url.split("/", 3)[3] for url, s in states.items() if s == "done"}
    in_flight = {url.split("/", 3)[3] for url, s in states.items() if s == "copying"}
    assert 0 < len(done_keys) < total, len(done_keys)
    assert _oss_uploads(oss_emulator, oss_bucket_name), "the kill left no multipart upload to clean up"
    assert set(_oss_keys(oss_emulator, oss_bucket_name)) <= {f"out/{k[3:]}" for k in data}

    second = subprocess.run(command, capture_output=True, timeout=120, check=False)

    assert second.returncode == 0, second.stderr.decode()
    report = json.loads(second.stdout)
    assert (report["skipped"], report["copied"], report["failed"]) == (
        len(done_keys),
        total - len(done_keys),
        0,
    )
    assert _oss_keys(oss_emulator, oss_bucket_name) == sorted(f"out/{k[3:]}" for k in data)
    assert _oss_uploads(oss_emulator, oss_bucket_name) == []
    # Completed writes per destination key over both runs (a PUT of a body, or a CompleteMultipartUpload).
    writes = Counter(
        key
        for method, bucket, key, sub in oss_emulator.request_log
        if bucket == oss_bucket_name
        and key
        and ((method, sub) == ("PUT", ()) or (method, sub) == ("POST", ("uploadId",)))
    )
    for key in data:
        dst = f"out/{key[3:]}"
        expected = {1} if key in done_keys else {1, 2} if key in in_flight else {1}
        assert writes[dst] in expected, (key, writes[dst])
    store = OssStore(oss2_bucket(oss_emulator, oss_bucket_name))
    with EncryptionClient(f"aliyun-kms://{OSS_REGION}/{aliyun_kms_key}") as reader:
        got = _parallel(lambda k: reader.get((store, f"out/{k[3:]}")), data)
    assert [k for k, v in zip(data, got, strict=True) if data[k] != v] == []
    assert set(_journal_states(journal).values()) == {"done"}


# ---------------------------------------------------------------------------------- 6: a tampered object


def test_tampered_object_fails_alone(
    moto_endpoint: str,
    s3_env: str,
    kms_client: Any,
    kms_key_id: str,
    s3_bucket: str,
    oss_env: str,
    oss_emulator: Any,
    aliyun_kms_key: str,
    oss_bucket_name: str,
    tmp_path: Path,
) -> None:
    """An object written by the official S3 client whose GCM tag (the last stored byte) was flipped at rest
    fails alone: ``cse migrate --json`` exits 1, the summary counts one failure with an authentication
    reason for that object, the others are copied, and nothing is written for the tampered one; the human
    summary of a rerun names it on a FAILED line."""
    official = _official(moto_endpoint, kms_client, kms_key_id)
    data = {f"t/o{i}": os.urandom(size) for i, size in enumerate([1, 100, 5000, 70 * KiB, 1 * MiB])}
    for key, value in data.items():
        official.put_object(Bucket=s3_bucket, Key=key, Body=value)
    raw = _s3(moto_endpoint)
    victim = "t/o3"
    stored = raw.get_object(Bucket=s3_bucket, Key=victim)
    body = bytearray(stored["Body"].read())
    body[-1] ^= 0x01
    raw.put_object(Bucket=s3_bucket, Key=victim, Body=bytes(body), Metadata=stored["Metadata"])
    args = [
        "migrate",
        f"s3://{s3_bucket}/t/",
        f"oss://{oss_bucket_name}/t/",
        "--key",
        _aws_kms_uri(kms_key_id, moto_endpoint),
        "--to-key",
        f"aliyun-kms://{OSS_REGION}/{aliyun_kms_key}",
        "--journal",
        str(tmp_path / "j.db"),
    ]

    result = CliRunner().invoke(main, [*args, "--json"])

    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert (report["copied"], report["failed"], report["ok"]) == (4, 1, False)
    [failed] = [o for o in report["objects"] if o["state"] == "failed"]
    assert failed["src_url"] == f"s3://{s3_bucket}/{victim}"
    reason = failed["error"].lower()
    assert "authenticat" in reason or "tag" in reason or "tamper" in reason, failed["error"]
    assert _oss_keys(oss_emulator, oss_bucket_name) == sorted(k for k in data if k != victim)
    assert _oss_uploads(oss_emulator, oss_bucket_name) == []

    rerun = CliRunner().invoke(main, args)
    assert rerun.exit_code == 1
    assert f"FAILED s3://{s3_bucket}/{victim}: {failed['error']}" in rerun.output
    assert re.search(r"^skipped\s+4$", rerun.output, re.MULTILINE), rerun.output


# ---------------------------------------------------------------------------------- 7: data-key caching


def test_data_key_cache_cuts_kms_calls(
    oss_env: str,
    oss_emulator: Any,
    aliyun_kms: Any,
    aliyun_kms_key: str,
    oss_bucket_name: str,
    key_a: str,
) -> None:
    """1,000 small objects migrated to OSS under Alibaba KMS: with ``--cache-max-objects 1000`` at most 10
    GenerateDataKey calls reach the KMS emulator, the objects share that many wrapped keys, and the ``--json``
    summary's ``kms_calls`` equals every request the emulator received (``oss-v2`` also wraps each object's
    IV with a KMS Encrypt, as docs/data-key-cache.md says); without a cache (``migrate`` in the library)
    there is one GenerateDataKey per object. A cache given to the library does the same; the objects read
    back."""
    name = f"e2e-cache-{os.getpid()}-{time.monotonic_ns()}"
    src = MemoryStore.shared(name)
    rng = random.Random(7)
    data = {f"k{i:04d}": rng.randbytes(rng.randrange(0, 2 * KiB)) for i in range(1000)}
    with EncryptionClient(key_a) as writer:
        _parallel(lambda kv: writer.put((src, kv[0]), kv[1]), data.items())
    kms_uri = f"aliyun-kms://{OSS_REGION}/{aliyun_kms_key}"

    mark = len(aliyun_kms.request_log)
    result = CliRunner().invoke(
        main,
        [
            "migrate",
            f"memory://{name}/",
            f"oss://{oss_bucket_name}/cached/",
            "--key",
            key_a,
            "--to-key",
            kms_uri,
            "--cache-max-objects",
            "1000",
            "--workers",
            "8",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    cached_calls = _gdk_calls(aliyun_kms, mark)
    assert report["copied"] == 1000
    assert 1 <= cached_calls <= 10
    assert report["kms_calls"] == len(aliyun_kms.request_log) - mark  # every KMS request, and only those
    assert report["kms_calls_by_operation"] == {"GenerateDataKey": cached_calls, "Encrypt": 1000}
    headers = {oss_emulator.get_object_metadata(oss_bucket_name, f"cached/{k}")[META + "key"] for k in data}
    assert len(headers) == cached_calls

    mark = len(aliyun_kms.request_log)
    summary = migrate(
        f"memory://{name}/", f"oss://{oss_bucket_name}/uncached/", keys=[key_a], to_keys=[kms_uri], workers=8
    )
    assert (summary.copied, summary.failed) == (1000, 0)
    assert _gdk_calls(aliyun_kms, mark) == 1000
    assert summary.kms_calls_by_operation == {"GenerateDataKey": 1000, "Encrypt": 1000}
    assert summary.kms_calls == len(aliyun_kms.request_log) - mark
    headers = {oss_emulator.get_object_metadata(oss_bucket_name, f"uncached/{k}")[META + "key"] for k in data}
    assert len(headers) == 1000

    store = OssStore(oss2_bucket(oss_emulator, oss_bucket_name))
    sample = sorted(rng.sample(sorted(data), 25))
    with EncryptionClient(kms_uri) as reader:
        for key in sample:
            assert reader.get((store, f"cached/{key}")) == data[key], key
            assert reader.get((store, f"uncached/{key}")) == data[key], key
    # A cache passed to the library directly works the same way (on the 100 keys k00..).
    mark = len(aliyun_kms.request_log)
    summary = migrate(
        f"memory://{name}/k00",
        f"oss://{oss_bucket_name}/lib-cached/k00",
        keys=[key_a],
        to_keys=[kms_uri],
        key_cache=DataKeyCache(max_objects=1000),
    )
    assert (summary.copied, summary.kms_calls_by_operation.get("GenerateDataKey")) == (100, 1)
    assert _gdk_calls(aliyun_kms, mark) == 1
    with EncryptionClient(kms_uri) as reader:
        assert reader.get((store, "lib-cached/k0042")) == data["k0042"]
