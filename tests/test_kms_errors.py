"""KMS failures, from the real wire, become errors that say what happened and what to do (issue 16).

One test per failure and cloud. The answers come from the real servers where they refuse (moto's KMS server;
the project's Alibaba KMS emulator), and otherwise from a fault-injecting front on 127.0.0.1
(:mod:`tests.faultproxy`) that answers chosen requests with the cloud's own JSON error body and passes
everything else to the real server: moto never refuses a disabled, pending-deletion or signing key, nor
throttles, nor denies access. No provider, SDK or botocore is patched.

Every error is checked for its advice, its stable ``code`` and ``service_code``, its class, and for holding
no key material, plaintext or credential in ``str`` or ``repr``.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from cse.exceptions import (
    AUTHENTICATION_FAILED,
    DecryptionError,
    KeyProviderError,
    KmsAccessDeniedError,
    KmsError,
    KmsInvalidKeyUsageError,
    KmsKeyDisabledError,
    KmsKeyNotFoundError,
    KmsKeyPendingDeletionError,
    KmsThrottledError,
    KmsWrongRegionError,
)
from cse.providers import KeyRequest
from tests.conftest import OSS_AK, OSS_REGION, OSS_SECRET
from tests.faultproxy import FaultProxy, kms_action

cse_aws_kms = pytest.importorskip("cse_aws_kms")
cse_aliyun_kms = pytest.importorskip("cse_aliyun_kms")

AWS_REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
#: A secret that goes over the wire (Encrypt's Plaintext): it must never show in an error.
SECRET = bytes(range(100, 132))


def _spellings(secret: bytes) -> list[str]:
    encoded = base64.b64encode(secret).decode()
    return [secret.hex(), encoded, encoded.rstrip("="), quote(encoded, safe="~"), repr(secret)[2:-1]]


def _assert_clean(err: BaseException, *secrets: bytes) -> None:
    """Neither ``str`` nor ``repr`` of the error (nor of its cause) shows a secret or a credential."""
    texts = [str(err), repr(err)]
    for secret in (SECRET, *secrets):
        for spelling in _spellings(secret):
            for text in texts:
                assert spelling not in text, text
    for credential in (OSS_SECRET, "aws_secret_access_key"):
        for text in texts:
            assert credential not in text, text


def _is(action: str) -> Any:
    return lambda request: kms_action(request) == action


# -- AWS: moto's server, behind the fault front ----------------------------------------------------------


def _v3(**changes: Any) -> KeyRequest:
    fields: dict[str, Any] = {"encryption_context": {"purpose": "kms-errors"}, **changes}
    return KeyRequest(wrap_algorithm="kms+context", content_algorithm="115", **fields)


@pytest.fixture
def aws_front(moto_endpoint: str) -> Iterator[FaultProxy]:
    """The fault front before moto's server, answering as AWS KMS does."""
    with FaultProxy(moto_endpoint, flavor="aws-kms") as front:
        yield front


@pytest.fixture
def aws_arn(kms_client: Any, kms_key_id: str) -> str:
    return str(kms_client.describe_key(KeyId=kms_key_id)["KeyMetadata"]["Arn"])


def _aws(key: str, endpoint: str, **kwargs: Any) -> Any:
    """A provider with the default client (so the provider owns the retries) on ``endpoint``."""
    return cse_aws_kms.AwsKmsProvider(key, region=AWS_REGION, endpoint_url=endpoint, **kwargs)


def test_aws_key_disabled(aws_front: FaultProxy, aws_arn: str) -> None:
    aws_front.answer(400, "DisabledException", f"{aws_arn} is disabled.", match=_is("Encrypt"))
    with pytest.raises(KmsKeyDisabledError) as info:
        _aws(aws_arn, aws_front.endpoint).wrap(SECRET, _v3())
    err = info.value
    assert err.code == "key-disabled" and err.service_code == "DisabledException"
    assert "enable it" in str(err) and "enable-key" in str(err) and aws_arn in str(err)
    assert isinstance(err, KmsError) and isinstance(err, KeyProviderError)
    assert "1 attempt(s)" in str(err)  # a refusal is not retried
    _assert_clean(err)


def test_aws_key_pending_deletion(aws_front: FaultProxy, aws_arn: str) -> None:
    aws_front.answer(
        400, "KMSInvalidStateException", f"{aws_arn} is pending deletion.", match=_is("GenerateDataKey")
    )
    with pytest.raises(KmsKeyPendingDeletionError) as info:
        _aws(aws_arn, aws_front.endpoint).generate_data_key(_v3())
    err = info.value
    assert err.code == "key-pending-deletion" and err.service_code == "KMSInvalidStateException"
    assert "cancel the deletion" in str(err) and "cancel-key-deletion" in str(err)
    _assert_clean(err)
    # Another invalid state is a plain KmsError with its own code.
    aws_front.answer(400, "KMSInvalidStateException", f"{aws_arn} is pending import.")
    with pytest.raises(KmsError) as other:
        _aws(aws_arn, aws_front.endpoint).generate_data_key(_v3())
    assert type(other.value) is KmsError and other.value.code == "invalid-key-state"


def test_aws_key_or_alias_not_found(moto_endpoint: str) -> None:
    """moto's own answers: an unknown alias and an unknown key id (NotFoundException)."""
    for key in ("alias/cse-no-such-alias", "0f6a5a0c-1e7f-4c55-9b8a-1d2a3b4c5d6e"):
        with pytest.raises(KmsKeyNotFoundError) as info:
            _aws(key, moto_endpoint).wrap(SECRET, _v3())
        err = info.value
        assert err.code == "key-not-found" and err.service_code == "NotFoundException"
        message = str(err)
        assert "check the key id or alias and the region" in message and AWS_REGION in message
        assert key in message
        _assert_clean(err)


@pytest.mark.parametrize("operation", ["GenerateDataKey", "Encrypt", "Decrypt"])
def test_aws_access_denied(aws_front: FaultProxy, aws_arn: str, operation: str) -> None:
    denial = (
        f"User: arn:aws:iam::{ACCOUNT}:user/app is not authorized to perform: kms:{operation} on resource: "
        f"{aws_arn} because no identity-based policy allows the kms:{operation} action"
    )
    provider = _aws(aws_arn, aws_front.endpoint)
    blob = provider.wrap(SECRET, _v3())  # passes through to moto
    aws_front.answer(400, "AccessDeniedException", denial, match=_is(operation))
    call = {
        "GenerateDataKey": lambda: provider.generate_data_key(_v3()),
        "Encrypt": lambda: provider.wrap(SECRET, _v3()),
        "Decrypt": lambda: provider.unwrap(blob, _v3()),
    }[operation]
    with pytest.raises(KmsAccessDeniedError) as info:
        call()
    err = info.value
    assert err.code == "access-denied" and err.service_code == "AccessDeniedException"
    assert err.action == f"kms:{operation}"
    assert f"must allow kms:{operation}" in str(err)
    _assert_clean(err)


def test_aws_invalid_key_usage(aws_front: FaultProxy, kms_client: Any) -> None:
    """A SIGN_VERIFY key: moto hands out data keys with it anyway, so the front answers as AWS does."""
    key = kms_client.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]["Arn"]
    aws_front.answer(
        400,
        "InvalidKeyUsageException",
        f"{key} key usage is SIGN_VERIFY which is not valid for GenerateDataKey.",
        match=_is("GenerateDataKey"),
    )
    with pytest.raises(KmsInvalidKeyUsageError) as info:
        _aws(key, aws_front.endpoint).generate_data_key(_v3())
    err = info.value
    assert err.code == "invalid-key-usage" and err.service_code == "InvalidKeyUsageException"
    assert "cannot encrypt" in str(err) and "SIGN_VERIFY" in str(err) and "symmetric" in str(err)
    _assert_clean(err)


def test_aws_invalid_ciphertext_or_context_is_opaque(aws_front: FaultProxy, aws_arn: str) -> None:
    provider = _aws(aws_arn, aws_front.endpoint)
    data_key = provider.generate_data_key(_v3())
    # moto's own answers: a wrong encryption context, a damaged blob.
    for blob, request in (
        (data_key.ciphertext, _v3(encryption_context={"purpose": "other"})),
        (data_key.ciphertext[:-3] + b"xyz", _v3()),
    ):
        with pytest.raises(DecryptionError) as info:
            provider.unwrap(blob, request)
        assert type(info.value) is DecryptionError and str(info.value) == AUTHENTICATION_FAILED
        _assert_clean(info.value, data_key.plaintext)
    # What moto does not send: IncorrectKeyException.
    aws_front.answer(400, "IncorrectKeyException", "The key ID in the request does not identify a CMK...")
    with pytest.raises(DecryptionError) as info:
        provider.unwrap(data_key.ciphertext, _v3())
    assert type(info.value) is DecryptionError and str(info.value) == AUTHENTICATION_FAILED


def test_aws_throttling_is_retried_then_reported(aws_front: FaultProxy, aws_arn: str) -> None:
    provider = _aws(aws_arn, aws_front.endpoint)  # 3 attempts per call, the default
    gdk = _is("GenerateDataKey")
    aws_front.answer(400, "ThrottlingException", "Rate exceeded", match=gdk, times=2)
    before = aws_front.stats.requests
    data_key = provider.generate_data_key(_v3())  # two throttled answers, then moto's
    assert len(data_key.plaintext) == 32
    assert aws_front.stats.requests - before == 3 and aws_front.stats.faults["answer"] == 2

    aws_front.answer(400, "ThrottlingException", "Rate exceeded", match=gdk, times=100)
    before = aws_front.stats.requests
    with pytest.raises(KmsThrottledError) as info:
        provider.generate_data_key(_v3())
    assert aws_front.stats.requests - before == 3  # the one retry budget, not stacked loops
    err = info.value
    assert err.code == "throttled" and err.service_code == "ThrottlingException"
    assert "still throttled" in str(err) and "3 attempt(s)" in str(err) and "all attempts used" in str(err)
    _assert_clean(err, data_key.plaintext)


def test_aws_key_in_another_region(moto_endpoint: str) -> None:
    """An object written with a key of eu-west-1, read with the same key id by a client of us-east-1: moto
    answers NotFoundException, and the error names both regions."""
    import boto3

    west = boto3.client("kms", endpoint_url=moto_endpoint, region_name="eu-west-1")
    key = west.create_key()["KeyMetadata"]
    writer = cse_aws_kms.AwsKmsProvider(key["Arn"], endpoint_url=moto_endpoint)
    data_key = writer.generate_data_key(_v3())
    assert data_key.key_id == key["Arn"]
    reader = _aws(key["KeyId"], moto_endpoint)  # the same key id, in us-east-1
    with pytest.raises(KmsWrongRegionError) as info:
        reader.unwrap(data_key.ciphertext, _v3(key_id=data_key.key_id))
    err = info.value
    assert err.code == "wrong-region" and err.service_code == "NotFoundException"
    assert err.key_region == "eu-west-1" and err.client_region == AWS_REGION
    assert "eu-west-1" in str(err) and AWS_REGION in str(err)
    assert isinstance(err, KmsError)
    _assert_clean(err, data_key.plaintext)


def test_aws_discovery_of_a_key_in_another_region(moto_endpoint: str) -> None:
    """A discovery reader of us-east-1 and an object whose key is in eu-west-1: moto answers Decrypt with
    AccessDeniedException (the blob's key does not exist in this region); the object records the key ARN,
    so the error names both regions instead of the opaque DecryptionError."""
    import boto3

    west = boto3.client("kms", endpoint_url=moto_endpoint, region_name="eu-west-1")
    arn = west.create_key()["KeyMetadata"]["Arn"]
    data_key = cse_aws_kms.AwsKmsProvider(arn, endpoint_url=moto_endpoint).generate_data_key(_v3())
    reader = cse_aws_kms.AwsKmsProvider(
        discovery=True, discovery_accounts=[ACCOUNT], region=AWS_REGION, endpoint_url=moto_endpoint
    )
    with pytest.raises(KmsWrongRegionError) as info:
        reader.unwrap(data_key.ciphertext, _v3(key_id=arn))
    err = info.value
    assert err.service_code == "AccessDeniedException"
    assert err.key_region == "eu-west-1" and err.client_region == AWS_REGION
    _assert_clean(err, data_key.plaintext)
    # Without a recorded ARN nothing says where the key is: the one opaque error, as before.
    with pytest.raises(DecryptionError) as opaque:
        reader.unwrap(data_key.ciphertext, _v3())
    assert type(opaque.value) is DecryptionError and str(opaque.value) == AUTHENTICATION_FAILED


# -- Alibaba Cloud: the project's KMS emulator, behind the fault front -----------------------------------

ALIYUN = KeyRequest(wrap_algorithm="KMS/ALICLOUD", content_algorithm="AES/CTR/NoPadding")


@pytest.fixture
def aliyun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "CSE_ALIYUN_KMS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", OSS_AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", OSS_SECRET)


@pytest.fixture
def aliyun_front(aliyun_kms: Any, aliyun_env: None) -> Iterator[FaultProxy]:
    """The fault front before the Alibaba KMS emulator, answering as Alibaba Cloud KMS does."""
    with FaultProxy(aliyun_kms.endpoint, flavor="aliyun-kms") as front:
        yield front


def _aliyun(key: str, endpoint: str, region: str = OSS_REGION) -> Any:
    """A provider with the default client (so the provider owns the retries) on ``endpoint``."""
    return cse_aliyun_kms.AliyunKmsProvider(region, key, endpoint=endpoint)


def test_aliyun_key_disabled(aliyun_kms: Any, aliyun_env: None) -> None:
    """The emulator's own answer for a disabled key (Rejected.Disabled, HTTP 409)."""
    key = aliyun_kms.create_key("disabled")
    aliyun_kms.disable_key(key)
    try:
        with pytest.raises(KmsKeyDisabledError) as info:
            _aliyun(key, aliyun_kms.endpoint).wrap(SECRET, ALIYUN)
    finally:
        aliyun_kms.enable_key(key)
    err = info.value
    assert err.code == "key-disabled" and err.service_code == "Rejected.Disabled"
    assert "enable it" in str(err) and key in str(err) and "HTTP 409" in str(err)
    assert "1 attempt(s)" in str(err)
    _assert_clean(err)


def test_the_kms_log_records_the_codes(
    aws_front: FaultProxy, aws_arn: str, aliyun_front: FaultProxy, aliyun_kms_key: str, caplog: Any
) -> None:
    """The DEBUG record of a failed request on ``cse.kms`` carries the stable code and the cloud's code."""
    import logging

    caplog.set_level(logging.DEBUG, logger="cse")
    aws_front.answer(400, "DisabledException", f"{aws_arn} is disabled.")
    aliyun_front.answer(
        409, "Rejected.Disabled", "The request was rejected because the key state is Disabled."
    )
    with pytest.raises(KmsKeyDisabledError):
        _aws(aws_arn, aws_front.endpoint).wrap(SECRET, _v3())
    with pytest.raises(KmsKeyDisabledError):
        _aliyun(aliyun_kms_key, aliyun_front.endpoint).wrap(SECRET, ALIYUN)
    records = [
        r.cse for r in caplog.records if r.name == "cse.kms" and isinstance(getattr(r, "cse", None), dict)
    ]
    assert [(r["provider"], r["error_code"], r["service_code"], r["outcome"]) for r in records] == [
        ("aws-kms", "key-disabled", "DisabledException", "KmsKeyDisabledError"),
        ("aliyun-kms", "key-disabled", "Rejected.Disabled", "KmsKeyDisabledError"),
    ]
    for record in caplog.records:
        for spelling in _spellings(SECRET):
            assert spelling not in record.getMessage() and spelling not in str(getattr(record, "cse", ""))


def test_aliyun_key_pending_deletion(aliyun_front: FaultProxy, aliyun_kms_key: str) -> None:
    aliyun_front.answer(
        409,
        "Rejected.PendingDeletion",
        "The request was rejected because the key state is PendingDeletion.",
        match=_is("GenerateDataKey"),
    )
    with pytest.raises(KmsKeyPendingDeletionError) as info:
        _aliyun(aliyun_kms_key, aliyun_front.endpoint).generate_data_key(ALIYUN)
    err = info.value
    assert err.code == "key-pending-deletion" and err.service_code == "Rejected.PendingDeletion"
    assert "cancel the deletion" in str(err) and "CancelKeyDeletion" in str(err)
    _assert_clean(err)


def test_aliyun_key_or_alias_not_found(aliyun_kms: Any, aliyun_env: None) -> None:
    """The emulator's own answers: Forbidden.AliasNotFound and Forbidden.KeyNotFound (HTTP 404)."""
    for key, code in (
        ("alias/cse-no-such-alias", "Forbidden.AliasNotFound"),
        ("key-0000-no-such-key", "Forbidden.KeyNotFound"),
    ):
        with pytest.raises(KmsKeyNotFoundError) as info:
            _aliyun(key, aliyun_kms.endpoint).wrap(SECRET, ALIYUN)
        err = info.value
        assert err.code == "key-not-found" and err.service_code == code
        message = str(err)
        assert "check the key id or alias and the region" in message and OSS_REGION in message
        assert key in message
        _assert_clean(err)


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ("GenerateDataKey", "Forbidden.RAM"),
        ("Encrypt", "Forbidden.NoPermission"),
        ("Decrypt", "Forbidden.RAM"),
    ],
)
def test_aliyun_access_denied(
    aliyun_front: FaultProxy, aliyun_kms_key: str, operation: str, code: str
) -> None:
    provider = _aliyun(aliyun_kms_key, aliyun_front.endpoint)
    blob = provider.wrap(SECRET, ALIYUN)  # passes through to the emulator
    aliyun_front.answer(403, code, "This operation is forbidden by permission system.", match=_is(operation))
    call = {
        "GenerateDataKey": lambda: provider.generate_data_key(ALIYUN),
        "Encrypt": lambda: provider.wrap(SECRET, ALIYUN),
        "Decrypt": lambda: provider.unwrap(blob, ALIYUN),
    }[operation]
    with pytest.raises(KmsAccessDeniedError) as info:
        call()
    err = info.value
    assert err.code == "access-denied" and err.service_code == code
    assert err.action == f"kms:{operation}"
    assert f"must allow kms:{operation}" in str(err) and "HTTP 403" in str(err)
    _assert_clean(err)


def test_aliyun_invalid_key_usage(aliyun_front: FaultProxy, aliyun_kms_key: str) -> None:
    aliyun_front.answer(400, "UnsupportedOperation", "This action is not supported.", match=_is("Encrypt"))
    with pytest.raises(KmsInvalidKeyUsageError) as info:
        _aliyun(aliyun_kms_key, aliyun_front.endpoint).wrap(SECRET, ALIYUN)
    err = info.value
    assert err.code == "invalid-key-usage" and err.service_code == "UnsupportedOperation"
    assert "cannot encrypt" in str(err) and "asymmetric" in str(err) and "symmetric" in str(err)
    _assert_clean(err)


def test_aliyun_invalid_ciphertext_or_context_is_opaque(
    aliyun_front: FaultProxy, aliyun_kms_key: str
) -> None:
    """The emulator's own answers (InvalidCiphertext) for a wrong context and a damaged blob."""
    provider = _aliyun(aliyun_kms_key, aliyun_front.endpoint)
    data_key = provider.generate_data_key(dataclasses.replace(ALIYUN, encryption_context={"a": "b"}))
    text = data_key.ciphertext
    damaged = text[:20] + (b"A" if text[20:21] != b"A" else b"B") + text[21:]
    for blob, context in ((text, {"a": "other"}), (damaged, {"a": "b"})):
        request = dataclasses.replace(ALIYUN, encryption_context=context)
        with pytest.raises(DecryptionError) as info:
            provider.unwrap(blob, request)
        assert type(info.value) is DecryptionError and str(info.value) == AUTHENTICATION_FAILED
        _assert_clean(info.value, data_key.plaintext)


def test_aliyun_throttling_is_retried_then_reported(aliyun_front: FaultProxy, aliyun_kms_key: str) -> None:
    provider = _aliyun(aliyun_kms_key, aliyun_front.endpoint)  # 3 attempts per call, the default
    enc = _is("Encrypt")
    message = "Request was denied due to user flow control."
    aliyun_front.answer(400, "Throttling.User", message, match=enc, times=2)
    before = aliyun_front.stats.requests
    assert provider.wrap(SECRET, ALIYUN)  # two throttled answers, then the emulator's
    assert aliyun_front.stats.requests - before == 3 and aliyun_front.stats.faults["answer"] == 2

    aliyun_front.answer(400, "Throttling.User", message, match=enc, times=100)
    before = aliyun_front.stats.requests
    with pytest.raises(KmsThrottledError) as info:
        provider.wrap(SECRET, ALIYUN)
    assert aliyun_front.stats.requests - before == 3  # the one retry budget, not stacked loops
    err = info.value
    assert err.code == "throttled" and err.service_code == "Throttling.User"
    assert "still throttled" in str(err) and "3 attempt(s)" in str(err) and "all attempts used" in str(err)
    _assert_clean(err)


def test_aliyun_key_in_another_region(aliyun_kms: Any, aliyun_env: None, aliyun_kms_key: str) -> None:
    """A key ARN of cn-shanghai used with the cn-hangzhou endpoint: the regional KMS answers
    Forbidden.KeyNotFound, and the error names both regions."""
    arn = f"acs:kms:cn-shanghai:1234567890123456:key/{aliyun_kms_key}"
    with pytest.raises(KmsWrongRegionError) as info:
        _aliyun(arn, aliyun_kms.endpoint).generate_data_key(ALIYUN)
    err = info.value
    assert err.code == "wrong-region" and err.service_code == "Forbidden.KeyNotFound"
    assert err.key_region == "cn-shanghai" and err.client_region == OSS_REGION
    assert "cn-shanghai" in str(err) and OSS_REGION in str(err)
    _assert_clean(err)
    # The same key by the ARN of its own region works.
    own = f"acs:kms:{OSS_REGION}:1234567890123456:key/{aliyun_kms_key}"
    assert len(_aliyun(own, aliyun_kms.endpoint).generate_data_key(ALIYUN).plaintext) == 32


# -- the CLI shows the message as it is ----------------------------------------------------------------


def test_cli_shows_the_kms_advice(aws_front: FaultProxy, aws_arn: str, tmp_path: Any) -> None:
    from click.testing import CliRunner

    from cse.cli import main

    aws_front.answer(400, "DisabledException", f"{aws_arn} is disabled.", match=_is("GenerateDataKey"))
    src = tmp_path / "in.bin"
    src.write_bytes(b"some plaintext that must not show")
    key = f"aws-kms://{aws_arn}?endpoint-url={aws_front.endpoint}"
    result = CliRunner().invoke(main, ["put", str(src), "memory://b/k", "--key", key], catch_exceptions=False)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("cse: error:")]
    assert len(lines) == 1, result.output
    assert "DisabledException" in lines[0] and "the key is disabled: enable it" in lines[0]
    assert "some plaintext" not in result.output


def test_kms_errors_copy_and_pickle_with_their_attributes() -> None:
    """Process pools (the Dask engine) pickle errors: the subclasses' keyword-only attributes survive."""
    import copy
    import pickle

    denied = KmsAccessDeniedError("denied", action="kms:Decrypt", service_code="AccessDeniedException")
    region = KmsWrongRegionError("elsewhere", key_region="eu-west-1", client_region="us-east-1")
    for err in (denied, region, KmsThrottledError("slow", service_code="Throttling")):
        for back in (pickle.loads(pickle.dumps(err)), copy.copy(err)):
            assert type(back) is type(err) and str(back) == str(err) and vars(back) == vars(err)
    noted = denied.with_note("[1 attempt(s)]")
    assert type(noted) is KmsAccessDeniedError and noted.action == "kms:Decrypt"
    assert str(noted) == "denied [1 attempt(s)]" and str(denied) == "denied"
    assert KmsError("plain").code == "kms-error" and KmsError("plain").service_code is None
