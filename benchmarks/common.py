"""Helpers shared by the benchmark sections: timing, stand-ins for the network, servers in child processes."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cse.stores.base import ObjectInfo
from cse.stores.memory import MemoryStore, _now, _Object, clean_metadata

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: The key ARN the in-process KMS stand-in answers for.
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000"


def timed(fn: Callable[[], Any]) -> float:
    """Wall time of one call of ``fn``."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def alternate(repeat: int, **fns: Callable[[], Any]) -> dict[str, float]:
    """Run every function ``repeat`` times, interleaved (a, b, a, b, ...); the median time of each."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return {name: statistics.median(t) for name, t in times.items()}


class LocalKms:
    """An in-process stand-in for a boto3 AWS KMS client: ``generate_data_key``, ``encrypt`` and ``decrypt``.

    Data keys are sealed with AES-256-GCM under a key held in memory, bound to the encryption context, so a
    wrong context fails as it would in KMS. Both the official S3 Encryption Client's ``KmsKeyring`` and cse's
    ``AwsKmsProvider`` are given the same instance: neither touches the network.
    """

    def __init__(self) -> None:
        self._aead = AESGCM(os.urandom(32))
        self.meta = SimpleNamespace(
            config=SimpleNamespace(user_agent_extra=None), region_name="us-east-1", endpoint_url="local"
        )
        self.calls = 0

    def _seal(self, plaintext: bytes, context: Mapping[str, str] | None) -> bytes:
        nonce = os.urandom(12)
        aad = json.dumps(dict(context or {}), sort_keys=True).encode()
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def generate_data_key(self, **kw: Any) -> dict[str, Any]:
        self.calls += 1
        plaintext = os.urandom(kw.get("NumberOfBytes") or 32)
        return {
            "Plaintext": plaintext,
            "CiphertextBlob": self._seal(plaintext, kw.get("EncryptionContext")),
            "KeyId": KEY_ARN,
        }

    def encrypt(self, **kw: Any) -> dict[str, Any]:
        self.calls += 1
        return {"CiphertextBlob": self._seal(kw["Plaintext"], kw.get("EncryptionContext")), "KeyId": KEY_ARN}

    def decrypt(self, **kw: Any) -> dict[str, Any]:
        self.calls += 1
        blob = kw["CiphertextBlob"]
        aad = json.dumps(dict(kw.get("EncryptionContext") or {}), sort_keys=True).encode()
        return {"Plaintext": self._aead.decrypt(blob[:12], blob[12:], aad), "KeyId": KEY_ARN}


class BenchStore(MemoryStore):
    """A :class:`MemoryStore` whose ``put`` keeps a reference to the bytes, without copying or hashing them.

    The official clients' pipelines hand back ciphertext and metadata without storing anything, so cse's
    side of the pipeline comparison stores into this: what remains is cse's own work.
    """

    def put(self, key: str, data: bytes | bytearray | memoryview, metadata: Mapping[str, str]) -> ObjectInfo:
        obj = _Object(data, "bench", clean_metadata(metadata), _now())  # type: ignore[arg-type]
        self._objects[key] = obj
        return obj.info(key)

    def clear_objects(self) -> None:
        self._objects.clear()


def rsa_keypair(directory: Path) -> tuple[str, dict[str, str]]:
    """A fresh 2048-bit RSA key pair in ``directory``: cse's key URI and the PEM texts oss2 takes."""
    import cse_rsa

    private, public = directory / "bench.pem", directory / "bench.pub.pem"
    if not private.exists():
        cse_rsa.generate_keypair(private, public, bits=2048)
    return f"rsa://{private}", {"private_key": private.read_text(), "public_key": public.read_text()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server running in a child process, and what it printed about itself."""

    proc: subprocess.Popen[str]
    endpoint: str
    fields: dict[str, str]


@contextmanager
def moto_server() -> Iterator[Server]:
    """moto's server (S3 and KMS) in its own process on a free port; stopped on exit."""
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {endpoint}") from None
                time.sleep(0.2)
        yield Server(proc, endpoint, {})
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def module_server(module: str, *args: str) -> Iterator[Server]:
    """``python -m module args`` in its own process; it prints ``endpoint=... key=value ...`` first."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "endpoint" not in fields:
            raise RuntimeError(f"{module} printed no endpoint: {line!r}")
        yield Server(proc, fields["endpoint"], fields)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def s3_client(endpoint: str) -> Any:
    """A plain boto3 S3 client on ``endpoint``, path-style addressing, dummy credentials."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )


OSS_AK, OSS_SECRET, OSS_REGION = "bench-ak", "bench-secret", "cn-hangzhou"


def oss2_bucket(endpoint: str, name: str, enable_crc: bool = True) -> Any:
    """A plain ``oss2.Bucket`` on the emulator, signed with V4."""
    import oss2

    auth = oss2.AuthV4(OSS_AK, OSS_SECRET)
    return oss2.Bucket(auth, endpoint, name, region=OSS_REGION, enable_crc=enable_crc)


def mib_s(nbytes: int, seconds: float) -> float:
    return nbytes / MiB / seconds if seconds else float("inf")
