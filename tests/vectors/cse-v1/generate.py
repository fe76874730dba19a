"""Write ``vectors.json``: cse-v1 test vectors made by the independent reference implementation.

Run by hand from the repository root (the output is deterministic; re-running rewrites the same file)::

    .venv/bin/python tests/vectors/cse-v1/generate.py

Every input is fixed: the content key, salt and nonce prefix of vector ``NAME`` are the first 32, 32 and 7
bytes of SHA-256 of ``"cse-v1 vector NAME key"``, ``"... salt"`` and ``"... nonce prefix"``; the plaintext
is ``i * 7 + 3 mod 256`` for byte ``i`` (or a given text). The wrapped keys are fixed dummy bytes: these
vectors cover the content encryption and the metadata encoding, not the key providers.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # the repository root, for tests.cse_v1_reference

from tests import cse_v1_reference as ref  # noqa: E402

MIB = 1024 * 1024


def fixed(name: str, what: str, length: int) -> bytes:
    """The first ``length`` bytes of SHA-256("cse-v1 vector NAME WHAT")."""
    return hashlib.sha256(f"cse-v1 vector {name} {what}".encode()).digest()[:length]


def pattern(length: int) -> bytes:
    """Byte ``i`` is ``(7 * i + 3) mod 256``."""
    return bytes((7 * i + 3) % 256 for i in range(length))


def dummy(name: str, n: int, length: int) -> bytes:
    """Dummy wrapped-key bytes (not a real wrap of anything)."""
    return (hashlib.sha256(f"cse-v1 vector {name} wrapped key {n}".encode()).digest() * 16)[:length]


ONE_RSA_KEY = [("rsa", "RSA-OAEP-SHA256", "sha256:00112233445566778899aabbccddeeff", {}, 256)]

CASES: list[dict[str, Any]] = [
    {
        "name": "empty",
        "comment": "empty plaintext: one empty last segment, the body is a lone tag",
        "segment_size": MIB,
        "plaintext": b"",
        "context": {},
        "keys": ONE_RSA_KEY,
    },
    {
        "name": "one-byte",
        "comment": "one byte of plaintext, default segment size",
        "segment_size": MIB,
        "plaintext": b"a",
        "context": {},
        "keys": ONE_RSA_KEY,
    },
    {
        "name": "exactly-one-segment",
        "comment": "plaintext of exactly one segment: an empty last segment follows",
        "segment_size": 64,
        "plaintext": pattern(64),
        "context": {"bucket": "b"},
        "keys": ONE_RSA_KEY,
    },
    {
        "name": "one-segment-plus-one",
        "comment": "one full segment and a last segment of one byte",
        "segment_size": 64,
        "plaintext": pattern(65),
        "context": {"bucket": "b"},
        "keys": ONE_RSA_KEY,
    },
    {
        "name": "several-segments",
        "comment": "four full segments and a partial last one",
        "segment_size": 64,
        "plaintext": pattern(4 * 64 + 17),
        "context": {"bucket": "b", "key": "k/1.bin"},
        "keys": ONE_RSA_KEY,
    },
    {
        "name": "several-segments-exact",
        "comment": "exactly three full segments, then an empty last segment",
        "segment_size": 64,
        "plaintext": pattern(3 * 64),
        "context": {},
        "keys": ONE_RSA_KEY,
    },
    {
        "name": "segment-size-16",
        "comment": "the smallest segment size",
        "segment_size": 16,
        "plaintext": pattern(50),
        "context": {},
        "keys": ONE_RSA_KEY,
    },
    {
        "name": "context-non-ascii",
        "comment": "non-ASCII, escaped and control characters in the context; U+E000 sorts before U+1F600 "
        "(by code point, not by UTF-16 code unit)",
        "segment_size": 32,
        "plaintext": "Grüße aus Zürich, 😀!".encode(),
        "context": {
            "città": "Zürich",
            "emoji": "😀",
            "quote": 'a"b\\c\nd\te\x01f\x7f/',
            "\ue000": "pua",
            "\U0001f600": "astral",
            "": "empty name",
            "bucket": "",
        },
        "keys": ONE_RSA_KEY,
    },
    {
        "name": "several-wrapped-keys",
        "comment": "three wrapped keys (any one unwraps the content key); ciphertexts are dummy bytes",
        "segment_size": 100,
        "plaintext": pattern(250),
        "context": {"tenant": "acme"},
        "keys": [
            (
                "rsa",
                "RSA-OAEP-SHA256",
                "sha256:00112233445566778899aabbccddeeff",
                {"purpose": "backup", "owner": "José"},
                512,
            ),
            (
                "aws-kms",
                "kms+context",
                "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                {},
                184,
            ),
            ("aliyun-kms", "KMS/ALICLOUD", "key-hzz62f1cb66fa42qo3fzs", {}, 128),
        ],
    },
    {
        "name": "segment-size-4096",
        "comment": "a larger segment size; a material description with non-ASCII text and an empty value",
        "segment_size": 4096,
        "plaintext": pattern(5000),
        "context": {},
        "keys": [
            (
                "rsa",
                "RSA-OAEP-SHA256",
                "sha256:ffeeddccbbaa99887766554433221100",
                {"ключ": "значение", "v": ""},
                384,
            )
        ],
    },
]


def make(case: dict[str, Any]) -> dict[str, Any]:
    """Compute one vector with the reference implementation, and check that it decrypts."""
    name = case["name"]
    params = ref.Parameters(
        content_key=fixed(name, "key", 32),
        salt=fixed(name, "salt", 32),
        nonce_prefix=fixed(name, "nonce prefix", 7),
        segment_size=case["segment_size"],
        encryption_context=case["context"],
    )
    keys = [
        ref.Key(wrap_algorithm=alg, ciphertext=dummy(name, n, length), provider=provider, key_id=key_id,
                material_description=md)
        for n, (provider, alg, key_id, md, length) in enumerate(case["keys"])
    ]  # fmt: skip
    body, commitment = ref.encrypt(params, case["plaintext"])
    assert ref.decrypt(params, commitment, body) == case["plaintext"]
    segment_key, _ = ref.derive(params.content_key, params.salt)
    document = ref.metadata_document(params, commitment, keys)
    assert ref.parse_document(document)[4] == case["context"]
    return {
        "name": name,
        "comment": case["comment"],
        "content_key": params.content_key.hex(),
        "salt": params.salt.hex(),
        "nonce_prefix": params.nonce_prefix.hex(),
        "segment_size": params.segment_size,
        "encryption_context": case["context"],
        "keys": [
            {
                "provider": k.provider,
                "wrap_algorithm": k.wrap_algorithm,
                "key_id": k.key_id,
                "ciphertext": k.ciphertext.hex(),
                "material_description": dict(k.material_description),
            }
            for k in keys
        ],  # fmt: skip
        "plaintext": case["plaintext"].hex(),
        "segment_key": segment_key.hex(),
        "commitment": commitment.hex(),
        "aad": params.aad.hex(),
        "metadata": {ref.METADATA_KEY: document},
        "body": body.hex(),
    }


def main() -> None:
    """Write vectors.json next to this script."""
    out = {
        "description": "cse-v1 test vectors (content encryption and metadata encoding). All byte strings are "
        "hex. 'keys' ciphertexts are dummy bytes, not real wraps. See README.md.",
        "content_algorithm": ref.CONTENT_ALGORITHM,
        "vectors": [make(case) for case in CASES],
    }
    text = json.dumps(out, indent=1, ensure_ascii=False) + "\n"
    (HERE / "vectors.json").write_text(text, encoding="utf-8")
    print(f"wrote {len(out['vectors'])} vectors, {len(text)} characters")


if __name__ == "__main__":
    main()
