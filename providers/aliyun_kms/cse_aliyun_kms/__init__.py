"""Alibaba Cloud KMS for cse. This release ships the KMS server emulator in :mod:`cse_aliyun_kms.testing`."""

__all__: list[str] = []
