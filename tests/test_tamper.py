"""Tamper tests: every byte of a small object's body, and every metadata field changed, removed or swapped.

Every case must raise DecryptionError (or a subclass) and return no plaintext.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cse.client import EncryptionClient
from cse.config import TransferConfig
from cse.exceptions import DecryptionError
from cse.formats.native import METADATA_KEY
from cse.stores.memory import MemoryStore

PLAINTEXT = b"attack at dawn; " * 6 + b"tail"  # 100 bytes: several 32-byte segments


@pytest.fixture
def setup(
    key_a: str, key_b: str
) -> tuple[MemoryStore, EncryptionClient, dict[str, Any], dict[str, Any], bytes]:
    store = MemoryStore()
    client = EncryptionClient([key_a, key_b], config=TransferConfig(segment_size=32))
    client.put((store, "victim"), PLAINTEXT, encryption_context={"tenant": "alpha"})
    other = EncryptionClient([key_b], config=TransferConfig(segment_size=48))
    other.put((store, "other"), os.urandom(100), encryption_context={"tenant": "beta"})
    victim_doc = json.loads(store.head("victim").metadata[METADATA_KEY])
    other_doc = json.loads(store.head("other").metadata[METADATA_KEY])
    return store, client, victim_doc, other_doc, store.read_all("victim")


def _store_doc(store: MemoryStore, doc: dict[str, Any], body: bytes) -> None:
    store.put("victim", body, {METADATA_KEY: json.dumps(doc)})


def _assert_refused(client: EncryptionClient, store: MemoryStore, tmp_path: Path) -> None:
    with pytest.raises(DecryptionError):
        client.get((store, "victim"))
    target = tmp_path / "out.bin"
    with pytest.raises(DecryptionError):
        client.download_file((store, "victim"), target)
    assert not target.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out.bin")] == []
    with pytest.raises(DecryptionError):
        b"".join(client.iter_chunks((store, "victim")))


def test_untampered_object_decrypts(setup: Any) -> None:
    store, client, _, _, _ = setup
    assert client.get((store, "victim")) == PLAINTEXT


def test_every_body_byte_flipped(setup: Any, tmp_path: Path) -> None:
    store, client, doc, _, body = setup
    assert len(body) == len(PLAINTEXT) + 16 * 4
    for i in range(len(body)):
        for mask in (0x01, 0x80):
            tampered = bytearray(body)
            tampered[i] ^= mask
            _store_doc(store, doc, bytes(tampered))
            with pytest.raises(DecryptionError):
                client.get((store, "victim"))
    _store_doc(store, doc, bytes(tampered))
    _assert_refused(client, store, tmp_path)


@pytest.mark.parametrize(
    "cut",
    [
        lambda b: b[:-1],  # one byte short
        lambda b: b[:-16],  # last tag gone
        lambda b: b[:48],  # only the first segment
        lambda b: b[:96],  # the first two segments: a valid length, but no last segment
        lambda b: b + b[-48:],  # a segment appended
        lambda b: b[48:96] + b[:48] + b[96:],  # two segments swapped
        lambda b: b"",  # empty
    ],
)
def test_truncation_extension_and_reordering(
    setup: Any, cut: Callable[[bytes], bytes], tmp_path: Path
) -> None:
    store, client, doc, _, body = setup
    _store_doc(store, doc, cut(body))
    _assert_refused(client, store, tmp_path)


def test_body_swapped_with_another_objects(setup: Any, tmp_path: Path) -> None:
    store, client, doc, _, _ = setup
    _store_doc(store, doc, store.read_all("other"))
    _assert_refused(client, store, tmp_path)


def _fields(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = [(name,) for name in doc if name != "keys"]
    for name in doc["keys"][0]:
        paths.append(("keys", "0", name))
    return paths


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = doc
    for part in path:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any, remove: bool = False) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    node: Any = doc
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if remove:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def _changed(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, 0, -1, str(value)]
    if isinstance(value, str):
        import base64

        variants: list[Any] = [value + "x", "", value[:-4] if len(value) > 4 else "zz", 1]
        try:
            raw = bytearray(base64.b64decode(value, validate=True))
            if raw:
                raw[0] ^= 1
                variants.append(base64.b64encode(bytes(raw)).decode())
                raw[0] ^= 1
                raw[-1] ^= 0x80
                variants.append(base64.b64encode(bytes(raw)).decode())
        except ValueError:
            pass
        return variants
    if isinstance(value, dict):
        return [{**value, "extra": "1"}, {}, {k: v + "!" for k, v in value.items()}, [], "x"]
    return [None]


def test_every_metadata_field_changed(setup: Any, tmp_path: Path) -> None:
    store, client, doc, _, body = setup
    cases = 0
    for path in _fields(doc):
        for value in _changed(_get(doc, path)):
            if value == _get(doc, path):
                continue
            _store_doc(store, _set(doc, path, value), body)
            with pytest.raises(DecryptionError):
                client.get((store, "victim"))
            cases += 1
    assert cases >= 40


def test_every_metadata_field_removed(setup: Any, tmp_path: Path) -> None:
    store, client, doc, _, body = setup
    for path in _fields(doc):
        _store_doc(store, _set(doc, path, None, remove=True), body)
        with pytest.raises(DecryptionError):
            client.get((store, "victim"))
    store.put("victim", body, {})
    with pytest.raises(DecryptionError):
        client.get((store, "victim"))
    store.put("victim", body, {METADATA_KEY: "{not json"})
    _assert_refused(client, store, tmp_path)


def test_every_metadata_field_swapped_with_another_objects(setup: Any, tmp_path: Path) -> None:
    store, client, doc, other, body = setup
    swapped = 0
    for path in _fields(doc):
        theirs = _get(other, path) if path[0] != "keys" or len(other["keys"]) else None
        if theirs == _get(doc, path):
            continue  # same value in both objects: swapping changes nothing
        _store_doc(store, _set(doc, path, theirs), body)
        with pytest.raises(DecryptionError):
            client.get((store, "victim"))
        swapped += 1
    # salt, nonce prefix, commitment, segment size, context, and the wrapped key all differ.
    assert swapped >= 6
    _store_doc(store, other, body)
    _assert_refused(client, store, tmp_path)


def test_the_wrapped_key_list_swapped_and_a_second_key_added(setup: Any, key_b: str) -> None:
    store, client, doc, other, body = setup
    _store_doc(store, {**doc, "keys": other["keys"]}, body)
    with pytest.raises(DecryptionError):
        client.get((store, "victim"))
    _store_doc(store, {**doc, "keys": other["keys"] + doc["keys"]}, body)
    # The foreign key unwraps (client holds key b) but fails the commitment; the genuine one then opens.
    assert client.get((store, "victim")) == PLAINTEXT


def test_errors_carry_no_plaintext_or_key(setup: Any) -> None:
    store, client, doc, _, body = setup
    tampered = bytearray(body)
    tampered[5] ^= 1
    _store_doc(store, doc, bytes(tampered))
    with pytest.raises(DecryptionError) as info:
        client.get((store, "victim"))
    text = str(info.value) + repr(info.value)
    assert "attack" not in text
    material = client.unwrap(client.head((store, "victim")).envelope)
    assert material.key.hex() not in text
