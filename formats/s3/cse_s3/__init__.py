"""S3 for cse: the formats of the AWS S3 Encryption Client and the ``s3://`` store.

* :class:`S3V3Format` (``s3-v3``, the default on S3): key-committing AES-256-GCM, as the official
  clients write by default; :class:`S3V2Format` (``s3-v2``): AES-256-GCM without key commitment;
  :class:`S3V1Format` (``s3-v1``): legacy AES-CBC, read only, behind ``allow_legacy``
  (its content codec :class:`CbcCodec` is registered when this package is imported).
* :class:`S3Store`: ``s3://BUCKET/KEY`` over boto3, with the official clients' instruction files
  (``KEY.instruction``) read by default and written on request.

Usage::

    from cse import EncryptionClient

    with EncryptionClient("aws-kms://alias/backups") as client:
        client.put("s3://my-bucket/report.pdf", data)          # s3-v3, readable by the official clients
        data = client.get("s3://my-bucket/report.pdf")

    from cse_s3 import S3Store
    store = S3Store("my-bucket", client=boto3.client("s3"), write_instruction_file=True)
    client.put((store, "report.pdf"), data)

Importing the package does not import boto3; :class:`S3Store` and :func:`default_client` load it on first
use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cse_s3.cbc import CbcCodec
from cse_s3.formats import S3V1Format, S3V2Format, S3V3Format

if TYPE_CHECKING:
    from cse_s3.store import S3Store, default_client

__all__ = [
    "CbcCodec",
    "S3Store",
    "S3V1Format",
    "S3V2Format",
    "S3V3Format",
    "default_client",
]

_LAZY = {"S3Store", "default_client"}


def __getattr__(name: str) -> Any:
    """Import the store module (and boto3) only when :class:`S3Store` or :func:`default_client` is used."""
    if name in _LAZY:
        from cse_s3 import store

        return getattr(store, name)
    raise AttributeError(f"module 'cse_s3' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names."""
    return sorted(__all__)
