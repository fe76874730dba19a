"""S3 Encryption Client V2/V3 vectors with the raw-key wraps (RSA-OAEP-SHA1, AES/GCM), against cse.

The vectors in tests/vectors/s3ec/vectors.json were made by tests/s3ec_reference.py, an implementation of
the S3EC formats that shares no code with cse (see tests/vectors/s3ec/README.md). Here:

(a) the reference decrypts every vector, and re-encrypting with the vector's inputs gives the same bytes;
(b) cse's providers (``cse_rsa.RsaKeyProvider``, ``cse_rsa.AesKeyProvider``) unwrap every EDK, and cse's
    content codecs decrypt (and, from the same inputs, re-encrypt) every body;
(c) what cse's providers wrap unwraps with the reference, and decrypts a reference-made object;
(d) cse_s3's S3V2Format/S3V3Format decode each vector's metadata to an envelope that decrypts, and encode
    it back to exactly the vector's metadata (skipped while cse_s3 lacks those classes);
(e) the official Python S3EC's decrypt pipeline (``s3_encryption``, when installed), given a keyring that
    unwraps with the reference, decrypts every vector and re-serializes its metadata unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cse_rsa import AesKey, AesKeyProvider, RsaKey, RsaKeyProvider

from cse import ciphers
from cse.content import ContentMaterial, codec_for
from cse.envelope import ContentAlgorithm, Envelope, WrapAlgorithm, WrappedKey
from cse.exceptions import DecryptionError
from cse.providers import KeyProvider, KeyRequest
from tests import s3ec_reference as ref

HERE = Path(__file__).parent / "vectors" / "s3ec"
DOCUMENT: dict[str, Any] = json.loads((HERE / "vectors.json").read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DOCUMENT["vectors"]
AES_WRAPPING_KEY = bytes.fromhex(DOCUMENT["aes_wrapping_key"])


def _rsa_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((HERE / DOCUMENT["rsa_private_key_file"]).read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


RSA_PRIVATE_KEY = _rsa_key()
UNWRAP = ref.raw_key_unwrapper(rsa_private_key=RSA_PRIVATE_KEY, aes_key=AES_WRAPPING_KEY)


def vectors() -> list[Any]:
    """The vectors as pytest params named by the vector."""
    return [pytest.param(v, id=v["name"]) for v in VECTORS]


# -- reading a vector --------------------------------------------------------------------------------


def plaintext_of(v: dict[str, Any]) -> bytes:
    """The vector's plaintext, re-made from its seed and checked against what the vector stores."""
    plaintext = ref.seeded_bytes(v["plaintext_seed"], v["plaintext_length"])
    assert hashlib.sha256(plaintext).hexdigest() == v["plaintext_sha256"]
    if "plaintext" in v:
        assert plaintext.hex() == v["plaintext"]
    return plaintext


def _hex(v: dict[str, Any], name: str) -> bytes | None:
    return bytes.fromhex(v[name]) if v.get(name) is not None else None


@cache
def _body(name: str) -> bytes:
    v = next(x for x in VECTORS if x["name"] == name)
    if "body" in v:
        body = bytes.fromhex(v["body"])
    else:  # stored as a hash only: re-make it with the reference from the vector's inputs
        _, body = ref.encrypt_object(
            version=v["version"],
            data_key=bytes.fromhex(v["data_key"]),
            edk=bytes.fromhex(v["edk"]),
            wrap_algorithm=v["wrap_algorithm"],
            plaintext=plaintext_of(v),
            material_description=v["material_description"],
            iv=_hex(v, "iv"),
            message_id=_hex(v, "message_id"),
        )
    assert len(body) == v["body_length"]
    assert hashlib.sha256(body).hexdigest() == v["body_sha256"]
    return body


def body_of(v: dict[str, Any]) -> bytes:
    """The vector's body (re-made with the reference where only its SHA-256 is stored)."""
    return _body(v["name"])


def envelope_of(v: dict[str, Any]) -> Envelope:
    """The cse envelope the vector describes, built from its inputs (not from its metadata)."""
    v3 = v["version"] == 3
    return Envelope(
        format="s3-v3" if v3 else "s3-v2",
        content_algorithm=v["content_algorithm"],
        wrapped_keys=(
            WrappedKey(
                wrap_algorithm=v["wrap_algorithm"],
                ciphertext=bytes.fromhex(v["edk"]),
                material_description=v["material_description"],
            ),
        ),
        iv=_hex(v, "iv"),
        message_id=_hex(v, "message_id"),
        commitment=_hex(v, "commitment"),
        tag_length=None if v3 else 128,
    )


def provider_for(v: dict[str, Any]) -> KeyProvider:
    """The cse provider holding the vector's wrapping key, with the vector's material description."""
    md = v["material_description"]
    if v["wrap_algorithm"] == WrapAlgorithm.RSA_OAEP_SHA1:
        return RsaKeyProvider(RsaKey(RSA_PRIVATE_KEY, material_description=md))
    return AesKeyProvider(AesKey(AES_WRAPPING_KEY, material_description=md))


def request_for(v: dict[str, Any], **changes: Any) -> KeyRequest:
    """The KeyRequest a reader of the vector builds."""
    request = KeyRequest(
        wrap_algorithm=v["wrap_algorithm"],
        content_algorithm=v["content_algorithm"],
        material_description=dict(v["material_description"]),
    )
    return dataclasses.replace(request, **changes)


def run(transform: ciphers.StreamTransform, data: bytes, step: int = 4096) -> bytes:
    """Feed ``data`` in ``step``-byte chunks and finalize."""
    out = bytearray(transform.output_size(step))
    parts = []
    for i in range(0, len(data), step):
        n = transform.update_into(data[i : i + step], out)
        parts.append(bytes(out[:n]))
    parts.append(transform.finalize())
    return b"".join(parts)


# -- the vector file -----------------------------------------------------------------------------------


def test_the_vector_file_covers_the_matrix() -> None:
    names = [v["name"] for v in VECTORS]
    assert len(names) == len(set(names)) == 16
    combos = {(v["version"], v["wrap_algorithm"], v["plaintext_length"]) for v in VECTORS}
    assert combos == {
        (version, wrap, size)
        for version in (2, 3)
        for wrap in (ref.RSA_OAEP_SHA1, ref.AES_GCM)
        for size in (0, 1, 100, 70000)
    }
    assert (HERE / "vectors.json").stat().st_size < 300 * 1024
    assert RSA_PRIVATE_KEY.key_size == 2048
    assert len(AES_WRAPPING_KEY) == 32
    for v in VECTORS:
        assert ("body" in v) == (v["plaintext_length"] <= 100)


def test_reference_hkdf_matches_rfc5869_implementations() -> None:
    prk = hashlib.sha512(b"prk").digest()
    for info, length in ((b"\x00\x73DERIVEKEY", 32), (b"\x00\x73COMMITKEY", 28), (b"x", 200)):
        expected = HKDFExpand(algorithm=hashes.SHA512(), length=length, info=info).derive(prk)
        assert ref.hkdf_expand_sha512(prk, info, length) == expected


def test_reference_key_derivation_matches_the_official_client() -> None:
    kd = pytest.importorskip("s3_encryption.key_derivation")
    materials = pytest.importorskip("s3_encryption.materials.materials")
    suite = materials.AlgorithmSuite.ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    for v in VECTORS:
        if v["version"] == 3:
            data_key, message_id = bytes.fromhex(v["data_key"]), bytes.fromhex(v["message_id"])
            assert kd.derive_keys(data_key, message_id, suite) == ref.derive_v3(data_key, message_id)
            assert ref.derive_v3(data_key, message_id) == (
                bytes.fromhex(v["derived_key"]),
                bytes.fromhex(v["commitment"]),
            )


# -- (a) the reference ---------------------------------------------------------------------------------


@pytest.mark.parametrize("v", vectors())
def test_reference_decrypts_every_vector(v: dict[str, Any]) -> None:
    assert ref.decrypt_object(v["metadata"], body_of(v), UNWRAP) == plaintext_of(v)
    parsed = ref.parse_metadata(v["metadata"])
    assert parsed.version == v["version"]
    assert parsed.wrap_algorithm == v["wrap_algorithm"]
    assert parsed.edk.hex() == v["edk"]
    assert parsed.material_description == v["material_description"]


@pytest.mark.parametrize("v", vectors())
def test_reference_reproduces_every_vector(v: dict[str, Any]) -> None:
    """Encryption is deterministic given the EDK: the same inputs give the same metadata and body."""
    metadata, body = ref.encrypt_object(
        version=v["version"],
        data_key=bytes.fromhex(v["data_key"]),
        edk=bytes.fromhex(v["edk"]),
        wrap_algorithm=v["wrap_algorithm"],
        plaintext=plaintext_of(v),
        material_description=v["material_description"],
        iv=_hex(v, "iv"),
        message_id=_hex(v, "message_id"),
    )
    assert metadata == v["metadata"]
    assert body == body_of(v)
    if v["wrap_algorithm"] == ref.AES_GCM:  # the AES/GCM wrap is deterministic given its IV
        wrap_iv = bytes.fromhex(v["wrap_iv"])
        edk = ref.aes_gcm_wrap(
            AES_WRAPPING_KEY, bytes.fromhex(v["data_key"]), v["content_algorithm"], wrap_iv
        )
        assert edk.hex() == v["edk"]


@pytest.mark.parametrize("v", vectors())
def test_reference_rejects_tampering(v: dict[str, Any]) -> None:
    body = body_of(v)
    damaged = bytearray(body)
    damaged[len(damaged) // 2] ^= 1
    with pytest.raises(ref.Invalid):
        ref.decrypt_object(v["metadata"], bytes(damaged), UNWRAP)
    with pytest.raises(ref.Invalid):  # the wrap binds the content algorithm
        UNWRAP(
            v["wrap_algorithm"],
            bytes.fromhex(v["edk"]),
            "AES/GCM/NoPadding" if v["version"] == 3 else "115",
            {},
        )
    if v["version"] == 3:
        other = dict(v["metadata"], **{"x-amz-d": ref.b64(bytes(28))})
        with pytest.raises(ref.Invalid):
            ref.decrypt_object(other, body, UNWRAP)


# -- (b) cse unwraps and decrypts ----------------------------------------------------------------------


@pytest.mark.parametrize("v", vectors())
def test_cse_provider_unwraps_every_edk(v: dict[str, Any]) -> None:
    provider = provider_for(v)
    edk = bytes.fromhex(v["edk"])
    assert provider.unwrap(edk, request_for(v)) == bytes.fromhex(v["data_key"])
    assert provider.can_unwrap(envelope_of(v).wrapped_keys[0])
    other = ContentAlgorithm.AES_GCM if v["version"] == 3 else ContentAlgorithm.AES_GCM_COMMITTING
    with pytest.raises(DecryptionError):
        provider.unwrap(edk, request_for(v, content_algorithm=other))


@pytest.mark.parametrize("v", vectors())
def test_cse_codec_decrypts_and_reproduces_every_body(v: dict[str, Any]) -> None:
    codec = codec_for(v["content_algorithm"])
    envelope = envelope_of(v)
    material = ContentMaterial(key=bytes.fromhex(v["data_key"]), iv=_hex(v, "iv"))
    body, plaintext = body_of(v), plaintext_of(v)
    assert codec.key_matches(material, envelope)
    assert codec.plaintext_length(envelope, len(body)) == len(plaintext)
    assert run(codec.decryptor(material, envelope, len(body)), body) == plaintext
    assert run(codec.decryptor(material, envelope, len(body)), body, step=1000) == plaintext
    assert codec.ciphertext_length(envelope, len(plaintext)) == len(body)
    assert run(codec.encryptor(material, envelope), plaintext) == body
    if v["version"] == 3:
        assert envelope.commitment is not None and envelope.message_id is not None
        assert ciphers.derive_committing_keys(material.key, envelope.message_id) == (
            bytes.fromhex(v["derived_key"]),
            envelope.commitment,
        )


@pytest.mark.parametrize("v", vectors())
def test_cse_end_to_end_from_the_edk(v: dict[str, Any]) -> None:
    """Unwrap with the provider, then decrypt with the codec; only the EDK and body come from the vector."""
    envelope = envelope_of(v)
    data_key = provider_for(v).unwrap(envelope.wrapped_keys[0].ciphertext, request_for(v))
    codec = codec_for(envelope.content_algorithm)
    body = body_of(v)
    assert run(codec.decryptor(ContentMaterial(key=data_key, iv=envelope.iv), envelope, len(body)), body) == (
        plaintext_of(v)
    )


# -- (c) cse wraps, the reference unwraps --------------------------------------------------------------


@pytest.mark.parametrize("v", vectors())
def test_cse_wrap_unwraps_with_the_reference(v: dict[str, Any]) -> None:
    provider = provider_for(v)
    data_key = bytes.fromhex(v["data_key"])
    content = v["content_algorithm"]
    wrapped = provider.wrap(data_key, request_for(v))
    assert UNWRAP(v["wrap_algorithm"], wrapped, content, v["material_description"]) == data_key
    fresh = provider.generate_data_key(request_for(v))
    assert UNWRAP(v["wrap_algorithm"], fresh.ciphertext, content, {}) == fresh.plaintext

    # a whole object: cse's wrapped key in the reference's object, and cse's body for the reference
    metadata, body = ref.encrypt_object(
        version=v["version"],
        data_key=data_key,
        edk=wrapped,
        wrap_algorithm=v["wrap_algorithm"],
        plaintext=plaintext_of(v),
        material_description=v["material_description"],
        iv=_hex(v, "iv"),
        message_id=_hex(v, "message_id"),
    )
    assert ref.decrypt_object(metadata, body, UNWRAP) == plaintext_of(v)
    envelope = envelope_of(v)
    cse_body = run(codec_for(content).encryptor(ContentMaterial(key=data_key, iv=envelope.iv), envelope), b"")
    if v["version"] == 3:
        assert envelope.commitment is not None and envelope.message_id is not None
        assert ref.decrypt_v3_body(data_key, envelope.message_id, envelope.commitment, cse_body) == b""
    else:
        assert envelope.iv is not None
        assert ref.decrypt_v2_body(data_key, envelope.iv, cse_body) == b""


# -- (d) cse_s3's formats ------------------------------------------------------------------------------


def _s3_formats() -> tuple[Any, Any]:
    try:
        from cse_s3 import formats
    except ImportError as exc:
        pytest.skip(f"cse_s3.formats is not importable ({exc}); the S3 metadata formats are not written yet")
    v2, v3 = getattr(formats, "S3V2Format", None), getattr(formats, "S3V3Format", None)
    if v2 is None or v3 is None:
        pytest.skip(
            "cse_s3.formats lacks S3V2Format or S3V3Format; the S3 metadata formats are not written yet"
        )
    return v2, v3


@pytest.mark.parametrize("v", vectors())
def test_cse_s3_format_decodes_and_encodes_every_vector(v: dict[str, Any]) -> None:
    v2_format, v3_format = _s3_formats()
    fmt = v3_format() if v["version"] == 3 else v2_format()
    assert fmt.detect(v["metadata"])
    envelope = fmt.decode(v["metadata"])
    assert envelope.content_algorithm == v["content_algorithm"]
    assert len(envelope.wrapped_keys) == 1
    wrapped = envelope.wrapped_keys[0]
    assert wrapped.wrap_algorithm == v["wrap_algorithm"]
    assert wrapped.ciphertext.hex() == v["edk"]
    assert wrapped.material_description == v["material_description"]
    assert envelope.iv == _hex(v, "iv")
    assert envelope.message_id == _hex(v, "message_id")
    assert envelope.commitment == _hex(v, "commitment")

    provider = provider_for(v)
    assert provider.can_unwrap(wrapped)
    request = KeyRequest(
        wrap_algorithm=wrapped.wrap_algorithm,
        content_algorithm=envelope.content_algorithm,
        encryption_context=dict(envelope.encryption_context),
        material_description=dict(wrapped.material_description),
        key_id=wrapped.key_id,
    )
    data_key = provider.unwrap(wrapped.ciphertext, request)
    body = body_of(v)
    codec = codec_for(envelope.content_algorithm)
    material = ContentMaterial(key=data_key, iv=envelope.iv)
    assert run(codec.decryptor(material, envelope, len(body)), body) == plaintext_of(v)

    # byte for byte, JSON spacing included (the official Python client's json.dumps defaults)
    assert fmt.encode(envelope) == v["metadata"]


# -- (e) the official Python client --------------------------------------------------------------------


def _official_keyring(content: str, material_description: dict[str, str]) -> Any:
    keyring = pytest.importorskip("s3_encryption.materials.keyring")

    base: Any = keyring.AbstractKeyring

    class ReferenceKeyring(base):  # type: ignore[misc]
        """Unwraps the raw-key EDKs with the reference (the Python client has no RSA or AES keyring)."""

        def on_encrypt(self, enc_materials: Any) -> Any:
            raise NotImplementedError

        def on_decrypt(self, dec_materials: Any, encrypted_data_keys: Any = None) -> Any:
            (edk,) = encrypted_data_keys
            assert dec_materials.encryption_context_stored == material_description
            dec_materials.plaintext_data_key = UNWRAP(
                edk.key_provider_info, edk.encrypted_data_key, content, material_description
            )
            return dec_materials

    return ReferenceKeyring()


def _get_response(body: bytes, metadata: dict[str, str]) -> dict[str, Any]:
    """A GetObject response as boto3 returns it, for the official client's decrypt pipeline."""
    from botocore.response import StreamingBody  # type: ignore[import-untyped]

    return {
        "Body": StreamingBody(io.BytesIO(body), len(body)),
        "ContentLength": len(body),
        "Metadata": metadata,
    }


@pytest.mark.parametrize("v", vectors())
def test_the_official_python_client_decrypts_every_vector(v: dict[str, Any]) -> None:
    pipelines = pytest.importorskip("s3_encryption.pipelines")
    cmm = pytest.importorskip("s3_encryption.materials.crypto_materials_manager")
    materials = pytest.importorskip("s3_encryption.materials.materials")
    metadata_module = pytest.importorskip("s3_encryption.metadata")

    body = body_of(v)
    pipeline = pipelines.GetEncryptedObjectPipeline(
        cmm=cmm.DefaultCryptoMaterialsManager(
            keyring=_official_keyring(v["content_algorithm"], v["material_description"])
        ),
        commitment_policy=materials.CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT,
    )
    response = _get_response(body, dict(v["metadata"]))
    out = pipeline.decrypt(response, ".instruction", enable_delayed_authentication=False)
    assert out.read() == plaintext_of(v)

    # the official client re-serializes the vector's metadata byte for byte
    parsed = metadata_module.ObjectMetadata.from_dict(dict(v["metadata"]))
    assert parsed.is_v3_format() if v["version"] == 3 else parsed.is_v2_format()
    assert parsed.to_dict() == v["metadata"]


def test_official_client_rejects_a_wrong_commitment() -> None:
    pipelines = pytest.importorskip("s3_encryption.pipelines")
    cmm = pytest.importorskip("s3_encryption.materials.crypto_materials_manager")
    materials = pytest.importorskip("s3_encryption.materials.materials")

    v = next(x for x in VECTORS if x["version"] == 3 and x["plaintext_length"] == 100)
    body = body_of(v)
    metadata = dict(v["metadata"], **{"x-amz-d": ref.b64(bytes(28))})
    pipeline = pipelines.GetEncryptedObjectPipeline(
        cmm=cmm.DefaultCryptoMaterialsManager(
            keyring=_official_keyring(v["content_algorithm"], v["material_description"])
        ),
        commitment_policy=materials.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
    )
    response = _get_response(body, metadata)
    with pytest.raises(Exception, match="[Cc]ommitment"):
        pipeline.decrypt(response, ".instruction", enable_delayed_authentication=False)
    assert not hmac.compare_digest(bytes(28), bytes.fromhex(v["commitment"]))
