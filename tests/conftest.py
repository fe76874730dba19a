"""Shared fixtures: RSA key pairs made once per session, stores, clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cse.client import EncryptionClient
from cse.config import TransferConfig
from cse.stores.file import FileStore
from cse.stores.memory import MemoryStore


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with three 2048-bit RSA key pairs: a, b and c."""
    import cse_rsa

    d = tmp_path_factory.mktemp("keys")
    for name in ("a", "b", "c"):
        cse_rsa.generate_keypair(d / f"{name}.pem", d / f"{name}.pub.pem", bits=2048)
    return d


@pytest.fixture(scope="session")
def key_a(key_dir: Path) -> str:
    """Key URI of private key a."""
    return f"rsa://{key_dir / 'a.pem'}"


@pytest.fixture(scope="session")
def key_b(key_dir: Path) -> str:
    """Key URI of private key b."""
    return f"rsa://{key_dir / 'b.pem'}"


@pytest.fixture
def small_config() -> TransferConfig:
    """Small thresholds so that multipart and many segments happen on small objects."""
    return TransferConfig(
        multipart_threshold=64 * 1024, part_size=32 * 1024, chunk_size=8192, segment_size=1000
    )


@pytest.fixture
def memory_store() -> MemoryStore:
    """A private in-memory store."""
    return MemoryStore()


@pytest.fixture
def file_store(tmp_path: Path) -> FileStore:
    """A file store in a temp dir."""
    return FileStore(tmp_path / "vault")


@pytest.fixture
def client(key_a: str) -> Iterator[EncryptionClient]:
    """A client with key a and default settings."""
    with EncryptionClient(key_a) as c:
        yield c
