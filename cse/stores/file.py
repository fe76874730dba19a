"""``file://``: objects as files in a local directory tree.

Layout under the store's root, for the key ``a/b/name``::

    a/b/name                           the object's bytes, exactly as stored (ciphertext)
    a/b/.cse/name.json                 its sidecar: {"metadata": {...}, "size": N, "etag": "...",
                                       "last_modified": "<ISO 8601>", "settings": {...}}
    a/b/.cse/uploads/<id>/upload.json  an unfinished multipart upload of a key in a/b (key, metadata,
                                       settings, start)
    a/b/.cse/uploads/<id>/part-00001   its parts, each with a header part-00001.json (size, etag, headers)

Keeping the metadata next to the data (rather than in one database at the root) means that every split of a
path into a root and a key addresses the same object: ``FileStore("/d").head("a/x")`` and
``FileStore("/d/a").head("x")`` read the same files, so ``file://`` URLs can name the directory as the root.

Writes are atomic: the data and the sidecar are written to temporary files in the directory's ``.cse``
folder, flushed to disk, then renamed over the object with :func:`os.replace`, data first. The sidecar
records the data's size and a *probe*, the MD5 of its first and last 4 KiB. A reader reads the sidecar,
opens the data file, checks its size and probe, and reads the sidecar again; if anything disagrees it
caught a writer between its two renames and retries, and after a few tries raises
:class:`~cse.exceptions.StoreError` ("being written or its sidecar is stale"). So a reader never pairs new
bytes with the old metadata, even when an object is rewritten with the same size (a re-encryption of the
same file), which would otherwise decrypt the new ciphertext under the old key material. A data file with
no sidecar (put there by hand, or whose sidecar was lost) cannot be read (it has no encryption metadata):
``head``/``get`` raise :class:`~cse.exceptions.MetadataError`; ``list`` shows it without metadata.

Object settings (:class:`~cse.stores.base.ObjectSettings`): the content type, content disposition, cache
control and tags are kept in the sidecar's optional ``"settings"`` object (``content_type``,
``content_disposition``, ``cache_control``: strings; ``tags``: an object of strings), reported by
``head``/``get`` (tags by ``get_tags``) and kept by ``copy``. A local directory has no server-side
encryption and no storage classes: :meth:`FileStore.check_settings` refuses both.

Keys are ``/``-separated paths relative to the root without empty, ``.``, ``..`` or ``.cse`` segments.
Unlike S3, a key cannot also be a "directory" of other keys (``a`` and ``a/b`` cannot both exist). Empty
directories are removed when their last object or upload goes. Multipart ``complete`` streams the parts
into the object through one reused 1 MiB buffer, so memory stays flat whatever the object's size.

URLs: ``file:///abs/dir/name`` is the key ``name`` in the store rooted at ``/abs/dir``; a URL ending in
``/`` names a directory (the root, key ``""``). ``file://./rel/name`` and ``file://../rel/name`` are
relative to the current directory (made absolute when opened). Other hosts are refused.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, unquote

from cse.exceptions import (
    ConfigurationError,
    MetadataError,
    ObjectNotFoundError,
    StoreError,
)
from cse.stores.base import (
    GetResult,
    ObjectInfo,
    ObjectSettings,
    PartInfo,
    Store,
    UploadInfo,
    clean_metadata,
    resolve_get_range,
)

if TYPE_CHECKING:
    from _hashlib import HASH

__all__ = ["FileStore"]

_CSE = ".cse"
_UPLOADS = "uploads"
_UPLOAD_DOC = "upload.json"
_TMP = ".tmp-"
_CHUNK = 1 << 20
_SIDECAR_LIMIT = 16 << 20
_ATTEMPTS = 6
_PROBE = 4096
_O_BINARY: int = getattr(os, "O_BINARY", 0)
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_PART_HEADER = re.compile(r"part-(\d{5})\.json")
_WINDOWS = os.name == "nt"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _md5() -> HASH:
    return hashlib.md5(usedforsecurity=False)


def _segment_problem(segment: str) -> str | None:
    if segment == "":
        return "has an empty segment ('//', or a '/' at the end)"
    if segment in (".", ".."):
        return f"has a {segment!r} segment"
    if segment == _CSE:
        return "has a segment named '.cse', where the file store keeps metadata"
    if "\x00" in segment:
        return "contains a NUL character"
    if _WINDOWS and ("\\" in segment or ":" in segment):
        return "contains '\\' or ':', which Windows paths cannot hold"
    return None


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not key:
        return "is empty (a key names a file below the store's root)"
    if key.startswith("/"):
        return "starts with '/' (keys are relative to the store's root)"
    for segment in key.split("/"):
        problem = _segment_problem(segment)
        if problem:
            return problem
    return None


def _write_all(fd: int, data: memoryview) -> None:
    while len(data):
        data = data[os.write(fd, data) :]


def _fsync_dir(path: str) -> None:
    """Flush a directory entry (a rename) to disk where the platform allows it."""
    if _WINDOWS:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: str | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _json_bytes(doc: Mapping[str, Any]) -> memoryview:
    return memoryview(json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8"))


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("not a string")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _read_exact(fd: int, offset: int, size: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    pieces: list[bytes] = []
    while size > 0:
        piece = os.read(fd, size)
        if not piece:
            break
        pieces.append(piece)
        size -= len(piece)
    return b"".join(pieces)


def _probe(fd: int, size: int) -> str:
    """MD5 hex of the first and last 4 KiB of an open file of ``size`` bytes (all of it if smaller)."""
    hasher = hashlib.md5(usedforsecurity=False)
    if size <= 2 * _PROBE:
        hasher.update(_read_exact(fd, 0, size))
    else:
        hasher.update(_read_exact(fd, 0, _PROBE))
        hasher.update(_read_exact(fd, size - _PROBE, _PROBE))
    return hasher.hexdigest()


_SETTING_NAMES = ("content_type", "content_disposition", "cache_control")


def _settings_document(settings: ObjectSettings) -> dict[str, Any]:
    """The sidecar's ``"settings"``: the fields that are set."""
    doc: dict[str, Any] = {
        name: getattr(settings, name) for name in _SETTING_NAMES if getattr(settings, name) is not None
    }
    if settings.tags:
        doc["tags"] = dict(settings.tags)
    return doc


def _parse_settings(doc: object) -> ObjectSettings | None:
    """The settings of a sidecar's or upload record's ``"settings"`` (absent: none), or ``None`` if
    malformed."""
    if doc is None:
        return ObjectSettings()
    if not isinstance(doc, dict) or set(doc) - {*_SETTING_NAMES, "tags"}:
        return None
    tags = doc.get("tags", {})
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        return None
    if not all(isinstance(doc.get(name), (str, type(None))) for name in _SETTING_NAMES):
        return None
    try:
        return ObjectSettings(**{name: doc.get(name) for name in _SETTING_NAMES}, tags=dict(tags))
    except ConfigurationError:
        return None


def _without_tags(settings: ObjectSettings) -> ObjectSettings:
    """What ``ObjectInfo.settings`` shows: tags are read with ``get_tags``."""
    return ObjectSettings(settings.content_type, settings.content_disposition, settings.cache_control)


@dataclass(frozen=True)
class _Sidecar:
    metadata: dict[str, str]
    size: int
    etag: str
    last_modified: datetime
    probe: str
    settings: ObjectSettings = field(default_factory=ObjectSettings)

    def info(self, key: str) -> ObjectInfo:
        return ObjectInfo(
            key, self.size, self.etag, dict(self.metadata), self.last_modified, _without_tags(self.settings)
        )

    def document(self) -> dict[str, Any]:
        doc = {
            "metadata": self.metadata,
            "size": self.size,
            "etag": self.etag,
            "last_modified": self.last_modified.isoformat(),
            "probe": self.probe,
        }
        settings = _settings_document(self.settings)
        if settings:
            doc["settings"] = settings
        return doc


class _RangeReader(io.RawIOBase):
    """A read-only view of ``length`` bytes of an open file, from its current position."""

    def __init__(self, raw: io.FileIO, length: int, url: str) -> None:
        super().__init__()
        self._raw = raw
        self._left = length
        self._url = url

    def readable(self) -> bool:
        """Always true."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Read up to ``len(buffer)`` bytes of the range into ``buffer``; 0 at the end of the range."""
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._left)
        if want <= 0:
            return 0
        got = self._raw.readinto(view[:want]) or 0
        if got == 0:
            raise StoreError(f"{self._url} ended {self._left} bytes early (it was truncated while read)")
        self._left -= got
        return got

    def close(self) -> None:
        """Close the underlying file."""
        try:
            self._raw.close()
        finally:
            super().close()


class FileStore(Store):
    """Objects as files below a directory (``file:///root/key``). Thread- and process-safe.

    ``root`` need not exist yet; it is created by the first write.
    """

    scheme: ClassVar[str] = "file"
    #: The format cse writes to this store unless told otherwise.
    default_format: ClassVar[str] = "cse-v1"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """A store whose keys are paths relative to ``root`` (made absolute)."""
        path = os.path.abspath(os.fspath(root))
        if _CSE in Path(path).parts:
            raise ConfigurationError(f"{path} is inside a '.cse' metadata folder; choose another root")
        if os.path.exists(path) and not os.path.isdir(path):
            raise ConfigurationError(f"the root of a file store must be a directory; {path} is not one")
        #: The absolute path of the directory that holds the objects.
        self.root = path

    def __repr__(self) -> str:
        return f"FileStore({self.root!r})"

    # ------------------------------------------------------------------------------------------- URLs

    @classmethod
    def from_url(cls, url: str) -> tuple[Store, str]:
        """``file:///dir/name`` -> (``FileStore("/dir")``, ``"name"``); ``file:///dir/`` -> (…, ``""``).

        ``file://./rel/name`` and ``file://../rel/name`` are relative to the current directory;
        ``file://localhost/abs`` equals ``file:///abs``. Percent-escapes are decoded.
        """
        hint = "write file:///absolute/path or file://./relative/path"
        if not url.lower().startswith("file://"):
            raise ConfigurationError(f"{url!r} is not a file:// URL; {hint}")
        host, _, path = url[len("file://") :].partition("/")
        path = unquote(path)
        if "\x00" in path:
            raise ConfigurationError(f"{url!r} contains a NUL character")
        if host in ("", "localhost"):
            full = "/" + path
            if _WINDOWS and re.match(r"/[A-Za-z]:", full):
                full = full[1:]
        elif host in (".", ".."):
            full = os.path.join(os.getcwd(), host, path)
        else:
            raise ConfigurationError(f"{url!r} names the host {host!r}; file URLs are local paths: {hint}")
        if url.endswith("/") or not path:
            return cls(os.path.normpath(full)), ""
        directory, name = os.path.split(full)
        problem = _segment_problem(name)
        if problem:
            raise ConfigurationError(f"{url!r} names no object: its last segment {problem}")
        return cls(os.path.normpath(directory)), name

    def url(self, key: str) -> str:
        """``file:///root/key`` (percent-encoded); ``url("")`` is the root, ending in ``/``."""
        base = Path(self.root).as_uri()
        if not base.endswith("/"):  # the root "/" is already "file:///"
            base += "/"
        return f"{base}{quote(key, safe='/')}"

    # ---------------------------------------------------------------------------------------- helpers

    def _check_key(self, key: str) -> None:
        problem = _key_problem(key)
        if problem:
            raise ConfigurationError(f"invalid key {key!r} for the file store at {self.root}: it {problem}")

    def _paths(self, key: str) -> tuple[str, str, str]:
        """(data file, its directory's .cse folder, sidecar) of a valid ``key``."""
        self._check_key(key)
        head, _, name = key.rpartition("/")
        directory = os.path.join(self.root, *head.split("/")) if head else self.root
        meta_dir = os.path.join(directory, _CSE)
        return os.path.join(directory, name), meta_dir, os.path.join(meta_dir, name + ".json")

    def _error(self, action: str, key: str, exc: OSError) -> StoreError:
        """A :class:`StoreError` describing an operating-system failure on ``key``."""
        where = f" ({exc.filename})" if exc.filename else ""
        if isinstance(exc, PermissionError):
            reason = "permission denied"
        elif exc.errno == errno.ENOSPC:
            reason = "no space left on the device"
        elif exc.errno == errno.ENAMETOOLONG:
            reason = "a name in the key is too long for the file system"
        else:
            reason = exc.strerror or str(exc)
        return StoreError(f"cannot {action} {self.url(key)}: {reason}{where}")

    def _conflict(self, key: str, exc: OSError) -> StoreError:
        """The error for a key whose parent path is an object (file), not a directory."""
        parts = key.split("/")
        for i in range(1, len(parts)):
            if os.path.isfile(os.path.join(self.root, *parts[:i])):
                prefix = "/".join(parts[:i])
                return StoreError(
                    f"cannot store {self.url(key)}: {self.url(prefix)} is an object, and a file store cannot "
                    f"also use it as a directory (the keys {prefix!r} and {key!r} cannot both exist)"
                )
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            return StoreError(f"cannot store {self.url(key)}: the store's root {self.root} is no directory")
        return self._error("store", key, exc)

    def _check_not_directory(self, key: str, data_path: str) -> None:
        if os.path.isdir(data_path):
            raise StoreError(
                f"cannot store {self.url(key)}: it is a directory holding other objects (keys beginning "
                f"{key + '/'!r}), and a file store cannot hold both"
            )

    def _open_temp(self, directory: str, key: str, create: bool = True) -> tuple[int, str]:
        """Open a new temporary file in ``directory`` for writing, creating the folder if ``create``."""
        for attempt in range(_ATTEMPTS):
            if create:
                try:
                    os.makedirs(directory, exist_ok=True)
                except (FileExistsError, NotADirectoryError) as exc:
                    raise self._conflict(key, exc) from exc
            path = os.path.join(directory, _TMP + secrets.token_hex(8))
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
            except FileNotFoundError:
                if not create or attempt + 1 == _ATTEMPTS:
                    raise
                continue  # a concurrent delete pruned the directory between makedirs and open
            return fd, path
        raise AssertionError("unreachable")

    def _write_file(
        self, directory: str, key: str, data: memoryview, target: str, sync: bool, create: bool = True
    ) -> None:
        """Write ``data`` to ``target`` atomically (temporary file in ``directory``, then rename)."""
        fd, tmp = self._open_temp(directory, key, create)
        try:
            try:
                _write_all(fd, data)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            tmp = ""
        finally:
            if tmp:
                _unlink_quietly(tmp)

    def _prune(self, directory: str) -> None:
        """Remove ``directory``'s empty metadata folders, then it and its parents while empty (not root)."""
        root = os.path.normcase(self.root)
        current = directory
        while True:
            for sub in (os.path.join(current, _CSE, _UPLOADS), os.path.join(current, _CSE)):
                try:
                    os.rmdir(sub)
                except FileNotFoundError:
                    pass
                except OSError:
                    return
            normal = os.path.normcase(current)
            if normal == root or not normal.startswith(root + os.sep):
                return
            try:
                os.rmdir(current)
            except OSError:
                return
            current = os.path.dirname(current)

    def _commit(
        self,
        key: str,
        metadata: dict[str, str],
        fill: Callable[[int], tuple[int, str]],
        settings: ObjectSettings | None = None,
    ) -> ObjectInfo:
        """Write an object atomically: ``fill(fd)`` writes the data and returns (size, etag)."""
        data_path, meta_dir, sidecar = self._paths(key)
        self._check_not_directory(key, data_path)
        data_tmp: str | None = None
        side_tmp: str | None = None
        replaced = False
        try:
            fd, data_tmp = self._open_temp(meta_dir, key)
            try:
                size, etag = fill(fd)
                os.fsync(fd)
                doc = _Sidecar(metadata, size, etag, _now(), _probe(fd, size), settings or ObjectSettings())
            finally:
                os.close(fd)
            fd, side_tmp = self._open_temp(meta_dir, key)
            try:
                _write_all(fd, _json_bytes(doc.document()))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(data_tmp, data_path)
            data_tmp, replaced = None, True
            os.replace(side_tmp, sidecar)
            side_tmp, replaced = None, False
            _fsync_dir(os.path.dirname(data_path))
            _fsync_dir(meta_dir)
        except OSError as exc:
            if replaced:  # new data without its sidecar: leave no object rather than an inconsistent one
                _unlink_quietly(data_path)
                _unlink_quietly(sidecar)
            try:
                self._check_not_directory(key, data_path)
            except StoreError as conflict:
                raise conflict from exc
            raise self._error("write", key, exc) from exc
        finally:
            _unlink_quietly(data_tmp)
            _unlink_quietly(side_tmp)
        return doc.info(key)

    def _read_sidecar(self, path: str, key: str) -> bytes | None:
        """The raw sidecar, or ``None`` if there is none."""
        try:
            with open(path, "rb") as f:
                # read(n) allocates n bytes first: ask for the file's size plus one (to see a file larger
                # than the limit, or one that grew), not for the limit: 16 MiB per sidecar read otherwise
                size = os.fstat(f.fileno()).st_size
                raw = f.read(min(size, _SIDECAR_LIMIT) + 1)
                if size < len(raw) <= _SIDECAR_LIMIT:  # it grew since: the rest, up to the limit
                    raw += f.read(_SIDECAR_LIMIT + 1 - len(raw))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise MetadataError(
                f"cannot read the metadata sidecar {path} of {self.url(key)}: {exc.strerror or exc}; "
                "make it readable, or upload the object again"
            ) from exc
        if len(raw) > _SIDECAR_LIMIT:
            raise self._malformed(path, key, f"it is larger than {_SIDECAR_LIMIT} bytes")
        return raw

    def _malformed(self, path: str, key: str, what: str) -> MetadataError:
        return MetadataError(
            f"the metadata sidecar {path} of {self.url(key)} is malformed: {what}. It must be a JSON object "
            '{"metadata": {name: string value}, "size": <bytes>, "etag": string, "last_modified": ISO 8601 '
            'time, "probe": MD5 hex, optional "settings": {"content_type", "content_disposition", '
            '"cache_control": string, "tags": {name: string}}}. Restore it from a backup, or upload the '
            "object again"
        )

    def _parse_sidecar(self, raw: bytes, path: str, key: str) -> _Sidecar:
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._malformed(path, key, f"it is not valid UTF-8 JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise self._malformed(path, key, f"it holds a JSON {type(doc).__name__}, not an object")
        metadata = doc.get("metadata")
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise self._malformed(path, key, '"metadata" is missing or not an object of strings')
        size = doc.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise self._malformed(path, key, '"size" is missing or not a non-negative integer')
        etag = doc.get("etag")
        if not isinstance(etag, str):
            raise self._malformed(path, key, '"etag" is missing or not a string')
        try:
            modified = _parse_time(doc.get("last_modified"))
        except ValueError as exc:
            raise self._malformed(path, key, '"last_modified" is missing or not an ISO 8601 time') from exc
        probe = doc.get("probe")
        if not isinstance(probe, str):
            raise self._malformed(path, key, '"probe" is missing or not a string')
        settings = _parse_settings(doc.get("settings"))
        if settings is None:
            raise self._malformed(path, key, '"settings" is not an object of the settings cse keeps')
        return _Sidecar(dict(metadata), size, etag, modified, probe, settings)

    def _load(self, key: str) -> tuple[int, _Sidecar]:
        """An open descriptor of ``key``'s data file and the sidecar that describes exactly those bytes.

        The sidecar is read, then the data file opened and checked against it (size and probe). If the
        sidecar is missing or does not match, a writer was caught between its two renames, and the read is
        retried a few times before it fails. Once they match, the pair is consistent however it was timed.
        """
        data_path, _, sidecar = self._paths(key)
        problem = ""
        for attempt in range(_ATTEMPTS):
            before = self._read_sidecar(sidecar, key)
            try:
                fd = os.open(data_path, os.O_RDONLY | _O_BINARY)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                raise ObjectNotFoundError(f"no such object: {self.url(key)}") from exc
            except OSError as exc:
                raise self._error("read", key, exc) from exc
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise ObjectNotFoundError(f"no such object: {self.url(key)}")
                if before is None:
                    problem = ""
                else:
                    doc = self._parse_sidecar(before, sidecar, key)
                    if doc.size != st.st_size:
                        problem = f"{sidecar} records {doc.size} bytes, the data file has {st.st_size}"
                    elif doc.probe != _probe(fd, st.st_size):
                        problem = f"the data file does not have the first and last bytes {sidecar} records"
                    else:
                        return fd, doc
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
            if attempt + 1 < _ATTEMPTS:
                time.sleep(0.005 * 2**attempt)
        if not problem:
            raise MetadataError(
                f"{self.url(key)} has no metadata sidecar ({sidecar}): the file was not stored through cse, "
                "its sidecar was lost, or it is being written. Retry; restore the sidecar from a backup, or "
                "upload the object again"
            )
        raise StoreError(
            f"cannot read {self.url(key)}: the object is being written or its sidecar is stale ({problem}); "
            "retry, and if this persists, upload the object again"
        )

    def _upload_dir(self, key: str, upload_id: str) -> str:
        """The folder of an upload of ``key``; :class:`ObjectNotFoundError` for an ill-formed id."""
        _, meta_dir, _ = self._paths(key)
        if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
            raise ObjectNotFoundError(f"no multipart upload {upload_id!r} of {self.url(key)}")
        return os.path.join(meta_dir, _UPLOADS, upload_id)

    def _read_upload(self, key: str, upload_id: str) -> tuple[str, dict[str, Any]]:
        """(folder, upload.json) of an upload of ``key``; :class:`ObjectNotFoundError` if there is none."""
        folder = self._upload_dir(key, upload_id)
        path = os.path.join(folder, _UPLOAD_DOC)
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read().decode("utf-8"))
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFoundError(f"no multipart upload {upload_id!r} of {self.url(key)}") from exc
        except OSError as exc:
            raise self._error("read the multipart upload of", key, exc) from exc
        except ValueError as exc:
            raise StoreError(f"the multipart upload record {path} is malformed ({exc}); abort it") from exc
        # The folder sits beside the object; the record's key may be from another root (a parent folder
        # opened as the store), so only the object's name must match.
        if not isinstance(doc, dict) or str(doc.get("key")).rsplit("/", 1)[-1] != key.rsplit("/", 1)[-1]:
            raise ObjectNotFoundError(f"no multipart upload {upload_id!r} of {self.url(key)}")
        return folder, doc

    def _part_header(self, folder: str, number: int, key: str) -> dict[str, Any] | None:
        path = os.path.join(folder, f"part-{number:05d}.json")
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error("read a part of", key, exc) from exc
        except ValueError as exc:
            raise StoreError(f"the part header {path} is malformed ({exc}); upload the part again") from exc
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("size"), int)
            or not isinstance(doc.get("etag"), str)
        ):
            raise StoreError(f"the part header {path} is malformed; upload the part again")
        return doc

    # -------------------------------------------------------------------------------------------- objects

    def check_settings(self, settings: ObjectSettings) -> None:
        """Refuse server-side encryption and storage classes: a local directory has neither."""
        super().check_settings(settings)
        if settings.storage_class is not None:
            raise ConfigurationError("file:// has no storage classes; leave storage_class out")

    def get_tags(self, key: str) -> dict[str, str]:
        """The tags kept in the object's sidecar."""
        fd, doc = self._load(key)
        os.close(fd)
        return dict(doc.settings.tags)

    def put(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        metadata: Mapping[str, str],
        settings: ObjectSettings | None = None,
    ) -> ObjectInfo:
        """Write ``data``, ``metadata`` and ``settings`` under ``key`` atomically, replacing any object
        there."""
        self._check_key(key)
        if settings:
            self.check_settings(settings)
        meta = clean_metadata(metadata)
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")

        def fill(fd: int) -> tuple[int, str]:
            _write_all(fd, view)
            return len(view), hashlib.md5(view, usedforsecurity=False).hexdigest()

        return self._commit(key, meta, fill, settings)

    def get(self, key: str, start: int = 0, end: int | None = None) -> GetResult:
        """Open bytes ``start..end`` (inclusive) of ``key``; the body reads the file, never past ``end``."""
        fd, doc = self._load(key)
        info = doc.info(key)
        try:
            first, last = resolve_get_range(info.size, start, end, self.url(key))
            raw = io.FileIO(fd, "rb", closefd=True)
        except BaseException:
            os.close(fd)
            raise
        try:
            raw.seek(first)
            body = io.BufferedReader(_RangeReader(raw, last - first + 1, self.url(key)), buffer_size=1 << 16)
        except BaseException:
            raw.close()
            raise
        return GetResult(info, body, first, last)

    def head(self, key: str) -> ObjectInfo:
        """The object's size, ETag, metadata and settings (from its sidecar)."""
        fd, doc = self._load(key)
        os.close(fd)
        return doc.info(key)

    def delete(self, key: str) -> None:
        """Remove the data file and its sidecar; absent keys are not an error. Empty folders go too."""
        data_path, _, sidecar = self._paths(key)
        for path in (data_path, sidecar):
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                pass
            except PermissionError as exc:
                if not os.path.isdir(path):  # Windows and macOS report a directory as EPERM/EACCES
                    raise self._error("delete", key, exc) from exc
            except OSError as exc:
                raise self._error("delete", key, exc) from exc
        self._prune(os.path.dirname(data_path))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The objects whose key starts with ``prefix``, in key order.

        The keys under the prefix's folder are collected and sorted first (memory grows with their number),
        then each is described from its sidecar. An object whose sidecar is malformed or being rewritten is
        listed with its file size and no metadata rather than failing the whole listing.
        """
        head, _, tail = prefix.rpartition("/")
        if prefix.startswith("/") or (head and any(_segment_problem(s) for s in head.split("/"))):
            return iter(())
        start = os.path.join(self.root, *head.split("/")) if head else self.root
        keys: list[str] = []
        self._collect(start, head + "/" if head else "", tail, keys)
        keys.sort()
        return self._describe(keys)

    def _collect(self, directory: str, key_prefix: str, name_prefix: str, out: builtins.list[str]) -> None:
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise self._error("list", key_prefix, exc) from exc
        for entry in entries:
            if entry.name == _CSE or not entry.name.startswith(name_prefix):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    self._collect(entry.path, key_prefix + entry.name + "/", "", out)
                elif entry.is_file():
                    out.append(key_prefix + entry.name)
            except OSError:
                continue  # vanished while listed

    def _describe(self, keys: builtins.list[str]) -> Iterator[ObjectInfo]:
        for key in keys:
            if _key_problem(key):
                continue
            try:
                yield self.head(key)
            except ObjectNotFoundError:
                continue  # deleted while listed
            except (StoreError, MetadataError):
                data_path = self._paths(key)[0]
                try:
                    st = os.stat(data_path)
                except OSError:
                    continue
                yield ObjectInfo(key, st.st_size, "", {}, datetime.fromtimestamp(st.st_mtime, timezone.utc))

    def copy(
        self,
        src_key: str,
        dst_key: str,
        metadata: Mapping[str, str] | None = None,
        settings: ObjectSettings | None = None,
    ) -> ObjectInfo:
        """Copy ``src_key`` to ``dst_key`` by streaming the file; replace the metadata if given. The copy
        keeps the source's settings, except those set in ``settings``.

        Copying a key onto itself with new metadata or settings rewrites only the sidecar. The copy keeps
        the source's ETag (the bytes are the same).
        """
        self._check_key(dst_key)
        if settings:
            self.check_settings(settings)
        meta = clean_metadata(metadata) if metadata is not None else None
        fd, doc = self._load(src_key)
        kept = (settings or ObjectSettings()).over(doc.settings)
        if src_key == dst_key:
            os.close(fd)
            if meta is None and not settings:
                return doc.info(dst_key)
            _, meta_dir, sidecar = self._paths(dst_key)
            new = _Sidecar(
                doc.metadata if meta is None else meta, doc.size, doc.etag, _now(), doc.probe, kept
            )
            try:
                self._write_file(meta_dir, dst_key, _json_bytes(new.document()), sidecar, sync=True)
            except OSError as exc:
                raise self._error("write", dst_key, exc) from exc
            _fsync_dir(meta_dir)
            return new.info(dst_key)
        try:
            src = io.FileIO(fd, "rb", closefd=True)
        except BaseException:
            os.close(fd)
            raise
        with src:

            def fill(out: int) -> tuple[int, str]:
                src.seek(0)
                buf = bytearray(_CHUNK)
                view = memoryview(buf)
                total = 0
                while n := src.readinto(view) or 0:
                    _write_all(out, view[:n])
                    total += n
                if total != doc.size:
                    raise StoreError(f"{self.url(src_key)} changed size while it was copied; retry")
                return total, doc.etag

            return self._commit(dst_key, dict(doc.metadata) if meta is None else meta, fill, kept)

    # ------------------------------------------------------------------------------------------ multipart

    def create_multipart(
        self, key: str, metadata: Mapping[str, str], settings: ObjectSettings | None = None
    ) -> str:
        """Start a multipart upload: a folder ``.cse/uploads/<id>`` beside where the object will be. The
        ``settings`` go in its record, and to the object on completion."""
        if settings:
            self.check_settings(settings)
        data_path, _, _ = self._paths(key)
        meta = clean_metadata(metadata)
        self._check_not_directory(key, data_path)
        upload_id = secrets.token_hex(16)
        folder = self._upload_dir(key, upload_id)
        doc: dict[str, Any] = {"key": key, "metadata": meta, "initiated": _now().isoformat()}
        if settings and _settings_document(settings):
            doc["settings"] = _settings_document(settings)
        try:
            try:
                os.makedirs(folder)
            except (FileExistsError, NotADirectoryError) as exc:
                raise self._conflict(key, exc) from exc
            self._write_file(folder, key, _json_bytes(doc), os.path.join(folder, _UPLOAD_DOC), sync=False)
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise self._error("start a multipart upload of", key, exc) from exc
        return upload_id

    def upload_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        data: bytes | bytearray | memoryview,
        headers: Mapping[str, str] | None = None,
    ) -> PartInfo:
        """Write part ``part_number`` (1..:attr:`max_parts`) atomically, replacing an earlier one.

        Parts are not flushed to disk one by one: ``complete_multipart`` checks every part's MD5 against
        its ETag while it assembles the object, and flushes the result.
        """
        if (
            isinstance(part_number, bool)
            or not isinstance(part_number, int)
            or not (1 <= part_number <= self.max_parts)
        ):
            raise ConfigurationError(f"part numbers run from 1 to {self.max_parts}, not {part_number!r}")
        folder, _ = self._read_upload(key, upload_id)
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        etag = hashlib.md5(view, usedforsecurity=False).hexdigest()
        header = {"part_number": part_number, "size": len(view), "etag": etag, "headers": dict(headers or {})}
        name = f"part-{part_number:05d}"
        try:
            self._write_file(folder, key, view, os.path.join(folder, name), sync=False, create=False)
            header_path = os.path.join(folder, name + ".json")
            self._write_file(folder, key, _json_bytes(header), header_path, sync=False, create=False)
        except OSError as exc:  # a missing folder means the upload was aborted or completed meanwhile
            if isinstance(exc, FileNotFoundError) or not os.path.isdir(folder):
                raise ObjectNotFoundError(f"no multipart upload {upload_id!r} of {self.url(key)}") from exc
            raise self._error("upload a part of", key, exc) from exc
        return PartInfo(part_number, etag, len(view))

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[PartInfo]) -> ObjectInfo:
        """Concatenate ``parts`` into ``key`` through one reused 1 MiB buffer, then drop the upload.

        Each part's ETag must match the uploaded part, and its bytes are checked against it while copied.
        If anything fails the upload is left as it was, to be retried or aborted.
        """
        folder, doc = self._read_upload(key, upload_id)
        if not parts:
            raise StoreError(f"completing the multipart upload of {self.url(key)} needs at least one part")
        ordered = sorted(parts, key=lambda p: p.part_number)
        sizes: list[int] = []
        for i, want in enumerate(ordered):
            number = want.part_number
            if i and ordered[i - 1].part_number == number:
                raise StoreError(f"part {number} is listed twice in the completion of {self.url(key)}")
            header = self._part_header(folder, number, key) if 1 <= number <= self.max_parts else None
            if header is None:
                raise StoreError(f"part {number} of {self.url(key)} was never uploaded")
            if want.etag.strip('"').lower() != header["etag"]:
                raise StoreError(
                    f"part {number} of {self.url(key)} has ETag {header['etag']}, not {want.etag} "
                    "(it was re-uploaded since; list the parts again)"
                )
            if i + 1 < len(ordered) and header["size"] < self.min_part_size:
                raise StoreError(
                    f"part {number} of {self.url(key)} is {header['size']} bytes; every part but the last "
                    f"needs at least {self.min_part_size}"
                )
            sizes.append(header["size"])
        metadata = doc.get("metadata")
        settings = _parse_settings(doc.get("settings"))
        if not isinstance(metadata, dict) or settings is None:
            raise StoreError(f"the multipart upload record in {folder} is malformed; abort the upload")

        def fill(out: int) -> tuple[int, str]:
            buf = bytearray(_CHUNK)
            view = memoryview(buf)
            digests = bytearray()
            total = 0
            for want, size in zip(ordered, sizes, strict=True):
                hasher = _md5()
                got = 0
                with open(os.path.join(folder, f"part-{want.part_number:05d}"), "rb", buffering=0) as part:
                    while n := part.readinto(view) or 0:
                        hasher.update(view[:n])
                        _write_all(out, view[:n])
                        got += n
                digest = hasher.digest()
                if got != size or digest.hex() != want.etag.strip('"').lower():
                    raise StoreError(
                        f"part {want.part_number} of {self.url(key)} changed on disk since it was uploaded "
                        f"(expected {size} bytes with MD5 {want.etag}); upload it again"
                    )
                digests += digest
                total += got
            return total, f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(ordered)}"

        try:
            info = self._commit(key, dict(metadata), fill, settings)
        except ObjectNotFoundError:
            raise
        except StoreError:
            if not os.path.isdir(folder):
                raise ObjectNotFoundError(f"no multipart upload {upload_id!r} of {self.url(key)}") from None
            raise
        shutil.rmtree(folder, ignore_errors=True)
        self._prune(os.path.dirname(os.path.dirname(os.path.dirname(folder))))
        return info

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Remove the upload's folder; unknown uploads are not an error."""
        try:
            folder, _ = self._read_upload(key, upload_id)
        except ObjectNotFoundError:
            return
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error("abort the multipart upload of", key, exc) from exc
        self._prune(os.path.dirname(os.path.dirname(os.path.dirname(folder))))

    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:
        """The parts uploaded so far (from their headers), in part-number order."""
        folder, _ = self._read_upload(key, upload_id)
        try:
            names = os.listdir(folder)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"no multipart upload {upload_id!r} of {self.url(key)}") from exc
        except OSError as exc:
            raise self._error("list the parts of", key, exc) from exc
        found: list[PartInfo] = []
        for name in sorted(names):
            match = _PART_HEADER.fullmatch(name)
            if match is None:
                continue
            number = int(match.group(1))
            header = self._part_header(folder, number, key)
            if header is not None:
                found.append(PartInfo(number, header["etag"], header["size"]))
        return found

    def list_multipart_uploads(self, prefix: str = "") -> builtins.list[UploadInfo]:
        """Unfinished uploads whose key starts with ``prefix``, by key then start time."""
        head, _, tail = prefix.rpartition("/")
        if prefix.startswith("/") or (head and any(_segment_problem(s) for s in head.split("/"))):
            return []
        start = os.path.join(self.root, *head.split("/")) if head else self.root
        found: list[UploadInfo] = []
        self._collect_uploads(start, prefix, tail, found)
        found.sort(key=lambda u: (u.key, u.initiated or _now(), u.upload_id))
        return found

    def _collect_uploads(
        self, directory: str, prefix: str, name_prefix: str, out: builtins.list[UploadInfo]
    ) -> None:
        uploads = os.path.join(directory, _CSE, _UPLOADS)
        try:
            ids = os.listdir(uploads)
        except OSError:
            ids = []
        for upload_id in ids:
            if not _UPLOAD_ID.fullmatch(upload_id):
                continue
            try:
                with open(os.path.join(uploads, upload_id, _UPLOAD_DOC), "rb") as f:
                    doc = json.loads(f.read().decode("utf-8"))
                key, metadata = doc["key"], doc["metadata"]
                initiated = _parse_time(doc["initiated"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being created, or not an upload record
            if not isinstance(key, str) or not isinstance(metadata, dict):
                continue
            # The record names the key from the root the upload was started under; the upload lives
            # beside its object, so its key from this store's root follows from where it was found.
            rel = os.path.relpath(directory, self.root)
            name = key.rsplit("/", 1)[-1]
            key = name if rel == os.curdir else "/".join([*rel.split(os.sep), name])
            if key.startswith(prefix):
                out.append(UploadInfo(key, upload_id, initiated, dict(metadata)))
        try:
            with os.scandir(directory) as it:
                subdirs = [e for e in it if e.name != _CSE and e.name.startswith(name_prefix)]
        except OSError:
            return
        for entry in subdirs:
            try:
                if entry.is_dir(follow_symlinks=False):
                    self._collect_uploads(entry.path, prefix, "", out)
            except OSError:
                continue
