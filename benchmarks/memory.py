"""Peak RSS of a 1 GiB upload + download, each job in a child process of its own (``ru_maxrss``).

Servers run in their own processes (moto's server holds every object in memory; that is not the client's).
Every job uploads the same 1 GiB file and downloads it to another file; the copy is checked by SHA-256.

* cse: ``EncryptionClient("rsa://...").upload_file`` then ``download_file`` on ``file://``, ``s3://`` (moto)
  and ``oss://`` (the OSS emulator), default settings (8 MiB parts, 2 in flight).
* s3_encryption 4.0: ``S3EncryptionClient.upload_file`` (its encrypted multipart upload, 8 MiB parts) then
  ``get_object()["Body"]`` read in 1 MiB blocks into the file; ``KmsKeyring`` over the in-process KMS
  stand-in; delayed authentication off (the default), so the whole object is decrypted in memory first.
* oss2 ``CryptoBucket`` with ``RsaProvider``: ``oss2.resumable_upload`` (which, for a CryptoBucket, is a
  streamed ``put_object``) then ``get_object_to_file``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import OSS_AK, OSS_REGION, OSS_SECRET, GiB, module_server, moto_server, rsa_keypair

HERE = Path(__file__).resolve().parent

_PRELUDE = r"""
import hashlib, json, resource, sys, time
sys.path.insert(0, sys.argv[1])
src, out, endpoint, key_uri = sys.argv[2:6]
def report(t0, t1, t2):
    print(json.dumps({"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "upload_s": t1 - t0, "download_s": t2 - t1}))
"""

CSE_FILE = r"""
from cse.client import EncryptionClient
client = EncryptionClient(key_uri)
t0 = time.perf_counter(); client.upload_file(src, endpoint + "/big.bin"); t1 = time.perf_counter()
client.download_file(endpoint + "/big.bin", out); report(t0, t1, time.perf_counter())
"""

CSE_S3 = r"""
from common import s3_client
from cse.client import EncryptionClient
from cse_s3 import S3Store
store = S3Store("mem", client=s3_client(endpoint))
client = EncryptionClient(key_uri)
t0 = time.perf_counter(); client.upload_file(src, (store, "cse.bin")); t1 = time.perf_counter()
client.download_file((store, "cse.bin"), out); report(t0, t1, time.perf_counter())
"""

CSE_OSS = r"""
from common import oss2_bucket
from cse.client import EncryptionClient
from cse_oss.store import OssStore
store = OssStore(oss2_bucket(endpoint, "mem", enable_crc=False))
client = EncryptionClient(key_uri)
t0 = time.perf_counter(); client.upload_file(src, (store, "cse.bin")); t1 = time.perf_counter()
client.download_file((store, "cse.bin"), out); report(t0, t1, time.perf_counter())
"""

OFFICIAL_S3 = r"""
from common import KEY_ARN, LocalKms, s3_client
from s3_encryption import S3EncryptionClient, S3EncryptionClientConfig
from s3_encryption.materials.kms_keyring import KmsKeyring
keyring = KmsKeyring(kms_client=LocalKms(), kms_key_id=KEY_ARN)
config = S3EncryptionClientConfig(keyring=keyring)
client = S3EncryptionClient(wrapped_s3_client=s3_client(endpoint), config=config)
t0 = time.perf_counter(); client.upload_file(src, "mem", "official.bin"); t1 = time.perf_counter()
body = client.get_object(Bucket="mem", Key="official.bin")["Body"]
with open(out, "wb") as fh:
    while block := body.read(1 << 20):
        fh.write(block)
report(t0, t1, time.perf_counter())
"""

OFFICIAL_OSS = r"""
import oss2
from common import OSS_AK, OSS_REGION, OSS_SECRET
from pathlib import Path
private = Path(key_uri.removeprefix("rsa://"))
public = private.with_name(private.stem + ".pub.pem")
pems = {"private_key": private.read_text(), "public_key": public.read_text()}
bucket = oss2.CryptoBucket(oss2.AuthV4(OSS_AK, OSS_SECRET), endpoint, "mem",
                           crypto_provider=oss2.crypto.RsaProvider(key_pair=pems), region=OSS_REGION)
t0 = time.perf_counter(); oss2.resumable_upload(bucket, "official.bin", src); t1 = time.perf_counter()
bucket.get_object_to_file("official.bin", out); report(t0, t1, time.perf_counter())
"""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _child(script: str, src: Path, out: Path, endpoint: str, key_uri: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _PRELUDE + script, str(HERE), str(src), str(out), endpoint, key_uri],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    report["verified"] = _sha256(out) == _sha256(src)
    out.unlink()
    return report


def bench_memory(size: int = GiB) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        key_uri, _ = rsa_keypair(d)
        src, out = d / "big.bin", d / "back.bin"
        block = os.urandom(1 << 20)
        with src.open("wb") as fh:
            for i in range(size >> 20):
                fh.write(hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:])

        def add(store: str, client: str, report: dict[str, Any]) -> None:
            rows.append({"store": store, "client": client, **report})

        add("file://", "cse", _child(CSE_FILE, src, out, f"file://{d}/vault", key_uri))
        with moto_server() as server:
            from common import s3_client

            s3_client(server.endpoint).create_bucket(Bucket="mem")
            add("s3:// (moto)", "cse", _child(CSE_S3, src, out, server.endpoint, key_uri))
            add("s3:// (moto)", "s3_encryption 4.0", _child(OFFICIAL_S3, src, out, server.endpoint, key_uri))
        args = ("--access-key-id", OSS_AK, "--access-key-secret", OSS_SECRET, "--bucket", "mem")
        with module_server("cse_oss.testing", *args) as server:
            add("oss:// (emulator)", "cse", _child(CSE_OSS, src, out, server.endpoint, key_uri))
            add(
                "oss:// (emulator)",
                "oss2 CryptoBucket",
                _child(OFFICIAL_OSS, src, out, server.endpoint, key_uri),
            )
    assert OSS_REGION  # the children import it from common
    return rows
