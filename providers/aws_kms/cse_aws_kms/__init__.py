"""AWS KMS key provider for cse: ``kms+context`` (S3 V2/V3, cse-v1), legacy S3 V1 ``kms``, discovery decrypt.

Content keys come from KMS ``GenerateDataKey`` with the encryption context the official AWS S3 Encryption
Client sends (the user's context plus ``"aws:x-amz-cek-alg": <content algorithm>``), so objects written by
either client open with the other. Use it through a key URI (``cse ... --key aws-kms://alias/backups``) or
in Python::

    import boto3
    from cse_aws_kms import AwsKmsProvider

    provider = AwsKmsProvider("alias/backups")                      # default client, built on first use
    provider = AwsKmsProvider("alias/backups", client=boto3.client("kms", region_name="eu-west-1"))
    provider = AwsKmsProvider.from_uri("aws-kms://alias/backups?region=eu-west-1&connect-timeout=2")
    reader = AwsKmsProvider(discovery=True, discovery_accounts=["111122223333"])   # decrypt only

Key URI syntax (details in :mod:`cse_aws_kms.provider`)::

    aws-kms://KEY[?region=REGION][&endpoint-url=URL][&profile=NAME][&connect-timeout=SECONDS]
                 [&read-timeout=SECONDS][&max-attempts=N][&allow-legacy=true]
                 [&discovery=true&discovery-accounts=ACCOUNT,...[&discovery-regions=REGION,...]]

``KEY`` is a key id, key ARN (``arn:aws:kms:REGION:ACCOUNT:key/ID``), alias name (``alias/NAME``) or alias
ARN; it may be left out in discovery mode. The standard AWS environment variables (credentials,
``AWS_PROFILE``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_KMS``) apply to the default
client.
"""

from cse_aws_kms.names import KeyReference, parse_key_reference
from cse_aws_kms.provider import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READ_TIMEOUT,
    LEGACY_CONTEXT_KEY,
    RESERVED_CONTEXT_KEY,
    AwsKmsProvider,
)

#: The version of this distribution (sent in the default client's user agent).
__version__ = "0.1.0"

__all__ = [
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
