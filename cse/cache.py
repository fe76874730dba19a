"""A bounded cache of data keys, so that many small objects share one key-service call.

Without a cache, every new object costs one ``GenerateDataKey`` at the key service. With a
:class:`DataKeyCache` given to :class:`~cse.client.EncryptionClient` (``key_cache=``), the content key of a
new object is taken from the cache while the cached key is young enough and has protected few enough objects
and bytes; then a fresh key is made. See ``docs/data-key-cache.md`` for the security trade-off.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cse.exceptions import ConfigurationError

if TYPE_CHECKING:
    from cse.providers import DataKey, KeyProvider, KeyRequest

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_OBJECTS",
    "MAX_OBJECTS_LIMIT",
    "MAX_PARTITIONS",
    "DataKeyCache",
]

#: The default age, in seconds, after which a cached data key is no longer used.
DEFAULT_MAX_AGE = 300.0
#: The default number of objects one cached data key encrypts.
DEFAULT_MAX_OBJECTS = 1000
#: The default number of plaintext bytes one cached data key encrypts (1 TiB).
DEFAULT_MAX_BYTES = 1 << 40
#: The most objects one key may encrypt: 2**32, the bound for random 96-bit GCM IVs (and the 96 random
#: bits of the OSS CTR IVs), beyond which an IV repeats under one key with more than negligible probability.
MAX_OBJECTS_LIMIT = 1 << 32
#: The most partitions (provider, key, algorithms, encryption context ...) the cache tracks; past it the
#: expired and then the oldest keys are forgotten.
MAX_PARTITIONS = 4096

_Partition = tuple[int, str, str, str, int, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


@dataclass(eq=False)
class _Entry:
    """One cached key; ``plaintext`` is a bytearray so that :meth:`DataKeyCache.clear` can zero it."""

    plaintext: bytearray = field(repr=False)
    ciphertext: bytes = field(repr=False)
    key_id: str | None
    created: float
    objects: int = 0
    bytes_used: int = 0

    def wipe(self) -> None:
        """Overwrite the plaintext key with zeros (the ``bytes`` copies handed out cannot be)."""
        self.plaintext[:] = bytes(len(self.plaintext))


@dataclass(eq=False)
class _Slot:
    """A partition's lock (so one partition's key-service call does not hold up the others) and entry."""

    #: Held so that ``id(provider)`` in the partition cannot be reused while the slot exists.
    provider: KeyProvider = field(repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    entry: _Entry | None = None
    #: Set when the slot left the cache (:meth:`DataKeyCache.clear`, eviction); it is never filled again.
    retired: bool = False

    def drop(self) -> None:
        """Forget the entry, zeroing its key (call with :attr:`lock` held)."""
        if self.entry is not None:
            self.entry.wipe()
            self.entry = None

    def retire(self) -> None:
        """Drop the entry for good (call with :attr:`lock` held)."""
        self.drop()
        self.retired = True


def _positive_int(name: str, value: object, upper: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive whole number, not {value!r}")
    if upper is not None and value > upper:
        raise ConfigurationError(f"{name} must be at most {upper}, not {value!r}")
    return value


def _items(mapping: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items()))


class DataKeyCache:
    """A thread-safe, bounded cache of data keys for :class:`~cse.client.EncryptionClient` (``key_cache=``).

    A cached key is reused only for the same partition: the same provider object, its ``key_id``, and the
    request's wrap algorithm, content algorithm, key length, encryption context and material description.
    Each use counts one object and the object's plaintext length. A cached key is never used past a limit:

    :param max_age: seconds after its creation that a key is used (default 300).
    :param max_objects: objects one key encrypts (default 1000); at most ``2**32``, because the formats
        draw their GCM IVs (and the 96 random bits of their CTR IVs) at random, and past ``2**32`` objects
        under one key an IV would repeat with more than negligible probability, which breaks GCM and CTR.
    :param max_bytes: plaintext bytes one key encrypts in all (default ``2**40``, 1 TiB).
    :param clock: the monotonic clock the ages are measured with (for tests); default :func:`time.monotonic`.

    Invalid limits raise :class:`~cse.exceptions.ConfigurationError`. Plaintext keys stay in process
    memory until they expire and are replaced, or :meth:`clear` drops (and zeroes) them. ``repr`` never
    shows key material.
    """

    def __init__(
        self,
        max_age: float = DEFAULT_MAX_AGE,
        max_objects: int = DEFAULT_MAX_OBJECTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (
            isinstance(max_age, bool)
            or not isinstance(max_age, (int, float))
            or not math.isfinite(max_age)
            or max_age <= 0
        ):
            raise ConfigurationError(f"max_age must be a positive number of seconds, not {max_age!r}")
        self.max_age = float(max_age)
        self.max_objects = _positive_int("max_objects", max_objects, MAX_OBJECTS_LIMIT)
        self.max_bytes = _positive_int("max_bytes", max_bytes)
        if not callable(clock):
            raise ConfigurationError("clock must be a callable returning seconds")
        self._clock = clock
        self._lock = threading.Lock()
        self._slots: dict[_Partition, _Slot] = {}
        self._hits = 0
        self._misses = 0
        self._last_sweep = clock()

    # -- statistics ------------------------------------------------------------------------------------

    @property
    def hits(self) -> int:
        """How many data keys were served from the cache."""
        with self._lock:
            return self._hits

    @property
    def misses(self) -> int:
        """How many data keys were made by the provider (``generate_data_key`` calls)."""
        with self._lock:
            return self._misses

    def __len__(self) -> int:
        """The number of cached keys (usable or not yet replaced)."""
        with self._lock:
            return sum(1 for slot in self._slots.values() if slot.entry is not None)

    def __repr__(self) -> str:
        return (
            f"DataKeyCache(max_age={self.max_age!r}, max_objects={self.max_objects!r}, "
            f"max_bytes={self.max_bytes!r}, entries={len(self)}, hits={self.hits}, misses={self.misses})"
        )

    # -- use -------------------------------------------------------------------------------------------

    @staticmethod
    def _partition(provider: KeyProvider, request: KeyRequest) -> _Partition:
        return (
            id(provider),
            str(provider.key_id),
            str(request.wrap_algorithm),
            str(request.content_algorithm),
            int(request.key_length),
            _items(request.encryption_context),
            _items(request.material_description),
        )

    def _usable(self, entry: _Entry, length: int) -> bool:
        return (
            self._clock() - entry.created < self.max_age
            and entry.objects < self.max_objects
            and entry.bytes_used + length <= self.max_bytes
        )

    def data_key(self, provider: KeyProvider, request: KeyRequest, length: int) -> DataKey:
        """A data key for one object of ``length`` plaintext bytes: a cached one of the same partition while
        it is within every limit, else a new one from ``provider.generate_data_key(request)``, which then
        replaces it in the cache. Either way the use is charged one object and ``length`` bytes.

        An object larger than ``max_bytes`` gets a fresh key that is not cached. Errors of the provider
        propagate; nothing is cached then.
        """
        from cse.providers import DataKey

        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ConfigurationError(f"the plaintext length must be a whole number >= 0, not {length!r}")
        if length > self.max_bytes:  # no key may take it: a key of its own, leaving the cached one be
            fresh = provider.generate_data_key(request)
            with self._lock:
                self._misses += 1
            _log_use("miss", provider, length, "larger than max_bytes")
            return fresh
        partition = self._partition(provider, request)
        while True:
            with self._lock:
                slot = self._slots.get(partition)
                if slot is None:
                    slot = self._slots[partition] = _Slot(provider)
            with slot.lock:
                if slot.retired:  # cleared or evicted while we waited: take the partition's new slot
                    continue
                entry = slot.entry
                if entry is not None and self._usable(entry, length):
                    entry.objects += 1
                    entry.bytes_used += length
                    key = DataKey(
                        plaintext=bytes(entry.plaintext), ciphertext=entry.ciphertext, key_id=entry.key_id
                    )
                    if entry.objects >= self.max_objects or entry.bytes_used >= self.max_bytes:
                        slot.drop()  # exhausted: do not keep the key in memory any longer
                    with self._lock:
                        self._hits += 1
                    _log_use("hit", provider, length, None)
                    return key
                slot.drop()
                fresh = provider.generate_data_key(request)
                with self._lock:
                    self._misses += 1
                _log_use("miss", provider, length, "expired or used up" if entry is not None else "empty")
                if self.max_objects > 1 and length < self.max_bytes:
                    slot.entry = _Entry(
                        plaintext=bytearray(fresh.plaintext),
                        ciphertext=fresh.ciphertext,
                        key_id=fresh.key_id,
                        created=self._clock(),
                        objects=1,
                        bytes_used=length,
                    )
            self._sweep()
            return fresh

    def _sweep(self) -> None:
        """Forget expired keys, at most every ``max_age`` seconds, and the oldest beyond
        :data:`MAX_PARTITIONS` (a fresh encryption context per object would otherwise grow the cache)."""
        now = self._clock()
        with self._lock:
            if len(self._slots) <= MAX_PARTITIONS and now - self._last_sweep < self.max_age:
                return
            self._last_sweep = now
            candidates = list(self._slots.items())
        stale: list[tuple[float, _Partition, _Slot]] = []
        for partition, slot in candidates:
            if not slot.lock.acquire(blocking=False):
                continue  # in use right now: not stale
            try:
                entry = slot.entry
                created = entry.created if entry is not None else -math.inf
                expired = entry is None or now - entry.created >= self.max_age
                stale.append((-math.inf if expired else created, partition, slot))
            finally:
                slot.lock.release()
        stale.sort(key=lambda item: item[0])
        excess = max(0, len(candidates) - MAX_PARTITIONS * 3 // 4)
        victims = [item for item in stale if item[0] == -math.inf]
        victims += [item for item in stale if item[0] != -math.inf][: max(0, excess - len(victims))]
        for _, partition, slot in victims:
            with slot.lock:
                with self._lock:
                    if self._slots.get(partition) is slot:
                        del self._slots[partition]
                slot.retire()

    def clear(self) -> None:
        """Drop every cached key, overwriting the cached plaintext keys with zeros.

        (Keys already handed out to objects being written are ``bytes`` and cannot be zeroed.)
        """
        with self._lock:
            slots = list(self._slots.values())
            self._slots.clear()
        for slot in slots:
            with slot.lock:
                slot.retire()


def _log_use(outcome: str, provider: KeyProvider, length: int, reason: str | None) -> None:
    from cse.log import event, get_logger

    event(
        get_logger("cache"),
        logging.DEBUG,
        f"data-key cache {outcome}",
        key=provider.describe(),
        bytes=length,
        reason=reason,
    )
