"""Interoperability of cse's ``oss-v2`` objects with the official OSS SDKs, over HTTP, on the emulators.

The official SDKs are used unmodified, against the OSS emulator and the Alibaba Cloud KMS emulator on
127.0.0.1:

* oss2 ``CryptoBucket`` with ``RsaProvider`` (RSA PKCS#1 v1.5) and ``AliKMSProvider`` (its own double
  base64 KMS style);
* alibabacloud-oss-v2 ``EncryptionClient`` with ``MasterRsaCipher`` and with a Go/Java-style KMS master
  cipher (:class:`GoStyleKmsCipher`, written here on aliyun-python-sdk-kms: the header is the KMS
  CiphertextBlob verbatim).

Both directions are covered (an SDK writes and cse reads, cse writes and an SDK reads), for edge sizes and
for multipart objects, whole and in byte ranges.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

oss2 = pytest.importorskip("oss2")
oss = pytest.importorskip("alibabacloud_oss_v2")
pytest.importorskip("aliyunsdkcore")
pytest.importorskip("aliyunsdkkms")

from alibabacloud_oss_v2.crypto import (  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
    MasterCipher,
    MasterRsaCipher,
)
from aliyunsdkcore.client import AcsClient  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
from aliyunsdkkms.request.v20160120.DecryptRequest import (  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
    DecryptRequest,
)
from aliyunsdkkms.request.v20160120.EncryptRequest import (  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
    EncryptRequest,
)
from cse_oss.store import OssStore  # noqa: E402

from cse.client import EncryptionClient  # noqa: E402
from cse.config import TransferConfig  # noqa: E402
from tests.conftest import OSS_AK, OSS_REGION, OSS_SECRET, oss2_bucket  # noqa: E402

# oss2 logs with the deprecated Logger.warn when a plain Bucket (cse's store) reads an encrypted object.
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

KiB = 1024
MiB = 1024 * KiB
SIZES = [0, 1, 15, 16, 17, 5 * MiB]
META = "x-oss-meta-client-side-encryption-"
_B64_TEXT = re.compile(rb"[A-Za-z0-9+/]+={0,2}")


# ------------------------------------------------------------------------------------------------ helpers


def _pems(key_uri: str) -> dict[str, str]:
    """The PEM texts of the key pair behind ``rsa:///.../a.pem`` (``a.pem`` and ``a.pub.pem``)."""
    private = Path(key_uri.removeprefix("rsa://"))
    public = private.with_name(private.stem + ".pub.pem")
    return {"private_key": private.read_text(), "public_key": public.read_text()}


def _kms_client(kms: Any) -> AcsClient:
    """An unmodified aliyun-python-sdk-core client pointed at the KMS emulator."""
    client = AcsClient(OSS_AK, OSS_SECRET, OSS_REGION, auto_retry=False)
    client.add_endpoint(OSS_REGION, "Kms", kms.endpoint)
    return client


class GoStyleKmsCipher(MasterCipher):  # type: ignore[misc,unused-ignore]
    """A ``KMS/ALICLOUD`` master cipher as the Go and Java SDKs implement it, for alibabacloud-oss-v2.

    ``encrypt``: KMS ``Encrypt(Plaintext=b64(data))`` and return ``b64decode(CiphertextBlob)``, so the
    SDK's base64 of it (the header) is the CiphertextBlob verbatim. ``decrypt``: ``Decrypt(CiphertextBlob=
    b64(data))`` and return ``b64decode(Plaintext)``.
    """

    def __init__(self, client: AcsClient, key_id: str) -> None:
        """Wrap with ``key_id`` through ``client``."""
        self._client = client
        self._key_id = key_id

    def _call(self, request: Any) -> dict[str, Any]:
        request.set_accept_format("JSON")
        request.set_method("POST")
        return dict(json.loads(self._client.do_action_with_exception(request)))

    def encrypt(self, data: bytes) -> bytes:
        """Wrap ``data``; the raw CiphertextBlob bytes."""
        request = EncryptRequest()
        request.set_KeyId(self._key_id)
        request.set_Plaintext(base64.b64encode(data).decode())
        return base64.b64decode(self._call(request)["CiphertextBlob"])

    def decrypt(self, data: bytes) -> bytes:
        """Unwrap the raw CiphertextBlob bytes ``data``."""
        request = DecryptRequest()
        request.set_CiphertextBlob(base64.b64encode(data).decode())
        return base64.b64decode(self._call(request)["Plaintext"])

    def get_wrap_algorithm(self) -> str:
        """``KMS/ALICLOUD``."""
        return "KMS/ALICLOUD"

    def get_mat_desc(self) -> str:
        """No material description."""
        return ""


@dataclass
class Side:
    """One official SDK configuration and the cse client that uses the same key."""

    name: str
    put: Callable[[str, bytes], None]
    get: Callable[[str, tuple[int, int] | None], bytes]
    cse: EncryptionClient
    store: OssStore
    bucket: str


def _oss2_side(name: str, crypto_bucket: Any, cse: EncryptionClient, store: OssStore, bucket: str) -> Side:
    def put(key: str, data: bytes) -> None:
        crypto_bucket.put_object(key, data)

    def get(key: str, byte_range: tuple[int, int] | None) -> bytes:
        return bytes(crypto_bucket.get_object(key, byte_range=byte_range).read())

    return Side(name, put, get, cse, store, bucket)


def _ossv2_client(emulator: Any) -> Any:
    """An unmodified alibabacloud-oss-v2 client on the OSS emulator (path style, plain HTTP)."""
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(OSS_AK, OSS_SECRET)
    cfg.region = OSS_REGION
    cfg.endpoint = emulator.endpoint
    cfg.use_path_style = True
    cfg.disable_ssl = True
    return oss.Client(cfg)


def _ossv2_side(
    name: str, emulator: Any, master: MasterCipher, cse: EncryptionClient, store: OssStore, bucket: str
) -> Side:
    client = oss.EncryptionClient(_ossv2_client(emulator), master)

    def put(key: str, data: bytes) -> None:
        client.put_object(oss.PutObjectRequest(bucket=bucket, key=key, body=data))

    def get(key: str, byte_range: tuple[int, int] | None) -> bytes:
        header = None if byte_range is None else f"bytes={byte_range[0]}-{byte_range[1]}"
        result = client.get_object(oss.GetObjectRequest(bucket=bucket, key=key, range_header=header))
        return bytes(result.body.read())

    return Side(name, put, get, cse, store, bucket)


def _oss2_rsa_bucket(emulator: Any, bucket: str, key_uri: str) -> Any:
    provider = oss2.crypto.RsaProvider(key_pair=_pems(key_uri))
    return oss2.CryptoBucket(
        oss2.AuthV4(OSS_AK, OSS_SECRET),
        emulator.endpoint,
        bucket,
        crypto_provider=provider,
        region=OSS_REGION,
    )


def _oss2_kms_bucket(emulator: Any, kms: Any, bucket: str, key_id: str) -> Any:
    provider = oss2.crypto.AliKMSProvider(OSS_AK, OSS_SECRET, OSS_REGION, key_id)
    provider.kms_client.add_endpoint(OSS_REGION, "Kms", kms.endpoint)
    return oss2.CryptoBucket(
        oss2.AuthV4(OSS_AK, OSS_SECRET),
        emulator.endpoint,
        bucket,
        crypto_provider=provider,
        region=OSS_REGION,
    )


@pytest.fixture
def side(
    request: pytest.FixtureRequest,
    oss_emulator: Any,
    aliyun_kms: Any,
    aliyun_kms_key: str,
    oss_bucket_name: str,
    oss_env: str,
    key_a: str,
) -> Iterator[Side]:
    """The SDK configuration named by the parameter, with a cse client on the same key and bucket."""
    store = OssStore(oss2_bucket(oss_emulator, oss_bucket_name))
    kms_uri = f"aliyun-kms://{OSS_REGION}/{aliyun_kms_key}"
    rsa_cse = EncryptionClient(key_a, format="oss-v2")
    kms_cse = EncryptionClient(kms_uri, format="oss-v2")
    name = request.param
    if name == "oss2-rsa":
        made = _oss2_side(
            name, _oss2_rsa_bucket(oss_emulator, oss_bucket_name, key_a), rsa_cse, store, oss_bucket_name
        )
    elif name == "oss2-kms":
        bucket = _oss2_kms_bucket(oss_emulator, aliyun_kms, oss_bucket_name, aliyun_kms_key)
        made = _oss2_side(name, bucket, kms_cse, store, oss_bucket_name)
    elif name == "ossv2-rsa":
        pems = _pems(key_a)
        master = MasterRsaCipher(public_key=pems["public_key"], private_key=pems["private_key"])
        made = _ossv2_side(name, oss_emulator, master, rsa_cse, store, oss_bucket_name)
    else:
        master = GoStyleKmsCipher(_kms_client(aliyun_kms), aliyun_kms_key)
        made = _ossv2_side(name, oss_emulator, master, kms_cse, store, oss_bucket_name)
    with rsa_cse, kms_cse:
        yield made


def _is_base64_text(raw: bytes) -> bool:
    return bool(raw) and len(raw) % 4 == 0 and _B64_TEXT.fullmatch(raw) is not None


def _check_header_style(side: Side, metadata: dict[str, str]) -> None:
    """The wrapped-key headers each writer is known to produce."""
    wrap = metadata[META + "wrap-alg"]
    assert metadata[META + "cek-alg"] == "AES/CTR/NoPadding"
    for field in ("key", "start"):
        decoded = base64.b64decode(metadata[META + field], validate=True)
        if side.name.endswith("rsa"):
            assert wrap == "RSA/NONE/PKCS1Padding"
            assert len(decoded) == 256  # one 2048-bit PKCS#1 v1.5 block each for the key and the IV
        elif side.name == "oss2-kms":
            assert wrap == "KMS/ALICLOUD"
            assert _is_base64_text(decoded), "oss2 writes base64(CiphertextBlob text): double base64"
        else:
            assert wrap == "KMS/ALICLOUD"
            assert not _is_base64_text(decoded), "Go/Java style: the header is the CiphertextBlob itself"


# --------------------------------------------------------------------------------- single-request objects


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("side", ["oss2-rsa", "oss2-kms", "ossv2-rsa", "ossv2-kms"], indirect=True)
def test_sdk_writes_cse_reads(side: Side, oss_emulator: Any, size: int) -> None:
    """An object put by the official SDK decrypts with cse, whole and (when long enough) in a range, and
    ``head`` reports its plaintext size; the wrapped-key headers have the writer's own style."""
    data = os.urandom(size)
    side.put("obj", data)
    metadata = oss_emulator.get_object_metadata(side.bucket, "obj")
    _check_header_style(side, metadata)
    ref = (side.store, "obj")
    assert side.cse.get(ref) == data
    assert side.cse.head(ref).size == size
    if size > 17:
        assert side.cse.get(ref, range="3-") == data[3:]
        assert (
            side.cse.get(ref, range=f"{size // 2 - 7}-{size // 2 + 9}")
            == data[size // 2 - 7 : size // 2 + 10]
        )


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("side", ["oss2-rsa", "ossv2-rsa", "ossv2-kms"], indirect=True)
def test_cse_writes_sdk_reads(side: Side, oss_emulator: Any, size: int) -> None:
    """An object put by cse (``oss-v2``) decrypts with the official SDK, whole and in a range that starts
    off a block boundary. (oss2 with KMS is the exception: see ``test_oss2_cannot_read_cse_kms_objects``.)"""
    data = os.urandom(size)
    side.cse.put((side.store, "obj"), data)
    metadata = oss_emulator.get_object_metadata(side.bucket, "obj")
    assert metadata[META + "unencrypted-content-length"] == str(size)
    _check_header_style(side, metadata)
    assert side.get("obj", None) == data
    if size >= 17:
        assert side.get("obj", (1, size - 2)) == data[1 : size - 1]
    if size > 1 * MiB:
        assert side.get("obj", (size // 3 + 5, size // 2)) == data[size // 3 + 5 : size // 2 + 1]


@pytest.mark.parametrize("size", [1, 17, 5 * MiB])
@pytest.mark.parametrize("side", ["oss2-kms"], indirect=True)
def test_oss2_cannot_read_cse_kms_objects(
    side: Side, oss_emulator: Any, aliyun_kms: Any, aliyun_kms_key: str, size: int
) -> None:
    """oss2's ``AliKMSProvider`` cannot read cse's ``KMS/ALICLOUD`` objects, as formats.md says.

    cse writes the Go/Java style (header = the CiphertextBlob verbatim), which Go, Java, C++ and
    alibabacloud-oss-v2 read. oss2 expects its own double base64: it base64-decodes the header and sends
    the resulting *binary* blob bytes to KMS ``Decrypt`` as the CiphertextBlob string, which fails (against
    this emulator with ``SignatureDoesNotMatch``, because the non-UTF-8 bytes do not survive the SDK's
    signing). No plaintext is returned. cse itself, and a Go-style reader, read the same object.
    """
    data = os.urandom(size)
    side.cse.put((side.store, "obj"), data)
    header = oss_emulator.get_object_metadata(side.bucket, "obj")[META + "key"]
    assert not _is_base64_text(base64.b64decode(header))  # Go style, not oss2's double base64
    with pytest.raises(oss2.exceptions.OpenApiServerError) as info:
        side.get("obj", None)
    assert info.value.status == 400
    # The same object reads with cse and with a Go/Java-style alibabacloud-oss-v2 reader.
    assert side.cse.get((side.store, "obj")) == data
    go = _ossv2_side(
        "ossv2-kms",
        oss_emulator,
        GoStyleKmsCipher(_kms_client(aliyun_kms), aliyun_kms_key),
        side.cse,
        side.store,
        side.bucket,
    )
    assert go.get("obj", None) == data


@pytest.mark.parametrize("size", [0, 17, 300 * 1024 + 5])
@pytest.mark.parametrize("side", ["oss2-kms"], indirect=True)
def test_oss2_reads_cse_kms_objects_in_oss2_style(
    side: Side, oss_emulator: Any, aliyun_kms_key: str, size: int
) -> None:
    """With ``style=oss2`` on the key URI, cse writes oss2's double base64, and oss2's AliKMSProvider reads
    the object, single-request and multipart; cse reads it too (it reads both styles)."""
    kms_uri = f"aliyun-kms://{OSS_REGION}/{aliyun_kms_key}?style=oss2"
    config = TransferConfig(multipart_threshold=256 * 1024, part_size=100 * 1024)
    with EncryptionClient(kms_uri, format="oss-v2", config=config) as cse:
        data = os.urandom(size)
        cse.put((side.store, "obj"), data)
        header = oss_emulator.get_object_metadata(side.bucket, "obj")[META + "key"]
        assert _is_base64_text(base64.b64decode(header))  # oss2's double base64
        assert side.get("obj", None) == data
        assert cse.get((side.store, "obj")) == data
        assert side.cse.get((side.store, "obj")) == data  # a default-style provider reads it as well


# ------------------------------------------------------------------------------------------------ multipart


def _random_ranges(size: int, rng: random.Random) -> list[str]:
    """Twenty cse range strings: closed ``a-b``, open-ended ``a-``, suffix ``-N`` and ranges that run past
    the end (clamped), some of them random."""
    closed = []
    for _ in range(8):
        a = rng.randrange(size)
        closed.append(f"{a}-{rng.randrange(a, size)}")
    return [
        *closed,
        f"{rng.randrange(size)}-",
        f"{rng.randrange(size)}-",
        f"{size - 1}-",
        "0-",
        f"-{rng.randrange(1, size)}",
        f"-{rng.randrange(1, 200)}",
        "-1",
        f"-{size + 1000}",
        f"{rng.randrange(size)}-{size + rng.randrange(1, 10**6)}",
        f"{size - 5}-{size + 5}",
        "0-0",
        f"{size - 16}-{size * 2}",
    ]


def _expected(data: bytes, text: str) -> bytes:
    first, _, last = text.partition("-")
    size = len(data)
    if not first:
        return data[max(0, size - int(last)) :]
    return data[int(first) : size if not last else min(int(last), size - 1) + 1]


@pytest.mark.parametrize("side", ["oss2-rsa", "oss2-kms"], indirect=True)
def test_oss2_resumable_multipart_read_by_cse_at_random_ranges(
    side: Side, oss_emulator: Any, aliyun_kms: Any, aliyun_kms_key: str, key_a: str, tmp_path: Path
) -> None:
    """A multipart object written by ``oss2.resumable_upload`` through a CryptoBucket (100 KiB parts, two
    threads) reads with cse whole and at 20 random ranges (closed, ``a-``, ``-N``, past the end), each equal
    to the same plaintext slice."""
    size = 1 * MiB + 7
    data = os.urandom(size)
    source = tmp_path / "src.bin"
    source.write_bytes(data)
    if side.name == "oss2-rsa":
        bucket = _oss2_rsa_bucket(oss_emulator, side.bucket, key_a)
    else:
        bucket = _oss2_kms_bucket(oss_emulator, aliyun_kms, side.bucket, aliyun_kms_key)
    oss2.resumable_upload(
        bucket,
        "mp",
        str(source),
        store=oss2.ResumableStore(root=str(tmp_path / "checkpoints")),
        multipart_threshold=100 * KiB,
        part_size=100 * KiB,
        num_threads=2,
    )
    metadata = oss_emulator.get_object_metadata(side.bucket, "mp")
    assert metadata[META + "data-size"] == str(size)
    assert metadata[META + "part-size"] == str(100 * KiB)
    assert oss_emulator.get_object_bytes(side.bucket, "mp") != data  # really encrypted
    ref = (side.store, "mp")
    assert side.cse.get(ref) == data
    ranges = _random_ranges(size, random.Random(size + len(side.name)))
    assert len(ranges) == 20
    for text in ranges:
        assert side.cse.get(ref, range=text) == _expected(data, text), text


@pytest.mark.parametrize("method", ["put", "upload_file"])
def test_cse_multipart_read_by_both_sdks(
    method: str, oss_emulator: Any, oss_bucket_name: str, key_a: str, tmp_path: Path
) -> None:
    """A multipart ``oss-v2`` object written by cse (100 KiB parts, ``put`` and ``upload_file``) reads with
    oss2's CryptoBucket and alibabacloud-oss-v2's EncryptionClient, whole and in ranges across parts."""
    size = 700 * KiB + 3
    data = os.urandom(size)
    store = OssStore(oss2_bucket(oss_emulator, oss_bucket_name))
    config = TransferConfig(multipart_threshold=256 * KiB, part_size=100 * KiB)
    with EncryptionClient(key_a, format="oss-v2", config=config) as client:
        if method == "put":
            result = client.put((store, "mp"), data)
        else:
            source = tmp_path / "src.bin"
            source.write_bytes(data)
            result = client.upload_file(source, (store, "mp"))
    assert result.parts == 8
    metadata = oss_emulator.get_object_metadata(oss_bucket_name, "mp")
    assert metadata[META + "data-size"] == str(size)
    assert metadata[META + "part-size"] == str(100 * KiB)
    pems = _pems(key_a)
    oss2_side = _oss2_side(
        "oss2-rsa", _oss2_rsa_bucket(oss_emulator, oss_bucket_name, key_a), client, store, oss_bucket_name
    )
    master = MasterRsaCipher(public_key=pems["public_key"], private_key=pems["private_key"])
    ossv2_side = _ossv2_side("ossv2-rsa", oss_emulator, master, client, store, oss_bucket_name)
    boundary = 100 * KiB
    for reader in (oss2_side, ossv2_side):
        assert reader.get("mp", None) == data, reader.name
        # A range across the boundary of parts 1 and 2 (unaligned start), and one in the short last part.
        assert reader.get("mp", (boundary - 9, boundary + 20)) == data[boundary - 9 : boundary + 21], (
            reader.name
        )
        assert reader.get("mp", (size - 40, size - 1)) == data[size - 40 :], reader.name


@pytest.mark.parametrize("side", ["ossv2-kms"], indirect=True)
def test_cse_kms_multipart_read_by_go_style_sdk(side: Side, oss_emulator: Any) -> None:
    """A multipart ``KMS/ALICLOUD`` object written by cse reads with a Go/Java-style KMS master cipher in
    alibabacloud-oss-v2, whole and in a range; every UploadPart carried the same crypto context."""
    size = 700 * KiB + 3
    data = os.urandom(size)
    config = TransferConfig(multipart_threshold=256 * KiB, part_size=100 * KiB)
    with EncryptionClient(side.cse.keys[0], format="oss-v2", config=config) as client:
        result = client.put((side.store, "mp"), data)
    assert result.parts == 8
    _check_header_style(side, oss_emulator.get_object_metadata(side.bucket, "mp"))
    assert side.get("mp", None) == data
    assert side.get("mp", (300 * KiB + 1, 500 * KiB)) == data[300 * KiB + 1 : 500 * KiB + 1]
