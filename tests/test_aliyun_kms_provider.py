"""The ``aliyun-kms`` key provider against the in-process Alibaba Cloud KMS emulator (and oss2's provider)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("aliyunsdkcore")
pytest.importorskip("aliyunsdkkms")

from aliyunsdkcore.client import AcsClient  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
from aliyunsdkkms.request.v20160120.DecryptRequest import (  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
    DecryptRequest,
)
from cse_aliyun_kms import AliyunKmsProvider  # noqa: E402
from cse_aliyun_kms.provider import ENDPOINT_ENV  # noqa: E402
from cse_aliyun_kms.testing import KmsEmulator  # noqa: E402

from cse.envelope import ContentAlgorithm, WrapAlgorithm, WrappedKey  # noqa: E402
from cse.exceptions import AUTHENTICATION_FAILED, ConfigurationError, DecryptionError, KmsError  # noqa: E402
from cse.providers import KeyProvider, KeyRequest  # noqa: E402
from cse.testing.providers import KeyProviderConformance  # noqa: E402

__all__: list[str] = []

AK = "LTAI-provider-ak"
SECRET = "provider-secret"
REGION = "cn-hangzhou"
ALG = WrapAlgorithm.ALIYUN_KMS
_ENV = (
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "OSS_ACCESS_KEY_ID",
    "OSS_ACCESS_KEY_SECRET",
    "OSS_SESSION_TOKEN",
    ENDPOINT_ENV,
)


@pytest.fixture(scope="module")
def kms() -> Iterator[KmsEmulator]:
    with KmsEmulator(access_key_id=AK, access_key_secret=SECRET, region=REGION) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def key_id(kms: KmsEmulator) -> str:
    return kms.create_key("cse provider tests")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", *_ENV):
        monkeypatch.delenv(name, raising=False)


def _client(kms: KmsEmulator, secret: str = SECRET) -> AcsClient:
    client = AcsClient(AK, secret, REGION, auto_retry=False)
    client.add_endpoint(REGION, "Kms", kms.endpoint)
    return client


def _provider(kms: KmsEmulator, key_id: str, **kwargs: Any) -> AliyunKmsProvider:
    return AliyunKmsProvider(REGION, key_id, client=_client(kms), **kwargs)


def _request(context: Mapping[str, str] | None = None, key_length: int = 32) -> KeyRequest:
    return KeyRequest(
        wrap_algorithm=ALG,
        content_algorithm=ContentAlgorithm.AES_CTR,
        encryption_context=dict(context or {}),
        key_length=key_length,
    )


def _plain_decrypt(kms: KmsEmulator, blob: bytes, context: str | None = None) -> str:
    req = DecryptRequest()
    req.set_CiphertextBlob(blob.decode("ascii"))
    if context is not None:
        req.set_EncryptionContext(context)
    return str(json.loads(_client(kms).do_action_with_exception(req))["Plaintext"])


class TestConformance(KeyProviderConformance):
    """The shared KeyProvider contract; KMS/ALICLOUD binds the encryption context."""

    @pytest.fixture
    def provider(self, kms: KmsEmulator, key_id: str) -> KeyProvider:
        return _provider(kms, key_id)

    @pytest.fixture
    def bindings(self) -> Mapping[str, Collection[str]]:
        return {ALG: frozenset({"encryption_context"})}

    @pytest.fixture
    def content_algorithms(self) -> Sequence[str]:
        return (ContentAlgorithm.AES_CTR, ContentAlgorithm.CSE_V1)


class TestConformanceDefaultClient(KeyProviderConformance):
    """The same contract through the default client (env credentials, endpoint from the environment)."""

    @pytest.fixture
    def provider(self, kms: KmsEmulator, key_id: str, monkeypatch: pytest.MonkeyPatch) -> KeyProvider:
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AK)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
        monkeypatch.setenv(ENDPOINT_ENV, kms.endpoint)
        return AliyunKmsProvider.from_uri(f"aliyun-kms://{REGION}/{key_id}?passphrase-env=CSE_TEST_NOPE")

    @pytest.fixture(autouse=True)
    def _passphrase(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CSE_TEST_NOPE", "conformance-pass")

    @pytest.fixture
    def bindings(self) -> Mapping[str, Collection[str]]:
        return {ALG: frozenset({"encryption_context"})}

    @pytest.fixture
    def content_algorithms(self) -> Sequence[str]:
        return (ContentAlgorithm.AES_CTR,)


# -- round trips and representation ------------------------------------------------------------------------


def test_generate_wrap_unwrap_and_blob_text(kms: KmsEmulator, key_id: str) -> None:
    provider = _provider(kms, key_id)
    data_key = provider.generate_data_key(_request())
    assert len(data_key.plaintext) == 32
    assert data_key.key_id == key_id
    # The stored bytes are the CiphertextBlob text: a plain SDK Decrypt opens them.
    assert base64.b64decode(_plain_decrypt(kms, data_key.ciphertext)) == data_key.plaintext
    assert provider.unwrap(data_key.ciphertext, _request()) == data_key.plaintext
    iv = bytes(range(16))
    wrapped_iv = provider.wrap(iv, _request())
    assert _plain_decrypt(kms, wrapped_iv) == base64.b64encode(iv).decode()  # Plaintext = b64(iv)
    assert provider.unwrap(wrapped_iv, _request(key_length=16)) == iv
    key = bytes(range(100, 132))
    assert provider.unwrap(provider.wrap(key, _request()), _request()) == key
    # A 24-byte data key (NumberOfBytes) and a length mismatch.
    other = provider.generate_data_key(_request(key_length=24))
    assert len(other.plaintext) == 24
    assert provider.unwrap(other.ciphertext, _request(key_length=24)) == other.plaintext
    with pytest.raises(DecryptionError):
        provider.unwrap(other.ciphertext, _request(key_length=48))


def test_context_is_sent_and_bound(kms: KmsEmulator, key_id: str) -> None:
    provider = _provider(kms, key_id)
    context = {"b": "2", "a": "1"}
    data_key = provider.generate_data_key(_request(context))
    assert kms.request_log[-1].params["EncryptionContext"] == '{"a":"1","b":"2"}'
    assert (
        base64.b64decode(_plain_decrypt(kms, data_key.ciphertext, '{"a":"1","b":"2"}')) == data_key.plaintext
    )
    assert provider.unwrap(data_key.ciphertext, _request(context)) == data_key.plaintext
    for wrong in ({"a": "1", "b": "3"}, {}):
        with pytest.raises(DecryptionError) as info:
            provider.unwrap(data_key.ciphertext, _request(wrong))
        assert type(info.value) is DecryptionError and str(info.value) == AUTHENTICATION_FAILED
    # No context: no EncryptionContext parameter at all.
    provider.wrap(b"k" * 32, _request())
    assert "EncryptionContext" not in kms.request_log[-1].params


def test_corrupted_blobs_are_opaque(kms: KmsEmulator, key_id: str) -> None:
    provider = _provider(kms, key_id)
    blob = provider.wrap(b"s" * 32, _request())
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    damaged = [
        base64.b64encode(bytes(raw)),  # tag
        base64.b64encode(b"\x01short"),  # too short
        blob[:-1],  # not base64 (KMS InvalidParameter)
        b"\xff" + blob[1:],  # not ASCII
        b"",
        b"not base64!!",
    ]
    raw2 = bytearray(base64.b64decode(blob))
    raw2[5] ^= 0x20  # the key id inside the blob: Forbidden.KeyNotFound
    damaged.append(base64.b64encode(bytes(raw2)))
    for ciphertext in damaged:
        with pytest.raises(DecryptionError) as info:
            provider.unwrap(ciphertext, _request())
        assert type(info.value) is DecryptionError, ciphertext


def test_wrong_secret_is_a_kms_error_without_key_material(kms: KmsEmulator, key_id: str) -> None:
    provider = AliyunKmsProvider(REGION, key_id, client=_client(kms, secret="wrong"))
    with pytest.raises(KmsError) as info:
        provider.generate_data_key(_request())
    message = str(info.value)
    assert "GenerateDataKey" in message and key_id in message and REGION in message, message
    assert "InvalidAccessKeySecret" in message
    assert info.value.__cause__ is not None
    # A gateway that echoes its string to sign (IncompleteSignature) would show Encrypt's Plaintext.
    with KmsEmulator(AK, SECRET, signature_error_code="IncompleteSignature") as other:
        other_key = other.create_key()
        bad = AcsClient(AK, "wrong", REGION, auto_retry=False)
        bad.add_endpoint(REGION, "Kms", other.endpoint)
        secret = bytes(range(32))
        with pytest.raises(KmsError) as info2:
            AliyunKmsProvider(REGION, other_key, client=bad).wrap(secret, _request())
    text = str(info2.value)
    assert "IncompleteSignature" in text and "Encrypt" in text
    encoded = base64.b64encode(secret).decode()
    once = quote(encoded, safe="~")
    for spelling in (encoded, secret.hex(), once, quote(once, safe="~")):
        assert spelling not in text
        assert spelling not in str(info2.value.__cause__ or "")


def test_disabled_and_unknown_keys_are_kms_errors(kms: KmsEmulator) -> None:
    key = kms.create_key()
    provider = _provider(kms, key)
    blob = provider.wrap(b"x" * 32, _request())
    kms.disable_key(key)
    try:
        with pytest.raises(KmsError, match="Rejected.Disabled"):
            provider.unwrap(blob, _request())
    finally:
        kms.enable_key(key)
    with pytest.raises(KmsError, match="Forbidden.AliasNotFound"):
        _provider(kms, "alias/nope").generate_data_key(_request())


def test_alias_key(kms: KmsEmulator) -> None:
    key = kms.create_key()
    kms.create_alias("alias/cse-provider", key)
    provider = _provider(kms, "alias/cse-provider")
    data_key = provider.generate_data_key(_request())
    assert data_key.key_id == key
    assert provider.unwrap(data_key.ciphertext, _request()) == data_key.plaintext


def test_passphrase_context(kms: KmsEmulator, key_id: str) -> None:
    provider = _provider(kms, key_id, passphrase="pass-phrase")
    data_key = provider.generate_data_key(_request())
    assert json.loads(kms.request_log[-1].params["EncryptionContext"]) == {"x-passphrase": "pass-phrase"}
    assert provider.unwrap(data_key.ciphertext, _request()) == data_key.plaintext
    with pytest.raises(DecryptionError):
        _provider(kms, key_id).unwrap(data_key.ciphertext, _request())
    with pytest.raises(DecryptionError):
        _provider(kms, key_id, passphrase="other").unwrap(data_key.ciphertext, _request())
    with pytest.raises(ConfigurationError):
        provider.wrap(b"k" * 32, _request({"x-passphrase": "different"}))
    assert "pass-phrase" not in repr(provider) and "pass-phrase" not in provider.describe()


# -- clients and credentials -------------------------------------------------------------------------------


def test_env_credentials_and_endpoint_from_uri(
    kms: KmsEmulator, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENDPOINT_ENV, kms.endpoint)
    uri = f"aliyun-kms://{REGION}/{key_id}"
    with pytest.raises(ConfigurationError, match="ALIBABA_CLOUD_ACCESS_KEY_ID"):
        AliyunKmsProvider.from_uri(uri).generate_data_key(_request())
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", SECRET)
    provider = AliyunKmsProvider.from_uri(uri)
    data_key = provider.generate_data_key(_request())
    assert provider.unwrap(data_key.ciphertext, _request()) == data_key.plaintext
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "wrong")  # ignored: the ALIBABA_CLOUD_ pair wins
    provider = AliyunKmsProvider.from_uri(uri)
    assert provider.unwrap(data_key.ciphertext, _request()) == data_key.plaintext
    # ?endpoint= wins over the environment variable.
    monkeypatch.setenv(ENDPOINT_ENV, "http://127.0.0.1:9")
    provider = AliyunKmsProvider.from_uri(f"{uri}?endpoint={kms.endpoint}")
    assert provider.unwrap(data_key.ciphertext, _request()) == data_key.plaintext
    assert provider.client is provider.client  # built once


def test_sts_token_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with KmsEmulator("STS.ak", "sts-secret", security_token="token-123") as sts:
        key = sts.create_key()
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.ak")
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "sts-secret")
        monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "token-123")
        provider = AliyunKmsProvider.from_uri(f"aliyun-kms://{REGION}/{key}?endpoint={sts.endpoint}")
        data_key = provider.generate_data_key(_request())
        assert sts.request_log[-1].params["SecurityToken"] == "token-123"
        assert provider.unwrap(data_key.ciphertext, _request()) == data_key.plaintext
        monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "other")
        bad = AliyunKmsProvider.from_uri(
            f"aliyun-kms://{REGION}/{key}?endpoint={sts.endpoint}&max-attempts=1"
        )
        with pytest.raises(KmsError, match="InvalidSecurityToken"):
            bad.generate_data_key(_request())


def test_default_client_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    client = AliyunKmsProvider(REGION, "k").client
    assert (client._connect_timeout, client._read_timeout) == (2.0, 4.0)
    assert not client.is_auto_retry()  # the provider owns the retries (cse.retry)
    client = AliyunKmsProvider.from_uri(
        f"aliyun-kms://{REGION}/k?connect-timeout=2&read-timeout=7.5&max-attempts=1"
    ).client
    assert (client._connect_timeout, client._read_timeout) == (2.0, 7.5)
    assert not client.is_auto_retry()
    assert client.get_region_id() == REGION


def test_stalled_endpoint_times_out(stalled_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    monkeypatch.setenv(ENDPOINT_ENV, stalled_endpoint)
    provider = AliyunKmsProvider.from_uri(
        f"aliyun-kms://{REGION}/alias/stalled?read-timeout=1&max-attempts=1"
    )
    secret = bytes(range(32))
    started = time.monotonic()
    with pytest.raises(KmsError) as info:
        provider.wrap(secret, _request())
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "timed out" in message.lower() or "timeout" in message.lower(), message
    assert "alias/stalled" in message and REGION in message and stalled_endpoint in message
    assert base64.b64encode(secret).decode() not in message
    assert elapsed < 15, f"took {elapsed:.1f} s"


# -- URIs and description ----------------------------------------------------------------------------------


def test_uri_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = AliyunKmsProvider.from_uri("aliyun-kms://cn-shanghai/alias/backups")
    assert (provider.region, provider.key_id) == ("cn-shanghai", "alias/backups")
    assert provider.describe() == "aliyun-kms://cn-shanghai/alias/backups"
    assert "AliyunKmsProvider(" in repr(provider)
    arn = "acs:kms:cn-hangzhou:123456:key/abc"
    assert AliyunKmsProvider.from_uri(f"aliyun-kms://cn-hangzhou/{arn}").key_id == arn
    monkeypatch.setenv("CSE_TEST_PASS", "hush")
    with_pass = AliyunKmsProvider.from_uri("aliyun-kms://cn-hangzhou/k?passphrase-env=CSE_TEST_PASS")
    assert with_pass.has_passphrase and "hush" not in repr(with_pass)
    bad = [
        "aliyun-kms://cn-hangzhou",
        "aliyun-kms://cn-hangzhou/",
        "aliyun-kms:///key",
        "aws-kms://cn-hangzhou/key",
        "aliyun-kms:cn-hangzhou/key",
        "aliyun-kms://CN_HANGZHOU/key",
        "aliyun-kms://cn-hangzhou/key?unknown=1",
        "aliyun-kms://cn-hangzhou/key?read-timeout=soon",
        "aliyun-kms://cn-hangzhou/key?read-timeout=-1",
        "aliyun-kms://cn-hangzhou/key?max-attempts=0",
        "aliyun-kms://cn-hangzhou/key?max-attempts=1&max-attempts=2",
        "aliyun-kms://cn-hangzhou/key?endpoint=",
        "aliyun-kms://cn-hangzhou/key?passphrase-env=CSE_TEST_UNSET",
        "aliyun-kms://cn-hangzhou/key#frag",
        "aliyun-kms://cn-hangzhou/key?a",
    ]
    for uri in bad:
        with pytest.raises(ConfigurationError) as info:
            AliyunKmsProvider.from_uri(uri)
        assert "aliyun-kms" in str(info.value), uri
    with pytest.raises(ConfigurationError, match="aliyun-kms://REGION/KEY"):
        AliyunKmsProvider.from_uri("aliyun-kms://cn-hangzhou")
    with pytest.raises(ConfigurationError, match="injected"):
        AliyunKmsProvider.from_uri("aliyun-kms://cn-hangzhou/k?read-timeout=1", client=object())


def test_entry_point_and_can_unwrap(kms: KmsEmulator, key_id: str) -> None:
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group="cse.providers") if ep.name == "aliyun-kms"]
    assert found and found[0].load() is AliyunKmsProvider
    provider = _provider(kms, key_id)
    wrapped = WrappedKey(wrap_algorithm=ALG, ciphertext=b"abcd", provider="aliyun-kms")
    assert provider.can_unwrap(wrapped)
    assert not provider.can_unwrap(wrapped.model_copy(update={"wrap_algorithm": WrapAlgorithm.KMS_CONTEXT}))


# -- oss2 interoperability ---------------------------------------------------------------------------------


def test_oss2_material_unwraps_and_back(kms: KmsEmulator, key_id: str) -> None:
    pytest.importorskip("oss2")
    from oss2.crypto import AliKMSProvider  # type: ignore[import-untyped,unused-ignore]
    from oss2.headers import (  # type: ignore[import-untyped,unused-ignore]
        OSS_CLIENT_SIDE_ENCRYPTION_KEY,
        OSS_CLIENT_SIDE_ENCRYPTION_START,
    )

    cse_oss_formats = pytest.importorskip("cse_oss.formats")
    for passphrase in (None, "pass-phrase"):
        oss2_provider = AliKMSProvider(AK, SECRET, REGION, key_id, passphrase=passphrase)
        oss2_provider.kms_client.add_endpoint(REGION, "Kms", kms.endpoint)
        material = oss2_provider.create_content_material()
        headers = material.to_object_meta()
        key_blob = cse_oss_formats.kms_blob_text(headers[OSS_CLIENT_SIDE_ENCRYPTION_KEY])
        iv_blob = cse_oss_formats.kms_blob_text(headers[OSS_CLIENT_SIDE_ENCRYPTION_START], "start")
        assert key_blob == material.encrypted_key.encode("ascii")
        ours = _provider(kms, key_id, passphrase=passphrase)
        plain_key = ours.unwrap(key_blob, _request())
        iv = ours.unwrap(iv_blob, _request(key_length=16))
        assert plain_key == oss2_provider.decrypt_encrypted_key(material.encrypted_key)
        assert iv == oss2_provider.decrypt_encrypted_iv(material.encrypted_iv)
        # The reverse: what cse wraps, oss2 unwraps (given the blob text, as it reads it from its headers).
        data_key = ours.generate_data_key(_request())
        wrapped_iv = ours.wrap(bytes(range(16)), _request(key_length=16))
        assert oss2_provider.decrypt_encrypted_key(data_key.ciphertext.decode()) == data_key.plaintext
        assert oss2_provider.decrypt_encrypted_iv(wrapped_iv.decode()) == bytes(range(16))
