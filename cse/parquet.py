"""Parquet modular encryption with any cse key: a pyarrow ``CryptoFactory`` whose KMS client is cse.

Needs the ``parquet`` extra (``pip install 'cse[parquet]'``, which brings pyarrow); ``import cse`` does not
import this module or pyarrow. See ``docs/parquet.md``.

Parquet modular encryption (``pyarrow.parquet.encryption``) encrypts a file's columns and footer with data
keys that pyarrow makes; it asks a *KMS client* to wrap those keys (or, with double wrapping, the key
encryption keys that wrap them) with *master keys* it names by identifier. This module's KMS client maps
each identifier to a cse key provider:

- an identifier given in ``keys`` (``{"pii": "aws-kms://alias/pii", "footer": "rsa:///keys/k.pem"}``,
  or a :class:`~cse.providers.KeyProvider`) is that key;
- else an AWS KMS key id, ``mrk-...`` id, ``alias/NAME`` or key/alias ARN is that AWS KMS key, in the
  region ``custom_kms_conf["aws_region_name"]`` when given, else the usual AWS chain.

pyarrow splits its column-keys property at ``:``, so an ARN or a key URI cannot name a column key: give it a
short name in ``keys``. Wrapping (the ``wrapped`` text pyarrow stores in the file's key material):

- ``aws-kms``: ``base64(Encrypt(KeyId, Plaintext).CiphertextBlob)``, no encryption context, exactly what
  hand-written pyarrow KMS clients return, so files open both ways;
- ``aliyun-kms``: the ``CiphertextBlob`` text of ``Encrypt(KeyId, base64(key))`` (already base64 text);
- any other provider (``rsa``: RSA-OAEP-SHA256; ``aes``: AES-256-GCM): ``base64`` of the provider's
  :meth:`~cse.providers.KeyProvider.wrap` with its first writable wrap algorithm and the content algorithm
  :data:`CONTENT_ALGORITHM` (the AES key's associated data).
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import hashlib
import io
import threading
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from cse.exceptions import (
    ConfigurationError,
    CseError,
    DecryptionError,
    EncryptionError,
    KeyProviderError,
    MissingExtraError,
)
from cse.providers import DataKey, KeyProvider, KeyRequest

if TYPE_CHECKING:
    from cse.cache import DataKeyCache
    from cse.stores.base import Store

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyarrow.parquet.encryption as pe
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError(
        f"cse.parquet needs pyarrow, which could not be imported ({_exc}); install it with: "
        f"pip install 'cse[parquet]'"
    ) from _exc

__all__ = [
    "CONTENT_ALGORITHM",
    "CseCryptoFactory",
    "CseKmsClient",
    "crypto_factory",
    "decryption_configuration",
    "encryption_configuration",
    "read_table",
    "write_dataset",
    "write_table",
]

#: The content algorithm named in the key requests of this module (an AES key's associated data).
CONTENT_ALGORITHM = "parquet-modular-encryption"

KeySpec = str | KeyProvider
Keys = Mapping[str, KeySpec]

_COLON_HELP = (
    "pyarrow splits its column-keys property at ':', so a key URI or an ARN cannot be a master key "
    "identifier; give the key a short name and map it: keys={{{name!r}: {value!r}}}"
)


def _check_identifier(identifier: object, what: str = "master key identifier") -> str:
    if not isinstance(identifier, str) or not identifier:
        raise ConfigurationError(f"a {what} is a non-empty string, not {identifier!r}")
    if any(c in identifier for c in ":;,") or identifier != identifier.strip():
        raise ConfigurationError(
            f"the {what} {identifier!r} contains ':', ';', ',' or surrounding spaces: "
            + _COLON_HELP.format(name="pii", value=identifier if ":" in identifier else "aws-kms://alias/pii")
        )
    return identifier


def _aws_key_reference(identifier: str) -> bool:
    """Whether ``identifier`` names an AWS KMS key (id, mrk id, alias, ARN), without importing boto3."""
    try:
        from cse_aws_kms.names import try_parse_key_reference
    except ImportError:
        return False
    return try_parse_key_reference(identifier) is not None


class _Unwrapper(KeyProvider):
    """Adapts one master key's unwrap to :class:`~cse.cache.DataKeyCache`: a cached "data key" is the
    plaintext of one wrapped text, its partition the wrapped text's digest. One adapter per cache and key
    (URI, provider object, or AWS KMS identifier and region), shared by every factory using that cache."""

    scheme: ClassVar[str] = "parquet-unwrap"
    wrap_algorithms: ClassVar[tuple[str, ...]] = ("parquet",)

    def __init__(self, provider: KeyProvider, label: str) -> None:
        self.provider = provider
        self._label = label
        self.pending: dict[str, str] = {}
        self.lock = threading.Lock()

    @classmethod
    def from_uri(cls, uri: str) -> KeyProvider:
        """Not built from URIs."""
        raise ConfigurationError("internal adapter; not built from a key URI")

    @property
    def key_id(self) -> str:
        """The key's label (never secret)."""
        return self._label

    def generate_data_key(self, request: KeyRequest) -> DataKey:
        """Unwrap the wrapped text the request names (the cache's miss path)."""
        wrapped = self.pending[request.material_description["digest"]]
        plaintext = _unwrap_with(self.provider, wrapped)
        return DataKey(plaintext=plaintext, ciphertext=wrapped.encode("utf-8"), key_id=self._label)

    def wrap(self, plaintext: bytes, request: KeyRequest) -> bytes:
        """Not used."""
        raise KeyProviderError("internal adapter: wrap is not used")

    def unwrap(self, ciphertext: bytes, request: KeyRequest) -> bytes:
        """Not used."""
        raise KeyProviderError("internal adapter: unwrap is not used")


_ADAPTERS: weakref.WeakKeyDictionary[Any, dict[str, _Unwrapper]] = weakref.WeakKeyDictionary()
_ADAPTERS_LOCK = threading.Lock()


def _adapter(cache: DataKeyCache, label: str, provider: KeyProvider) -> _Unwrapper:
    with _ADAPTERS_LOCK:
        adapters = _ADAPTERS.setdefault(cache, {})
        found = adapters.get(label)
        if found is None:
            found = adapters[label] = _Unwrapper(provider, label)
        return found


def _request(provider: KeyProvider, length: int = 32) -> KeyRequest:
    writable = [a for a in provider.wrap_algorithms if a not in provider.unwrap_only_algorithms]
    if not writable:
        raise ConfigurationError(f"the key provider {provider.describe()} implements no wrap algorithm")
    return KeyRequest(
        wrap_algorithm=writable[0],
        content_algorithm=CONTENT_ALGORITHM,
        material_description=dict(provider.material_description),
        key_length=length,
    )


def _unwrap_with(provider: KeyProvider, wrapped_key: str) -> bytes:
    if provider.scheme == "aliyun-kms":
        try:
            data = wrapped_key.encode("ascii")
        except UnicodeEncodeError:
            raise DecryptionError() from None
        return provider.unwrap(data, _request(provider, 16))
    try:
        data = base64.b64decode(wrapped_key, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError() from None
    if provider.scheme == "aws-kms":
        plaintext: bytes = provider.decrypt_secret(data)  # type: ignore[attr-defined]
        return plaintext
    return provider.unwrap(data, _request(provider, 16))


class CseKmsClient(pe.KmsClient):  # type: ignore[misc]
    """A pyarrow ``KmsClient`` that wraps and unwraps with cse key providers (see the module docstring).

    ``keys`` maps master key identifiers to key URIs or providers; ``region`` is the AWS region of AWS KMS
    keys named by identifier only (from ``custom_kms_conf["aws_region_name"]``). Errors are cse's:
    :class:`~cse.exceptions.ConfigurationError` for an identifier that names no key,
    :class:`~cse.exceptions.DecryptionError` (opaque) for a wrapped key that does not open,
    :class:`~cse.exceptions.KmsError` when the key service refuses. Thread-safe.
    """

    def __init__(
        self,
        keys: Keys | None = None,
        *,
        region: str | None = None,
        key_cache: DataKeyCache | None = None,
        providers: dict[str, KeyProvider] | None = None,
        lock: threading.Lock | None = None,
    ) -> None:
        super().__init__()
        self._keys: dict[str, KeySpec] = {}
        for identifier, spec in (keys or {}).items():
            _check_identifier(identifier)
            if not isinstance(spec, (str, KeyProvider)):
                raise ConfigurationError(
                    f"keys[{identifier!r}] is a key URI or a KeyProvider, not {type(spec).__name__}"
                )
            self._keys[identifier] = spec
        self._region = region
        self._key_cache = key_cache
        self._providers = providers if providers is not None else {}
        self._lock = lock or threading.Lock()

    def _label(self, identifier: str) -> str:
        spec = self._keys.get(identifier)
        if isinstance(spec, KeyProvider):
            return f"object:{id(spec)}"
        if isinstance(spec, str):
            return f"uri:{spec}"
        return f"aws-kms:{identifier}@{self._region}"

    def provider(self, identifier: str) -> KeyProvider:
        """The key provider of a master key identifier (built once, then shared)."""
        label = self._label(identifier)
        with self._lock:
            found = self._providers.get(label)
        if found is not None:
            return found
        made = self._resolve(identifier)
        with self._lock:
            return self._providers.setdefault(label, made)

    def _resolve(self, identifier: str) -> KeyProvider:
        from cse.registry import open_provider, provider_class

        spec = self._keys.get(identifier)
        if isinstance(spec, KeyProvider):
            return spec
        if isinstance(spec, str):
            return open_provider(spec)
        if isinstance(identifier, str) and _aws_key_reference(identifier):
            cls: Any = provider_class("aws-kms")
            provider: KeyProvider = cls(identifier, region=self._region)
            return provider
        if isinstance(identifier, str) and ":" in identifier:
            raise ConfigurationError(
                f"the master key identifier {identifier!r} is not in keys and is not an AWS KMS key ARN: "
                + _COLON_HELP.format(name="pii", value=identifier)
            )
        known = ", ".join(sorted(self._keys)) or "none"
        raise ConfigurationError(
            f"the master key identifier {identifier!r} names no key: it is not in keys (which has: {known}) "
            f"and is not an AWS KMS key id, mrk- id or alias/NAME; map it with keys={{{identifier!r}: "
            f"'aws-kms://...' or 'rsa:///path/key.pem' ...}}"
        )

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        """Wrap a key pyarrow made with the master key ``master_key_identifier``; returns text."""
        provider = self.provider(master_key_identifier)
        secret = bytes(key_bytes)
        if provider.scheme == "aws-kms":
            blob: bytes = provider.encrypt_secret(secret)  # type: ignore[attr-defined]
            return base64.b64encode(blob).decode("ascii")
        wrapped = provider.wrap(secret, _request(provider, len(secret)))
        if provider.scheme == "aliyun-kms":
            return wrapped.decode("ascii")
        return base64.b64encode(wrapped).decode("ascii")

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        """Unwrap a key with the master key ``master_key_identifier`` (through ``key_cache`` if given)."""
        if self._key_cache is None:
            return _unwrap_with(self.provider(master_key_identifier), wrapped_key)
        adapter = _adapter(
            self._key_cache, self._label(master_key_identifier), self.provider(master_key_identifier)
        )
        digest = hashlib.sha256(wrapped_key.encode("utf-8", "surrogatepass")).hexdigest()
        with adapter.lock:
            adapter.pending[digest] = wrapped_key
        try:
            request = KeyRequest(
                wrap_algorithm="parquet",
                content_algorithm=CONTENT_ALGORITHM,
                material_description={"digest": digest},
            )
            return self._key_cache.data_key(adapter, request, 0).plaintext
        finally:
            with adapter.lock:
                adapter.pending.pop(digest, None)


class CseCryptoFactory(pe.CryptoFactory):  # type: ignore[misc]
    """A pyarrow ``CryptoFactory`` whose KMS client is :class:`CseKmsClient`; made by :func:`crypto_factory`.

    :meth:`call_counts` sums the KMS requests of every key provider it used.
    """

    def __init__(self, keys: Keys | None = None, *, key_cache: DataKeyCache | None = None) -> None:
        self._cse_keys = dict(keys or {})
        for identifier in self._cse_keys:
            _check_identifier(identifier)
        self._cse_key_cache = key_cache
        self._cse_providers: dict[str, KeyProvider] = {}
        self._cse_lock = threading.Lock()
        super().__init__(self._make_client)

    def _make_client(self, config: pe.KmsConnectionConfig) -> CseKmsClient:
        conf = dict(config.custom_kms_conf or {})
        return CseKmsClient(
            self._cse_keys,
            region=conf.get("aws_region_name") or None,
            key_cache=self._cse_key_cache,
            providers=self._cse_providers,
            lock=self._cse_lock,
        )

    def providers(self) -> dict[str, KeyProvider]:
        """The key providers used so far, by master key identifier."""
        with self._cse_lock:
            return dict(self._cse_providers)

    def call_counts(self) -> dict[str, int]:
        """KMS requests made so far by the providers this factory used, by operation (``Encrypt`` ...)."""
        total: dict[str, int] = {}
        seen: set[int] = set()
        for provider in self.providers().values():
            if id(provider) in seen:
                continue
            seen.add(id(provider))
            for operation, count in provider.call_counts().items():
                total[operation] = total.get(operation, 0) + count
        return total


def crypto_factory(keys: Keys | None = None, *, key_cache: DataKeyCache | None = None) -> CseCryptoFactory:
    """A ``pyarrow.parquet.encryption.CryptoFactory`` that wraps Parquet keys with cse key providers.

    ``keys`` maps master key identifiers (no ``:``) to key URIs (``"rsa:///keys/k.pem"``,
    ``"aws-kms://arn:..."``) or :class:`~cse.providers.KeyProvider` objects; identifiers that are AWS KMS
    key ids, ``mrk-`` ids, aliases or ARNs need no entry. ``key_cache``, a :class:`~cse.cache.DataKeyCache`,
    keeps unwrapped master-key results within its limits, so reading many files costs one ``Decrypt`` per
    wrapped key (pyarrow's own ``cache_lifetime`` does the same within one factory).
    """
    return CseCryptoFactory(keys, key_cache=key_cache)


def _column_keys(column_keys: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for identifier, columns in (column_keys or {}).items():
        _check_identifier(identifier, "column key identifier")
        if isinstance(columns, str):
            raise ConfigurationError(
                f"column_keys[{identifier!r}] is a list of column names, not the string {columns!r}"
            )
        out[identifier] = [str(c) for c in columns]
    return out


def _encryption_config(
    footer_key: str,
    column_keys: Mapping[str, Sequence[str]] | None,
    plaintext_footer: bool,
    options: Mapping[str, Any],
) -> pe.EncryptionConfiguration:
    _check_identifier(footer_key, "footer key identifier")
    columns = _column_keys(column_keys)
    settings = dict(options)
    if columns:
        settings["column_keys"] = columns
    else:  # no column keys: the footer key encrypts every column
        settings.setdefault("uniform_encryption", True)
    try:
        return pe.EncryptionConfiguration(
            footer_key=footer_key, plaintext_footer=plaintext_footer, **settings
        )
    except TypeError as exc:
        raise ConfigurationError(f"pyarrow's EncryptionConfiguration refused an option: {exc}") from exc


def _connection(region: str | None) -> pe.KmsConnectionConfig:
    return pe.KmsConnectionConfig(custom_kms_conf={"aws_region_name": region} if region else {})


def encryption_configuration(
    footer_key: str,
    column_keys: Mapping[str, Sequence[str]] | None = None,
    *,
    keys: Keys | None = None,
    plaintext_footer: bool = False,
    key_cache: DataKeyCache | None = None,
    region: str | None = None,
    factory: CseCryptoFactory | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The dict ``wr.s3.to_parquet(encryption_configuration=...)`` takes: ``crypto_factory``,
    ``kms_connection_config`` and ``encryption_config``.

    ``footer_key`` and the keys of ``column_keys`` (``{"pii": ["ssn", "email"]}``) are master key
    identifiers; without ``column_keys`` the footer key encrypts every column (``uniform_encryption``).
    ``options`` go to ``pyarrow.parquet.encryption.EncryptionConfiguration``
    (``encryption_algorithm``, ``double_wrapping``, ``cache_lifetime``, ``data_key_length_bits`` ...).
    ``region`` sets ``custom_kms_conf["aws_region_name"]``.
    """
    return {
        "crypto_factory": factory or crypto_factory(keys, key_cache=key_cache),
        "kms_connection_config": _connection(region),
        "encryption_config": _encryption_config(footer_key, column_keys, plaintext_footer, options),
    }


def decryption_configuration(
    keys: Keys | None = None,
    *,
    key_cache: DataKeyCache | None = None,
    region: str | None = None,
    factory: CseCryptoFactory | None = None,
    cache_lifetime: timedelta | None = None,
) -> dict[str, Any]:
    """The dict ``wr.s3.read_parquet(decryption_configuration=...)`` takes: ``crypto_factory`` and
    ``kms_connection_config`` (and ``decryption_config`` when ``cache_lifetime`` is given)."""
    out: dict[str, Any] = {
        "crypto_factory": factory or crypto_factory(keys, key_cache=key_cache),
        "kms_connection_config": _connection(region),
    }
    if cache_lifetime is not None:
        out["decryption_config"] = pe.DecryptionConfiguration(cache_lifetime=cache_lifetime)
    return out


# -- reading and writing through cse stores ---------------------------------------------------------------


class _StoreReader(io.RawIOBase):
    """A seekable file over one stored object; every read is one ranged get (counted in ``fetched``)."""

    def __init__(self, store: Store, key: str) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._size = store.head(key).size
        self._pos = 0
        self.fetched = 0
        self.requests = 0

    def readable(self) -> bool:
        """Readable."""
        return True

    def seekable(self) -> bool:
        """Seekable."""
        return True

    def tell(self) -> int:
        """The position."""
        return self._pos

    def size(self) -> int:
        """The object's size."""
        return self._size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer`` with one ranged get."""
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        with self._store.get(self._key, self._pos, self._pos + want - 1) as got:
            data = got.body.read()
        n = len(data)
        view[:n] = data
        self._pos += n
        self.fetched += n
        self.requests += 1
        return n


def _factory(keys: Keys | None, key_cache: DataKeyCache | None, factory: CseCryptoFactory | None) -> Any:
    return factory or crypto_factory(keys, key_cache=key_cache)


def _map_arrow_error(exc: BaseException, url: str) -> CseError:
    message = str(exc).lower()
    if "no decryption" in message or "decryption properties" in message or "no keys" in message:
        return DecryptionError(
            f"{url} is an encrypted Parquet file and no keys were given to read it; pass keys= (or a "
            f"crypto factory) with the master keys it was written with"
        )
    return DecryptionError()


def write_table(
    table: pa.Table,
    url: str,
    *,
    footer_key: str,
    column_keys: Mapping[str, Sequence[str]] | None = None,
    keys: Keys | None = None,
    plaintext_footer: bool = False,
    key_cache: DataKeyCache | None = None,
    factory: CseCryptoFactory | None = None,
    region: str | None = None,
    encryption_options: Mapping[str, Any] | None = None,
    **write_options: Any,
) -> str:
    """Write ``table`` as one encrypted Parquet file to a cse store URL (``s3://``, ``oss://``, ``file://``,
    ``memory://``), stored as a plain object (the file protects itself). Returns the URL.

    ``footer_key``/``column_keys``/``keys``/``plaintext_footer`` as for :func:`encryption_configuration`;
    ``encryption_options`` go to pyarrow's ``EncryptionConfiguration``, ``write_options`` to
    ``pyarrow.parquet.write_table``. Every call makes fresh encryption properties.
    """
    from cse.registry import open_store

    config = _encryption_config(footer_key, column_keys, plaintext_footer, dict(encryption_options or {}))
    cf = _factory(keys, key_cache, factory)
    store, key = open_store(url)
    buffer = io.BytesIO()
    try:
        properties = cf.file_encryption_properties(_connection(region), config)
        pq.write_table(table, buffer, encryption_properties=properties, **write_options)
    except CseError:
        raise
    except (OSError, pa.ArrowException) as exc:
        cause = exc.__context__ if isinstance(exc.__context__, CseError) else None
        if cause is not None:
            raise cause from exc
        raise EncryptionError(f"pyarrow could not write the encrypted Parquet file {url}: {exc}") from exc
    store.put(key, buffer.getbuffer(), {})
    return url


def read_table(
    url: str,
    *,
    keys: Keys | None = None,
    columns: Sequence[str] | None = None,
    key_cache: DataKeyCache | None = None,
    factory: CseCryptoFactory | None = None,
    region: str | None = None,
    **read_options: Any,
) -> pa.Table:
    """Read an encrypted Parquet file from a cse store URL; with ``columns``, only those columns' byte
    ranges are fetched (ranged gets).

    Raises the opaque :class:`~cse.exceptions.DecryptionError` for a wrong key or a tampered file, a
    :class:`~cse.exceptions.DecryptionError` saying so when no keys were given,
    :class:`~cse.exceptions.KmsError` when the key service refuses; nothing is returned then.
    """
    from cse.registry import open_store

    cf = _factory(keys, key_cache, factory)
    store, key = open_store(url)
    reader = _StoreReader(store, key)
    try:
        properties = cf.file_decryption_properties(_connection(region))
        return pq.read_table(
            reader,
            columns=list(columns) if columns is not None else None,
            decryption_properties=properties,
            **read_options,
        )
    except CseError:
        raise
    except (OSError, pa.ArrowException) as exc:
        cause = exc.__context__ if isinstance(exc.__context__, CseError) else None
        if cause is not None:
            raise cause from exc
        raise _map_arrow_error(exc, url) from exc
    finally:
        reader.close()


def _partitions(table: pa.Table, partition_cols: Sequence[str]) -> Iterator[tuple[str, pa.Table]]:
    import pyarrow.compute as pc

    if not partition_cols:
        yield "", table
        return
    missing = [c for c in partition_cols if c not in table.column_names]
    if missing:
        raise ConfigurationError(f"partition_cols {missing} are not columns of the table")
    groups = table.select(list(partition_cols)).group_by(list(partition_cols)).aggregate([])
    rest = [c for c in table.column_names if c not in partition_cols]
    for row in groups.to_pylist():
        mask = None
        for col in partition_cols:
            value = row[col]
            cond = pc.is_null(table[col]) if value is None else pc.equal(table[col], value)
            mask = cond if mask is None else pc.and_(mask, cond)
        path = "/".join(
            f"{col}={'__HIVE_DEFAULT_PARTITION__' if row[col] is None else row[col]}"
            for col in partition_cols
        )
        yield path, table.filter(mask).select(rest)


def write_dataset(
    table: pa.Table,
    url_prefix: str,
    *,
    footer_key: str,
    column_keys: Mapping[str, Sequence[str]] | None = None,
    partition_cols: Sequence[str] = (),
    keys: Keys | None = None,
    plaintext_footer: bool = False,
    key_cache: DataKeyCache | None = None,
    factory: CseCryptoFactory | None = None,
    region: str | None = None,
    max_workers: int = 4,
    encryption_options: Mapping[str, Any] | None = None,
    **write_options: Any,
) -> list[str]:
    """Write ``table`` as a Hive-partitioned dataset of encrypted Parquet files under ``url_prefix``
    (``PREFIX/col=value/part-UUID.parquet``), in parallel, each file with fresh encryption properties from
    one shared factory (so pyarrow's "re-using encryption properties" error cannot happen and pyarrow's
    key cache spans the dataset). Returns the URLs written.
    """
    cf = _factory(keys, key_cache, factory)
    prefix = url_prefix.rstrip("/")
    jobs = [
        (f"{prefix}/{path + '/' if path else ''}part-{uuid.uuid4().hex}.parquet", part)
        for path, part in _partitions(table, partition_cols)
    ]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        futures = [
            pool.submit(
                write_table,
                part,
                url,
                footer_key=footer_key,
                column_keys=column_keys,
                plaintext_footer=plaintext_footer,
                factory=cf,
                region=region,
                encryption_options=encryption_options,
                **write_options,
            )
            for url, part in jobs
        ]
        return [f.result() for f in futures]
