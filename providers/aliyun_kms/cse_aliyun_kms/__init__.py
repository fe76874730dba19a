"""Alibaba Cloud KMS for cse: the ``aliyun-kms`` key provider and a KMS server emulator for tests.

:class:`AliyunKmsProvider` wraps OSS content keys and IVs with Alibaba Cloud KMS (``KMS/ALICLOUD``), as
oss2, alibabacloud-oss-v2, Go and Java do; key URIs look like ``aliyun-kms://cn-hangzhou/alias/backups``.
:mod:`cse_aliyun_kms.testing` holds :class:`~cse_aliyun_kms.testing.KmsEmulator`, an in-process KMS.
"""

from cse_aliyun_kms.provider import AliyunKmsProvider

__all__ = ["AliyunKmsProvider"]
