"""Reading one column of a 64 MiB Parquet file on S3 (moto's server): cse:: against plain s3://.

Run: ``uv run python benchmarks/fsspec_parquet.py`` (not part of the test suite; about a minute).

The file: 8 int64 columns of random values, 1 Mi rows (64 MiB of values), 4 row groups, no compression, so
one column is 1/8 of the file. Each side reads ``pq.read_table(path, filesystem=..., columns=["c3"])``:

* ``cse::s3:// (cse-v1)``: the ``cse`` fsspec filesystem over cse's S3 store, the object in cse-v1 (every
  range authenticated, so only the column's segments are fetched);
* ``cse::s3:// (s3-v3)``: the same with the S3 default format, AES-GCM authenticated only as a whole: the
  reader fetches and verifies the whole object first (``max_authenticated_buffer`` raised to 128 MiB);
* ``plain s3://``: the unencrypted file, read through a seekable file object over boto3 ranged GETs.

Bytes fetched are the bytes of the GET responses (counted in the store / the file object); times are the
median of ``REPEAT`` reads, moto's server in a child process on 127.0.0.1.
"""

from __future__ import annotations

import io
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import MiB, moto_server, rsa_keypair, s3_client

REPEAT = 5
ROWS = 1 << 20
COLUMNS = 8


class BotoFile(io.RawIOBase):
    """A seekable read-only file over boto3 ranged GETs (the plain side), counting the bytes fetched."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        super().__init__()
        self.client, self.bucket, self.key = client, bucket, key
        self.size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        self.pos = 0
        self.fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: 0, 1: self.pos, 2: self.size}[whence] + offset
        return self.pos

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.pos
        n = min(n, self.size - self.pos)
        if n <= 0:
            return b""
        body = self.client.get_object(
            Bucket=self.bucket, Key=self.key, Range=f"bytes={self.pos}-{self.pos + n - 1}"
        )
        data: bytes = body["Body"].read()
        self.fetched += len(data)
        self.pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def main() -> None:
    from cse_s3 import S3Store

    from cse.fs import EncryptedFileSystem

    class CountingS3Store(S3Store):
        fetched = 0
        lock = threading.Lock()

        def get(self, key: str, start: int = 0, end: int | None = None) -> Any:
            result = super().get(key, start, end)
            with self.lock:
                CountingS3Store.fetched += result.end - result.start + 1
            return result

    rng = np.random.default_rng(1)
    table = pa.table({f"c{i}": rng.integers(0, 1 << 62, ROWS) for i in range(COLUMNS)})
    with tempfile.TemporaryDirectory() as tmp, moto_server() as server:
        key_uri, _ = rsa_keypair(Path(tmp))
        local = Path(tmp) / "t.parquet"
        pq.write_table(table, local, row_group_size=ROWS // 4, compression="none", use_dictionary=False)
        size = local.stat().st_size
        s3 = s3_client(server.endpoint)
        s3.create_bucket(Bucket="bench")
        s3.upload_file(str(local), "bench", "plain/t.parquet")
        store = CountingS3Store("bench", client=s3)
        sides: dict[str, tuple[Any, Any]] = {}
        for fmt in ("cse-v1", "s3-v3"):
            fs = EncryptedFileSystem(
                key_uri,
                format=fmt,
                stores=[store],
                max_authenticated_buffer=128 * MiB,
                skip_instance_cache=True,
            )
            fs.put_file(str(local), f"s3://bench/{fmt}/t.parquet")
            sides[f"cse::s3:// ({fmt})"] = (fs, f"s3://bench/{fmt}/t.parquet")
        print(f"Parquet file: {size / MiB:.1f} MiB, {COLUMNS} columns, 4 row groups; reading column c3")
        print(f"{'side':<22} {'fetched MiB':>12} {'of the file':>12} {'median s':>10}")
        expected = table.column("c3")
        for name, (fs, path) in sides.items():
            times, fetched = [], 0
            for _ in range(REPEAT):
                CountingS3Store.fetched = 0
                t = time.perf_counter()
                got = pq.read_table(path, filesystem=fs, columns=["c3"])
                times.append(time.perf_counter() - t)
                fetched = CountingS3Store.fetched
                assert got.column("c3").equals(expected)
            print(
                f"{name:<22} {fetched / MiB:>12.2f} {fetched / size:>11.1%} {statistics.median(times):>10.3f}"
            )
        times, fetched = [], 0
        for _ in range(REPEAT):
            t = time.perf_counter()
            f = BotoFile(s3, "bench", "plain/t.parquet")
            got = pq.read_table(f, columns=["c3"])
            times.append(time.perf_counter() - t)
            fetched = f.fetched
            assert got.column("c3").equals(expected)
        median = statistics.median(times)
        print(f"{'plain s3:// (boto3)':<22} {fetched / MiB:>12.2f} {fetched / size:>11.1%} {median:>10.3f}")


if __name__ == "__main__":
    main()
