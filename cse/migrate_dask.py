"""The Dask engine of :func:`cse.migrate.migrate` (``cse migrate --engine dask``, and ``cse rewrap``).

Extra ``cse[dask]`` (``distributed``). Nothing imports this module at ``import cse`` or
``import cse.migrate``: :func:`cse.migrate.migrate` imports it when ``engine="dask"``.

The driver (the process that calls :func:`migrate_dask`):

* lists the source prefix page by page (the store's own listing pages), checks each page against the journal
  in one query, counts what is done already as skipped, and cuts the rest into batches of at most
  ``batch_objects`` objects and ``batch_bytes`` stored bytes;
* marks a batch's objects ``copying`` in the journal, each with a fresh random token, and submits the batch
  as one task; at most two tasks per worker thread are pending at once, and the listing waits while they
  are (backpressure: only the batches in flight are in memory, never the whole listing);
* records each object's outcome in the journal as its task finishes (one transaction per task), with the
  progress callback after each object; the summary counts every object and keeps the failed ones.

A task (on a worker) builds, once per worker process and run, the same clients, stores and
:class:`cse.migrate._Migrator` as the local engine, from the key URIs and store URLs, and migrates its batch
with the same per-object code, ``workers`` objects at once; it returns one outcome per object and the
cumulative KMS call counts of its process. Keys never leave the worker: content keys are made and unwrapped
there, and the data-key cache (its limits come from the driver) lives in the worker process. What a task
carries is the key URIs, store URLs and options: key URIs hold no secrets (a passphrase is named by an
environment variable, ``passphrase-env=VAR``, read on the worker), and key provider objects or data-key
caches, which hold key material, are refused.

Exactly once. Every destination object written by a task records the source's ETag and the attempt's token
in its user metadata (``cse-source-etag``, ``cse-migration-token``). A rerun that finds an object still
``copying`` in the journal (a killed driver, a lost task) heads its destination: with that ETag and token,
the copy is complete, and the object is skipped (``recovered``); otherwise it is copied again, after aborting
multipart uploads that the earlier attempt left. A task that a dead worker's scheduler runs again aborts
the uploads its first attempt left at the keys of large objects. Writing a key again replaces the object:
nothing is duplicated.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cse import registry
from cse.cache import DataKeyCache
from cse.config import TransferConfig
from cse.exceptions import ConfigurationError, CseError, MissingExtraError
from cse.migrate import (
    Journal,
    MigrationSummary,
    ObjectOutcome,
    Progress,
    _check_options,
    _finish,
    _is_done,
    _Item,
    _item,
    _kms_counts,
    _Migrator,
    _open_clients,
    _outcome_row,
    _with_row,
)
from cse.settings import object_settings
from cse.stores.base import ObjectInfo, ObjectSettings, ServerSideEncryption, Store

__all__ = ["DEFAULT_BATCH_BYTES", "DEFAULT_BATCH_OBJECTS", "migrate_dask"]

#: The most objects in one task, unless told otherwise.
DEFAULT_BATCH_OBJECTS = 1000
#: The most stored bytes in one task, unless told otherwise (1 GiB).
DEFAULT_BATCH_BYTES = 1 << 30
#: Objects looked up in the journal at once.
_PAGE = 1000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Spec:
    """What a task needs to build its migrator: URIs, URLs and options, no key material."""

    run_id: str
    src_url: str
    dst_url: str
    keys: tuple[str, ...]
    to_keys: tuple[str, ...]
    mode: str
    format: str | None
    allow_legacy: bool
    allow_cse_only: bool
    verify: bool
    workers: int
    #: ``(max_age, max_objects, max_bytes)`` of a data-key cache in each worker process, or None.
    cache_limits: tuple[float, int, int] | None
    config: TransferConfig
    #: The settings that replace the source's (``sse``, ``storage_class``); empty: each keeps its own.
    settings: ObjectSettings = field(default_factory=ObjectSettings)


@dataclass(frozen=True)
class _BatchResult:
    """One task's answer: an outcome and a plaintext SHA-256 per object, in the batch's order, and the KMS
    calls its worker process made for this run so far."""

    results: list[tuple[ObjectOutcome, str]]
    process: str
    kms: dict[str, int]


# ------------------------------------------------------------------------------------- the worker side

#: This process, among all the worker processes of a run.
_PROCESS = uuid.uuid4().hex
_contexts: OrderedDict[str, _Migrator] = OrderedDict()
_contexts_lock = threading.Lock()
#: Runs whose migrators a worker process keeps (the driver drops its own at the end of a run).
_KEEP = 4


def _build(spec: _Spec) -> _Migrator:
    cache = DataKeyCache(*spec.cache_limits) if spec.cache_limits is not None else None
    reader, writer = _open_clients(
        list(spec.keys),
        list(spec.to_keys) or None,
        format=spec.format,
        allow_legacy=spec.allow_legacy,
        key_cache=cache,
        config=spec.config,
    )
    src_store, src_prefix = reader.resolve(spec.src_url)
    dst_store, dst_prefix = reader.resolve(spec.dst_url)
    return _Migrator(
        reader,
        writer,
        src_store,
        dst_store,
        mode=spec.mode,
        verify=spec.verify,
        allow_cse_only=spec.allow_cse_only,
        config=spec.config,
        in_place=src_store is dst_store and src_prefix == dst_prefix,
        leftovers_before=time.time(),
        leftovers_above=spec.config.multipart_threshold,
        settings=spec.settings,
    )


def _context(spec: _Spec) -> _Migrator:
    """This process's migrator for the run (built on its first task)."""
    with _contexts_lock:
        migrator = _contexts.get(spec.run_id)
        if migrator is None:
            migrator = _contexts[spec.run_id] = _build(spec)
            while len(_contexts) > _KEEP:
                _close(_contexts.popitem(last=False)[1])
        else:
            _contexts.move_to_end(spec.run_id)
        return migrator


def _close(migrator: _Migrator) -> None:
    cache = migrator.writer.key_cache
    if cache is not None:
        cache.clear()  # zeroes the cached plaintext keys
    with contextlib.suppress(Exception):
        migrator.reader.close()
    with contextlib.suppress(Exception):
        migrator.writer.close()


def _forget(run_id: str) -> None:
    """Drop a finished run's migrator (its clients, and its cached data keys) in this worker process."""
    with _contexts_lock:
        migrator = _contexts.pop(run_id, None)
    if migrator is not None:
        _close(migrator)


def _preflight(spec: _Spec) -> str:
    """Build the run's migrator in this worker process: ``""``, or why it cannot (a missing key file, a
    missing plugin ...), for the driver to report before any object is touched."""
    try:
        _context(spec)
    except CseError as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        return f"{type(exc).__name__} (see the worker's log)"
    return ""


def _run_batch(spec: _Spec, items: Sequence[_Item]) -> _BatchResult:
    """The task: migrate ``items`` with the local engine's per-object code, ``spec.workers`` at once."""
    migrator = _context(spec)
    started = time.time()

    def one(item: _Item) -> tuple[ObjectOutcome, str]:
        try:
            return migrator.migrate_one(item, leftovers_before=started)
        except Exception as exc:  # not a cse or OS error: fail the object, keep the details in the worker log
            log.exception("cse migrate: unexpected error on %s", item.src_url)
            name = type(exc).__name__
            message = (
                f"unexpected {name} on a Dask worker (its traceback is in the worker's log); rerun to retry"
            )
            return ObjectOutcome(item.src_url, item.dst_url, "failed", error=message, reason=name), ""

    threads = min(spec.workers, len(items))
    if threads <= 1:  # in the task's own thread: a pool of one would only add a hand-off per object
        results = [one(item) for item in items]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(one, items))
    return _BatchResult(results, _PROCESS, _kms_counts(migrator.providers))


# ------------------------------------------------------------------------------------- the driver side


def _key_uris(keys: Sequence[Any] | None, what: str) -> tuple[str, ...]:
    uris = tuple(keys or ())
    for key in uris:
        if not isinstance(key, str):
            raise ConfigurationError(
                f"the Dask engine builds the {what} on every worker from key URIs; give key URIs "
                f"(rsa:///path/key.pem, aws-kms://..., aliyun-kms://...), not {type(key).__name__} objects, "
                "which would carry key material into the task graph"
            )
    return uris


def _open(url: Any, what: str, stores: dict[str, Store]) -> tuple[Store, str]:
    if not isinstance(url, str):
        raise ConfigurationError(
            f"the Dask engine takes the {what} as a URL (s3://, oss://, file://), not a (store, prefix) "
            "pair: every worker opens the stores itself"
        )
    store, prefix = registry.open_store(url)
    if store.process_local:
        raise ConfigurationError(
            f"{url} is a {store.scheme}:// store, which exists in this process only, and the Dask engine "
            f"migrates in other processes; use a shared store (file://, s3://, oss://) or engine='local' "
            "(--engine local)"
        )
    store = stores.setdefault(store.url(""), store)
    return store, prefix


def _cache_limits(key_cache: Any) -> tuple[float, int, int] | None:
    if key_cache is None:
        return None
    if not isinstance(key_cache, DataKeyCache):
        raise ConfigurationError(
            f"key_cache must be a cse.cache.DataKeyCache (its limits are used by every worker), "
            f"not {type(key_cache).__name__}"
        )
    return (key_cache.max_age, key_cache.max_objects, key_cache.max_bytes)


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _distributed() -> Any:
    """The ``distributed`` module (partly typed: used as ``Any``), or an install hint."""
    try:
        import distributed
    except ImportError:
        raise MissingExtraError(
            "the Dask engine needs the distributed package, which is not installed; install it with: "
            "pip install 'cse[dask]'"
        ) from None
    return distributed


def _connect(scheduler: Any) -> tuple[Any, Any]:
    """The client to submit to (``scheduler`` itself when it is one; otherwise the run's own, closed at its
    end), and the LocalCluster this run started (None when it connected to one)."""
    dist = _distributed()
    import dask

    Client, LocalCluster = dist.Client, dist.LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, None
    if scheduler is not None and not isinstance(scheduler, str):
        raise ConfigurationError(
            f"scheduler must be an address (tcp://host:8786) or a distributed.Client, not "
            f"{type(scheduler).__name__}"
        )
    address = (
        scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get("scheduler-address", None)
    )
    if address:
        try:
            return Client(address, timeout="30s", set_as_default=False), None
        except (OSError, TimeoutError) as exc:
            raise ConfigurationError(
                f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {exc}); start one "
                "(dask scheduler) or give its address with --scheduler or DASK_SCHEDULER_ADDRESS"
            ) from None
    cluster = LocalCluster(
        n_workers=_cpus(),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    return Client(cluster, set_as_default=False), cluster


def _pages(listing: Iterator[ObjectInfo]) -> Iterator[list[ObjectInfo]]:
    """Pages of the listing of at most :data:`_PAGE` objects (looked up in the journal together)."""
    page: list[ObjectInfo] = []
    for info in listing:
        page.append(info)
        if len(page) >= _PAGE:
            yield page
            page = []
    if page:
        yield page


def migrate_dask(
    src: Any,
    dst: Any,
    *,
    keys: Sequence[Any],
    to_keys: Sequence[Any] | None = None,
    mode: str = "native",
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
    scheduler: Any = None,
    batch_objects: int | None = None,
    batch_bytes: int | None = None,
    sse: ServerSideEncryption | str | None = None,
    sse_key_id: str | None = None,
    storage_class: str | None = None,
) -> MigrationSummary:
    """:func:`cse.migrate.migrate` on a Dask cluster; call that with ``engine="dask"`` rather than this.

    The options are :func:`cse.migrate.migrate`'s, except that keys are key URIs, ``src`` and ``dst`` URLs
    of stores every worker can reach (not ``memory://``), ``key_cache`` gives its limits to a cache in every
    worker process, and ``workers`` is the objects at once in each task. ``scheduler`` is an address or a
    ``distributed.Client`` (default: ``DASK_SCHEDULER_ADDRESS``, else a ``LocalCluster`` of one worker
    process per core of this machine, on 127.0.0.1, closed at the end). The summary keeps the outcomes of
    failed objects only; the journal has every object. Progress totals are the objects listed so far.
    """
    _check_options(mode, workers, keys)
    override = object_settings(sse=sse, sse_key_id=sse_key_id, storage_class=storage_class)
    batch_objects = DEFAULT_BATCH_OBJECTS if batch_objects is None else batch_objects
    batch_bytes = DEFAULT_BATCH_BYTES if batch_bytes is None else batch_bytes
    if batch_objects < 1 or batch_bytes < 1:
        raise ConfigurationError(
            f"batch_objects and batch_bytes must be at least 1, not {batch_objects} and {batch_bytes}"
        )
    started = time.monotonic()
    key_uris, to_uris = _key_uris(keys, "source keys"), _key_uris(to_keys, "destination keys")
    stores: dict[str, Store] = {}
    src_store, src_prefix = _open(src, "source", stores)
    dst_store, dst_prefix = _open(dst, "destination", stores)
    if mode == "native" and src_store is dst_store and src_prefix == dst_prefix:
        raise ConfigurationError(
            "native migration onto its own source would rewrite every object in place; use mode rewrap "
            "(cse rewrap) to rotate keys in place, or give another destination"
        )
    if override:
        dst_store.check_settings(override)  # a mode the destination lacks is refused before any task
    cfg = config or TransferConfig()
    spec = _Spec(
        run_id=uuid.uuid4().hex,
        src_url=src,
        dst_url=dst,
        keys=key_uris,
        to_keys=to_uris,
        mode=mode,
        format=format,
        allow_legacy=allow_legacy,
        allow_cse_only=allow_cse_only,
        verify=verify,
        workers=workers,
        cache_limits=_cache_limits(key_cache),
        config=cfg,
        settings=override,
    )
    summary = MigrationSummary(mode=mode, dry_run=dry_run, engine="dask")
    listed = [0, 0]
    finished = [0, 0]

    def record(outcome: ObjectOutcome, stored: int) -> None:
        summary.add(outcome, keep=False)
        finished[0] += 1
        finished[1] += stored
        if progress is not None:
            progress(finished[0], listed[0], finished[1], listed[1])

    listing = _pages(iter(src_store.list(src_prefix)))
    if dry_run:
        for page in listing:
            for info in page:
                item = _item(src_store, src_prefix, dst_store, dst_prefix, info)
                listed[0] += 1
                listed[1] += item.size
                record(ObjectOutcome(item.src_url, item.dst_url, "planned", item.size), item.size)
        _finish(summary, {}, started)
        return summary

    book = Journal(journal) if journal is not None else None
    client, cluster = _connect(scheduler)
    kms: dict[str, dict[str, int]] = {}
    try:
        _check_workers(client, spec)
        threads = sum(client.nthreads().values()) or 1
        limit = max(2, 2 * threads)
        pending: dict[Any, list[_Item]] = {}
        finished_futures: queue.SimpleQueue[Any] = queue.SimpleQueue()
        submitted = 0

        def submit(batch: list[_Item]) -> None:
            nonlocal submitted
            batch = [replace(item, token=secrets.token_hex(8)) for item in batch]
            if book is not None:
                book.mark_many(
                    [(i.src_url, i.dst_url, i.etag, i.size, "copying", {"token": i.token}) for i in batch]
                )
            submitted += 1
            key = f"cse-migrate-{spec.run_id}-{submitted}"
            fut = client.submit(_run_batch, spec, batch, key=key, pure=False)
            pending[fut] = batch
            fut.add_done_callback(finished_futures.put)
            while len(pending) >= limit:
                collect()

        def collect() -> None:
            fut = finished_futures.get()
            settle(fut, pending.pop(fut))

        def settle(fut: Any, batch: list[_Item]) -> None:
            try:
                answer: _BatchResult = fut.result()
            except Exception as exc:  # a lost task: KilledWorker, cancelled, or its migrator failed to build
                _lost(book, batch, exc, record)
                return
            seen = kms.setdefault(answer.process, {})
            for name, n in answer.kms.items():
                seen[name] = max(seen.get(name, 0), n)
            rows = [
                _outcome_row(item, outcome, sha)
                for item, (outcome, sha) in zip(batch, answer.results, strict=True)
            ]
            if book is not None:
                book.mark_many(rows)
            for item, (outcome, _) in zip(batch, answer.results, strict=True):
                record(outcome, item.size)

        batch: list[_Item] = []
        size = 0
        for page in listing:
            items = [_item(src_store, src_prefix, dst_store, dst_prefix, info) for info in page]
            listed[0] += len(items)
            listed[1] += sum(i.size for i in items)
            rows = book.get_many([i.src_url for i in items]) if book is not None else {}
            for item in items:
                row = rows.get(item.src_url)
                if _is_done(row, item):
                    assert row is not None
                    record(
                        ObjectOutcome(item.src_url, item.dst_url, "skipped", item.size, row["format"]),
                        item.size,
                    )
                    continue
                if batch and (len(batch) >= batch_objects or size + item.size > batch_bytes):
                    submit(batch)
                    batch, size = [], 0
                batch.append(_with_row(item, row))
                size += item.size
        if batch:
            submit(batch)
        while pending:
            collect()
    finally:
        with contextlib.suppress(Exception):
            client.run(_forget, spec.run_id)
        if book is not None:
            book.close()
        if client is not scheduler:  # this run's own client (of an address, or of its LocalCluster)
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
    total: dict[str, int] = {}
    for counts in kms.values():
        for name, n in counts.items():
            total[name] = total.get(name, 0) + n
    _finish(summary, {k: v for k, v in total.items() if v}, started)
    return summary


def _check_workers(client: Any, spec: _Spec) -> None:
    """Build the run's migrator on every connected worker; raise if any cannot (before any object moves)."""
    client.wait_for_workers(1, timeout=120)
    answers: Mapping[str, str] = client.run(_preflight, spec)
    problems = [f"{worker}: {error}" for worker, error in sorted(answers.items()) if error]
    if problems:
        raise ConfigurationError(
            "Dask workers cannot migrate: " + "; ".join(problems) + ". Every worker needs the key files "
            "the key URIs name, the plugins (cse[aws], cse[aliyun]) and the stores' and key services' "
            "credentials (docs/migration.md)"
        )


def _lost(book: Journal | None, batch: Sequence[_Item], exc: BaseException, record: Any) -> None:
    """A task whose outcome never arrived: its objects failed in this run and stay ``copying`` in the
    journal, so that the next run checks their destinations."""
    name = type(exc).__name__
    detail = f"{name}: {exc}" if isinstance(exc, CseError) else name
    message = (
        f"the Dask task migrating this object was lost ({detail}); whether it was copied is unknown, and the "
        "next run with the same journal finds out"
    )
    if book is not None:
        book.note_errors([item.src_url for item in batch], message)
    for item in batch:
        record(
            ObjectOutcome(item.src_url, item.dst_url, "failed", error=message, reason="TaskLost"), item.size
        )
