"""The rsa key provider (cse_rsa): the KeyProvider conformance suite, then RSA-specific behaviour."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import cse_rsa
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cse_rsa import RsaKey, RsaKeyProvider, generate_keypair

from cse.envelope import ContentAlgorithm, WrapAlgorithm, WrappedKey
from cse.exceptions import (
    AUTHENTICATION_FAILED,
    ConfigurationError,
    DecryptionError,
    KeyMaterialError,
    KeyProviderError,
    NoMatchingKeyError,
)
from cse.providers import KeyProvider, KeyRequest
from cse.testing.providers import KeyProviderConformance

A = WrapAlgorithm
C = ContentAlgorithm
PASSPHRASE = b"correct horse battery staple"
WRITABLE = (A.RSA_OAEP_SHA256, A.RSA_OAEP_SHA1, A.RSA_PKCS1)
SHA1_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


# -- keys, made once per session -------------------------------------------------------------------


@pytest.fixture(scope="session")
def rsa_a() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def rsa_b() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _private_pem(
    key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat, passphrase: bytes | None = None
) -> bytes:
    enc = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc)


def _public_pem(key: rsa.RSAPrivateKey, fmt: serialization.PublicFormat) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, fmt)


@pytest.fixture(scope="session")
def pems(
    tmp_path_factory: pytest.TempPathFactory, rsa_a: rsa.RSAPrivateKey, rsa_b: rsa.RSAPrivateKey
) -> Path:
    """PEM files of key a in every encoding, key b, and bad files."""
    d = tmp_path_factory.mktemp("rsa-pems")
    pk8, pk1 = serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL
    files = {
        "a.pkcs8.pem": _private_pem(rsa_a, pk8),
        "a.pkcs1.pem": _private_pem(rsa_a, pk1),
        "a.pkcs8.enc.pem": _private_pem(rsa_a, pk8, PASSPHRASE),
        "a.pkcs1.enc.pem": _private_pem(rsa_a, pk1, PASSPHRASE),
        "a.spki.pub.pem": _public_pem(rsa_a, serialization.PublicFormat.SubjectPublicKeyInfo),
        "a.pkcs1.pub.pem": _public_pem(rsa_a, serialization.PublicFormat.PKCS1),
        "b.pem": _private_pem(rsa_b, pk8),
        "b.pub.pem": _public_pem(rsa_b, serialization.PublicFormat.SubjectPublicKeyInfo),
        "small.pem": _private_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024), pk8),
        "ec.pem": ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, pk8, serialization.NoEncryption()
        ),
        "malformed.pem": (
            b"-----BEGIN RSA PRIVATE KEY-----\nTOPSECRETGARBAGE\n-----END RSA PRIVATE KEY-----\n"
        ),
        "not-pem.txt": b"TOPSECRET this is not a key at all\n",
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    return d


def _key_id(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()[:32]


def _req(wrap: str, content: str = C.CSE_V1, md: dict[str, str] | None = None, **kw: object) -> KeyRequest:
    return KeyRequest(wrap_algorithm=wrap, content_algorithm=content, material_description=md or {}, **kw)  # type: ignore[arg-type]


def _opaque(exc: pytest.ExceptionInfo[DecryptionError]) -> None:
    assert type(exc.value) is DecryptionError
    assert str(exc.value) == AUTHENTICATION_FAILED
    assert exc.value.__cause__ is None


# -- the conformance suite -------------------------------------------------------------------------


class TestRsaConformance(KeyProviderConformance):
    """Two keys (rotation), the first with a material description."""

    @pytest.fixture
    def provider(self, rsa_a: rsa.RSAPrivateKey, rsa_b: rsa.RSAPrivateKey) -> KeyProvider:
        return RsaKeyProvider(
            [
                RsaKey(rsa_a, material_description={"generation": "2", "owner": "ops"}),
                RsaKey(rsa_b, material_description={"generation": "1"}),
            ]
        )


class TestRsaConformanceSingleKey(KeyProviderConformance):
    """One key with an empty material description, loaded from a PKCS#1 file."""

    @pytest.fixture
    def provider(self, pems: Path) -> KeyProvider:
        return RsaKeyProvider.from_uri(f"rsa://{pems / 'a.pkcs1.pem'}")


def test_conformance_defaults_skip_unwrap_only(rsa_a: rsa.RSAPrivateKey) -> None:
    provider = RsaKeyProvider(RsaKey(rsa_a))
    assert provider.unwrap_only_algorithms == (A.RSA_OAEP_SHA1_OSS,)
    assert provider.wrap_algorithms == (A.RSA_OAEP_SHA256, A.RSA_OAEP_SHA1, A.RSA_PKCS1, A.RSA_OAEP_SHA1_OSS)
    assert KeyProvider.unwrap_only_algorithms == ()


# -- wrap algorithms -------------------------------------------------------------------------------


@pytest.mark.parametrize("wrap", WRITABLE)
@pytest.mark.parametrize("content", [C.CSE_V1, C.AES_GCM, C.AES_GCM_COMMITTING, C.AES_CTR])
@pytest.mark.parametrize("size", [16, 32])
def test_round_trip(rsa_a: rsa.RSAPrivateKey, wrap: str, content: str, size: int) -> None:
    provider = RsaKeyProvider(RsaKey(rsa_a, material_description={"k": "v"}))
    secret = os.urandom(size)
    request = _req(wrap, content, {"k": "v"})
    wrapped = provider.wrap(secret, request)
    assert len(wrapped) == 256
    assert provider.unwrap(wrapped, request) == secret
    assert provider.unwrap(wrapped, _req(wrap, content, {"k": "v"}, key_id=provider.key_id)) == secret


def test_oss_legacy_oaep_unwraps_and_refuses_wrap(rsa_a: rsa.RSAPrivateKey) -> None:
    provider = RsaKeyProvider(RsaKey(rsa_a))
    secret = os.urandom(32)
    wrapped = rsa_a.public_key().encrypt(secret, SHA1_OAEP)  # what oss2's LocalRsaProvider writes
    request = _req(A.RSA_OAEP_SHA1_OSS, C.AES_CTR)
    assert provider.unwrap(wrapped, request) == secret
    with pytest.raises(ConfigurationError, match="read-only legacy"):
        provider.wrap(secret, request)


def test_pkcs1_is_raw_pkcs1_v15(rsa_a: rsa.RSAPrivateKey) -> None:
    provider = RsaKeyProvider(RsaKey(rsa_a))
    secret = os.urandom(16)
    wrapped = provider.wrap(secret, _req(A.RSA_PKCS1, C.AES_CTR))
    assert rsa_a.decrypt(wrapped, padding.PKCS1v15()) == secret
    # and what oss2's RsaProvider writes unwraps
    theirs = rsa_a.public_key().encrypt(secret, padding.PKCS1v15())
    assert provider.unwrap(theirs, _req(A.RSA_PKCS1, C.AES_CTR)) == secret


def test_pkcs1_refuses_odd_lengths(rsa_a: rsa.RSAPrivateKey) -> None:
    provider = RsaKeyProvider(RsaKey(rsa_a))
    wrapped = rsa_a.public_key().encrypt(os.urandom(20), padding.PKCS1v15())
    with pytest.raises(DecryptionError) as info:
        provider.unwrap(wrapped, _req(A.RSA_PKCS1, C.AES_CTR))
    _opaque(info)


@pytest.mark.parametrize("content", [C.AES_GCM, C.AES_GCM_COMMITTING])
def test_s3_pseudo_key_layout(rsa_a: rsa.RSAPrivateKey, content: str) -> None:
    """Known answer: OAEP-SHA1 over len(key) || key || UTF-8(content algorithm), as the Java S3EC writes."""
    provider = RsaKeyProvider(RsaKey(rsa_a))
    key = bytes(range(32))
    wrapped = provider.wrap(key, _req(A.RSA_OAEP_SHA1, content))
    pseudo = rsa_a.decrypt(wrapped, SHA1_OAEP)
    assert pseudo == b"\x20" + key + content.encode("utf-8")
    assert pseudo[0] == 32
    assert pseudo[33:] == (b"AES/GCM/NoPadding" if content == C.AES_GCM else b"115")
    # and a pseudo-key made outside cse unwraps
    theirs = rsa_a.public_key().encrypt(b"\x20" + key + content.encode(), SHA1_OAEP)
    assert provider.unwrap(theirs, _req(A.RSA_OAEP_SHA1, content)) == key


@pytest.mark.parametrize(
    "pseudo",
    [
        b"\x21" + bytes(32) + b"115",  # length byte says 33
        b"\xff" + bytes(32) + b"115",  # length byte past the end
        b"\x00" + bytes(32) + b"115",  # empty key
        b"\x20" + bytes(32) + b"116",  # another content algorithm
        b"\x20" + bytes(32),  # no content algorithm
        b"",
    ],
)
def test_s3_pseudo_key_checks(rsa_a: rsa.RSAPrivateKey, pseudo: bytes) -> None:
    provider = RsaKeyProvider(RsaKey(rsa_a))
    wrapped = rsa_a.public_key().encrypt(pseudo, SHA1_OAEP)
    with pytest.raises(DecryptionError) as info:
        provider.unwrap(wrapped, _req(A.RSA_OAEP_SHA1, C.AES_GCM_COMMITTING))
    _opaque(info)


def test_s3_content_algorithm_mismatch(rsa_a: rsa.RSAPrivateKey) -> None:
    provider = RsaKeyProvider(RsaKey(rsa_a))
    wrapped = provider.wrap(os.urandom(32), _req(A.RSA_OAEP_SHA1, C.AES_GCM))
    with pytest.raises(DecryptionError) as info:
        provider.unwrap(wrapped, _req(A.RSA_OAEP_SHA1, C.AES_GCM_COMMITTING))
    _opaque(info)


def test_oaep_sha256_label_is_canonical_matdesc(rsa_a: rsa.RSAPrivateKey) -> None:
    md = {"zeta": "1", "alpha": "ü", "mid": 'q"uote'}
    provider = RsaKeyProvider(RsaKey(rsa_a, material_description=md))
    secret = os.urandom(32)
    wrapped = provider.wrap(secret, _req(A.RSA_OAEP_SHA256, md=md))
    label = b'{"alpha":"\\u00fc","mid":"q\\"uote","zeta":"1"}'
    assert cse_rsa.canonical_material_description(md).encode() == label
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=label)
    assert rsa_a.decrypt(wrapped, oaep) == secret
    # the same key, selected by key id, with a tampered material description
    with pytest.raises(DecryptionError) as info:
        provider.unwrap(wrapped, _req(A.RSA_OAEP_SHA256, md={**md, "zeta": "2"}, key_id=provider.key_id))
    _opaque(info)


def test_empty_matdesc_label(rsa_a: rsa.RSAPrivateKey) -> None:
    provider = RsaKeyProvider(RsaKey(rsa_a))
    wrapped = provider.wrap(b"k" * 32, _req(A.RSA_OAEP_SHA256))
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=b"{}")
    assert rsa_a.decrypt(wrapped, oaep) == b"k" * 32


def test_wrong_key_fails_opaquely(rsa_a: rsa.RSAPrivateKey, rsa_b: rsa.RSAPrivateKey) -> None:
    mine, theirs = RsaKeyProvider(RsaKey(rsa_a)), RsaKeyProvider(RsaKey(rsa_b))
    for wrap in (A.RSA_OAEP_SHA256, A.RSA_OAEP_SHA1):
        wrapped = theirs.wrap(os.urandom(32), _req(wrap))
        with pytest.raises(DecryptionError) as info:
            mine.unwrap(wrapped, _req(wrap))
        _opaque(info)


def test_unknown_algorithm_and_oversized_secret(rsa_a: rsa.RSAPrivateKey) -> None:
    provider = RsaKeyProvider(RsaKey(rsa_a))
    with pytest.raises(ConfigurationError, match="does not implement"):
        provider.wrap(bytes(32), _req(A.KMS_CONTEXT))
    with pytest.raises(ConfigurationError, match="does not implement"):
        provider.unwrap(bytes(256), _req("AES/GCM"))
    with pytest.raises(KeyProviderError, match="at most"):
        provider.wrap(bytes(250), _req(A.RSA_OAEP_SHA256))
    with pytest.raises(KeyProviderError, match="empty"):
        provider.wrap(b"", _req(A.RSA_PKCS1))


def test_wrap_refuses_a_foreign_material_description(rsa_a: rsa.RSAPrivateKey) -> None:
    provider = RsaKeyProvider(RsaKey(rsa_a, material_description={"k": "v"}))
    with pytest.raises(ConfigurationError, match="material description"):
        provider.wrap(bytes(32), _req(A.RSA_PKCS1, md={}))


# -- key loading -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "private"),
    [("a.pkcs8.pem", True), ("a.pkcs1.pem", True), ("a.spki.pub.pem", False), ("a.pkcs1.pub.pem", False)],
)
def test_pem_encodings(pems: Path, rsa_a: rsa.RSAPrivateKey, name: str, private: bool) -> None:
    key = RsaKey.from_file(pems / name)
    assert key.key_id == _key_id(rsa_a)
    assert key.has_private_key is private
    assert key.bits == 2048
    assert key.source == str(pems / name)
    assert RsaKey.from_pem((pems / name).read_bytes()).key_id == key.key_id
    provider = RsaKeyProvider.from_uri(f"rsa://{pems / name}")
    assert provider.key_id == key.key_id
    assert len(provider.key_id) == len("sha256:") + 32


@pytest.mark.parametrize("name", ["a.pkcs8.enc.pem", "a.pkcs1.enc.pem"])
def test_encrypted_pem(
    pems: Path, rsa_a: rsa.RSAPrivateKey, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = pems / name
    monkeypatch.setenv("CSE_TEST_PW", PASSPHRASE.decode())
    provider = RsaKeyProvider.from_uri(f"rsa://{path}?passphrase-env=CSE_TEST_PW")
    assert provider.key_id == _key_id(rsa_a)
    assert provider.keys[0].has_private_key
    assert RsaKey.from_file(path, passphrase=PASSPHRASE).key_id == provider.key_id
    assert RsaKey.from_pem(path.read_bytes(), passphrase=PASSPHRASE).key_id == provider.key_id

    monkeypatch.setenv("CSE_TEST_PW", "wrong passphrase")
    with pytest.raises(KeyMaterialError, match="CSE_TEST_PW") as info:
        RsaKeyProvider.from_uri(f"rsa://{path}?passphrase-env=CSE_TEST_PW")
    assert "does not decrypt" in str(info.value)
    assert "wrong passphrase" not in str(info.value)

    monkeypatch.delenv("CSE_TEST_PW")
    with pytest.raises(KeyMaterialError, match="CSE_TEST_PW.*not set"):
        RsaKeyProvider.from_uri(f"rsa://{path}?passphrase-env=CSE_TEST_PW")

    with pytest.raises(KeyMaterialError, match="passphrase-env=") as info:
        RsaKeyProvider.from_uri(f"rsa://{path}")
    assert str(path) in str(info.value)
    with pytest.raises(KeyMaterialError, match="encrypted"):
        RsaKey.from_pem(path.read_bytes())
    with pytest.raises(KeyMaterialError, match="does not decrypt"):
        RsaKey.from_pem(path.read_bytes(), passphrase=b"nope")


def test_passphrase_for_a_plain_key_is_ignored(pems: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSE_TEST_PW", "unused")
    provider = RsaKeyProvider.from_uri(f"rsa://{pems / 'a.pkcs8.pem'}?passphrase-env=CSE_TEST_PW")
    assert provider.keys[0].has_private_key
    monkeypatch.delenv("CSE_TEST_PW")  # not needed for a plain key
    assert RsaKeyProvider.from_uri(f"rsa://{pems / 'a.pkcs8.pem'}?passphrase-env=CSE_TEST_PW")


def test_public_only_wraps_but_cannot_unwrap(pems: Path) -> None:
    public = RsaKeyProvider.from_uri(f"rsa://{pems / 'a.spki.pub.pem'}")
    private = RsaKeyProvider.from_uri(f"rsa://{pems / 'a.pkcs8.pem'}")
    assert public.can_encrypt
    for wrap in WRITABLE:
        data_key = public.generate_data_key(_req(wrap))
        assert private.unwrap(data_key.ciphertext, _req(wrap, key_id=data_key.key_id)) == data_key.plaintext
        wrapped = WrappedKey(wrap_algorithm=wrap, ciphertext=data_key.ciphertext, key_id=data_key.key_id)
        assert public.can_unwrap(wrapped)  # selected, so that unwrap can say what is missing
        with pytest.raises(KeyMaterialError, match="public-only") as info:
            public.unwrap(data_key.ciphertext, _req(wrap, key_id=data_key.key_id))
        assert "private key is needed" in str(info.value)


def test_private_only_key_wraps_and_unwraps(pems: Path) -> None:
    provider = RsaKeyProvider.from_uri(f"rsa://{pems / 'b.pem'}")
    for wrap in WRITABLE:
        data_key = provider.generate_data_key(_req(wrap, C.AES_GCM))
        assert provider.unwrap(data_key.ciphertext, _req(wrap, C.AES_GCM)) == data_key.plaintext


def test_rotation(rsa_a: rsa.RSAPrivateKey, rsa_b: rsa.RSAPrivateKey) -> None:
    old_md, new_md = {"generation": "1"}, {"generation": "2"}
    old = RsaKeyProvider(RsaKey(rsa_a, material_description=old_md))
    objects = {wrap: old.generate_data_key(_req(wrap, md=old_md)) for wrap in WRITABLE}

    rotated = RsaKeyProvider(
        [RsaKey(rsa_b, material_description=new_md), RsaKey(rsa_a, material_description=old_md)]
    )
    assert rotated.key_id == _key_id(rsa_b)
    assert rotated.material_description == new_md
    for wrap, data_key in objects.items():
        # S3 and OSS objects record no key id: the material description selects the old key
        assert rotated.unwrap(data_key.ciphertext, _req(wrap, md=old_md)) == data_key.plaintext
        # cse-v1 records the key id
        assert (
            rotated.unwrap(data_key.ciphertext, _req(wrap, md=old_md, key_id=data_key.key_id))
            == data_key.plaintext
        )
        assert rotated.can_unwrap(
            WrappedKey(wrap_algorithm=wrap, ciphertext=b"x", material_description=old_md)
        )
        assert rotated.can_unwrap(WrappedKey(wrap_algorithm=wrap, ciphertext=b"x", key_id=data_key.key_id))
        assert not rotated.can_unwrap(
            WrappedKey(wrap_algorithm=wrap, ciphertext=b"x", material_description={})
        )
        assert not rotated.can_unwrap(
            WrappedKey(wrap_algorithm=wrap, ciphertext=b"x", key_id="sha256:" + "0" * 32)
        )
        assert not rotated.can_unwrap(
            WrappedKey(wrap_algorithm=wrap, ciphertext=b"x", provider="aws-kms", material_description=old_md)
        )
    new = rotated.generate_data_key(_req(A.RSA_OAEP_SHA256, md=new_md))
    assert new.key_id == _key_id(rsa_b)
    with pytest.raises(NoMatchingKeyError):  # the old provider lacks the new key
        old.unwrap(new.ciphertext, _req(A.RSA_OAEP_SHA256, md=new_md))

    with pytest.raises(NoMatchingKeyError, match="generation") as info:
        rotated.unwrap(new.ciphertext, _req(A.RSA_OAEP_SHA256, md={"generation": "3"}))
    assert rotated.key_id in str(info.value)
    with pytest.raises(NoMatchingKeyError, match="sha256:0+"):
        rotated.unwrap(new.ciphertext, _req(A.RSA_OAEP_SHA256, md=new_md, key_id="sha256:" + "0" * 32))


def test_several_candidates_are_tried(rsa_a: rsa.RSAPrivateKey, rsa_b: rsa.RSAPrivateKey) -> None:
    provider = RsaKeyProvider([RsaKey(rsa_a), RsaKey(rsa_b)])  # same (empty) material description
    other = RsaKeyProvider(RsaKey(rsa_b))
    for wrap in (A.RSA_OAEP_SHA256, A.RSA_OAEP_SHA1):
        data_key = other.generate_data_key(_req(wrap))
        assert provider.unwrap(data_key.ciphertext, _req(wrap)) == data_key.plaintext
        damaged = bytes([data_key.ciphertext[0] ^ 1]) + data_key.ciphertext[1:]
        with pytest.raises(DecryptionError) as info:
            provider.unwrap(damaged, _req(wrap))
        _opaque(info)


def test_repr_never_shows_key_material(pems: Path, rsa_a: rsa.RSAPrivateKey) -> None:
    provider = RsaKeyProvider.from_uri(f"rsa://{pems / 'a.pkcs8.pem'}?desc=team=ops")
    numbers = rsa_a.private_numbers()
    for text in (repr(provider), str(provider), provider.describe(), repr(provider.keys[0])):
        assert "PRIVATE" not in text
        assert str(numbers.d)[:40] not in text
        assert format(numbers.p, "x")[:40] not in text
    assert provider.key_id in repr(provider)
    assert "team" in repr(provider)
    assert provider.describe().startswith(f"rsa:{provider.key_id} (2048-bit private key from ")


def test_rsa_key_validation(rsa_a: rsa.RSAPrivateKey) -> None:
    with pytest.raises(KeyMaterialError, match="not an RSA key"):
        RsaKey(ec.generate_private_key(ec.SECP256R1()))  # type: ignore[arg-type]
    with pytest.raises(KeyMaterialError, match="at least 2048"):
        RsaKey(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(ConfigurationError, match="strings"):
        RsaKey(rsa_a, material_description={"k": 1})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="at least one"):
        RsaKeyProvider([])
    with pytest.raises(ConfigurationError, match="RsaKey objects"):
        RsaKeyProvider([rsa_a])  # type: ignore[list-item]
    key = RsaKey(rsa_a, material_description={"k": "v"})
    with pytest.raises(TypeError):
        key.material_description["k"] = "w"  # type: ignore[index]


# -- key URIs --------------------------------------------------------------------------------------


def test_uri_material_description_and_several_files(pems: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLD_PW", PASSPHRASE.decode())
    md = quote(json.dumps({"generation": "2", "note": "a&b=c"}), safe="")
    uri = (
        f"rsa://{pems / 'b.pem'}?matdesc={md}&desc=team=ops"
        f"&also={pems / 'a.pkcs8.enc.pem'}&passphrase-env=OLD_PW&desc=generation=1&desc=x=y%3Dz"
    )
    provider = RsaKeyProvider.from_uri(uri)
    assert [k.source for k in provider.keys] == [str(pems / "b.pem"), str(pems / "a.pkcs8.enc.pem")]
    assert dict(provider.material_description) == {"generation": "2", "note": "a&b=c", "team": "ops"}
    assert dict(provider.keys[1].material_description) == {"generation": "1", "x": "y=z"}
    assert provider.keys[1].has_private_key


def test_uri_localhost_and_percent_encoding(tmp_path: Path, pems: Path) -> None:
    spaced = tmp_path / "my keys"
    spaced.mkdir()
    (spaced / "k.pem").write_bytes((pems / "a.pkcs8.pem").read_bytes())
    assert RsaKeyProvider.from_uri(f"rsa://localhost{quote(str(spaced / 'k.pem'))}").key_id
    assert RsaKeyProvider.from_uri(f"rsa://{spaced / 'k.pem'}").key_id


def test_uri_through_the_registry(pems: Path) -> None:
    from cse.registry import open_provider

    provider = open_provider(f"rsa://{pems / 'a.pkcs8.pem'}")
    assert isinstance(provider, RsaKeyProvider)


def test_missing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "key.pem"
    with pytest.raises(KeyMaterialError) as info:
        RsaKeyProvider.from_uri(f"rsa://{path}")
    assert str(info.value) == (
        f"key file {path} does not exist; create one with "
        f"`cse keygen rsa --private {path} --public {tmp_path / 'nope' / 'key.pub.pem'}`"
    )
    with pytest.raises(KeyMaterialError, match="does not exist"):
        RsaKeyProvider.from_uri(f"rsa://{tmp_path / 'x.pem'}?also={path}")


@pytest.mark.parametrize("name", ["malformed.pem", "not-pem.txt"])
def test_malformed_pem(pems: Path, name: str) -> None:
    with pytest.raises(KeyMaterialError, match="is not a PEM RSA key") as info:
        RsaKeyProvider.from_uri(f"rsa://{pems / name}")
    assert str(pems / name) in str(info.value)
    assert "TOPSECRET" not in str(info.value)
    assert info.value.__cause__ is None


def test_not_an_rsa_key(pems: Path) -> None:
    with pytest.raises(KeyMaterialError, match="not an RSA key") as info:
        RsaKeyProvider.from_uri(f"rsa://{pems / 'ec.pem'}")
    assert str(pems / "ec.pem") in str(info.value)


def test_key_too_small(pems: Path) -> None:
    with pytest.raises(KeyMaterialError, match="1024 bits.*at least 2048") as info:
        RsaKeyProvider.from_uri(f"rsa://{pems / 'small.pem'}")
    assert str(pems / "small.pem") in str(info.value)


def test_unreadable_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="cannot read key file"):
        RsaKeyProvider.from_uri(f"rsa://{tmp_path}")  # a directory


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("rsa://keys/key.pem", "host name"),
        ("rsa:keys/key.pem", "not an absolute path"),
        ("rsa://", "names no key file"),
        ("file:///k.pem", "not an rsa key URI"),
        ("rsa:///k.pem?colour=blue", "unknown parameter 'colour'"),
        ("rsa:///k.pem?also=relative.pem", "not an absolute path"),
        ("rsa:///k.pem?matdesc=%7Bnot-json", "not JSON"),
        ("rsa:///k.pem?matdesc=%5B%5D", "JSON object of strings"),
        ("rsa:///k.pem?matdesc=%7B%22a%22%3A1%7D", "JSON object of strings"),
        ("rsa:///k.pem?desc=novalue", "NAME=VALUE"),
        ("rsa:///k.pem?passphrase-env=1BAD", "not an environment variable name"),
        ("rsa:///k.pem?passphrase-env=A&passphrase-env=B", "twice"),
        ("rsa:///k.pem#frag", "fragment"),
        ("rsa:///k.pem?&&", "malformed"),
    ],
)
def test_uri_errors(uri: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        RsaKeyProvider.from_uri(uri)
    if "absolute" in message or "host" in message:
        assert "rsa:///" in str(info.value)


# -- generate_keypair ------------------------------------------------------------------------------


def test_generate_keypair(tmp_path: Path) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    key = generate_keypair(private, public, bits=2048)
    assert key.has_private_key
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    if sys.platform != "win32":
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert RsaKey.from_file(public).key_id == key.key_id == RsaKey.from_file(private).key_id

    before = private.read_bytes()
    with pytest.raises(ConfigurationError, match="already exists"):
        generate_keypair(private, tmp_path / "other.pub.pem", bits=2048)
    with pytest.raises(ConfigurationError, match="already exists"):
        generate_keypair(tmp_path / "other.pem", public, bits=2048)
    assert private.read_bytes() == before
    assert not (tmp_path / "other.pem").exists()
    assert not (tmp_path / "other.pub.pem").exists()

    again = generate_keypair(private, public, bits=2048, overwrite=True)
    assert again.key_id != key.key_id
    assert RsaKey.from_file(public).key_id == again.key_id
    if sys.platform != "win32":
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem", "k.pub.pem"]

    # an overwrite that cannot write the public key leaves the old private key in place
    before = private.read_bytes()
    with pytest.raises(KeyMaterialError, match="cannot write"):
        generate_keypair(private, tmp_path / "missing" / "k.pub.pem", bits=2048, overwrite=True)
    assert private.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem", "k.pub.pem"]


def test_generate_keypair_encrypted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    key = generate_keypair(private, public, bits=2048, passphrase=PASSPHRASE)
    assert private.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    monkeypatch.setenv("KEY_PW", PASSPHRASE.decode())
    assert RsaKeyProvider.from_uri(f"rsa://{private}?passphrase-env=KEY_PW").key_id == key.key_id


def test_generate_keypair_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="2048"):
        generate_keypair(tmp_path / "a.pem", tmp_path / "a.pub.pem", bits=1024)
    with pytest.raises(ConfigurationError, match="both"):
        generate_keypair(tmp_path / "a.pem", tmp_path / "a.pem", bits=2048)
    with pytest.raises(ConfigurationError, match="non-empty"):
        generate_keypair(tmp_path / "a.pem", tmp_path / "a.pub.pem", bits=2048, passphrase=b"")
    with pytest.raises(KeyMaterialError, match="cannot write"):
        generate_keypair(tmp_path / "no" / "a.pem", tmp_path / "a.pub.pem", bits=2048)
    with pytest.raises(KeyMaterialError, match="cannot write"):
        generate_keypair(tmp_path / "a.pem", tmp_path / "no" / "a.pub.pem", bits=2048)
    assert list(tmp_path.iterdir()) == []  # the private key of the failed pair was removed


# -- misc ------------------------------------------------------------------------------------------


def test_public_api() -> None:
    assert sorted(cse_rsa.__all__) == cse_rsa.__all__
    for name in cse_rsa.__all__:
        assert getattr(cse_rsa, name) is not None
    assert set(cse_rsa.__all__) >= {"RsaKey", "RsaKeyProvider", "generate_keypair"}


def test_shared_key_across_threads(rsa_a: rsa.RSAPrivateKey) -> None:
    provider = RsaKeyProvider(RsaKey(rsa_a))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for wrap in WRITABLE:
                for content in (C.AES_GCM, C.AES_GCM_COMMITTING):
                    dk = provider.generate_data_key(_req(wrap, content))
                    assert provider.unwrap(dk.ciphertext, _req(wrap, content)) == dk.plaintext
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
