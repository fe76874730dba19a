"""A KMS endpoint that accepts connections and never answers fails within the configured timeout.

The endpoint is a real listening socket on 127.0.0.1 whose connections are accepted (by the kernel's
backlog and by a thread that holds them open) and never written to.
"""

from __future__ import annotations

import time

import pytest

from cse.exceptions import KmsError
from cse.providers import KeyRequest

cse_aws_kms = pytest.importorskip("cse_aws_kms")


@pytest.mark.parametrize("build", ["arguments", "uri"])
def test_a_stalled_kms_fails_within_the_configured_timeout(
    stalled_endpoint: str, build: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    if build == "arguments":
        provider = cse_aws_kms.AwsKmsProvider(
            "alias/stalled",
            region="us-east-1",
            endpoint_url=stalled_endpoint,
            connect_timeout=1,
            read_timeout=1,
            max_attempts=1,
        )
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", stalled_endpoint)
        provider = cse_aws_kms.AwsKmsProvider.from_uri(
            "aws-kms://alias/stalled?region=us-east-1&connect-timeout=1&read-timeout=1&max-attempts=1"
        )
    request = KeyRequest(wrap_algorithm="kms+context", content_algorithm="115")
    started = time.monotonic()
    with pytest.raises(KmsError) as info:
        provider.generate_data_key(request)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "timed out" in message.lower() or "timeout" in message.lower(), message
    assert "alias/stalled" in message
    # One attempt with a 1 s read timeout: the call gives up long before the botocore default of 60 s.
    assert elapsed < 15, f"took {elapsed:.1f} s"


# ------------------------------------------------------------------ the defaults: a total deadline


def _aws_default(stalled_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return cse_aws_kms.AwsKmsProvider("alias/stalled", region="us-east-1", endpoint_url=stalled_endpoint)


def _aliyun_default(stalled_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> object:
    cse_aliyun_kms = pytest.importorskip("cse_aliyun_kms")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "ak")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret")
    return cse_aliyun_kms.AliyunKmsProvider("cn-hangzhou", "alias/stalled", endpoint=stalled_endpoint)


@pytest.mark.parametrize("make", [_aws_default, _aliyun_default], ids=["aws", "aliyun"])
def test_a_stalled_kms_fails_within_the_default_deadline(
    stalled_endpoint: str, make: object, monkeypatch: pytest.MonkeyPatch, record_property: object
) -> None:
    """With no timeout given, a KMS that never answers fails one call in 10 to 15 s (3 attempts of a 4 s
    read timeout, within a 15 s deadline), and the error says where, how often and how long."""
    provider = make(stalled_endpoint, monkeypatch)  # type: ignore[operator]
    if provider.scheme == "aws-kms":
        request = KeyRequest(wrap_algorithm="kms+context", content_algorithm="115")
        call = lambda: provider.generate_data_key(request)  # noqa: E731
    else:
        request = KeyRequest(wrap_algorithm="KMS/ALICLOUD", content_algorithm="AES/CTR/NoPadding")
        call = lambda: provider.wrap(bytes(32), request)  # noqa: E731
    started = time.monotonic()
    with pytest.raises(KmsError) as info:
        call()
    elapsed = time.monotonic() - started
    record_property("time_to_fail_s", round(elapsed, 2))
    print(f"\n{provider.scheme}: a stalled KMS failed the call after {elapsed:.1f} s with the defaults")
    message = str(info.value)
    assert 10 <= elapsed <= 15.5, f"took {elapsed:.1f} s: {message}"
    assert stalled_endpoint.removeprefix("http://") in message
    assert ("us-east-1" if provider.scheme == "aws-kms" else "cn-hangzhou") in message
    assert "3 attempt(s) in 1" in message and "deadline 15 s" in message


def test_the_deadline_in_the_uri_bounds_every_attempt(
    stalled_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", stalled_endpoint)
    provider = cse_aws_kms.AwsKmsProvider.from_uri(
        "aws-kms://alias/stalled?region=us-east-1&read-timeout=1&max-attempts=50&deadline=3"
    )
    started = time.monotonic()
    with pytest.raises(KmsError, match=r"attempt\(s\) in \d.*deadline 3 s, the deadline was reached"):
        provider.generate_data_key(KeyRequest(wrap_algorithm="kms+context", content_algorithm="115"))
    assert time.monotonic() - started < 4


def test_a_refused_connection_is_retried_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens: each attempt fails at once, is retried after a short jittered backoff, and the call
    fails in well under a second, naming the 3 attempts."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    provider = cse_aws_kms.AwsKmsProvider(
        "alias/x", region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}"
    )
    started = time.monotonic()
    with pytest.raises(KmsError, match=r"3 attempt\(s\).*all attempts used"):
        provider.generate_data_key(KeyRequest(wrap_algorithm="kms+context", content_algorithm="115"))
    assert time.monotonic() - started < 3


def test_a_refusal_is_not_retried(moto_endpoint: str) -> None:
    """KMS answers (NotFound): a retry cannot help, so there is one attempt."""
    provider = cse_aws_kms.AwsKmsProvider(
        "alias/does-not-exist", region="us-east-1", endpoint_url=moto_endpoint
    )
    with pytest.raises(KmsError, match=r"NotFound.*1 attempt\(s\)"):
        provider.generate_data_key(KeyRequest(wrap_algorithm="kms+context", content_algorithm="115"))


# ----------------------------------------------------------------------------- the retry loop itself


def test_retry_call_retries_only_what_can_help() -> None:
    from cse.retry import Attempts, RetryPolicy, retry_call

    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TimeoutError("slow")
        return "ok"

    tally = Attempts()
    policy = RetryPolicy(max_attempts=3, base_delay=0.01)
    assert retry_call(flaky, policy, lambda e: isinstance(e, TimeoutError), tally) == "ok"
    assert tally.count == 3 and tally.stopped == "ok"

    calls.clear()
    tally = Attempts()
    with pytest.raises(TimeoutError):
        retry_call(flaky, policy, lambda e: False, tally)
    assert tally.count == 1 and tally.stopped == "not retryable"

    def always() -> str:
        raise TimeoutError("slow")

    tally = Attempts()
    with pytest.raises(TimeoutError):
        retry_call(
            always,
            RetryPolicy(max_attempts=100, deadline=0.3, base_delay=0.05, max_delay=0.05),
            lambda e: True,
            tally,
        )
    assert 1 < tally.count < 100 and tally.stopped == "deadline" and tally.elapsed < 0.5
    # an attempt whose timeout no longer fits in what is left does not start
    tally = Attempts()
    with pytest.raises(TimeoutError):
        retry_call(
            always, RetryPolicy(max_attempts=100, deadline=5, attempt_timeout=10), lambda e: True, tally
        )
    assert tally.count == 1 and tally.stopped == "deadline"


def test_backoff_is_jittered_and_capped() -> None:
    from cse.retry import RetryPolicy

    policy = RetryPolicy(base_delay=0.1, max_delay=2.0)
    delays = [policy.backoff(10) for _ in range(200)]
    assert max(delays) <= 2.0 and min(delays) >= 0 and len(set(delays)) > 150
    assert all(policy.backoff(0) <= 0.1 for _ in range(100))
