"""The aes key provider (cse_rsa.aes): the KeyProvider conformance suite, then AES-specific behaviour."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import sys
import threading
from collections.abc import Collection, Mapping
from importlib import metadata
from pathlib import Path
from urllib.parse import quote

import cse_rsa
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cse_rsa import AesKey, AesKeyProvider, generate_aes_key

from cse import registry
from cse.envelope import ContentAlgorithm, WrapAlgorithm, WrappedKey
from cse.exceptions import (
    AUTHENTICATION_FAILED,
    ConfigurationError,
    DecryptionError,
    KeyMaterialError,
    KeyProviderError,
    MissingExtraError,
    NoMatchingKeyError,
)
from cse.providers import KeyProvider, KeyRequest
from cse.testing.providers import KeyProviderConformance

A = WrapAlgorithm
C = ContentAlgorithm
KEY_A = hashlib.sha256(b"aes provider test key a").digest()
KEY_B = hashlib.sha256(b"aes provider test key b").digest()


def _key_id(key: bytes) -> str:
    """The documented key id, computed independently."""
    return "sha256:" + hashlib.sha256(b"cse aes key id" + key).hexdigest()[:32]


def _req(
    content: str = C.AES_GCM, md: Mapping[str, str] | None = None, key_id: str | None = None
) -> KeyRequest:
    return KeyRequest(
        wrap_algorithm=A.AES_GCM,
        content_algorithm=content,
        material_description=dict(md or {}),
        key_id=key_id,
    )


def _opaque(info: pytest.ExceptionInfo[DecryptionError]) -> None:
    assert type(info.value) is DecryptionError
    assert str(info.value) == AUTHENTICATION_FAILED
    assert info.value.__cause__ is None


def _java_wrap(key: bytes, secret: bytes, content_algorithm: str, iv: bytes | None = None) -> bytes:
    """The Java S3EC AesKeyring's AES/GCM wrap, written out with pyca/cryptography alone."""
    iv = iv if iv is not None else os.urandom(12)
    return iv + AESGCM(key).encrypt(iv, secret, content_algorithm.encode("utf-8"))


@pytest.fixture
def key_files(tmp_path: Path) -> Path:
    """Key A in every accepted form, key B raw, and files that are not keys."""
    hex_a = KEY_A.hex()
    b64_a = base64.b64encode(KEY_A).decode()
    files: dict[str, bytes] = {
        "a.bin": KEY_A,
        "a.hex": hex_a.encode() + b"\n",
        "a.HEX": b"  " + hex_a.upper().encode() + b"\r\n",
        "a.b64": b64_a.encode() + b"\n",
        "a.nopad.b64": b64_a.rstrip("=").encode(),
        "a.url.b64": base64.urlsafe_b64encode(KEY_A) + b"\n",
        "b.bin": KEY_B,
        "empty.bin": b"",
        "short.bin": KEY_A[:31],
        "long.bin": KEY_A + b"\x00",
        "aes128.hex": b"TOPSECRET" + hashlib.sha256(b"x").hexdigest()[:23].encode(),  # 32 printable chars
        "password.txt": b"TOPSECRET-correct-horse-battery-",  # 32 printable characters
        "aes128.b64": base64.b64encode(b"TOPSECRET-16-byt"),
        "nothex.txt": b"TOPSECRET" + b"z" * 55,
        "huge.bin": b"TOPSECRET" * 1000,
        "latin1.txt": "TOPSECRET é".encode("latin-1") + bytes(40),
        "pem.txt": b"-----BEGIN PRIVATE KEY-----\nTOPSECRET\n-----END PRIVATE KEY-----\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


# -- the conformance suite -------------------------------------------------------------------------


class TestAesConformance(KeyProviderConformance):
    """Two keys (rotation), the first with a material description."""

    @pytest.fixture
    def provider(self) -> KeyProvider:
        return AesKeyProvider(
            [
                AesKey(KEY_A, material_description={"generation": "2", "owner": "ops"}),
                AesKey(KEY_B, material_description={"generation": "1"}),
            ]
        )

    @pytest.fixture
    def bindings(self) -> Mapping[str, Collection[str]]:
        """AES/GCM authenticates the content algorithm (it is the AAD), nothing else."""
        return {A.AES_GCM: frozenset({"content_algorithm"})}


class TestAesConformanceOneKeyNoDescription(KeyProviderConformance):
    """A single key without a material description, loaded from a URI."""

    @pytest.fixture
    def provider(self, key_files: Path) -> KeyProvider:
        return AesKeyProvider.from_uri(f"aes://{key_files / 'a.hex'}")

    @pytest.fixture
    def bindings(self) -> Mapping[str, Collection[str]]:
        """AES/GCM authenticates the content algorithm (it is the AAD), nothing else."""
        return {A.AES_GCM: frozenset({"content_algorithm"})}


# -- the wrap itself ------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [C.AES_GCM, C.AES_GCM_COMMITTING, C.CSE_V1, C.AES_CTR])
def test_wrap_is_java_aes_gcm(content: str) -> None:
    provider = AesKeyProvider(AesKey(KEY_A))
    secret = os.urandom(32)
    wrapped = provider.wrap(secret, _req(content))
    assert len(wrapped) == 12 + 32 + 16
    iv, body = wrapped[:12], wrapped[12:]
    assert AESGCM(KEY_A).decrypt(iv, body, content.encode("utf-8")) == secret
    assert provider.wrap(secret, _req(content))[:12] != iv  # a fresh IV every time
    # and the provider unwraps what the Java keyring writes
    assert provider.unwrap(_java_wrap(KEY_A, secret, content), _req(content)) == secret


def test_aad_is_the_content_algorithm() -> None:
    provider = AesKeyProvider(AesKey(KEY_A))
    secret = bytes(range(32))
    v2 = _java_wrap(KEY_A, secret, "AES/GCM/NoPadding")
    v3 = _java_wrap(KEY_A, secret, "115")
    assert provider.unwrap(v2, _req(C.AES_GCM)) == secret
    assert provider.unwrap(v3, _req(C.AES_GCM_COMMITTING)) == secret
    for wrapped, wrong in ((v2, C.AES_GCM_COMMITTING), (v3, C.AES_GCM), (v2, "AES/GCM/NoPaddinG")):
        with pytest.raises(DecryptionError) as info:
            provider.unwrap(wrapped, _req(wrong))
        _opaque(info)


@pytest.mark.parametrize("length", [0, 1, 12, 28, 29, 59, 61])
def test_truncated_or_odd_lengths_fail_opaquely(length: int) -> None:
    provider = AesKeyProvider(AesKey(KEY_A))
    wrapped = provider.wrap(bytes(32), _req())
    data = (wrapped + b"\x00")[:length]
    with pytest.raises(DecryptionError) as info:
        provider.unwrap(data, _req())
    _opaque(info)


def test_wrong_key_fails_opaquely() -> None:
    wrapped = AesKeyProvider(AesKey(KEY_B)).wrap(bytes(32), _req())
    with pytest.raises(DecryptionError) as info:
        AesKeyProvider(AesKey(KEY_A)).unwrap(wrapped, _req())
    _opaque(info)


def test_empty_secret_and_wrong_algorithm() -> None:
    provider = AesKeyProvider(AesKey(KEY_A))
    with pytest.raises(KeyProviderError, match="empty"):
        provider.wrap(b"", _req())
    rsa_request = KeyRequest(wrap_algorithm=A.RSA_OAEP_SHA1, content_algorithm=C.AES_GCM)
    with pytest.raises(ConfigurationError, match="does not implement the wrap algorithm 'RSA-OAEP-SHA1'"):
        provider.wrap(bytes(32), rsa_request)
    with pytest.raises(ConfigurationError, match="AES/GCM"):
        provider.unwrap(bytes(60), rsa_request)
    assert provider.wrap_algorithms == ("AES/GCM",)
    assert provider.unwrap_only_algorithms == ()
    assert provider.scheme == "aes"


def test_wrap_refuses_a_foreign_material_description() -> None:
    provider = AesKeyProvider(AesKey(KEY_A, material_description={"generation": "2"}))
    with pytest.raises(ConfigurationError, match='"generation":"1".*"generation":"2"'):
        provider.wrap(bytes(32), _req(md={"generation": "1"}))


# -- key ids and key files --------------------------------------------------------------------------


def test_key_id_is_documented() -> None:
    assert AesKey(KEY_A).key_id == _key_id(KEY_A)
    assert AesKeyProvider(AesKey(KEY_A)).key_id == _key_id(KEY_A)
    assert AesKey(KEY_A).key_id != AesKey(KEY_B).key_id
    assert AesKey(KEY_A).key_id != "sha256:" + hashlib.sha256(KEY_A).hexdigest()[:32]
    assert len(_key_id(KEY_A)) == len("sha256:") + 32


@pytest.mark.parametrize("name", ["a.bin", "a.hex", "a.HEX", "a.b64", "a.nopad.b64", "a.url.b64"])
def test_key_file_forms(key_files: Path, name: str) -> None:
    key = AesKey.from_file(key_files / name)
    assert key.key_id == _key_id(KEY_A)
    assert key.source == str(key_files / name)
    provider = AesKeyProvider.from_uri(f"aes://{key_files / name}")
    wrapped = provider.wrap(b"k" * 32, _req())
    assert AESGCM(KEY_A).decrypt(wrapped[:12], wrapped[12:], b"AES/GCM/NoPadding") == b"k" * 32


def test_key_from_bytes() -> None:
    assert AesKey.from_bytes(KEY_A.hex().encode()).key_id == _key_id(KEY_A)
    assert AesKey.from_bytes(base64.b64encode(KEY_A)).key_id == _key_id(KEY_A)
    assert AesKey.from_bytes(KEY_A).key_id == _key_id(KEY_A)
    with pytest.raises(KeyMaterialError, match="the AES key data is not an AES-256 key file"):
        AesKey.from_bytes(b"nope")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.bin", "is not an AES-256 key file"),
        ("short.bin", "is not an AES-256 key file"),
        ("long.bin", "is not an AES-256 key file"),
        ("aes128.hex", "32 printable characters"),
        ("password.txt", "32 printable characters"),
        ("aes128.b64", "is not an AES-256 key file"),
        ("nothex.txt", "is not an AES-256 key file"),
        ("huge.bin", "larger than 4 KiB"),
        ("latin1.txt", "is not an AES-256 key file"),
        ("pem.txt", "is not an AES-256 key file"),
    ],
)
def test_malformed_key_files(key_files: Path, name: str, message: str) -> None:
    path = key_files / name
    with pytest.raises(KeyMaterialError, match=message) as info:
        AesKeyProvider.from_uri(f"aes://{path}")
    text = str(info.value)
    assert text.startswith(f"key file {path} ")
    assert "TOPSECRET" not in text
    assert info.value.__cause__ is None
    assert "generate_aes_key" in text or "4 KiB" in text


def test_missing_and_unreadable_key_files(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "key.bin"
    with pytest.raises(KeyMaterialError) as info:
        AesKeyProvider.from_uri(f"aes://{path}")
    assert str(info.value) == (
        f"key file {path} does not exist; create one with cse_rsa.generate_aes_key({str(path)!r})"
    )
    with pytest.raises(KeyMaterialError, match="does not exist"):
        AesKeyProvider.from_uri(f"aes://{tmp_path / 'x.bin'}?also={path}")
    with pytest.raises(KeyMaterialError, match="cannot read key file"):
        AesKeyProvider.from_uri(f"aes://{tmp_path}")  # a directory


def test_aes_key_validation() -> None:
    with pytest.raises(KeyMaterialError, match="16 bytes; an AES-256 wrapping key is 32 bytes"):
        AesKey(bytes(16))
    with pytest.raises(KeyMaterialError, match="not str"):
        AesKey("0" * 32)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="strings"):
        AesKey(KEY_A, material_description={"k": 1})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="at least one"):
        AesKeyProvider([])
    with pytest.raises(ConfigurationError, match="AesKey objects"):
        AesKeyProvider([KEY_A])  # type: ignore[list-item]
    key = AesKey(KEY_A, material_description={"k": "v"})
    with pytest.raises(TypeError):
        key.material_description["k"] = "w"  # type: ignore[index]
    assert AesKey(bytearray(KEY_A)).key_id == _key_id(KEY_A)


def test_repr_never_shows_key_material(key_files: Path) -> None:
    provider = AesKeyProvider.from_uri(
        f"aes://{key_files / 'a.bin'}?desc=team=ops&also={key_files / 'b.bin'}"
    )
    texts = [
        repr(provider),
        str(provider),
        provider.describe(),
        repr(provider.keys[0]),
        repr(provider.keys[1]),
    ]
    for key in (KEY_A, KEY_B):
        spellings = [
            key.hex(),
            key.hex().upper(),
            base64.b64encode(key).decode().rstrip("="),
            repr(key)[2:-1],
        ]
        for text in texts:
            for spelling in spellings:
                assert spelling not in text
    assert provider.key_id in repr(provider)
    assert "team" in repr(provider)
    assert provider.describe() == (
        f"aes:{_key_id(KEY_A)} (256-bit AES key from {key_files / 'a.bin'}, and 1 more key)"
    )
    assert AesKeyProvider(AesKey(KEY_A)).describe() == f"aes:{_key_id(KEY_A)} (256-bit AES key)"


# -- rotation by material description ---------------------------------------------------------------


def test_rotation() -> None:
    old_md, new_md = {"generation": "1"}, {"generation": "2"}
    old = AesKeyProvider(AesKey(KEY_A, material_description=old_md))
    objects = {c: old.generate_data_key(_req(c, md=old_md)) for c in (C.AES_GCM, C.AES_GCM_COMMITTING)}

    rotated = AesKeyProvider(
        [AesKey(KEY_B, material_description=new_md), AesKey(KEY_A, material_description=old_md)]
    )
    assert rotated.key_id == _key_id(KEY_B)
    assert rotated.material_description == new_md
    for content, data_key in objects.items():
        assert data_key.key_id == _key_id(KEY_A)
        # S3 objects record no key id: the material description selects the old key
        assert rotated.unwrap(data_key.ciphertext, _req(content, md=old_md)) == data_key.plaintext
        # cse-v1 records the key id
        assert (
            rotated.unwrap(data_key.ciphertext, _req(content, md=old_md, key_id=data_key.key_id))
            == data_key.plaintext
        )
    wrapped = WrappedKey(wrap_algorithm=A.AES_GCM, ciphertext=b"x", material_description=old_md)
    assert rotated.can_unwrap(wrapped)
    assert rotated.can_unwrap(wrapped.model_copy(update={"provider": "aes"}))
    assert rotated.can_unwrap(WrappedKey(wrap_algorithm=A.AES_GCM, ciphertext=b"x", key_id=_key_id(KEY_A)))
    assert not rotated.can_unwrap(wrapped.model_copy(update={"material_description": {}}))
    assert not rotated.can_unwrap(wrapped.model_copy(update={"key_id": "sha256:" + "0" * 32}))
    assert not rotated.can_unwrap(wrapped.model_copy(update={"provider": "rsa"}))
    assert not rotated.can_unwrap(wrapped.model_copy(update={"wrap_algorithm": A.RSA_OAEP_SHA1}))

    new = rotated.generate_data_key(_req(md=new_md))
    assert new.key_id == _key_id(KEY_B)
    with pytest.raises(NoMatchingKeyError):  # the old provider lacks the new key
        old.unwrap(new.ciphertext, _req(md=new_md))
    with pytest.raises(NoMatchingKeyError, match="generation") as info:
        rotated.unwrap(new.ciphertext, _req(md={"generation": "3"}))
    assert rotated.key_id in str(info.value)
    assert "aes key provider" in str(info.value)
    with pytest.raises(NoMatchingKeyError, match="sha256:0+"):
        rotated.unwrap(new.ciphertext, _req(md=new_md, key_id="sha256:" + "0" * 32))


def test_rotation_through_a_uri(key_files: Path) -> None:
    old = AesKeyProvider.from_uri(f"aes://{key_files / 'a.hex'}?desc=generation=1")
    data_key = old.generate_data_key(_req(C.AES_GCM_COMMITTING, md={"generation": "1"}))
    rotated = AesKeyProvider.from_uri(
        f"aes://{key_files / 'b.bin'}?desc=generation=2&also={key_files / 'a.b64'}&desc=generation=1"
    )
    assert rotated.key_id == _key_id(KEY_B)
    request = _req(C.AES_GCM_COMMITTING, md={"generation": "1"})
    assert rotated.unwrap(data_key.ciphertext, request) == data_key.plaintext


def test_several_candidates_are_tried() -> None:
    provider = AesKeyProvider([AesKey(KEY_A), AesKey(KEY_B)])  # same (empty) material description
    data_key = AesKeyProvider(AesKey(KEY_B)).generate_data_key(_req())
    assert provider.unwrap(data_key.ciphertext, _req()) == data_key.plaintext
    damaged = data_key.ciphertext[:-1] + bytes([data_key.ciphertext[-1] ^ 1])
    with pytest.raises(DecryptionError) as info:
        provider.unwrap(damaged, _req())
    _opaque(info)


# -- key URIs ---------------------------------------------------------------------------------------


def test_uri_material_description_and_several_files(key_files: Path) -> None:
    md = quote(json.dumps({"generation": "2", "note": "a&b=c"}), safe="")
    uri = (
        f"aes://{key_files / 'b.bin'}?matdesc={md}&desc=team=ops"
        f"&also={key_files / 'a.hex'}&desc=generation=1&desc=x=y%3Dz"
    )
    provider = AesKeyProvider.from_uri(uri)
    assert [k.source for k in provider.keys] == [str(key_files / "b.bin"), str(key_files / "a.hex")]
    assert [k.key_id for k in provider.keys] == [_key_id(KEY_B), _key_id(KEY_A)]
    assert dict(provider.material_description) == {"generation": "2", "note": "a&b=c", "team": "ops"}
    assert dict(provider.keys[1].material_description) == {"generation": "1", "x": "y=z"}


def test_uri_localhost_and_percent_encoding(tmp_path: Path) -> None:
    spaced = tmp_path / "my keys"
    spaced.mkdir()
    (spaced / "k.bin").write_bytes(KEY_A)
    assert AesKeyProvider.from_uri(f"aes://localhost{quote(str(spaced / 'k.bin'))}").key_id == _key_id(KEY_A)
    assert AesKeyProvider.from_uri(f"aes://{spaced / 'k.bin'}").key_id == _key_id(KEY_A)
    assert AesKeyProvider.from_uri(f"AES://{spaced / 'k.bin'}").key_id == _key_id(KEY_A)


def test_uri_through_the_registry(key_files: Path) -> None:
    provider = registry.open_provider(f"aes://{key_files / 'a.bin'}")
    assert isinstance(provider, AesKeyProvider)
    assert "aes" in registry.available_providers()
    assert registry.provider_class("aes") is AesKeyProvider


def test_install_hint_names_the_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without cse-rsa installed, an aes key URI says what to install."""
    real = registry._entry_points

    def without_aes(group: str) -> dict[str, metadata.EntryPoint]:
        return {k: v for k, v in real(group).items() if k != "aes"}

    real_version = metadata.version

    def version(name: str) -> str:
        if name == "cse-rsa":
            raise metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(registry, "_entry_points", without_aes)
    monkeypatch.setattr(registry.metadata, "version", version)
    monkeypatch.setattr(registry, "_loaded", {group: {} for group in registry._loaded})
    with pytest.raises(MissingExtraError, match=r"needs the cse-rsa distribution.*pip install 'cse\[rsa\]'"):
        registry.open_provider("aes:///k.bin")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("aes://keys/key.bin", "host name"),
        ("aes:keys/key.bin", "not an absolute path"),
        ("aes://", "names no key file"),
        ("rsa:///k.bin", "not an aes key URI"),
        ("aes:///k.bin?colour=blue", "unknown parameter 'colour'.*aes key URIs take matdesc, desc, also"),
        ("aes:///k.bin?passphrase-env=PW", "unknown parameter 'passphrase-env'"),
        ("aes:///k.bin?also=relative.bin", "not an absolute path"),
        ("aes:///k.bin?matdesc=%7Bnot-json", "not JSON"),
        ("aes:///k.bin?matdesc=%5B%5D", "JSON object of strings"),
        ("aes:///k.bin?matdesc=%7B%22a%22%3A1%7D", "JSON object of strings"),
        ("aes:///k.bin?desc=novalue", "NAME=VALUE"),
        ("aes:///k.bin#frag", "fragment"),
        ("aes:///k.bin?&&", "malformed"),
    ],
)
def test_uri_errors(uri: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        AesKeyProvider.from_uri(uri)
    if "absolute" in message or "host" in message or "names no" in message:
        assert "aes:///absolute/path/key.bin" in str(info.value)


# -- generate_aes_key -------------------------------------------------------------------------------


def test_generate_aes_key(tmp_path: Path) -> None:
    path = tmp_path / "k.bin"
    key = generate_aes_key(path)
    data = path.read_bytes()
    assert len(data) == 32
    assert key.key_id == _key_id(data) == AesKey.from_file(path).key_id
    assert key.source == str(path)
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    with pytest.raises(ConfigurationError, match="already exists"):
        generate_aes_key(path)
    assert path.read_bytes() == data

    again = generate_aes_key(path, overwrite=True, material_description={"generation": "2"})
    assert again.key_id != key.key_id
    assert dict(again.material_description) == {"generation": "2"}
    assert AesKey.from_file(path).key_id == again.key_id
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k.bin"]  # no temporary file left behind

    with pytest.raises(KeyMaterialError, match="cannot write key file"):
        generate_aes_key(tmp_path / "missing" / "k.bin")
    with pytest.raises(KeyMaterialError, match="cannot write key file"):
        generate_aes_key(tmp_path / "missing" / "k.bin", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["k.bin"]


def test_generated_keys_work_end_to_end(tmp_path: Path) -> None:
    generate_aes_key(tmp_path / "k.bin")
    provider = AesKeyProvider.from_uri(f"aes://{tmp_path / 'k.bin'}")
    data_key = provider.generate_data_key(_req(C.AES_GCM_COMMITTING))
    assert provider.unwrap(data_key.ciphertext, _req(C.AES_GCM_COMMITTING)) == data_key.plaintext


# -- misc -------------------------------------------------------------------------------------------


def test_public_api() -> None:
    assert sorted(cse_rsa.__all__) == cse_rsa.__all__
    assert {"AesKey", "AesKeyProvider", "generate_aes_key"} <= set(cse_rsa.__all__)
    assert cse_rsa.AesKeyProvider is AesKeyProvider


def test_shared_key_across_threads() -> None:
    provider = AesKeyProvider(AesKey(KEY_A))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                for content in (C.AES_GCM, C.AES_GCM_COMMITTING):
                    dk = provider.generate_data_key(_req(content))
                    assert provider.unwrap(dk.ciphertext, _req(content)) == dk.plaintext
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
