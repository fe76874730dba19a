"""Test doubles for Alibaba Cloud KMS: :class:`KmsEmulator`, an in-process KMS RPC server.

Run it standalone with ``python -m cse_aliyun_kms.testing``.
"""

from cse_aliyun_kms.testing._emulator import (
    KmsEmulator,
    KmsError,
    RequestRecord,
    canonical_string_to_sign,
    percent_encode,
)

__all__ = ["KmsEmulator", "KmsError", "RequestRecord", "canonical_string_to_sign", "percent_encode"]
