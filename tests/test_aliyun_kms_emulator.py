"""The Alibaba Cloud KMS emulator against the unmodified official SDKs (aliyunsdkcore, aliyunsdkkms, oss2)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("aliyunsdkcore")
pytest.importorskip("aliyunsdkkms")

from aliyunsdkcore.acs_exception.exceptions import ServerException  # noqa: E402
from aliyunsdkcore.auth.credentials import StsTokenCredential  # noqa: E402
from aliyunsdkcore.client import AcsClient  # noqa: E402
from aliyunsdkkms.request.v20160120.DecryptRequest import DecryptRequest  # noqa: E402
from aliyunsdkkms.request.v20160120.EncryptRequest import EncryptRequest  # noqa: E402
from aliyunsdkkms.request.v20160120.GenerateDataKeyRequest import GenerateDataKeyRequest  # noqa: E402
from cse_aliyun_kms.testing import KmsEmulator, canonical_string_to_sign  # noqa: E402

__all__: list[str] = []

AK = "LTAI-test-ak"
SECRET = "test-secret"
REGION = "cn-hangzhou"


@pytest.fixture(scope="module")
def kms() -> Iterator[KmsEmulator]:
    with KmsEmulator(access_key_id=AK, access_key_secret=SECRET, region=REGION) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def _client(kms: KmsEmulator, secret: str = SECRET, ak: str = AK) -> AcsClient:
    client = AcsClient(ak, secret, REGION, auto_retry=False)
    client.add_endpoint(REGION, "Kms", kms.endpoint)
    return client


def _call(client: AcsClient, request: Any) -> dict[str, Any]:
    body = client.do_action_with_exception(request)
    result: dict[str, Any] = json.loads(body)
    return result


def _gdk(client: AcsClient, key_id: str, context: str | None = None, **extra: Any) -> dict[str, Any]:
    req = GenerateDataKeyRequest()
    req.set_KeyId(key_id)
    if context is not None:
        req.set_EncryptionContext(context)
    for name, value in extra.items():
        getattr(req, f"set_{name}")(value)
    return _call(client, req)


def _encrypt(client: AcsClient, key_id: str, plaintext: str, context: str | None = None) -> dict[str, Any]:
    req = EncryptRequest()
    req.set_KeyId(key_id)
    req.set_Plaintext(plaintext)
    if context is not None:
        req.set_EncryptionContext(context)
    return _call(client, req)


def _decrypt(client: AcsClient, blob: str, context: str | None = None) -> dict[str, Any]:
    req = DecryptRequest()
    req.set_CiphertextBlob(blob)
    if context is not None:
        req.set_EncryptionContext(context)
    return _call(client, req)


def _server_error(excinfo: pytest.ExceptionInfo[ServerException]) -> tuple[str, int]:
    return excinfo.value.get_error_code(), excinfo.value.get_http_status()


def test_generate_data_key_and_decrypt(kms: KmsEmulator) -> None:
    key_id = kms.create_key("gdk")
    client = _client(kms)
    resp = _gdk(client, key_id)
    assert set(resp) == {"KeyId", "KeyVersionId", "Plaintext", "CiphertextBlob", "RequestId"}
    assert resp["KeyId"] == key_id
    assert resp["KeyVersionId"] == kms.primary_version(key_id)
    assert len(base64.b64decode(resp["Plaintext"])) == 32
    back = _decrypt(client, resp["CiphertextBlob"])
    assert back["Plaintext"] == resp["Plaintext"]
    assert back["KeyId"] == key_id
    assert back["KeyVersionId"] == resp["KeyVersionId"]


def test_key_spec_and_number_of_bytes(kms: KmsEmulator) -> None:
    key_id = kms.create_key()
    client = _client(kms)
    assert len(base64.b64decode(_gdk(client, key_id, KeySpec="AES_128")["Plaintext"])) == 16
    assert len(base64.b64decode(_gdk(client, key_id, NumberOfBytes=1024)["Plaintext"])) == 1024
    for bad in ({"NumberOfBytes": 0}, {"NumberOfBytes": 1025}, {"KeySpec": "AES_512"}):
        with pytest.raises(ServerException) as excinfo:
            _gdk(client, key_id, **bad)
        assert _server_error(excinfo) == ("InvalidParameter", 400)


def test_encrypt_decrypt_string_round_trip(kms: KmsEmulator) -> None:
    key_id = kms.create_key()
    client = _client(kms)
    text = "héllo wörld ~*+ /=&"
    resp = _encrypt(client, key_id, text)
    assert set(resp) == {"KeyId", "KeyVersionId", "CiphertextBlob", "RequestId"}
    assert _decrypt(client, resp["CiphertextBlob"])["Plaintext"] == text
    with pytest.raises(ServerException) as excinfo:
        _encrypt(client, key_id, "x" * 6145)
    assert _server_error(excinfo) == ("InvalidParameter", 400)


def test_encryption_context_is_bound(kms: KmsEmulator) -> None:
    key_id = kms.create_key()
    client = _client(kms)
    ctx = json.dumps({"b": "2", "a": "1"})
    resp = _gdk(client, key_id, ctx)
    # Key order does not matter: the context is canonicalized.
    assert _decrypt(client, resp["CiphertextBlob"], '{"a":"1","b":"2"}')["Plaintext"] == resp["Plaintext"]
    for wrong in ('{"a":"1","b":"3"}', None, ""):
        with pytest.raises(ServerException) as excinfo:
            _decrypt(client, resp["CiphertextBlob"], wrong)
        assert _server_error(excinfo) == ("InvalidCiphertext", 400)
    # A blob made without a context does not decrypt with one.
    plain = _encrypt(client, key_id, "abc")
    with pytest.raises(ServerException) as excinfo:
        _decrypt(client, plain["CiphertextBlob"], ctx)
    assert _server_error(excinfo) == ("InvalidCiphertext", 400)
    # An EncryptionContext that is not a JSON object is a bad parameter.
    with pytest.raises(ServerException) as excinfo:
        _gdk(client, key_id, "[1, 2]")
    assert _server_error(excinfo) == ("InvalidParameter", 400)


def test_corrupted_blob(kms: KmsEmulator) -> None:
    key_id = kms.create_key()
    client = _client(kms)
    blob = bytearray(base64.b64decode(_encrypt(client, key_id, "secret")["CiphertextBlob"]))
    blob[-1] ^= 1
    with pytest.raises(ServerException) as excinfo:
        _decrypt(client, base64.b64encode(bytes(blob)).decode())
    assert _server_error(excinfo) == ("InvalidCiphertext", 400)
    with pytest.raises(ServerException) as excinfo:
        _decrypt(client, base64.b64encode(b"\x01short").decode())
    assert _server_error(excinfo) == ("InvalidCiphertext", 400)
    with pytest.raises(ServerException) as excinfo:
        _decrypt(client, "not base64!!")
    assert _server_error(excinfo) == ("InvalidParameter", 400)


def test_unknown_key_and_alias(kms: KmsEmulator) -> None:
    client = _client(kms)
    with pytest.raises(ServerException) as excinfo:
        _gdk(client, "00000000-0000-0000-0000-000000000000")
    assert _server_error(excinfo) == ("Forbidden.KeyNotFound", 404)
    assert excinfo.value.get_request_id()
    with pytest.raises(ServerException) as excinfo:
        _encrypt(client, "alias/nope", "x")
    assert _server_error(excinfo) == ("Forbidden.AliasNotFound", 404)


def test_alias_keys(kms: KmsEmulator) -> None:
    key_id = kms.create_key()
    kms.create_alias("alias/app", key_id)
    client = _client(kms)
    resp = _gdk(client, "alias/app")
    assert resp["KeyId"] == key_id
    assert _decrypt(client, resp["CiphertextBlob"])["KeyId"] == key_id
    arn = f"acs:kms:{REGION}:123456789:alias/app"
    assert _encrypt(client, arn, "x")["KeyId"] == key_id
    with pytest.raises(ValueError):
        kms.create_alias("app", key_id)


def test_disabled_key(kms: KmsEmulator) -> None:
    key_id = kms.create_key()
    client = _client(kms)
    blob = _encrypt(client, key_id, "x")["CiphertextBlob"]
    kms.disable_key(key_id)
    try:
        for call in (lambda: _gdk(client, key_id), lambda: _decrypt(client, blob)):
            with pytest.raises(ServerException) as excinfo:
                call()
            assert _server_error(excinfo) == ("Rejected.Disabled", 409)
    finally:
        kms.enable_key(key_id)
    assert _decrypt(client, blob)["Plaintext"] == "x"


def test_key_rotation(kms: KmsEmulator) -> None:
    key_id = kms.create_key()
    client = _client(kms)
    old = _gdk(client, key_id)
    new_version = kms.rotate_key(key_id)
    assert new_version != old["KeyVersionId"]
    assert kms.key_versions(key_id) == [old["KeyVersionId"], new_version]
    new = _gdk(client, key_id)
    assert new["KeyVersionId"] == new_version
    old_back = _decrypt(client, old["CiphertextBlob"])
    assert (old_back["Plaintext"], old_back["KeyVersionId"]) == (old["Plaintext"], old["KeyVersionId"])
    assert _decrypt(client, new["CiphertextBlob"])["KeyVersionId"] == new_version


def test_wrong_secret_is_a_signature_error(kms: KmsEmulator) -> None:
    key_id = kms.create_key()
    with pytest.raises(ServerException) as excinfo:
        _gdk(_client(kms, secret="wrong"), key_id)
    # The gateway answers 400 SignatureDoesNotMatch echoing its string to sign; since that equals the SDK's
    # own, aliyunsdkcore turns it into InvalidAccessKeySecret.
    assert _server_error(excinfo) == ("InvalidAccessKeySecret", 400)
    assert kms.request_log[-1].error_code == "SignatureDoesNotMatch"


def test_incomplete_signature_variant() -> None:
    with KmsEmulator(AK, SECRET, signature_error_code="IncompleteSignature") as kms:
        key_id = kms.create_key()
        with pytest.raises(ServerException) as excinfo:
            _gdk(_client(kms, secret="wrong"), key_id)
        assert _server_error(excinfo) == ("IncompleteSignature", 400)
        assert "server string to sign is:POST&%2F&AccessKeyId%3D" in excinfo.value.get_error_msg()


def test_unknown_access_key(kms: KmsEmulator) -> None:
    with pytest.raises(ServerException) as excinfo:
        _gdk(_client(kms, ak="LTAI-unknown"), kms.create_key())
    assert _server_error(excinfo) == ("InvalidAccessKeyId.NotFound", 404)


def test_sts_security_token() -> None:
    with KmsEmulator("STS.ak", "sts-secret", security_token="token-123") as kms:
        key_id = kms.create_key()
        good = AcsClient(region_id=REGION, credential=StsTokenCredential("STS.ak", "sts-secret", "token-123"))
        good.add_endpoint(REGION, "Kms", kms.endpoint)
        resp = _gdk(good, key_id)
        assert _decrypt(good, resp["CiphertextBlob"])["Plaintext"] == resp["Plaintext"]
        assert kms.request_log[-1].params["SecurityToken"] == "token-123"
        bad = AcsClient(
            region_id=REGION,
            credential=StsTokenCredential("STS.ak", "sts-secret", "other"),
            auto_retry=False,
        )
        bad.add_endpoint(REGION, "Kms", kms.endpoint)
        with pytest.raises(ServerException) as excinfo:
            _gdk(bad, key_id)
        assert _server_error(excinfo) == ("InvalidSecurityToken.MismatchWithAccessKey", 400)


def _raw_request(kms: KmsEmulator, params: dict[str, str], secret: str = SECRET, method: str = "POST") -> Any:
    import hashlib
    import hmac
    from urllib.parse import urlencode

    import requests

    sts = canonical_string_to_sign(method, params)
    sig = base64.b64encode(hmac.new(f"{secret}&".encode(), sts.encode(), hashlib.sha1).digest()).decode()
    signed = dict(params, Signature=sig)
    if method == "GET":
        return requests.get(f"{kms.endpoint}/?{urlencode(signed)}", timeout=5)
    return requests.post(
        f"{kms.endpoint}/",
        data=urlencode(signed),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )


def _common(action: str, nonce: str, **extra: str) -> dict[str, str]:
    params = {
        "Action": action,
        "Version": "2016-01-20",
        "Format": "JSON",
        "RegionId": REGION,
        "AccessKeyId": AK,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": nonce,
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    params.update(extra)
    return params


def test_form_body_get_nonce_reuse_and_timestamp(kms: KmsEmulator) -> None:
    requests = pytest.importorskip("requests")
    assert requests
    key_id = kms.create_key()
    nonce = f"nonce-{time.time_ns()}"
    ok = _raw_request(kms, _common("Encrypt", nonce, KeyId=key_id, Plaintext="a b*c~"))
    assert ok.status_code == 200, ok.text
    assert ok.headers["Content-Type"].startswith("application/json")
    reused = _raw_request(kms, _common("Encrypt", nonce, KeyId=key_id, Plaintext="x"))
    assert (reused.status_code, reused.json()["Code"]) == (400, "SignatureNonceUsed")
    stale = _common("Encrypt", nonce + "-2", KeyId=key_id, Plaintext="x")
    stale["Timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 16 * 60))
    expired = _raw_request(kms, stale)
    assert (expired.status_code, expired.json()["Code"]) == (400, "InvalidTimeStamp.Expired")
    got = _raw_request(
        kms, _common("Decrypt", nonce + "-3", CiphertextBlob=ok.json()["CiphertextBlob"]), method="GET"
    )
    assert got.status_code == 200, got.text
    assert got.json()["Plaintext"] == "a b*c~"
    unknown = _raw_request(kms, _common("CreateKey", nonce + "-4"))
    assert (unknown.status_code, unknown.json()["Code"]) == (404, "InvalidAction.NotFound")
    body = unknown.json()
    assert {"RequestId", "HostId", "Code", "Message"} <= set(body)


def test_call_counts_and_request_log() -> None:
    with KmsEmulator(AK, SECRET) as kms:
        key_id = kms.create_key()
        client = _client(kms)
        blobs = [_gdk(client, key_id)["CiphertextBlob"] for _ in range(3)]
        _encrypt(client, key_id, "x")
        for blob in blobs:
            _decrypt(client, blob)
        with pytest.raises(ServerException):
            _gdk(client, "missing")
        assert kms.call_counts == {"GenerateDataKey": 3, "Encrypt": 1, "Decrypt": 3}
        assert len(kms.request_log) == 8
        last = kms.request_log[-1]
        assert (last.action, last.status, last.error_code) == (
            "GenerateDataKey",
            404,
            "Forbidden.KeyNotFound",
        )
        assert "Signature" not in last.params
        assert last.params["AccessKeyId"] == AK
        kms.reset_counters()
        assert not kms.call_counts
        assert not kms.request_log


def test_not_started_has_no_endpoint() -> None:
    with pytest.raises(RuntimeError):
        _ = KmsEmulator().endpoint


def test_oss2_ali_kms_provider(kms: KmsEmulator) -> None:
    oss2 = pytest.importorskip("oss2")
    from oss2.crypto import AliKMSProvider

    key_id = kms.create_key("oss2")
    for passphrase in (None, "pass-phrase"):
        provider = AliKMSProvider(AK, SECRET, REGION, key_id, passphrase=passphrase)
        provider.kms_client.add_endpoint(REGION, "Kms", kms.endpoint)
        material = provider.create_content_material()
        assert material.wrap_alg == oss2.headers.KMS_ALI_WRAP_ALGORITHM
        plain_key = provider.decrypt_encrypted_key(material.encrypted_key)
        assert len(plain_key) == 32
        iv = provider.decrypt_encrypted_iv(material.encrypted_iv)
        assert len(iv) == 16
        # The wrapped key and IV round trip into a working cipher.
        cipher = provider.cipher.__class__()
        cipher.initialize(plain_key, iv)
        data = b"oss2 payload" * 10
        ciphertext = material.cipher.encrypt(data)
        assert cipher.decrypt(ciphertext) == data


def test_oss2_crypto_bucket_end_to_end(kms: KmsEmulator) -> None:
    oss_testing = pytest.importorskip("cse_oss.testing")
    if not hasattr(oss_testing, "OssEmulator"):
        pytest.skip("cse_oss.testing.OssEmulator is not available")
    import oss2
    from oss2.crypto import AliKMSProvider

    key_id = kms.create_key("oss2-e2e")
    with oss_testing.OssEmulator() as oss:
        ak = getattr(oss, "access_key_id", AK)
        secret = getattr(oss, "access_key_secret", SECRET)
        bucket_name = "cse-kms-test"
        if hasattr(oss, "create_bucket"):
            oss.create_bucket(bucket_name)
        auth = oss2.Auth(ak, secret)
        if not hasattr(oss, "create_bucket"):
            oss2.Bucket(auth, oss.endpoint, bucket_name).create_bucket()
        provider = AliKMSProvider(AK, SECRET, REGION, key_id)
        provider.kms_client.add_endpoint(REGION, "Kms", kms.endpoint)
        bucket = oss2.CryptoBucket(auth, oss.endpoint, bucket_name, crypto_provider=provider)
        data = b"end to end " * 1000
        bucket.put_object("obj", data)
        assert bucket.get_object("obj").read() == data
        plain = oss2.Bucket(auth, oss.endpoint, bucket_name).get_object("obj").read()
        assert plain != data


def test_python_m_prints_an_endpoint_that_answers() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cse_aliyun_kms.testing", "--port", "0", "--access-key-id", "cli-ak"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        fields = dict(part.split("=", 1) for part in line.split())
        assert fields["endpoint"].startswith("http://127.0.0.1:")
        assert fields["access_key_id"] == "cli-ak"
        client = AcsClient("cli-ak", fields["access_key_secret"], REGION, auto_retry=False)
        client.add_endpoint(REGION, "Kms", fields["endpoint"])
        resp = _gdk(client, fields["key_id"])
        assert _decrypt(client, resp["CiphertextBlob"])["Plaintext"] == resp["Plaintext"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
