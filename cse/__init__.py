"""cse: client-side envelope encryption for objects on S3, OSS and local stores.

The public names are loaded on first use, so ``import cse`` (and ``cse --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "EncryptionClient": "cse.client",
    "DecryptingReader": "cse.client",
    "EncryptingWriter": "cse.client",
    "HeadResult": "cse.client",
    "PutResult": "cse.client",
    "detect_format": "cse.client",
    "head_object": "cse.client",
    "DataKeyCache": "cse.cache",
    "TransferConfig": "cse.config",
    "CommitmentPolicy": "cse.config",
    "ContentAlgorithm": "cse.envelope",
    "Envelope": "cse.envelope",
    "WrapAlgorithm": "cse.envelope",
    "WrappedKey": "cse.envelope",
    "DataKey": "cse.providers",
    "KeyProvider": "cse.providers",
    "KeyRequest": "cse.providers",
    "Format": "cse.formats.base",
    "Store": "cse.stores.base",
    "ObjectInfo": "cse.stores.base",
    "ObjectSettings": "cse.stores.base",
    "ServerSideEncryption": "cse.stores.base",
    "parse_sse": "cse.stores.base",
    "open_provider": "cse.registry",
    "open_store": "cse.registry",
    "register_format": "cse.registry",
    "register_provider": "cse.registry",
    "register_store": "cse.registry",
    "CseError": "cse.exceptions",
    "ConfigurationError": "cse.exceptions",
    "DecryptionError": "cse.exceptions",
    "EncryptionError": "cse.exceptions",
    "KeyProviderError": "cse.exceptions",
    "StoreError": "cse.exceptions",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:
    from cse.cache import DataKeyCache
    from cse.client import (
        DecryptingReader,
        EncryptingWriter,
        EncryptionClient,
        HeadResult,
        PutResult,
        detect_format,
        head_object,
    )
    from cse.config import CommitmentPolicy, TransferConfig
    from cse.envelope import ContentAlgorithm, Envelope, WrapAlgorithm, WrappedKey
    from cse.exceptions import (
        ConfigurationError,
        CseError,
        DecryptionError,
        EncryptionError,
        KeyProviderError,
        StoreError,
    )
    from cse.formats.base import Format
    from cse.providers import DataKey, KeyProvider, KeyRequest
    from cse.registry import open_provider, open_store, register_format, register_provider, register_store
    from cse.stores.base import ObjectInfo, ObjectSettings, ServerSideEncryption, Store, parse_sse


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cse' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
