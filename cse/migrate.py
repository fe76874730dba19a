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

A failed object never stops the others; its reason is in the summary, and :attr:`MigrationSummary.failed`
says whether any failed. ``verify`` reads every destination object back and compares the SHA-256 of its
plaintext with the source's.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from cse import registry
from cse.client import EncryptionClient, ObjectRef, _Decrypted, _IterReader
from cse.config import CommitmentPolicy, TransferConfig
from cse.content import codec_for
from cse.exceptions import ConfigurationError, CseError
from cse.formats.base import Format
from cse.providers import KeyProvider
from cse.stores.base import ObjectInfo, PartInfo, Store

__all__ = ["Journal", "MigrationSummary", "ObjectOutcome", "Progress", "migrate", "rewrap_prefix"]

Mode = Literal["native", "rewrap"]
Progress = Callable[[int, int, int, int], None]
"""Progress callback after each object: ``(objects finished, objects in all, stored bytes finished, stored
bytes in all)``."""


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
    #: Requests made to key services (KMS) in this run, in total and by operation.
    kms_calls: int = 0
    kms_calls_by_operation: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    objects: list[ObjectOutcome] = field(default_factory=list)

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
                " sha256 TEXT NOT NULL DEFAULT '', format TEXT NOT NULL DEFAULT '', updated REAL NOT NULL)"
            )
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the journal {self.path}: {exc}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def get(self, src_url: str) -> dict[str, Any] | None:
        """The row of ``src_url``, or None."""
        with self._lock:
            cursor = self._db.execute(
                "SELECT src_url, dst_url, src_etag, size, state, error, attempts, sha256, format "
                "FROM objects WHERE src_url = ?",
                (src_url,),
            )
            row = cursor.fetchone()
        if row is None:
            return None
        names = ("src_url", "dst_url", "src_etag", "size", "state", "error", "attempts", "sha256", "format")
        return dict(zip(names, row, strict=True))

    def mark(self, src_url: str, dst_url: str, etag: str, size: int, state: str, **extra: Any) -> None:
        """Record ``state`` for an object (``copying`` counts an attempt)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO objects (src_url, dst_url, src_etag, size, state, error, attempts, sha256,"
                " format, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(src_url) DO UPDATE SET"
                " dst_url=excluded.dst_url, src_etag=excluded.src_etag, size=excluded.size,"
                " state=excluded.state, error=excluded.error, attempts=objects.attempts + excluded.attempts,"
                " sha256=CASE WHEN excluded.sha256 = '' THEN objects.sha256 ELSE excluded.sha256 END,"
                " format=CASE WHEN excluded.format = '' THEN objects.format ELSE excluded.format END,"
                " updated=excluded.updated",
                (
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
                ),
            )

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


@dataclass
class _Plan:
    info: ObjectInfo
    src_url: str
    dst_key: str
    dst_url: str


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
) -> MigrationSummary:
    """Copy (``native``) or re-key (``rewrap``) every encrypted object under ``src`` to ``dst``.

    :param src: a URL prefix, such as ``s3://bucket/photos/`` (or a ``(store, prefix)`` pair); every object
        whose key starts with it.
    :param dst: the destination URL prefix (or a ``(store, prefix)`` pair); an object ``src + REST`` goes
        to ``dst + REST``. The same as ``src`` for key rotation in place (``cse rewrap``).
    :param keys: keys (providers or key URIs) that may decrypt the source objects; any of them.
    :param to_keys: the keys that wrap the destination objects' content keys; default: ``keys[0]``.
    :param mode: ``native`` or ``rewrap`` (see the module docstring).
    :param workers: objects copied at once.
    :param journal: a SQLite file recording progress, for resuming (see the module docstring).
    :param verify: read every destination object back and compare its plaintext SHA-256.
    :param dry_run: list what would be copied or skipped; write nothing.
    :param format: the destination format in native mode (default: the destination store's).
    :param allow_cse_only: in rewrap mode, allow results that only cse reads (module docstring).
    :param allow_legacy: read legacy source formats (S3 V1, OSS V1).
    :param key_cache: a :class:`cse.cache.DataKeyCache` for the destination's content keys.
    :param config: transfer settings for both sides.
    :param progress: called after each object (:data:`Progress`).
    """
    if mode not in ("native", "rewrap"):
        raise ConfigurationError(f"unknown migration mode {mode!r}; use native or rewrap")
    if workers < 1:
        raise ConfigurationError(f"workers must be at least 1, not {workers}")
    if not keys:
        raise ConfigurationError("migrate needs at least one source key (--key)")
    started = time.monotonic()
    cfg = config or TransferConfig()
    reader = EncryptionClient(
        list(keys),
        config=cfg,
        allow_legacy=allow_legacy,
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT,
    )
    targets = list(to_keys) if to_keys else [reader.keys[0]]
    writer_kwargs: dict[str, Any] = {"wrap_keys": targets, "config": cfg, "format": format}
    if key_cache is not None:
        writer_kwargs["key_cache"] = key_cache
    writer = EncryptionClient(targets, **writer_kwargs)
    src_store, src_prefix = reader.resolve(src)
    dst_store, dst_prefix = reader.resolve(dst)
    in_place = src_store is dst_store and src_prefix == dst_prefix
    if mode == "native" and in_place:
        raise ConfigurationError(
            "native migration onto its own source would rewrite every object in place; use mode rewrap "
            "(cse rewrap) to rotate keys in place, or give another destination"
        )
    providers = [*reader.keys, *writer.keys, *writer.wrap_keys]
    before = _kms_counts(providers)
    summary = MigrationSummary(mode=mode, dry_run=dry_run)
    book = Journal(journal) if journal is not None and not dry_run else None
    lock = threading.Lock()
    run_started = time.time()
    finished = [0, 0]

    plans: list[_Plan] = []
    for info in src_store.list(src_prefix):
        dst_key = dst_prefix + info.key[len(src_prefix) :]
        plans.append(_Plan(info, src_store.url(info.key), dst_key, dst_store.url(dst_key)))
    total_objects, total_bytes = len(plans), sum(p.info.size for p in plans)

    def record(outcome: ObjectOutcome, stored: int) -> None:
        with lock:
            summary.objects.append(outcome)
            if outcome.state == "copied":
                summary.copied += 1
                summary.bytes += outcome.size
                summary.cse_only += int(outcome.cse_only)
            elif outcome.state == "skipped":
                summary.skipped += 1
            elif outcome.state == "planned":
                summary.planned += 1
            else:
                summary.failed += 1
            finished[0] += 1
            finished[1] += stored
            done, size = finished
        if progress is not None:
            progress(done, total_objects, size, total_bytes)

    def one(plan: _Plan) -> None:
        info = plan.info
        row = book.get(plan.src_url) if book is not None else None
        if (
            row is not None
            and row["state"] == "done"
            and row["src_etag"] == info.etag
            and row["size"] == info.size
            and row["dst_url"] == plan.dst_url
        ):
            outcome = ObjectOutcome(plan.src_url, plan.dst_url, "skipped", int(info.size), row["format"])
            record(outcome, info.size)
            return
        if dry_run:
            record(ObjectOutcome(plan.src_url, plan.dst_url, "planned", int(info.size)), info.size)
            return
        if book is not None:
            if row is not None and row["state"] == "copying":
                _abort_leftovers(dst_store, plan.dst_key, run_started)
            book.mark(plan.src_url, plan.dst_url, info.etag, info.size, "copying")
        try:
            if mode == "native":
                copied, sha = _native(reader, writer, src_store, dst_store, plan, verify)
            else:
                copied, sha = _rewrap(reader, writer, src_store, dst_store, plan, verify, allow_cse_only, cfg)
        except (CseError, OSError) as exc:
            message = str(exc) or type(exc).__name__
            if book is not None:
                book.mark(plan.src_url, plan.dst_url, info.etag, info.size, "failed", error=message)
            record(ObjectOutcome(plan.src_url, plan.dst_url, "failed", 0, error=message), info.size)
            return
        if book is not None:
            book.mark(
                plan.src_url,
                plan.dst_url,
                info.etag,
                info.size,
                "done",
                sha256=sha,
                format=copied.format,
            )
        record(copied, info.size)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cse-migrate") as pool:
            pending = set()
            for plan in plans:
                pending.add(pool.submit(one, plan))
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
    after = _kms_counts(providers)
    summary.kms_calls_by_operation = {
        name: after.get(name, 0) - before.get(name, 0)
        for name in after
        if after.get(name, 0) != before.get(name, 0)
    }
    summary.kms_calls = sum(summary.kms_calls_by_operation.values())
    summary.seconds = time.monotonic() - started
    summary.objects.sort(key=lambda o: o.src_url)
    return summary


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
    plan: _Plan,
    verify: bool,
) -> tuple[ObjectOutcome, str]:
    obj = reader._open((src_store, plan.info.key), whole=True)
    src_fmt = registry.get_format(obj.envelope.format)
    context = {
        k: v for k, v in obj.envelope.encryption_context.items() if k not in src_fmt.reserved_context_keys
    }
    hashing = _Hashing(reader._stream(obj, 0, obj.size - 1))
    try:
        result = writer.put(
            (dst_store, plan.dst_key),
            _IterReader(iter(hashing)),
            content_length=obj.size,
            encryption_context=context,
        )
    finally:
        obj.close()
    sha = hashing.digest.hexdigest()
    verified = _verify(writer, dst_store, plan.dst_key, sha) if verify else None
    outcome = ObjectOutcome(
        plan.src_url, plan.dst_url, "copied", obj.size, result.envelope.format, verified=verified
    )
    return outcome, sha


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
    plan: _Plan,
    verify: bool,
    allow_cse_only: bool,
    cfg: TransferConfig,
) -> tuple[ObjectOutcome, str]:
    obj = reader._open((src_store, plan.info.key))
    src_fmt = registry.get_format(obj.envelope.format)
    if not src_fmt.writable:
        raise ConfigurationError(
            f"{plan.src_url} is in the legacy {src_fmt.name} format, which cse does not write; migrate it "
            "in native mode (re-encrypt) instead"
        )
    fmt, cse_only = _rewrap_format(src_fmt, src_store, dst_store, allow_cse_only)
    envelope = writer.rewrapped_envelope(obj.envelope, obj.material, fmt, writer.wrap_keys)
    sha = _plaintext_sha256(reader, obj) if verify else ""
    old_fields = src_fmt.encode(obj.envelope).keys()
    own = {k: v for k, v in obj.info.metadata.items() if k not in old_fields}
    if src_store is dst_store:
        metadata = {**own, **fmt.encode(envelope)}
        src_store.copy(plan.info.key, plan.dst_key, metadata)
    else:
        part = writer._part_size(dst_store, obj.info.size, 16)
        _stream_ciphertext(
            src_store, plan.info.key, obj.info.size, dst_store, plan.dst_key, fmt, envelope, own, cfg, part
        )
    verified = _verify(writer, dst_store, plan.dst_key, sha) if verify else None
    outcome = ObjectOutcome(
        plan.src_url, plan.dst_url, "copied", obj.size, fmt.name, cse_only=cse_only, verified=verified
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
) -> None:
    """Copy the stored bytes of ``src_key`` unchanged to another store, under new metadata, in parts of
    ``part`` bytes above the multipart threshold."""
    if size <= cfg.multipart_threshold:
        envelope = envelope.model_copy(update={"data_size": None, "part_size": None})
        data = src_store.read_all(src_key)
        if len(data) != size:
            raise CseError(f"{src_store.url(src_key)} changed while it was copied; run the migration again")
        dst_store.put(dst_key, data, {**own, **fmt.encode(envelope)})
        return
    codec = codec_for(envelope.content_algorithm)
    if codec.ciphertext_length(envelope, 16) == 16:  # CTR: the recorded layout is the plaintext's
        envelope = envelope.model_copy(
            update={"data_size": codec.plaintext_length(envelope, size), "part_size": part}
        )
    upload_id = dst_store.create_multipart(dst_key, {**own, **fmt.encode(envelope)})
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
