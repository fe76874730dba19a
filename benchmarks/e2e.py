"""End to end on local servers: cse's encrypted put and get against the plain SDK's, same bytes, same server.

* S3: moto's server in its own process. Plain: boto3 ``put_object(Body=bytes)`` and ``get_object()["Body"]
  .read()``. cse: ``EncryptionClient("rsa://...")`` (format s3-v3, the content key wrapped with
  RSA-OAEP-SHA1 by a local 2048-bit key, so no KMS server is involved) with ``S3Store`` over a boto3 client
  configured the same way; ``put`` and ``get``.
* OSS: the OSS emulator (``python -m cse_oss.testing``) in its own process. Plain: ``oss2.Bucket
  .put_object(key, bytes)`` and ``get_object(key).read()``. cse: the same RSA key (format oss-v2) with
  ``OssStore`` over an ``oss2.Bucket`` configured the same way, but with ``enable_crc=False`` as cse's own
  default bucket has (the store checks the CRC-64 itself; with oss2's check on too it is computed twice).

Two shapes: one 64 MiB object, and 1,000 objects of 4 KiB. For the 64 MiB object cse is measured twice:
with ``multipart_threshold`` above the size (one PUT, the request the plain SDK sends: the encryption
overhead proper) and with cse's defaults (8 MiB parts, 2 in flight). Overhead = cse time / plain time.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    OSS_AK,
    OSS_SECRET,
    KiB,
    MiB,
    alternate,
    module_server,
    moto_server,
    oss2_bucket,
    rsa_keypair,
    s3_client,
)

from cse.client import EncryptionClient
from cse.config import TransferConfig

LARGE = 64 * MiB
SMALL, SMALL_COUNT = 4 * KiB, 1000


def _shapes(
    store: Any,
    key_uri: str,
    plain_put: Callable[[str, bytes], None],
    plain_get: Callable[[str], bytes],
    repeat: int,
    small_count: int,
) -> dict[str, dict[str, float]]:
    one_put = EncryptionClient(
        key_uri, config=TransferConfig(multipart_threshold=LARGE + 1, max_authenticated_buffer=LARGE + 1)
    )
    default = EncryptionClient(key_uri, config=TransferConfig(max_authenticated_buffer=LARGE + 1))
    big = os.urandom(LARGE)
    small = os.urandom(SMALL)
    run = uuid.uuid4().hex[:8]

    def cse_get(client: EncryptionClient, key: str, size: int) -> None:
        assert len(client.get((store, key))) == size

    results: dict[str, dict[str, float]] = {}
    results["64 MiB put (one request)"] = alternate(
        repeat,
        plain=lambda: plain_put(f"{run}/plain-big", big),
        cse=lambda: one_put.put((store, f"{run}/cse-big"), big),
    )
    results["64 MiB put (cse multipart defaults)"] = alternate(
        repeat,
        plain=lambda: plain_put(f"{run}/plain-big", big),
        cse=lambda: default.put((store, f"{run}/cse-big-mp"), big),
    )
    assert one_put.get((store, f"{run}/cse-big")) == big
    assert plain_get(f"{run}/plain-big") == big
    results["64 MiB get"] = alternate(
        repeat,
        plain=lambda: plain_get(f"{run}/plain-big"),
        cse=lambda: cse_get(one_put, f"{run}/cse-big", LARGE),
    )
    results["64 MiB get (multipart object)"] = alternate(
        repeat,
        plain=lambda: plain_get(f"{run}/plain-big"),
        cse=lambda: cse_get(default, f"{run}/cse-big-mp", LARGE),
    )

    def plain_small_put() -> None:
        for i in range(small_count):
            plain_put(f"{run}/plain-small/{i}", small)

    def cse_small_put() -> None:
        for i in range(small_count):
            one_put.put((store, f"{run}/cse-small/{i}"), small)

    def plain_small_get() -> None:
        for i in range(small_count):
            assert len(plain_get(f"{run}/plain-small/{i}")) == SMALL

    def cse_small_get() -> None:
        for i in range(small_count):
            cse_get(one_put, f"{run}/cse-small/{i}", SMALL)

    small_repeat = max(1, repeat // 2)
    results[f"{small_count} x 4 KiB put"] = alternate(small_repeat, plain=plain_small_put, cse=cse_small_put)
    results[f"{small_count} x 4 KiB get"] = alternate(small_repeat, plain=plain_small_get, cse=cse_small_get)
    return results


def _s3(key_uri: str, repeat: int, small_count: int) -> dict[str, dict[str, float]]:
    from cse_s3 import S3Store

    with moto_server() as server:
        plain = s3_client(server.endpoint)
        plain.create_bucket(Bucket="bench")
        store = S3Store("bench", client=s3_client(server.endpoint))

        def put(key: str, data: bytes) -> None:
            plain.put_object(Bucket="bench", Key=key, Body=data)

        def get(key: str) -> bytes:
            return bytes(plain.get_object(Bucket="bench", Key=key)["Body"].read())

        return _shapes(store, key_uri, put, get, repeat, small_count)


def _oss(key_uri: str, repeat: int, small_count: int) -> dict[str, dict[str, float]]:
    from cse_oss.store import OssStore

    args = ("--access-key-id", OSS_AK, "--access-key-secret", OSS_SECRET, "--bucket", "bench")
    with module_server("cse_oss.testing", *args) as server:
        plain = oss2_bucket(server.endpoint, "bench")
        # As cse's own default bucket: oss2's CRC adapter off, since OssStore checks CRC-64 itself.
        store = OssStore(oss2_bucket(server.endpoint, "bench", enable_crc=False))

        def put(key: str, data: bytes) -> None:
            plain.put_object(key, data)

        def get(key: str) -> bytes:
            return bytes(plain.get_object(key).read())

        return _shapes(store, key_uri, put, get, repeat, small_count)


def bench_e2e(repeat: int, small_count: int = SMALL_COUNT) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        key_uri, _ = rsa_keypair(Path(tmp))
        for store, fn in (("s3:// (moto_server)", _s3), ("oss:// (OSS emulator)", _oss)):
            for job, t in fn(key_uri, repeat, small_count).items():
                rows.append(
                    {
                        "store": store,
                        "job": job,
                        "cse_s": t["cse"],
                        "plain_s": t["plain"],
                        "overhead": t["cse"] / t["plain"],
                    }
                )
    return rows
