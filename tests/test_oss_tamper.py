"""Corruption and tampering of encrypted objects on the OSS emulator, with exact expectations.

* A truncated body is caught by the recorded plaintext length (``unencrypted-content-length``).
* Damaged encryption headers are :class:`MetadataError` / :class:`NoMatchingKeyError` /
  :class:`DecryptionError` naming what is wrong, never plaintext or key material.
* A body changed at rest: ``oss-v2`` (AES-CTR) has no integrity, the server recomputes the CRC-64, and the
  flipped ciphertext byte decrypts to exactly that plaintext byte flipped (a documented limitation, shared
  by oss2). The same change on a ``cse-v1`` object is an authentication failure.
* A body corrupted in transit fails the CRC-64 check; ``download_file`` leaves no file.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

oss2 = pytest.importorskip("oss2")

from cse_oss.store import OssStore  # noqa: E402

from cse.client import EncryptionClient  # noqa: E402
from cse.config import TransferConfig  # noqa: E402
from cse.exceptions import (  # noqa: E402
    AUTHENTICATION_FAILED,
    DecryptionError,
    MetadataError,
    NoMatchingKeyError,
    StoreError,
)
from tests.conftest import OSS_AK, OSS_REGION, OSS_SECRET, oss2_bucket  # noqa: E402

# oss2 logs with the deprecated Logger.warn when a plain Bucket (cse's store) reads an encrypted object.
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

KiB = 1024
META = "x-oss-meta-client-side-encryption-"
#: Recognisable plaintext, so that a leak into a message would show.
PLAINTEXT = (b"TOP-SECRET-PLAINTEXT-" * 200)[:4000]
MULTIPART = TransferConfig(multipart_threshold=256 * KiB, part_size=100 * KiB)


@pytest.fixture
def store(oss_emulator: Any, oss_bucket_name: str) -> OssStore:
    """A cse store on a fresh emulator bucket."""
    return OssStore(oss2_bucket(oss_emulator, oss_bucket_name))


@pytest.fixture
def client(key_a: str) -> Iterator[EncryptionClient]:
    """A cse client writing ``oss-v2`` with RSA key a."""
    with EncryptionClient(key_a, format="oss-v2", config=MULTIPART) as c:
        yield c


def _secrets(client: EncryptionClient, ref: tuple[OssStore, str]) -> list[str]:
    """Spellings of the object's content key, IV and plaintext that must never appear in a message."""
    material = client.unwrap(client.head(ref).envelope)
    out = [PLAINTEXT[:21].decode(), "TOP-SECRET"]
    for secret in (material.key, material.iv or b""):
        out += [secret.hex(), base64.b64encode(secret).decode(), repr(secret)[2:-1]]
    return out


def _assert_clean(message: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in message, f"the message leaks {secret!r}: {message}"


# ---------------------------------------------------------------------------------------------- truncation


@pytest.mark.parametrize(("size", "keep"), [(4000, 3999), (4000, 2048), (4000, 0), (700 * KiB, 300 * KiB)])
def test_truncated_object_is_caught_by_the_plaintext_length(
    client: EncryptionClient,
    store: OssStore,
    oss_emulator: Any,
    oss_bucket_name: str,
    tmp_path: Path,
    size: int,
    keep: int,
) -> None:
    """A body cut short at rest (the server's CRC-64 recomputed) does not match the recorded
    ``unencrypted-content-length``: ``get`` raises MetadataError saying both lengths, and ``download_file``
    raises the same and leaves no file, not even a partial one."""
    data = (PLAINTEXT * (size // len(PLAINTEXT) + 1))[:size]
    result = client.put((store, "obj"), data)
    assert result.parts == (0 if size < 256 * KiB else 7)
    ref = (store, "obj")
    secrets = _secrets(client, ref)
    assert oss_emulator.get_object_metadata(oss_bucket_name, "obj")[
        META + "unencrypted-content-length"
    ] == str(size)
    oss_emulator.truncate_object(oss_bucket_name, "obj", keep)
    with pytest.raises(MetadataError, match=f"plaintext length of {size} bytes.*holds {keep}") as info:
        client.get(ref)
    _assert_clean(str(info.value), secrets)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(MetadataError, match=f"plaintext length of {size} bytes"):
        client.download_file(ref, out / "plain.bin")
    assert list(out.iterdir()) == []
    with pytest.raises(MetadataError):
        client.get(ref, range="0-9")


def _oss2_rsa_bucket(emulator: Any, bucket: str, key_uri: str) -> Any:
    """An oss2 CryptoBucket with RsaProvider on the key pair behind ``key_uri`` (``a.pem``/``a.pub.pem``)."""
    private = Path(key_uri.removeprefix("rsa://"))
    pems = {
        "private_key": private.read_text(),
        "public_key": private.with_name(private.stem + ".pub.pem").read_text(),
    }
    return oss2.CryptoBucket(
        oss2.AuthV4(OSS_AK, OSS_SECRET),
        emulator.endpoint,
        bucket,
        crypto_provider=oss2.crypto.RsaProvider(key_pair=pems),
        region=OSS_REGION,
    )


def test_truncated_oss2_multipart_object_is_caught_by_data_size(
    key_a: str, store: OssStore, oss_emulator: Any, oss_bucket_name: str, tmp_path: Path
) -> None:
    """oss2's ``resumable_upload`` records the plaintext size only as ``data-size`` (no
    ``unencrypted-content-length``). A truncated such object fails like a cse-written one."""
    size = 300 * KiB + 5
    data = os.urandom(size)
    source = tmp_path / "src.bin"
    source.write_bytes(data)
    oss2.resumable_upload(
        _oss2_rsa_bucket(oss_emulator, oss_bucket_name, key_a),
        "mp",
        str(source),
        store=oss2.ResumableStore(root=str(tmp_path / "checkpoints")),
        multipart_threshold=100 * KiB,
        part_size=100 * KiB,
    )
    meta = oss_emulator.get_object_metadata(oss_bucket_name, "mp")
    assert meta[META + "data-size"] == str(size)
    assert META + "unencrypted-content-length" not in meta
    oss_emulator.truncate_object(oss_bucket_name, "mp", 200 * KiB)
    with EncryptionClient(key_a) as client, pytest.raises(MetadataError, match="data size is 307205 bytes"):
        client.get((store, "mp"))


# ------------------------------------------------------------------------------------------------ headers


def _drop(field: str) -> Callable[[dict[str, str]], None]:
    def mutate(meta: dict[str, str]) -> None:
        del meta[META + field]

    return mutate


def _set(field: str, value: Callable[[str], str]) -> Callable[[dict[str, str]], None]:
    def mutate(meta: dict[str, str]) -> None:
        meta[META + field] = value(meta.get(META + field, ""))

    return mutate


def _swap(meta: dict[str, str]) -> None:
    meta[META + "key"], meta[META + "start"] = meta[META + "start"], meta[META + "key"]


def _drop_all(meta: dict[str, str]) -> None:
    for name in [n for n in meta if n.startswith(META)]:
        del meta[name]


HEADER_CASES: dict[str, tuple[Callable[[dict[str, str]], None], type[DecryptionError], str]] = {
    "no-key": (_drop("key"), MetadataError, "'client-side-encryption-key'"),
    "no-start": (_drop("start"), MetadataError, "'client-side-encryption-start'"),
    "no-cek-alg": (_drop("cek-alg"), MetadataError, "'client-side-encryption-cek-alg'"),
    "no-wrap-alg": (_drop("wrap-alg"), MetadataError, "'client-side-encryption-wrap-alg'"),
    "key-bad-base64": (_set("key", lambda v: "*" + v[1:]), MetadataError, "'client-side-encryption-key'"),
    "start-bad-base64": (_set("start", lambda v: v[1:]), MetadataError, "'client-side-encryption-start'"),
    "unknown-wrap-alg": (
        _set("wrap-alg", lambda v: "RSA/ECB/OAEPWithSHA-256AndMGF1Padding"),
        MetadataError,
        "'client-side-encryption-wrap-alg' is 'RSA/ECB/OAEPWithSHA-256AndMGF1Padding'",
    ),
    "gcm-cek-alg": (
        _set("cek-alg", lambda v: "AES/GCM/NoPadding"),
        MetadataError,
        "'client-side-encryption-cek-alg' is 'AES/GCM/NoPadding'",
    ),
    "length-not-decimal": (
        _set("unencrypted-content-length", lambda v: "4e3"),
        MetadataError,
        "'client-side-encryption-unencrypted-content-length'",
    ),
    "wrong-matdesc": (
        _set("matdesc", lambda v: '{"owner":"mallory"}'),
        NoMatchingKeyError,
        "mallory",
    ),
    "no-encryption-headers": (_drop_all, MetadataError, "no encryption metadata that cse recognises"),
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_damaged_headers_are_named(
    case: str,
    client: EncryptionClient,
    store: OssStore,
    oss_emulator: Any,
    oss_bucket_name: str,
    tmp_path: Path,
) -> None:
    """Each damaged or removed header (emulator ``replace_metadata``) raises the precise error naming the
    field (or, for a material description no key has, what the object asks for), from ``get``, ``head``-
    based reads and ``download_file`` alike; the message holds no plaintext, content key or IV, and no file
    is written."""
    mutate, error, match = HEADER_CASES[case]
    ref = (store, "obj")
    client.put(ref, PLAINTEXT)
    secrets = _secrets(client, ref)
    meta = oss_emulator.get_object_metadata(oss_bucket_name, "obj")
    mutate(meta)
    oss_emulator.replace_metadata(oss_bucket_name, "obj", meta)
    with pytest.raises(error) as info:
        client.get(ref)
    assert type(info.value) is error
    assert match in str(info.value), str(info.value)
    _assert_clean(str(info.value), secrets)
    with pytest.raises(error):
        client.download_file(ref, tmp_path / "plain.bin")
    assert list(tmp_path.iterdir()) == []


def test_key_and_start_swapped_is_an_opaque_authentication_failure(
    client: EncryptionClient, store: OssStore, oss_emulator: Any, oss_bucket_name: str
) -> None:
    """Swapping the wrapped key and the wrapped IV: both unwrap, but to secrets of the wrong length, so the
    read is the one opaque DecryptionError (no hint, no secret)."""
    ref = (store, "obj")
    client.put(ref, PLAINTEXT)
    secrets = _secrets(client, ref)
    meta = oss_emulator.get_object_metadata(oss_bucket_name, "obj")
    _swap(meta)
    oss_emulator.replace_metadata(oss_bucket_name, "obj", meta)
    with pytest.raises(DecryptionError) as info:
        client.get(ref)
    assert type(info.value) is DecryptionError and str(info.value) == AUTHENTICATION_FAILED
    _assert_clean(str(info.value), secrets)


def test_wrong_rsa_key_is_an_opaque_authentication_failure(
    client: EncryptionClient, store: OssStore, key_b: str
) -> None:
    """An object without a material description read with another RSA key: key b is tried (nothing
    rules it out) and its PKCS#1 v1.5 unwrap fails; the error is the opaque DecryptionError."""
    ref = (store, "obj")
    client.put(ref, PLAINTEXT)
    secrets = _secrets(client, ref)
    with EncryptionClient(key_b) as other, pytest.raises(DecryptionError) as info:
        other.get(ref)
    assert type(info.value) is DecryptionError and str(info.value) == AUTHENTICATION_FAILED
    _assert_clean(str(info.value), secrets)


# --------------------------------------------------------------------------------------- changes at rest


@pytest.mark.parametrize(
    ("size", "offset"), [(1, 0), (4000, 0), (4000, 1234), (4000, 3999), (700 * KiB + 3, 400 * KiB + 5)]
)
@pytest.mark.parametrize("writer", ["oss2", "cse"])
def test_oss_v2_change_at_rest_flips_exactly_that_plaintext_byte(
    client: EncryptionClient,
    store: OssStore,
    oss_emulator: Any,
    oss_bucket_name: str,
    key_a: str,
    tmp_path: Path,
    size: int,
    offset: int,
    writer: str,
) -> None:
    """Documented limitation of ``oss-v2``: AES-CTR has no integrity and the server recomputes the CRC-64 of
    what it stores, so a byte changed at rest passes the CRC check. An object without cse's plaintext MAC
    (written by oss2) reads, like oss2 reads it, with exactly that byte XORed by the same mask, whole, ranged
    and through ``download_file``. An object cse wrote carries the MAC: whole reads (``get``,
    ``download_file``) refuse it with the opaque DecryptionError and leave no file; ranged reads still flip
    the byte (a range is not covered by the MAC)."""
    data = (PLAINTEXT * (size // len(PLAINTEXT) + 1))[:size]
    ref = (store, "obj")
    bucket = _oss2_rsa_bucket(oss_emulator, oss_bucket_name, key_a)
    if writer == "cse":
        client.put(ref, data)
    else:
        bucket.put_object("obj", data)
    # cse writes the MAC on objects it puts in one request; multipart ones go without (docs/oss.md)
    has_mac = client.head(ref).envelope.plaintext_mac is not None
    assert has_mac == (writer == "cse" and size <= MULTIPART.multipart_threshold)
    xor = 0x5A
    oss_emulator.tamper_object(oss_bucket_name, "obj", offset, xor=xor)
    expected = bytearray(data)
    expected[offset] ^= xor
    target = tmp_path / "plain.bin"
    if has_mac:
        with pytest.raises(DecryptionError):
            client.get(ref)
        with pytest.raises(DecryptionError):
            client.download_file(ref, target)
        assert not target.exists()
    else:
        got = client.get(ref)  # no StoreError: the CRC-64 the server reports is that of the changed bytes
        assert got == bytes(expected)
        assert [i for i in range(size) if got[i] != data[i]] == [offset]
        client.download_file(ref, target)
        assert target.read_bytes() == bytes(expected)
    lo, hi = max(0, offset - 20), min(size - 1, offset + 20)
    if not has_mac or (lo, hi) != (0, size - 1):  # a range that is the whole object is a whole read
        assert client.get(ref, range=f"{lo}-{hi}") == bytes(expected[lo : hi + 1])
    # oss2's CryptoBucket (CRC checks on) is no wiser, and ignores cse's MAC header.
    assert bucket.get_object("obj").read() == bytes(expected)


@pytest.mark.parametrize(("size", "offset"), [(4000, 0), (4000, 2000), (4000, -1), (300 * KiB, 150 * KiB)])
def test_cse_v1_change_at_rest_is_an_authentication_failure(
    key_a: str,
    store: OssStore,
    oss_emulator: Any,
    oss_bucket_name: str,
    tmp_path: Path,
    size: int,
    offset: int,
) -> None:
    """The same at-rest change on a ``cse-v1`` object in the same OSS store raises the opaque
    DecryptionError from ``get``, ``open().read()`` and ``download_file``: no plaintext is returned and no
    file is left."""
    data = (PLAINTEXT * (size // len(PLAINTEXT) + 1))[:size]
    ref = (store, "obj")
    with EncryptionClient(key_a, format="cse-v1", config=MULTIPART) as client:
        result = client.put(ref, data)
        assert result.envelope.format == "cse-v1"
        assert client.get(ref) == data
        stored = len(oss_emulator.get_object_bytes(oss_bucket_name, "obj"))
        oss_emulator.tamper_object(oss_bucket_name, "obj", offset % stored)
        with pytest.raises(DecryptionError) as info:
            client.get(ref)
        assert type(info.value) is DecryptionError and str(info.value) == AUTHENTICATION_FAILED
        with pytest.raises(DecryptionError), client.open(ref) as reader:
            reader.read()
        with pytest.raises(DecryptionError):
            client.download_file(ref, tmp_path / "plain.bin")
        assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------------------------- in transit


@pytest.mark.parametrize("offset", [0, 100 * KiB + 17, 700 * KiB + 2])
def test_multipart_corrupted_in_transit_fails_crc64_and_leaves_no_file(
    client: EncryptionClient,
    store: OssStore,
    oss_emulator: Any,
    oss_bucket_name: str,
    tmp_path: Path,
    offset: int,
) -> None:
    """A multipart ``oss-v2`` object whose GET body is altered in transit: ``download_file`` raises a
    StoreError naming CRC-64 (the server's ``x-oss-hash-crc64ecma`` differs from the bytes received) and
    no file, partial or final, is left; the next download is clean."""
    size = 700 * KiB + 3
    data = os.urandom(size)
    ref = (store, "obj")
    assert client.put(ref, data).parts == 8
    oss_emulator.corrupt_next_get(oss_bucket_name, "obj", offset=offset)
    target = tmp_path / "plain.bin"
    with pytest.raises(StoreError, match="CRC-64") as info:
        client.download_file(ref, target)
    assert "x-oss-hash-crc64ecma" in str(info.value)
    assert list(tmp_path.iterdir()) == []
    client.download_file(ref, target)
    assert target.read_bytes() == data
