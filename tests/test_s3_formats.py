"""The S3 Encryption Client formats (cse_s3): conformance, detection, the encryption-context rules, the
official Python client's view of what they write, and the legacy CBC codec."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cse_s3 import CbcCodec, S3V1Format, S3V2Format, S3V3Format

from cse.client import EncryptionClient, detect_format
from cse.config import CommitmentPolicy
from cse.content import ContentMaterial, codec_for
from cse.envelope import ContentAlgorithm, Envelope, WrapAlgorithm, WrappedKey
from cse.exceptions import ConfigurationError, DecryptionError, MetadataError
from cse.formats.native import NativeFormat
from cse.providers import KeyRequest
from cse.stores.memory import MemoryStore
from cse.testing.formats import FormatConformance

V1, V2, V3 = S3V1Format(), S3V2Format(), S3V3Format()
ALLOW = CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT

MESSAGE_ID = bytes(range(28))
COMMITMENT = bytes(range(100, 128))


def wrapped(wrap: str = WrapAlgorithm.RSA_OAEP_SHA1, **kw: Any) -> WrappedKey:
    """A wrapped key as an S3 format decodes it (no key id or provider: S3 records neither)."""
    return WrappedKey(wrap_algorithm=wrap, ciphertext=kw.pop("ciphertext", b"\x07" * 256), **kw)


def v3(wrap: str = WrapAlgorithm.RSA_OAEP_SHA1, **kw: Any) -> Envelope:
    """An s3-v3 envelope."""
    fields: dict[str, Any] = {
        "format": "s3-v3",
        "content_algorithm": ContentAlgorithm.AES_GCM_COMMITTING,
        "wrapped_keys": (kw.pop("key", None) or wrapped(wrap),),
        "message_id": MESSAGE_ID,
        "commitment": COMMITMENT,
    }
    fields.update(kw)
    return Envelope(**fields)


def v2(wrap: str = WrapAlgorithm.RSA_OAEP_SHA1, **kw: Any) -> Envelope:
    """An s3-v2 envelope."""
    fields: dict[str, Any] = {
        "format": "s3-v2",
        "content_algorithm": ContentAlgorithm.AES_GCM,
        "wrapped_keys": (kw.pop("key", None) or wrapped(wrap),),
        "iv": bytes(range(12)),
        "tag_length": 128,
    }
    fields.update(kw)
    return Envelope(**fields)


def v1(wrap: str = WrapAlgorithm.KMS, **kw: Any) -> Envelope:
    """An s3-v1 envelope."""
    fields: dict[str, Any] = {
        "format": "s3-v1",
        "content_algorithm": ContentAlgorithm.AES_CBC,
        "wrapped_keys": (kw.pop("key", None) or wrapped(wrap, ciphertext=b"\x09" * 184),),
        "iv": bytes(range(16)),
    }
    fields.update(kw)
    return Envelope(**fields)


KMS_CONTEXT = {"bucket": "photos", "aws:x-amz-cek-alg": "115"}
V3_SAMPLES = {
    "kms": v3(WrapAlgorithm.KMS_CONTEXT, encryption_context=KMS_CONTEXT),
    "kms-only-reserved": v3(WrapAlgorithm.KMS_CONTEXT, encryption_context={"aws:x-amz-cek-alg": "115"}),
    "rsa": v3(),
    "rsa-matdesc": v3(key=wrapped(material_description={"generation": "2025", "purpose": "backup"})),
    "aes-gcm-length": v3(WrapAlgorithm.AES_GCM, plaintext_length=12345),
    "instruction-file": v3(instruction_file=True, plaintext_length=0),
}
V2_SAMPLES = {
    "kms": v2(
        WrapAlgorithm.KMS_CONTEXT,
        encryption_context={"bucket": "photos", "aws:x-amz-cek-alg": "AES/GCM/NoPadding"},
    ),
    "rsa": v2(),
    "aes-gcm-matdesc": v2(
        WrapAlgorithm.AES_GCM, key=wrapped(WrapAlgorithm.AES_GCM, material_description={"a": "b"})
    ),
    "legacy-kms": v2(WrapAlgorithm.KMS, encryption_context={"kms_cmk_id": "arn:aws:kms:us-east-1:1:key/x"}),
    "length-and-instruction": v2(plaintext_length=7, instruction_file=True),
}
V1_SAMPLES = {
    "kms": v1(encryption_context={"kms_cmk_id": "alias/legacy"}, plaintext_length=100),
    "rsa-oaep-sha1": v1(WrapAlgorithm.RSA_OAEP_SHA1, plaintext_length=0),
}
ALL_ENCODED = [
    *(V3.encode(e) for e in V3_SAMPLES.values()),
    *(V2.encode(e) for e in V2_SAMPLES.values()),
    *(V1.encode(e) for e in V1_SAMPLES.values()),
]


_UNRELATED: list[dict[str, str]] = [
    {},
    {"content-type": "text/plain"},
    {"owner": "alice", "project": "x", "x-amz-meta-note": "hello"},
]


def _others(own: S3V1Format | S3V2Format | S3V3Format) -> list[dict[str, str]]:
    native = NativeFormat().encode(
        Envelope(
            format="cse-v1",
            content_algorithm=ContentAlgorithm.CSE_V1,
            wrapped_keys=(wrapped(WrapAlgorithm.RSA_OAEP_SHA256, key_id="k", provider="rsa"),),
            salt=bytes(32),
            nonce_prefix=bytes(7),
            commitment=bytes(32),
            segment_size=1024,
        )
    )
    return [native, *(m for m in ALL_ENCODED if not own.detect(m))]


class TestS3V3Conformance(FormatConformance):
    """s3-v3 against the shared format suite."""

    optional_keys = frozenset({"x-amz-unencrypted-content-length", "x-amz-crypto-instr-file", "x-amz-m"})
    lenient_keys = frozenset({"x-amz-crypto-instr-file"})

    @pytest.fixture
    def fmt(self) -> S3V3Format:
        return S3V3Format()

    @pytest.fixture(params=sorted(V3_SAMPLES))
    def envelope(self, request: pytest.FixtureRequest) -> Envelope:
        return V3_SAMPLES[request.param]

    @pytest.fixture
    def unrelated_metadata(self) -> list[dict[str, str]]:
        return _UNRELATED + _others(V3)


class TestS3V2Conformance(FormatConformance):
    """s3-v2 against the shared format suite."""

    optional_keys = frozenset(
        {"x-amz-unencrypted-content-length", "x-amz-crypto-instr-file", "x-amz-matdesc"}
    )
    lenient_keys = frozenset({"x-amz-crypto-instr-file"})

    @pytest.fixture
    def fmt(self) -> S3V2Format:
        return S3V2Format()

    @pytest.fixture(params=sorted(V2_SAMPLES))
    def envelope(self, request: pytest.FixtureRequest) -> Envelope:
        return V2_SAMPLES[request.param]

    @pytest.fixture
    def unrelated_metadata(self) -> list[dict[str, str]]:
        return _UNRELATED + _others(V2)


class TestS3V1Conformance(FormatConformance):
    """s3-v1 (read only) against the shared format suite: its encoder exists to describe objects."""

    optional_keys = frozenset(
        {"x-amz-unencrypted-content-length", "x-amz-crypto-instr-file", "x-amz-matdesc", "x-amz-wrap-alg"}
    )
    lenient_keys = frozenset({"x-amz-crypto-instr-file"})

    @pytest.fixture
    def fmt(self) -> S3V1Format:
        return S3V1Format()

    @pytest.fixture(params=sorted(V1_SAMPLES))
    def envelope(self, request: pytest.FixtureRequest) -> Envelope:
        return V1_SAMPLES[request.param]

    @pytest.fixture
    def unrelated_metadata(self) -> list[dict[str, str]]:
        return _UNRELATED + _others(V1)


# ---------------------------------------------------------------------------------------- what is written


def test_v3_metadata_is_what_the_official_client_writes() -> None:
    """Keys, wrap codes and JSON spacing as the Python S3EC writes them; no tag length in V3."""
    md = V3.encode(v3(WrapAlgorithm.KMS_CONTEXT, encryption_context={"bucket": "photos"}, plaintext_length=5))
    assert md == {
        "x-amz-c": "115",
        "x-amz-3": base64.b64encode(b"\x07" * 256).decode(),
        "x-amz-w": "12",
        "x-amz-i": base64.b64encode(MESSAGE_ID).decode(),
        "x-amz-d": base64.b64encode(COMMITMENT).decode(),
        "x-amz-t": '{"bucket": "photos", "aws:x-amz-cek-alg": "115"}',
        "x-amz-unencrypted-content-length": "5",
    }
    assert V3.encode(v3())["x-amz-w"] == "22"
    assert "x-amz-m" not in V3.encode(v3())  # as Java: only a non-empty material description is written
    assert V3.encode(v3(WrapAlgorithm.AES_GCM))["x-amz-w"] == "02"
    matdesc = V3.encode(v3(key=wrapped(material_description={"k": "v"})))
    assert matdesc["x-amz-m"] == '{"k": "v"}'
    assert "x-amz-t" not in matdesc


def test_v2_metadata_is_what_the_official_client_writes() -> None:
    """V2 always writes x-amz-tag-len 128 (Java requires it) and x-amz-matdesc ({} when empty)."""
    md = V2.encode(v2(WrapAlgorithm.KMS_CONTEXT, encryption_context={"b": "c"}))
    assert md["x-amz-cek-alg"] == "AES/GCM/NoPadding"
    assert md["x-amz-wrap-alg"] == "kms+context"
    assert md["x-amz-tag-len"] == "128"
    assert md["x-amz-matdesc"] == '{"b": "c", "aws:x-amz-cek-alg": "AES/GCM/NoPadding"}'
    assert md["x-amz-iv"] == base64.b64encode(bytes(range(12))).decode()
    assert V2.encode(v2())["x-amz-matdesc"] == "{}"
    assert V2.encode(v2())["x-amz-wrap-alg"] == "RSA-OAEP-SHA1"


def test_the_official_client_recognises_what_cse_writes() -> None:
    """The official Python client's metadata model reads cse's V2 and V3 metadata as its own."""
    metadata = pytest.importorskip("s3_encryption.metadata")
    for envelope in V3_SAMPLES.values():
        parsed = metadata.ObjectMetadata.from_dict(V3.encode(envelope))
        assert parsed.is_v3_format()
        assert not parsed.has_exclusive_key_collision()
    for name, envelope in V2_SAMPLES.items():
        encoded = V2.encode(envelope)
        parsed = metadata.ObjectMetadata.from_dict(encoded)
        assert parsed.is_v2_format(), name
        # what the official writer serializes from the same fields is byte-identical
        official = {k: v for k, v in parsed.to_dict().items()}
        assert {k: official[k] for k in encoded if k in official} == {k: encoded[k] for k in official}
    legacy = metadata.ObjectMetadata.from_dict(V1.encode(V1_SAMPLES["kms"]))
    assert legacy.is_v1_format()


def test_cse_reads_what_the_official_client_writes() -> None:
    """Metadata built by the official client's ObjectMetadata decodes, kms+context context included."""
    metadata = pytest.importorskip("s3_encryption.metadata")
    edk = base64.b64encode(b"kms-blob").decode()
    v3_md = metadata.ObjectMetadata(
        content_cipher_v3="115",
        encrypted_data_key_algorithm_v3="12",
        encrypted_data_key_v3=edk,
        message_id_v3=base64.b64encode(MESSAGE_ID).decode(),
        key_commitment_v3=base64.b64encode(COMMITMENT).decode(),
        encryption_context_v3={"team": "a", "aws:x-amz-cek-alg": "115"},
    ).to_dict()
    envelope = V3.decode(v3_md)
    assert envelope.encryption_context == {"team": "a", "aws:x-amz-cek-alg": "115"}
    assert envelope.wrapped_keys[0].wrap_algorithm == "kms+context"
    assert V3.encode(envelope) == v3_md
    v2_md = metadata.ObjectMetadata(
        encrypted_data_key_v2=edk,
        encrypted_data_key_algorithm="kms+context",
        content_iv=base64.b64encode(bytes(12)).decode(),
        content_cipher="AES/GCM/NoPadding",
        encrypted_data_key_context={"aws:x-amz-cek-alg": "AES/GCM/NoPadding"},
    ).to_dict()
    envelope = V2.decode(v2_md)
    assert envelope.encryption_context == {"aws:x-amz-cek-alg": "AES/GCM/NoPadding"}
    assert V2.encode(envelope) == v2_md


def test_java_style_compact_json_and_absent_optional_maps_decode() -> None:
    """Readers parse JSON (Java writes it compact); an absent material description means {}."""
    md = V3.encode(v3(WrapAlgorithm.KMS_CONTEXT, encryption_context={"a": "b"}))
    md["x-amz-t"] = '{"a":"b","aws:x-amz-cek-alg":"115"}'
    assert V3.decode(md).encryption_context == {"a": "b", "aws:x-amz-cek-alg": "115"}
    del md["x-amz-t"]  # always written for kms+context (the reserved key at least): required there
    with pytest.raises(MetadataError, match="x-amz-t"):
        V3.decode(md)
    md = V3.encode(v3())
    assert "x-amz-m" not in md
    assert V3.decode(md).wrapped_keys[0].material_description == {}
    md = V2.encode(v2())
    del md["x-amz-matdesc"]
    assert V2.decode(md).wrapped_keys[0].material_description == {}


# ----------------------------------------------------------------------------------------------- detection

EDK = base64.b64encode(b"\x01" * 40).decode()
IV12 = base64.b64encode(bytes(12)).decode()
IV16 = base64.b64encode(bytes(16)).decode()
V3_MD = V3.encode(v3())
V2_MD = V2.encode(v2())
V1_MD = V1.encode(v1(encryption_context={"kms_cmk_id": "k"}))


@pytest.mark.parametrize(
    ("metadata", "formats"),
    [
        (V3_MD, {"s3-v3"}),
        (V2_MD, {"s3-v2"}),
        (V1_MD, {"s3-v1"}),
        # the Java V1 client's CBC objects under x-amz-key-v2 are legacy CBC, read by s3-v1
        ({**V2_MD, "x-amz-cek-alg": "AES/CBC/PKCS5Padding"}, {"s3-v1"}),
        # V3 content keys without x-amz-3 (a missing instruction file) still say V3
        ({k: v for k, v in V3_MD.items() if k in ("x-amz-c", "x-amz-d", "x-amz-i")}, {"s3-v3"}),
        # more than one of x-amz-key, x-amz-key-v2, x-amz-3: every format whose key is there claims it
        ({**V3_MD, "x-amz-key-v2": EDK}, {"s3-v3", "s3-v2"}),
        ({**V3_MD, "x-amz-key": EDK}, {"s3-v3", "s3-v1"}),
        ({**V2_MD, "x-amz-key": EDK}, {"s3-v2", "s3-v1"}),
        ({**V3_MD, "x-amz-key": EDK, "x-amz-key-v2": EDK}, {"s3-v3", "s3-v2", "s3-v1"}),
        ({"x-amz-iv": IV12, "x-amz-cek-alg": "AES/GCM/NoPadding"}, set()),
        ({"content-type": "text/plain", "x-amz-meta-x-amz-3": EDK}, set()),
    ],
)
def test_detection(metadata: dict[str, str], formats: set[str]) -> None:
    """Which formats claim which metadata."""
    assert {f.name for f in (V1, V2, V3) if f.detect(metadata)} == formats


@pytest.mark.parametrize(
    "metadata",
    [
        {**V3_MD, "x-amz-key-v2": EDK},
        {**V3_MD, "x-amz-key": EDK},
        {**V2_MD, "x-amz-key": EDK},
        {**V1_MD, "x-amz-3": EDK},
    ],
)
def test_more_than_one_wrapped_key_field_is_refused(metadata: dict[str, str]) -> None:
    """Each format that detects mixed metadata refuses it; the client refuses to guess."""
    claimed = [f for f in (V1, V2, V3) if f.detect(metadata)]
    assert len(claimed) >= 2
    for fmt in claimed:
        with pytest.raises(MetadataError, match="refusing"):
            fmt.decode(metadata)
    with pytest.raises(MetadataError, match="several formats"):
        detect_format(metadata, "s3://b/k", allow_legacy=True)


def test_v2_keys_beside_v3_content_keys_are_refused() -> None:
    """A V3 object whose instruction file was swapped for V2 key material (a downgrade) is refused."""
    mixed = {**V2_MD, **{k: V3_MD[k] for k in ("x-amz-c", "x-amz-d", "x-amz-i")}}
    with pytest.raises(MetadataError, match="refusing"):
        V2.decode(mixed)
    with pytest.raises(MetadataError, match="instruction file"):
        V3.decode(mixed)


def test_v3_without_wrapped_key_names_the_instruction_file() -> None:
    """c, d, i without x-amz-3: the key is in an instruction file the store did not find."""
    md = {k: V3_MD[k] for k in ("x-amz-c", "x-amz-d", "x-amz-i")}
    with pytest.raises(MetadataError, match=r"x-amz-3.*instruction file"):
        V3.decode(md)


@pytest.mark.parametrize(
    ("fmt", "metadata", "field"),
    [
        (V3, {**V3_MD, "x-amz-c": "AES/GCM/NoPadding"}, "x-amz-c"),
        (V3, {**V3_MD, "x-amz-w": "32"}, "x-amz-w"),
        (V3, {**V3_MD, "x-amz-i": base64.b64encode(bytes(12)).decode()}, "x-amz-i"),
        (V3, {**V3_MD, "x-amz-d": base64.b64encode(bytes(32)).decode()}, "x-amz-d"),
        (V3, {**V3_MD, "x-amz-3": "not base64!"}, "x-amz-3"),
        (V3, {**V3_MD, "x-amz-m": '{"a": 1}'}, "x-amz-m"),
        (V3, {**V3_MD, "x-amz-m": '{"a": "1", "a": "2"}'}, "x-amz-m"),
        (
            V3,
            {**V3.encode(V3_SAMPLES["kms"]), "x-amz-t": '{"aws:x-amz-cek-alg": "AES/GCM/NoPadding"}'},
            "x-amz-t",
        ),
        (V3, {**V3_MD, "x-amz-unencrypted-content-length": "-1"}, "x-amz-unencrypted-content-length"),
        (V2, {k: v for k, v in V2_MD.items() if k != "x-amz-tag-len"}, "x-amz-tag-len"),
        (V2, {**V2_MD, "x-amz-tag-len": "96"}, "x-amz-tag-len"),
        (V2, {**V2_MD, "x-amz-iv": IV16}, "x-amz-iv"),
        (V2, {**V2_MD, "x-amz-wrap-alg": "RSA/NONE/PKCS1Padding"}, "x-amz-wrap-alg"),
        (V2, {k: v for k, v in V2_MD.items() if k != "x-amz-cek-alg"}, "x-amz-cek-alg"),
        (V2, {**V2_MD, "x-amz-cek-alg": "AES/CTR/NoPadding"}, "x-amz-cek-alg"),
        (V1, {**V1_MD, "x-amz-iv": IV12}, "x-amz-iv"),
        (V1, {**V1_MD, "x-amz-cek-alg": "AES/GCM/NoPadding"}, "x-amz-cek-alg"),
        (V1, {**V1_MD, "x-amz-tag-len": "128"}, "x-amz-tag-len"),
    ],
)
def test_bad_fields_are_named(fmt: Any, metadata: dict[str, str], field: str) -> None:
    """Malformed metadata raises MetadataError naming the field."""
    with pytest.raises(MetadataError, match=field):
        fmt.decode(metadata)


def test_v1_wrap_algorithm_is_inferred_as_java_does() -> None:
    """Without x-amz-wrap-alg the key's own JCE default wrapped it: RSA for EDKs over 48 bytes, else AES."""
    md = {"x-amz-key": base64.b64encode(b"\x02" * 48).decode(), "x-amz-iv": IV16, "x-amz-matdesc": "{}"}
    assert V1.decode(md).wrapped_keys[0].wrap_algorithm == "AES"
    md["x-amz-key"] = base64.b64encode(b"\x02" * 256).decode()
    assert V1.decode(md).wrapped_keys[0].wrap_algorithm == "RSA"
    assert V1.decode(md).content_algorithm == ContentAlgorithm.AES_CBC


# -------------------------------------------------------------------------------------- encryption context


@pytest.mark.parametrize("fmt", [V3, V2])
def test_non_ascii_context_is_refused(fmt: Any) -> None:
    """S3 metadata is ASCII; the official client refuses a non-ASCII encryption context too."""
    make = v3 if fmt is V3 else v2
    with pytest.raises(ConfigurationError, match="US-ASCII"):
        fmt.encode(make(WrapAlgorithm.KMS_CONTEXT, encryption_context={"città": "x"}))
    with pytest.raises(ConfigurationError, match="US-ASCII"):
        fmt.encode(make(key=wrapped(material_description={"k": "é"})))


@pytest.mark.parametrize("fmt", [V3, V2])
def test_reserved_context_key(fmt: Any) -> None:
    """aws:x-amz-cek-alg is the format's: another value is refused, the right one is kept as is."""
    make = v3 if fmt is V3 else v2
    with pytest.raises(ConfigurationError, match="reserved"):
        fmt.encode(make(WrapAlgorithm.KMS_CONTEXT, encryption_context={"aws:x-amz-cek-alg": "other"}))
    plain = fmt.encode(make(WrapAlgorithm.KMS_CONTEXT, encryption_context={"a": "b"}))
    decoded = fmt.decode(plain)
    assert decoded.encryption_context == {"a": "b", "aws:x-amz-cek-alg": fmt.content_algorithm}
    assert fmt.encode(decoded) == plain


@pytest.mark.parametrize("fmt", [V3, V2])
def test_raw_key_wraps_refuse_a_context(fmt: Any) -> None:
    """RSA-OAEP-SHA1 and AES/GCM authenticate no context: a user context is refused, not stored."""
    make = v3 if fmt is V3 else v2
    with pytest.raises(ConfigurationError, match="kms\\+context"):
        fmt.encode(make(encryption_context={"a": "b"}))
    # a context of only the matching reserved key (left over from a KMS object being re-wrapped) is dropped
    md = fmt.encode(make(encryption_context={"aws:x-amz-cek-alg": fmt.content_algorithm}))
    assert fmt.decode(md).encryption_context == {}


def test_encode_refuses_what_the_format_cannot_say() -> None:
    """Wrong content algorithm, several keys, a wrapped IV, or a wrap V3 has no code for."""
    with pytest.raises(ConfigurationError):
        V3.encode(v2())
    with pytest.raises(ConfigurationError):
        V2.encode(v3())
    with pytest.raises(ConfigurationError, match="exactly one"):
        V3.encode(v3(wrapped_keys=(wrapped(), wrapped())))
    with pytest.raises(ConfigurationError, match="wrapped IV"):
        V2.encode(v2(key=wrapped(wrapped_iv=b"iv")))
    with pytest.raises(ConfigurationError, match="cannot describe"):
        V3.encode(v3(WrapAlgorithm.KMS))


def test_format_flags() -> None:
    """Commitment: V3 commits, V2 and V1 do not; the policy governs all three; V1 is legacy, read only."""
    assert (V3.key_committing, V2.key_committing, V1.key_committing) == (True, False, False)
    assert V3.commitment_policy_applies and V2.commitment_policy_applies and V1.commitment_policy_applies
    assert V1.legacy and not V1.writable
    assert V3.writable and V2.writable and not V3.legacy


# ----------------------------------------------------------------------------------------------- CBC (V1)


def _cbc(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(padder.update(plaintext) + padder.finalize()) + enc.finalize()


def _run(transform: Any, body: bytes, step: int = 7) -> bytes:
    out = bytearray()
    for i in range(0, len(body), step):
        buf = bytearray(transform.output_size(step))
        n = transform.update_into(body[i : i + step], buf)
        out += buf[:n]
    return bytes(out + transform.finalize())


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 100, 1000])
def test_cbc_codec_decrypts_whole_bodies_and_ranges(length: int) -> None:
    """Whole bodies unpad; any range decrypts from at most one block earlier."""
    key, iv = os.urandom(32), os.urandom(16)
    plaintext = os.urandom(length)
    body = _cbc(key, iv, plaintext)
    codec = codec_for(ContentAlgorithm.AES_CBC)
    assert isinstance(codec, CbcCodec)
    envelope = v1(plaintext_length=length)
    assert codec.plaintext_length(envelope, len(body)) == length
    material = ContentMaterial(key=key, iv=iv)
    assert _run(codec.decryptor(material, envelope, len(body)), body) == plaintext
    for start, end in [(0, 0), (3, 40), (16, 31), (17, 17), (33, 999), (length - 1, length - 1)]:
        if not 0 <= start <= end < length:
            continue
        plan = codec.plan_range(envelope, len(body), start, end)
        assert not plan.authenticated
        got = _run(
            codec.range_decryptor(material, envelope, len(body), plan), body[plan.ct_start : plan.ct_end + 1]
        )
        assert got[plan.skip : plan.skip + plan.length] == plaintext[start : end + 1]


def test_cbc_failures_are_opaque() -> None:
    """Bad padding, a wrong length or a body that is not whole blocks: one DecryptionError."""
    key, iv = os.urandom(32), os.urandom(16)
    body = _cbc(key, iv, b"x" * 20)
    codec = codec_for(ContentAlgorithm.AES_CBC)
    material = ContentMaterial(key=key, iv=iv)
    bad = bytearray(body)
    bad[-1] ^= 0x55
    for envelope, data in [(v1(plaintext_length=20), bytes(bad)), (v1(plaintext_length=21), body)]:
        with pytest.raises(DecryptionError) as caught:
            _run(codec.decryptor(material, envelope, len(data)), data)
        assert type(caught.value) is DecryptionError
    with pytest.raises(DecryptionError):
        _run(codec.decryptor(material, v1(plaintext_length=20), 31), body[:-1])
    with pytest.raises(DecryptionError):
        codec.plaintext_length(v1(plaintext_length=40), len(body))
    with pytest.raises(MetadataError, match="x-amz-unencrypted-content-length"):
        codec.plaintext_length(v1(), len(body))
    with pytest.raises(ConfigurationError, match="read-only"):
        codec.new_parameters(key)


def _v1_object(store: MemoryStore, key_uri: str, plaintext: bytes, **overrides: str) -> None:
    """Write an s3-v1 CBC object as a legacy writer would (wrapped with the rsa key's RSA-OAEP-SHA1)."""
    provider = EncryptionClient(key_uri).keys[0]
    cek, iv = os.urandom(32), os.urandom(16)
    request = KeyRequest(
        wrap_algorithm=WrapAlgorithm.RSA_OAEP_SHA1, content_algorithm=ContentAlgorithm.AES_CBC
    )
    envelope = v1(
        WrapAlgorithm.RSA_OAEP_SHA1,
        key=wrapped(ciphertext=provider.wrap(cek, request)),
        iv=iv,
        plaintext_length=len(plaintext),
    )
    store.put("legacy.bin", _cbc(cek, iv, plaintext), {**V1.encode(envelope), **overrides})


def test_v1_objects_read_only_with_allow_legacy(key_a: str) -> None:
    """A V1 CBC object reads (whole and ranged) with allow_legacy and a policy that allows V1."""
    store = MemoryStore()
    plaintext = os.urandom(5000)
    _v1_object(store, key_a, plaintext)
    with pytest.raises(ConfigurationError, match="legacy"):
        EncryptionClient(key_a, commitment_policy=ALLOW).get((store, "legacy.bin"))
    with pytest.raises(ConfigurationError, match="commitment"):
        EncryptionClient(key_a, allow_legacy=True).get((store, "legacy.bin"))
    client = EncryptionClient(key_a, allow_legacy=True, commitment_policy=ALLOW)
    assert client.get((store, "legacy.bin")) == plaintext
    assert client.head((store, "legacy.bin")).size == 5000
    assert client.get((store, "legacy.bin"), range="bytes=1000-1999") == plaintext[1000:2000]
    assert client.get((store, "legacy.bin"), range="bytes=-7") == plaintext[-7:]
    with client.open((store, "legacy.bin")) as reader:
        reader.seek(4095)
        assert reader.read(10) == plaintext[4095:4105]


def test_v1_lies_and_tampering_fail(key_a: str) -> None:
    """A wrong recorded length or a damaged last block fails; a missing length says what is missing."""
    client = EncryptionClient(key_a, allow_legacy=True, commitment_policy=ALLOW)
    store = MemoryStore()
    plaintext = b"legacy data " * 10
    _v1_object(store, key_a, plaintext, **{"x-amz-unencrypted-content-length": "100"})
    with pytest.raises(DecryptionError):
        client.get((store, "legacy.bin"))
    _v1_object(store, key_a, plaintext)
    md = dict(store.head("legacy.bin").metadata)
    del md["x-amz-unencrypted-content-length"]
    store.copy("legacy.bin", "legacy.bin", md)
    with pytest.raises(MetadataError, match="x-amz-unencrypted-content-length"):
        client.get((store, "legacy.bin"))


def test_json_maps_round_trip_through_official_spacing() -> None:
    """The stored JSON is json.dumps with default separators, in the context's order."""
    md = V2.encode(v2(WrapAlgorithm.KMS_CONTEXT, encryption_context={"z": "1", "a": "2"}))
    assert md["x-amz-matdesc"] == json.dumps({"z": "1", "a": "2", "aws:x-amz-cek-alg": "AES/GCM/NoPadding"})
