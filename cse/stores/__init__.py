"""Stores: where ciphertext lives. ``memory://`` and ``file://`` are built in."""

from cse.stores.base import GetResult, ObjectInfo, PartInfo, Store, UploadInfo

__all__ = ["GetResult", "ObjectInfo", "PartInfo", "Store", "UploadInfo"]
