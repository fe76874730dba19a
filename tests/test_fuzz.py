"""Fuzzing of everything cse reads back from a store or a disk: each format's metadata (S3 V1/V2/V3, S3
instruction files, OSS V1/V2, cse-v1), the bodies beside them, checkpoint files and migration journals.

The properties (hypothesis, a fixed number of examples per test, derandomized so CI is repeatable):

* only documented errors: whatever the damage, a read returns or raises a :class:`~cse.exceptions.CseError`;
* an authenticated format (S3 V2/V3, cse-v1) never returns wrong plaintext;
* nothing hangs (a deadline per example) and memory stays bounded: a huge length, count or size in the
  metadata is never allocated (the traced peak of each read stays under 32 MiB).

Format-level fuzzing of cse-v1 documents is in tests/test_native_format.py; this module goes end to end.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import tracemalloc
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cse import EncryptionClient, TransferConfig
from cse.exceptions import CseError
from cse.stores.base import GetResult, PartInfo
from cse.stores.memory import MemoryStore

pytest.importorskip("cse_s3")
pytest.importorskip("cse_oss")

FUZZ = settings(
    max_examples=int(os.environ.get("CSE_FUZZ_EXAMPLES", "30")),
    deadline=5000,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PEAK = 32 * 1024 * 1024
AUTHENTICATED = {"s3-v3", "s3-v2", "cse-v1"}
PLAINTEXT = bytes(range(256)) * 23 + b"tail"  # 5892 bytes: several AES blocks, two cse-v1 segments


def _reader(key: str) -> EncryptionClient:
    from cse.config import CommitmentPolicy

    return EncryptionClient(
        key,
        allow_legacy=True,
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT,
        config=TransferConfig(segment_size=4096),
    )


@cache
def _sample(fmt: str, key: str) -> tuple[dict[str, str], bytes]:
    """The stored metadata and body of an object of ``fmt`` holding PLAINTEXT."""
    store = MemoryStore()
    if fmt == "s3-v1":
        from tests.test_s3_formats import _v1_object

        _v1_object(store, key, PLAINTEXT)
        name = "legacy.bin"
    elif fmt == "oss-v1":
        from Crypto.Cipher import PKCS1_OAEP
        from Crypto.PublicKey import RSA

        from tests.test_oss_legacy import _ctr

        cek, counter = os.urandom(32), 12345
        oaep = PKCS1_OAEP.new(
            RSA.importKey(Path(key.removeprefix("rsa://")).with_name("a.pub.pem").read_bytes())
        )
        metadata = {
            "oss-crypto-key": base64.b64encode(oaep.encrypt(cek)).decode(),
            "oss-crypto-start": base64.b64encode(oaep.encrypt(str(counter).encode())).decode(),
            "oss-cek-alg": "AES/GCM/NoPadding",
            "oss-wrap-alg": "rsa",
            "unencrypted-content-length": str(len(PLAINTEXT)),
        }
        store.put("v1", _ctr(cek, counter, PLAINTEXT), metadata)
        name = "v1"
    else:
        from cse.config import CommitmentPolicy

        extra: dict[str, Any] = (
            {"commitment_policy": CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT} if fmt == "s3-v2" else {}
        )
        writer = EncryptionClient(key, format=fmt, config=TransferConfig(segment_size=4096), **extra)
        writer.put((store, "k"), PLAINTEXT)
        name = "k"
    info = store.head(name)
    assert _reader(key).get((store, name)) == PLAINTEXT
    return dict(info.metadata), store.read_all(name)


HUGE = st.sampled_from(
    [
        "99999999999999999999999999",
        str(2**63),
        str(2**64 + 1),
        "-1",
        "1e308",
        "0",
        "NaN",
        "4294967296",
        "  7 ",
    ]
)
VALUES = st.one_of(
    st.text(max_size=40),
    HUGE,
    st.binary(max_size=96).map(lambda b: base64.b64encode(b).decode()),
    st.builds(lambda n: json.dumps({"x": n}), st.integers()),
)


@st.composite
def damaged(draw: st.DrawFn, metadata: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    """``metadata`` and ``body`` with one to three changes: a value replaced (by junk, a huge number, or
    the original with one character changed) or removed, an entry added, or the body cut, extended or
    flipped."""
    meta, data = dict(metadata), bytearray(body)
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["replace", "replace", "tweak", "remove", "add", "body"]))
        name = draw(st.sampled_from(sorted(meta))) if meta else "x"
        if what == "replace":
            meta[name] = draw(VALUES)
        elif what == "tweak" and meta.get(name):
            value = meta[name]
            at = draw(st.integers(0, len(value) - 1))
            meta[name] = value[:at] + draw(st.characters(codec="ascii")) + value[at + 1 :]
        elif what == "remove":
            meta.pop(name, None)
        elif what == "add":
            meta[draw(st.sampled_from([*metadata, "x-amz-tag-len", "client-side-encryption-part-size"]))] = (
                draw(VALUES)
            )
        elif what == "body" and data:
            cut = draw(st.sampled_from(["truncate", "extend", "flip"]))
            at = draw(st.integers(0, len(data) - 1))
            if cut == "truncate":
                del data[at:]
            elif cut == "extend":
                data += draw(st.binary(min_size=1, max_size=64))
            else:
                data[at] ^= 1 << draw(st.integers(0, 7))
    return meta, bytes(data)


def _bounded(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; fail if it allocated more than PEAK at once."""
    tracemalloc.start()
    try:
        return fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < PEAK, f"a read allocated {peak} bytes"


@pytest.mark.parametrize("fmt", ["s3-v3", "s3-v2", "s3-v1", "oss-v2", "oss-v1", "cse-v1"])
@FUZZ
@given(data=st.data())
def test_damaged_objects_raise_only_documented_errors(fmt: str, key_a: str, data: st.DataObject) -> None:
    metadata, body = _sample(fmt, key_a)
    meta, stored = data.draw(damaged(metadata, body))
    store = MemoryStore()
    store.put("obj", stored, meta)
    client = _reader(key_a)
    ranged = EncryptionClient(key_a, allow_legacy=True, allow_unauthenticated_ranges=True)
    errors: list[str] = []
    reads = [
        (lambda: client.get((store, "obj")), PLAINTEXT, fmt in AUTHENTICATED),
        # Ranges of S3 V2/V3 objects are read unauthenticated (the opt-in): only cse-v1's are checked.
        (lambda: ranged.get((store, "obj"), range=(100, 4999)), PLAINTEXT[100:5000], fmt == "cse-v1"),
    ]
    for read, expected, authenticated in reads:
        try:
            got = _bounded(read)
        except CseError as exc:
            errors.append(str(exc))
            continue
        if authenticated:
            assert got == expected, "an authenticated read returned wrong plaintext"
    assert not any("tail" in message for message in errors)  # no plaintext in messages


# ------------------------------------------------------------------------------ S3 instruction files


@pytest.mark.parametrize("fmt", ["s3-v3", "s3-v2"])
@FUZZ
@given(data=st.data())
def test_damaged_instruction_files_raise_only_documented_errors(
    fmt: str, key_a: str, data: st.DataObject
) -> None:
    """The key material of an instruction file, damaged (values, names, JSON syntax), then merged with the
    object's own metadata as the S3 store does: decoding and reading raise only cse errors, and never
    return wrong plaintext."""
    from cse_s3.instruction import merge_instruction_file, parse_instruction_file, split_for_instruction_file

    metadata, body = _sample(fmt, key_a)
    own, instruction = split_for_instruction_file(metadata)
    fields, _ = data.draw(damaged(instruction, b""))
    text = json.dumps(fields)
    if data.draw(st.booleans()):  # damage the JSON itself
        at = data.draw(st.integers(0, len(text)))
        text = (
            text[:at] + data.draw(st.sampled_from(["", "}", "{", '"', ",", "\\u0000", "[]"])) + text[at + 1 :]
        )
    try:
        parsed = parse_instruction_file(text.encode(), "s3://b/k.instruction")
        merged = merge_instruction_file(own, parsed, "s3://b/k")
    except CseError:
        return
    store = MemoryStore()
    store.put("obj", body, merged)
    try:
        got = _bounded(lambda: _reader(key_a).get((store, "obj")))
    except CseError:
        return
    assert got == PLAINTEXT


# ----------------------------------------------------------------------------- checkpoints


class _FailOnce(MemoryStore):
    """Fails the upload of part 3 and every ranged read past the second, until ``healed``."""

    def __init__(self) -> None:
        super().__init__()
        self.healed = False
        self.gets = 0

    def upload_part(
        self, key: str, upload_id: str, part_number: int, data: Any, headers: Any = None
    ) -> PartInfo:
        if not self.healed and part_number == 3:
            from cse.exceptions import StoreError

            raise StoreError("injected")
        return super().upload_part(key, upload_id, part_number, data, headers)

    def get(self, key: str, start: int = 0, end: int | None = None) -> GetResult:
        self.gets += 1
        if not self.healed and self.gets > 3:
            from cse.exceptions import StoreError

            raise StoreError("injected")
        return super().get(key, start, end)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=5,
)
CONFIG = TransferConfig(multipart_threshold=0, part_size=16 * 1024, segment_size=4096, max_concurrency=1)


DAMAGE = st.tuples(
    st.sampled_from(["field", "field", "remove", "bytes"]),
    st.integers(0, 1 << 20),  # which field, or which byte (modulo what the file has)
    JSON_VALUES,
    st.integers(0, 255),
)


def _damage_json(plan: tuple[str, int, Any, int], path: Path) -> None:
    """Apply a damage drawn beforehand (so that the draws never depend on the file's contents)."""
    how, where, value, byte = plan
    text = path.read_text()
    if how == "bytes":
        raw = bytearray(text.encode())
        raw[where % len(raw)] = byte
        path.write_bytes(bytes(raw))
        return
    doc = json.loads(text)
    name = sorted(doc)[where % len(doc)]
    if how == "remove":
        del doc[name]
    else:
        doc[name] = value
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("fmt", ["cse-v1", "oss-v2"])
@settings(FUZZ, max_examples=max(20, FUZZ.max_examples // 3))
@given(up_damage=DAMAGE, down_damage=DAMAGE)
def test_damaged_checkpoints_resume_right_or_fail_clearly(
    fmt: str,
    key_a: str,
    tmp_path_factory: pytest.TempPathFactory,
    up_damage: tuple[str, int, Any, int],
    down_damage: tuple[str, int, Any, int],
) -> None:
    """A failed resumable upload and download, their checkpoints damaged, then run again: each either
    completes with the right bytes or raises a cse error. A run that completes leaves no unfinished upload
    of its own (a damaged checkpoint may no longer name the upload it was for: that one is left, and
    ``cse uploads`` lists it)."""
    tmp = tmp_path_factory.mktemp("ckpt")
    src = tmp / "src.bin"
    src.write_bytes(PLAINTEXT * 17)
    store = _FailOnce()
    client = EncryptionClient(key_a, format=fmt, config=CONFIG)
    up = tmp / "up.ckpt"
    with pytest.raises(CseError):
        client.upload_file(src, (store, "k"), checkpoint=up)
    _damage_json(up_damage, up)
    store.healed = True
    before = {u.upload_id for u in store.list_multipart_uploads()}
    try:
        _bounded(lambda: client.upload_file(src, (store, "k"), checkpoint=up))
    except CseError:
        return
    assert client.get((store, "k")) == src.read_bytes()
    assert {u.upload_id for u in store.list_multipart_uploads()} <= before

    store.healed, store.gets = False, 0
    dest, down = tmp / "dest.bin", tmp / "down.ckpt"
    with pytest.raises(CseError):
        client.download_file((store, "k"), dest, checkpoint=down)
    _damage_json(down_damage, down)
    store.healed = True
    try:
        _bounded(lambda: client.download_file((store, "k"), dest, checkpoint=down))
    except CseError:
        assert not dest.exists()
        return
    assert dest.read_bytes() == src.read_bytes()


# ---------------------------------------------------------------------------------- journals


@settings(FUZZ, max_examples=max(20, FUZZ.max_examples // 3))
@given(data=st.data())
def test_damaged_journals_resume_right_or_fail_clearly(
    key_a: str, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """A migration's journal with rows changed (states, sizes, ETags, SHA-256s set to anything) or its
    bytes damaged: the next run raises a cse error or finishes, and every destination object it reports
    copied or skipped reads back as its source."""
    from cse.migrate import migrate

    tmp = tmp_path_factory.mktemp("journal")
    src, dst = MemoryStore(), MemoryStore()
    writer = EncryptionClient(key_a)
    bodies = {f"p/{i}": os.urandom(500 + i) for i in range(4)}
    for name, body in bodies.items():
        writer.put((src, name), body)
    journal = tmp / "j.sqlite"
    assert migrate((src, "p/"), (dst, "p/"), keys=[key_a], journal=journal, workers=1).ok
    if data.draw(st.booleans()):
        with contextlib.closing(sqlite3.connect(journal)) as db:
            column = data.draw(
                st.sampled_from(["state", "size", "src_etag", "sha256", "dst_url", "attempts"])
            )
            value = data.draw(st.one_of(st.text(max_size=20), st.integers(-(2**63), 2**63 - 1), st.none()))
            with contextlib.suppress(sqlite3.IntegrityError):
                db.execute(
                    f"UPDATE objects SET {column} = ? WHERE rowid = ?", (value, data.draw(st.integers(1, 4)))
                )
                db.commit()
    else:
        with contextlib.closing(sqlite3.connect(journal)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw = bytearray(journal.read_bytes())
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, 1 << 30)) % len(raw)] = data.draw(st.integers(0, 255))
        journal.write_bytes(bytes(raw))
        for suffix in ("-wal", "-shm"):
            Path(str(journal) + suffix).unlink(missing_ok=True)
    try:
        summary = _bounded(
            lambda: migrate((src, "p/"), (dst, "p/"), keys=[key_a], journal=journal, workers=1)
        )
    except CseError:
        return
    reader = EncryptionClient(key_a)
    names = {src.url(name): name for name in bodies}
    for outcome in summary.objects:
        if outcome.state in ("copied", "skipped"):
            name = names[outcome.src_url]
            assert reader.get((dst, name)) == bodies[name]
