"""Object settings beside the encryption: the boto3-style keyword arguments of the client, and what a copy
or a migration keeps of its source's settings.

cse encrypts on the client; the settings here are the store's own, kept as the plain SDK keeps them (not
encrypted): ``Content-Type``, ``Content-Disposition``, ``Cache-Control``, tags, the storage class, and
server-side encryption, a second layer under the client-side one (see ``docs/server-side-encryption.md``).

Copies keep the source's settings unless told otherwise (:func:`carry_settings`). Within one kind of store
(S3 to S3, OSS to OSS) everything is kept. Across kinds:

* the server-side encryption mode is kept, but its key id is dropped (a KMS key of one cloud means
  nothing to the other: the destination's default KMS key is used); a mode the destination lacks (``dsse``
  on OSS, ``sm4`` on S3) fails that object unless an override names another;
* a storage class is mapped to the one of the same meaning (:data:`STORAGE_CLASSES`: S3 ``STANDARD``,
  ``STANDARD_IA``, ``GLACIER``, ``DEEP_ARCHIVE`` and OSS ``Standard``, ``IA``, ``Archive``,
  ``ColdArchive``), or dropped (the destination's default) with a DEBUG log on ``cse.settings`` where the
  other cloud has none of that meaning. Stores that are neither S3 nor OSS keep the label as it is.
* content type, disposition, cache control and tags are kept.

Onto a store with no server-side encryption at all (``file://``), the source's is dropped, and a storage
class the destination refuses (``file://`` has none) is dropped, each with a DEBUG log: a local copy of a
cloud object is still encrypted by cse.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from cse.exceptions import ConfigurationError
from cse.log import event, get_logger
from cse.stores.base import SSE_MODES, ObjectInfo, ObjectSettings, ServerSideEncryption, Store, parse_sse

__all__ = [
    "STORAGE_CLASSES",
    "carry_settings",
    "copy_object",
    "create_multipart",
    "object_settings",
    "put_object",
    "server_side_encryption",
]

_LOG = get_logger("settings")

#: The storage classes of the same meaning on S3 and on OSS, by a neutral name; :func:`carry_settings`
#: translates between them across kinds of store. Others (S3 ``ONEZONE_IA``, ``INTELLIGENT_TIERING``,
#: ``GLACIER_IR``, OSS ``DeepColdArchive`` ...) have no counterpart and are dropped across clouds.
STORAGE_CLASSES: Mapping[str, Mapping[str, str]] = {
    "s3": {"standard": "STANDARD", "ia": "STANDARD_IA", "archive": "GLACIER", "cold-archive": "DEEP_ARCHIVE"},
    "oss": {"standard": "Standard", "ia": "IA", "archive": "Archive", "cold-archive": "ColdArchive"},
}


def server_side_encryption(
    sse: ServerSideEncryption | str | None, key_id: str | None = None
) -> ServerSideEncryption | None:
    """The server-side encryption ``sse`` and ``key_id`` name: a :class:`ServerSideEncryption`, a mode
    string (``kms``, ``aes256``, ``sm4``, ``dsse``, any case, or a store's own ``aws:kms``, ``AES256``...),
    or ``None``. A key id alone means ``kms``."""
    if sse is None:
        return ServerSideEncryption("kms", key_id) if key_id else None
    if isinstance(sse, ServerSideEncryption):
        if not key_id or key_id == sse.key_id:
            return sse
        if sse.key_id is not None:
            raise ConfigurationError(
                f"two server-side encryption key ids: {sse.key_id!r} in sse and {key_id!r} in sse_key_id; "
                "give one"
            )
        return ServerSideEncryption(sse.mode, key_id)
    if isinstance(sse, str):
        return parse_sse(sse, key_id)
    raise ConfigurationError(
        f"sse is a mode ({', '.join(SSE_MODES)}) or a ServerSideEncryption, not {type(sse).__name__}"
    )


def object_settings(
    *,
    content_type: str | None = None,
    content_disposition: str | None = None,
    cache_control: str | None = None,
    tags: Mapping[str, str] | None = None,
    storage_class: str | None = None,
    sse: ServerSideEncryption | str | None = None,
    sse_key_id: str | None = None,
) -> ObjectSettings:
    """The :class:`~cse.stores.base.ObjectSettings` of the client's keyword arguments (boto3's
    ``ContentType``, ``ContentDisposition``, ``CacheControl``, ``Tagging``, ``StorageClass``,
    ``ServerSideEncryption`` and ``SSEKMSKeyId``). Raises :class:`~cse.exceptions.ConfigurationError` for
    a value of the wrong kind, before anything is written."""
    if tags is not None and not isinstance(tags, Mapping):
        raise ConfigurationError(f"tags is a mapping of strings, not {type(tags).__name__}")
    return ObjectSettings(
        content_type=content_type,
        content_disposition=content_disposition,
        cache_control=cache_control,
        storage_class=storage_class,
        tags=dict(tags or {}),
        sse=server_side_encryption(sse, sse_key_id),
    )


def _storage_class(value: str | None, src_kind: str, dst_kind: str, where: str) -> str | None:
    if value is None or src_kind == dst_kind:
        return value
    dst_table = STORAGE_CLASSES.get(dst_kind)
    if dst_table is None:
        return value  # a local store or a plugin keeps the label
    tables = [STORAGE_CLASSES[src_kind]] if src_kind in STORAGE_CLASSES else list(STORAGE_CLASSES.values())
    for table in tables:
        for meaning, name in table.items():
            if name.lower() == value.lower() and meaning in dst_table:
                return dst_table[meaning]
    event(
        _LOG,
        logging.DEBUG,
        f"storage class {value} has no counterpart on {dst_kind}://; the destination's default is used",
        object=where,
    )
    return None


def _what_the_destination_keeps(kept: ObjectSettings, dst_store: Store, where: str) -> ObjectSettings:
    """A store with no server-side encryption at all (``file://``) drops the source's, and a storage class
    the destination refuses (``file://`` has none) is dropped: both with a DEBUG log."""
    if kept.sse is not None and not dst_store.sse_modes:
        event(_LOG, logging.DEBUG, f"{dst_store.scheme}:// has no server-side encryption", object=where)
        kept = replace(kept, sse=None)
    if kept.storage_class is not None:
        try:
            dst_store.check_settings(ObjectSettings(storage_class=kept.storage_class))
        except ConfigurationError:
            event(
                _LOG,
                logging.DEBUG,
                f"storage class {kept.storage_class} is not one of {dst_store.scheme}://; dropped",
                object=where,
            )
            kept = replace(kept, storage_class=None)
    return kept


def carry_settings(
    source: ObjectSettings,
    src_store: Store,
    dst_store: Store,
    override: ObjectSettings | None = None,
    where: str = "the object",
) -> ObjectSettings:
    """What a copy of an object with ``source`` settings keeps on ``dst_store`` (module docstring), with
    the fields set in ``override`` taking the place of the source's.

    Raises :class:`~cse.exceptions.ConfigurationError` naming ``where`` when the source's server-side
    encryption mode does not exist on the destination and ``override`` names none.
    """
    kept = source
    if src_store.scheme != dst_store.scheme:
        sse = source.sse
        if sse is not None and sse.key_id is not None:
            event(
                _LOG,
                logging.DEBUG,
                f"the server-side encryption key id is {src_store.scheme}'s; {dst_store.scheme}:// uses its "
                "default key",
                object=where,
            )
            sse = ServerSideEncryption(sse.mode)
        kept = replace(
            source,
            sse=sse,
            storage_class=_storage_class(source.storage_class, src_store.scheme, dst_store.scheme, where),
        )
    kept = _what_the_destination_keeps(kept, dst_store, where)
    result = (override or ObjectSettings()).over(kept)
    if result.sse is not None and result.sse.mode not in dst_store.sse_modes:
        have = ", ".join(m for m in SSE_MODES if m in dst_store.sse_modes) or "none"
        raise ConfigurationError(
            f"{where} has server-side encryption {result.sse.mode}, which {dst_store.scheme}:// does not "
            f"have (it has: {have}); choose one for the copy (sse=, --sse)"
        )
    return result


# Settings go to a store only when some are set, so that store plugins written before settings existed keep
# working for every call without them.


def put_object(
    store: Store,
    key: str,
    data: bytes | bytearray | memoryview,
    metadata: Mapping[str, str],
    settings: ObjectSettings | None = None,
) -> ObjectInfo:
    """``store.put``, passing ``settings`` only when some are set."""
    if settings:
        return store.put(key, data, metadata, settings)
    return store.put(key, data, metadata)


def create_multipart(
    store: Store, key: str, metadata: Mapping[str, str], settings: ObjectSettings | None = None
) -> str:
    """``store.create_multipart``, passing ``settings`` only when some are set."""
    if settings:
        return store.create_multipart(key, metadata, settings)
    return store.create_multipart(key, metadata)


def copy_object(
    store: Store,
    src_key: str,
    dst_key: str,
    metadata: Mapping[str, str] | None = None,
    settings: ObjectSettings | None = None,
) -> ObjectInfo:
    """``store.copy`` (which keeps the source's settings), passing ``settings`` only when some are set."""
    if settings:
        return store.copy(src_key, dst_key, metadata, settings)
    return store.copy(src_key, dst_key, metadata)
