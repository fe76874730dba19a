"""A faithful in-process Alibaba Cloud OSS server emulator for tests (stdlib only).

``OssEmulator`` serves the OSS wire protocol on a local port so the official SDKs (oss2, alibabacloud-oss-v2)
work against it unmodified; ``python -m cse_oss.testing`` runs one from the command line.
"""

from cse_oss.crc64 import Crc64, crc64, crc64_combine

from .server import OssEmulator, OssError, RequestRecord

__all__ = ["Crc64", "OssEmulator", "OssError", "RequestRecord", "crc64", "crc64_combine"]
