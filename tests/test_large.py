"""1 GiB objects through ``file://``: upload_file then download_file, peak RSS measured in a child process.

Run with ``nox -s large`` (not part of the default run).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.large

GiB = 1024 * 1024 * 1024
RSS_LIMIT = 128 * 1024 * 1024

CHILD = r"""
import json, resource, sys, time
from cse.client import EncryptionClient
key, src, url, out = sys.argv[1:5]
client = EncryptionClient(key)
t0 = time.perf_counter()
put = client.upload_file(src, url)
t1 = time.perf_counter()
client.download_file(url, out)
t2 = time.perf_counter()
print(json.dumps({"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "parts": put.parts, "stored": put.stored_size, "upload_s": t1 - t0, "download_s": t2 - t1}))
"""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_one_gib_upload_and_download_through_file_store_in_bounded_memory(tmp_path: Path, key_a: str) -> None:
    src = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with src.open("wb") as fh:
        for i in range(GiB >> 20):
            fh.write(hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:])
    url = f"file://{tmp_path}/vault/big.bin"
    out = tmp_path / "back.bin"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, key_a, str(src), url, str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n1 GiB file:// round trip: {json.dumps(report)}")
    assert report["parts"] > 100
    assert _sha256(out) == _sha256(src)
    assert report["peak_rss"] < RSS_LIMIT, f"peak RSS {report['peak_rss'] / 2**20:.1f} MiB"
