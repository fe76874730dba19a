"""Tests of the content ciphers (cse.ciphers) and codecs (cse.content).

1. NIST CAVP AES-GCM known answers through the streaming GCM objects, in several chunkings.
2. The S3 "V3" key-committing derivation against a hand-written HKDF (RFC 5869) and a one-shot AESGCM body.
3. Property tests of the four codecs through ``codec_for``: round trips, ranged reads, tampering.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cse import ciphers
from cse.content import DEFAULT_SEGMENT_SIZE, ContentCodec, ContentMaterial, codec_for, segment_aad
from cse.envelope import ContentAlgorithm, Envelope, WrappedKey
from cse.exceptions import AUTHENTICATION_FAILED, ConfigurationError, DecryptionError

MIB = 1024 * 1024
VECTORS = Path(__file__).parent / "vectors" / "nist-gcm"

PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ------------------------------------------------------------------------------------------------ helpers


def run(transform: ciphers.StreamTransform, data: bytes, sizes: int | Iterable[int] | None = None) -> bytes:
    """Push ``data`` through ``transform`` in chunks (reusing one output buffer) and finalize."""
    if sizes is None:
        sizes = [len(data)]
    elif isinstance(sizes, int):
        step = sizes
        sizes = [step] * (len(data) // step) + ([len(data) % step] if len(data) % step else [])
    sizes = list(sizes)
    assert sum(sizes) == len(data)
    out = bytearray(transform.output_size(max(sizes, default=0)))
    view = memoryview(data)
    parts: list[bytes] = []
    pos = 0
    for n in sizes:
        written = transform.update_into(view[pos : pos + n], out)
        assert 0 <= written <= len(out)
        parts.append(bytes(out[:written]))
        pos += n
    parts.append(transform.finalize())
    return b"".join(parts)


def random_chunks(rng: random.Random, total: int, limit: int = 1500) -> list[int]:
    """Chunk sizes summing to ``total``: a mix of tiny, medium, large and empty chunks."""
    sizes: list[int] = []
    left = total
    while left > 0:
        if len(sizes) >= limit:
            sizes.append(left)
            break
        r = rng.random()
        if r < 0.05:
            n = 0
        elif r < 0.4:
            n = rng.randint(1, 40)
        elif r < 0.8:
            n = rng.randint(1, 70_000)
        else:
            n = rng.randint(1, total)
        n = min(n, left)
        sizes.append(n)
        left -= n
    return sizes


@dataclass
class Obj:
    """A codec, an envelope made with ``new_parameters`` and the material to decrypt it."""

    codec: ContentCodec
    envelope: Envelope
    material: ContentMaterial

    def encrypt(self, plaintext: bytes, sizes: int | Iterable[int] | None = None) -> bytes:
        """Encrypt a whole body."""
        return run(self.codec.encryptor(self.material, self.envelope), plaintext, sizes)

    def decrypt(
        self, body: bytes, sizes: int | Iterable[int] | None = None, length: int | None = None
    ) -> bytes:
        """Decrypt a whole body; ``length`` is the ciphertext length a store reports (default: the body's)."""
        length = len(body) if length is None else length
        return run(self.codec.decryptor(self.material, self.envelope, length), body, sizes)

    def read_range(
        self, body: bytes, start: int, end: int, rng: random.Random | None = None
    ) -> tuple[bytes, bool]:
        """Plaintext ``start..end`` (inclusive) through ``plan_range`` and ``range_decryptor``.

        With ``rng``, the fetched ciphertext is fed in random chunks; else all at once.
        """
        plan = self.codec.plan_range(self.envelope, len(body), start, end)
        assert 0 <= plan.ct_start <= plan.ct_end < len(body)
        assert plan.length == end - start + 1
        fetched = body[plan.ct_start : plan.ct_end + 1]
        dec = self.codec.range_decryptor(self.material, self.envelope, len(body), plan)
        out = run(dec, fetched, random_chunks(rng, len(fetched)) if rng else None)
        assert len(out) >= plan.skip + plan.length
        return out[plan.skip : plan.skip + plan.length], plan.authenticated


def make(
    algorithm: str,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    key: bytes | None = None,
    iv: bytes | None = None,
    context: dict[str, str] | None = None,
    **override: Any,
) -> Obj:
    """An object of ``algorithm`` with fresh parameters from the codec (``override`` replaces some)."""
    codec = codec_for(algorithm)
    key = os.urandom(32) if key is None else key
    params = codec.new_parameters(key, segment_size)
    if iv is not None:
        params["iv"] = iv
    params.update(override)
    envelope = Envelope(
        format="test",
        content_algorithm=algorithm,
        wrapped_keys=(WrappedKey(wrap_algorithm="test", ciphertext=b"\x00"),),
        encryption_context=context or {},
        **params,
    )
    return Obj(codec, envelope, ContentMaterial(key=key, iv=params.get("iv")))


def assert_auth_failure(fn: Any, *args: Any, **kwargs: Any) -> None:
    """``fn`` raises exactly the opaque DecryptionError."""
    with pytest.raises(DecryptionError) as info:
        fn(*args, **kwargs)
    assert type(info.value) is DecryptionError
    assert str(info.value) == AUTHENTICATION_FAILED


def rejects(
    obj: Obj, body: bytes, length: int | None = None, sizes: int | Iterable[int] | None = None
) -> bool:
    """Whether decrypting ``body`` fails with DecryptionError at any stage (constructor, update, finalize)."""
    try:
        obj.decrypt(body, sizes, length)
    except DecryptionError:
        return True
    return False


def segments(body: bytes, segment_size: int) -> list[bytes]:
    """Cut a cse-v1 body into its sealed segments."""
    stride = segment_size + 16
    return [body[i : i + stride] for i in range(0, len(body), stride)]


ALGORITHMS = [
    ContentAlgorithm.AES_GCM,
    ContentAlgorithm.AES_GCM_COMMITTING,
    ContentAlgorithm.AES_CTR,
    ContentAlgorithm.CSE_V1,
]


# ---------------------------------------------------------------------------------- 1. NIST CAVP AES-GCM


@dataclass(frozen=True)
class GcmCase:
    """One CAVP GCMVS case."""

    id: str
    key: bytes
    iv: bytes
    pt: bytes | None
    aad: bytes
    ct: bytes
    tag: bytes
    fail: bool


def parse_rsp(path: Path) -> list[GcmCase]:
    """Parse a CAVP ``.rsp`` file (only the fields GCM uses)."""
    cases: list[GcmCase] = []
    header: dict[str, str] = {}
    current: dict[str, str] | None = None

    def flush() -> None:
        if current is None:
            return
        assert (header["Keylen"], header["IVlen"], header["Taglen"]) == ("256", "96", "128")
        cases.append(
            GcmCase(
                id=f"{path.stem}-pt{header['PTlen']}-aad{header['AADlen']}-{current['Count']}",
                key=bytes.fromhex(current["Key"]),
                iv=bytes.fromhex(current["IV"]),
                pt=bytes.fromhex(current["PT"]) if "PT" in current else None,
                aad=bytes.fromhex(current["AAD"]),
                ct=bytes.fromhex(current["CT"]),
                tag=bytes.fromhex(current["Tag"]),
                fail="FAIL" in current,
            )
        )

    for raw in path.read_text(encoding="ascii").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.fullmatch(r"\[(\w+) = (\d+)\]", line):
            flush()
            current = None
            header[m.group(1)] = m.group(2)
        elif line.startswith("Count = "):
            flush()
            current = {"Count": line.split(" = ")[1]}
        elif line == "FAIL":
            assert current is not None
            current["FAIL"] = ""
        else:
            name, _, value = line.partition("=")
            assert current is not None
            current[name.strip()] = value.strip()
    flush()
    return cases


ENCRYPT_CASES = parse_rsp(VECTORS / "gcmEncryptExtIV256.rsp")
DECRYPT_CASES = parse_rsp(VECTORS / "gcmDecrypt256.rsp")
CHUNKINGS = [1, 7, None]


def test_nist_selection_is_complete() -> None:
    """The subset holds every 256/96/128 case of both files, FAIL cases included."""
    assert len(ENCRYPT_CASES) == 375
    assert len(DECRYPT_CASES) == 375
    assert sum(c.fail for c in DECRYPT_CASES) == 191
    assert not any(c.fail for c in ENCRYPT_CASES)
    assert {len(c.pt or b"") for c in ENCRYPT_CASES} == {0, 13, 16, 32, 51}
    assert {len(c.aad) for c in DECRYPT_CASES} == {0, 16, 20, 48, 90}


@pytest.mark.parametrize("case", ENCRYPT_CASES, ids=lambda c: c.id)
def test_nist_gcm_encrypt(case: GcmCase) -> None:
    """Streaming encryption gives the NIST ciphertext and tag, whatever the chunking."""
    assert case.pt is not None
    for sizes in CHUNKINGS:
        enc = ciphers.GcmEncryptor(case.key, case.iv, case.aad)
        out = bytearray(enc.output_size(len(case.pt)))
        parts = []
        step = sizes or max(len(case.pt), 1)
        for i in range(0, len(case.pt), step):
            n = enc.update_into(case.pt[i : i + step], out)
            parts.append(bytes(out[:n]))
        tag = enc.finalize()
        assert b"".join(parts) == case.ct, sizes
        assert tag == case.tag, sizes
    assert ciphers.encrypt_gcm(case.key, case.iv, case.pt, case.aad) == case.ct + case.tag


@pytest.mark.parametrize("case", DECRYPT_CASES, ids=lambda c: c.id)
def test_nist_gcm_decrypt(case: GcmCase) -> None:
    """Streaming decryption gives the NIST plaintext, or DecryptionError for FAIL cases."""
    body = case.ct + case.tag
    for sizes in CHUNKINGS:
        dec = ciphers.GcmDecryptor(case.key, case.iv, case.aad)
        if case.fail:
            assert_auth_failure(run, dec, body, sizes)
        else:
            assert run(dec, body, sizes) == case.pt, sizes
        # The tag given in advance: nothing is held back.
        dec = ciphers.GcmDecryptor(case.key, case.iv, case.aad, tag=case.tag)
        if case.fail:
            assert_auth_failure(run, dec, case.ct, sizes)
        else:
            assert run(dec, case.ct, sizes) == case.pt, sizes
    if case.fail:
        assert_auth_failure(ciphers.decrypt_gcm, case.key, case.iv, body, case.aad)
    else:
        assert ciphers.decrypt_gcm(case.key, case.iv, body, case.aad) == case.pt


def test_gcm_short_body_fails() -> None:
    """A body shorter than a tag is an authentication failure, not an IndexError."""
    key, iv = os.urandom(32), os.urandom(12)
    for n in range(16):
        assert_auth_failure(ciphers.decrypt_gcm, key, iv, os.urandom(n))
    with pytest.raises(DecryptionError):
        codec_for(ContentAlgorithm.AES_GCM).plaintext_length(make(ContentAlgorithm.AES_GCM).envelope, 15)


def test_bad_key_and_iv_lengths() -> None:
    """Keys are 32 bytes; GCM IVs 12; CTR IVs 16."""
    with pytest.raises(ValueError, match="32 bytes"):
        ciphers.GcmEncryptor(bytes(16), bytes(12))
    with pytest.raises(ValueError, match="12-byte IV"):
        ciphers.GcmDecryptor(bytes(32), bytes(16))
    with pytest.raises(ValueError, match="16-byte IV"):
        ciphers.CtrCipher(bytes(32), bytes(12))


# ----------------------------------------------------------------------- 2. S3 "V3" key-committing GCM


def hkdf_sha512_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand with HMAC-SHA512, written out by hand."""
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha512).digest()
        okm += block
        counter += 1
    return okm[:length]


def v3_reference(data_key: bytes, message_id: bytes) -> tuple[bytes, bytes]:
    """The S3 V3 DEK and commitment, independently of cse: HKDF-SHA512 by hand."""
    prk = hmac.new(message_id, data_key, hashlib.sha512).digest()  # HKDF-Extract(salt=message_id, IKM=PDK)
    dek = hkdf_sha512_expand(prk, b"\x00\x73DERIVEKEY", 32)
    commitment = hkdf_sha512_expand(prk, b"\x00\x73COMMITKEY", 28)
    return dek, commitment


@PROPERTY
@given(data_key=st.binary(min_size=32, max_size=32), message_id=st.binary(min_size=28, max_size=28))
def test_committing_derivation_matches_hand_hkdf(data_key: bytes, message_id: bytes) -> None:
    """cse's derivation equals RFC 5869 HKDF-SHA512 computed from hmac + hashlib."""
    assert ciphers.derive_committing_keys(data_key, message_id) == v3_reference(data_key, message_id)


@PROPERTY
@given(st.data())
def test_committing_body_matches_one_shot_aesgcm(data: st.DataObject) -> None:
    """The body is AES-256-GCM(DEK, IV 12x01, AAD 0x0073) of the plaintext, as a one-shot AESGCM makes it."""
    size = data.draw(st.integers(0, 70_000))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    data_key, message_id, plaintext = rng.randbytes(32), rng.randbytes(28), rng.randbytes(size)
    dek, commitment = v3_reference(data_key, message_id)
    expected = AESGCM(dek).encrypt(b"\x01" * 12, plaintext, b"\x00\x73")
    assert ciphers.encrypt_committing_gcm(data_key, message_id, plaintext) == (expected, commitment)
    enc = ciphers.CommittingGcmEncryptor(data_key, message_id)
    assert enc.commitment == commitment
    assert run(enc, plaintext, random_chunks(rng, size)) == expected
    dec = ciphers.CommittingGcmDecryptor(data_key, message_id, commitment)
    assert run(dec, expected, random_chunks(rng, len(expected))) == plaintext
    # Through the codec, with an envelope holding the message id and commitment.
    obj = make(
        ContentAlgorithm.AES_GCM_COMMITTING, key=data_key, message_id=message_id, commitment=commitment
    )
    assert obj.encrypt(plaintext) == expected
    assert obj.decrypt(expected, random_chunks(rng, len(expected))) == plaintext


def test_committing_constants() -> None:
    """The fixed IV, AAD and lengths of suite 0x0073."""
    assert ciphers.COMMITTING_IV == b"\x01" * 12
    assert ciphers.COMMITTING_AAD == b"\x00\x73"
    assert ciphers.MESSAGE_ID_LENGTH == ciphers.COMMITMENT_LENGTH == 28


def test_commitment_mismatch_raises_before_decrypting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong commitment fails in the constructor, before any cipher context exists, in constant time."""
    data_key, message_id = os.urandom(32), os.urandom(28)
    body, commitment = ciphers.encrypt_committing_gcm(data_key, message_id, b"secret")
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    def no_cipher(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cipher context was created before the commitment was checked")

    monkeypatch.setattr(ciphers.hmac, "compare_digest", spy)
    monkeypatch.setattr(ciphers, "Cipher", no_cipher)
    for i in range(28):
        bad = bytearray(commitment)
        bad[i] ^= 0x80
        assert_auth_failure(ciphers.CommittingGcmDecryptor, data_key, message_id, bytes(bad))
        assert compared[-1] == (commitment, bytes(bad))
    for bad in (b"", commitment[:-1], commitment + b"\x00"):
        assert_auth_failure(ciphers.CommittingGcmDecryptor, data_key, message_id, bad)
    # The codec path checks it too, for whole and ranged reads.
    obj = make(ContentAlgorithm.AES_GCM_COMMITTING, key=data_key, message_id=message_id, commitment=bytes(28))
    assert_auth_failure(obj.decrypt, body)
    assert_auth_failure(obj.read_range, body, 0, 3)
    monkeypatch.undo()
    ok = make(ContentAlgorithm.AES_GCM_COMMITTING, key=data_key, message_id=message_id, commitment=commitment)
    assert ok.decrypt(body) == b"secret"


def test_committing_wrong_key_or_message_id_raises() -> None:
    """Another data key or message id does not match the commitment."""
    data_key, message_id = os.urandom(32), os.urandom(28)
    body, commitment = ciphers.encrypt_committing_gcm(data_key, message_id, b"x" * 100)
    assert_auth_failure(ciphers.CommittingGcmDecryptor, os.urandom(32), message_id, commitment)
    assert_auth_failure(ciphers.CommittingGcmDecryptor, data_key, os.urandom(28), commitment)
    assert_auth_failure(ciphers.decrypt_committing_gcm, os.urandom(32), message_id, commitment, body)
    tampered = bytearray(body)
    tampered[5] ^= 1
    assert_auth_failure(ciphers.decrypt_committing_gcm, data_key, message_id, commitment, bytes(tampered))
    with pytest.raises(ValueError, match="28 bytes"):
        ciphers.derive_committing_keys(data_key, b"short")


# --------------------------------------------------------------------------------- 3. codec properties


def sizes_for(segment_size: int) -> st.SearchStrategy[int]:
    """Sizes 0..3 MiB, mixed with sizes within a few segments of zero."""
    return st.one_of(st.integers(0, 3 * MIB), st.integers(0, 3 * min(segment_size, MIB) + 2))


SEGMENTED = [16, 100, 4096, DEFAULT_SEGMENT_SIZE]


@pytest.mark.parametrize(
    ("algorithm", "segment_size"),
    [(a, DEFAULT_SEGMENT_SIZE) for a in ALGORITHMS[:3]] + [(ContentAlgorithm.CSE_V1, s) for s in SEGMENTED],
    ids=["gcm", "committing-gcm", "ctr"] + [f"cse-v1-{s}" for s in SEGMENTED],
)
@PROPERTY
@given(data=st.data())
def test_round_trip(algorithm: str, segment_size: int, data: st.DataObject) -> None:
    """Encrypt then decrypt is the identity, for any chunking of either side; lengths are as announced."""
    size = data.draw(sizes_for(segment_size), label="size")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    plaintext = rng.randbytes(size)
    obj = make(algorithm, segment_size)
    body = obj.encrypt(plaintext, random_chunks(rng, size))
    assert len(body) == obj.codec.ciphertext_length(obj.envelope, size)
    assert obj.codec.plaintext_length(obj.envelope, len(body)) == size
    assert obj.decrypt(body, random_chunks(rng, len(body))) == plaintext
    if algorithm == ContentAlgorithm.AES_GCM:
        assert obj.material.iv is not None
        assert body == AESGCM(obj.material.key).encrypt(obj.material.iv, plaintext, None)
    elif algorithm == ContentAlgorithm.AES_CTR:
        assert obj.material.iv is not None
        head = body[:65536]
        assert head == ctr_reference(obj.material.key, obj.material.iv, plaintext[: len(head)])
    elif algorithm == ContentAlgorithm.CSE_V1:
        assert obj.envelope.salt is not None
        assert obj.envelope.nonce_prefix is not None
        assert (
            body
            == ciphers.encrypt_segmented(
                obj.material.key,
                obj.envelope.salt,
                obj.envelope.nonce_prefix,
                segment_size,
                plaintext,
                segment_aad(obj.envelope),
            )[0]
        )


@pytest.mark.parametrize(
    ("algorithm", "segment_size"),
    [(a, DEFAULT_SEGMENT_SIZE) for a in ALGORITHMS] + [(ContentAlgorithm.CSE_V1, 100)],
)
def test_large_round_trip(algorithm: str, segment_size: int) -> None:
    """3 MiB + 5 bytes in random chunkings (hypothesis favours small sizes; this pins a large one)."""
    rng = random.Random(1234)
    plaintext = rng.randbytes(3 * MIB + 5)
    obj = make(algorithm, segment_size)
    body = obj.encrypt(plaintext, random_chunks(rng, len(plaintext)))
    assert len(body) == obj.codec.ciphertext_length(obj.envelope, len(plaintext))
    assert obj.decrypt(body, random_chunks(rng, len(body))) == plaintext
    for start, end in [(0, 3 * MIB + 4), (MIB - 1, 2 * MIB + 1), (3 * MIB, 3 * MIB + 4), (12345, 12345)]:
        assert obj.read_range(body, start, end, rng)[0] == plaintext[start : end + 1]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_zero_length_objects(algorithm: str) -> None:
    """Empty plaintexts round-trip; the body is the tag alone (or nothing, for CTR)."""
    obj = make(algorithm, 16)
    body = obj.encrypt(b"")
    assert len(body) == (0 if algorithm == ContentAlgorithm.AES_CTR else 16)
    assert obj.codec.ciphertext_length(obj.envelope, 0) == len(body)
    assert obj.codec.plaintext_length(obj.envelope, len(body)) == 0
    assert obj.decrypt(body) == b""
    assert obj.decrypt(body, 1) == b""
    if algorithm != ContentAlgorithm.AES_CTR:
        assert rejects(obj, b"")
        assert rejects(obj, body[:-1])
        assert rejects(obj, bytes(16))
        other = make(algorithm, 16, key=obj.material.key)
        assert rejects(other, body)


# ------------------------------------------------------------------------------------- ranged reads


def ctr_reference(key: bytes, iv: bytes, data: bytes, offset: int = 0) -> bytes:
    """AES-CTR built from AES-ECB: block ``i`` is XORed with ``AES(key, (IV + i) mod 2**128)``."""
    if not data:
        return b""
    first, last = offset // 16, (offset + len(data) - 1) // 16
    base = int.from_bytes(iv, "big")
    counters = b"".join(((base + i) % (1 << 128)).to_bytes(16, "big") for i in range(first, last + 1))
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - building CTR by hand
    stream = ecb.update(counters)[offset % 16 : offset % 16 + len(data)]
    return bytes(a ^ b for a, b in zip(data, stream))


def draw_ranges(data: st.DataObject, size: int, count: int = 12) -> list[tuple[int, int]]:
    """Inclusive ranges within ``size`` bytes: random, single bytes, edges."""
    if size == 0:
        return []
    point = st.integers(0, size - 1)
    ranges = data.draw(st.lists(st.tuples(point, point), min_size=1, max_size=count), label="ranges")
    out = [(min(a, b), max(a, b)) for a, b in ranges]
    return [*out, (0, size - 1), (size - 1, size - 1), (0, 0)]


#: CTR IVs: random, all ones (the counter wraps after one block), close to 2**128, and close to a carry out of
#: the low 32 bits (where a 32-bit-only counter would go wrong).
IVS = st.one_of(
    st.binary(min_size=16, max_size=16),
    st.just(b"\xff" * 16),
    st.integers(1, 50_000).map(lambda k: ((1 << 128) - k).to_bytes(16, "big")),
    st.integers(1, 50_000).map(lambda k: ((1 << 32) - k).to_bytes(16, "big")),
)


@PROPERTY
@given(data=st.data(), iv=IVS)
def test_ctr_ranges_equal_slices(data: st.DataObject, iv: bytes) -> None:
    """A CTR range read at any offset equals the slice of a full decrypt, across 2**128 counter wrap."""
    size = data.draw(sizes_for(16), label="size")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    plaintext = rng.randbytes(size)
    obj = make(ContentAlgorithm.AES_CTR, iv=iv)
    body = obj.encrypt(plaintext, random_chunks(rng, size))
    for start, end in draw_ranges(data, size):
        got, authenticated = obj.read_range(body, start, end, rng)
        assert not authenticated
        assert got == plaintext[start : end + 1]
        sample = body[start : min(end + 1, start + 4096)]
        assert ctr_reference(obj.material.key, iv, sample, start) == plaintext[start : start + len(sample)]
        direct = ciphers.aes_ctr(obj.material.key, iv, body[start : end + 1], start)
        assert direct == plaintext[start : end + 1]


def test_ctr_counter_wraps_at_2_128() -> None:
    """With IV ff..ff the second block uses counter 0, like a 128-bit big-endian register."""
    key = os.urandom(32)
    plaintext = os.urandom(100)
    for iv in (b"\xff" * 16, ((1 << 128) - 2).to_bytes(16, "big")):
        body = ciphers.aes_ctr(key, iv, plaintext)
        assert body == ctr_reference(key, iv, plaintext)
        for offset in range(len(plaintext)):
            assert ciphers.aes_ctr(key, iv, body[offset:], offset) == plaintext[offset:]
    with pytest.raises(ValueError, match="negative"):
        ciphers.CtrCipher(key, bytes(16), -1)


@PROPERTY
@given(data=st.data())
def test_ctr_parts_at_offsets_concatenate(data: st.DataObject) -> None:
    """CTR parts encrypted independently at block-aligned offsets concatenate to the whole body."""
    size = data.draw(st.integers(0, 300_000), label="size")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    plaintext = rng.randbytes(size)
    obj = make(ContentAlgorithm.AES_CTR)
    assert obj.codec.part_alignment(obj.envelope) == 16
    cuts = sorted({c - c % 16 for c in data.draw(st.lists(st.integers(0, size), max_size=5), label="cuts")})
    bounds = [0, *[c for c in cuts if 0 < c < size], size]
    body = b"".join(
        run(obj.codec.encryptor(obj.material, obj.envelope, a, final=(b == size)), plaintext[a:b])
        for a, b in itertools.pairwise(bounds)
    )
    assert body == obj.encrypt(plaintext)


@pytest.mark.parametrize("algorithm", [ContentAlgorithm.AES_GCM, ContentAlgorithm.AES_GCM_COMMITTING])
@PROPERTY
@given(data=st.data())
def test_gcm_ranges_equal_slices(algorithm: str, data: st.DataObject) -> None:
    """The unauthenticated CTR path of GCM objects gives the same bytes as a full (verified) decrypt."""
    size = data.draw(sizes_for(16), label="size")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    plaintext = rng.randbytes(size)
    obj = make(algorithm)
    body = obj.encrypt(plaintext)
    for start, end in draw_ranges(data, size):
        plan = obj.codec.plan_range(obj.envelope, len(body), start, end)
        assert plan.ct_start % 16 == 0
        assert start - 16 < plan.ct_start <= start
        assert plan.ct_end == end
        got, authenticated = obj.read_range(body, start, end, rng)
        assert not authenticated
        assert got == plaintext[start : end + 1]


@pytest.mark.parametrize("segment_size", SEGMENTED)
@PROPERTY
@given(data=st.data())
def test_segmented_ranges_equal_slices(segment_size: int, data: st.DataObject) -> None:
    """cse-v1 ranges fetch whole segments, verify them, and deliver exactly the slice."""
    size = data.draw(sizes_for(segment_size), label="size")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    plaintext = rng.randbytes(size)
    obj = make(ContentAlgorithm.CSE_V1, segment_size)
    body = obj.encrypt(plaintext)
    stride = segment_size + 16
    for start, end in draw_ranges(data, size):
        plan = obj.codec.plan_range(obj.envelope, len(body), start, end)
        assert plan.authenticated
        assert plan.ct_start % stride == 0
        assert plan.ct_end == len(body) - 1 or (plan.ct_end + 1) % stride == 0
        assert (plan.ct_end - plan.ct_start + 1) <= (end // segment_size - start // segment_size + 1) * stride
        got, authenticated = obj.read_range(body, start, end, rng)
        assert authenticated
        assert got == plaintext[start : end + 1]


# ----------------------------------------------------------------------------------- cse-v1 integrity


def small_object(segment_size: int = 16, size: int = 16 * 5 + 7) -> tuple[Obj, bytes, bytes]:
    """A cse-v1 object of a few segments: (object, plaintext, body)."""
    obj = make(ContentAlgorithm.CSE_V1, segment_size, context={"bucket": "b", "key": "k"})
    plaintext = os.urandom(size)
    return obj, plaintext, obj.encrypt(plaintext)


@pytest.mark.parametrize("size", [16 * 5 + 7, 16 * 5, 1, 16])
def test_segmented_every_truncation_fails(size: int) -> None:
    """Cutting the body anywhere (at or inside a segment) fails, whether or not the store says so."""
    obj, plaintext, body = small_object(size=size)
    assert obj.decrypt(body) == plaintext
    for cut in range(len(body)):
        assert rejects(obj, body[:cut]), cut  # the store reports the cut length
        assert rejects(obj, body[:cut], length=len(body)), cut  # the stream ends early


def test_segmented_drop_last_segment_fails() -> None:
    """Dropping trailing segments fails: whole segments leave an impossible length, and a valid-looking length
    (whole segments plus 16 or more bytes of the next) ends in a segment whose last flag does not match."""
    obj, plaintext, body = small_object(4096, 4096 * 3 + 100)
    parts = segments(body, 4096)
    for keep in range(1, len(parts)):
        truncated = b"".join(parts[:keep])
        with pytest.raises(DecryptionError):
            obj.codec.plaintext_length(obj.envelope, len(truncated))
        assert rejects(obj, truncated)
        for extra in (16, 17, 1000):
            if extra >= len(parts[keep]):
                continue  # that would be the whole next segment
            cut = truncated + parts[keep][:extra]
            assert obj.codec.plaintext_length(obj.envelope, len(cut)) == keep * 4096 + extra - 16
            assert rejects(obj, cut)
            assert rejects(obj, cut, sizes=1000)
    # Mid-segment cut with a valid length (one byte into the last segment's body).
    assert rejects(obj, body[: 3 * (4096 + 16) + 17])


def test_segmented_reordering_fails() -> None:
    """Swapping any two segments fails."""
    obj, plaintext, body = small_object(size=16 * 6)
    parts = segments(body, 16)
    for i, j in itertools.combinations(range(len(parts)), 2):
        swapped = list(parts)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        assert rejects(obj, b"".join(swapped)), (i, j)


def test_segmented_splicing_from_another_object_fails() -> None:
    """A segment from another object with the same key (same nonce prefix, other salt) does not fit."""
    obj, plaintext, body = small_object(size=16 * 6)
    assert obj.envelope.nonce_prefix is not None
    key = obj.material.key
    salt = os.urandom(32)
    _, commitment = ciphers.derive_segment_keys(key, salt)
    other = make(
        ContentAlgorithm.CSE_V1,
        16,
        key=key,
        context={"bucket": "b", "key": "k"},
        salt=salt,
        nonce_prefix=obj.envelope.nonce_prefix,
        commitment=commitment,
    )
    other_body = other.encrypt(plaintext)
    assert other.decrypt(other_body) == plaintext
    mine, theirs = segments(body, 16), segments(other_body, 16)
    for i in range(len(mine)):
        spliced = list(mine)
        spliced[i] = theirs[i]
        assert rejects(obj, b"".join(spliced)), i
    # Same salt, other nonce prefix: still refused (the prefix is in the nonce and the AAD).
    third = make(
        ContentAlgorithm.CSE_V1,
        16,
        key=key,
        context={"bucket": "b", "key": "k"},
        salt=obj.envelope.salt,
        nonce_prefix=os.urandom(7),
        commitment=obj.envelope.commitment,
    )
    third_parts = segments(third.encrypt(plaintext), 16)
    for i in range(len(mine)):
        spliced = list(mine)
        spliced[i] = third_parts[i]
        assert rejects(obj, b"".join(spliced)), i


@pytest.mark.parametrize("size", [16 * 5 + 7, 16 * 5, 0])
def test_segmented_extension_fails(size: int) -> None:
    """Appending a segment (a copy, another object's, or a fresh non-last one) fails."""
    obj, plaintext, body = small_object(size=size)
    parts = segments(body, 16)
    n = len(parts)
    assert obj.envelope.salt is not None
    assert obj.envelope.nonce_prefix is not None
    # A genuine non-final segment at index n, as if the writer had gone on.
    more = ciphers.SegmentedEncryptor(
        obj.material.key,
        obj.envelope.salt,
        obj.envelope.nonce_prefix,
        16,
        segment_aad(obj.envelope),
        first_segment=n,
        final=False,
    )
    fresh = run(more, bytes(16))
    extras = [parts[-1], parts[0], fresh, bytes(16), bytes(32), fresh[:20]]
    for extra in extras:
        assert rejects(obj, body + extra)  # the store reports the longer length
        assert rejects(obj, body + extra, length=len(body))  # more bytes than announced
        assert rejects(obj, body + extra, length=len(body), sizes=1)


def test_segmented_every_byte_flip_fails() -> None:
    """Flipping any bit of any byte of the body fails."""
    obj, plaintext, body = small_object()
    for pos in range(len(body)):
        for bit in (0x01, 0x80):
            tampered = bytearray(body)
            tampered[pos] ^= bit
            assert rejects(obj, bytes(tampered)), pos


def test_segmented_byte_flip_fails_ranged_reads() -> None:
    """A ranged read over a tampered segment fails; a read of untouched segments succeeds."""
    obj, plaintext, body = small_object(100, 1000)
    tampered = bytearray(body)
    tampered[3 * 116 + 5] ^= 1  # inside segment 3 (plaintext 300..399)
    assert_auth_failure(obj.read_range, bytes(tampered), 250, 350)
    assert_auth_failure(obj.read_range, bytes(tampered), 300, 300)
    assert obj.read_range(bytes(tampered), 0, 299)[0] == plaintext[:300]
    assert obj.read_range(bytes(tampered), 400, 999)[0] == plaintext[400:]


def test_segmented_ranged_read_checks_segment_positions() -> None:
    """Serving the wrong segments to a range decryptor, or too few or too many, fails."""
    obj, plaintext, body = small_object(100, 1000)
    parts = segments(body, 100)
    plan = obj.codec.plan_range(obj.envelope, len(body), 250, 350)  # segments 2..3
    dec = obj.codec.range_decryptor(obj.material, obj.envelope, len(body), plan)
    assert_auth_failure(run, dec, parts[4] + parts[5])  # other segments
    dec = obj.codec.range_decryptor(obj.material, obj.envelope, len(body), plan)
    assert_auth_failure(run, dec, parts[2])  # too few
    dec = obj.codec.range_decryptor(obj.material, obj.envelope, len(body), plan)
    assert_auth_failure(run, dec, parts[2] + parts[3][:50])  # cut short
    dec = obj.codec.range_decryptor(obj.material, obj.envelope, len(body), plan)
    assert_auth_failure(run, dec, parts[2] + parts[3] + parts[4])  # too many
    last = obj.codec.plan_range(obj.envelope, len(body), 950, 999)
    dec = obj.codec.range_decryptor(obj.material, obj.envelope, len(body), last)
    assert_auth_failure(run, dec, parts[8])  # a non-last segment where the last is expected


def test_segmented_releases_only_verified_segments() -> None:
    """Before a bad segment fails, the decryptor has released exactly the segments before it."""
    obj, plaintext, body = small_object(100, 1000)
    tampered = bytearray(body)
    tampered[4 * 116 + 50] ^= 1
    dec = obj.codec.decryptor(obj.material, obj.envelope, len(body))
    out = bytearray(dec.output_size(7))
    released = b""
    failed = False
    try:
        for i in range(0, len(tampered), 7):
            n = dec.update_into(tampered[i : i + 7], out)
            released += bytes(out[:n])
        dec.finalize()
    except DecryptionError:
        failed = True
    assert failed
    assert released == plaintext[:400]


def test_segmented_metadata_is_bound() -> None:
    """Changing the context, segment size, nonce prefix, salt or commitment of the envelope fails."""
    obj, plaintext, body = small_object(size=16 * 6)
    env = obj.envelope
    variants = [
        env.model_copy(update={"encryption_context": {"bucket": "b", "key": "other"}}),
        env.model_copy(update={"encryption_context": {}}),
        env.model_copy(update={"segment_size": 17}),
        env.model_copy(update={"nonce_prefix": os.urandom(7)}),
        env.model_copy(update={"salt": os.urandom(32)}),
        env.model_copy(update={"commitment": bytes(32)}),
    ]
    for variant in variants:
        assert rejects(Obj(obj.codec, variant, obj.material), body), variant
    assert rejects(Obj(obj.codec, env, ContentMaterial(os.urandom(32))), body)  # wrong key


def test_segmented_commitment_checked_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong key fails in the decryptor's constructor, through hmac.compare_digest."""
    obj, plaintext, body = small_object()
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(ciphers.hmac, "compare_digest", spy)
    assert_auth_failure(obj.codec.decryptor, ContentMaterial(os.urandom(32)), obj.envelope, len(body))
    assert compared == [obj.envelope.commitment]
    plan = obj.codec.plan_range(obj.envelope, len(body), 0, 0)
    wrong = ContentMaterial(os.urandom(32))
    assert_auth_failure(obj.codec.range_decryptor, wrong, obj.envelope, len(body), plan)


@pytest.mark.parametrize("segment_size", [16, 17, 100])
def test_segmented_length_formulas(segment_size: int) -> None:
    """A ciphertext length is valid iff some plaintext has it; the two formulas are inverse."""
    valid = {ciphers.segmented_ciphertext_length(p, segment_size): p for p in range(0, 20 * segment_size)}
    for ct_len in range(0, max(valid)):
        if ct_len in valid:
            assert ciphers.segmented_plaintext_length(ct_len, segment_size) == valid[ct_len]
        else:
            with pytest.raises(ValueError):
                ciphers.segmented_plaintext_length(ct_len, segment_size)


@PROPERTY
@given(data=st.data())
def test_segmented_parts_concatenate(data: st.DataObject) -> None:
    """Parts encrypted independently at segment boundaries (multipart) concatenate to the whole body."""
    segment_size = data.draw(st.sampled_from([16, 100, 4096]), label="segment_size")
    size = data.draw(st.integers(0, 200_000), label="size")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    plaintext = rng.randbytes(size)
    obj = make(ContentAlgorithm.CSE_V1, segment_size)
    assert obj.codec.part_alignment(obj.envelope) == segment_size
    cuts = data.draw(st.lists(st.integers(1, max(1, size - 1)), max_size=5), label="cuts")
    aligned = sorted({c - c % segment_size for c in cuts if 0 < c - c % segment_size < size})
    bounds = [0, *aligned, size]
    pieces = [
        run(
            obj.codec.encryptor(obj.material, obj.envelope, a, final=(b == size)),
            plaintext[a:b],
            random_chunks(rng, b - a),
        )
        for a, b in itertools.pairwise(bounds)
    ]
    body = b"".join(pieces)
    assert body == obj.encrypt(plaintext)
    assert obj.decrypt(body) == plaintext


def test_sequential_codecs_refuse_parts() -> None:
    """GCM bodies cannot be encrypted in parts; cse-v1 parts start on a segment boundary."""
    for algorithm in (ContentAlgorithm.AES_GCM, ContentAlgorithm.AES_GCM_COMMITTING):
        obj = make(algorithm)
        assert obj.codec.part_alignment(obj.envelope) == 0
        with pytest.raises(ConfigurationError):
            obj.codec.encryptor(obj.material, obj.envelope, 16)
        with pytest.raises(ConfigurationError):
            obj.codec.encryptor(obj.material, obj.envelope, final=False)
    obj = make(ContentAlgorithm.CSE_V1, 16)
    with pytest.raises(ConfigurationError):
        obj.codec.encryptor(obj.material, obj.envelope, 8)
    enc = obj.codec.encryptor(obj.material, obj.envelope, 0, final=False)
    with pytest.raises(ValueError, match="whole segments"):
        run(enc, bytes(20))


def test_segment_nonce_layout() -> None:
    """prefix(7) || uint32_be(index) || last flag; at most 2**32 segments."""
    prefix = bytes(range(7))
    assert ciphers.segment_nonce(prefix, 0, False) == prefix + b"\x00\x00\x00\x00\x00"
    assert ciphers.segment_nonce(prefix, 0x01020304, True) == prefix + b"\x01\x02\x03\x04\x01"
    assert ciphers.segment_nonce(prefix, 2**32 - 1, True) == prefix + b"\xff\xff\xff\xff\x01"
    with pytest.raises(ValueError, match="2\\*\\*32"):
        ciphers.segment_nonce(prefix, 2**32, False)
