"""The ``cse`` fsspec protocol: encrypted objects as ordinary paths for pandas, pyarrow, dask and polars.

Install the extra ``cse[fsspec]``; the protocol is registered by entry point, so no import is needed::

    pd.read_parquet("cse::s3://bucket/table.parquet", storage_options={"cse": {"key": KEY_URI}})
    fs = fsspec.filesystem("cse", key=KEY_URI)
    fs.cat_file("memory://bucket/a.bin", 0, 99)

* **Chained** (``cse::s3://bucket/key``, ``cse::oss://``, ``cse::file:///dir/key``, ``cse::memory://b/k``):
  the filesystem is bound to the inner protocol, and paths are that protocol's (``bucket/key``,
  ``/dir/key``, ``/b/k``).
* **Standalone** (``fsspec.filesystem("cse", key=...)``): paths are full store URLs (``s3://bucket/key``);
  ``cse://s3://bucket/key`` names the same object as a single URL.

The bytes go through cse's own stores and :class:`~cse.client.EncryptionClient`, never through s3fs or
ossfs, so objects carry exactly the metadata cse (and the ``cse`` command) writes. Reads are served by
:meth:`~cse.client.DecryptingReader.read_at` (ranged gets of just the segments needed, each verified);
objects authenticated only as a whole (S3 V2/V3) follow the library's rules (verified into memory up to
``max_authenticated_buffer``, or the opt-ins). Writes stream through
:meth:`~cse.client.EncryptionClient.open_writer`; the object appears only on ``close()``, and an exception
leaving the ``with`` block aborts the upload. Sizes are plaintext sizes, from each object's envelope.

The chained form needs an fsspec class for the inner protocol to parse its URL; for ``s3`` and ``oss`` this
distribution registers :class:`S3FileSystem` and :class:`OSSFileSystem`, which are s3fs's and ossfs's own
classes whenever those are installed, and otherwise URL parsers that refuse to be instantiated.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote, unquote

from fsspec import AbstractFileSystem
from fsspec.implementations.chained import ChainedFileSystem
from fsspec.spec import AbstractBufferedFile
from fsspec.utils import isfilelike, stringify_path

from cse import registry
from cse.client import DecryptingReader, EncryptingWriter, EncryptionClient, detect_format
from cse.config import CommitmentPolicy, TransferConfig
from cse.content import codec_for
from cse.envelope import Envelope
from cse.exceptions import ConfigurationError, CseError, ObjectNotFoundError, StoreError
from cse.providers import KeyProvider
from cse.stores.base import ObjectInfo, Store
from cse.stores.file import FileStore

__all__ = [
    "EncryptedFile",
    "EncryptedFileSystem",
    "EncryptedWriteFile",
    "OSSFileSystem",  # noqa: F822 - resolved by the module's __getattr__
    "S3FileSystem",  # noqa: F822
]

_TRANSFER_FIELDS = tuple(f.name for f in fields(TransferConfig))
#: Heads issued at once when a listing needs each object's envelope (S3 and OSS list no metadata).
_HEAD_CONCURRENCY = 8


def _scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower()


class EncryptedFileSystem(ChainedFileSystem):  # type: ignore[misc]
    """fsspec filesystem ``cse``: client-side encrypted objects on any cse store.

    :param key: a key URI or :class:`~cse.providers.KeyProvider`, or a list of them: the keys that may
        decrypt; the first also encrypts new objects (unless ``wrap_keys``). Without a key, listing,
        ``info``, ``rm``, ``cp`` within a store and ``mv`` work; reads and writes raise an error that names
        the object and the key it asks for.
    :param keys: the same as ``key`` (either may be given).
    :param wrap_keys: the keys that wrap new objects' content keys (cse-v1 records several).
    :param format: the format to write (``cse-v1``, ``s3-v3``, ``oss-v2``, or ``v3``-style short names).
    :param encryption_context: the context of new objects (a mapping of strings).
    :param commitment_policy: as :class:`~cse.config.CommitmentPolicy` (name or value).
    :param config: a :class:`~cse.config.TransferConfig`; its fields may also be given one by one
        (``part_size=...``, ``multipart_threshold=...``) and override it.
    :param allow_legacy, allow_unauthenticated_ranges, delayed_authentication: the client's opt-ins.
    :param stores: :class:`~cse.stores.base.Store` objects to use for the URLs under their roots instead of
        opening stores from URLs (for example an ``S3Store`` with its own boto3 client).
    :param client: an :class:`~cse.client.EncryptionClient` to use as it is (then give no key options).
    :param block_size: the read-ahead block of files opened for reading (default 2 MiB).
    :param target_protocol: the inner protocol of the chained form (set by fsspec from ``cse::PROTO://``).
    """

    protocol: ClassVar[str] = "cse"
    root_marker = ""
    cachable = True
    #: Read-ahead block of files opened for reading.
    blocksize = 2 * 1024 * 1024

    def __init__(
        self,
        key: KeyProvider | str | Sequence[KeyProvider | str] | None = None,
        *,
        keys: KeyProvider | str | Sequence[KeyProvider | str] | None = None,
        wrap_keys: Sequence[KeyProvider | str] | None = None,
        format: str | None = None,
        encryption_context: Mapping[str, str] | None = None,
        commitment_policy: CommitmentPolicy | str = CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
        config: TransferConfig | None = None,
        allow_legacy: bool = False,
        allow_unauthenticated_ranges: bool = False,
        delayed_authentication: bool = False,
        stores: Sequence[Store] | None = None,
        client: EncryptionClient | None = None,
        block_size: int | None = None,
        target_protocol: str | None = None,
        target_options: Mapping[str, Any] | None = None,
        fo: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Configure the filesystem; see the class docstring for the options."""
        transfer = {name: kwargs.pop(name) for name in _TRANSFER_FIELDS if name in kwargs}
        super().__init__(
            **{k: v for k, v in kwargs.items() if k in ("skip_instance_cache", "use_listings_cache")}
        )
        unknown = sorted(set(kwargs) - {"skip_instance_cache", "use_listings_cache", "listings_expiry_time"})
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) for the cse filesystem: {', '.join(unknown)} (give key, format, "
                "encryption_context, commitment_policy, transfer settings such as part_size, or stores)"
            )
        if target_options:
            raise ConfigurationError(
                f"options for the inner {target_protocol}:// protocol ({', '.join(sorted(target_options))}) "
                "are not used: cse opens its own store for it. Configure it as for the cse command (the "
                "environment, e.g. AWS_ENDPOINT_URL_S3) or pass stores=[...] in the cse options"
            )
        if target_protocol is not None:
            registry.store_class(target_protocol)  # an unknown or missing store plugin fails here
        self.target_protocol = target_protocol.lower() if target_protocol else None
        if block_size is not None:
            self.blocksize = int(block_size)
        if key is not None and keys is not None:
            raise ConfigurationError("give key or keys, not both")
        given = key if key is not None else keys
        key_list: list[KeyProvider | str] = (
            [] if given is None else [given] if isinstance(given, (str, KeyProvider)) else list(given)
        )
        if client is not None:
            if key_list or wrap_keys or format or encryption_context or config or transfer:
                raise ConfigurationError("give a client or key options, not both")
            self.client: EncryptionClient | None = client
        elif key_list:
            cfg = config or TransferConfig()
            if transfer:
                cfg = TransferConfig(**{**{n: getattr(cfg, n) for n in _TRANSFER_FIELDS}, **transfer})
            self.client = EncryptionClient(
                key_list,
                wrap_keys=wrap_keys,
                format=format,
                encryption_context=encryption_context,
                config=cfg,
                delayed_authentication=delayed_authentication,
                allow_unauthenticated_ranges=allow_unauthenticated_ranges,
                allow_legacy=allow_legacy,
                commitment_policy=commitment_policy,
            )
        else:
            if wrap_keys:
                raise ConfigurationError("wrap_keys needs key: the keys that may decrypt")
            self.client = None
        self.allow_legacy = self.client.allow_legacy if self.client is not None else allow_legacy
        self._given_stores: list[Store] = list(stores or ())
        self._stores: dict[str, Store] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = f"{self.target_protocol}://" if self.target_protocol else "store URLs"
        keys = len(self.client.keys) if self.client is not None else 0
        return f"EncryptedFileSystem({where}, {keys} key(s))"

    @property
    def fsid(self) -> str:
        """An id of this filesystem's options: a hash (fsspec's token), never the key URIs themselves."""
        return f"cse_{self._fs_token}"

    # ------------------------------------------------------------------------------------- paths

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        """Drop ``cse::`` / ``cse://`` and trailing slashes; what remains is a store URL or an inner path."""
        if isinstance(path, (list, tuple)):
            return [cls._strip_protocol(p) for p in path]
        path = stringify_path(path)
        for prefix in ("cse::", "cse://"):
            if path.startswith(prefix):
                path = path[len(prefix) :]
        if "://" in path:
            scheme, rest = path.split("://", 1)
            if scheme.lower() == "file":
                return f"file:///{rest.strip('/')}"
            return f"{scheme}://{rest.rstrip('/')}"
        if path not in ("", "/"):
            path = path.rstrip("/")
        return path

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        return {}

    def unstrip_protocol(self, name: str) -> str:
        """A URL that names ``name`` through this protocol (``cse::s3://b/k`` or ``cse://s3://b/k``)."""
        url = self._url(name)
        return f"cse::{url}" if self.target_protocol else f"cse://{url}"

    def _url(self, path: str) -> str:
        """The store URL a path of this filesystem names."""
        path = self._strip_protocol(path)
        if "://" in path:
            return str(path)
        proto = self.target_protocol
        if proto is None:
            raise ConfigurationError(
                f"{path!r} is not a store URL: give a full URL (memory://bucket/key, s3://bucket/key, "
                "file:///dir/key), or use the chained form cse::PROTOCOL://..."
            )
        if proto == "file":
            return "file://" + quote(os.path.abspath(path or "/"), safe="/")
        return f"{proto}://{path.lstrip('/')}"

    def _name(self, url: str) -> str:
        """The path of this filesystem that names the store URL ``url`` (the inverse of :meth:`_url`)."""
        if self.target_protocol is None:
            return self._strip_protocol(url)  # type: ignore[no-any-return]
        rest = url.split("://", 1)[1]
        if self.target_protocol == "file":
            return "/" + unquote(rest).strip("/")
        if self.target_protocol == "memory":
            return "/" + rest.strip("/")
        return rest.rstrip("/")

    def _resolve(self, path: str) -> tuple[Store, str, str]:
        """(store, key, url) of a path. ``file://`` URLs share one store rooted at ``/``, so that copies
        between directories stay within a store."""
        url = self._url(path)
        for store in self._given_stores:
            root = store.url("")
            if url.startswith(root) or url + "/" == root:
                return store, url[len(root) :], url
        if _scheme_of(url) == "file":
            store = self._cached_store("file:///", lambda: FileStore("/"))
            absolute = unquote(url[len("file://") :])
            return store, absolute.strip("/"), url
        store, key = registry.open_store(url)
        cached = self._cached_store(store.url(""), lambda: store)
        return cached, key, url

    def _cached_store(self, root: str, make: Any) -> Store:
        with self._lock:
            found = self._stores.get(root)
            if found is None:
                found = self._stores[root] = make()
            return found

    def _need_client(self, url: str, store: Store, key: str) -> EncryptionClient:
        if self.client is not None:
            return self.client
        asked = ""
        with contextlib.suppress(CseError, OSError):
            envelope = self._envelope(store, key, store.head(key))[0]
            if envelope is not None:
                asked = f" (it asks for {_describe_keys(envelope)})"
        raise ConfigurationError(
            f"{url} needs a key{asked}: pass key=KEY_URI, as storage_options={{'cse': {{'key': KEY_URI}}}} "
            "or fsspec.filesystem('cse', key=KEY_URI)"
        )

    # ---------------------------------------------------------------------------------- metadata

    def _envelope(self, store: Store, key: str, info: ObjectInfo) -> tuple[Envelope | None, ObjectInfo]:
        """The envelope of an object, from listed metadata or a head; ``None`` if it carries none."""
        if not info.metadata:
            info = store.head(key)
        try:
            fmt = detect_format(info.metadata, store.url(key), allow_legacy=True)
            return fmt.decode(info.metadata), info
        except CseError:
            return None, info

    def _file_entry(self, store: Store, key: str, info: ObjectInfo) -> dict[str, Any]:
        envelope, info = self._envelope(store, key, info)
        url = store.url(key)
        entry: dict[str, Any] = {"name": self._name(url), "type": "file", "stored_size": info.size}
        if envelope is None:
            entry.update(size=info.size, encrypted=False)
        else:
            size = codec_for(envelope.content_algorithm).plaintext_length(envelope, info.size)
            entry.update(size=size, encrypted=True, format=envelope.format)
        entry["etag"] = info.etag
        if info.last_modified is not None:
            entry["LastModified"] = info.last_modified
            entry["mtime"] = info.last_modified.timestamp()
        return entry

    def _dir_entry(self, url: str) -> dict[str, Any]:
        return {"name": self._name(url), "type": "directory", "size": 0}

    def _entries(self, store: Store, infos: Sequence[ObjectInfo]) -> list[dict[str, Any]]:
        if len(infos) <= 1 or all(i.metadata for i in infos):
            return [self._file_entry(store, i.key, i) for i in infos]
        with ThreadPoolExecutor(max_workers=_HEAD_CONCURRENCY, thread_name_prefix="cse-fs-head") as pool:
            return list(pool.map(lambda i: self._file_entry(store, i.key, i), infos))

    def _head(self, store: Store, key: str) -> ObjectInfo | None:
        if not key:
            return None
        try:
            return store.head(key)
        except ObjectNotFoundError:
            return None
        except StoreError:
            # A file store refuses to head a directory; it is one, or nothing, as a listing will tell.
            if isinstance(store, FileStore) and os.path.isdir(os.path.join(store.root, key)):
                return None
            raise

    def _listing(self, store: Store, key: str) -> tuple[str, list[ObjectInfo]]:
        prefix = key.rstrip("/") + "/" if key else ""
        if isinstance(store, FileStore) and prefix and not os.path.isdir(os.path.join(store.root, prefix)):
            return prefix, []
        return prefix, list(store.list(prefix))

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """``name``, ``type``, ``size`` (plaintext bytes), ``stored_size``, ``format``, ``etag``."""
        store, key, url = self._resolve(path)
        found = self._head(store, key)
        if found is not None:
            return self._file_entry(store, key, found)
        if not key or url.rstrip("/") == store.url("").rstrip("/"):
            return self._dir_entry(url)
        _, infos = self._listing(store, key)
        if infos:
            return self._dir_entry(url)
        raise FileNotFoundError(path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The objects and (implied) directories directly under ``path``; only objects, never cse's
        metadata sidecars or unfinished uploads."""
        store, key, url = self._resolve(path)
        found = self._head(store, key)
        if found is not None:
            entry = self._file_entry(store, key, found) if detail else None
            return [entry] if detail else [self._name(url)]
        prefix, infos = self._listing(store, key)
        files: list[ObjectInfo] = []
        dirs: set[str] = set()
        for info in infos:
            rest = info.key[len(prefix) :]
            if "/" in rest:
                dirs.add(prefix + rest.split("/", 1)[0])
            else:
                files.append(info)
        if not files and not dirs and key:
            raise FileNotFoundError(path)
        dir_entries = [self._dir_entry(store.url(d)) for d in sorted(dirs)]
        if not detail:
            return sorted([self._name(store.url(i.key)) for i in files] + [d["name"] for d in dir_entries])
        return sorted(self._entries(store, files) + dir_entries, key=lambda e: str(e["name"]))

    def find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Every object below ``path`` (one listing of the store, not one per directory)."""
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        store, key, url = self._resolve(path)
        out: dict[str, dict[str, Any]] = {}
        found = self._head(store, key)
        prefix, infos = self._listing(store, key)
        files: list[ObjectInfo] = []
        dirs: set[str] = set()
        for info in infos:
            parts = info.key[len(prefix) :].split("/")
            if maxdepth is not None and len(parts) > maxdepth:
                if withdirs:
                    dirs.update(prefix + "/".join(parts[: i + 1]) for i in range(maxdepth))
                continue
            files.append(info)
            if withdirs:
                dirs.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts) - 1))
        if withdirs and (infos and key):
            out[self._name(url)] = self._dir_entry(url)
        for d in dirs:
            entry = self._dir_entry(store.url(d))
            out[entry["name"]] = entry
        if detail:
            for entry in self._entries(store, files):
                out[entry["name"]] = entry
        else:
            for info in files:
                name = self._name(store.url(info.key))
                out[name] = {"name": name, "type": "file"}
        if found is not None and not infos:
            name = self._name(url)
            out[name] = self._file_entry(store, key, found) if detail else {"name": name, "type": "file"}
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def exists(self, path: str, **kwargs: Any) -> bool:
        """Whether ``path`` is an object or a directory of objects."""
        try:
            self.info(path)
            return True
        except FileNotFoundError:
            return False

    def modified(self, path: str) -> datetime:
        """When the object was last written, as the store records it."""
        store, key, url = self._resolve(path)
        info = self._head(store, key)
        if info is None or info.last_modified is None:
            raise (
                FileNotFoundError(path)
                if info is None
                else NotImplementedError(f"{url}: the store records no modification time")
            )
        return info.last_modified

    # ------------------------------------------------------------------------- directories (implied)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Nothing to do: directories exist as long as objects are under them (as on S3)."""

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Nothing to do: directories exist as long as objects are under them (as on S3)."""

    def rmdir(self, path: str) -> None:
        """Nothing to do: a directory goes with its last object."""

    # -------------------------------------------------------------------------------- deleting

    def rm_file(self, path: str) -> None:
        """Delete one object (a directory path is ignored: it has no object)."""
        store, key, _ = self._resolve(path)
        if key and self._head(store, key) is not None:
            store.delete(key)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete objects (and, with ``recursive``, everything below directories)."""
        for p in reversed(self.expand_path(path, recursive=recursive, maxdepth=maxdepth)):
            self.rm_file(p)

    # --------------------------------------------------------------------------------- copying

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy an object. Within a store the ciphertext and envelope are copied server-side (no key
        needed); between stores it is decrypted, verified and re-encrypted (a key is needed)."""
        src_store, src_key, src_url = self._resolve(path1)
        dst_store, dst_key, _ = self._resolve(path2)
        if self._head(src_store, src_key) is None:
            if self.isdir(path1):
                return  # directories are implied; nothing to copy
            raise FileNotFoundError(path1)
        if src_store is dst_store:
            src_store.copy(src_key, dst_key)
            return
        client = self._need_client(src_url, src_store, src_key)
        client.copy((src_store, src_key), (dst_store, dst_key))

    # ------------------------------------------------------------------------------ reading bytes

    def _reader(self, path: str) -> DecryptingReader:
        store, key, url = self._resolve(path)
        client = self._need_client(url, store, key)
        return client.open((store, key))

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """The verified plaintext of an object, or of its bytes ``start:end`` (one ranged get)."""
        with self._reader(path) as reader:
            first, last = _slice(reader.size, start, end)
            return reader.read_at(first, last - first)

    def cat_ranges(
        self,
        paths: list[str],
        starts: int | list[int] | None,
        ends: int | list[int] | None,
        max_gap: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[Any]:
        """Byte ranges of objects, each object opened (its key unwrapped) once, each range one ranged get."""
        n = len(paths)
        starts_list = starts if isinstance(starts, list) else [starts] * n
        ends_list = ends if isinstance(ends, list) else [ends] * n
        if len(starts_list) != n or len(ends_list) != n:
            raise ValueError("paths, starts and ends must have the same length")
        readers: dict[str, DecryptingReader | BaseException] = {}
        out: list[Any] = []
        try:
            for path, start, end in zip(paths, starts_list, ends_list, strict=True):
                try:
                    reader = readers.get(path)
                    if reader is None:
                        try:
                            reader = readers[path] = self._reader(path)
                        except Exception as exc:
                            readers[path] = exc
                            raise
                    if isinstance(reader, BaseException):
                        raise reader
                    first, last = _slice(reader.size, start, end)
                    out.append(reader.read_at(first, last - first))
                except Exception as exc:
                    if on_error != "return":
                        raise
                    out.append(exc)
        finally:
            for reader in readers.values():
                if isinstance(reader, DecryptingReader):
                    reader.close()
        return out

    def get_file(
        self, rpath: str, lpath: Any, callback: Any = None, outfile: Any = None, **kwargs: Any
    ) -> None:
        """Decrypt an object into a local file, atomically (the file appears only once it verified)."""
        if isfilelike(lpath) or outfile is not None:
            target = lpath if isfilelike(lpath) else outfile
            with self._reader(rpath) as reader:
                while chunk := reader.read(1 << 20):
                    target.write(chunk)
            return
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        store, key, url = self._resolve(rpath)
        client = self._need_client(url, store, key)
        parent = os.path.dirname(os.path.abspath(lpath))
        os.makedirs(parent, exist_ok=True)
        client.download_file((store, key), lpath)

    # ------------------------------------------------------------------------------ writing bytes

    def _check_create(self, path: str, mode: str) -> None:
        if mode == "create" and self.exists(path):
            raise FileExistsError(path)
        if mode not in ("create", "overwrite"):
            raise ValueError(f"mode is 'create' or 'overwrite', not {mode!r}")

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Encrypt ``value`` into an object. ``mode="create"`` refuses an existing object (checked
        before the write: the stores have no create-if-absent, so two racing writers may both succeed)."""
        self._check_create(path, mode)
        store, key, url = self._resolve(path)
        self._need_client(url, store, key).put((store, key), value)

    def put_file(
        self, lpath: str, rpath: str, callback: Any = None, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        """Encrypt a local file into an object (parts in parallel where the format allows)."""
        if os.path.isdir(lpath):
            return  # directories are implied
        self._check_create(rpath, mode)
        store, key, url = self._resolve(rpath)
        self._need_client(url, store, key).upload_file(lpath, (store, key))

    # ----------------------------------------------------------------------------------- open

    def open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        cache_options: Any = None,
        compression: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Open an object: ``rb`` (seekable, verified), ``wb`` or ``xb`` (streamed; the object appears on
        ``close()``, and an exception leaving the ``with`` block aborts it); text modes wrap these."""
        if "b" not in mode and mode.replace("t", "") in ("w", "x"):
            text_kwargs = {k: kwargs.pop(k) for k in ("encoding", "errors", "newline") if k in kwargs}
            raw = self.open(
                path, mode.replace("t", "") + "b", block_size, cache_options, compression, **kwargs
            )
            return _AbortingTextWrapper(raw, **text_kwargs)
        return super().open(
            path, mode, block_size=block_size, cache_options=cache_options, compression=compression, **kwargs
        )

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: Any = None,
        **kwargs: Any,
    ) -> Any:
        if not autocommit:
            raise NotImplementedError(
                "fsspec transactions are not supported: each cse object is committed when its file closes"
            )
        if mode == "rb":
            reader = self._reader(path)
            if not reader.seekable():
                return reader  # delayed authentication: a plain stream
            return EncryptedFile(
                self,
                path,
                reader,
                block_size=block_size or self.blocksize,
                cache_type=kwargs.get("cache_type", "readahead"),
                cache_options=cache_options,
            )
        if mode in ("wb", "xb"):
            if mode == "xb" and self.exists(path):
                raise FileExistsError(path)
            store, key, url = self._resolve(path)
            writer = self._need_client(url, store, key).open_writer((store, key))
            return EncryptedWriteFile(self, path, writer)
        raise NotImplementedError(
            f"mode {mode!r}: encrypted objects are read ('rb') or written whole ('wb', 'xb'); appending or "
            "updating in place would need re-encrypting the object"
        )

    # ------------------------------------------------------------------------ what cannot be done

    def sign(self, path: str, expiration: int = 100, **kwargs: Any) -> str:
        """Not supported: a signed URL would hand out ciphertext, which only a key holder can read."""
        raise NotImplementedError("a signed URL would serve ciphertext; read through cse instead")

    def created(self, path: str) -> datetime:
        """Not supported: the stores record when an object was last written, not when it was created."""
        raise NotImplementedError("the stores record the last write (modified), not the creation time")

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        """Write an empty object (``truncate=False`` on an existing object is not supported)."""
        if not truncate and self.exists(path):
            raise NotImplementedError("an encrypted object's modification time cannot be changed alone")
        with self.open(path, "wb"):
            pass


def _slice(size: int, start: int | None, end: int | None) -> tuple[int, int]:
    """fsspec's ``start``/``end`` (Python slice semantics, negatives from the end) as offsets in 0..size."""
    first = 0 if start is None else (size + start if start < 0 else start)
    last = size if end is None else (size + end if end < 0 else end)
    first = max(0, min(first, size))
    return first, max(first, min(last, size))


def _describe_keys(envelope: Envelope) -> str:
    asked = []
    for wrapped in envelope.wrapped_keys:
        if wrapped.provider and wrapped.key_id:
            asked.append(f"{wrapped.provider}://{wrapped.key_id}")
        elif wrapped.provider:
            asked.append(f"a {wrapped.provider}:// key ({wrapped.wrap_algorithm})")
        else:
            asked.append(f"a key for {wrapped.wrap_algorithm}")
        if wrapped.material_description:
            asked[-1] += f" with material description {dict(wrapped.material_description)}"
    return " or ".join(asked)


class EncryptedFile(AbstractBufferedFile):  # type: ignore[misc]
    """An object opened for reading: fsspec's buffered file over a :class:`~cse.client.DecryptingReader`.

    Every block is fetched with :meth:`~cse.client.DecryptingReader.read_at` (a ranged get of the segments
    that hold it, verified before any byte is returned). :attr:`reader` is the underlying reader.
    """

    def __init__(
        self,
        fs: EncryptedFileSystem,
        path: str,
        reader: DecryptingReader,
        *,
        block_size: int,
        cache_type: str = "readahead",
        cache_options: Any = None,
    ) -> None:
        """Wrap ``reader`` (opened by ``fs``) for fsspec."""
        #: The verified, seekable reader of the object's plaintext.
        self.reader = reader
        super().__init__(
            fs,
            path,
            mode="rb",
            block_size=block_size,
            autocommit=True,
            cache_type=cache_type,
            cache_options=cache_options,
            size=reader.size,
        )

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.reader.read_at(start, end - start)

    def read(self, length: int = -1) -> bytes:
        """Read ``length`` bytes (to the end if negative). A read of a block or more is one ranged get
        of exactly those bytes (no read-ahead: a Parquet column chunk fetches just itself); smaller reads
        go through fsspec's read-ahead cache."""
        if length is not None and length >= self.blocksize and not self.closed:
            length = min(length, self.size - self.loc)
            if length <= 0:
                return b""
            data = self.reader.read_at(self.loc, length)
            self.loc += len(data)
            return data
        return super().read(length)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the file and its reader."""
        super().close()
        self.reader.close()


class EncryptedWriteFile(io.RawIOBase):
    """An object opened for writing: a :class:`~cse.client.EncryptingWriter` with fsspec's attributes.

    ``close()`` commits the object. ``__exit__`` with an exception, ``abort()``, garbage collection of an
    unclosed file, and a ``close()`` called while an exception raised after the file was opened is being
    handled (as ``fsspec.open(...)`` and pandas do on failure) abort it: nothing is left.
    """

    def __init__(self, fs: EncryptedFileSystem, path: str, writer: EncryptingWriter) -> None:
        """Wrap ``writer`` (opened by ``fs`` for ``path``)."""
        super().__init__()
        self.fs = fs
        self.path = path
        self.mode = "wb"
        #: The client's writer.
        self.writer = writer
        self._opened_during = sys.exc_info()[1]

    def writable(self) -> bool:
        """Always true."""
        return True

    def write(self, data: Any) -> int:
        """Encrypt and send ``data``."""
        return self.writer.write(data)

    def tell(self) -> int:
        """Plaintext bytes written so far."""
        return self.writer.tell()

    def close(self) -> None:
        """Commit the object (or abort it, if an exception raised since the open is being handled)."""
        if self.closed:
            return
        try:
            failing = sys.exc_info()[1]
            if failing is not None and failing is not self._opened_during:
                self.writer.abort()
            else:
                self.writer.close()
        finally:
            super().close()

    def abort(self) -> None:
        """Abandon the object: nothing is written."""
        if not self.closed:
            try:
                self.writer.abort()
            finally:
                super().close()

    def discard(self) -> None:
        """The same as :meth:`abort` (fsspec's name)."""
        self.abort()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Commit on success; abort if an exception is leaving the block."""
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.abort()


class _AbortingTextWrapper(io.TextIOWrapper):
    """Text mode over an :class:`EncryptedWriteFile` that aborts it when an exception leaves ``with``."""

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and isinstance(self.buffer, EncryptedWriteFile):
            self.buffer.abort()
            with contextlib.suppress(Exception):
                super().close()
            return
        self.close()


# ------------------------------------------------------------- inner protocols of the chained form


class _UrlOnlyFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """Parses ``PROTO://bucket/key`` URLs for fsspec's chaining; refuses to be used as a filesystem."""

    package: ClassVar[str] = ""
    schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ImportError(
            f"Install {self.package} to access {self.schemes[0]}:// directly; cse::{self.schemes[0]}:// "
            "URLs (encrypted objects) work without it"
        )

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, (list, tuple)):
            return [cls._strip_protocol(p) for p in path]
        path = stringify_path(path)
        for scheme in cls.schemes:
            if path.startswith(f"{scheme}://"):
                path = path[len(scheme) + 3 :]
        return path.rstrip("/")

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        return {}


def _inner(module: str, name: str, package: str, schemes: tuple[str, ...]) -> type[AbstractFileSystem]:
    try:
        found = getattr(__import__(module, fromlist=[name]), name)
    except ImportError:
        return type(
            name, (_UrlOnlyFileSystem,), {"package": package, "schemes": schemes, "protocol": schemes}
        )
    assert isinstance(found, type)
    return found


def __getattr__(name: str) -> Any:
    # Resolved when fsspec first asks for the class (entry points fsspec.specs: s3, oss).
    if name == "S3FileSystem":
        cls = _inner("s3fs", "S3FileSystem", "s3fs", ("s3", "s3a"))
    elif name == "OSSFileSystem":
        cls = _inner("ossfs", "OSSFileSystem", "ossfs", ("oss",))
    else:
        raise AttributeError(f"module 'cse.fs' has no attribute {name!r}")
    globals()[name] = cls
    return cls
