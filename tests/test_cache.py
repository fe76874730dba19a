"""The data-key cache (:class:`cse.cache.DataKeyCache`): limits, partitions, threads, and KMS call counts."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import cse
from cse import registry
from cse.cache import MAX_OBJECTS_LIMIT, DataKeyCache
from cse.client import EncryptionClient
from cse.config import CommitmentPolicy
from cse.envelope import ContentAlgorithm, WrapAlgorithm
from cse.exceptions import ConfigurationError, CseError, DecryptionError
from cse.providers import DataKey, KeyProvider, KeyRequest
from cse.stores.memory import MemoryStore

__all__: list[str] = []


class FakeProvider(KeyProvider):
    """Counts ``generate_data_key``; its wrapped keys are numbered, so tests can tell keys apart."""

    scheme = "fake"
    wrap_algorithms = ("fake",)

    def __init__(self, key: str = "fake-key", delay: float = 0.0) -> None:
        self._key = key
        self._delay = delay
        self._lock = threading.Lock()
        self.generated = 0

    @classmethod
    def from_uri(cls, uri: str) -> FakeProvider:
        return cls()

    @property
    def key_id(self) -> str:
        return self._key

    def generate_data_key(self, request: KeyRequest) -> DataKey:
        with self._lock:
            self.generated += 1
            number = self.generated
        if self._delay:
            time.sleep(self._delay)
        return DataKey(
            plaintext=os.urandom(request.key_length), ciphertext=b"wrapped-%d" % number, key_id=self._key
        )

    def wrap(self, plaintext: bytes, request: KeyRequest) -> bytes:
        raise AssertionError("not used")

    def unwrap(self, ciphertext: bytes, request: KeyRequest) -> bytes:
        raise DecryptionError()


def _request(
    context: Mapping[str, str] | None = None,
    material: Mapping[str, str] | None = None,
    content_algorithm: str = ContentAlgorithm.AES_GCM,
    wrap_algorithm: str = "fake",
) -> KeyRequest:
    return KeyRequest(
        wrap_algorithm=wrap_algorithm,
        content_algorithm=content_algorithm,
        encryption_context=dict(context or {}),
        material_description=dict(material or {}),
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -------------------------------------------------------------------------------------------- limits


def test_age_limit() -> None:
    clock = FakeClock()
    cache = DataKeyCache(max_age=10, clock=clock)
    provider = FakeProvider()
    first = cache.data_key(provider, _request(), 1)
    clock.now += 9.9
    assert cache.data_key(provider, _request(), 1).ciphertext == first.ciphertext
    clock.now += 0.1  # exactly max_age old: no longer younger than max_age
    second = cache.data_key(provider, _request(), 1)
    assert second.ciphertext != first.ciphertext
    assert provider.generated == 2
    assert (cache.hits, cache.misses) == (1, 2)
    clock.now += 5
    assert cache.data_key(provider, _request(), 1).ciphertext == second.ciphertext  # the new key's own age


def test_object_limit() -> None:
    cache = DataKeyCache(max_objects=3)
    provider = FakeProvider()
    keys = [cache.data_key(provider, _request(), 10) for _ in range(7)]
    assert [k.ciphertext for k in keys] == [b"wrapped-1"] * 3 + [b"wrapped-2"] * 3 + [b"wrapped-3"]
    assert len({k.plaintext for k in keys}) == 3
    assert (cache.hits, cache.misses) == (4, 3)


def test_one_object_per_key_caches_nothing() -> None:
    cache = DataKeyCache(max_objects=1)
    provider = FakeProvider()
    for _ in range(3):
        cache.data_key(provider, _request(), 1)
    assert provider.generated == 3
    assert len(cache) == 0


def test_byte_limit() -> None:
    cache = DataKeyCache(max_bytes=100)
    provider = FakeProvider()
    assert cache.data_key(provider, _request(), 40).ciphertext == b"wrapped-1"
    assert cache.data_key(provider, _request(), 60).ciphertext == b"wrapped-1"  # 100 <= 100: still fits
    assert cache.data_key(provider, _request(), 0).ciphertext == b"wrapped-2"  # exhausted at 100 bytes
    assert cache.data_key(provider, _request(), 70).ciphertext == b"wrapped-2"
    assert cache.data_key(provider, _request(), 31).ciphertext == b"wrapped-3"  # 70 + 31 > 100
    # An object larger than the whole budget gets a key of its own, and the cached key stays usable.
    assert cache.data_key(provider, _request(), 101).ciphertext == b"wrapped-4"
    assert cache.data_key(provider, _request(), 1).ciphertext == b"wrapped-3"
    assert provider.generated == 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_age": 0},
        {"max_age": -1.0},
        {"max_age": float("nan")},
        {"max_age": float("inf")},
        {"max_age": True},
        {"max_age": "300"},
        {"max_objects": 0},
        {"max_objects": MAX_OBJECTS_LIMIT + 1},
        {"max_objects": 1.5},
        {"max_objects": True},
        {"max_bytes": 0},
        {"max_bytes": -5},
        {"max_bytes": 1e12},
    ],
)
def test_invalid_limits(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        DataKeyCache(**kwargs)


def test_limit_defaults_and_the_largest_object_limit() -> None:
    cache = DataKeyCache()
    assert (cache.max_age, cache.max_objects, cache.max_bytes) == (300.0, 1000, 1 << 40)
    assert DataKeyCache(max_objects=2**32).max_objects == 2**32


def test_bad_length() -> None:
    cache = DataKeyCache()
    with pytest.raises(ConfigurationError):
        cache.data_key(FakeProvider(), _request(), -1)


def test_provider_errors_propagate_and_nothing_is_cached() -> None:
    class Failing(FakeProvider):
        def generate_data_key(self, request: KeyRequest) -> DataKey:
            raise RuntimeError("KMS is down")

    cache = DataKeyCache()
    with pytest.raises(RuntimeError):
        cache.data_key(Failing(), _request(), 1)
    assert len(cache) == 0


# ---------------------------------------------------------------------------------------- partitions


def test_partitions() -> None:
    cache = DataKeyCache()
    provider, same_key_other_object, other_key = FakeProvider(), FakeProvider(), FakeProvider("other")
    base = cache.data_key(provider, _request({"a": "1", "b": "2"}), 1)
    # The context is compared as a set of pairs: the order does not matter.
    assert cache.data_key(provider, _request({"b": "2", "a": "1"}), 1).plaintext == base.plaintext
    others = [
        cache.data_key(provider, _request({"a": "1"}), 1),
        cache.data_key(provider, _request({"a": "1", "b": "3"}), 1),
        cache.data_key(provider, _request({"a": "1", "b": "2"}, material={"m": "x"}), 1),
        cache.data_key(
            provider, _request({"a": "1", "b": "2"}, content_algorithm=ContentAlgorithm.AES_CTR), 1
        ),
        cache.data_key(provider, _request({"a": "1", "b": "2"}, wrap_algorithm="fake-2"), 1),
        cache.data_key(same_key_other_object, _request({"a": "1", "b": "2"}), 1),
        cache.data_key(other_key, _request({"a": "1", "b": "2"}), 1),
    ]
    assert len({k.plaintext for k in [base, *others]}) == 1 + len(others)
    assert cache.misses == 1 + len(others)
    assert len(cache) == 1 + len(others)


def test_key_length_is_part_of_the_partition() -> None:
    cache = DataKeyCache()
    provider = FakeProvider()
    short = cache.data_key(provider, KeyRequest("fake", ContentAlgorithm.AES_GCM, key_length=16), 1)
    long = cache.data_key(provider, KeyRequest("fake", ContentAlgorithm.AES_GCM, key_length=32), 1)
    assert (len(short.plaintext), len(long.plaintext)) == (16, 32)


# ----------------------------------------------------------------------------- clear, repr, statistics


def test_clear_zeroes_and_forgets() -> None:
    cache = DataKeyCache()
    provider = FakeProvider()
    cache.data_key(provider, _request({"n": "1"}), 1)
    cache.data_key(provider, _request({"n": "2"}), 1)
    held = [slot.entry.plaintext for slot in cache._slots.values() if slot.entry is not None]
    assert len(held) == 2 and all(any(b) for b in held)
    cache.clear()
    assert len(cache) == 0
    assert all(b == bytearray(len(b)) for b in held)
    cache.data_key(provider, _request({"n": "1"}), 1)
    assert provider.generated == 3


def test_exhausted_keys_are_zeroed() -> None:
    cache = DataKeyCache(max_objects=2)
    provider = FakeProvider()
    cache.data_key(provider, _request(), 1)
    (slot,) = cache._slots.values()
    assert slot.entry is not None
    held = slot.entry.plaintext
    cache.data_key(provider, _request(), 1)
    assert held == bytearray(32)
    assert len(cache) == 0


def test_partitions_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import cse.cache

    monkeypatch.setattr(cse.cache, "MAX_PARTITIONS", 8)
    clock = FakeClock()
    cache = DataKeyCache(max_age=100, clock=clock)
    provider = FakeProvider()
    for i in range(30):  # a fresh context per object: every one a partition of its own
        clock.now += 1
        cache.data_key(provider, _request({"object": str(i)}), 1)
    assert len(cache._slots) <= 8
    # The newest keys are kept, the oldest forgotten.
    cache.data_key(provider, _request({"object": "29"}), 1)
    assert cache.hits == 1
    clock.now += 1000  # all expired: the next sweep forgets them
    cache.data_key(provider, _request({"object": "new"}), 1)
    assert len(cache._slots) == 1


def test_repr_shows_no_key_material() -> None:
    cache = DataKeyCache(max_objects=5)
    key = cache.data_key(FakeProvider(), _request(), 1)
    text = repr(cache)
    assert text.startswith("DataKeyCache(") and "max_objects=5" in text and "misses=1" in text
    for spelling in (key.plaintext.hex(), repr(key.plaintext), repr(key.ciphertext), str(key.plaintext)):
        assert spelling not in text
    assert key.plaintext.hex() not in repr(cache._slots)


def test_exported_from_cse() -> None:
    assert cse.DataKeyCache is DataKeyCache


# ------------------------------------------------------------------------------------------- threads


def test_threads_share_keys_within_limits() -> None:
    cache = DataKeyCache(max_objects=50)
    provider = FakeProvider(delay=0.002)
    uses: Counter[bytes] = Counter()
    lock = threading.Lock()

    def work(_: int) -> None:
        for _ in range(40):
            key = cache.data_key(provider, _request(), 3)
            with lock:
                uses[key.ciphertext] += 1

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(work, range(16)))
    assert sum(uses.values()) == 640
    assert max(uses.values()) <= 50  # never past a limit
    assert provider.generated == cache.misses == 640 // 50 + 1  # every key but the last fully used
    assert cache.hits == 640 - cache.misses


def test_threads_do_not_wait_on_other_partitions() -> None:
    slow = threading.Event()

    class Slow(FakeProvider):
        def generate_data_key(self, request: KeyRequest) -> DataKey:
            if request.encryption_context.get("slow"):
                slow.wait(5)
            return super().generate_data_key(request)

    cache = DataKeyCache()
    provider = Slow()
    with ThreadPoolExecutor(max_workers=1) as pool:
        blocked = pool.submit(cache.data_key, provider, _request({"slow": "1"}), 1)
        started = time.monotonic()
        cache.data_key(provider, _request({"fast": "1"}), 1)
        assert time.monotonic() - started < 2
        slow.set()
        blocked.result()


# ------------------------------------------------------------------------- with the EncryptionClient


def _counting(provider: KeyProvider, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    calls = Counter[str]()
    lock = threading.Lock()
    original = provider.generate_data_key

    def generate(request: KeyRequest) -> DataKey:
        with lock:
            calls["n"] += 1
        return original(request)

    monkeypatch.setattr(provider, "generate_data_key", generate)
    return lambda: calls["n"]


@pytest.mark.parametrize("fmt", ["cse-v1", "s3-v3", "s3-v2", "oss-v2"])
def test_objects_under_a_cached_key_decrypt_and_differ_in_iv(
    fmt: str, key_a: str, memory_store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = registry.open_provider(key_a)
    generated = _counting(provider, monkeypatch)
    policy = (
        CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
        if fmt == "s3-v2"
        else CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    cache = DataKeyCache()
    client = EncryptionClient(provider, format=fmt, key_cache=cache, commitment_policy=policy)
    bodies = {f"obj-{i}": os.urandom(100 + i) for i in range(5)}
    envelopes = [client.put((memory_store, name), body).envelope for name, body in bodies.items()]
    assert generated() == 1
    assert (cache.hits, cache.misses) == (4, 1)
    assert len({e.wrapped_keys[0].ciphertext for e in envelopes}) == 1 or fmt == "oss-v2"
    materials = [client.unwrap(e) for e in envelopes]
    assert len({m.key for m in materials}) == 1  # one content key ...
    if fmt in ("s3-v2", "oss-v2"):
        assert len({m.iv for m in materials}) == len(materials)  # ... but a fresh IV per object
    elif fmt == "s3-v3":
        assert len({e.message_id for e in envelopes}) == len(envelopes)  # ... a fresh derived key
    else:
        assert len({e.salt for e in envelopes}) == len(envelopes)
    reader = EncryptionClient(key_a, commitment_policy=policy)  # no cache needed to read
    for name, body in bodies.items():
        assert reader.get((memory_store, name)) == body


def test_without_a_cache_every_object_has_its_own_key(
    key_a: str, memory_store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = registry.open_provider(key_a)
    generated = _counting(provider, monkeypatch)
    client = EncryptionClient(provider)
    assert client.key_cache is None
    for i in range(3):
        client.put((memory_store, f"o{i}"), b"x")
    assert generated() == 3


def test_unknown_length_bypasses_the_cache(
    key_a: str, memory_store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = registry.open_provider(key_a)
    generated = _counting(provider, monkeypatch)
    cache = DataKeyCache()
    client = EncryptionClient(provider, key_cache=cache)
    for i in range(3):
        client.put((memory_store, f"s{i}"), iter([b"chunk", b"s"]))  # a stream: length unknown
    assert generated() == 3
    assert (cache.hits, cache.misses) == (0, 0)
    client.put((memory_store, "known"), b"abc")
    client.put((memory_store, "known2"), iter([b"abc"]), content_length=3)
    assert generated() == 4
    assert client.get((memory_store, "s1")) == b"chunks"
    assert client.get((memory_store, "known2")) == b"abc"


def test_several_wrap_keys_still_wrap_per_object(key_a: str, key_b: str, memory_store: MemoryStore) -> None:
    cache = DataKeyCache()
    client = EncryptionClient(key_a, wrap_keys=[key_a, key_b], format="cse-v1", key_cache=cache)
    for i in range(3):
        client.put((memory_store, f"m{i}"), b"multi %d" % i)
    assert (cache.hits, cache.misses) == (2, 1)
    only_b = EncryptionClient(key_b)
    assert [only_b.get((memory_store, f"m{i}")) for i in range(3)] == [b"multi %d" % i for i in range(3)]


def test_concurrent_puts_share_a_key(
    key_a: str, memory_store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = registry.open_provider(key_a)
    generated = _counting(provider, monkeypatch)
    cache = DataKeyCache(max_objects=25)
    client = EncryptionClient(provider, format="s3-v3", key_cache=cache)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: client.put((memory_store, f"c{i}"), b"%d" % i), range(100)))
    assert generated() == 4
    assert [client.get((memory_store, f"c{i}")) for i in range(100)] == [b"%d" % i for i in range(100)]


def test_client_refuses_a_wrong_cache_type(key_a: str) -> None:
    with pytest.raises(ConfigurationError):
        EncryptionClient(key_a, key_cache={"max_age": 1})  # type: ignore[arg-type]


def test_providers_without_a_service_count_nothing(key_a: str) -> None:
    assert registry.open_provider(key_a).call_counts() == {}


# ------------------------------------------------------------------------------------------- KMS calls


def test_aliyun_kms_emulator_counts(
    aliyun_kms: Any, memory_store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("aliyunsdkcore")
    pytest.importorskip("aliyunsdkkms")
    from tests.conftest import OSS_AK, OSS_REGION, OSS_SECRET

    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "CSE_ALIYUN_KMS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", OSS_AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", OSS_SECRET)
    key = aliyun_kms.create_key("cse cache test")
    provider = registry.open_provider(f"aliyun-kms://{OSS_REGION}/{key}?endpoint={aliyun_kms.endpoint}")
    client = EncryptionClient(provider, format="oss-v2", key_cache=DataKeyCache())
    already = len(aliyun_kms.request_log)

    def seen() -> dict[str, int]:
        records = aliyun_kms.request_log[already:]
        assert all(r.status == 200 for r in records)
        return dict(Counter(r.action for r in records))

    for i in range(200):
        client.put((memory_store, f"small/{i}"), b"object %d" % i)
    # One data key for all; the OSS format still wraps each object's IV (one Encrypt per object).
    assert seen() == {"GenerateDataKey": 1, "Encrypt": 200}
    assert provider.call_counts() == seen()
    assert client.get((memory_store, "small/7")) == b"object 7"
    assert client.get((memory_store, "small/199")) == b"object 199"
    assert seen()["Decrypt"] == 4  # the key and the IV of each object
    assert provider.call_counts() == seen()


def test_aws_kms_counts(kms_client: Any, kms_key_id: str, memory_store: MemoryStore) -> None:
    from cse_aws_kms import AwsKmsProvider

    provider = AwsKmsProvider(kms_key_id, client=kms_client)
    client = EncryptionClient(provider, format="s3-v3", key_cache=DataKeyCache())
    for i in range(200):
        client.put((memory_store, f"small/{i}"), b"object %d" % i)
    assert provider.call_counts() == {"GenerateDataKey": 1}
    assert client.get((memory_store, "small/3")) == b"object 3"
    assert client.get((memory_store, "small/150")) == b"object 150"
    assert provider.call_counts() == {"GenerateDataKey": 1, "Decrypt": 2}
    counts = provider.call_counts()
    counts["Decrypt"] = 99  # a copy
    assert provider.call_counts()["Decrypt"] == 2

    uncached = AwsKmsProvider(kms_key_id, client=kms_client)
    plain = EncryptionClient(uncached, format="s3-v3")
    for i in range(3):
        plain.put((memory_store, f"plain/{i}"), b"x")
    assert uncached.call_counts() == {"GenerateDataKey": 3}


def test_kms_failures_are_counted(aliyun_kms: Any) -> None:
    pytest.importorskip("aliyunsdkcore")
    from cse_aliyun_kms import AliyunKmsProvider

    from tests.conftest import OSS_REGION

    provider = AliyunKmsProvider(OSS_REGION, "no-such-key", client=_acs_client(aliyun_kms))
    with pytest.raises(CseError):
        provider.generate_data_key(_request(wrap_algorithm=WrapAlgorithm.ALIYUN_KMS))
    assert provider.call_counts() == {"GenerateDataKey": 1}


def _acs_client(emulator: Any) -> Any:
    from aliyunsdkcore.client import AcsClient  # type: ignore[import-untyped,unused-ignore]

    from tests.conftest import OSS_AK, OSS_REGION, OSS_SECRET

    client = AcsClient(OSS_AK, OSS_SECRET, OSS_REGION, auto_retry=False)
    client.add_endpoint(OSS_REGION, "Kms", emulator.endpoint)
    return client
