"""Files in parts: parallel uploads at part offsets, and resumable uploads and downloads with checkpoints.

Used by :meth:`cse.EncryptionClient.upload_file` and :meth:`~cse.EncryptionClient.download_file`.

Parallel parts. When a format's content cipher can start anywhere on a block or segment boundary (OSS V2's
AES-CTR, cse-v1's segments), each part of a local file is read with ``pread`` and encrypted on its own, at
its offset, in a worker thread; ``max_concurrency`` parts are encrypted and uploaded at once. Memory is
one part buffer per worker for CTR (encrypted in place), two for cse-v1 (plaintext and ciphertext). GCM
(S3 V2/V3) cannot be cut like this and goes through the sequential pipeline.

Checkpoints. ``upload_file(..., checkpoint=PATH)`` records, in a JSON file written atomically after each
part, the upload id, the file's size and modification time, the part size and the object's encryption
metadata as the format writes it: the *wrapped* content key (and wrapped IV), never a plaintext key. A
second run with the same checkpoint unwraps the key again and continues: the parts the store already holds
are re-encrypted locally and their MD5 compared with the store's ETag, so a part is skipped only when it
holds exactly the bytes this file gives; any other part is uploaded again. When the checkpoint is gone but
an unfinished upload of the key exists whose recorded crypto context (on OSS, what ListParts returns) fits
the file, that upload is continued the same way. A failed resumable upload is left in place for the next
run (the error says so); a failed upload without a checkpoint is aborted.

``download_file(..., checkpoint=PATH)`` writes the plaintext into ``PATH``'s sibling ``TARGET.cse-partial``
part by part (each part a ranged read, decrypted and, for cse-v1, verified segment by segment) and records
the finished parts with the object's ETag; a second run continues if the object did not change, and the
file is renamed into place only when every part is written. It needs a format whose byte ranges decrypt on
their own (OSS V2, cse-v1); S3 V2/V3 objects are authenticated only as a whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cse.content import ContentMaterial, codec_for
from cse.envelope import Envelope
from cse.exceptions import (
    ConfigurationError,
    CseError,
    DecryptionError,
    ObjectNotFoundError,
    StoreError,
)
from cse.formats.base import Format
from cse.settings import create_multipart
from cse.stores.base import ObjectSettings, PartInfo, Store

if TYPE_CHECKING:
    from cse.client import EncryptionClient, HeadResult, PutResult, _Decrypted

__all__ = ["CHECKPOINT_VERSION", "read_checkpoint"]

#: The version of the checkpoint files written here.
CHECKPOINT_VERSION = 1
_MD5 = re.compile(r"[0-9a-f]{32}")
Callback = Callable[[int], Any]


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (a JSON object), or None if there is none or it is not one of cse's."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot read the checkpoint {path}: {exc}; delete it to start over"
        ) from None
    if not isinstance(data, dict) or data.get("cse_checkpoint") != CHECKPOINT_VERSION:
        raise ConfigurationError(f"{path} is not a cse checkpoint (version {CHECKPOINT_VERSION}); delete it")
    return data


def _write_checkpoint(path: Path, data: dict[str, Any]) -> None:
    """Replace the checkpoint atomically (owner-only permissions)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def supports_parts(envelope: Envelope) -> bool:
    """Whether parts of this envelope's content can be encrypted (and ranges decrypted) on their own."""
    return codec_for(envelope.content_algorithm).independent_parts


def part_size_for(client: EncryptionClient, store: Store, envelope: Envelope, size: int) -> int:
    """The plaintext part size: the configured one, large enough for the store, on the codec's boundary."""
    return client._part_size(store, size, codec_for(envelope.content_algorithm).part_alignment(envelope))


@dataclass
class _Plan:
    upload_id: str
    envelope: Envelope
    material: ContentMaterial
    part_size: int
    resumed: bool


class _PartEncryptor:
    """Encrypts part ``n`` of a file into reusable per-thread buffers."""

    def __init__(self, fd: int, size: int, plan: _Plan) -> None:
        self.fd = fd
        self.size = size
        self.plan = plan
        self.codec = codec_for(plan.envelope.content_algorithm)
        self.count = max(1, -(-size // plan.part_size))
        self._local = threading.local()

    def bounds(self, number: int) -> tuple[int, int]:
        start = (number - 1) * self.plan.part_size
        return start, min(self.size, start + self.plan.part_size)

    def encrypt(self, number: int) -> memoryview:
        """The ciphertext of part ``number`` (a view of this thread's buffer, valid until its next call)."""
        start, end = self.bounds(number)
        length = end - start
        local = self._local
        if getattr(local, "plain", None) is None:
            local.plain = bytearray(self.plan.part_size)
            encryptor = self.codec.encryptor(self.plan.material, self.plan.envelope, 0, final=True)
            need = encryptor.output_size(self.plan.part_size)
            # A length-preserving cipher (CTR) encrypts in place: one buffer per worker instead of two.
            local.cipher = local.plain if need == self.plan.part_size else bytearray(need + 64)
        plain = memoryview(local.plain)[:length]
        got = 0
        while got < length:
            n = os.preadv(self.fd, [plain[got:]], start + got)
            if n <= 0:
                raise ConfigurationError("the file shrank while it was being uploaded; upload it again")
            got += n
        encryptor = self.codec.encryptor(
            self.plan.material, self.plan.envelope, start, final=number == self.count
        )
        out = memoryview(local.cipher)
        n = encryptor.update_into(plain, out)
        trailer = encryptor.finalize()
        out[n : n + len(trailer)] = trailer
        return out[: n + len(trailer)]


def _fresh_plan(
    client: EncryptionClient,
    store: Store,
    key: str,
    fmt: Format,
    context: dict[str, str],
    size: int,
    metadata: Mapping[str, str],
    settings: ObjectSettings,
) -> _Plan:
    envelope, material = client._new_envelope(fmt, context, size)
    part_size = part_size_for(client, store, envelope, size)
    envelope = envelope.model_copy(update={"data_size": size, "part_size": part_size})
    headers = fmt.encode(envelope)
    clash = sorted({k.lower() for k in metadata} & set(headers))
    if clash:
        raise ConfigurationError(
            f"the metadata names {', '.join(clash)} are the {fmt.name} format's own; rename them"
        )
    upload_id = create_multipart(store, key, {**metadata, **headers}, settings)
    return _Plan(upload_id, envelope, material, part_size, resumed=False)


#: The largest part size a checkpoint may give (S3's and OSS's limit); a larger one is a damaged file.
_MAX_PART = 5 * 1024**3


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _upload_checkpoint_ok(data: dict[str, Any], size: int) -> bool:
    """Whether an upload checkpoint's fields have the types and ranges cse writes (a damaged or foreign
    file is not resumed from: a fresh upload starts)."""
    metadata, parts = data.get("metadata"), data.get("parts", {})
    return (
        isinstance(data.get("upload_id"), str)
        and bool(data["upload_id"])
        and _is_int(data.get("part_size"), 1, min(_MAX_PART, max(size, 1)))
        and isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        and isinstance(parts, dict)
    )


def _plan_from_checkpoint(
    client: EncryptionClient, store: Store, key: str, fmt: Format, data: dict[str, Any], stat: os.stat_result
) -> _Plan | None:
    if (
        not _upload_checkpoint_ok(data, stat.st_size)
        or data.get("kind") != "upload"
        or data.get("url") != store.url(key)
        or data.get("size") != stat.st_size
        or data.get("mtime_ns") != stat.st_mtime_ns
        or data.get("format") != fmt.name
    ):
        return None
    envelope = fmt.decode(data["metadata"])
    material = client.unwrap(envelope)
    upload_id = str(data["upload_id"])
    try:
        store.list_parts(key, upload_id)
    except ObjectNotFoundError:
        return None
    return _Plan(upload_id, envelope, material, int(data["part_size"]), resumed=True)


def _plan_from_listing(
    client: EncryptionClient, store: Store, key: str, fmt: Format, size: int
) -> _Plan | None:
    """An unfinished upload of ``key`` whose recorded crypto context fits a file of ``size`` bytes."""
    uploads = [u for u in store.list_multipart_uploads(key) if u.key == key]
    uploads.sort(key=lambda u: u.initiated.timestamp() if u.initiated else 0.0, reverse=True)
    for upload in uploads:
        if not upload.metadata or not fmt.detect(upload.metadata):
            continue
        try:
            envelope = fmt.decode(upload.metadata)
            if envelope.data_size != size or not envelope.part_size or not supports_parts(envelope):
                continue
            material = client.unwrap(envelope)
        except DecryptionError:  # not this file's upload, or not our key
            continue
        return _Plan(upload.upload_id, envelope, material, envelope.part_size, resumed=True)
    return None


def upload_file_in_parts(
    client: EncryptionClient,
    path: Path,
    store: Store,
    key: str,
    fmt: Format,
    context: dict[str, str],
    *,
    checkpoint: Path | None,
    callback: Callback | None,
    metadata: Mapping[str, str] | None = None,
    settings: ObjectSettings | None = None,
) -> PutResult:
    """Upload a local file as a multipart object, parts encrypted in parallel at their offsets; resumable
    with a checkpoint (module docstring). A fresh upload is started with ``metadata`` and ``settings``
    (checked by the caller); a resumed one keeps those it was started with."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        stat = os.fstat(fd)
        size = stat.st_size
        plan: _Plan | None = None
        if checkpoint is not None:
            saved = read_checkpoint(checkpoint)
            if saved is not None:
                plan = _plan_from_checkpoint(client, store, key, fmt, saved, stat)
            if plan is None:
                plan = _plan_from_listing(client, store, key, fmt, size)
            if plan is None and saved is not None and saved.get("url") == store.url(key):
                # The checkpoint's upload cannot be continued (other format, or gone): leave nothing behind.
                with contextlib.suppress(CseError):
                    store.abort_multipart(key, str(saved.get("upload_id", "")))
        if plan is None:
            plan = _fresh_plan(
                client, store, key, fmt, context, size, dict(metadata or {}), settings or ObjectSettings()
            )
        state: dict[str, Any] = {
            "cse_checkpoint": CHECKPOINT_VERSION,
            "kind": "upload",
            "url": store.url(key),
            "file": str(path.resolve()),
            "size": size,
            "mtime_ns": stat.st_mtime_ns,
            "format": fmt.name,
            "upload_id": plan.upload_id,
            "part_size": plan.part_size,
            "metadata": fmt.encode(plan.envelope),
        }
        lock = threading.Lock()
        if checkpoint is not None:
            _write_checkpoint(checkpoint, state)
        try:
            return _upload_parts(client, store, key, fmt, fd, size, plan, checkpoint, state, lock, callback)
        except BaseException as exc:
            if checkpoint is None:
                from cse.uploads import raise_aborted

                raise_aborted(exc, store, key, plan.upload_id)
                raise
            if isinstance(exc, CseError):
                raise type(exc)(
                    f"{exc} -- the upload {plan.upload_id} is kept: run the same upload with the checkpoint "
                    f"{checkpoint} to continue it, or abort it (cse uploads {store.url(key)} --abort)"
                ) from exc
            raise
    finally:
        os.close(fd)


def _upload_parts(
    client: EncryptionClient,
    store: Store,
    key: str,
    fmt: Format,
    fd: int,
    size: int,
    plan: _Plan,
    checkpoint: Path | None,
    state: dict[str, Any],
    lock: threading.Lock,
    callback: Callback | None,
) -> PutResult:
    from cse.client import PutResult

    cfg = client.config
    parts = _PartEncryptor(fd, size, plan)
    headers = fmt.part_headers(plan.envelope)
    have = {p.part_number: p for p in store.list_parts(key, plan.upload_id)} if plan.resumed else {}
    done: dict[int, PartInfo] = {}
    skipped = 0

    def run(number: int) -> None:
        nonlocal skipped
        data = parts.encrypt(number)
        old = have.get(number)
        if (
            old is not None
            and old.size == len(data)
            and _MD5.fullmatch(old.etag.lower())
            and hashlib.md5(data, usedforsecurity=False).hexdigest() == old.etag.lower()
        ):
            with lock:
                done[number] = old
                skipped += 1
            if callback is not None:
                start, end = parts.bounds(number)
                callback(end - start)
            return
        info: PartInfo | None = None
        for attempt in range(cfg.part_attempts):
            try:
                info = store.upload_part(key, plan.upload_id, number, data, headers)
                break
            except StoreError:
                if attempt + 1 == cfg.part_attempts:
                    raise
                time.sleep(0.2 * 2**attempt)
        assert info is not None
        with lock:
            done[number] = info
            if checkpoint is not None:
                state["parts"] = {str(n): p.etag for n, p in sorted(done.items())}
                _write_checkpoint(checkpoint, state)
        if callback is not None:
            start, end = parts.bounds(number)
            callback(end - start)

    numbers = list(range(1, parts.count + 1))
    with ThreadPoolExecutor(max_workers=cfg.max_concurrency, thread_name_prefix="cse-part") as pool:
        pending: set[Future[None]] = set()
        for number in numbers:
            if len(pending) >= cfg.max_concurrency:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in finished:
                    fut.result()
            pending.add(pool.submit(run, number))
        finished, _ = wait(pending)
        for fut in finished:
            fut.result()
    ordered = [done[n] for n in numbers]
    info = store.complete_multipart(key, plan.upload_id, ordered)
    if checkpoint is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(checkpoint)
    envelope = plan.envelope
    return PutResult(
        store.url(key), info.etag, size, sum(p.size for p in ordered), envelope, len(ordered), skipped
    )


def download_file_in_parts(
    client: EncryptionClient,
    obj: _Decrypted,
    target: Path,
    *,
    checkpoint: Path,
    callback: Callback | None,
) -> HeadResult:
    """Decrypt an object into ``target`` part by part, resumable with ``checkpoint`` (module docstring)."""
    from cse.client import HeadResult

    envelope = obj.envelope
    if not supports_parts(envelope):
        raise ConfigurationError(
            f"{obj.store.url(obj.key)} is in the {envelope.format} format, which is authenticated only as a "
            "whole, so it cannot be downloaded in resumable parts; download it without a checkpoint"
        )
    url = obj.store.url(obj.key)
    partial = target.with_name(target.name + ".cse-partial")
    align = codec_for(envelope.content_algorithm).part_alignment(envelope)
    part = max(align, -(-client.config.part_size // align) * align)
    count = max(1, -(-obj.size // part))
    saved = read_checkpoint(checkpoint)
    done: set[int] = set()
    recorded = saved.get("done", []) if saved is not None else []
    if (
        saved is not None
        and isinstance(recorded, list)
        and all(_is_int(n, 1, count) for n in recorded)
        and saved.get("kind") == "download"
        and saved.get("url") == url
        and saved.get("etag") == obj.info.etag
        and saved.get("size") == obj.info.size
        and saved.get("part_size") == part
        and partial.exists()
    ):
        done = set(recorded)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    state: dict[str, Any] = {
        "cse_checkpoint": CHECKPOINT_VERSION,
        "kind": "download",
        "url": url,
        "etag": obj.info.etag,
        "size": obj.info.size,
        "part_size": part,
        "target": str(target.resolve()),
        "done": sorted(done),
    }
    _write_checkpoint(checkpoint, state)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o600)
    lock = threading.Lock()
    try:
        os.ftruncate(fd, obj.size)

        def run(number: int) -> None:
            start = (number - 1) * part
            end = min(obj.size, start + part) - 1
            pos = start
            for piece in client._stream(obj, start, end):
                view = memoryview(piece)
                while len(view):
                    n = os.pwrite(fd, view, pos)
                    pos += n
                    view = view[n:]
            with lock:
                done.add(number)
                state["done"] = sorted(done)
                _write_checkpoint(checkpoint, state)
            if callback is not None:
                callback(end - start + 1)

        todo = [n for n in range(1, count + 1) if n not in done]
        if obj.size:
            with ThreadPoolExecutor(
                max_workers=client.config.max_concurrency, thread_name_prefix="cse-get"
            ) as pool:
                for fut in [pool.submit(run, n) for n in todo]:
                    fut.result()
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, target)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(checkpoint)
    return HeadResult(
        url, obj.size, obj.info.size, obj.info.etag, envelope, dict(obj.info.metadata), obj.info.settings
    )
