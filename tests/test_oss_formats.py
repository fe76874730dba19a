"""Tests of the OSS metadata formats (``oss-v2``, ``oss-v1``), against oss2 and alibabacloud-oss-v2.

The official SDKs are used offline: their own code builds the headers and ciphertexts (and decrypts cse's),
no server is involved.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import random
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cse_oss import OssV1Format, OssV2Format
from cse_oss.formats import MIN_KMS_BLOB, kms_blob_text, legacy_counter_to_iv
from cse_rsa import RsaKey, RsaKeyProvider

from cse.client import EncryptionClient, detect_format
from cse.config import TransferConfig
from cse.envelope import ContentAlgorithm, Envelope, WrapAlgorithm, WrappedKey
from cse.exceptions import ConfigurationError, MetadataError
from cse.formats.base import Format
from cse.stores.base import PartInfo
from cse.stores.memory import MemoryStore
from cse.testing.formats import FormatConformance

__all__: list[str] = []

oss2 = pytest.importorskip("oss2")
oss2_crypto = pytest.importorskip("oss2.crypto")
oss2_models = pytest.importorskip("oss2.models")
ossv2_rsa = pytest.importorskip("alibabacloud_oss_v2.crypto.master_rsa_cipher")
ossv2_ctr = pytest.importorskip("alibabacloud_oss_v2.crypto.aes_ctr_cipher")
ossv2_client = pytest.importorskip("alibabacloud_oss_v2.encryption_client")
ossv2_models = pytest.importorskip("alibabacloud_oss_v2.models")

PREFIX = "x-oss-meta-"
MATDESC = {"owner": "alice", "generation": "2025"}
KiB = 1024
MiB = 1024 * KiB


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key for the module."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def pems(private_key: rsa.RSAPrivateKey) -> dict[str, str]:
    """The key pair as PEM text (PKCS#1 private, SubjectPublicKeyInfo public), as the SDKs take it."""
    private = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return {"private_key": private, "public_key": public}


@pytest.fixture(scope="module")
def provider(private_key: rsa.RSAPrivateKey) -> RsaKeyProvider:
    """cse's RSA provider on the same key, with the material description the SDK objects carry."""
    return RsaKeyProvider(RsaKey(private_key, material_description=MATDESC))


def _user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """HTTP headers -> user metadata as stores return it (lower case, no ``x-oss-meta-``)."""
    out = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(PREFIX):
            out[lower[len(PREFIX) :]] = value
    return out


def _http_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    return {PREFIX + k: v for k, v in metadata.items()}


class RecordingStore(MemoryStore):
    """A memory store that records the per-part headers of every ``upload_part``."""

    def __init__(self) -> None:
        """A fresh private store with an empty log."""
        super().__init__()
        self.part_headers: list[tuple[int, dict[str, str]]] = []
        self.initiate_metadata: list[dict[str, str]] = []

    def create_multipart(self, key: str, metadata: Mapping[str, str]) -> str:
        """Record the Initiate metadata, then start the upload."""
        self.initiate_metadata.append(dict(metadata))
        return super().create_multipart(key, metadata)

    def upload_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        data: bytes | bytearray | memoryview,
        headers: Mapping[str, str] | None = None,
    ) -> PartInfo:
        """Record the part's headers, then store it."""
        self.part_headers.append((part_number, dict(headers or {})))
        return super().upload_part(key, upload_id, part_number, data, headers)


def _rsa_envelope(**overrides: Any) -> Envelope:
    fields: dict[str, Any] = {
        "format": "oss-v2",
        "content_algorithm": ContentAlgorithm.AES_CTR,
        "wrapped_keys": (
            WrappedKey(
                wrap_algorithm=WrapAlgorithm.RSA_PKCS1,
                ciphertext=os.urandom(256),
                wrapped_iv=os.urandom(256),
                material_description=MATDESC,
            ),
        ),
    }
    fields.update(overrides)
    return Envelope(**fields)


def _blob_text(n: int = 96) -> bytes:
    """A made-up KMS CiphertextBlob string: base64 of binary bytes that are surely not base64 text."""
    raw = b"\x00\xff" + os.urandom(n - 2)
    return base64.b64encode(raw)


# ------------------------------------------------------------------------------------------ conformance


_ENVELOPES = {
    "rsa-plain": lambda: _rsa_envelope(),
    "rsa-full": lambda: _rsa_envelope(
        plaintext_length=12345,
        plaintext_md5=base64.b64encode(hashlib.md5(b"x").digest()).decode(),
        data_size=5 * MiB,
        part_size=100 * KiB,
    ),
    "rsa-no-matdesc": lambda: _rsa_envelope(
        wrapped_keys=(
            WrappedKey(wrap_algorithm=WrapAlgorithm.RSA_PKCS1, ciphertext=b"k" * 256, wrapped_iv=b"i" * 256),
        ),
        plaintext_length=0,
    ),
    "rsa-oaep-legacy": lambda: _rsa_envelope(
        wrapped_keys=(
            WrappedKey(
                wrap_algorithm=WrapAlgorithm.RSA_OAEP_SHA1_OSS,
                ciphertext=b"k" * 256,
                wrapped_iv=b"i" * 256,
                material_description={"é": "ü"},
            ),
        )
    ),
    "kms": lambda: _rsa_envelope(
        wrapped_keys=(
            WrappedKey(
                wrap_algorithm=WrapAlgorithm.ALIYUN_KMS,
                ciphertext=_blob_text(),
                wrapped_iv=_blob_text(80),
                material_description={"kms": "yes"},
            ),
        ),
        part_size=1 * MiB,
    ),
}


class TestOssV2Conformance(FormatConformance):
    """The shared format suite on ``oss-v2``."""

    optional_keys = frozenset(
        {
            "client-side-encryption-matdesc",
            "client-side-encryption-unencrypted-content-length",
            "client-side-encryption-unencrypted-content-md5",
            "client-side-encryption-data-size",
            "client-side-encryption-part-size",
        }
    )

    @pytest.fixture
    def fmt(self) -> Format:
        """The format under test."""
        return OssV2Format()

    @pytest.fixture(params=sorted(_ENVELOPES))
    def envelope(self, request: pytest.FixtureRequest) -> Envelope:
        """Several envelopes: RSA with and without optional fields, legacy OAEP, KMS."""
        return _ENVELOPES[request.param]()

    @pytest.fixture
    def unrelated_metadata(self) -> list[dict[str, str]]:
        """The base set plus an S3 V2 encoding."""
        from cse_s3.formats import S3V2Format

        s3 = S3V2Format().encode(
            Envelope(
                format="s3-v2",
                content_algorithm=ContentAlgorithm.AES_GCM,
                iv=bytes(12),
                wrapped_keys=(WrappedKey(wrap_algorithm=WrapAlgorithm.RSA_OAEP_SHA1, ciphertext=b"x"),),
            )
        )
        return [
            {},
            {"content-type": "text/plain"},
            {"owner": "alice", "project": "x", "x-amz-meta-note": "hello"},
            {"cse": "1", "version": "1", "key": "value"},
            s3,
        ]


def test_class_attributes() -> None:
    """The flags the client relies on."""
    v2, v1 = OssV2Format(), OssV1Format()
    assert (v2.name, v2.content_algorithm) == ("oss-v2", "AES/CTR/NoPadding")
    assert v2.wraps_iv and v2.writable and not v2.legacy
    assert not v2.key_committing and not v2.commitment_policy_applies
    assert v2.wrap_algorithms == ("RSA/NONE/PKCS1Padding", "KMS/ALICLOUD")
    assert v1.name == "oss-v1" and v1.legacy and not v1.writable and not v1.key_committing


def test_entry_points_registered() -> None:
    """Both formats are found through ``cse.formats``."""
    from cse import registry

    assert {"oss-v1", "oss-v2"} <= set(registry.available_formats())


# ---------------------------------------------------------------------------------------- encode details


def test_encode_layout() -> None:
    """Exact header values: base64 key/IV, compact sorted matdesc, decimals, md5 kept verbatim."""
    key, iv = os.urandom(256), os.urandom(256)
    md5 = base64.b64encode(hashlib.md5(b"hello").digest()).decode()
    envelope = _rsa_envelope(
        wrapped_keys=(
            WrappedKey(
                wrap_algorithm=WrapAlgorithm.RSA_PKCS1,
                ciphertext=key,
                wrapped_iv=iv,
                material_description={"b": "2", "a": "1"},
            ),
        ),
        plaintext_length=5,
        plaintext_md5=md5,
    )
    assert OssV2Format().encode(envelope) == {
        "client-side-encryption-key": base64.b64encode(key).decode(),
        "client-side-encryption-start": base64.b64encode(iv).decode(),
        "client-side-encryption-cek-alg": "AES/CTR/NoPadding",
        "client-side-encryption-wrap-alg": "RSA/NONE/PKCS1Padding",
        "client-side-encryption-matdesc": '{"a":"1","b":"2"}',
        "client-side-encryption-unencrypted-content-length": "5",
        "client-side-encryption-unencrypted-content-md5": md5,
    }


def test_part_headers() -> None:
    """Every UploadPart carries the crypto context with data-size and part-size, as the official SDKs send it;
    the whole object's length and MD5 stay on Initiate."""
    fmt = OssV2Format()
    assert fmt.part_headers(_rsa_envelope()) == {}
    envelope = _rsa_envelope(data_size=10, part_size=102400)
    headers = fmt.part_headers(envelope)
    full = fmt.encode(envelope)
    assert headers["client-side-encryption-data-size"] == "10"
    assert headers["client-side-encryption-part-size"] == "102400"
    for name in ("key", "start", "cek-alg", "wrap-alg", "matdesc"):
        assert headers[f"client-side-encryption-{name}"] == full[f"client-side-encryption-{name}"]
    assert "client-side-encryption-unencrypted-content-length" not in headers
    assert "client-side-encryption-unencrypted-content-md5" not in headers
    assert fmt.part_headers(_rsa_envelope(part_size=16))["client-side-encryption-part-size"] == "16"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"content_algorithm": ContentAlgorithm.AES_GCM, "iv": bytes(12)}, "AES/CTR"),
        ({"iv": bytes(16)}, "wraps the IV"),
        ({"encryption_context": {"a": "b"}}, "encryption context"),
        (
            {"wrapped_keys": (WrappedKey(wrap_algorithm=WrapAlgorithm.RSA_PKCS1, ciphertext=b"k"),)},
            "wrapped IV",
        ),
        (
            {"wrapped_keys": (WrappedKey(wrap_algorithm="kms+context", ciphertext=b"k", wrapped_iv=b"i"),)},
            "cannot describe",
        ),
        (
            {
                "wrapped_keys": (
                    WrappedKey(
                        wrap_algorithm=WrapAlgorithm.ALIYUN_KMS, ciphertext=b"\x00\x01", wrapped_iv=b"i"
                    ),
                )
            },
            "base64 text",
        ),
        (
            {
                "wrapped_keys": (
                    WrappedKey(wrap_algorithm="RSA/NONE/PKCS1Padding", ciphertext=b"k", wrapped_iv=b"i"),
                )
                * 2
            },
            "exactly one",
        ),
    ],
)
def test_encode_refuses(overrides: dict[str, Any], match: str) -> None:
    """What the format cannot record is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match=match):
        OssV2Format().encode(_rsa_envelope(**overrides))


# ---------------------------------------------------------------------------------------- decode details


def _good() -> dict[str, str]:
    return OssV2Format().encode(_rsa_envelope(plaintext_length=3, data_size=32, part_size=16))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client-side-encryption-cek-alg", "AES/GCM/NoPadding"),
        ("client-side-encryption-wrap-alg", "rsa"),
        ("client-side-encryption-key", "not base64!"),
        ("client-side-encryption-start", ""),
        ("client-side-encryption-matdesc", "[1]"),
        ("client-side-encryption-matdesc", '{"a": 1}'),
        ("client-side-encryption-matdesc", '{"a": "1", "a": "2"}'),
        ("client-side-encryption-unencrypted-content-length", "-1"),
        ("client-side-encryption-unencrypted-content-md5", base64.b64encode(b"short").decode()),
        ("client-side-encryption-data-size", "1e3"),
        ("client-side-encryption-part-size", "0"),
    ],
)
def test_decode_names_the_bad_field(field: str, value: str) -> None:
    """Every malformed value is a MetadataError naming its header."""
    with pytest.raises(MetadataError, match=field):
        OssV2Format().decode({**_good(), field: value})


@pytest.mark.parametrize(
    "field",
    [
        "client-side-encryption-key",
        "client-side-encryption-start",
        "client-side-encryption-cek-alg",
        "client-side-encryption-wrap-alg",
    ],
)
def test_partial_metadata_is_detected_and_refused(field: str) -> None:
    """Any one of the four core fields makes the object oss-v2; a missing one is named."""
    damaged = {k: v for k, v in _good().items() if k != field}
    assert OssV2Format().detect(damaged)
    with pytest.raises(MetadataError, match=field):
        OssV2Format().decode(damaged)


def test_matdesc_any_json_formatting() -> None:
    """oss2 and the Python oss-v2 SDK write json.dumps with spaces; it parses the same."""
    decoded = OssV2Format().decode({**_good(), "client-side-encryption-matdesc": '{"b": "2", "a": "1"}'})
    assert decoded.wrapped_keys[0].material_description == {"a": "1", "b": "2"}


def test_v1_beside_v2_is_refused() -> None:
    """Both generations at once: each format refuses, and detection finds two formats."""
    mixed = {**_good(), "oss-crypto-key": base64.b64encode(b"x" * 32).decode()}
    with pytest.raises(MetadataError, match="refusing"):
        OssV2Format().decode(mixed)
    with pytest.raises(MetadataError, match="several formats"):
        detect_format(mixed)


# ------------------------------------------------------------------------------------------- KMS styles


def test_kms_go_style_header_is_taken_verbatim() -> None:
    """Go/Java/oss-v2: the header is the CiphertextBlob text; b64decode gives the binary blob."""
    blob = _blob_text()
    assert kms_blob_text(blob.decode()) == blob


def test_kms_oss2_style_header_is_decoded_once() -> None:
    """oss2: the header is base64(CiphertextBlob text); cse keeps the text."""
    blob = _blob_text()
    header = base64.b64encode(blob).decode()
    assert kms_blob_text(header) == blob


def test_kms_style_threshold() -> None:
    """A header whose decoding is base64 text of a too short blob is taken as Go style."""
    short = base64.b64encode(os.urandom(MIN_KMS_BLOB - 1))
    header = base64.b64encode(short).decode()
    assert kms_blob_text(header) == header.encode()
    with pytest.raises(MetadataError, match="client-side-encryption-start"):
        kms_blob_text("%%%", "client-side-encryption-start")


def test_kms_both_styles_decode_to_the_same_envelope() -> None:
    """The decoded wrapped key and IV are the blob texts in both styles, and encode writes Go style."""
    key_blob, iv_blob = _blob_text(), _blob_text(80)
    common = {
        "client-side-encryption-cek-alg": "AES/CTR/NoPadding",
        "client-side-encryption-wrap-alg": "KMS/ALICLOUD",
    }
    go = {
        **common,
        "client-side-encryption-key": key_blob.decode(),
        "client-side-encryption-start": iv_blob.decode(),
    }
    oss2_style = {
        **common,
        "client-side-encryption-key": base64.b64encode(key_blob).decode(),
        "client-side-encryption-start": base64.b64encode(iv_blob).decode(),
    }
    fmt = OssV2Format()
    a, b = fmt.decode(go), fmt.decode(oss2_style)
    assert a == b
    assert a.wrapped_keys[0].ciphertext == key_blob
    assert a.wrapped_keys[0].wrapped_iv == iv_blob
    assert fmt.encode(b) == go


# ------------------------------------------------------------------------------------------------- V1


def _v1_metadata(wrap: str = "rsa") -> dict[str, str]:
    return {
        "oss-crypto-key": base64.b64encode(os.urandom(256)).decode(),
        "oss-crypto-start": base64.b64encode(os.urandom(256)).decode(),
        "oss-cek-alg": "AES/GCM/NoPadding",
        "oss-wrap-alg": wrap,
    }


@pytest.mark.parametrize("wrap", ["rsa", "kms"])
def test_v1_is_detected_and_decoded_behind_the_legacy_opt_in(wrap: str) -> None:
    """V1 is detected (legacy), decodes to a CTR envelope whose wrapped IV unwraps to a decimal counter, and
    is never written."""
    metadata = _v1_metadata(wrap)
    fmt = OssV1Format()
    assert fmt.detect(metadata) and not OssV2Format().detect(metadata)
    envelope = fmt.decode(metadata)
    assert envelope.content_algorithm == ContentAlgorithm.AES_CTR
    assert fmt.wrapped_iv_is_text
    assert fmt.content_iv(b"7") == (7).to_bytes(16, "big")
    with pytest.raises(ConfigurationError, match="allow_legacy"):
        detect_format(metadata)
    assert detect_format(metadata, allow_legacy=True).name == "oss-v1"
    with pytest.raises(ConfigurationError, match="read only"):
        fmt.encode(_rsa_envelope())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("oss-cek-alg", "AES/CBC/PKCS5Padding"),
        ("oss-wrap-alg", "RSA/NONE/PKCS1Padding"),
        ("oss-crypto-key", "%%%"),
        ("oss-crypto-start", ""),
        ("oss-crypto-matdesc", "{"),
    ],
)
def test_v1_bad_fields_are_named(field: str, value: str) -> None:
    """V1 validation names the bad header."""
    with pytest.raises(MetadataError, match=field):
        OssV1Format().decode({**_v1_metadata(), field: value})


def test_legacy_counter_to_iv() -> None:
    """oss2's initial_by_counter(int(text)) is CTR with the IV int(text) as 128-bit big endian."""
    assert legacy_counter_to_iv(b"1") == bytes(15) + b"\x01"
    assert legacy_counter_to_iv(str(2**128 - 1).encode()) == b"\xff" * 16
    for bad in (b"", b"-1", b"12a", str(2**128).encode()):
        with pytest.raises(MetadataError):
            legacy_counter_to_iv(bad)
    # Same keystream as oss2's legacy path
    key, counter = os.urandom(32), random.getrandbits(100)
    data = os.urandom(100)
    legacy = oss2.utils.AESCTRCipher()
    legacy.initial_by_counter(key, counter)
    modern = oss2.utils.AESCTRCipher()
    modern.initialize(key, legacy_counter_to_iv(str(counter).encode()))
    assert legacy.encrypt(data) == modern.encrypt(data)


# ------------------------------------------------------------------------------------- oss2 -> cse golden


def _oss2_object(pems: dict[str, str], plaintext: bytes) -> tuple[dict[str, str], bytes]:
    """Headers and body exactly as oss2's CryptoBucket.put_object builds them (no network)."""
    provider = oss2_crypto.RsaProvider(key_pair=pems, mat_desc=MATDESC)
    material = provider.create_content_material()
    headers = material.to_object_meta({"content-length": str(len(plaintext))})
    body = material.cipher.encrypt(plaintext) if plaintext else b""
    return dict(headers), body


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000, 100 * KiB + 3])
def test_oss2_object_decodes_and_decrypts(pems: dict[str, str], provider: RsaKeyProvider, size: int) -> None:
    """cse reads what oss2 writes: headers decode, key and IV unwrap separately, the body decrypts."""
    plaintext = os.urandom(size)
    headers, body = _oss2_object(pems, plaintext)
    assert headers["x-oss-meta-client-side-encryption-wrap-alg"] == "RSA/NONE/PKCS1Padding"
    metadata = _user_metadata(headers)
    assert detect_format(metadata).name == "oss-v2"
    envelope = OssV2Format().decode(metadata)
    assert envelope.plaintext_length == size
    assert envelope.wrapped_keys[0].material_description == MATDESC
    client = EncryptionClient(provider)
    material = client.unwrap(envelope)
    assert material.iv is not None and len(material.iv) == 16 and material.iv[8:12] == bytes(4)
    store = MemoryStore()
    store.put("obj", body, metadata)
    assert client.get((store, "obj")) == plaintext
    if size > 20:
        assert client.get((store, "obj"), range="bytes=5-20") == plaintext[5:21]


def test_ossv2_sdk_object_decodes_and_decrypts(pems: dict[str, str], provider: RsaKeyProvider) -> None:
    """cse reads what alibabacloud-oss-v2's EncryptionClient writes (header builder + CTR cipher)."""
    master = ossv2_rsa.MasterRsaCipher(
        mat_desc=MATDESC, public_key=pems["public_key"], private_key=pems["private_key"]
    )
    cipher = ossv2_ctr.AESCtrCipherBuilder(master).content_cipher()
    plaintext = os.urandom(5000)
    request = ossv2_models.PutObjectRequest(bucket="bucket", key="obj", content_length=len(plaintext))
    ossv2_client._add_crypto_header_putobject(request, cipher.get_cipher_data())
    body = cipher.encrypt_content(plaintext)
    metadata = _user_metadata(request.headers)
    assert metadata["client-side-encryption-matdesc"] == json.dumps(MATDESC)  # spaces: not compact
    store = MemoryStore()
    store.put("obj", body, metadata)
    client = EncryptionClient(provider)
    assert client.get((store, "obj")) == plaintext
    assert client.get((store, "obj"), range="bytes=4000-") == plaintext[4000:]


# ------------------------------------------------------------------------------------- cse -> oss2 golden


def _oss2_decrypt(pems: dict[str, str], metadata: Mapping[str, str], body: bytes) -> bytes:
    """Decrypt a cse object with oss2's own crypto code, as CryptoBucket.get_object does."""
    oss_provider = oss2_crypto.RsaProvider(key_pair=pems, mat_desc=MATDESC)
    material = oss2_models.ContentCryptoMaterial(oss_provider.cipher, oss_provider.wrap_alg)
    material.from_object_meta(_http_headers(metadata))
    assert material.mat_desc == oss_provider.mat_desc  # oss2 compares parsed dicts
    key = oss_provider.decrypt_encrypted_key(material.encrypted_key)
    iv = oss_provider.decrypt_encrypted_iv(material.encrypted_iv)
    cipher = copy.copy(material.cipher)
    cipher.initialize(key, iv, 0)
    return bytes(cipher.decrypt(body)) if body else b""


def _ossv2_decrypt(pems: dict[str, str], metadata: Mapping[str, str], body: bytes, offset: int = 0) -> bytes:
    """Decrypt a cse object (from ``offset``, block aligned) with alibabacloud-oss-v2's code."""
    master = ossv2_rsa.MasterRsaCipher(public_key=pems["public_key"], private_key=pems["private_key"])
    env = ossv2_client._get_envelope_from_header(_http_headers(metadata))
    assert env.is_valid()
    cipher = ossv2_ctr.AESCtrCipherBuilder(master).content_cipher_from_env(env, offset=offset)
    return bytes(cipher.decrypt_content(body[offset:])) if body[offset:] else b""


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 4097])
def test_oss2_and_ossv2_read_what_cse_writes(
    pems: dict[str, str], provider: RsaKeyProvider, size: int
) -> None:
    """cse's oss-v2 objects decrypt with oss2's and alibabacloud-oss-v2's own crypto code."""
    store = MemoryStore()
    client = EncryptionClient(provider, format="oss-v2")
    plaintext = os.urandom(size)
    client.put((store, "obj"), plaintext)
    info = store.head("obj")
    body = _store_body(store, "obj")
    metadata = info.metadata
    assert metadata["client-side-encryption-matdesc"] == '{"generation":"2025","owner":"alice"}'
    assert metadata["client-side-encryption-unencrypted-content-length"] == str(size)
    assert _oss2_decrypt(pems, metadata, body) == plaintext
    assert _ossv2_decrypt(pems, metadata, body) == plaintext
    if size > 32:
        assert _ossv2_decrypt(pems, metadata, body, offset=32) == plaintext[32:]


# ---------------------------------------------------------------------------------- client round trips


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 5 * MiB])
def test_round_trip_single(provider: RsaKeyProvider, size: int) -> None:
    """Single-request puts of every edge size read back, whole and in random ranges."""
    store = MemoryStore()
    client = EncryptionClient(provider, format="oss-v2")
    plaintext = os.urandom(size)
    result = client.put((store, "obj"), plaintext)
    assert result.envelope.format == "oss-v2"
    assert client.get((store, "obj")) == plaintext
    rng = random.Random(size)
    for _ in range(5 if size else 0):
        a = rng.randrange(size)
        b = rng.randrange(a, size)
        assert client.get((store, "obj"), range=f"bytes={a}-{b}") == plaintext[a : b + 1]


def _store_body(store: MemoryStore, key: str) -> bytes:
    return bytes(store._objects[key].data)


@pytest.mark.parametrize("size", [300 * KiB + 5, 1 * MiB])
def test_round_trip_multipart(pems: dict[str, str], provider: RsaKeyProvider, size: int) -> None:
    """Multipart uploads: fmt.part_headers reaches every upload_part; oss2 and cse read the object."""
    store = RecordingStore()
    config = TransferConfig(multipart_threshold=64 * KiB, part_size=100 * KiB)
    client = EncryptionClient(provider, format="oss-v2", config=config)
    plaintext = os.urandom(size)
    result = client.put((store, "obj"), plaintext)
    assert len(store.part_headers) == -(-size // (100 * KiB))
    expected = OssV2Format().part_headers(result.envelope)
    for _, headers in store.part_headers:
        assert headers == expected
    assert client.get((store, "obj")) == plaintext
    rng = random.Random(size)
    for _ in range(10):
        a = rng.randrange(size)
        b = rng.randrange(a, size)
        assert client.get((store, "obj"), range=f"{a}-{b}") == plaintext[a : b + 1]
    body = _store_body(store, "obj")
    assert _oss2_decrypt(pems, store.head("obj").metadata, body) == plaintext


def test_rewrap_keeps_ctr_body(private_key: rsa.RSAPrivateKey, provider: RsaKeyProvider) -> None:
    """rewrap re-wraps the key and the IV; the object still reads."""
    other = RsaKeyProvider(RsaKey(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    store = MemoryStore()
    plaintext = os.urandom(1000)
    EncryptionClient(provider, format="oss-v2").put((store, "obj"), plaintext)
    EncryptionClient(provider).rewrap((store, "obj"), to_keys=[other])
    assert "client-side-encryption-matdesc" not in store.head("obj").metadata
    assert EncryptionClient(other).get((store, "obj")) == plaintext


def test_multipart_records_data_size_and_part_size(provider: RsaKeyProvider) -> None:
    """What the OSS SDKs do: Initiate and every UploadPart carry data-size and part-size."""
    store = RecordingStore()
    config = TransferConfig(multipart_threshold=64 * KiB, part_size=100 * KiB)
    client = EncryptionClient(provider, format="oss-v2", config=config)
    size = 300 * KiB + 5
    client.put((store, "obj"), os.urandom(size))
    wanted = {
        "client-side-encryption-data-size": str(size),
        "client-side-encryption-part-size": str(100 * KiB),
    }
    assert wanted.items() <= store.initiate_metadata[0].items()
    context = {k: v for k, v in store.initiate_metadata[0].items() if "unencrypted" not in k}
    assert all(headers == context for _, headers in store.part_headers)
    assert wanted.items() <= context.items()
