"""The encryption client: put, get, open, upload_file, download_file, head, delete, copy, rewrap.

Objects are named by URL (``file:///vault/a.bin``, ``memory://bucket/a.bin``, ``s3://bucket/a.bin``) or by
a ``(store, key)`` pair. Keys are :class:`~cse.providers.KeyProvider` objects or key URIs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, BinaryIO

from cse import registry, transfer
from cse.cache import DataKeyCache
from cse.config import CommitmentPolicy, TransferConfig
from cse.content import ContentCodec, ContentMaterial, codec_for, plaintext_mac
from cse.envelope import ContentAlgorithm, Envelope, WrappedKey
from cse.exceptions import (
    AuthenticatedSizeLimitError,
    ConfigurationError,
    CseError,
    DecryptionError,
    EncryptionContextMismatchError,
    EncryptionError,
    MetadataError,
    NoMatchingKeyError,
    StoreError,
)
from cse.formats.base import Format
from cse.log import event, get_logger
from cse.partials import create_partial, remove_stale_partials
from cse.providers import KeyProvider, KeyRequest
from cse.ranges import ByteRange, parse_range, resolve_range
from cse.settings import carry_settings, copy_object, create_multipart, object_settings, put_object
from cse.stores.base import GetResult, ObjectInfo, ObjectSettings, PartInfo, ServerSideEncryption, Store

__all__ = [
    "DecryptingReader",
    "EncryptingWriter",
    "EncryptionClient",
    "HeadResult",
    "ObjectRef",
    "PutResult",
    "detect_format",
    "head_object",
]

ObjectRef = str | tuple[Store, str]
"""An object: a URL, or a ``(store, key)`` pair."""

Body = bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes | bytearray | memoryview]
"""What ``put`` accepts: bytes, a binary file object, or an iterator of byte chunks."""

#: Read buffers at least this large are kept for reuse (at most ``2 * max_concurrency + 2`` sets in all).
_POOLED_READ_SIZE = 256 * 1024
_LOG = get_logger("client")
#: What each security-weakening opt-in gives up, for its warning.
_WEAKENS = {
    "allow_legacy": "objects in legacy formats (S3 V1, OSS V1) and deprecated key wrappings are read",
    "delayed_authentication": "plaintext of whole-object-authenticated objects is released before the tag "
    "is checked",
    "allow_unauthenticated_ranges": "ranged reads of objects authenticated only as a whole are not verified",
}

Callback = Callable[[int], None]
"""Progress callback: called with the number of plaintext bytes just transferred (as boto3's ``Callback``)."""


@dataclass(frozen=True)
class PutResult:
    """What ``put`` and ``upload_file`` stored."""

    url: str
    etag: str
    #: Plaintext bytes.
    size: int
    #: Stored (ciphertext) bytes.
    stored_size: int
    envelope: Envelope
    #: Number of parts, or 0 for a single request.
    parts: int
    #: Parts a resumed upload found already in the store (re-encrypted and compared, not sent again).
    parts_resumed: int = 0


@dataclass(frozen=True)
class HeadResult:
    """What ``head`` reports of an encrypted object. Never contains a key."""

    url: str
    #: Plaintext size in bytes.
    size: int
    #: Stored (ciphertext) size in bytes.
    stored_size: int
    etag: str
    envelope: Envelope
    #: The stored user metadata, as the store returned it.
    metadata: Mapping[str, str]
    #: The server-side layer and the other settings the store reported (content type, storage class,
    #: server-side encryption; tags are not read here).
    settings: ObjectSettings = field(default_factory=ObjectSettings)
    #: The bucket's default server-side encryption, read only when the object reports none of its own.
    bucket_encryption: ServerSideEncryption | None = None

    @property
    def server_side_encryption(self) -> ServerSideEncryption | None:
        """The server-side encryption under cse's: the object's own, else the bucket's default."""
        return self.settings.sse if self.settings.sse is not None else self.bucket_encryption

    @property
    def sse_source(self) -> str | None:
        """Where :attr:`server_side_encryption` comes from: ``object``, ``bucket default`` or ``None``."""
        if self.settings.sse is not None:
            return "object"
        return "bucket default" if self.bucket_encryption is not None else None

    @property
    def authentication(self) -> str:
        """``segment`` (every read verified), ``object`` (only whole reads: S3 V2/V3, and OSS V2 objects
        that carry cse's plaintext MAC) or ``none``."""
        if self.envelope.plaintext_mac is not None:
            return "object"
        return codec_for(self.envelope.content_algorithm).authentication


class _Source:
    """Uniform ``readinto`` over bytes, file objects and iterators of chunks."""

    def __init__(self, body: Body) -> None:
        self._mem: memoryview | None = None
        self._file: IO[bytes] | None = None
        self._iter: Iterator[bytes | bytearray | memoryview] | None = None
        self._pending = memoryview(b"")
        self._pos = 0
        if isinstance(body, (bytes, bytearray, memoryview)):
            self._mem = memoryview(body).cast("B")
        elif hasattr(body, "read"):
            self._file = body  # type: ignore[assignment]
        elif isinstance(body, Iterable):
            self._iter = iter(body)
        else:
            raise ConfigurationError(
                f"put() takes bytes, a binary file object or an iterator of bytes, not {type(body).__name__}"
            )

    def known_length(self) -> int | None:
        if self._mem is not None:
            return len(self._mem)
        return None

    def read_exact(self, length: int) -> memoryview:
        """All of the body, which must be exactly ``length`` bytes (in-memory bodies are not copied)."""
        if self._mem is not None:
            got, extra = len(self._mem), False
            view = self._mem
        else:
            buffer = bytearray(length)
            got = self.readinto(memoryview(buffer))
            extra = got == length and self.readinto(memoryview(bytearray(1))) > 0
            view = memoryview(buffer)
        if got != length or extra:
            raise ConfigurationError(
                f"the body has {'more' if extra or got > length else 'fewer'} bytes "
                f"than content_length={length}"
            )
        return view

    def readinto(self, buf: memoryview) -> int:
        """Fill ``buf`` as far as possible; return bytes read (0 only at the end)."""
        want = len(buf)
        if self._mem is not None:
            n = min(want, len(self._mem) - self._pos)
            buf[:n] = self._mem[self._pos : self._pos + n]
            self._pos += n
            return n
        got = 0
        if self._file is not None:
            readinto = getattr(self._file, "readinto", None)
            while got < want:
                if readinto is not None:
                    n = readinto(buf[got:])
                else:
                    data = self._file.read(want - got)
                    n = len(data)
                    buf[got : got + n] = data
                if not n:
                    break
                got += n
            return got
        assert self._iter is not None
        while got < want:
            if not self._pending:
                try:
                    chunk = next(self._iter)
                except StopIteration:
                    break
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise ConfigurationError(f"the put() iterator yielded {type(chunk).__name__}, not bytes")
                self._pending = memoryview(chunk).cast("B")
            n = min(len(self._pending), want - got)
            buf[got : got + n] = self._pending[:n]
            self._pending = self._pending[n:]
            got += n
        return got


class _Decrypted:
    """An opened encrypted object: store, key, info, envelope, content material and codec."""

    def __init__(
        self,
        store: Store,
        key: str,
        info: ObjectInfo,
        envelope: Envelope,
        material: ContentMaterial,
        prefetched: GetResult | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.info = info
        self.envelope = envelope
        self.material = material
        #: The whole object's GET, when it was made to read the metadata (one request instead of two).
        self.prefetched = prefetched
        self.codec: ContentCodec = codec_for(envelope.content_algorithm)
        self.size = self.codec.plaintext_length(envelope, info.size)
        if envelope.plaintext_length is not None and envelope.plaintext_length != self.size:
            raise MetadataError(
                f"{store.url(key)}: its encryption metadata records a plaintext length of "
                f"{envelope.plaintext_length} bytes, but the stored body holds {self.size}; the object was "
                "truncated or extended after it was written"
            )
        if (
            envelope.plaintext_length is None
            and envelope.data_size is not None
            and envelope.data_size != self.size
        ):
            # Multipart objects of the OSS SDKs record the whole size only as data-size.
            raise MetadataError(
                f"{store.url(key)}: its multipart data size is {envelope.data_size} bytes, but the stored "
                f"body holds {self.size}; the object was truncated or extended after it was written"
            )

    def take_prefetched(self) -> GetResult | None:
        """The prefetched whole-object GET, once (None afterwards, or if there was none)."""
        result, self.prefetched = self.prefetched, None
        return result

    def close(self) -> None:
        """Release a prefetched GET that was not read."""
        result = self.take_prefetched()
        if result is not None:
            result.body.close()


def detect_format(
    metadata: Mapping[str, str], where: str = "the object", *, allow_legacy: bool = False
) -> Format:
    """The one installed format whose metadata ``metadata`` carries.

    Raises :class:`~cse.exceptions.MetadataError` if none or several match, and
    :class:`~cse.exceptions.ConfigurationError` for a legacy format without ``allow_legacy``.
    """
    found = [fmt for fmt in registry.all_formats() if fmt.detect(metadata)]
    if not found:
        raise MetadataError(
            f"{where} has no encryption metadata that cse recognises (formats tried: "
            f"{', '.join(registry.available_formats())}); it was not written by cse or a supported SDK, "
            "or its format's plugin is not installed"
        )
    if len(found) > 1:
        raise MetadataError(
            f"{where} carries metadata of several formats ({', '.join(f.name for f in found)}); "
            "refusing to guess"
        )
    fmt = found[0]
    if fmt.legacy and not allow_legacy:
        raise ConfigurationError(
            f"{where} is in the legacy {fmt.name} format; pass allow_legacy=True (--allow-legacy) to read it"
        )
    if fmt.legacy:
        event(
            _LOG,
            logging.WARNING,
            "reading an object in a legacy format (allow_legacy)",
            url=where,
            format=fmt.name,
        )
    return fmt


def _read_envelope(store: Store, key: str, allow_legacy: bool) -> tuple[ObjectInfo, Format, Envelope]:
    info = store.head(key)
    fmt, envelope = _envelope_of(store, key, info, allow_legacy)
    return info, fmt, envelope


def _envelope_of(store: Store, key: str, info: ObjectInfo, allow_legacy: bool) -> tuple[Format, Envelope]:
    fmt = detect_format(info.metadata, store.url(key), allow_legacy=allow_legacy)
    envelope = fmt.decode(info.metadata)
    legacy = [
        w.wrap_algorithm for w in envelope.wrapped_keys if w.wrap_algorithm in fmt.legacy_wrap_algorithms
    ]
    if legacy and not allow_legacy:
        raise ConfigurationError(
            f"{store.url(key)}: its key is wrapped with the deprecated {legacy[0]}; pass allow_legacy=True "
            "(--allow-legacy) to read it, and re-encrypt it (cse cp) to move it off that wrapping"
        )
    return fmt, envelope


def _full_format_name(name: str, store: Store) -> str:
    """``v2`` means the store's family's ``v2``: ``s3-v2`` on S3, ``oss-v2`` on OSS, ``cse-v1`` for ``v1``
    on the local stores. Full names pass through."""
    if "-" in name:
        return name
    family = store.default_format.rsplit("-", 1)[0]
    return f"{family}-{name}"


def _check_context(fmt: Format, envelope: Envelope, expected: Mapping[str, str], where: str) -> None:
    """The stored context, less the format's reserved keys, must equal the one the reader expects."""
    stored = {k: v for k, v in envelope.encryption_context.items() if k not in fmt.reserved_context_keys}
    wanted = dict(expected)
    if stored != wanted:
        differ = sorted(k for k in stored.keys() | wanted.keys() if stored.get(k) != wanted.get(k))
        raise EncryptionContextMismatchError(
            f"{where} was encrypted under another encryption context than the one given: the keys "
            f"{', '.join(map(repr, differ))} differ (stored context: {stored})"
        )


def _bucket_encryption(store: Store, info: ObjectInfo) -> ServerSideEncryption | None:
    """The bucket default, asked for only when the object reports no server-side encryption of its own
    (a store that refuses to say, for want of permission, reports none)."""
    if info.settings.sse is not None:
        return None
    try:
        return store.get_bucket_encryption()
    except CseError as exc:
        reason = type(exc).__name__
        event(_LOG, logging.DEBUG, "bucket encryption unknown", store=store.url(""), reason=reason)
        return None


def head_object(store: Store, key: str, *, allow_legacy: bool = False) -> HeadResult:
    """Describe an encrypted object without any key: plaintext size, envelope, metadata, and the
    server-side layer (the object's settings, and the bucket default if the object has no SSE of its own)."""
    return _head(store, key, allow_legacy, bucket=True)


def _head(store: Store, key: str, allow_legacy: bool, *, bucket: bool) -> HeadResult:
    """:func:`head_object`; the bucket default is looked up only with ``bucket``."""
    info, _, envelope = _read_envelope(store, key, allow_legacy)
    size = codec_for(envelope.content_algorithm).plaintext_length(envelope, info.size)
    return HeadResult(
        store.url(key),
        size,
        info.size,
        info.etag,
        envelope,
        dict(info.metadata),
        info.settings,
        _bucket_encryption(store, info) if bucket else None,
    )


def _check_metadata(fmt: Format, envelope: Envelope, extra: Mapping[str, str]) -> None:
    """User metadata may not use the names of the format's own headers."""
    clash = sorted({k.lower() for k in extra} & set(fmt.encode(envelope))) if extra else []
    if clash:
        raise ConfigurationError(
            f"the metadata names {', '.join(clash)} are the {fmt.name} format's own; rename them"
        )


class EncryptionClient:
    """Client-side envelope encryption over any store.

    :param keys: key providers (or key URIs) that may decrypt. The first one also encrypts, unless
        ``wrap_keys`` is given.
    :param wrap_keys: the providers that wrap the content key of new objects. cse-v1 records one wrapped
        key per provider, so any of them can decrypt; the S3 and OSS formats take exactly one.
    :param format: the format to write (``cse-v1``, ``s3-v3``, ``oss-v2`` ...), or a short name within the
        store's family (``v3``, ``v2``); default: the store's.
    :param encryption_context: default encryption context of new objects.
    :param config: transfer settings (:class:`~cse.config.TransferConfig`).
    :param delayed_authentication: let ``get``/``open`` stream plaintext of objects that are
        authenticated only as a whole (S3 V2/V3) before the tag is checked; the tag is still checked at
        the end and a mismatch raises. Dangerous: the caller sees unverified bytes.
    :param allow_unauthenticated_ranges: allow ranged reads of objects authenticated only as a whole;
        such ranges are decrypted as CTR and not verified (as the Java S3 client's legacy modes).
    :param allow_legacy: read legacy formats (S3 V1, OSS V1) and legacy wrap algorithms.
    :param commitment_policy: key commitment for the formats it governs (the S3 family), as in the official
        S3 Encryption Client: by default new objects must commit to their key (S3 V3) and objects that do
        not (S3 V2) are refused on read; ``REQUIRE_ENCRYPT_ALLOW_DECRYPT`` reads them.
    :param key_cache: a :class:`~cse.cache.DataKeyCache` that lets new objects of known length share the
        first wrap key's data key within its limits (fewer KMS calls; see the data-key cache docs). Default
        ``None``: every object gets its own key.
    """

    def __init__(
        self,
        keys: KeyProvider | str | Sequence[KeyProvider | str],
        *,
        wrap_keys: Sequence[KeyProvider | str] | None = None,
        format: str | None = None,
        encryption_context: Mapping[str, str] | None = None,
        config: TransferConfig | None = None,
        delayed_authentication: bool = False,
        allow_unauthenticated_ranges: bool = False,
        allow_legacy: bool = False,
        commitment_policy: CommitmentPolicy | str = CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
        key_cache: DataKeyCache | None = None,
    ) -> None:
        try:
            self.commitment_policy = CommitmentPolicy(commitment_policy)
        except ValueError:
            choices = ", ".join(p.value for p in CommitmentPolicy)
            raise ConfigurationError(
                f"unknown commitment policy {commitment_policy!r}; use one of {choices}"
            ) from None
        key_list = [keys] if isinstance(keys, (KeyProvider, str)) else list(keys)
        if not key_list:
            raise ConfigurationError("EncryptionClient needs at least one key (a KeyProvider or a key URI)")
        self.keys: tuple[KeyProvider, ...] = tuple(self._provider(k) for k in key_list)
        wraps = [self._provider(k) for k in wrap_keys] if wrap_keys is not None else [self.keys[0]]
        self.wrap_keys: tuple[KeyProvider, ...] = tuple(wraps)
        self.format = format
        self.encryption_context = dict(encryption_context or {})
        self.config = config or TransferConfig()
        self.delayed_authentication = delayed_authentication
        self.allow_unauthenticated_ranges = allow_unauthenticated_ranges
        self.allow_legacy = allow_legacy
        for name, on in (
            ("allow_legacy", allow_legacy),
            ("delayed_authentication", delayed_authentication),
            ("allow_unauthenticated_ranges", allow_unauthenticated_ranges),
        ):
            if on:
                event(_LOG, logging.WARNING, f"{name}=True weakens security: {_WEAKENS[name]}", option=name)
        if key_cache is not None and not isinstance(key_cache, DataKeyCache):
            raise ConfigurationError(f"key_cache is a DataKeyCache or None, not {type(key_cache).__name__}")
        self.key_cache = key_cache
        self._stores: dict[str, Store] = {}
        self._free_buffers: dict[tuple[int, int], list[tuple[bytearray, bytearray, bytearray]]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ plumbing

    @staticmethod
    def _provider(key: KeyProvider | str) -> KeyProvider:
        if isinstance(key, KeyProvider):
            return key
        if isinstance(key, str):
            return registry.open_provider(key)
        raise ConfigurationError(f"a key is a KeyProvider or a key URI string, not {type(key).__name__}")

    def resolve(self, ref: ObjectRef) -> tuple[Store, str]:
        """The store and key an object reference names. Stores opened from URLs are reused."""
        if isinstance(ref, tuple):
            return ref
        store, key = registry.open_store(ref)
        root = store.url("")
        with self._lock:
            cached = self._stores.setdefault(root, store)
        return cached, key

    def _format(self, store: Store, name: str | None) -> Format:
        fmt = registry.get_format(_full_format_name(name or self.format or store.default_format, store))
        if not fmt.writable:
            raise ConfigurationError(
                f"the {fmt.name} format is read-only (legacy); write cse-v1 or the store's"
            )
        if (
            fmt.commitment_policy_applies
            and fmt.key_committing != self.commitment_policy.encrypt_requires_commitment
        ):
            if fmt.key_committing:
                hint = "choose a format without key commitment (s3-v2) or another policy"
            else:
                hint = (
                    "pass commitment_policy=FORBID_ENCRYPT_ALLOW_DECRYPT "
                    "(--commitment-policy forbid-encrypt-allow-decrypt) to write it"
                )
            raise ConfigurationError(
                f"the commitment policy {self.commitment_policy.value} does not allow writing {fmt.name} "
                f"({'with' if fmt.key_committing else 'without'} key commitment); {hint}"
            )
        return fmt

    def _detect(self, metadata: Mapping[str, str], where: str) -> Format:
        return detect_format(metadata, where, allow_legacy=self.allow_legacy)

    def unwrap(self, envelope: Envelope) -> ContentMaterial:
        """Unwrap an envelope's content key (and IV) with the first configured key that can."""
        codec = codec_for(envelope.content_algorithm)
        try:
            fmt: Format | None = registry.get_format(envelope.format)
        except ConfigurationError:
            fmt = None
        iv_is_text = fmt is not None and fmt.wrapped_iv_is_text
        tried = False
        for wrapped in envelope.wrapped_keys:
            for provider in self.keys:
                if not provider.can_unwrap(wrapped):
                    continue
                tried = True
                request = KeyRequest(
                    wrap_algorithm=wrapped.wrap_algorithm,
                    content_algorithm=envelope.content_algorithm,
                    encryption_context=envelope.encryption_context,
                    material_description=wrapped.material_description,
                    key_id=wrapped.key_id,
                )
                try:
                    key = provider.unwrap(wrapped.ciphertext, request)
                    iv = envelope.iv
                    if wrapped.wrapped_iv and fmt is not None and iv_is_text:
                        secret = provider.unwrap(
                            wrapped.wrapped_iv, replace(request, key_length=64, secret_is_text=True)
                        )
                        iv = fmt.content_iv(secret)
                    elif wrapped.wrapped_iv:
                        iv = provider.unwrap(wrapped.wrapped_iv, replace(request, key_length=codec.iv_length))
                except DecryptionError:  # includes NoMatchingKeyError: try the next key
                    continue
                material = ContentMaterial(key=key, iv=iv)
                if len(key) != 32 or not codec.key_matches(material, envelope):
                    continue
                return material
        if not tried:
            asked = "; ".join(_describe_wrapped(w) for w in envelope.wrapped_keys)
            have = ", ".join(p.describe() for p in self.keys)
            raise NoMatchingKeyError(
                f"no configured key can unwrap this object: it asks for {asked}; given {have}"
            )
        raise DecryptionError()

    def _open(
        self, ref: ObjectRef, expected_context: Mapping[str, str] | None = None, *, whole: bool = False
    ) -> _Decrypted:
        """Read the envelope and unwrap the key. ``whole``: the caller reads the whole object, so one GET
        serves both the metadata and (later, in :meth:`_stream`) the body, instead of a HEAD and a GET."""
        store, key = self.resolve(ref)
        if not whole:
            info, fmt, envelope = _read_envelope(store, key, self.allow_legacy)
            return self._opened(store, key, info, fmt, envelope, expected_context, None)
        result = store.get(key)
        try:
            fmt, envelope = _envelope_of(store, key, result.info, self.allow_legacy)
            return self._opened(store, key, result.info, fmt, envelope, expected_context, result)
        except BaseException:
            result.body.close()
            raise

    def _opened(
        self,
        store: Store,
        key: str,
        info: ObjectInfo,
        fmt: Format,
        envelope: Envelope,
        expected_context: Mapping[str, str] | None,
        prefetched: GetResult | None,
    ) -> _Decrypted:
        if expected_context is not None:
            _check_context(fmt, envelope, expected_context, store.url(key))
        if (
            fmt.commitment_policy_applies
            and not fmt.key_committing
            and self.commitment_policy.decrypt_requires_commitment
        ):
            raise ConfigurationError(
                f"{store.url(key)} is in the {fmt.name} format, which does not commit to its key, and the "
                f"commitment policy is {self.commitment_policy.value}; pass "
                "commitment_policy=REQUIRE_ENCRYPT_ALLOW_DECRYPT "
                "(--commitment-policy require-encrypt-allow-decrypt) to read it"
            )
        return _Decrypted(store, key, info, envelope, self.unwrap(envelope), prefetched)

    def _context(self, encryption_context: Mapping[str, str] | None) -> dict[str, str]:
        context = {**self.encryption_context, **(encryption_context or {})}
        for k, v in context.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ConfigurationError("the encryption context maps strings to strings")
        return context

    def _new_envelope(
        self, fmt: Format, context: Mapping[str, str], plaintext_length: int | None
    ) -> tuple[Envelope, ContentMaterial]:
        if len(self.wrap_keys) > 1 and fmt.name != "cse-v1":
            raise ConfigurationError(
                f"the {fmt.name} format records one wrapped key; give one key, or use cse-v1"
            )
        codec = codec_for(fmt.content_algorithm)
        wrapped: list[WrappedKey] = []
        cek: bytes | None = None
        params: dict[str, Any] = {}
        iv: bytes | None = None
        for provider in self.wrap_keys:
            if not provider.can_encrypt:
                raise ConfigurationError(
                    f"the key {provider.describe()} can only decrypt; give a key that can encrypt"
                )
            request = KeyRequest(
                wrap_algorithm=fmt.choose_wrap_algorithm(provider),
                content_algorithm=fmt.content_algorithm,
                encryption_context=context,
                material_description=provider.material_description,
            )
            if cek is None:
                if self.key_cache is not None and plaintext_length is not None:
                    data_key = self.key_cache.data_key(provider, request, plaintext_length)
                else:
                    # Unknown length (a stream): the cache could not charge the object's bytes to the key's
                    # byte budget, so such an object gets a key of its own.
                    data_key = provider.generate_data_key(request)
                cek, ciphertext, key_id = data_key.plaintext, data_key.ciphertext, data_key.key_id
                params = codec.new_parameters(cek, segment_size=self.config.segment_size)
                iv = params.get("iv")
            else:
                ciphertext, key_id = provider.wrap(cek, request), provider.key_id
            wrapped_iv = None
            if fmt.wraps_iv:
                assert iv is not None
                wrapped_iv = provider.wrap(iv, request)
            wrapped.append(
                WrappedKey(
                    wrap_algorithm=request.wrap_algorithm,
                    ciphertext=ciphertext,
                    wrapped_iv=wrapped_iv,
                    key_id=key_id or provider.key_id,
                    provider=provider.scheme,
                    material_description=dict(provider.material_description),
                )
            )
        assert cek is not None
        if fmt.wraps_iv:
            params.pop("iv", None)
        envelope = Envelope(
            format=fmt.name,
            content_algorithm=fmt.content_algorithm,
            wrapped_keys=tuple(wrapped),
            encryption_context=dict(context),
            plaintext_length=plaintext_length,
            **params,
        )
        return envelope, ContentMaterial(key=cek, iv=iv)

    # ------------------------------------------------------------------------------------------------ put

    def put(
        self,
        ref: ObjectRef,
        body: Body,
        *,
        encryption_context: Mapping[str, str] | None = None,
        format: str | None = None,
        content_length: int | None = None,
        callback: Callback | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        content_disposition: str | None = None,
        cache_control: str | None = None,
        tags: Mapping[str, str] | None = None,
        storage_class: str | None = None,
        sse: ServerSideEncryption | str | None = None,
        sse_key_id: str | None = None,
    ) -> PutResult:
        """Encrypt ``body`` and store it. Unknown or large lengths go multipart, with bounded memory.

        ``content_length`` (if known) is recorded as the plaintext length where the format has a field
        for it. ``metadata`` is user metadata stored with the object as it is (not encrypted, as S3's
        ``Metadata=``); its names may not be the format's own. On any failure, a multipart upload is
        aborted: nothing partial is left.

        The store's own settings of the object, as boto3's ``put_object`` takes them (stored as the plain
        SDK stores them, not encrypted): ``content_type``, ``content_disposition``, ``cache_control``,
        ``tags`` (a mapping), ``storage_class`` (the store's name: ``STANDARD_IA`` on S3, ``IA`` on OSS),
        and server-side encryption under cse's: ``sse`` (``kms``, ``aes256``, ``sm4``, ``dsse``, or the
        store's ``aws:kms``, ``AES256``...; or a :class:`~cse.stores.base.ServerSideEncryption`) with
        ``sse_key_id`` (a key id alone means ``kms``). A mode the store does not have is refused before
        anything is written (and before any key is made).
        """
        settings = object_settings(
            content_type=content_type,
            content_disposition=content_disposition,
            cache_control=cache_control,
            tags=tags,
            storage_class=storage_class,
            sse=sse,
            sse_key_id=sse_key_id,
        )
        return self._put(
            ref,
            body,
            encryption_context=encryption_context,
            format=format,
            content_length=content_length,
            callback=callback,
            metadata=metadata,
            settings=settings,
        )

    def _checked(self, ref: ObjectRef, settings: ObjectSettings) -> tuple[Store, str]:
        """The store and key of ``ref``, once the store accepted ``settings`` (first thing, before any
        key is made or byte written)."""
        store, key = self.resolve(ref)
        if settings:
            store.check_settings(settings)
        return store, key

    def _put(
        self,
        ref: ObjectRef,
        body: Body,
        *,
        encryption_context: Mapping[str, str] | None,
        format: str | None,
        content_length: int | None,
        callback: Callback | None,
        metadata: Mapping[str, str] | None,
        settings: ObjectSettings,
    ) -> PutResult:
        store, key = self._checked(ref, settings)
        fmt = self._format(store, format)
        context = self._context(encryption_context)
        source = _Source(body)
        length = content_length if content_length is not None else source.known_length()
        envelope, material = self._new_envelope(fmt, context, length)
        extra = dict(metadata or {})
        _check_metadata(fmt, envelope, extra)
        codec = codec_for(envelope.content_algorithm)
        try:
            encryptor = codec.encryptor(material, envelope)
        except ValueError as exc:
            raise EncryptionError(f"cannot encrypt: {exc}") from None
        threshold = self.config.multipart_threshold
        if length is not None and length <= threshold:
            return self._put_single(
                store,
                key,
                fmt,
                _with_mac(envelope, material, source.read_exact(length)),
                encryptor,
                callback,
                extra,
                settings,
            )
        head = memoryview(b"")
        if length is None:
            # Unknown length: read up to the threshold to see whether it fits in one request.
            buffer = bytearray(threshold + 1)
            head = memoryview(buffer)[: source.readinto(memoryview(buffer))]
            if len(head) <= threshold:
                return self._put_single(
                    store, key, fmt, _with_mac(envelope, material, head), encryptor, callback, extra, settings
                )
        return self._put_multipart(
            store, key, fmt, envelope, encryptor, source, head, callback, extra, settings
        )

    def _put_single(
        self,
        store: Store,
        key: str,
        fmt: Format,
        prepared: tuple[Envelope, memoryview],
        encryptor: Any,
        callback: Callback | None,
        extra: Mapping[str, str] | None = None,
        settings: ObjectSettings | None = None,
    ) -> PutResult:
        envelope, plaintext = prepared
        length = len(plaintext)
        if envelope.plaintext_length != length:
            envelope = envelope.model_copy(update={"plaintext_length": length})
        out = bytearray(encryptor.output_size(length))
        n = encryptor.update_into(plaintext, out)
        trailer = encryptor.finalize()
        out[n : n + len(trailer)] = trailer
        ciphertext = memoryview(out)[: n + len(trailer)]
        headers = {**(extra or {}), **fmt.encode(envelope)}
        info = put_object(store, key, ciphertext, headers, settings)
        if callback is not None:
            callback(length)
        return PutResult(store.url(key), info.etag, length, len(ciphertext), envelope, 0)

    def _part_size(self, store: Store, length: int | None, align: int = 1) -> int:
        """The configured part size, raised to the store's minimum and to fit its part count, rounded up to
        a multiple of ``align``."""
        size = max(self.config.part_size, store.min_part_size)
        if length is not None:
            # Keep within the store's part count, with a margin for per-segment tags.
            need = -(-(length + length // 64 + 1024) // store.max_parts)
            size = max(size, need)
        return -(-size // align) * align

    def _put_multipart(
        self,
        store: Store,
        key: str,
        fmt: Format,
        envelope: Envelope,
        encryptor: Any,
        source: _Source,
        head: memoryview,
        callback: Callback | None,
        extra: Mapping[str, str] | None = None,
        settings: ObjectSettings | None = None,
    ) -> PutResult:
        cfg = self.config
        codec = codec_for(envelope.content_algorithm)
        # A length-preserving cipher (CTR) starts its parts on a block (OSS V2 records a multiple of 16).
        align = codec.part_alignment(envelope) if codec.ciphertext_length(envelope, 16) == 16 else 0
        part_size = self._part_size(store, envelope.plaintext_length, align or 1)
        step = codec.plaintext_chunk(envelope, cfg.chunk_size)
        # Reads are cut to fill parts exactly, in multiples of the codec's unit (whole cse-v1 segments, so
        # they are sealed in place); a buffer holds a part plus what one read can add beyond it.
        unit = codec.plaintext_chunk(envelope, 1)
        capacity = part_size + encryptor.output_size(step) - step + unit + 64
        # Formats that record the multipart layout (OSS: data-size, part-size) get it; the others ignore it.
        layout = {"data_size": envelope.plaintext_length, "part_size": part_size}
        envelope = envelope.model_copy(update=layout)
        upload_id = create_multipart(store, key, {**(extra or {}), **fmt.encode(envelope)}, settings)
        part_headers = fmt.part_headers(envelope)
        free: list[bytearray] = []
        pending: dict[Future[PartInfo], bytearray] = {}
        done: list[PartInfo] = []
        total_plain = 0
        total_cipher = 0
        number = 0

        def upload(num: int, data: memoryview) -> PartInfo:
            for attempt in range(cfg.part_attempts):
                try:
                    return store.upload_part(key, upload_id, num, data, part_headers)
                except StoreError:
                    if attempt + 1 == cfg.part_attempts:
                        raise
                    time.sleep(0.2 * 2**attempt)
            raise AssertionError("unreachable")

        def collect(block: bool) -> None:
            if not pending:
                return
            finished, _ = (
                wait(list(pending), return_when=FIRST_COMPLETED)
                if block
                else ([f for f in pending if f.done()], None)
            )
            for fut in finished:
                buf = pending.pop(fut)
                done.append(fut.result())
                free.append(buf)

        def take() -> bytearray:
            while len(pending) >= cfg.max_concurrency:
                collect(block=True)
            collect(block=False)
            return free.pop() if free else bytearray(capacity)

        try:
            with ThreadPoolExecutor(max_workers=cfg.max_concurrency, thread_name_prefix="cse-part") as pool:

                def submit(data: bytearray, size: int) -> None:
                    nonlocal number, total_cipher
                    number += 1
                    total_cipher += size
                    pending[pool.submit(upload, number, memoryview(data)[:size])] = data

                def spill(buf: bytearray, fill: int) -> tuple[bytearray, int]:
                    # Send every full part; what runs past it starts the next one.
                    while fill >= part_size:
                        fresh = take()
                        fresh[: fill - part_size] = buf[part_size:fill]
                        submit(buf, part_size)
                        buf, fill = fresh, fill - part_size
                    return buf, fill

                buf, fill = take(), 0
                chunk = memoryview(bytearray(step))
                while True:
                    want = min(step, part_size - fill)
                    want = want - want % unit if want >= unit else unit
                    if len(head):
                        piece, head = head[:want], head[want:]
                    else:
                        piece = chunk[: source.readinto(chunk[:want])]
                    if not len(piece):
                        break
                    total_plain += len(piece)
                    fill += encryptor.update_into(piece, memoryview(buf)[fill:])
                    buf, fill = spill(buf, fill)
                    if callback is not None:
                        callback(len(piece))
                expected = envelope.plaintext_length
                if expected is not None and total_plain != expected:
                    raise ConfigurationError(
                        f"the body has {'fewer' if total_plain < expected else 'more'} bytes "
                        f"than content_length={expected}"
                    )
                trailer = encryptor.finalize()
                buf[fill : fill + len(trailer)] = trailer
                buf, fill = spill(buf, fill + len(trailer))
                if fill or not number:  # the last part holds the rest; an empty one only for an empty object
                    submit(buf, fill)
                while pending:
                    collect(block=True)
            done.sort(key=lambda p: p.part_number)
            info = store.complete_multipart(key, upload_id, done)
        except BaseException as exc:
            from cse.uploads import raise_aborted

            raise_aborted(exc, store, key, upload_id)
            raise
        return PutResult(store.url(key), info.etag, total_plain, total_cipher, envelope, len(done))

    def upload_file(
        self,
        path: str | os.PathLike[str],
        ref: ObjectRef,
        *,
        encryption_context: Mapping[str, str] | None = None,
        format: str | None = None,
        callback: Callback | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        content_disposition: str | None = None,
        cache_control: str | None = None,
        tags: Mapping[str, str] | None = None,
        storage_class: str | None = None,
        sse: ServerSideEncryption | str | None = None,
        sse_key_id: str | None = None,
    ) -> PutResult:
        """Encrypt a local file into the store (multipart above the threshold, bounded memory).

        For formats whose parts encrypt on their own (OSS V2, cse-v1), the parts of a multipart upload are
        read, encrypted at their offsets and uploaded in parallel (``max_concurrency`` at once). With
        ``checkpoint`` (a file path), the upload is resumable: after a crash or an error, the same call
        continues from the parts the store already holds, and the checkpoint records only wrapped key
        material (see :mod:`cse.transfer`). S3 V2/V3 (GCM) cannot be resumed. A resumed upload keeps the
        metadata and settings it was started with.

        ``metadata`` and the object settings (``content_type`` ... ``sse``, ``sse_key_id``) are
        :meth:`put`'s.
        """
        settings = object_settings(
            content_type=content_type,
            content_disposition=content_disposition,
            cache_control=cache_control,
            tags=tags,
            storage_class=storage_class,
            sse=sse,
            sse_key_id=sse_key_id,
        )
        p = Path(path)
        store, key = self._checked(ref, settings)
        fmt = self._format(store, format)
        try:
            size = p.stat().st_size
        except OSError as exc:
            raise ConfigurationError(f"cannot read {p}: {exc.strerror or exc}") from None
        parallel = codec_for(fmt.content_algorithm).independent_parts
        if checkpoint is not None and not parallel:
            raise ConfigurationError(
                f"the {fmt.name} format is authenticated only as a whole, so its uploads cannot be resumed; "
                "upload without a checkpoint, or write oss-v2 or cse-v1"
            )
        if size > self.config.multipart_threshold and parallel:
            return transfer.upload_file_in_parts(
                self,
                p,
                store,
                key,
                fmt,
                self._context(encryption_context),
                checkpoint=Path(checkpoint) if checkpoint is not None else None,
                callback=callback,
                metadata=metadata,
                settings=settings,
            )
        try:
            fh = p.open("rb")
        except OSError as exc:
            raise ConfigurationError(f"cannot read {p}: {exc.strerror or exc}") from None
        with fh:
            return self._put(
                (store, key),
                fh,
                encryption_context=encryption_context,
                format=format,
                content_length=size,
                callback=callback,
                metadata=metadata,
                settings=settings,
            )

    # ------------------------------------------------------------------------------------------------ get

    def head(self, ref: ObjectRef) -> HeadResult:
        """The plaintext size, envelope and metadata of an object (no key is unwrapped)."""
        store, key = self.resolve(ref)
        return head_object(store, key, allow_legacy=self.allow_legacy)

    def _stream(self, obj: _Decrypted, start: int, end: int) -> Iterator[memoryview]:
        """Yield decrypted plaintext ``start..end`` (inclusive) chunk by chunk.

        The last chunk is yielded only after the decryptor's final check passed. For codecs that
        authenticate only whole objects, earlier chunks are unverified until then: callers that must not
        release unverified plaintext hold them (``get``) or write them to a temporary file
        (``download_file``). Yielded views are reused: consume each before asking for the next.
        """
        codec, cfg = obj.codec, self.config
        whole = (start == 0 and end == obj.size - 1) or obj.size == 0
        if whole:
            ct_start, ct_end, skip, length = 0, obj.info.size - 1, 0, obj.size
            decryptor = codec.decryptor(obj.material, obj.envelope, obj.info.size)
        else:
            plan = codec.plan_range(obj.envelope, obj.info.size, start, end)
            if (
                not plan.authenticated
                and codec.authentication != "none"
                and not self.allow_unauthenticated_ranges
            ):
                raise ConfigurationError(
                    f"{obj.store.url(obj.key)} is authenticated only as a whole ({obj.envelope.format}); a "
                    "ranged read of it cannot be verified. Read the whole object, pass "
                    "allow_unauthenticated_ranges=True (--allow-unauthenticated-ranges), "
                    "or store it as cse-v1"
                )
            if not plan.authenticated and codec.authentication != "none":
                event(
                    _LOG,
                    logging.WARNING,
                    "an unauthenticated ranged read (allow_unauthenticated_ranges)",
                    url=obj.store.url(obj.key),
                    format=obj.envelope.format,
                )
            ct_start, ct_end, skip, length = plan.ct_start, plan.ct_end, plan.skip, plan.length
            decryptor = codec.range_decryptor(obj.material, obj.envelope, obj.info.size, plan)
        # Reads of chunk_size, but no larger than the bytes asked for: small objects get small buffers.
        span = max(1, ct_end - ct_start + 1)
        read_size = codec.ciphertext_chunk(obj.envelope, min(cfg.chunk_size, span))
        # Two output buffers: the newest piece is held back until the next one (or the final check)
        # is done, so whoever reads the last byte has already seen the verification pass.
        shape = (read_size, decryptor.output_size(read_size))
        buffers = self._take_buffers(shape)
        # The buffers go back for reuse only when this generator ends: the last piece yielded lives in one.
        with self._returning(shape, buffers):
            outs = buffers[1:]
            which = 0
            held: memoryview | None = None
            remaining = length
            prefetched = obj.take_prefetched()
            if prefetched is not None and (obj.info.size == 0 or not whole):
                prefetched.body.close()
                prefetched = None
            fetched: Any = (
                contextlib.nullcontext(None)
                if obj.info.size == 0
                else prefetched or obj.store.get(obj.key, ct_start, ct_end)
            )
            with fetched as result:
                view = memoryview(buffers[0])
                while result is not None:
                    n = _readinto(result.body, view)
                    if not n:
                        break
                    out = outs[which]
                    piece = memoryview(out)[: decryptor.update_into(view[:n], out)]
                    if skip:
                        cut = min(skip, len(piece))
                        piece, skip = piece[cut:], skip - cut
                    piece = piece[:remaining]
                    if len(piece):
                        remaining -= len(piece)
                        if held is not None:
                            yield held
                        held, which = piece, which ^ 1
                tail = memoryview(decryptor.finalize())[skip:]
            tail = tail[:remaining]
            remaining -= len(tail)
            if remaining:
                raise DecryptionError()
            if held is not None:
                yield held
            if len(tail):
                yield tail

    def _take_buffers(self, shape: tuple[int, int]) -> tuple[bytearray, bytearray, bytearray]:
        """A read buffer and two output buffers of ``shape``, reused from earlier reads when there are any:
        allocating (and zeroing) megabytes per read costs more than decrypting a small object."""
        with self._lock:
            free = self._free_buffers.get(shape)
            if free:
                return free.pop()
        read_size, out_size = shape
        return bytearray(read_size), bytearray(out_size), bytearray(out_size)

    @contextlib.contextmanager
    def _returning(
        self, shape: tuple[int, int], buffers: tuple[bytearray, bytearray, bytearray]
    ) -> Iterator[None]:
        """Give ``buffers`` back for reuse when the read ends (a few sets per shape are kept)."""
        try:
            yield
        finally:
            if shape[0] >= _POOLED_READ_SIZE:  # small buffers are cheap; pooling them would only hoard memory
                with self._lock:
                    kept = sum(len(sets) for sets in self._free_buffers.values())
                    if kept < 2 * self.config.max_concurrency + 2:
                        self._free_buffers.setdefault(shape, []).append(buffers)

    def get(
        self,
        ref: ObjectRef,
        *,
        range: ByteRange | str | None = None,
        encryption_context: Mapping[str, str] | None = None,
    ) -> bytes:
        """Decrypt an object (or a byte range of it) into memory, verified.

        Objects authenticated only as a whole (S3 V2/V3) are held until their tag verifies, up to
        ``config.max_authenticated_buffer``; larger ones raise
        :class:`~cse.exceptions.AuthenticatedSizeLimitError` unless ``delayed_authentication`` is set.
        With ``encryption_context``, the object's stored context (less the format's reserved keys) must equal
        it, or :class:`~cse.exceptions.EncryptionContextMismatchError` is raised; the same holds for
        ``iter_chunks``, ``open`` and ``download_file``.
        """
        obj = self._open(ref, encryption_context, whole=range is None)
        try:
            start, end = self._range(obj, range)
            if obj.codec.authentication == "object" and (start, end) == (0, obj.size - 1):
                self._check_buffer_cap(obj)
            # BytesIO grows by realloc (mremap for large buffers) and getvalue() hands its buffer over without
            # a copy: one pass over the plaintext, where a preallocated bytearray needs bytes(out) as well.
            buf = io.BytesIO()
            for piece in self._stream(obj, start, end):
                buf.write(piece)
            return buf.getvalue()
        finally:
            obj.close()

    def _check_buffer_cap(self, obj: _Decrypted) -> None:
        cap = self.config.max_authenticated_buffer
        if obj.size > cap and not self.delayed_authentication:
            raise AuthenticatedSizeLimitError(
                f"{obj.store.url(obj.key)} ({obj.size} bytes, format {obj.envelope.format}) "
                "is authenticated only "
                f"as a whole and is larger than the {cap}-byte verification buffer. Use download_file() "
                "(verifies into a temporary file), or pass delayed_authentication=True to stream unverified "
                "plaintext that is checked at the end"
            )

    @staticmethod
    def _range(obj: _Decrypted, byte_range: ByteRange | str | None) -> tuple[int, int]:
        if byte_range is None:
            return 0, obj.size - 1
        parsed = parse_range(byte_range) if isinstance(byte_range, str) else byte_range
        return resolve_range(parsed, obj.size)

    def iter_chunks(
        self,
        ref: ObjectRef,
        *,
        range: ByteRange | str | None = None,
        encryption_context: Mapping[str, str] | None = None,
    ) -> Iterator[bytes]:
        """Stream decrypted plaintext in chunks.

        Every chunk is verified before it is yielded for cse-v1 and for formats without authentication.
        For objects authenticated only as a whole, chunks are held in memory until the tag verifies (up to
        the buffer cap), unless ``delayed_authentication`` is set: then they are yielded unverified and the
        tag is checked at the end (raising :class:`~cse.exceptions.DecryptionError` there).
        """
        obj = self._open(ref, encryption_context, whole=range is None)
        try:
            start, end = self._range(obj, range)
            whole_only = obj.codec.authentication == "object" and (start, end) == (0, obj.size - 1)
            if whole_only and self.delayed_authentication:
                event(
                    _LOG,
                    logging.WARNING,
                    "plaintext released before its tag is checked (delayed_authentication)",
                    url=obj.store.url(obj.key),
                    format=obj.envelope.format,
                )
            if whole_only and not self.delayed_authentication:
                self._check_buffer_cap(obj)
                held = [bytes(p) for p in self._stream(obj, start, end)]
                yield from held
                return
            for piece in self._stream(obj, start, end):
                yield bytes(piece)
        finally:
            obj.close()

    def open(
        self, ref: ObjectRef, *, encryption_context: Mapping[str, str] | None = None
    ) -> DecryptingReader:
        """A read-only, file-like view of the plaintext.

        Seekable for cse-v1 and for unauthenticated formats (each read fetches only what it needs, and
        cse-v1 verifies every segment). For objects authenticated only as a whole, the plaintext is
        verified into memory first (up to the buffer cap), or streamed unverified with
        ``delayed_authentication`` (then it is not seekable).
        """
        obj = self._open(ref, encryption_context)
        return DecryptingReader(self, obj)

    def open_writer(
        self,
        ref: ObjectRef,
        *,
        encryption_context: Mapping[str, str] | None = None,
        format: str | None = None,
        content_length: int | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        content_disposition: str | None = None,
        cache_control: str | None = None,
        tags: Mapping[str, str] | None = None,
        storage_class: str | None = None,
        sse: ServerSideEncryption | str | None = None,
        sse_key_id: str | None = None,
    ) -> EncryptingWriter:
        """A write-only, file-like object that encrypts what is written into ``ref``.

        The bytes go through :meth:`put` (one request up to ``multipart_threshold``, else the multipart
        upload) as they are written, in bounded memory: ``multipart_threshold`` to tell the two apart, the
        multipart buffers (see :class:`~cse.config.TransferConfig`), and a few chunks in flight. The object
        appears only when :meth:`EncryptingWriter.close` returns; :meth:`EncryptingWriter.abort`, or an
        exception leaving a ``with`` block, aborts the upload and leaves nothing (no object, no unfinished
        multipart upload). ``content_length``, if known, is recorded where the format has a field for it.
        ``metadata`` and the object settings (``content_type`` ... ``sse``, ``sse_key_id``) are
        :meth:`put`'s, and are checked here, before the writer starts.
        """
        settings = object_settings(
            content_type=content_type,
            content_disposition=content_disposition,
            cache_control=cache_control,
            tags=tags,
            storage_class=storage_class,
            sse=sse,
            sse_key_id=sse_key_id,
        )
        store, key = self._checked(ref, settings)
        self._format(store, format)  # a bad format fails here, not in the background
        return EncryptingWriter(
            self,
            (store, key),
            encryption_context=encryption_context,
            format=format,
            content_length=content_length,
            metadata=metadata,
            settings=settings,
        )

    def download_file(
        self,
        ref: ObjectRef,
        path: str | os.PathLike[str],
        *,
        callback: Callback | None = None,
        encryption_context: Mapping[str, str] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
    ) -> HeadResult:
        """Decrypt an object into a local file, atomically.

        The plaintext goes to a temporary file beside ``path`` (``.NAME.<random>.cse-partial``, mode 0600),
        which is renamed into place only after the whole object verified. On any failure, no file (and no
        partial file) is left at ``path``; partials that a killed download left are removed by the next
        download to the same ``path`` (see :mod:`cse.partials`).

        With ``checkpoint`` (a file path; OSS V2 and cse-v1 objects), the object is read in parts, in
        parallel, into ``PATH.cse-partial``, and a failed or killed download continues where it stopped
        when run again, if the object did not change (see :mod:`cse.transfer`).
        """
        target = Path(path)
        if checkpoint is not None:
            remove_stale_partials(target)
            return transfer.download_file_in_parts(
                self,
                self._open(ref, encryption_context),
                target,
                checkpoint=Path(checkpoint),
                callback=callback,
            )
        directory = target.parent if str(target.parent) else Path(".")
        obj = self._open(ref, encryption_context, whole=True)
        try:
            fd, tmp = create_partial(target)  # removes stale partials of a killed download to target
        except OSError as exc:
            obj.close()
            raise ConfigurationError(f"cannot write into {directory}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                for piece in self._stream(obj, 0, obj.size - 1):
                    fh.write(piece)
                    if callback is not None:
                        callback(len(piece))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            obj.close()
        return HeadResult(
            obj.store.url(obj.key),
            obj.size,
            obj.info.size,
            obj.info.etag,
            obj.envelope,
            dict(obj.info.metadata),
            obj.info.settings,
        )

    # ------------------------------------------------------------------------------------------ the rest

    def delete(self, ref: ObjectRef) -> None:
        """Delete an object (absent objects are not an error)."""
        store, key = self.resolve(ref)
        store.delete(key)

    def list(self, ref: ObjectRef) -> Iterator[ObjectInfo]:
        """The objects under a URL prefix, as the store lists them (stored sizes)."""
        store, prefix = self.resolve(ref)
        return store.list(prefix)

    def rewrap(
        self, ref: ObjectRef, *, to_keys: Sequence[KeyProvider | str], dst: ObjectRef | None = None
    ) -> HeadResult:
        """Re-wrap an object's content key for ``to_keys`` without touching its ciphertext.

        The new metadata is written by a server-side copy with metadata replace (onto ``dst``, or in place),
        which keeps the object's settings (server-side encryption, content type, storage class, tags).
        After it, the old key is no longer needed to read the object.
        """
        return self._rewrap(ref, to_keys, dst, None, ObjectSettings())

    def _rewrap(
        self,
        ref: ObjectRef,
        to_keys: Sequence[KeyProvider | str],
        dst: ObjectRef | None,
        metadata: Mapping[str, str] | None,
        settings: ObjectSettings,
    ) -> HeadResult:
        """:meth:`rewrap`, with the user metadata replaced by ``metadata`` if given, and the settings set in
        ``settings`` replacing the source's."""
        dst_store, dst_key = self.resolve(dst) if dst is not None else self.resolve(ref)
        if settings:
            dst_store.check_settings(settings)
        obj = self._open(ref)
        fmt = self._detect(obj.info.metadata, obj.store.url(obj.key))
        envelope = self.rewrapped_envelope(obj.envelope, obj.material, fmt, to_keys)
        if dst_store is not obj.store:
            raise ConfigurationError("rewrap copies within one store; use copy() to move between stores")
        # Keep the user's own metadata (unless replaced); replace every field of the old envelope's encoding.
        old_fields = fmt.encode(obj.envelope).keys()
        if metadata is None:
            kept = {k: v for k, v in obj.info.metadata.items() if k not in old_fields}
        else:
            kept = dict(metadata)
            _check_metadata(fmt, envelope, kept)
        kept.update(fmt.encode(envelope))
        info = copy_object(obj.store, obj.key, dst_key, kept, settings)
        return HeadResult(
            obj.store.url(dst_key), obj.size, info.size, info.etag, envelope, kept, info.settings
        )

    def rewrapped_envelope(
        self,
        envelope: Envelope,
        material: ContentMaterial,
        fmt: Format,
        to_keys: Sequence[KeyProvider | str],
    ) -> Envelope:
        """``envelope`` with its content key (and IV, for formats that wrap it) wrapped anew by ``to_keys``,
        as ``fmt`` records keys. The content parameters, and so the ciphertext, stay as they are."""
        providers = [self._provider(k) for k in to_keys]
        if not providers:
            raise ConfigurationError("rewrap needs at least one new key")
        if len(providers) > 1 and fmt.name != "cse-v1":
            raise ConfigurationError(f"the {fmt.name} format records one wrapped key; give one new key")
        wrapped: list[WrappedKey] = []
        for provider in providers:
            request = KeyRequest(
                wrap_algorithm=fmt.choose_wrap_algorithm(provider),
                content_algorithm=envelope.content_algorithm,
                encryption_context=envelope.encryption_context,
                material_description=provider.material_description,
            )
            iv = material.iv if fmt.wraps_iv else None
            wrapped.append(
                WrappedKey(
                    wrap_algorithm=request.wrap_algorithm,
                    ciphertext=provider.wrap(material.key, request),
                    wrapped_iv=provider.wrap(iv, request) if iv is not None else None,
                    key_id=provider.key_id,
                    provider=provider.scheme,
                    material_description=dict(provider.material_description),
                )
            )
        return envelope.model_copy(update={"format": fmt.name, "wrapped_keys": tuple(wrapped)})

    def copy(
        self,
        src: ObjectRef,
        dst: ObjectRef,
        *,
        to_keys: Sequence[KeyProvider | str] | None = None,
        format: str | None = None,
        callback: Callback | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        content_disposition: str | None = None,
        cache_control: str | None = None,
        tags: Mapping[str, str] | None = None,
        storage_class: str | None = None,
        sse: ServerSideEncryption | str | None = None,
        sse_key_id: str | None = None,
    ) -> PutResult | HeadResult:
        """Copy an encrypted object.

        Within one store and format, the ciphertext is copied server-side (re-wrapped for ``to_keys`` if
        given; each of them wraps the content key where the format records several). Otherwise the object
        is decrypted, verified and re-encrypted in the destination's format: for objects authenticated only
        as a whole, the destination upload completes only after the source's tag verified, so an altered
        source never lands.

        The copy keeps the source's settings (server-side encryption, content type, disposition, cache
        control, storage class, tags); each one given here (as :meth:`put` takes them) replaces the
        source's. Across kinds of store (S3 to OSS) the rule of :mod:`cse.settings` applies: a foreign
        KMS key id is dropped, storage classes are mapped, and a server-side encryption mode the
        destination lacks is refused unless ``sse`` names another. ``metadata`` replaces the user
        metadata (a server-side copy keeps the source's otherwise; a re-encrypting copy writes none).
        """
        override = object_settings(
            content_type=content_type,
            content_disposition=content_disposition,
            cache_control=cache_control,
            tags=tags,
            storage_class=storage_class,
            sse=sse,
            sse_key_id=sse_key_id,
        )
        src_store, src_key = self.resolve(src)
        dst_store, dst_key = self._checked(dst, override)
        # Also refuses what is not an encrypted object.
        head = _head(src_store, src_key, self.allow_legacy, bucket=False)
        if src_store is dst_store and (
            format is None or _full_format_name(format, dst_store) == head.envelope.format
        ):
            result: PutResult | HeadResult
            if to_keys:
                result = self._rewrap((src_store, src_key), to_keys, (dst_store, dst_key), metadata, override)
            else:
                fmt = self._detect(head.metadata, head.url)
                new_metadata = None
                if metadata is not None:
                    _check_metadata(fmt, head.envelope, metadata)
                    new_metadata = {**metadata, **fmt.encode(head.envelope)}
                info = copy_object(src_store, src_key, dst_key, new_metadata, override)
                url = dst_store.url(dst_key)
                result = HeadResult(
                    url,
                    head.size,
                    info.size,
                    info.etag,
                    head.envelope,
                    new_metadata if new_metadata is not None else head.metadata,
                    info.settings,
                )
            if callback is not None:
                callback(head.size)
            return result
        source = replace(head.settings, tags=src_store.get_tags(src_key))
        settings = carry_settings(source, src_store, dst_store, override, head.url)
        obj = self._open((src_store, src_key), whole=True)
        writer = (
            self
            if not to_keys
            else EncryptionClient(
                [*to_keys],
                wrap_keys=[*to_keys],
                format=self.format,
                encryption_context=self.encryption_context,
                config=self.config,
            )
        )
        stream = _IterReader(self._stream(obj, 0, obj.size - 1))
        try:
            return writer._put(
                (dst_store, dst_key),
                stream,
                format=format,
                content_length=obj.size,
                encryption_context=obj.envelope.encryption_context,
                callback=callback,
                metadata=metadata,
                settings=settings,
            )
        finally:
            obj.close()

    def close(self) -> None:
        """Close the stores this client opened."""
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()

    def __enter__(self) -> EncryptionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_mac(
    envelope: Envelope, material: ContentMaterial, plaintext: memoryview
) -> tuple[Envelope, memoryview]:
    """The envelope of a one-request put, with cse's plaintext MAC where the content cipher has no integrity
    of its own (AES-CTR, OSS V2: see :func:`cse.content.plaintext_mac`); and the plaintext."""
    if envelope.content_algorithm == ContentAlgorithm.AES_CTR and material.iv is not None:
        envelope = envelope.model_copy(update={"plaintext_mac": plaintext_mac(material, plaintext)})
    return envelope, plaintext


def _describe_wrapped(wrapped: WrappedKey) -> str:
    parts = [wrapped.wrap_algorithm]
    if wrapped.provider:
        parts.append(f"provider {wrapped.provider}")
    if wrapped.key_id:
        parts.append(f"key id {wrapped.key_id}")
    if wrapped.material_description:
        parts.append(f"material description {wrapped.material_description}")
    return ", ".join(parts)


def _readinto(body: BinaryIO, view: memoryview) -> int:
    readinto = getattr(body, "readinto", None)
    if readinto is not None:
        got = 0
        while got < len(view):
            n = readinto(view[got:])
            if not n:
                break
            got += n
        return got
    data = body.read(len(view))
    view[: len(data)] = data
    return len(data)


class _IterReader(io.RawIOBase):
    """A read-only raw stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[memoryview]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class DecryptingReader(io.RawIOBase):
    """File-like access to an object's plaintext, from :meth:`EncryptionClient.open`."""

    def __init__(self, client: EncryptionClient, obj: _Decrypted) -> None:
        super().__init__()
        self._client = client
        self._obj = obj
        self._pos = 0
        self._stream: _IterReader | None = None
        self._buffer: io.BytesIO | None = None
        auth = obj.codec.authentication
        self._seekable = auth != "object" or not client.delayed_authentication
        if auth == "object" and not client.delayed_authentication:
            client._check_buffer_cap(obj)
            buf = io.BytesIO()
            for piece in client._stream(obj, 0, obj.size - 1):
                buf.write(piece)
            buf.seek(0)
            self._buffer = buf

    @property
    def size(self) -> int:
        """The plaintext size in bytes."""
        return self._obj.size

    @property
    def envelope(self) -> Envelope:
        """The object's envelope."""
        return self._obj.envelope

    def readable(self) -> bool:
        """Always true."""
        return True

    def seekable(self) -> bool:
        """True unless streaming a whole-object-authenticated object with delayed authentication."""
        return self._seekable

    def tell(self) -> int:
        """The current plaintext position."""
        return self._buffer.tell() if self._buffer is not None else self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to a plaintext position; the next read fetches from there."""
        if not self._seekable:
            raise io.UnsupportedOperation("this stream is not seekable (delayed authentication)")
        if self._buffer is not None:
            return self._buffer.seek(offset, whence)
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._obj.size}[whence]
        new = base + offset
        if new < 0:
            raise ValueError("negative seek position")
        if new != self._pos:
            self._pos = new
            self._stream = None
        return self._pos

    def readinto(self, buffer: Any) -> int:
        """Read plaintext into ``buffer``."""
        view = memoryview(buffer).cast("B")
        if self._buffer is not None:
            return self._buffer.readinto(view)
        if self._pos >= self._obj.size or not len(view):
            return 0
        if self._stream is None:
            self._stream = _IterReader(self._client._stream(self._obj, self._pos, self._obj.size - 1))
        n = self._stream.readinto(view)
        self._pos += n
        return n

    def read_at(self, offset: int, size: int) -> bytes:
        """The verified plaintext bytes ``offset .. offset + size - 1`` (fewer only at the end), fetched by
        one ranged get of just the segments that hold them; the position does not move. Thread-safe.

        For objects authenticated only as a whole, the bytes come from the plaintext verified at open.
        """
        if offset < 0 or size < 0:
            raise ValueError("read_at takes a non-negative offset and size")
        if self.closed:
            raise ValueError("I/O operation on a closed reader")
        if not self._seekable:
            raise io.UnsupportedOperation("this stream is not seekable (delayed authentication)")
        end = min(offset + size, self._obj.size)
        if end <= offset:
            return b""
        if self._buffer is not None:
            with self._buffer.getbuffer() as view:
                return bytes(view[offset:end])
        out = io.BytesIO()
        for piece in self._client._stream(self._obj, offset, end - 1):
            out.write(piece)
        return out.getvalue()

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left if negative); fewer only at the end."""
        if size is None or size < 0:
            size = max(0, self._obj.size - self.tell())
        out = bytearray(size)
        view = memoryview(out)
        got = 0
        while got < size:
            n = self.readinto(view[got:])
            if not n:
                break
            got += n
        del view
        return bytes(out[:got])

    def readall(self) -> bytes:
        """Read to the end."""
        return self.read(-1)

    def close(self) -> None:
        """Release the stream."""
        self._stream = None
        self._buffer = None
        super().close()


class _WriteAborted(Exception):
    """Raised inside ``put`` (from the writer's chunk iterator) to abort the upload."""


_END = object()
_ABORT = object()


class _Upload:
    """What an :class:`EncryptingWriter` shares with its upload thread. The thread holds this, not the
    writer, so that an abandoned writer can be collected (and then aborts)."""

    def __init__(self) -> None:
        self.queue: queue.Queue[object] = queue.Queue(maxsize=4)
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.result: PutResult | None = None

    def chunks(self) -> Iterator[memoryview]:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if item is _ABORT:
                raise _WriteAborted()
            assert isinstance(item, memoryview)
            yield item

    def run(self, client: EncryptionClient, ref: ObjectRef, options: dict[str, Any]) -> None:
        try:
            self.result = client._put(ref, self.chunks(), **options)
        except BaseException as exc:  # handed to the writing thread
            self.error = exc
        finally:
            self.done.set()

    def send(self, item: object) -> None:
        """Queue ``item`` for the upload; raise the upload's error if it ended."""
        while True:
            if self.done.is_set():
                self.raise_error()
                raise EncryptionError("the upload ended before the stream was closed")
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def abort(self) -> None:
        """Tell the upload to abort (it aborts a multipart upload and stores nothing)."""
        while not self.done.is_set():
            try:
                self.queue.put(_ABORT, timeout=0.1)
                return
            except queue.Full:
                continue

    def raise_error(self) -> None:
        error = self.error
        if error is not None and not isinstance(error, _WriteAborted):
            raise error


class EncryptingWriter(io.RawIOBase):
    """A write-only stream that encrypts into an object, from :meth:`EncryptionClient.open_writer`.

    Written bytes are handed to :meth:`EncryptionClient.put` running in a background thread (so the one
    multipart engine serves this writer too), through a queue of at most four chunks: ``write`` blocks while
    the upload catches up. The object appears only when :meth:`close` returns. :meth:`abort` (also called
    when an exception leaves a ``with`` block, and when the writer is garbage-collected unclosed) aborts the
    upload: nothing is left. An upload error is raised by the next ``write`` or by ``close``.
    """

    def __init__(
        self,
        client: EncryptionClient,
        ref: ObjectRef,
        *,
        encryption_context: Mapping[str, str] | None = None,
        format: str | None = None,
        content_length: int | None = None,
        metadata: Mapping[str, str] | None = None,
        settings: ObjectSettings | None = None,
    ) -> None:
        """Start the upload of ``ref`` (use :meth:`EncryptionClient.open_writer`)."""
        super().__init__()
        self._chunk = client.config.chunk_size
        self._written = 0
        self._finished = False
        self._upload = _Upload()
        options = {
            "encryption_context": encryption_context,
            "format": format,
            "content_length": content_length,
            "callback": None,
            "metadata": metadata,
            "settings": settings or ObjectSettings(),
        }
        self._thread = threading.Thread(
            target=self._upload.run, args=(client, ref, options), name="cse-writer", daemon=True
        )
        self._thread.start()

    @property
    def result(self) -> PutResult | None:
        """What was stored, once :meth:`close` returned (``None`` before, and after an abort)."""
        return self._upload.result

    def writable(self) -> bool:
        """Always true."""
        return True

    def tell(self) -> int:
        """Plaintext bytes written so far."""
        return self._written

    def write(self, data: Any) -> int:
        """Encrypt and send ``data`` (bytes-like); returns its length. Blocks while the upload catches up."""
        if self.closed or self._finished:
            raise ValueError("write to a closed writer")
        # bytes are immutable and can be sent as they are; other buffers are copied, as the caller may
        # reuse them once write returns.
        blob = data if isinstance(data, bytes) else memoryview(data).cast("B").tobytes()
        whole = memoryview(blob)
        for start in range(0, len(whole), self._chunk):
            self._upload.send(whole[start : start + self._chunk])
        self._written += len(whole)
        return len(whole)

    def close(self) -> None:
        """Finish the upload: the object exists once this returns. Raises the upload's error, if any."""
        if self.closed:
            return
        try:
            if not self._finished:
                self._finished = True
                self._upload.send(_END)
                self._thread.join()
                self._upload.raise_error()
        finally:
            super().close()

    def abort(self) -> None:
        """Abandon the upload: no object is written, and a multipart upload is aborted. Idempotent."""
        if self.closed:
            return
        try:
            if not self._finished:
                self._finished = True
                self._upload.abort()
                self._thread.join()
        finally:
            super().close()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Close on success; abort if an exception is leaving the block."""
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # An unclosed writer is abandoned, never committed: its data may be incomplete.
        with contextlib.suppress(Exception):
            self.abort()
