"""Write ``vectors.json``: S3 Encryption Client V2/V3 test vectors with the raw-key wraps.

Made by the independent reference implementation ``tests/s3ec_reference.py`` (no cse code). Run by hand
from the repository root::

    .venv/bin/python tests/vectors/s3ec/generate.py

Cases: {V2, V3} x {RSA-OAEP-SHA1, AES/GCM} x {empty, 1 byte, 100 bytes, 70000 bytes}. Every input is
fixed: for the vector ``NAME`` the data key, content IV, V3 message id and AES/GCM wrap IV are the first 32,
12, 28 and 12 bytes of SHA-256 of ``"s3ec vector NAME data key"``, ``"... iv"``, ``"... message id"`` and
``"... wrap iv"``; the plaintext is ``seeded_bytes("s3ec vector NAME plaintext", length)``; the AES wrapping
key is SHA-256 of ``"s3ec vector aes wrapping key"``; the RSA key is ``rsa-2048.pem`` (made once, by this
script, if it is missing; it is a committed test fixture, never a real key).

RSA-OAEP is randomized: re-running keeps the RSA-OAEP-SHA1 EDK of each vector already in ``vectors.json``
as long as it still unwraps (with the reference) to the vector's data key, so the output only changes when
the inputs do. Everything else is deterministic.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # the repository root, for tests.s3ec_reference

from tests import s3ec_reference as ref  # noqa: E402

OUT = HERE / "vectors.json"
RSA_PEM = HERE / "rsa-2048.pem"
#: Bodies longer than this are stored as their SHA-256 only (the plaintext is re-made from its seed).
MAX_INLINE = 1024
SIZES = {"empty": 0, "1b": 1, "100b": 100, "70000b": 70000}
WRAPS = {"rsa-oaep-sha1": ref.RSA_OAEP_SHA1, "aes-gcm": ref.AES_GCM}
#: The material description recorded per wrap: empty for RSA (V2 writes "{}", V3 no x-amz-m), two entries
#: for AES (both versions write it).
MATERIAL_DESCRIPTIONS: dict[str, dict[str, str]] = {
    ref.RSA_OAEP_SHA1: {},
    ref.AES_GCM: {"purpose": "cse s3ec test vector", "generation": "1"},
}


def fixed(name: str, what: str, length: int) -> bytes:
    """The first ``length`` bytes of SHA-256("s3ec vector NAME WHAT")."""
    return hashlib.sha256(f"s3ec vector {name} {what}".encode()).digest()[:length]


def aes_wrapping_key() -> bytes:
    """The fixed AES-256 wrapping key of every AES/GCM vector."""
    return hashlib.sha256(b"s3ec vector aes wrapping key").digest()


def rsa_private_key() -> rsa.RSAPrivateKey:
    """The committed 2048-bit RSA test key (made once if missing)."""
    if not RSA_PEM.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        RSA_PEM.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    loaded = serialization.load_pem_private_key(RSA_PEM.read_bytes(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    return loaded


def previous_edks() -> dict[str, bytes]:
    """The EDKs of the vectors already written, by name."""
    if not OUT.exists():
        return {}
    return {
        v["name"]: bytes.fromhex(v["edk"]) for v in json.loads(OUT.read_text(encoding="utf-8"))["vectors"]
    }


def make_vector(
    version: int, wrap_label: str, size_label: str, key: rsa.RSAPrivateKey, old: dict[str, bytes]
) -> dict[str, Any]:
    """One vector, checked by decrypting it with the reference before it is returned."""
    name = f"v{version}-{wrap_label}-{size_label}"
    wrap = WRAPS[wrap_label]
    content = ref.V2_CONTENT if version == 2 else ref.V3_CONTENT
    md = MATERIAL_DESCRIPTIONS[wrap]
    data_key = fixed(name, "data key", 32)
    iv = fixed(name, "iv", 12) if version == 2 else None
    message_id = fixed(name, "message id", 28) if version == 3 else None
    seed = f"s3ec vector {name} plaintext"
    plaintext = ref.seeded_bytes(seed, SIZES[size_label])

    wrap_iv = None
    if wrap == ref.AES_GCM:
        wrap_iv = fixed(name, "wrap iv", 12)
        edk = ref.aes_gcm_wrap(aes_wrapping_key(), data_key, content, wrap_iv)
    else:
        edk = old.get(name, b"")
        try:
            reusable = ref.rsa_oaep_sha1_unwrap(key, edk, content) == data_key
        except (ref.Invalid, IndexError):
            reusable = False
        if not reusable:
            edk = ref.rsa_oaep_sha1_wrap(key.public_key(), data_key, content)

    metadata, body = ref.encrypt_object(
        version=version,
        data_key=data_key,
        edk=edk,
        wrap_algorithm=wrap,
        plaintext=plaintext,
        material_description=md,
        iv=iv,
        message_id=message_id,
    )
    unwrap = ref.raw_key_unwrapper(rsa_private_key=key, aes_key=aes_wrapping_key())
    assert ref.decrypt_object(metadata, body, unwrap) == plaintext

    vector: dict[str, Any] = {
        "name": name,
        "version": version,
        "content_algorithm": content,
        "wrap_algorithm": wrap,
        "material_description": md,
        "data_key": data_key.hex(),
        "iv": iv.hex() if iv is not None else None,
        "message_id": message_id.hex() if message_id is not None else None,
    }
    if version == 3:
        assert message_id is not None
        derived, commitment = ref.derive_v3(data_key, message_id)
        vector["derived_key"] = derived.hex()
        vector["commitment"] = commitment.hex()
    else:
        vector["commitment"] = None
    vector["wrap_iv"] = wrap_iv.hex() if wrap_iv is not None else None
    vector["edk"] = edk.hex()
    vector["plaintext_seed"] = seed
    vector["plaintext_length"] = len(plaintext)
    vector["plaintext_sha256"] = hashlib.sha256(plaintext).hexdigest()
    if len(body) <= MAX_INLINE:
        vector["plaintext"] = plaintext.hex()
    vector["metadata"] = metadata
    vector["body_length"] = len(body)
    vector["body_sha256"] = hashlib.sha256(body).hexdigest()
    if len(body) <= MAX_INLINE:
        vector["body"] = body.hex()
    return vector


def main() -> None:
    """Write vectors.json."""
    key = rsa_private_key()
    old = previous_edks()
    vectors = [
        make_vector(version, wrap_label, size_label, key, old)
        for version in (2, 3)
        for wrap_label in WRAPS
        for size_label in SIZES
    ]
    document = {
        "description": (
            "S3 Encryption Client V2/V3 objects with the RSA-OAEP-SHA1 and AES/GCM raw-key wraps, made by "
            "tests/s3ec_reference.py via tests/vectors/s3ec/generate.py; see README.md"
        ),
        "rsa_private_key_file": RSA_PEM.name,
        "aes_wrapping_key": aes_wrapping_key().hex(),
        "vectors": vectors,
    }
    OUT.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(vectors)} vectors to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
