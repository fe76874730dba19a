"""fsspec's own abstract filesystem tests (``fsspec.tests.abstract``) over ``cse::memory://`` and
``cse::file://``.

The tests that cannot apply to encrypted objects on object stores are listed in ``NOT_APPLICABLE`` with the
reason, and deselected; docs/fsspec.md carries the same list.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

fsspec = pytest.importorskip("fsspec")
from fsspec.tests.abstract import (  # noqa: E402
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)

from cse.fs import EncryptedFileSystem  # noqa: E402
from cse.stores.memory import MemoryStore  # noqa: E402


class _Fixtures(AbstractFixtures):
    protocol = ""

    @pytest.fixture
    def fs(self, key_a: str) -> EncryptedFileSystem:
        return fsspec.filesystem("cse", key=key_a, target_protocol=self.protocol, skip_instance_cache=True)

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        # Object stores have no directories of their own: a directory exists while objects are under it.
        return False


class TestMemory(
    _Fixtures, AbstractCopyTests, AbstractGetTests, AbstractPutTests, AbstractOpenTests, AbstractPipeTests
):
    protocol = "memory"

    @pytest.fixture
    def fs_path(self) -> Iterator[str]:
        bucket = f"abstract-{uuid.uuid4().hex[:12]}"
        yield f"/{bucket}/root"
        MemoryStore.reset_shared(bucket)


class TestFile(
    _Fixtures, AbstractCopyTests, AbstractGetTests, AbstractPutTests, AbstractOpenTests, AbstractPipeTests
):
    protocol = "file"

    @pytest.fixture
    def fs_path(self, tmp_path: Path) -> str:
        return str(tmp_path / "remote")
