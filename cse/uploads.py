"""Unfinished multipart uploads: list them, and abort them.

:meth:`cse.EncryptionClient.put` and :meth:`~cse.EncryptionClient.upload_file` abort their own multipart
upload on every failure they survive (an error of the store, of the key provider, of the body, an
interrupt). Only a hard kill of the process (SIGKILL, a crash of the machine, a lost container) can leave
one behind, and a resumable ``upload_file(..., checkpoint=)`` keeps its upload on purpose, to continue it.
What is left costs storage (S3 and OSS bill the parts of an unfinished upload) until it is aborted,
with :func:`abort_uploads` (``abort_uploads("s3://bucket/backups/", older_than="2h")``) after a look with
:func:`list_uploads`.

The same from the command line: ``cse uploads URL_PREFIX [--json] [--abort [--older-than 2h]]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cse.exceptions import ConfigurationError, MultipartError, ObjectNotFoundError, StoreError
from cse.stores.base import Store, UploadInfo

__all__ = [
    "UnfinishedUpload",
    "abort_after_failure",
    "abort_uploads",
    "list_uploads",
    "parse_age",
    "raise_aborted",
]

_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", re.IGNORECASE)
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}

Age = timedelta | float | int | str


@dataclass(frozen=True)
class UnfinishedUpload:
    """One unfinished multipart upload, as :func:`list_uploads` finds it."""

    #: The URL of the object the upload would create.
    url: str
    #: Its key in the store.
    key: str
    upload_id: str
    #: When the upload was started (``None`` if the store does not say).
    initiated: datetime | None
    #: How many parts the store holds for it, and their total size in bytes (what it costs).
    parts: int
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``initiated`` in ISO 8601)."""
        return {
            "url": self.url,
            "key": self.key,
            "upload_id": self.upload_id,
            "initiated": self.initiated.isoformat() if self.initiated else None,
            "parts": self.parts,
            "bytes": self.bytes,
        }


def parse_age(age: Age) -> timedelta:
    """An age as a :class:`~datetime.timedelta`: a timedelta, a number of seconds, or a string such as
    ``"90s"``, ``"30m"``, ``"2h"``, ``"7d"``, ``"1w"`` (a bare number is seconds)."""
    if isinstance(age, timedelta):
        seconds = age.total_seconds()
    elif isinstance(age, (int, float)) and not isinstance(age, bool):
        seconds = float(age)
    elif isinstance(age, str) and (match := _AGE.fullmatch(age)):
        seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    else:
        raise ConfigurationError(
            f"{age!r} is not an age: give a number and a unit, such as 90s, 30m, 2h, 7d or 1w"
        )
    if seconds < 0:
        raise ConfigurationError(f"an age cannot be negative ({age!r})")
    return timedelta(seconds=seconds)


def _open(target: str | tuple[Store, str]) -> tuple[Store, str]:
    if isinstance(target, tuple):
        return target
    from cse.registry import open_store

    return open_store(target)


def _describe(store: Store, upload: UploadInfo) -> UnfinishedUpload | None:
    try:
        parts = store.list_parts(upload.key, upload.upload_id)
    except ObjectNotFoundError:  # completed or aborted since it was listed
        return None
    return UnfinishedUpload(
        store.url(upload.key),
        upload.key,
        upload.upload_id,
        upload.initiated,
        len(parts),
        sum(p.size for p in parts),
    )


def _older(upload: UploadInfo, cutoff: datetime | None) -> bool:
    if cutoff is None:
        return True
    if upload.initiated is None:  # the store does not say: never old enough to abort by age
        return False
    started = upload.initiated if upload.initiated.tzinfo else upload.initiated.replace(tzinfo=timezone.utc)
    return started <= cutoff


def list_uploads(target: str | tuple[Store, str], *, older_than: Age | None = None) -> list[UnfinishedUpload]:
    """The unfinished multipart uploads under a URL prefix (``s3://bucket/dir/``, ``file:///data/``...) or
    a ``(store, prefix)`` pair, by key then start time, with their part count and size.

    With ``older_than`` (see :func:`parse_age`), only those started at least that long ago; an upload
    whose store gives no start time is then left out.
    """
    store, prefix = _open(target)
    cutoff = datetime.now(timezone.utc) - parse_age(older_than) if older_than is not None else None
    found = []
    for upload in store.list_multipart_uploads(prefix):
        if _older(upload, cutoff) and (described := _describe(store, upload)) is not None:
            found.append(described)
    return found


def abort_uploads(
    target: str | tuple[Store, str], *, older_than: Age | None = None
) -> list[UnfinishedUpload]:
    """Abort the unfinished multipart uploads :func:`list_uploads` finds with the same arguments, freeing
    their parts; return what was aborted.

    Aborting also ends an upload that is still running in another process (that upload then fails), so
    give ``older_than`` (``"2h"``) when uploads may be in progress. A resumable upload's checkpoint no
    longer applies once its upload is aborted; the next run starts over.
    """
    store, prefix = _open(target)
    aborted = list_uploads((store, prefix), older_than=older_than)
    for upload in aborted:
        store.abort_multipart(upload.key, upload.upload_id)
    return aborted


def abort_after_failure(store: Store, key: str, upload_id: str, attempts: int = 2) -> str:
    """Abort the multipart upload of a failed put (for the multipart engine and store authors).

    Tries ``attempts`` times and never raises: returns ``"was aborted"``, or, when the store refused
    every abort, a sentence naming the upload and the command that cleans it up, for the error message.
    """
    last: BaseException | None = None
    for _ in range(max(1, attempts)):
        try:
            store.abort_multipart(key, upload_id)
            return "was aborted"
        except Exception as exc:
            last = exc
    reason = " ".join(str(last).split()) or type(last).__name__
    return (
        f"could not be aborted ({reason}): its upload {upload_id} is left in the store; remove it with "
        f"'cse uploads {store.url(key)} --abort' or cse.uploads.abort_uploads"
    )


def raise_aborted(exc: BaseException, store: Store, key: str, upload_id: str) -> None:
    """Abort the multipart upload a failed put started (:func:`abort_after_failure`), and raise what the
    caller should see: a store error becomes a :class:`~cse.exceptions.MultipartError` that says whether
    the upload was aborted. Other errors return to be re-raised as they are, with a note when the upload
    could not be aborted."""
    outcome = abort_after_failure(store, key, upload_id)
    if isinstance(exc, StoreError) and not isinstance(exc, MultipartError):
        raise MultipartError(f"multipart upload of {store.url(key)} failed and {outcome}: {exc}") from exc
    if outcome != "was aborted" and hasattr(exc, "add_note"):
        exc.add_note(f"the multipart upload of {store.url(key)} {outcome}")
