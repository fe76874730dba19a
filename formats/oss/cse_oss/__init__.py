"""Alibaba Cloud OSS for cse: the OSS client-side encryption metadata formats, the ``oss://`` store, and
test doubles.

:class:`OssV2Format` (``oss-v2``) reads and writes the format of oss2, alibabacloud-oss-v2 and the Go, Java
and C++ OSS SDKs; :class:`OssV1Format` (``oss-v1``) recognises the legacy oss2 2.4-2.10 format. Both are
registered through the ``cse.formats`` entry points. :class:`OssStore` (``oss://BUCKET/KEY``) works over an
``oss2.Bucket``; it is imported on first use, so that reading the formats does not import oss2. The OSS
server emulator lives in :mod:`cse_oss.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cse_oss.formats import OssV1Format, OssV2Format

if TYPE_CHECKING:
    from cse_oss.store import OssStore, default_bucket

__all__ = ["OssStore", "OssV1Format", "OssV2Format", "default_bucket"]


def __getattr__(name: str) -> Any:
    if name in ("OssStore", "default_bucket"):
        from cse_oss import store

        return getattr(store, name)
    raise AttributeError(f"module 'cse_oss' has no attribute {name!r}")
