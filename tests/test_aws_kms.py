"""The aws-kms key provider against moto's KMS server (no mocks of the provider or of boto3).

Covers the conformance suite, the exact encryption context sent to KMS, opaque failures, key selection and
discovery, the legacy ``kms`` wrapping, key URIs, the default client's settings and AWS environment
variables, error mapping (including a dead endpoint), and the official S3 Encryption Client's KmsKeyring.
"""

from __future__ import annotations

import inspect
import threading
import uuid
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import cse_aws_kms
import pytest
from botocore.exceptions import ClientError
from cse_aws_kms import RESERVED_CONTEXT_KEY, AwsKmsProvider, parse_key_reference

from cse.envelope import ContentAlgorithm, WrapAlgorithm, WrappedKey
from cse.exceptions import (
    AUTHENTICATION_FAILED,
    ConfigurationError,
    DecryptionError,
    KmsError,
    MetadataError,
    NoMatchingKeyError,
)
from cse.providers import KeyProvider, KeyRequest
from cse.registry import open_provider, provider_class
from cse.testing.providers import DEFAULT_BINDINGS, KeyProviderConformance

A = WrapAlgorithm
C = ContentAlgorithm
ACCOUNT = "123456789012"  # moto's default account
OTHER_ACCOUNT = "111122223333"
CONTEXT = {"purpose": "test", "object": "bucket/key"}


def _v3(
    context: Mapping[str, str] | None = None, content_algorithm: str = C.AES_GCM_COMMITTING, **changes: Any
) -> KeyRequest:
    return KeyRequest(
        wrap_algorithm=A.KMS_CONTEXT,
        content_algorithm=content_algorithm,
        encryption_context=dict(CONTEXT if context is None else context),
        **changes,
    )


def _assert_opaque(exc: BaseException) -> None:
    assert type(exc) is DecryptionError
    assert str(exc) == AUTHENTICATION_FAILED


@pytest.fixture
def make_key(kms_client: Any) -> Callable[[], str]:
    """Create one more symmetric key on moto's server; returns its key id."""

    def make() -> str:
        return str(kms_client.create_key(Description="cse test key")["KeyMetadata"]["KeyId"])

    return make


@pytest.fixture
def key_arn(kms_client: Any, kms_key_id: str) -> str:
    """The ARN of ``kms_key_id``."""
    return str(kms_client.describe_key(KeyId=kms_key_id)["KeyMetadata"]["Arn"])


@pytest.fixture
def provider(kms_client: Any, kms_key_id: str) -> AwsKmsProvider:
    """A provider on ``kms_key_id`` with the injected moto client."""
    return AwsKmsProvider(kms_key_id, client=kms_client)


# -- the conformance suite ----------------------------------------------------------------------------


class TestAwsKmsConformance(KeyProviderConformance):
    """The shared suite, with an injected client and with the default client the provider builds."""

    @pytest.fixture(params=["injected-client", "default-client"])
    def provider(
        self, request: pytest.FixtureRequest, kms_client: Any, kms_key_id: str, moto_endpoint: str
    ) -> KeyProvider:
        if request.param == "injected-client":
            return AwsKmsProvider(kms_key_id, client=kms_client)
        return AwsKmsProvider(kms_key_id, region="us-east-1", endpoint_url=moto_endpoint)

    @pytest.fixture
    def bindings(self) -> Mapping[str, Collection[str]]:
        # kms+context binds the encryption context, and through aws:x-amz-cek-alg the content algorithm.
        return {**DEFAULT_BINDINGS, A.KMS_CONTEXT: frozenset({"encryption_context", "content_algorithm"})}


# -- what is sent to KMS --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_algorithm", "reserved"),
    [
        (C.AES_GCM_COMMITTING, "115"),
        (C.AES_GCM, "AES/GCM/NoPadding"),
        (C.CSE_V1, "cse-v1/AES-256-GCM-HKDF-SHA256-STREAM"),
    ],
)
def test_generate_data_key_sends_the_reserved_context(
    provider: AwsKmsProvider, kms_client: Any, key_arn: str, content_algorithm: str, reserved: str
) -> None:
    request = _v3(content_algorithm=content_algorithm)
    key = provider.generate_data_key(request)
    assert len(key.plaintext) == 32
    assert key.key_id == key_arn
    # The blob opens with exactly the user's context plus aws:x-amz-cek-alg, and with nothing else.
    sent = {**CONTEXT, "aws:x-amz-cek-alg": reserved}
    assert (
        kms_client.decrypt(CiphertextBlob=key.ciphertext, EncryptionContext=sent)["Plaintext"]
        == key.plaintext
    )
    for wrong in (CONTEXT, {**sent, "extra": "x"}, {**CONTEXT, "aws:x-amz-cek-alg": "other"}):
        with pytest.raises(ClientError, match="InvalidCiphertext"):
            kms_client.decrypt(CiphertextBlob=key.ciphertext, EncryptionContext=wrong)
    # The reader may pass the stored context (with the reserved entry) or the user's context.
    assert provider.unwrap(key.ciphertext, _v3(sent, content_algorithm=content_algorithm)) == key.plaintext
    assert provider.unwrap(key.ciphertext, _v3(content_algorithm=content_algorithm)) == key.plaintext


def test_wrap_sends_the_same_context(provider: AwsKmsProvider, kms_client: Any) -> None:
    secret = bytes(range(32))
    blob = provider.wrap(secret, _v3())
    sent = {**CONTEXT, RESERVED_CONTEXT_KEY: "115"}
    assert kms_client.decrypt(CiphertextBlob=blob, EncryptionContext=sent)["Plaintext"] == secret
    assert provider.unwrap(blob, _v3()) == secret


def test_reserved_key_in_the_users_context(provider: AwsKmsProvider) -> None:
    with pytest.raises(ConfigurationError, match="aws:x-amz-cek-alg"):
        provider.generate_data_key(_v3({**CONTEXT, RESERVED_CONTEXT_KEY: "AES/GCM/NoPadding"}))
    with pytest.raises(ConfigurationError, match="reserves"):
        provider.wrap(bytes(32), _v3({RESERVED_CONTEXT_KEY: "x"}))
    # A stored context passed back (rewrap) names the content algorithm itself: accepted, not doubled.
    stored = {**CONTEXT, RESERVED_CONTEXT_KEY: "115"}
    key = provider.generate_data_key(_v3(stored))
    assert provider.unwrap(key.ciphertext, _v3(stored)) == key.plaintext


def test_stored_context_contradicting_the_content_algorithm(provider: AwsKmsProvider) -> None:
    key = provider.generate_data_key(_v3())
    stored_v3 = {**CONTEXT, RESERVED_CONTEXT_KEY: "115"}
    with pytest.raises(MetadataError, match="115"):
        provider.unwrap(key.ciphertext, _v3(stored_v3, content_algorithm=C.AES_GCM))


def test_wrong_context_fails_opaquely(provider: AwsKmsProvider) -> None:
    key = provider.generate_data_key(_v3())
    for context in ({}, {**CONTEXT, "object": "bucket/other"}, {"purpose": "test"}):
        with pytest.raises(DecryptionError) as info:
            provider.unwrap(key.ciphertext, _v3(context))
        _assert_opaque(info.value)
        assert isinstance(info.value.__cause__, ClientError)


def test_damaged_or_oversized_blob_fails_opaquely(provider: AwsKmsProvider) -> None:
    key = provider.generate_data_key(_v3())
    for blob in (key.ciphertext[:-1], key.ciphertext[:10], b"\x00" * 6145, b"garbage"):
        with pytest.raises(DecryptionError) as info:
            provider.unwrap(blob, _v3())
        _assert_opaque(info.value)


# -- key selection ---------------------------------------------------------------------------------------


def test_another_key_fails_opaquely(
    kms_client: Any, kms_key_id: str, make_key: Callable[[], str], provider: AwsKmsProvider
) -> None:
    other = AwsKmsProvider(make_key(), client=kms_client)
    key = provider.generate_data_key(_v3())
    # S3 records no key id: the wrong key is asked, and KMS refuses.
    with pytest.raises(DecryptionError) as info:
        other.unwrap(key.ciphertext, _v3())
    _assert_opaque(info.value)
    # Where the key ARN is recorded (cse-v1), the other key declines without asking KMS.
    wrapped = WrappedKey(wrap_algorithm=A.KMS_CONTEXT, ciphertext=key.ciphertext, key_id=key.key_id)
    assert provider.can_unwrap(wrapped)
    assert not other.can_unwrap(wrapped)
    with pytest.raises(NoMatchingKeyError, match=kms_key_id):
        other.unwrap(key.ciphertext, _v3(key_id=key.key_id))


def test_can_unwrap(kms_client: Any, provider: AwsKmsProvider, key_arn: str, kms_key_id: str) -> None:
    def wrapped(algorithm: str = A.KMS_CONTEXT, **fields: Any) -> WrappedKey:
        return WrappedKey(wrap_algorithm=algorithm, ciphertext=b"x", **fields)

    by_arn = AwsKmsProvider(key_arn, client=kms_client)
    for p in (provider, by_arn):
        assert p.can_unwrap(wrapped())
        assert p.can_unwrap(wrapped(provider="aws-kms", key_id=key_arn))
        assert p.can_unwrap(wrapped(key_id=kms_key_id))
        assert p.can_unwrap(wrapped(key_id="alias/anything"))  # an alias may name our key
        assert p.can_unwrap(wrapped(key_id="not a kms key"))  # an unknown spelling: let KMS decide
        assert not p.can_unwrap(wrapped(key_id=str(uuid.uuid4())))
        assert not p.can_unwrap(wrapped(key_id=key_arn.replace(kms_key_id, str(uuid.uuid4()))))
        assert not p.can_unwrap(wrapped(provider="rsa"))
        assert not p.can_unwrap(wrapped(A.RSA_OAEP_SHA1))
        assert not p.can_unwrap(wrapped(A.KMS))  # legacy needs allow_legacy
    # Only an ARN tells the account and region.
    assert not by_arn.can_unwrap(wrapped(key_id=key_arn.replace(ACCOUNT, OTHER_ACCOUNT)))
    assert not by_arn.can_unwrap(wrapped(key_id=key_arn.replace("us-east-1", "eu-west-1")))
    assert not by_arn.can_unwrap(wrapped(key_id=f"arn:aws:kms:us-east-1:{OTHER_ACCOUNT}:alias/x"))
    assert by_arn.can_unwrap(wrapped(key_id=f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/x"))


def test_alias_and_alias_arn(kms_client: Any, kms_key_id: str, key_arn: str) -> None:
    name = f"alias/cse-test-{uuid.uuid4().hex[:8]}"
    kms_client.create_alias(AliasName=name, TargetKeyId=kms_key_id)
    alias_arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:{name}"
    by_id = AwsKmsProvider(kms_key_id, client=kms_client)
    for uri in (f"aws-kms://{name}", f"aws-kms://{alias_arn}"):
        via_alias = AwsKmsProvider.from_uri(uri, client=kms_client)
        key = via_alias.generate_data_key(_v3())
        assert key.key_id == key_arn  # KMS reports the key's ARN
        assert by_id.unwrap(key.ciphertext, _v3()) == key.plaintext
        assert via_alias.unwrap(by_id.wrap(b"k" * 32, _v3()), _v3()) == b"k" * 32


def test_key_arn(kms_client: Any, key_arn: str) -> None:
    provider = AwsKmsProvider.from_uri(f"aws-kms://{key_arn}", client=kms_client)
    assert provider.key_id == key_arn
    assert provider.region == "us-east-1"
    key = provider.generate_data_key(_v3())
    assert provider.unwrap(key.ciphertext, _v3(key_id=key.key_id)) == key.plaintext


# -- discovery -------------------------------------------------------------------------------------------


def test_discovery_decrypts_any_key_of_an_allowed_account(
    kms_client: Any, make_key: Callable[[], str], provider: AwsKmsProvider
) -> None:
    writers = [provider, AwsKmsProvider(make_key(), client=kms_client)]
    reader = AwsKmsProvider(discovery=True, discovery_accounts=[ACCOUNT], client=kms_client)
    assert not reader.can_encrypt
    assert reader.key_id == ""
    for writer in writers:
        key = writer.generate_data_key(_v3())
        assert reader.unwrap(key.ciphertext, _v3()) == key.plaintext
        assert reader.unwrap(key.ciphertext, _v3(key_id=key.key_id)) == key.plaintext
        assert reader.can_unwrap(WrappedKey(wrap_algorithm=A.KMS_CONTEXT, ciphertext=b"x", key_id=key.key_id))
        with pytest.raises(DecryptionError) as info:
            reader.unwrap(key.ciphertext, _v3({"other": "context"}))
        _assert_opaque(info.value)
    with pytest.raises(ConfigurationError, match="discovery-only"):
        reader.generate_data_key(_v3())


def test_discovery_refuses_other_accounts_and_regions(provider: AwsKmsProvider, kms_client: Any) -> None:
    key = provider.generate_data_key(_v3())
    assert key.key_id is not None
    wrapped = WrappedKey(wrap_algorithm=A.KMS_CONTEXT, ciphertext=key.ciphertext, key_id=key.key_id)
    other_account = AwsKmsProvider(discovery=True, discovery_accounts=OTHER_ACCOUNT, client=kms_client)
    other_region = AwsKmsProvider(
        discovery=True, discovery_accounts=[ACCOUNT], discovery_regions=["eu-west-1"], client=kms_client
    )
    for reader, named in ((other_account, ACCOUNT), (other_region, "us-east-1")):
        assert not reader.can_unwrap(wrapped)
        # Refused before the call when the ARN is recorded, and after it (from the ARN KMS reports) when not.
        for request in (_v3(key_id=key.key_id), _v3()):
            with pytest.raises(NoMatchingKeyError, match=f"discovery refuses .* {named} is not one of"):
                reader.unwrap(key.ciphertext, request)


def test_discovery_across_accounts(moto_endpoint: str) -> None:
    """A key of another account (moto keeps one backend per account, chosen by a header)."""
    other = boto3.client("kms", endpoint_url=moto_endpoint, region_name="us-east-1")

    def as_other_account(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = OTHER_ACCOUNT

    other.meta.events.register("before-sign.kms.*", as_other_account)
    key_id = other.create_key()["KeyMetadata"]["KeyId"]
    key = AwsKmsProvider(key_id, client=other).generate_data_key(_v3())
    assert key.key_id is not None and f":{OTHER_ACCOUNT}:" in key.key_id
    trusting = AwsKmsProvider(discovery=True, discovery_accounts=[OTHER_ACCOUNT], client=other)
    assert trusting.unwrap(key.ciphertext, _v3()) == key.plaintext
    wary = AwsKmsProvider(discovery=True, discovery_accounts=[ACCOUNT], client=other)
    with pytest.raises(NoMatchingKeyError, match=f"its account {OTHER_ACCOUNT}"):
        wary.unwrap(key.ciphertext, _v3())


def test_discovery_settings_are_checked(kms_client: Any) -> None:
    with pytest.raises(ConfigurationError, match="discovery_accounts"):
        AwsKmsProvider(discovery=True, client=kms_client)
    with pytest.raises(ConfigurationError, match="discovery mode only"):
        AwsKmsProvider("alias/x", discovery_accounts=[ACCOUNT], client=kms_client)
    with pytest.raises(ConfigurationError, match="not an AWS account id"):
        AwsKmsProvider(discovery=True, discovery_accounts=["1234"], client=kms_client)
    with pytest.raises(ConfigurationError, match="not an AWS region"):
        AwsKmsProvider(discovery=True, discovery_accounts=[ACCOUNT], discovery_regions=["US East"])
    with pytest.raises(ConfigurationError, match="needs a KMS key"):
        AwsKmsProvider(client=kms_client)


# -- legacy kms ------------------------------------------------------------------------------------------


def test_legacy_kms_round_trip_only_with_allow_legacy(kms_client: Any, kms_key_id: str) -> None:
    secret = bytes(range(32))
    matdesc = {"kms_cmk_id": kms_key_id}
    blob = kms_client.encrypt(KeyId=kms_key_id, Plaintext=secret, EncryptionContext=matdesc)["CiphertextBlob"]
    legacy = AwsKmsProvider(kms_key_id, client=kms_client, allow_legacy=True)
    base = KeyRequest(wrap_algorithm=A.KMS, content_algorithm=C.AES_CBC)
    # The stored matdesc as the encryption context, or as the material description, or nothing at all.
    for request in (
        KeyRequest(wrap_algorithm=A.KMS, content_algorithm=C.AES_CBC, encryption_context=matdesc),
        KeyRequest(wrap_algorithm=A.KMS, content_algorithm=C.AES_CBC, material_description=matdesc),
        base,
    ):
        assert legacy.unwrap(blob, request) == secret
    assert legacy.can_unwrap(WrappedKey(wrap_algorithm=A.KMS, ciphertext=blob))
    with pytest.raises(DecryptionError) as info:
        legacy.unwrap(blob, KeyRequest(A.KMS, C.AES_CBC, encryption_context={"kms_cmk_id": "alias/other"}))
    _assert_opaque(info.value)
    with pytest.raises(ConfigurationError, match="never writes"):
        legacy.wrap(secret, base)
    with pytest.raises(ConfigurationError, match="never writes"):
        legacy.generate_data_key(base)

    strict = AwsKmsProvider(kms_key_id, client=kms_client)
    assert not strict.can_unwrap(WrappedKey(wrap_algorithm=A.KMS, ciphertext=blob))
    with pytest.raises(ConfigurationError, match="allow_legacy=True"):
        strict.unwrap(blob, base)
    assert "legacy kms readable" in legacy.describe()


# -- key URIs ---------------------------------------------------------------------------------------------


KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
ARN = f"arn:aws:kms:eu-west-1:{OTHER_ACCOUNT}:key/{KEY}"


@pytest.mark.parametrize(
    ("uri", "key_id", "region"),
    [
        (f"aws-kms://{KEY}", KEY, None),
        (f"AWS-KMS://{KEY}?region=eu-central-1", KEY, "eu-central-1"),
        (f"aws-kms://{ARN}", ARN, "eu-west-1"),
        (f"aws-kms://{ARN}?region=eu-west-1", ARN, "eu-west-1"),
        ("aws-kms://alias/my/key_1-x", "alias/my/key_1-x", None),
        (
            f"aws-kms://arn:aws:kms:us-east-2:{OTHER_ACCOUNT}:alias/a",
            f"arn:aws:kms:us-east-2:{OTHER_ACCOUNT}:alias/a",
            "us-east-2",
        ),
        (
            f"aws-kms://arn:aws-cn:kms:cn-north-1:{OTHER_ACCOUNT}:key/{KEY}",
            f"arn:aws-cn:kms:cn-north-1:{OTHER_ACCOUNT}:key/{KEY}",
            "cn-north-1",
        ),
        ("aws-kms://mrk-1234abcd12ab34cd56ef1234567890ab", "mrk-1234abcd12ab34cd56ef1234567890ab", None),
        ("aws-kms://alias%2Fencoded", "alias/encoded", None),
    ],
)
def test_uri_keys(uri: str, key_id: str, region: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    provider = AwsKmsProvider.from_uri(uri)
    assert provider.key_id == key_id
    assert provider.region == region
    assert provider.can_encrypt
    assert not provider.discovery and not provider.allow_legacy
    if region is not None:
        assert provider.describe() == f"aws-kms://{key_id} (region {region})"


def test_uri_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    uri = (
        f"aws-kms://{KEY}?region=us-west-2&connect-timeout=2&read-timeout=10.5&max-attempts=2&deadline=20"
        "&allow-legacy=true&endpoint-url=http://127.0.0.1:1"
    )
    provider = AwsKmsProvider.from_uri(uri)
    assert provider.region == "us-west-2" and provider.allow_legacy
    config = provider.client.meta.config
    assert provider.client.meta.region_name == "us-west-2"
    assert provider.client.meta.endpoint_url == "http://127.0.0.1:1"
    assert (config.connect_timeout, config.read_timeout) == (2.0, 10.5)
    # botocore sends once; the provider owns the retries (cse.retry)
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}
    policy = provider._retry_policy()
    assert (policy.max_attempts, policy.deadline, policy.attempt_timeout) == (2, 20.0, 10.5)
    assert "cse-aws-kms/" in config.user_agent_extra

    defaults = AwsKmsProvider(KEY, region="us-east-1").client.meta.config
    assert (defaults.connect_timeout, defaults.read_timeout) == (2.0, 4.0)
    assert defaults.retries == {"total_max_attempts": 1, "mode": "standard"}
    policy = AwsKmsProvider(KEY, region="us-east-1")._retry_policy()
    assert (policy.max_attempts, policy.deadline) == (3, 15.0)

    discovery = AwsKmsProvider.from_uri(
        f"aws-kms://?discovery=true&discovery-accounts={ACCOUNT},{OTHER_ACCOUNT}"
        "&discovery-regions=us-east-1&discovery-regions=eu-west-1&region=us-east-1"
    )
    assert discovery.discovery and not discovery.can_encrypt
    assert discovery.discovery_accounts == frozenset({ACCOUNT, OTHER_ACCOUNT})
    assert discovery.discovery_regions == frozenset({"us-east-1", "eu-west-1"})
    assert discovery.describe() == (
        f"aws-kms discovery-only provider (region us-east-1; discovery in accounts {OTHER_ACCOUNT}, "
        f"{ACCOUNT}, regions eu-west-1, us-east-1)"
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("rsa:///k.pem", "not an aws-kms key URI"),
        ("aws-kms:alias/x", "not an aws-kms key URI"),
        ("aws-kms://", "needs a KMS key"),
        ("aws-kms://my-key", "alias/my-key"),
        ("aws-kms://alias/", "not a valid alias"),
        ("aws-kms://arn:aws:kms:us-east-1:1111:key/x", "not a KMS key or alias ARN"),
        (f"aws-kms://arn:aws:kms:us-east-1:{ACCOUNT}:key/not-a-key-id", "does not end in a key id"),
        (f"aws-kms://arn:aws:s3:::bucket/{KEY}", "not a KMS key or alias ARN"),
        (f"aws-kms://{ARN}?region=us-east-1", "is in region eu-west-1"),
        (f"aws-kms://{KEY}?colour=blue", "unknown parameter 'colour'"),
        (f"aws-kms://{KEY}?region=us-east-1&region=us-east-2", "gives region twice"),
        (f"aws-kms://{KEY}?region=", "has no value"),
        (f"aws-kms://{KEY}?region=Mars", "not an AWS region"),
        (f"aws-kms://{KEY}?discovery=maybe", "not a boolean"),
        (f"aws-kms://{KEY}?connect-timeout=soon", "not a number of seconds"),
        (f"aws-kms://{KEY}?connect-timeout=0", "positive number"),
        (f"aws-kms://{KEY}?read-timeout=inf", "positive number"),
        (f"aws-kms://{KEY}?max-attempts=1.5", "not a whole number"),
        (f"aws-kms://{KEY}?max-attempts=0", "at least 1"),
        (f"aws-kms://{KEY}?discovery=true", "discovery-accounts=111122223333"),
        (f"aws-kms://{KEY}?discovery-accounts={ACCOUNT}", "discovery mode only"),
        ("aws-kms://?discovery=true&discovery-accounts=12", "not an AWS account id"),
        (f"aws-kms://{KEY}#frag", "fragment"),
        (f"aws-kms://{KEY}?&&", "malformed"),
        ("aws-kms://alias/a b", "white space"),
    ],
)
def test_uri_errors(uri: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        AwsKmsProvider.from_uri(uri)
    assert "aws-kms:" in str(info.value) or "rsa:" in str(info.value)


def test_client_settings_clash_with_an_injected_client(kms_client: Any) -> None:
    with pytest.raises(ConfigurationError, match="connect_timeout, max_attempts configure"):
        AwsKmsProvider(KEY, client=kms_client, connect_timeout=1, max_attempts=2)
    with pytest.raises(ConfigurationError, match="injected KMS client is in region us-east-1"):
        AwsKmsProvider(ARN, client=kms_client)
    assert AwsKmsProvider(KEY, client=kms_client).region == "us-east-1"


def test_parse_key_reference() -> None:
    ref = parse_key_reference(ARN)
    assert (ref.partition, ref.region, ref.account, ref.resource) == ("aws", "eu-west-1", OTHER_ACCOUNT, KEY)
    assert ref.is_arn and not ref.is_alias
    assert parse_key_reference(KEY).may_be(ref)
    assert not parse_key_reference(ARN.replace("eu-west-1", "us-east-1")).may_be(ref)
    mrk = "mrk-1234abcd12ab34cd56ef1234567890ab"
    replica = parse_key_reference(f"arn:aws:kms:us-east-1:{OTHER_ACCOUNT}:key/{mrk}")
    assert replica.may_be(parse_key_reference(f"arn:aws:kms:eu-west-1:{OTHER_ACCOUNT}:key/{mrk}"))
    assert parse_key_reference("alias/x").may_be(ref)
    assert not parse_key_reference(f"arn:aws:kms:eu-west-1:{ACCOUNT}:alias/x").may_be(ref)


def test_entry_point() -> None:
    assert provider_class("aws-kms") is AwsKmsProvider
    provider = open_provider(f"aws-kms://{ARN}")
    assert isinstance(provider, AwsKmsProvider)
    assert provider.key_id == ARN


# -- clients and the AWS environment ---------------------------------------------------------------------


def test_aws_endpoint_url_kms_is_honoured(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, kms_client: Any, kms_key_id: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto_endpoint)
    provider = AwsKmsProvider.from_uri(f"aws-kms://{kms_key_id}?region=us-east-1")
    key = provider.generate_data_key(_v3())
    assert provider.client.meta.endpoint_url == moto_endpoint
    sent = {**CONTEXT, RESERVED_CONTEXT_KEY: "115"}
    assert (
        kms_client.decrypt(CiphertextBlob=key.ciphertext, EncryptionContext=sent)["Plaintext"]
        == key.plaintext
    )
    assert provider.unwrap(key.ciphertext, _v3()) == key.plaintext


def test_region_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    assert AwsKmsProvider(KEY).client.meta.region_name == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")  # boto3 ignores it; the provider reads it
    provider = AwsKmsProvider(KEY)
    assert provider.describe() == f"aws-kms://{KEY} (region ap-southeast-2)"
    assert provider.client.meta.region_name == "ap-southeast-2"
    assert AwsKmsProvider(ARN).client.meta.region_name == "eu-west-1"  # the ARN wins
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    nowhere = AwsKmsProvider(KEY)
    assert nowhere.describe() == f"aws-kms://{KEY} (region not configured)"
    with pytest.raises(ConfigurationError, match="no AWS region .* AWS_REGION"):
        nowhere.generate_data_key(_v3())


def test_default_client_is_built_once_across_threads(moto_endpoint: str) -> None:
    provider = AwsKmsProvider(KEY, region="us-east-1", endpoint_url=moto_endpoint)
    barrier = threading.Barrier(8)

    def get(_: int) -> int:
        barrier.wait(timeout=30)
        return id(provider.client)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert len(set(pool.map(get, range(8)))) == 1


def test_dead_endpoint_fails_with_kms_error(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> None:
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    provider = AwsKmsProvider.from_uri(
        f"aws-kms://{KEY}?region=us-east-1&connect-timeout=1&max-attempts=1&endpoint-url={dead}"
    )
    with pytest.raises(KmsError) as info:
        provider.generate_data_key(_v3())
    message = str(info.value)
    for part in ("127.0.0.1:9", "GenerateDataKey", KEY, "us-east-1", "1 attempt(s) in"):
        assert part in message
    assert info.value.__cause__ is not None
    # The same through AWS_ENDPOINT_URL_KMS, on unwrap.
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", dead)
    via_env = AwsKmsProvider.from_uri(f"aws-kms://{KEY}?region=us-east-1&connect-timeout=1&max-attempts=1")
    with pytest.raises(KmsError, match=r"127\.0\.0\.1:9.*Decrypt"):
        via_env.unwrap(b"blob", _v3())


def test_kms_refusals_are_kms_errors(kms_client: Any, provider: AwsKmsProvider) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(
        KmsError, match=f"GenerateDataKey with key {missing} in region us-east-1 failed: NotFound"
    ):
        AwsKmsProvider(missing, client=kms_client).generate_data_key(_v3())
    with pytest.raises(
        KmsError, match="Encrypt with key alias/no-such-alias in region us-east-1 .*NotFound"
    ) as info:
        AwsKmsProvider("alias/no-such-alias", client=kms_client).wrap(bytes(32), _v3())
    assert isinstance(info.value.__cause__, ClientError)
    assert "check the key id or alias" in str(info.value)
    key = provider.generate_data_key(_v3())
    with pytest.raises(KmsError, match="Decrypt with key alias/no-such-alias .*NotFound"):
        AwsKmsProvider("alias/no-such-alias", client=kms_client).unwrap(key.ciphertext, _v3())


def _client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_error_mapping_of_what_moto_does_not_send(moto_endpoint: str) -> None:
    """Real KMS answers moto never gives: policy denials, throttling, disabled keys, bad credentials."""
    provider = AwsKmsProvider(KEY, region="us-east-1", endpoint_url=moto_endpoint, max_attempts=4)
    client = provider.client
    denial = "User: arn:aws:iam::111122223333:user/x is not authorized to perform: kms:Decrypt on resource: k"
    cases = [
        ("AccessDeniedException", denial, "Decrypt", KmsError, "must allow kms:Decrypt"),
        ("AccessDeniedException", denial, "GenerateDataKey", KmsError, "must allow kms:GenerateDataKey"),
        (
            "AccessDeniedException",
            "The ciphertext refers to a customer master key that does not exist, does not exist in this "
            "region, or you are not allowed to access.",
            "Decrypt",
            DecryptionError,
            AUTHENTICATION_FAILED,
        ),
        ("IncorrectKeyException", "", "Decrypt", DecryptionError, AUTHENTICATION_FAILED),
        ("InvalidCiphertextException", "", "Decrypt", DecryptionError, AUTHENTICATION_FAILED),
        ("ThrottlingException", "Rate exceeded", "Decrypt", KmsError, "still throttled; raise max-attempts"),
        ("DisabledException", "k is disabled.", "Encrypt", KmsError, "the key is disabled"),
        ("KMSInvalidStateException", "pending deletion", "Decrypt", KmsError, "pending deletion"),
        ("UnrecognizedClientException", "bad token", "Encrypt", KmsError, "check the AWS credentials"),
    ]
    for code, message, operation, kind, expected in cases:
        mapped = provider._map_error(_client_error(code, message, operation), operation, KEY, client)
        # A KmsError may now be one of its subclasses (KmsAccessDeniedError ...); opaque stays exact.
        assert isinstance(mapped, kind) if kind is KmsError else type(mapped) is kind, code
        assert expected in str(mapped), code
        if kind is KmsError:
            assert f"{operation} with key {KEY} in region us-east-1" in str(mapped)


def test_no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, moto_endpoint: str) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    provider = AwsKmsProvider(KEY, region="us-east-1", endpoint_url=moto_endpoint)
    with pytest.raises(KmsError, match="no usable AWS credentials"):
        provider.generate_data_key(_v3())


def test_repr_and_describe(provider: AwsKmsProvider, kms_key_id: str) -> None:
    assert provider.describe() == f"aws-kms://{kms_key_id} (region us-east-1)"
    assert repr(provider).startswith(f"AwsKmsProvider(key_id={kms_key_id!r}, region='us-east-1'")
    key = provider.generate_data_key(_v3())
    for text in (repr(provider), str(provider), provider.describe(), repr(key)):
        assert key.plaintext.hex() not in text


# -- the official S3 Encryption Client's KmsKeyring ------------------------------------------------------


@pytest.fixture
def keyring_client(moto_endpoint: str) -> Any:
    """A KMS client of its own (KmsKeyring appends to the client's user agent)."""
    return boto3.client("kms", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.mark.parametrize(
    "suite", ["ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY", "ALG_AES_256_GCM_IV12_TAG16_NO_KDF"]
)
def test_official_kms_keyring_interop(
    keyring_client: Any, kms_key_id: str, provider: AwsKmsProvider, suite: str
) -> None:
    # The official client is a dev-group tool; `nox -s resolutions` installs only the distributions' ranges.
    pytest.importorskip("s3_encryption")
    from s3_encryption.materials.encrypted_data_key import EncryptedDataKey
    from s3_encryption.materials.kms_keyring import KmsKeyring
    from s3_encryption.materials.materials import AlgorithmSuite, DecryptionMaterials, EncryptionMaterials

    algorithm = AlgorithmSuite[suite]
    content = C.AES_GCM_COMMITTING if algorithm.suite_id == 0x73 else C.AES_GCM
    keyring = KmsKeyring(kms_client=keyring_client, kms_key_id=kms_key_id)

    # The official keyring encrypts; cse unwraps with the context the keyring stores.
    materials = keyring.on_encrypt(
        EncryptionMaterials(encryption_algorithm=algorithm, encryption_context=dict(CONTEXT))
    )
    stored = dict(materials.encryption_context)
    assert stored == {**CONTEXT, RESERVED_CONTEXT_KEY: content}
    blob = materials.encrypted_data_key.encrypted_data_key
    request = KeyRequest(A.KMS_CONTEXT, content, encryption_context=stored)
    assert provider.unwrap(blob, request) == materials.plaintext_data_key

    # cse generates; the official keyring decrypts with the stored context cse's S3 format records.
    key = provider.generate_data_key(KeyRequest(A.KMS_CONTEXT, content, encryption_context=dict(CONTEXT)))
    decrypted = keyring.on_decrypt(
        DecryptionMaterials(
            encrypted_data_keys=[
                EncryptedDataKey(
                    key_provider_info="kms+context",
                    key_provider_id=b"S3Keyring",
                    encrypted_data_key=key.ciphertext,
                )
            ],
            encryption_context_stored={**CONTEXT, RESERVED_CONTEXT_KEY: content},
            encryption_context_from_request=dict(CONTEXT),
        )
    )
    assert decrypted.plaintext_data_key == key.plaintext


def test_official_keyring_legacy_kms_context(keyring_client: Any, kms_key_id: str, kms_client: Any) -> None:
    """For legacy ``kms`` both send the stored matdesc as the encryption context."""
    # The official client is a dev-group tool; `nox -s resolutions` installs only the distributions' ranges.
    pytest.importorskip("s3_encryption")
    from s3_encryption.materials.encrypted_data_key import EncryptedDataKey
    from s3_encryption.materials.kms_keyring import KmsKeyring
    from s3_encryption.materials.materials import DecryptionMaterials

    matdesc = {"kms_cmk_id": kms_key_id, "extra": "entry"}
    secret = bytes(range(32))
    blob = kms_client.encrypt(KeyId=kms_key_id, Plaintext=secret, EncryptionContext=matdesc)["CiphertextBlob"]
    keyring = KmsKeyring(
        kms_client=keyring_client, kms_key_id=kms_key_id, enable_legacy_wrapping_algorithms=True
    )
    official = keyring.on_decrypt(
        DecryptionMaterials(
            encrypted_data_keys=[
                EncryptedDataKey(
                    key_provider_info="kms", key_provider_id=b"S3Keyring", encrypted_data_key=blob
                )
            ],
            encryption_context_stored=matdesc,
        )
    )
    assert official.plaintext_data_key == secret
    legacy = AwsKmsProvider(kms_key_id, client=kms_client, allow_legacy=True)
    assert legacy.unwrap(blob, KeyRequest(A.KMS, C.AES_CBC, encryption_context=matdesc)) == secret


# -- the public API --------------------------------------------------------------------------------------


def test_public_api() -> None:
    assert sorted(cse_aws_kms.__all__) == sorted(
        [
            "DEFAULT_CONNECT_TIMEOUT",
            "DEFAULT_MAX_ATTEMPTS",
            "DEFAULT_READ_TIMEOUT",
            "LEGACY_CONTEXT_KEY",
            "RESERVED_CONTEXT_KEY",
            "AwsKmsProvider",
            "KeyReference",
            "__version__",
            "parse_key_reference",
        ]
    )
    assert AwsKmsProvider.__init__.__doc__
    for module in (cse_aws_kms, cse_aws_kms.provider, cse_aws_kms.names):
        assert module.__doc__
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__, f"{module.__name__}.{name} has no docstring"
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    func = (
                        member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                    )
                    if callable(func):
                        assert func.__doc__, f"{name}.{attr} has no docstring"


def test_importing_does_not_import_boto3() -> None:
    import subprocess
    import sys

    code = "import sys, cse_aws_kms; print('boto3' in sys.modules, 'botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
