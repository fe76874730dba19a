"""An independent reference implementation of the AWS S3 Encryption Client's V2 and V3 object formats.

Written from /work/shared/reference/formats.md ("AWS S3 Encryption Client") and from the source of the
official Python client (``amazon-s3-encryption-client-python`` 4.0.0: ``key_derivation.py``,
``metadata.py``, ``pipelines.py``) and the Java client (``AesKeyring``, ``RsaKeyring``,
``ContentMetadataEncodingStrategy``) for the two raw-key wraps that only Java implements. It shares no code
with :mod:`cse`: HKDF-Expand is built by hand from :mod:`hmac` (RFC 5869), content is sealed with the
one-shot ``AESGCM`` of pyca/cryptography, and everything is held in memory.

What it covers:

* V2 content: AES-256-GCM with the data key, a 12-byte IV, no AAD, body = ciphertext || 16-byte tag.
* V3 content (suite 0x0073, ``"115"``): PRK = HMAC-SHA512(key=message id, msg=data key);
  DEK = HKDF-Expand(PRK, 0x0073 || "DERIVEKEY", 32); commitment = HKDF-Expand(PRK, 0x0073 || "COMMITKEY",
  28); AES-256-GCM(DEK) with IV = 12 x 0x01 and AAD = 0x0073.
* Wraps: ``RSA-OAEP-SHA1`` (OAEP SHA-1/MGF1-SHA1 over ``len(key) || key || UTF-8(content algorithm)``) and
  ``AES/GCM`` (``IV(12) || AES-GCM(wrapping key, key, AAD=UTF-8(content algorithm)) || tag``), where the
  content algorithm is ``"AES/GCM/NoPadding"`` for V2 and ``"115"`` for V3.
* Metadata as the Python client serializes it: standard base64 with padding; JSON maps with
  :func:`json.dumps` defaults (``", "`` and ``": "`` separators, ASCII escapes, insertion order);
  ``x-amz-tag-len: "128"`` for V2 only; V2 always writes ``x-amz-matdesc`` (``"{}"`` when empty), V3 writes
  ``x-amz-m`` only for a non-empty material description (as Java's writer does; Python writes ``x-amz-t``
  only for a non-empty context). V3 wrap algorithms are the two-digit codes ``02``/``12``/``22``.

Used by ``tests/vectors/s3ec/generate.py`` to make the vectors, and by ``tests/test_s3ec_vectors.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

V2_CONTENT = "AES/GCM/NoPadding"
V3_CONTENT = "115"
SUITE_ID_V3 = b"\x00\x73"
V3_IV = b"\x01" * 12
MESSAGE_ID_LENGTH = 28
COMMITMENT_LENGTH = 28
IV_LENGTH = 12
TAG_LENGTH = 16

RSA_OAEP_SHA1 = "RSA-OAEP-SHA1"
AES_GCM = "AES/GCM"
KMS_CONTEXT = "kms+context"
#: V3 ``x-amz-w`` codes (pipelines.py ``_V3_WRAP_ALG_MAP``).
V3_WRAP_CODES = {"02": AES_GCM, "12": KMS_CONTEXT, "22": RSA_OAEP_SHA1}
V3_WRAP_NAMES = {name: code for code, name in V3_WRAP_CODES.items()}


class Invalid(Exception):
    """Decryption or parsing failed (the reference does not say why beyond the message)."""


# ---------------------------------------------------------------------------------------- primitives


def hkdf_expand_sha512(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand with HMAC-SHA512, written out: T(i) = HMAC(PRK, T(i-1) || info || i)."""
    if length > 255 * 64:
        raise ValueError("HKDF-Expand output too long")
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha512).digest()
        out += block
        counter += 1
    return out[:length]


def derive_v3(data_key: bytes, message_id: bytes) -> tuple[bytes, bytes]:
    """(derived encryption key, key commitment) of V3 from the 32-byte data key and 28-byte message id."""
    if len(data_key) != 32:
        raise Invalid("V3 needs a 32-byte data key")
    if len(message_id) != MESSAGE_ID_LENGTH:
        raise Invalid("V3 needs a 28-byte message id")
    prk = hmac.new(message_id, data_key, hashlib.sha512).digest()  # HKDF-Extract(salt=message id, IKM=key)
    dek = hkdf_expand_sha512(prk, SUITE_ID_V3 + b"DERIVEKEY", 32)
    commitment = hkdf_expand_sha512(prk, SUITE_ID_V3 + b"COMMITKEY", COMMITMENT_LENGTH)
    return dek, commitment


def _oaep_sha1() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def rsa_oaep_sha1_wrap(public_key: rsa.RSAPublicKey, data_key: bytes, content_algorithm: str) -> bytes:
    """Java's RSA-OAEP-SHA1: OAEP(SHA-1, MGF1-SHA1) over ``len(key) || key || UTF-8(content algorithm)``."""
    pseudo = bytes([len(data_key)]) + data_key + content_algorithm.encode("utf-8")
    return public_key.encrypt(pseudo, _oaep_sha1())


def rsa_oaep_sha1_unwrap(private_key: rsa.RSAPrivateKey, wrapped: bytes, content_algorithm: str) -> bytes:
    """Undo :func:`rsa_oaep_sha1_wrap`, checking the length byte (16, 24 or 32) and the algorithm suffix."""
    try:
        pseudo = private_key.decrypt(wrapped, _oaep_sha1())
    except ValueError:
        raise Invalid("RSA-OAEP-SHA1 unwrap failed") from None
    length = pseudo[0] if pseudo else 0
    if length not in (16, 24, 32) or len(pseudo) < 1 + length:
        raise Invalid("bad data key length in the RSA pseudo-key")
    if pseudo[1 + length :] != content_algorithm.encode("utf-8"):
        raise Invalid("the RSA pseudo-key names another content algorithm")
    return pseudo[1 : 1 + length]


def aes_gcm_wrap(wrapping_key: bytes, data_key: bytes, content_algorithm: str, iv: bytes) -> bytes:
    """Java's AES/GCM wrap: ``IV || AES-GCM(wrapping key, IV, key, AAD=UTF-8(content algorithm)) || tag``."""
    if len(iv) != IV_LENGTH:
        raise ValueError("the AES/GCM wrap IV is 12 bytes")
    return iv + AESGCM(wrapping_key).encrypt(iv, data_key, content_algorithm.encode("utf-8"))


def aes_gcm_unwrap(wrapping_key: bytes, wrapped: bytes, content_algorithm: str) -> bytes:
    """Undo :func:`aes_gcm_wrap`."""
    if len(wrapped) < IV_LENGTH + TAG_LENGTH:
        raise Invalid("AES/GCM wrapped key too short")
    try:
        return AESGCM(wrapping_key).decrypt(
            wrapped[:IV_LENGTH], wrapped[IV_LENGTH:], content_algorithm.encode("utf-8")
        )
    except InvalidTag:
        raise Invalid("AES/GCM unwrap failed") from None


# --------------------------------------------------------------------------------------- content


def encrypt_v2_body(data_key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """V2 body: AES-256-GCM, no AAD, ciphertext || tag."""
    return AESGCM(data_key).encrypt(iv, plaintext, None)


def decrypt_v2_body(data_key: bytes, iv: bytes, body: bytes) -> bytes:
    """Open a V2 body."""
    try:
        return AESGCM(data_key).decrypt(iv, body, None)
    except InvalidTag:
        raise Invalid("V2 body does not authenticate") from None


def encrypt_v3_body(data_key: bytes, message_id: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    """V3 body and key commitment."""
    dek, commitment = derive_v3(data_key, message_id)
    return AESGCM(dek).encrypt(V3_IV, plaintext, SUITE_ID_V3), commitment


def decrypt_v3_body(data_key: bytes, message_id: bytes, commitment: bytes, body: bytes) -> bytes:
    """Check the commitment (constant time), then open a V3 body."""
    dek, expected = derive_v3(data_key, message_id)
    if not hmac.compare_digest(expected, commitment):
        raise Invalid("V3 key commitment mismatch")
    try:
        return AESGCM(dek).decrypt(V3_IV, body, SUITE_ID_V3)
    except InvalidTag:
        raise Invalid("V3 body does not authenticate") from None


def seeded_bytes(seed: str, length: int) -> bytes:
    """Test-vector plaintext: SHA-256(UTF-8(seed) || uint32_be(i)) for i = 0, 1, ..., cut to ``length``."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed.encode("utf-8") + counter.to_bytes(4, "big")).digest()
        counter += 1
    return bytes(out[:length])


# -------------------------------------------------------------------------------------- metadata


def b64(data: bytes) -> str:
    """Standard base64 with padding, as ``base64.b64encode(...).decode("utf-8")`` in pipelines.py."""
    return base64.b64encode(data).decode("utf-8")


def unb64(text: str) -> bytes:
    """Strict standard base64."""
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise Invalid("bad base64") from None


def json_map(value: Mapping[str, str]) -> str:
    """A JSON map as metadata.py ``ObjectMetadata.to_dict`` writes it: ``json.dumps`` with its defaults."""
    return json.dumps(dict(value))


def v2_metadata(
    *, edk: bytes, wrap_algorithm: str, iv: bytes, material_description: Mapping[str, str]
) -> dict[str, str]:
    """V2 object metadata (keys without ``x-amz-meta-``), as ObjectMetadata.to_dict orders them."""
    return {
        "x-amz-key-v2": b64(edk),
        "x-amz-wrap-alg": wrap_algorithm,
        "x-amz-matdesc": json_map(material_description),
        "x-amz-iv": b64(iv),
        "x-amz-cek-alg": V2_CONTENT,
        "x-amz-tag-len": "128",
    }


def v3_metadata(
    *,
    edk: bytes,
    wrap_algorithm: str,
    message_id: bytes,
    commitment: bytes,
    material_description: Mapping[str, str],
) -> dict[str, str]:
    """V3 object metadata; ``x-amz-m`` only when the material description is not empty."""
    out = {"x-amz-c": V3_CONTENT, "x-amz-3": b64(edk)}
    if material_description:
        out["x-amz-m"] = json_map(material_description)
    out["x-amz-w"] = V3_WRAP_NAMES[wrap_algorithm]
    out["x-amz-d"] = b64(commitment)
    out["x-amz-i"] = b64(message_id)
    return out


@dataclass(frozen=True)
class Parsed:
    """What V2 or V3 metadata says, decoded."""

    version: int
    content_algorithm: str
    wrap_algorithm: str
    edk: bytes
    material_description: dict[str, str] = field(default_factory=dict)
    iv: bytes | None = None
    message_id: bytes | None = None
    commitment: bytes | None = None


def _json_map(text: str | None) -> dict[str, str]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise Invalid("bad JSON map") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise Invalid("the JSON map is not an object of strings")
    return value


def parse_metadata(metadata: Mapping[str, str]) -> Parsed:
    """Detect V2 or V3 (metadata.py ``is_v2_format`` / ``is_v3_format``) and decode the fields."""
    exclusive = [k for k in ("x-amz-key", "x-amz-key-v2", "x-amz-3") if k in metadata]
    if len(exclusive) > 1:
        raise Invalid("more than one encrypted data key")
    if all(k in metadata for k in ("x-amz-c", "x-amz-w", "x-amz-d", "x-amz-i", "x-amz-3")):
        if metadata["x-amz-c"] != V3_CONTENT:
            raise Invalid("unknown V3 content algorithm")
        code = metadata["x-amz-w"]
        if code not in V3_WRAP_CODES:
            raise Invalid("unknown V3 wrap algorithm code")
        wrap = V3_WRAP_CODES[code]
        context_key = "x-amz-t" if wrap == KMS_CONTEXT else "x-amz-m"
        message_id, commitment = unb64(metadata["x-amz-i"]), unb64(metadata["x-amz-d"])
        if len(message_id) != MESSAGE_ID_LENGTH or len(commitment) != COMMITMENT_LENGTH:
            raise Invalid("bad V3 message id or commitment length")
        return Parsed(
            version=3,
            content_algorithm=V3_CONTENT,
            wrap_algorithm=wrap,
            edk=unb64(metadata["x-amz-3"]),
            material_description=_json_map(metadata.get(context_key)),
            message_id=message_id,
            commitment=commitment,
        )
    if all(k in metadata for k in ("x-amz-cek-alg", "x-amz-iv", "x-amz-wrap-alg", "x-amz-key-v2")):
        if metadata["x-amz-cek-alg"] != V2_CONTENT:
            raise Invalid("unknown V2 content algorithm")
        if metadata.get("x-amz-tag-len", "128") != "128":
            raise Invalid("unsupported tag length")
        iv = unb64(metadata["x-amz-iv"])
        if len(iv) != IV_LENGTH:
            raise Invalid("bad V2 IV length")
        return Parsed(
            version=2,
            content_algorithm=V2_CONTENT,
            wrap_algorithm=metadata["x-amz-wrap-alg"],
            edk=unb64(metadata["x-amz-key-v2"]),
            material_description=_json_map(metadata.get("x-amz-matdesc")),
            iv=iv,
        )
    raise Invalid("neither V2 nor V3 metadata")


# ------------------------------------------------------------------------------------- whole objects

#: An unwrapper: (wrap algorithm, EDK, content algorithm, material description) -> data key.
Unwrapper = Callable[[str, bytes, str, Mapping[str, str]], bytes]


def raw_key_unwrapper(
    *, rsa_private_key: rsa.RSAPrivateKey | None = None, aes_key: bytes | None = None
) -> Unwrapper:
    """An unwrapper over one RSA private key and/or one AES wrapping key."""

    def unwrap(wrap: str, edk: bytes, content: str, material_description: Mapping[str, str]) -> bytes:
        if wrap == RSA_OAEP_SHA1 and rsa_private_key is not None:
            return rsa_oaep_sha1_unwrap(rsa_private_key, edk, content)
        if wrap == AES_GCM and aes_key is not None:
            return aes_gcm_unwrap(aes_key, edk, content)
        raise Invalid(f"no key for the wrap algorithm {wrap}")

    return unwrap


def decrypt_object(metadata: Mapping[str, str], body: bytes, unwrap: Unwrapper) -> bytes:
    """Decrypt a whole V2 or V3 object."""
    parsed = parse_metadata(metadata)
    data_key = unwrap(
        parsed.wrap_algorithm, parsed.edk, parsed.content_algorithm, parsed.material_description
    )
    if parsed.version == 3:
        assert parsed.message_id is not None and parsed.commitment is not None
        return decrypt_v3_body(data_key, parsed.message_id, parsed.commitment, body)
    assert parsed.iv is not None
    return decrypt_v2_body(data_key, parsed.iv, body)


def encrypt_object(
    *,
    version: int,
    data_key: bytes,
    edk: bytes,
    wrap_algorithm: str,
    plaintext: bytes,
    material_description: Mapping[str, str],
    iv: bytes | None = None,
    message_id: bytes | None = None,
) -> tuple[dict[str, str], bytes]:
    """(metadata, body) of a V2 (needs ``iv``) or V3 (needs ``message_id``) object with a given EDK."""
    if version == 2:
        assert iv is not None
        body = encrypt_v2_body(data_key, iv, plaintext)
        meta = v2_metadata(
            edk=edk, wrap_algorithm=wrap_algorithm, iv=iv, material_description=material_description
        )
        return meta, body
    assert message_id is not None
    body, commitment = encrypt_v3_body(data_key, message_id, plaintext)
    meta = v3_metadata(
        edk=edk,
        wrap_algorithm=wrap_algorithm,
        message_id=message_id,
        commitment=commitment,
        material_description=material_description,
    )
    return meta, body
