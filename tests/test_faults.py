"""Faults between cse and the cloud: resets, 500/503/SlowDown with the services' XML bodies, stalls, bodies
cut mid-stream and connections dropped after the request, injected by a proxy (tests/faultproxy.py) in front
of moto's S3 server and the OSS emulator, through the unmodified boto3 and oss2.

Every operation succeeds (the store's retries) or fails with a cse error; nothing read is wrong; after a
failure no unfinished upload and no partial file is left (a resumable transfer keeps its state on purpose and
completes when run again). A seeded random soak closes the module (``CSE_SOAK_OPS`` operations, default 30;
``nox -s soak`` runs a longer one); it prints its seed and counts.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from cse import EncryptionClient, TransferConfig
from cse.exceptions import CseError
from cse.partials import partials_of
from cse.stores.base import Store
from tests.conftest import OSS_AK, OSS_REGION, OSS_SECRET
from tests.faultproxy import KINDS, FaultProxy, Request

pytest.importorskip("cse_s3")
pytest.importorskip("cse_oss")

MiB = 1024 * 1024
# 6 MiB objects go up in two parts (S3's smallest part is 5 MiB); smaller ones in one PUT.
CONFIG = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=2)
BIG = 6 * MiB
SMALL = 200_000


# ------------------------------------------------------------------------------------------- stores


def _s3_store(endpoint: str, bucket: str, timeout: float | None) -> Store:
    """An S3 store on ``endpoint`` with cse's default client settings; ``timeout`` shortens both
    timeouts (stall tests)."""
    import boto3
    from botocore.config import Config
    from cse_s3.store import S3Store, default_client

    defaults = default_client().meta.config
    config = defaults.merge(Config(s3={"addressing_style": "path"}))
    if timeout is not None:
        config = config.merge(Config(connect_timeout=timeout, read_timeout=timeout))
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=config)
    return S3Store(bucket, client)


def _oss_store(endpoint: str, bucket: str, timeout: float | None) -> Store:
    """An OSS store on ``endpoint`` as cse's default bucket is built, with shorter timeouts if asked."""
    import oss2
    from cse_oss.store import OssStore

    return OssStore(
        oss2.Bucket(
            oss2.AuthV4(OSS_AK, OSS_SECRET),
            endpoint,
            bucket,
            region=OSS_REGION,
            session=oss2.Session(pool_size=8),
            connect_timeout=(timeout, timeout) if timeout is not None else (5, 30),
            enable_crc=False,
        )
    )


class Cloud:
    """One store behind a fault proxy: the faulty store, a direct one to check with, and the proxy."""

    def __init__(self, name: str, proxy: FaultProxy, faulty: Store, direct: Store) -> None:
        self.name, self.proxy, self.faulty, self.direct = name, proxy, faulty, direct

    def uploads(self) -> list[Any]:
        return self.direct.list_multipart_uploads("")


@pytest.fixture(scope="module")
def s3_cloud(moto_endpoint: str) -> Iterator[Cloud]:
    import boto3

    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    with FaultProxy(moto_endpoint, "s3", stall_seconds=5) as proxy:
        yield Cloud(
            "s3", proxy, _s3_store(proxy.endpoint, bucket, 1.0), _s3_store(moto_endpoint, bucket, None)
        )


@pytest.fixture(scope="module")
def oss_cloud(oss_emulator: Any) -> Iterator[Cloud]:
    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    oss_emulator.create_bucket(bucket)
    with FaultProxy(oss_emulator.endpoint, "oss", stall_seconds=5) as proxy:
        yield Cloud(
            "oss",
            proxy,
            _oss_store(proxy.endpoint, bucket, 1.0),
            _oss_store(oss_emulator.endpoint, bucket, None),
        )


@pytest.fixture(params=["s3", "oss"])
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    c: Cloud = request.getfixturevalue(f"{request.param}_cloud")
    c.proxy.clear()
    yield c
    c.proxy.clear()


def _is_part(r: Request) -> bool:
    return r.method == "PUT" and "partNumber=" in r.query


def _is_complete(r: Request) -> bool:
    return r.method == "POST" and "uploadId=" in r.query


def _is_put(r: Request) -> bool:
    return r.method == "PUT" and "uploadId=" not in r.query and r.body_length > 0


def _is_get(r: Request) -> bool:
    return (
        r.method == "GET" and "range" not in r.headers and "uploads" not in r.query and r.path.count("/") > 1
    )


def _is_ranged_get(r: Request) -> bool:
    return r.method == "GET" and "range" in r.headers


# ------------------------------------------------------------------------------ one retry budget


@pytest.mark.parametrize("name", ["s3", "oss"])
def test_a_part_is_sent_at_most_four_times(name: str, request: pytest.FixtureRequest, key_a: str) -> None:
    """The store owns the retry budget of a request (4 sends) and the engine sends each part once: a part
    that always gets 503 is sent exactly 4 times, and the upload is aborted."""
    c: Cloud = request.getfixturevalue(f"{name}_cloud")
    c.proxy.clear()
    sent: Counter[str] = Counter()

    def part_one(r: Request) -> bool:
        if _is_part(r) and "partNumber=1" in r.query.split("&"):
            sent["part 1"] += 1
            return True
        return False

    c.proxy.inject("503", part_one, times=1000)
    client = EncryptionClient(key_a, config=TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB))
    key = f"budget/{uuid.uuid4().hex}"
    with pytest.raises(CseError, match="was aborted"):
        client.put((c.faulty, key), os.urandom(BIG))
    c.proxy.clear()
    assert sent["part 1"] == 4
    assert [u for u in c.uploads() if u.key == key] == []


# ------------------------------------------------------------------------ each fault, each operation


def _check_no_upload(cloud: Cloud, key: str) -> None:
    """No unfinished upload of ``key`` is left, except on S3 where a CreateMultipartUpload that reached the
    server lost its answer: the client never learnt that upload's id (only ``cse uploads`` and a lifecycle
    rule find it). Such a leftover is listed by cse.uploads, and aborted here."""
    from cse.uploads import abort_uploads

    left = [u for u in cloud.uploads() if u.key == key]
    if left and cloud.name == "s3":
        assert len(left) <= cloud.proxy.lost_creates(key), left
        aborted = abort_uploads((cloud.direct, key))
        assert {u.upload_id for u in aborted} == {u.upload_id for u in left}
        return
    faults = [(k, r.method, r.query[:40]) for k, r in cloud.proxy.stats.log if key in unquote(r.path)]
    assert left == [], faults


def _check_readable(client: EncryptionClient, store: Store, key: str, expected: bytes | None) -> None:
    """The object is absent, or holds exactly ``expected``."""
    from cse.exceptions import ObjectNotFoundError

    try:
        got = client.get((store, key))
    except ObjectNotFoundError:
        return
    assert expected is not None and hashlib.sha256(got).digest() == hashlib.sha256(expected).digest()


PUTS: dict[str, tuple[Callable[[Request], bool], int]] = {
    "single put": (_is_put, SMALL),
    "multipart put, a part": (_is_part, BIG),
    "multipart put, the completion": (_is_complete, BIG),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", sorted(PUTS))
def test_a_put_meets_a_fault(cloud: Cloud, op: str, kind: str, key_a: str) -> None:
    match, size = PUTS[op]
    client = EncryptionClient(key_a, config=CONFIG)
    key = f"put/{uuid.uuid4().hex}"
    data = os.urandom(size)
    cloud.proxy.inject(kind, match, times=1)
    try:
        client.put((cloud.faulty, key), data)
        outcome = "ok"
    except CseError as exc:
        outcome = "error"
        message = str(exc)
    else:
        message = ""
    cloud.proxy.clear()
    # One fault is within the store's budget of 4 sends: every put succeeds.
    assert outcome == "ok", message
    assert cloud.proxy.stats.faults[kind] >= 1
    if outcome == "ok":
        assert client.get((cloud.direct, key)) == data
    else:
        _check_readable(client, cloud.direct, key, data)
    _check_no_upload(cloud, key)


@pytest.fixture
def stored(cloud: Cloud, key_a: str) -> tuple[str, bytes]:
    """An oss-v2 or s3-v3 object of 6 MiB (as the store writes by default), and a cse-v1 one beside it."""
    key = f"get/{uuid.uuid4().hex}"
    data = os.urandom(BIG)
    EncryptionClient(key_a, config=CONFIG).put((cloud.direct, key), data)
    EncryptionClient(key_a, config=CONFIG, format="cse-v1").put((cloud.direct, key + ".v1"), data)
    return key, data


@pytest.mark.parametrize("kind", KINDS)
def test_a_whole_get_meets_a_fault(cloud: Cloud, stored: tuple[str, bytes], kind: str, key_a: str) -> None:
    key, data = stored
    client = EncryptionClient(key_a, config=CONFIG)
    cloud.proxy.inject(kind, _is_get, times=1)
    try:
        got = client.get((cloud.faulty, key))
    except CseError:
        got = None
    cloud.proxy.clear()
    assert got == data or (got is None and kind == "truncate")  # a body cut mid-stream is not resumed


@pytest.mark.parametrize("kind", KINDS)
def test_a_ranged_get_meets_a_fault(cloud: Cloud, stored: tuple[str, bytes], kind: str, key_a: str) -> None:
    key, data = stored
    client = EncryptionClient(key_a, config=CONFIG, allow_unauthenticated_ranges=True)
    cloud.proxy.inject(kind, _is_ranged_get, times=1)
    results = []
    for name in (key, key + ".v1"):
        try:
            results.append((name, client.get((cloud.faulty, name), range=(1000, 300_000))))
        except CseError:
            results.append((name, None))
    cloud.proxy.clear()
    assert all(got == data[1000:300_001] or (got is None and kind == "truncate") for _, got in results)


@pytest.mark.parametrize("kind", ["reset", "503", "truncate", "drop", "stall"])
def test_download_file_leaves_no_partial(
    cloud: Cloud, stored: tuple[str, bytes], kind: str, key_a: str, tmp_path: Path
) -> None:
    key, data = stored
    dest = tmp_path / "out.bin"
    client = EncryptionClient(key_a, config=CONFIG)
    cloud.proxy.inject(kind, lambda r: r.method == "GET", times=1)
    try:
        client.download_file((cloud.faulty, key), dest)
        ok = True
    except CseError:
        ok = False
    cloud.proxy.clear()
    assert (ok and dest.read_bytes() == data) or (not ok and kind == "truncate" and not dest.exists())
    assert partials_of(dest) == []


@pytest.mark.parametrize("kind", ["reset", "500", "truncate", "drop"])
def test_resumable_transfers_through_faults(cloud: Cloud, kind: str, key_a: str, tmp_path: Path) -> None:
    """upload_file and download_file with checkpoints: faults on parts are retried or fail; a failed run
    keeps its state, and the next run completes it with the right bytes, leaving nothing behind."""
    src = tmp_path / "src.bin"
    data = os.urandom(BIG + 12345)
    src.write_bytes(data)
    client = EncryptionClient(key_a, config=CONFIG, format="cse-v1")
    key = f"resume/{uuid.uuid4().hex}"
    up_ckpt, down_ckpt = tmp_path / "up.ckpt", tmp_path / "down.ckpt"
    cloud.proxy.inject(kind, lambda r: _is_part(r) and "partNumber=2" in r.query.split("&"), times=4)
    try:
        client.upload_file(src, (cloud.faulty, key), checkpoint=up_ckpt)
    except CseError:
        cloud.proxy.clear()
        client.upload_file(src, (cloud.faulty, key), checkpoint=up_ckpt)
    assert not up_ckpt.exists() and [u for u in cloud.uploads() if u.key == key] == []
    dest = tmp_path / "dest.bin"
    cloud.proxy.inject(kind, _is_ranged_get, times=4)
    try:
        client.download_file((cloud.faulty, key), dest, checkpoint=down_ckpt)
    except CseError:
        cloud.proxy.clear()
        client.download_file((cloud.faulty, key), dest, checkpoint=down_ckpt)
    cloud.proxy.clear()
    assert dest.read_bytes() == data
    assert not down_ckpt.exists() and not dest.with_name(dest.name + ".cse-partial").exists()


def test_migrate_and_rewrap_through_faults(cloud: Cloud, key_a: str, key_b: str, tmp_path: Path) -> None:
    """A migration from file:// to the cloud and a rewrap in place, with a fault in one of every few
    requests: each object is copied or reported failed; a second run finishes; everything reads back."""
    from cse.migrate import migrate
    from cse.stores.file import FileStore

    source = FileStore(str(tmp_path / "src"))
    writer = EncryptionClient(key_a, config=CONFIG)
    objects = {f"m/{i}.bin": os.urandom(SMALL if i % 3 else BIG) for i in range(6)}
    for name, body in objects.items():
        writer.put((source, name), body)
    prefix = f"mig-{uuid.uuid4().hex[:8]}/"
    journal = tmp_path / "journal.sqlite"
    cloud.proxy.randomly(0.15, seed=15, kinds=("reset", "500", "503", "slowdown", "drop"))
    first = migrate(
        (source, "m/"), (cloud.faulty, prefix), keys=[key_a], journal=journal, config=CONFIG, workers=2
    )
    assert first.copied + first.failed == len(objects)
    assert all(o.error for o in first.objects if o.state == "failed")
    cloud.proxy.clear()
    second = migrate(
        (source, "m/"), (cloud.faulty, prefix), keys=[key_a], journal=journal, config=CONFIG, workers=2
    )
    assert second.failed == 0 and second.copied == first.failed
    cloud.proxy.randomly(0.15, seed=16, kinds=("reset", "500", "503", "slowdown", "drop"))
    rotated = migrate(
        (cloud.faulty, prefix),
        (cloud.faulty, prefix),
        keys=[key_a],
        to_keys=[key_b],
        mode="rewrap",
        workers=2,
    )
    cloud.proxy.clear()
    if rotated.failed:
        rotated = migrate(
            (cloud.faulty, prefix),
            (cloud.faulty, prefix),
            keys=[key_a, key_b],
            to_keys=[key_b],
            mode="rewrap",
        )
        assert rotated.failed == 0
    reader = EncryptionClient(key_b, config=CONFIG)
    for name, body in objects.items():
        assert reader.get((cloud.direct, prefix + name[2:])) == body
    for name in objects:
        _check_no_upload(cloud, prefix + name[2:])


# ---------------------------------------------------------------------------------- a seeded soak


def soak(cloud: Cloud, key: str, operations: int, seed: int, rate: float, tmp: Path) -> dict[str, Any]:
    """``operations`` random puts, gets, ranged gets and downloads through random faults; returns the
    counts. Asserts the invariants after each operation."""
    rng = random.Random(seed)
    client = EncryptionClient(key, config=CONFIG, allow_unauthenticated_ranges=True)
    known: dict[str, bytes] = {}
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    before, requests_before = cloud.proxy.stats.injected, cloud.proxy.stats.requests
    cloud.proxy.randomly(rate, seed, KINDS)
    try:
        for i in range(operations):
            op = rng.choice(["put", "put", "get", "range", "download"]) if known else "put"
            try:
                if op == "put":
                    name = f"soak-{seed}/{i}"
                    body = rng.randbytes(rng.choice([1000, SMALL, BIG]))
                    try:
                        client.put((cloud.faulty, name), body)
                        known[name] = body
                    finally:
                        _check_no_upload(cloud, name)
                        _check_readable(client, cloud.direct, name, body)
                else:
                    name = rng.choice(sorted(known))
                    body = known[name]
                    if op == "get":
                        assert client.get((cloud.faulty, name)) == body
                    elif op == "range":
                        a = rng.randrange(len(body))
                        b = min(len(body) - 1, a + rng.randrange(1, 100_000))
                        assert client.get((cloud.faulty, name), range=(a, b)) == body[a : b + 1]
                    else:
                        dest = tmp / f"d{i}"
                        try:
                            client.download_file((cloud.faulty, name), dest)
                            assert dest.read_bytes() == body
                        finally:
                            assert partials_of(dest) == []
                outcomes[f"{op} ok"] += 1
            except CseError as exc:
                outcomes[f"{op} failed (clear error)"] += 1
                errors[f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"] += 1
    finally:
        cloud.proxy.clear()
    return {
        "store": cloud.name,
        "seed": seed,
        "operations": operations,
        "requests": cloud.proxy.stats.requests - requests_before,
        "faults injected": cloud.proxy.stats.injected - before,
        "outcomes": dict(sorted(outcomes.items())),
        "errors": dict(errors),
    }


def test_random_soak(cloud: Cloud, key_a: str, tmp_path: Path) -> None:
    operations = int(os.environ.get("CSE_SOAK_OPS", "30"))
    seed = int(os.environ.get("CSE_SOAK_SEED", str(int(time.time()) % 100_000)))
    rate = float(os.environ.get("CSE_SOAK_RATE", "0.15"))
    print(f"\nsoak on {cloud.name}: seed {seed} (CSE_SOAK_SEED={seed} repeats it)")
    report = soak(cloud, key_a, operations, seed, rate, tmp_path)
    print(f"soak on {cloud.name}: {report}")
    assert sum(report["outcomes"].values()) == operations
