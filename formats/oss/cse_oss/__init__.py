"""Alibaba Cloud OSS for cse: the OSS client-side encryption metadata formats, and test doubles.

:class:`OssV2Format` (``oss-v2``) reads and writes the format of oss2, alibabacloud-oss-v2 and the Go, Java
and C++ OSS SDKs; :class:`OssV1Format` (``oss-v1``) recognises the legacy oss2 2.4-2.10 format. Both are
registered through the ``cse.formats`` entry points. The OSS server emulator lives in :mod:`cse_oss.testing`.
"""

from cse_oss.formats import OssV1Format, OssV2Format

__all__ = ["OssV1Format", "OssV2Format"]
