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
