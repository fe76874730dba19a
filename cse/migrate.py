"""Moving and re-keying encrypted objects in bulk: :func:`migrate` (``cse migrate``, ``cse rewrap``).

Every object under a source prefix is copied to the same relative key under a destination prefix, on any
two stores (``s3://``, ``oss://``, ``file://``, ``memory://``), in one of two modes:

``native`` (the default)
    Decrypt (verifying the tag and the key commitment where the format has them), then encrypt again in the
    destination's format: the store's default (S3 V3 on S3, OSS V2 on OSS, cse-v1 on local stores) unless
    ``format`` names another. The destination cloud's official SDK reads the result. The encryption context
    travels along, less the source format's reserved keys; a destination format that cannot store it (OSS)
    fails that object rather than losing it.

``rewrap``
    Keep the ciphertext as it is: unwrap the content key with a source key, wrap it with the destination
    key, and write the envelope in the format that describes the content cipher (the source's own format).
    Within one store, the object is copied server-side with new metadata (S3 CopyObject, or UploadPartCopy
    above 5 GiB; OSS CopyObject; an instruction file alone is rewritten); elsewhere the unchanged
    ciphertext is streamed. An object whose format is the official one of its cloud (S3 V2/V3 on S3, OSS V2
    on OSS) would, written to the other cloud, be readable by cse only: that is refused unless
    ``allow_cse_only`` is given, and the summary counts such objects. In place (source = destination) it
    is key rotation: after it, the old key is no longer needed.

Resumable. With ``journal`` (a SQLite file), each object's source ETag and size, its state (``copying``,
``done``, ``failed``), its error and the plaintext SHA-256 are recorded. A second run skips what is done
(same source ETag and size) and retries what failed or was in flight; multipart uploads that a killed run
left at an in-flight object's destination key are aborted first. Nothing is marked done before the
destination object is complete, and writing the same destination key again replaces it: a killed run loses
nothing and duplicates nothing.

Settings. Every destination object keeps its source's settings: server-side encryption, content type,
disposition, cache control, storage class and tags. Within one kind of store they are kept as they are;
from one kind to another (S3 to OSS) the rule of :mod:`cse.settings` applies: the server-side encryption
mode is kept but a KMS key id of the other cloud is dropped (the destination's default key), a mode the
destination lacks fails that object, and storage classes are mapped to the same meaning or dropped.
``sse``, ``sse_key_id`` and ``storage_class`` replace the source's for every object.

A failed object never stops the others; its reason is in the summary, and :attr:`MigrationSummary.failed`
says whether any failed. ``verify`` reads every destination object back and compares the SHA-256 of its
plaintext with the source's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from cse import registry
from cse.client import EncryptionClient, ObjectRef, _Decrypted, _IterReader, detect_format
from cse.config import CommitmentPolicy, TransferConfig
from cse.content import codec_for
from cse.exceptions import ConfigurationError, CseError, ObjectNotFoundError
from cse.formats.base import Format
from cse.log import event, get_logger
from cse.providers import KeyProvider
from cse.settings import carry_settings, copy_object, create_multipart, object_settings, put_object
from cse.stores.base import ObjectInfo, ObjectSettings, PartInfo, ServerSideEncryption, Store

__all__ = [
    "MARKER_ETAG",
    "MARKER_TOKEN",
    "Journal",
    "MigrationSummary",
    "ObjectOutcome",
    "Progress",
    "migrate",
    "rewrap_prefix",
]

Mode = Literal["native", "rewrap"]
Engine = Literal["local", "dask"]
Progress = Callable[[int, int, int, int], None]
"""Progress callback after each object: ``(objects finished, objects in all, stored bytes finished, stored
bytes in all)``."""

_LOG = get_logger("migrate")


@dataclass(frozen=True)
class ObjectOutcome:
    """What happened to one source object."""

    src_url: str
    dst_url: str
    #: ``copied``, ``skipped`` (done in an earlier run), ``failed``, or ``planned`` (dry run).
    state: str
    #: Plaintext bytes (stored bytes for a rewrap that streamed ciphertext are the same length or close).
    size: int = 0
    #: The destination format.
    format: str = ""
    #: Why it failed (no key material or plaintext, as every cse error).
    error: str = ""
    #: The destination is in a format the destination cloud's official SDK does not read.
    cse_only: bool = False
    #: ``True`` when verified by reading the destination back, ``None`` when not asked.
    verified: bool | None = None
    #: Why it failed, in one word: the error's class (``DecryptionError``, ``TaskLost`` ...).
    reason: str = ""
    #: Skipped because an earlier run's copy was found complete at the destination (its outcome had never
    #: been recorded: a killed driver, a lost task; the Dask engine).
    recovered: bool = False


@dataclass
class MigrationSummary:
    """The totals of a migration, and every object's outcome."""

    mode: str
    dry_run: bool
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    planned: int = 0
    #: Plaintext bytes of the objects copied in this run.
    bytes: int = 0
    #: Objects written in a format only cse reads (rewrap across clouds, with ``allow_cse_only``).
    cse_only: int = 0
    #: Of the skipped objects, those found complete at the destination (see :attr:`ObjectOutcome.recovered`).
    recovered: int = 0
    #: Failed objects by reason (:attr:`ObjectOutcome.reason`).
    failures: dict[str, int] = field(default_factory=dict)
    #: ``local`` or ``dask``.
    engine: str = "local"
    #: Requests made to key services (KMS) in this run, in total and by operation.
    kms_calls: int = 0
    kms_calls_by_operation: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: Every object's outcome (the local engine), or the failed ones only (the Dask engine, which never
    #: holds a whole listing: the journal has every object).
    objects: list[ObjectOutcome] = field(default_factory=list)

    def add(self, outcome: ObjectOutcome, keep: bool = True) -> None:
        """Count one outcome (and keep it in :attr:`objects` if ``keep``, or if it failed). Both engines
        count every outcome here, which logs it on ``cse.migrate`` (INFO for a failure, DEBUG otherwise)."""
        event(
            _LOG,
            logging.INFO if outcome.state == "failed" else logging.DEBUG,
            f"migrate {outcome.state}",
            src=outcome.src_url,
            dst=outcome.dst_url,
            bytes=outcome.size,
            format=outcome.format or None,
            reason=outcome.error or None,
        )
        if keep or outcome.state == "failed":
            self.objects.append(outcome)
        if outcome.state == "copied":
            self.copied += 1
            self.bytes += outcome.size
            self.cse_only += int(outcome.cse_only)
        elif outcome.state == "skipped":
            self.skipped += 1
            self.recovered += int(outcome.recovered)
        elif outcome.state == "planned":
            self.planned += 1
        else:
            self.failed += 1
            reason = outcome.reason or "error"
            self.failures[reason] = self.failures.get(reason, 0) + 1

    @property
    def ok(self) -> bool:
        """True when no object failed."""
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (``--json``)."""
        data = asdict(self)
        data["ok"] = self.ok
        return data


# ----------------------------------------------------------------------------------------------- journal


class Journal:
    """The SQLite record of a migration: one row per source object (see the module docstring).

    Thread-safe; every change is committed at once (WAL mode), so a killed process leaves a consistent file.
    """

    _COLUMNS = ("src_url", "dst_url", "src_etag", "size", "state", "error", "attempts", "sha256", "format")

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the journal at ``path``."""
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS objects ("
                " src_url TEXT PRIMARY KEY, dst_url TEXT NOT NULL, src_etag TEXT NOT NULL,"
                " size INTEGER NOT NULL,"
                " state TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,"
                " sha256 TEXT NOT NULL DEFAULT '', format TEXT NOT NULL DEFAULT '', updated REAL NOT NULL,"
                " token TEXT NOT NULL DEFAULT '')"
            )
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(objects)")}
            if "token" not in columns:  # a journal of an earlier version
                self._db.execute("ALTER TABLE objects ADD COLUMN token TEXT NOT NULL DEFAULT ''")
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the journal {self.path}: {exc}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def get(self, src_url: str) -> dict[str, Any] | None:
        """The row of ``src_url``, or None."""
        return self.get_many([src_url]).get(src_url)

    def get_many(self, src_urls: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The rows of those of ``src_urls`` that have one, by source URL (one query per 500 URLs)."""
        names = (*self._COLUMNS, "token")
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for start in range(0, len(src_urls), 500):
                chunk = list(src_urls[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT {', '.join(names)} FROM objects WHERE src_url IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
                for row in rows:
                    found[row[0]] = dict(zip(names, row, strict=True))
        return found

    _UPSERT = (
        "INSERT INTO objects (src_url, dst_url, src_etag, size, state, error, attempts, sha256,"
        " format, updated, token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(src_url) DO UPDATE SET"
        " dst_url=excluded.dst_url, src_etag=excluded.src_etag, size=excluded.size,"
        " state=excluded.state, error=excluded.error, attempts=objects.attempts + excluded.attempts,"
        " sha256=CASE WHEN excluded.sha256 = '' THEN objects.sha256 ELSE excluded.sha256 END,"
        " format=CASE WHEN excluded.format = '' THEN objects.format ELSE excluded.format END,"
        " updated=excluded.updated,"
        " token=CASE WHEN excluded.state = 'copying' THEN excluded.token ELSE objects.token END"
    )

    @staticmethod
    def _values(
        src_url: str, dst_url: str, etag: str, size: int, state: str, extra: Mapping[str, Any]
    ) -> tuple[Any, ...]:
        return (
            src_url,
            dst_url,
            etag,
            size,
            state,
            str(extra.get("error", "")),
            1 if state == "copying" else 0,
            str(extra.get("sha256", "")),
            str(extra.get("format", "")),
            time.time(),
            str(extra.get("token", "")),
        )

    def mark(self, src_url: str, dst_url: str, etag: str, size: int, state: str, **extra: Any) -> None:
        """Record ``state`` for an object (``copying`` counts an attempt); ``extra``: ``error``, ``sha256``,
        ``format``, ``token`` (the attempt's, recorded at the destination by the Dask engine)."""
        with self._lock:
            self._db.execute(self._UPSERT, self._values(src_url, dst_url, etag, size, state, extra))

    def mark_many(self, rows: Sequence[tuple[str, str, str, int, str, Mapping[str, Any]]]) -> None:
        """:meth:`mark` for many objects, ``(src_url, dst_url, etag, size, state, extra)``, in one
        transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(self._UPSERT, [self._values(*row) for row in rows])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def note_errors(self, src_urls: Sequence[str], error: str) -> None:
        """Record ``error`` for objects, leaving their state as it is (a lost task's, still ``copying``)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "UPDATE objects SET error = ?, updated = ? WHERE src_url = ?",
                    [(error, now, url) for url in src_urls],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def counts(self) -> dict[str, int]:
        """Objects by state."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM objects GROUP BY state").fetchall()
        return {str(state): int(n) for state, n in rows}


# ------------------------------------------------------------------------------------------------ helpers


class _Hashing:
    """Passes plaintext chunks through, hashing them."""

    def __init__(self, chunks: Iterator[memoryview]) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self._chunks = chunks

    def __iter__(self) -> Iterator[memoryview]:
        for chunk in self._chunks:
            self.digest.update(chunk)
            self.size += len(chunk)
            yield chunk


def _plaintext_sha256(client: EncryptionClient, obj: _Decrypted) -> str:
    digest = hashlib.sha256()
    for chunk in client._stream(obj, 0, obj.size - 1):
        digest.update(chunk)
    return digest.hexdigest()


def _family(name: str) -> str:
    return name.rsplit("-", 1)[0]


def _kms_counts(providers: Sequence[KeyProvider]) -> dict[str, int]:
    total: dict[str, int] = {}
    seen: set[int] = set()
    for provider in providers:
        if id(provider) in seen:
            continue
        seen.add(id(provider))
        for name, n in provider.call_counts().items():
            total[name] = total.get(name, 0) + int(n)
    return total


#: User metadata the Dask engine writes on every destination object: the source object's ETag, and the token
#: of the attempt (recorded in the journal too). A rerun that finds an object in flight (``copying``) checks
#: them, so that a copy whose outcome never reached the journal is recognised as complete.
MARKER_ETAG = "cse-source-etag"
MARKER_TOKEN = "cse-migration-token"  # noqa: S105 - a metadata name, not a secret


@dataclass(frozen=True)
class _Item:
    """One source object to migrate, and what the journal said of it (picklable: Dask tasks carry it)."""

    src_key: str
    dst_key: str
    src_url: str
    dst_url: str
    #: Stored size and ETag of the source object, from the listing.
    size: int
    etag: str
    #: The journal's state of the object before this attempt (``""``: none, or no journal).
    previous: str = ""
    #: This attempt's token, written at the destination with the source ETag (``""``: no marker).
    token: str = ""
    #: The journal's record of the earlier attempt: its token and the source ETag it copied.
    prior_token: str = ""
    prior_etag: str = ""


def _item(src_store: Store, src_prefix: str, dst_store: Store, dst_prefix: str, info: ObjectInfo) -> _Item:
    dst_key = dst_prefix + info.key[len(src_prefix) :]
    return _Item(
        info.key, dst_key, src_store.url(info.key), dst_store.url(dst_key), int(info.size), info.etag
    )


def _is_done(row: Mapping[str, Any] | None, item: _Item) -> bool:
    """Whether the journal row says ``item`` was copied already (and the source has not changed since)."""
    return (
        row is not None
        and row["state"] == "done"
        and row["src_etag"] == item.etag
        and row["size"] == item.size
        and row["dst_url"] == item.dst_url
    )


def _with_row(item: _Item, row: Mapping[str, Any] | None, token: str = "") -> _Item:
    """``item`` with what the journal row says of earlier attempts, and this attempt's ``token``."""
    if row is None:
        return replace(item, token=token)
    return replace(
        item,
        previous=str(row["state"]),
        token=token,
        prior_token=str(row["token"]),
        prior_etag=row["src_etag"],
    )


def _unquote(etag: str) -> str:
    return etag.strip('"')


def _open_clients(
    keys: Sequence[KeyProvider | str],
    to_keys: Sequence[KeyProvider | str] | None,
    *,
    format: str | None,
    allow_legacy: bool,
    key_cache: Any,
    config: TransferConfig,
) -> tuple[EncryptionClient, EncryptionClient]:
    """The reading client (every source key) and the writing one (the destination keys)."""
    reader = EncryptionClient(
        list(keys),
        config=config,
        allow_legacy=allow_legacy,
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT,
    )
    targets = list(to_keys) if to_keys else [reader.keys[0]]
    writer_kwargs: dict[str, Any] = {"wrap_keys": targets, "config": config, "format": format}
    if key_cache is not None:
        writer_kwargs["key_cache"] = key_cache
    return reader, EncryptionClient(targets, **writer_kwargs)


def _check_in_place(mode: str, src_store: Store, src_prefix: str, dst_store: Store, dst_prefix: str) -> bool:
    in_place = src_store is dst_store and src_prefix == dst_prefix
    if mode == "native" and in_place:
        raise ConfigurationError(
            "native migration onto its own source would rewrite every object in place; use mode rewrap "
            "(cse rewrap) to rotate keys in place, or give another destination"
        )
    return in_place


def _check_options(mode: str, workers: int, keys: Sequence[Any]) -> None:
    if mode not in ("native", "rewrap"):
        raise ConfigurationError(f"unknown migration mode {mode!r}; use native or rewrap")
    if workers < 1:
        raise ConfigurationError(f"workers must be at least 1, not {workers}")
    if not keys:
        raise ConfigurationError("migrate needs at least one source key (--key)")


class _Migrator:
    """Migrates one object: the per-object work that the local and the Dask engines share.

    ``leftovers_before``: multipart uploads of a destination key started before this time are a killed
    attempt's, and are aborted before the object is copied again: for an object the journal had in flight,
    and for every object larger than ``leftovers_above`` bytes when that is set (the Dask engine: a task of
    a lost worker is run again, with no journal in between).
    """

    def __init__(
        self,
        reader: EncryptionClient,
        writer: EncryptionClient,
        src_store: Store,
        dst_store: Store,
        *,
        mode: str,
        verify: bool,
        allow_cse_only: bool,
        config: TransferConfig,
        in_place: bool,
        leftovers_before: float,
        leftovers_above: int | None = None,
        settings: ObjectSettings | None = None,
    ) -> None:
        self.settings = settings or ObjectSettings()
        self.reader, self.writer = reader, writer
        self.src_store, self.dst_store = src_store, dst_store
        self.mode, self.verify, self.allow_cse_only = mode, verify, allow_cse_only
        self.config, self.in_place = config, in_place
        self.leftovers_before, self.leftovers_above = leftovers_before, leftovers_above

    @property
    def providers(self) -> list[KeyProvider]:
        """Every key provider of both clients (for the KMS call counts)."""
        return [*self.reader.keys, *self.writer.keys, *self.writer.wrap_keys]

    def migrate_one(self, item: _Item, leftovers_before: float | None = None) -> tuple[ObjectOutcome, str]:
        """Copy (or re-key) one object; its outcome and the SHA-256 of its plaintext (``""`` when not known).

        ``leftovers_before`` replaces the constructor's for this object. A cse error or an OS error fails the
        object alone: the outcome says why.
        """
        cutoff = self.leftovers_before if leftovers_before is None else leftovers_before
        try:
            if item.previous == "copying" and item.prior_token:
                found = self._found(item)
                if found is not None:
                    return found, ""
            if item.previous == "copying" or (
                self.leftovers_above is not None and item.size > self.leftovers_above
            ):
                _abort_leftovers(self.dst_store, item.dst_key, cutoff)
            marker = {MARKER_ETAG: _unquote(item.etag), MARKER_TOKEN: item.token} if item.token else {}
            if self.mode == "native":
                return _native(
                    self.reader,
                    self.writer,
                    self.src_store,
                    self.dst_store,
                    item,
                    self.verify,
                    marker,
                    self.settings,
                )
            return _rewrap(
                self.reader,
                self.writer,
                self.src_store,
                self.dst_store,
                item,
                self.verify,
                self.allow_cse_only,
                self.config,
                marker,
                self.settings,
            )
        except (CseError, OSError) as exc:
            message = str(exc) or type(exc).__name__
            return ObjectOutcome(
                item.src_url, item.dst_url, "failed", 0, error=message, reason=type(exc).__name__
            ), ""

    def _found(self, item: _Item) -> ObjectOutcome | None:
        """The outcome of an earlier attempt whose copy is complete at the destination, or None (copy again).

        Complete means: the destination object carries the earlier attempt's token and the source ETag it
        copied, and (unless in place) the source still has that ETag. With ``verify``, the object is copied
        again instead, so that its plaintext is compared.
        """
        if self.verify:
            return None
        try:
            info = self.dst_store.head(item.dst_key)
        except ObjectNotFoundError:
            return None
        meta = info.metadata
        if meta.get(MARKER_TOKEN) != item.prior_token or meta.get(MARKER_ETAG) != _unquote(item.prior_etag):
            return None
        if not self.in_place and _unquote(item.etag) != _unquote(item.prior_etag):
            return None  # the source changed since
        fmt = detect_format(meta, item.dst_url, allow_legacy=True)
        return ObjectOutcome(item.src_url, item.dst_url, "skipped", item.size, fmt.name, recovered=True)


# ---------------------------------------------------------------------------------------------- migrate


def migrate(
    src: ObjectRef,
    dst: ObjectRef,
    *,
    keys: Sequence[KeyProvider | str],
    to_keys: Sequence[KeyProvider | str] | None = None,
    mode: Mode = "native",
    workers: int = 4,
    journal: str | Path | None = None,
    verify: bool = False,
    dry_run: bool = False,
    format: str | None = None,
    allow_cse_only: bool = False,
    allow_legacy: bool = False,
    key_cache: Any = None,
    config: TransferConfig | None = None,
    progress: Progress | None = None,
    engine: Engine = "local",
    scheduler: Any = None,
    batch_objects: int | None = None,
    batch_bytes: int | None = None,
    sse: ServerSideEncryption | str | None = None,
    sse_key_id: str | None = None,
    storage_class: str | None = None,
) -> MigrationSummary:
    """Copy (``native``) or re-key (``rewrap``) every encrypted object under ``src`` to ``dst``.

    :param src: a URL prefix, such as ``s3://bucket/photos/`` (or a ``(store, prefix)`` pair); every object
        whose key starts with it.
    :param dst: the destination URL prefix (or a ``(store, prefix)`` pair); an object ``src + REST`` goes
        to ``dst + REST``. The same as ``src`` for key rotation in place (``cse rewrap``).
    :param keys: keys (providers or key URIs) that may decrypt the source objects; any of them.
    :param to_keys: the keys that wrap the destination objects' content keys; default: ``keys[0]``.
    :param mode: ``native`` or ``rewrap`` (see the module docstring).
    :param workers: objects copied at once (with the Dask engine: at once in each task).
    :param journal: a SQLite file recording progress, for resuming (see the module docstring).
    :param verify: read every destination object back and compare its plaintext SHA-256.
    :param dry_run: list what would be copied or skipped; write nothing.
    :param format: the destination format in native mode (default: the destination store's).
    :param allow_cse_only: in rewrap mode, allow results that only cse reads (module docstring).
    :param allow_legacy: read legacy source formats (S3 V1, OSS V1).
    :param key_cache: a :class:`cse.cache.DataKeyCache` for the destination's content keys (with the Dask
        engine, every worker process makes its own with the same limits).
    :param config: transfer settings for both sides.
    :param progress: called after each object (:data:`Progress`).
    :param engine: ``local`` (a thread pool in this process, the default) or ``dask`` (batches of objects
        as tasks on a Dask cluster: :mod:`cse.migrate_dask`, extra ``cse[dask]``).
    :param scheduler: Dask engine: a scheduler address (``tcp://host:8786``) or a ``distributed.Client``;
        default ``DASK_SCHEDULER_ADDRESS``, else a ``LocalCluster`` sized to this machine.
    :param batch_objects: Dask engine: the most objects in one task (default 1000).
    :param batch_bytes: Dask engine: the most stored bytes in one task (default 1 GiB).
    :param sse: the server-side encryption of every destination object (``kms``, ``aes256``, ``sm4``,
        ``dsse``, or a :class:`~cse.stores.base.ServerSideEncryption`), instead of its source's; with
        ``sse_key_id``, the KMS key (alone: ``kms``). Default: each keeps its source's (module docstring).
    :param storage_class: the storage class of every destination object (the destination store's name),
        instead of its source's.
    """
    if engine == "dask":
        from cse.migrate_dask import migrate_dask

        return migrate_dask(
            src,
            dst,
            keys=keys,
            to_keys=to_keys,
            mode=mode,
            workers=workers,
            journal=journal,
            verify=verify,
            dry_run=dry_run,
            format=format,
            allow_cse_only=allow_cse_only,
            allow_legacy=allow_legacy,
            key_cache=key_cache,
            config=config,
            progress=progress,
            scheduler=scheduler,
            batch_objects=batch_objects,
            batch_bytes=batch_bytes,
            sse=sse,
            sse_key_id=sse_key_id,
            storage_class=storage_class,
        )
    if engine != "local":
        raise ConfigurationError(f"unknown migration engine {engine!r}; use local or dask")
    if scheduler is not None or batch_objects is not None or batch_bytes is not None:
        raise ConfigurationError(
            "scheduler, batch_objects and batch_bytes apply to the Dask engine; pass engine='dask' "
            "(--engine dask) or leave them out"
        )
    _check_options(mode, workers, keys)
    override = object_settings(sse=sse, sse_key_id=sse_key_id, storage_class=storage_class)
    started = time.monotonic()
    cfg = config or TransferConfig()
    reader, writer = _open_clients(
        keys, to_keys, format=format, allow_legacy=allow_legacy, key_cache=key_cache, config=cfg
    )
    src_store, src_prefix = reader.resolve(src)
    dst_store, dst_prefix = reader.resolve(dst)
    in_place = _check_in_place(mode, src_store, src_prefix, dst_store, dst_prefix)
    if override:
        dst_store.check_settings(override)  # a mode the destination lacks is refused before any object
    run_started = time.time()
    migrator = _Migrator(
        reader,
        writer,
        src_store,
        dst_store,
        mode=mode,
        verify=verify,
        allow_cse_only=allow_cse_only,
        config=cfg,
        in_place=in_place,
        leftovers_before=run_started,
        settings=override,
    )
    providers = migrator.providers
    before = _kms_counts(providers)
    summary = MigrationSummary(mode=mode, dry_run=dry_run)
    book = Journal(journal) if journal is not None and not dry_run else None
    lock = threading.Lock()
    finished = [0, 0]

    items = [_item(src_store, src_prefix, dst_store, dst_prefix, info) for info in src_store.list(src_prefix)]
    total_objects, total_bytes = len(items), sum(i.size for i in items)

    def record(outcome: ObjectOutcome, stored: int) -> None:
        with lock:
            summary.add(outcome)
            finished[0] += 1
            finished[1] += stored
            done, size = finished
        if progress is not None:
            progress(done, total_objects, size, total_bytes)

    def one(item: _Item) -> None:
        row = book.get(item.src_url) if book is not None else None
        if _is_done(row, item):
            assert row is not None
            record(ObjectOutcome(item.src_url, item.dst_url, "skipped", item.size, row["format"]), item.size)
            return
        if dry_run:
            record(ObjectOutcome(item.src_url, item.dst_url, "planned", item.size), item.size)
            return
        if book is not None:
            item = _with_row(item, row)
            book.mark(item.src_url, item.dst_url, item.etag, item.size, "copying")
        outcome, sha = migrator.migrate_one(item)
        if book is not None:
            _record_outcome(book, item, outcome, sha)
        record(outcome, item.size)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cse-migrate") as pool:
            pending = set()
            for item in items:
                pending.add(pool.submit(one, item))
                if len(pending) >= workers * 4:
                    done = {f for f in pending if f.done()}
                    if not done:
                        next(iter(pending)).result()
                        done = {f for f in pending if f.done()}
                    for fut in done:
                        fut.result()
                    pending -= done
            for fut in pending:
                fut.result()
    finally:
        if book is not None:
            book.close()
    _finish(summary, _kms_delta(before, _kms_counts(providers)), started)
    return summary


def _outcome_row(
    item: _Item, outcome: ObjectOutcome, sha: str
) -> tuple[str, str, str, int, str, dict[str, Any]]:
    """The journal row of a finished object: ``done`` (copied, or found complete) or ``failed``."""
    if outcome.state == "failed":
        return (item.src_url, item.dst_url, item.etag, item.size, "failed", {"error": outcome.error})
    return (
        item.src_url,
        item.dst_url,
        item.etag,
        item.size,
        "done",
        {"sha256": sha, "format": outcome.format},
    )


def _record_outcome(book: Journal, item: _Item, outcome: ObjectOutcome, sha: str) -> None:
    src_url, dst_url, etag, size, state, extra = _outcome_row(item, outcome, sha)
    book.mark(src_url, dst_url, etag, size, state, **extra)


def _kms_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {
        name: after.get(name, 0) - before.get(name, 0)
        for name in after
        if after.get(name, 0) != before.get(name, 0)
    }


def _finish(summary: MigrationSummary, kms: Mapping[str, int], started: float) -> None:
    """Fill in the KMS calls and the time, and sort the outcomes."""
    summary.kms_calls_by_operation = dict(kms)
    summary.kms_calls = sum(kms.values())
    summary.seconds = time.monotonic() - started
    summary.objects.sort(key=lambda o: o.src_url)


def _abort_leftovers(store: Store, key: str, before: float) -> None:
    """Abort the multipart uploads of ``key`` that an earlier (killed) run started."""
    with contextlib.suppress(CseError):
        for upload in store.list_multipart_uploads(key):
            if upload.key != key:
                continue
            if upload.initiated is not None and upload.initiated.timestamp() >= before:
                continue
            with contextlib.suppress(CseError):
                store.abort_multipart(key, upload.upload_id)


def _verify(writer: EncryptionClient, dst_store: Store, dst_key: str, expected: str) -> bool:
    obj = writer._open((dst_store, dst_key), whole=True)
    try:
        got = _plaintext_sha256(writer, obj)
    finally:
        obj.close()
    if got != expected:
        raise CseError(
            f"verification failed: the plaintext of {dst_store.url(dst_key)} is not the source's "
            "(SHA-256 differs); the destination object is wrong, run the migration again"
        )
    return True


def _native(
    reader: EncryptionClient,
    writer: EncryptionClient,
    src_store: Store,
    dst_store: Store,
    item: _Item,
    verify: bool,
    marker: Mapping[str, str],
    override: ObjectSettings,
) -> tuple[ObjectOutcome, str]:
    obj = reader._open((src_store, item.src_key), whole=True)
    try:
        settings = _carried(obj.info, src_store, item.src_key, dst_store, override, item.src_url)
    except BaseException:
        obj.close()
        raise
    src_fmt = registry.get_format(obj.envelope.format)
    context = {
        k: v for k, v in obj.envelope.encryption_context.items() if k not in src_fmt.reserved_context_keys
    }
    hashing = _Hashing(reader._stream(obj, 0, obj.size - 1))
    try:
        result = writer._put(
            (dst_store, item.dst_key),
            _IterReader(iter(hashing)),
            format=None,
            content_length=obj.size,
            encryption_context=context,
            callback=None,
            metadata=marker or None,
            settings=settings,
        )
    finally:
        obj.close()
    sha = hashing.digest.hexdigest()
    verified = _verify(writer, dst_store, item.dst_key, sha) if verify else None
    outcome = ObjectOutcome(
        item.src_url, item.dst_url, "copied", obj.size, result.envelope.format, verified=verified
    )
    return outcome, sha


def _carried(
    info: ObjectInfo, src_store: Store, src_key: str, dst_store: Store, override: ObjectSettings, where: str
) -> ObjectSettings:
    """The settings a copy of the source object keeps at the destination (module docstring)."""
    source = replace(info.settings, tags=src_store.get_tags(src_key))
    return carry_settings(source, src_store, dst_store, override, where)


def _rewrap_format(
    src_fmt: Format, src_store: Store, dst_store: Store, allow_cse_only: bool
) -> tuple[Format, bool]:
    """The format of a rewrapped object, and whether only cse will read it there."""
    src_official = _family(src_fmt.name) == _family(src_store.default_format) != "cse"
    dst_family = _family(dst_store.default_format)
    if _family(src_fmt.name) == dst_family or dst_family == "cse" or not src_official:
        return src_fmt, False
    if not allow_cse_only:
        raise ConfigurationError(
            f"rewrap keeps the ciphertext, and {dst_store.url('')} has no official format for its cipher "
            f"({src_fmt.name}): the result would be readable by cse only. Migrate in native mode "
            "(re-encrypt), or pass allow_cse_only (--allow-cse-only)"
        )
    return src_fmt, True


def _rewrap(
    reader: EncryptionClient,
    writer: EncryptionClient,
    src_store: Store,
    dst_store: Store,
    item: _Item,
    verify: bool,
    allow_cse_only: bool,
    cfg: TransferConfig,
    marker: Mapping[str, str],
    override: ObjectSettings,
) -> tuple[ObjectOutcome, str]:
    obj = reader._open((src_store, item.src_key))
    src_fmt = registry.get_format(obj.envelope.format)
    if not src_fmt.writable:
        raise ConfigurationError(
            f"{item.src_url} is in the legacy {src_fmt.name} format, which cse does not write; migrate it "
            "in native mode (re-encrypt) instead"
        )
    fmt, cse_only = _rewrap_format(src_fmt, src_store, dst_store, allow_cse_only)
    envelope = writer.rewrapped_envelope(obj.envelope, obj.material, fmt, writer.wrap_keys)
    sha = _plaintext_sha256(reader, obj) if verify else ""
    old_fields = src_fmt.encode(obj.envelope).keys()
    own = {k: v for k, v in obj.info.metadata.items() if k not in old_fields}
    own.update(marker)
    if src_store is dst_store:
        # The server-side copy keeps the source's settings; an override replaces them.
        metadata = {**own, **fmt.encode(envelope)}
        copy_object(src_store, item.src_key, item.dst_key, metadata, override)
    else:
        settings = _carried(obj.info, src_store, item.src_key, dst_store, override, item.src_url)
        part = writer._part_size(dst_store, obj.info.size, 16)
        _stream_ciphertext(
            src_store,
            item.src_key,
            obj.info.size,
            dst_store,
            item.dst_key,
            fmt,
            envelope,
            own,
            cfg,
            part,
            settings,
        )
    verified = _verify(writer, dst_store, item.dst_key, sha) if verify else None
    outcome = ObjectOutcome(
        item.src_url, item.dst_url, "copied", obj.size, fmt.name, cse_only=cse_only, verified=verified
    )
    return outcome, sha


def _stream_ciphertext(
    src_store: Store,
    src_key: str,
    size: int,
    dst_store: Store,
    dst_key: str,
    fmt: Format,
    envelope: Any,
    own: Mapping[str, str],
    cfg: TransferConfig,
    part: int,
    settings: ObjectSettings | None = None,
) -> None:
    """Copy the stored bytes of ``src_key`` unchanged to another store, under new metadata, in parts of
    ``part`` bytes above the multipart threshold."""
    if size <= cfg.multipart_threshold:
        envelope = envelope.model_copy(update={"data_size": None, "part_size": None})
        data = src_store.read_all(src_key)
        if len(data) != size:
            raise CseError(f"{src_store.url(src_key)} changed while it was copied; run the migration again")
        put_object(dst_store, dst_key, data, {**own, **fmt.encode(envelope)}, settings)
        return
    codec = codec_for(envelope.content_algorithm)
    if codec.ciphertext_length(envelope, 16) == 16:  # CTR: the recorded layout is the plaintext's
        envelope = envelope.model_copy(
            update={"data_size": codec.plaintext_length(envelope, size), "part_size": part}
        )
    upload_id = create_multipart(dst_store, dst_key, {**own, **fmt.encode(envelope)}, settings)
    headers = fmt.part_headers(envelope)
    parts: list[PartInfo] = []
    try:
        buffer = bytearray(part)
        for number, start in enumerate(range(0, size, part), 1):
            end = min(size, start + part) - 1
            view = memoryview(buffer)[: end - start + 1]
            got = 0
            with src_store.get(src_key, start, end) as result:
                while got < len(view):
                    n = result.body.readinto(view[got:])  # type: ignore[attr-defined]
                    if not n:
                        break
                    got += n
            if got != len(view):
                raise CseError(
                    f"{src_store.url(src_key)} changed while it was copied; run the migration again"
                )
            parts.append(dst_store.upload_part(dst_key, upload_id, number, view, headers))
        dst_store.complete_multipart(dst_key, upload_id, parts)
    except BaseException:
        with contextlib.suppress(Exception):
            dst_store.abort_multipart(dst_key, upload_id)
        raise


def rewrap_prefix(url: ObjectRef, **kwargs: Any) -> MigrationSummary:
    """Key rotation in place: :func:`migrate` of ``url`` onto itself in rewrap mode (``cse rewrap``)."""
    return migrate(url, url, mode="rewrap", **kwargs)
