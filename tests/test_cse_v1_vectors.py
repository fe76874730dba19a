"""cse-v1 test vectors, and cse against the independent reference implementation (tests/cse_v1_reference.py).

The vectors in tests/vectors/cse-v1/vectors.json were made by the reference implementation
(tests/vectors/cse-v1/generate.py). Here cse must decode their metadata, decrypt their bodies, and, given the
same parameters, produce byte-identical metadata and bodies. Then cse and the reference must agree on random
inputs.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cse import ciphers
from cse.content import ContentMaterial, codec_for, segment_aad
from cse.envelope import ContentAlgorithm, Envelope, WrappedKey
from cse.exceptions import DecryptionError
from cse.formats.native import NativeFormat
from tests import cse_v1_reference as ref

VECTORS_FILE = Path(__file__).parent / "vectors" / "cse-v1" / "vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]
FORMAT = NativeFormat()
CODEC = codec_for(ContentAlgorithm.CSE_V1)


def run(transform: ciphers.StreamTransform, data: bytes, step: int | None = None) -> bytes:
    """Feed ``data`` in ``step``-byte chunks (all at once if None) and finalize."""
    step = step or max(len(data), 1)
    out = bytearray(transform.output_size(step))
    parts = []
    for i in range(0, len(data), step):
        n = transform.update_into(data[i : i + step], out)
        parts.append(bytes(out[:n]))
    parts.append(transform.finalize())
    return b"".join(parts)


def vector_envelope(v: dict[str, Any]) -> Envelope:
    """The envelope a vector describes, built from its inputs (not from its metadata)."""
    return Envelope(
        format="cse-v1",
        content_algorithm=ContentAlgorithm.CSE_V1,
        wrapped_keys=tuple(
            WrappedKey(
                wrap_algorithm=k["wrap_algorithm"],
                ciphertext=bytes.fromhex(k["ciphertext"]),
                provider=k["provider"],
                key_id=k["key_id"],
                material_description=k["material_description"],
            )
            for k in v["keys"]
        ),
        salt=bytes.fromhex(v["salt"]),
        nonce_prefix=bytes.fromhex(v["nonce_prefix"]),
        commitment=bytes.fromhex(v["commitment"]),
        segment_size=v["segment_size"],
        encryption_context=v["encryption_context"],
    )


def test_vector_set_covers_the_cases() -> None:
    """8-12 vectors: empty, one byte, exact segment, segment + 1, several segments, size 16, context, keys."""
    names = {v["name"] for v in VECTORS}
    assert 8 <= len(VECTORS) <= 12
    assert {"empty", "one-byte", "exactly-one-segment", "one-segment-plus-one", "several-segments",
            "segment-size-16", "context-non-ascii", "several-wrapped-keys"} <= names  # fmt: skip
    assert any(len(v["keys"]) > 1 for v in VECTORS)
    assert any(
        not s.isascii()
        for v in VECTORS
        for s in [*v["encryption_context"], *v["encryption_context"].values()]
    )


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_cse_decodes_and_decrypts_vector(v: dict[str, Any]) -> None:
    """NativeFormat.decode of the metadata gives the vector's parameters; the codec decrypts the body."""
    envelope = FORMAT.decode(v["metadata"])
    assert envelope == vector_envelope(v)
    body, plaintext = bytes.fromhex(v["body"]), bytes.fromhex(v["plaintext"])
    material = ContentMaterial(key=bytes.fromhex(v["content_key"]))
    codec = codec_for(envelope.content_algorithm)
    assert codec.plaintext_length(envelope, len(body)) == len(plaintext)
    for step in (None, 1, 7, envelope.segment_size, (envelope.segment_size or 0) + 16):
        assert run(codec.decryptor(material, envelope, len(body)), body, step) == plaintext
    # Every range of a small vector, or a sample of a larger one.
    size = len(plaintext)
    ranges = (
        [(a, b) for a in range(size) for b in range(a, size)]
        if size <= 70
        else [(0, size - 1), (1, size - 2)]
    )
    for start, end in ranges:
        plan = codec.plan_range(envelope, len(body), start, end)
        dec = codec.range_decryptor(material, envelope, len(body), plan)
        out = run(dec, body[plan.ct_start : plan.ct_end + 1])
        assert out[plan.skip : plan.skip + plan.length] == plaintext[start : end + 1]
    with pytest.raises(DecryptionError):
        run(codec.decryptor(ContentMaterial(key=os.urandom(32)), envelope, len(body)), body)


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_cse_encrypts_vector_identically(v: dict[str, Any]) -> None:
    """Given a vector's key, salt, prefix, segment size and context, cse writes the same body and document."""
    key, salt = bytes.fromhex(v["content_key"]), bytes.fromhex(v["salt"])
    segment_key, commitment = ciphers.derive_segment_keys(key, salt)
    assert segment_key.hex() == v["segment_key"]
    assert commitment.hex() == v["commitment"]
    envelope = vector_envelope(v)
    assert segment_aad(envelope).hex() == v["aad"]
    plaintext = bytes.fromhex(v["plaintext"])
    for step in (None, 1, 13):
        body = run(CODEC.encryptor(ContentMaterial(key=key), envelope), plaintext, step)
        assert body.hex() == v["body"]
    assert FORMAT.encode(envelope) == v["metadata"]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_reference_reproduces_vector(v: dict[str, Any]) -> None:
    """The reference implementation still makes and opens each vector (guards edits to either side)."""
    params = ref.Parameters(
        content_key=bytes.fromhex(v["content_key"]),
        salt=bytes.fromhex(v["salt"]),
        nonce_prefix=bytes.fromhex(v["nonce_prefix"]),
        segment_size=v["segment_size"],
        encryption_context=v["encryption_context"],
    )
    body, commitment = ref.encrypt(params, bytes.fromhex(v["plaintext"]))
    assert (body.hex(), commitment.hex()) == (v["body"], v["commitment"])
    assert ref.decrypt(params, commitment, body).hex() == v["plaintext"]
    size, salt, prefix, parsed_commitment, context, keys = ref.parse_document(v["metadata"][ref.METADATA_KEY])
    assert (size, salt, prefix, parsed_commitment) == (
        params.segment_size,
        params.salt,
        params.nonce_prefix,
        commitment,
    )
    assert context == v["encryption_context"]
    assert [k.ciphertext.hex() for k in keys] == [k["ciphertext"] for k in v["keys"]]


# ------------------------------------------------------------------------------- random agreement

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTEXTS = st.dictionaries(st.text(max_size=12), st.text(max_size=20), max_size=5)
KEYS = st.lists(
    st.builds(
        ref.Key,
        wrap_algorithm=st.sampled_from(["RSA-OAEP-SHA256", "kms+context", "KMS/ALICLOUD"]),
        ciphertext=st.binary(min_size=1, max_size=600),
        provider=st.sampled_from(["rsa", "aws-kms", "aliyun-kms"]),
        key_id=st.text(min_size=1, max_size=40),
        material_description=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    ),
    min_size=1,
    max_size=3,
)


@SETTINGS
@given(
    data=st.data(),
    segment_size=st.sampled_from([16, 17, 64, 100, 4096, 65536]) | st.integers(16, 5000),
    context=CONTEXTS,
    keys=KEYS,
)
def test_cse_and_reference_agree(
    data: st.DataObject, segment_size: int, context: dict[str, str], keys: list[ref.Key]
) -> None:
    """Same inputs, same body and metadata; each decrypts what the other wrote; ranges agree."""
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    size = data.draw(st.integers(0, 3 * segment_size + 3) | st.integers(0, 200_000), label="size")
    plaintext = rng.randbytes(size)
    params = ref.Parameters(rng.randbytes(32), rng.randbytes(32), rng.randbytes(7), segment_size, context)
    ref_body, ref_commitment = ref.encrypt(params, plaintext)
    document = ref.metadata_document(params, ref_commitment, keys)

    # cse reads what the reference wrote.
    envelope = FORMAT.decode({"cse-v1": document})
    material = ContentMaterial(key=params.content_key)
    assert (
        run(CODEC.decryptor(material, envelope, len(ref_body)), ref_body, rng.randint(1, 3 * segment_size))
        == plaintext
    )
    # cse writes what the reference writes.
    assert FORMAT.encode(envelope) == {"cse-v1": document}
    assert run(CODEC.encryptor(material, envelope), plaintext, rng.randint(1, 3 * segment_size)) == ref_body
    body, commitment = ciphers.encrypt_segmented(
        params.content_key, params.salt, params.nonce_prefix, segment_size, plaintext, segment_aad(envelope)
    )
    assert (body, commitment) == (ref_body, ref_commitment)
    assert segment_aad(envelope) == params.aad
    # The reference reads what cse wrote.
    assert ref.decrypt(params, commitment, body) == plaintext
    assert ref.parse_document(FORMAT.encode(envelope)["cse-v1"])[4] == context
    # Ranged reads agree.
    if size:
        for _ in range(5):
            start = rng.randrange(size)
            end = rng.randrange(start, size)
            plan = CODEC.plan_range(envelope, len(body), start, end)
            dec = CODEC.range_decryptor(material, envelope, len(body), plan)
            mine = run(dec, body[plan.ct_start : plan.ct_end + 1])[plan.skip : plan.skip + plan.length]
            theirs = ref.decrypt_range(
                params, commitment, len(body), lambda a, b: body[a : b + 1], start, end
            )
            assert mine == theirs == plaintext[start : end + 1]


@SETTINGS
@given(data=st.data())
def test_both_reject_tampering(data: st.DataObject) -> None:
    """A flipped byte, a cut or an appended block is refused by cse and by the reference alike."""
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    segment_size = data.draw(st.sampled_from([16, 64, 1000]), label="segment_size")
    plaintext = rng.randbytes(data.draw(st.integers(0, 5 * segment_size), label="size"))
    params = ref.Parameters(rng.randbytes(32), rng.randbytes(32), rng.randbytes(7), segment_size, {"a": "b"})
    body, commitment = ref.encrypt(params, plaintext)
    envelope = FORMAT.decode(
        {"cse-v1": ref.metadata_document(params, commitment, [ref.Key("rsa", "RSA-OAEP-SHA256", "id", b"y")])}
    )
    material = ContentMaterial(key=params.content_key)
    kind = data.draw(st.sampled_from(["flip", "cut", "append"]), label="kind")
    if kind == "flip":
        pos = data.draw(st.integers(0, len(body) - 1), label="pos")
        bad = bytearray(body)
        bad[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        tampered = bytes(bad)
    elif kind == "cut":
        tampered = body[: data.draw(st.integers(0, len(body) - 1), label="cut")]
    else:
        tampered = body + rng.randbytes(data.draw(st.integers(1, 2 * segment_size + 40), label="extra"))
    with pytest.raises(ref.Invalid):
        ref.decrypt(params, commitment, tampered)
    with pytest.raises(DecryptionError):
        run(CODEC.decryptor(material, envelope, len(tampered)), tampered)
