"""cse.migrate on local stores: native and rewrap modes, the journal (skip, retry, leftovers of a killed
run), verify, dry runs, failures that do not stop the others, and the cse migrate / cse rewrap commands."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from cse.cli import main
from cse.client import EncryptionClient
from cse.config import TransferConfig
from cse.exceptions import ConfigurationError
from cse.migrate import Journal, migrate, rewrap_prefix
from cse.stores.memory import MemoryStore

KiB = 1024


def _fill(client: EncryptionClient, store: MemoryStore, prefix: str, n: int) -> dict[str, bytes]:
    data = {f"{prefix}o{i:03d}": os.urandom(i * 997) for i in range(n)}
    for key, value in data.items():
        client.put((store, key), value)
    return data


@pytest.fixture
def src() -> MemoryStore:
    """A fresh source bucket, reachable as memory://NAME."""
    store = MemoryStore()
    return store


def test_native_migration_between_stores(key_a: str, key_b: str, tmp_path: Path) -> None:
    """Every object under the prefix arrives under the destination prefix, re-encrypted for the new key,
    in the destination's format; objects outside the prefix stay; verify reads each one back."""
    store = MemoryStore.shared("mig-src-1")
    a = EncryptionClient(key_a)
    data = _fill(a, store, "p/", 12)
    a.put((store, "other/x"), b"not moved")
    summary = migrate(
        "memory://mig-src-1/p/", f"file://{tmp_path}/vault/q/", keys=[key_a], to_keys=[key_b], verify=True
    )
    assert (summary.copied, summary.failed, summary.skipped) == (12, 0, 0)
    assert summary.bytes == sum(len(v) for v in data.values())
    assert all(o.verified for o in summary.objects)
    b = EncryptionClient(key_b)
    for key, value in data.items():
        url = f"file://{tmp_path}/vault/q/{key[2:]}"
        assert b.get(url) == value
        assert b.head(url).envelope.format == "cse-v1"
    assert not (tmp_path / "vault" / "q" / "other").exists()


def test_journal_skips_done_and_retries_failed(key_a: str, key_b: str, tmp_path: Path) -> None:
    """A second run with the journal copies nothing again; a changed source object is copied again; a
    failed object is retried and its reason is recorded; failures do not stop the others."""
    store = MemoryStore.shared("mig-src-2")
    a = EncryptionClient(key_a)
    data = _fill(a, store, "p/", 6)
    store.put("p/broken", b"not an encrypted object", {})
    journal = tmp_path / "journal.db"
    first = migrate(
        "memory://mig-src-2/p/", "memory://mig-dst-2/", keys=[key_a], to_keys=[key_b], journal=journal
    )
    assert (first.copied, first.failed) == (6, 1)
    [failed] = [o for o in first.objects if o.state == "failed"]
    assert failed.src_url.endswith("p/broken")
    assert "not encrypted" in failed.error or "format" in failed.error
    second = migrate(
        "memory://mig-src-2/p/", "memory://mig-dst-2/", keys=[key_a], to_keys=[key_b], journal=journal
    )
    assert (second.copied, second.skipped, second.failed) == (0, 6, 1)
    a.put((store, "p/o001"), b"changed")
    store.delete("p/broken")
    third = migrate(
        "memory://mig-src-2/p/", "memory://mig-dst-2/", keys=[key_a], to_keys=[key_b], journal=journal
    )
    assert (third.copied, third.skipped, third.failed) == (1, 5, 0)
    assert EncryptionClient(key_b).get("memory://mig-dst-2/o001") == b"changed"
    rows = dict(
        sqlite3.connect(journal).execute("SELECT state, COUNT(*) FROM objects GROUP BY state").fetchall()
    )
    assert rows["done"] == 6
    del data


def test_leftover_uploads_of_a_killed_run_are_aborted(key_a: str, tmp_path: Path) -> None:
    """An object a killed run left in state 'copying' with a multipart upload at its destination: the next
    run aborts that upload and copies the object once."""
    store = MemoryStore.shared("mig-src-3")
    dst = MemoryStore.shared("mig-dst-3")
    a = EncryptionClient(key_a)
    a.put((store, "big"), os.urandom(300 * KiB))
    journal = tmp_path / "journal.db"
    book = Journal(journal)
    book.mark(
        "memory://mig-src-3/big", "memory://mig-dst-3/big", store.head("big").etag, 300 * KiB, "copying"
    )
    book.close()
    leftover = dst.create_multipart("big", {})
    assert [u.upload_id for u in dst.list_multipart_uploads()] == [leftover]
    config = TransferConfig(multipart_threshold=64 * KiB, part_size=64 * KiB)
    summary = migrate(
        "memory://mig-src-3/", "memory://mig-dst-3/", keys=[key_a], journal=journal, config=config
    )
    assert summary.copied == 1
    assert dst.list_multipart_uploads() == []
    assert [o.key for o in dst.list()] == ["big"]


def test_dry_run_writes_nothing(key_a: str, tmp_path: Path) -> None:
    """--dry-run lists what would be copied and writes neither objects nor a journal."""
    store = MemoryStore.shared("mig-src-4")
    _fill(EncryptionClient(key_a), store, "", 3)
    summary = migrate(
        "memory://mig-src-4/", "memory://mig-dst-4/", keys=[key_a], dry_run=True, journal=tmp_path / "j"
    )
    assert (summary.planned, summary.copied) == (3, 0)
    assert list(MemoryStore.shared("mig-dst-4").list()) == []
    assert not (tmp_path / "j").exists()


def test_rewrap_within_a_store_moves_no_body(key_a: str, key_b: str) -> None:
    """Rewrap within one store is a server-side copy with new metadata: no get, no put of a body; the old key
    no longer opens the objects, the new one does."""
    store = MemoryStore.shared("mig-src-5")
    a = EncryptionClient(key_a)
    data = _fill(a, store, "", 5)
    before = {k: store.read_all(k) for k in data}
    store.requests.clear()
    summary = rewrap_prefix("memory://mig-src-5/", keys=[key_a], to_keys=[key_b])
    assert summary.copied == 5
    operations = {op for op, _ in store.requests}
    assert "copy" in operations
    assert not operations & {"put", "get", "upload_part", "create_multipart"}
    for key, value in data.items():
        assert store.read_all(key) == before[key]  # the ciphertext is unchanged
        assert EncryptionClient(key_b).get((store, key)) == value
        with pytest.raises(Exception):
            a.get((store, key))


def test_rewrap_across_stores_streams_the_ciphertext(key_a: str, key_b: str) -> None:
    """Rewrap onto another store copies the stored bytes unchanged under new metadata (multipart too)."""
    store = MemoryStore.shared("mig-src-6")
    a = EncryptionClient(key_a, config=TransferConfig(multipart_threshold=64 * KiB, part_size=64 * KiB))
    big = os.urandom(200 * KiB)
    a.put((store, "big"), big)
    a.put((store, "small"), b"small")
    config = TransferConfig(multipart_threshold=64 * KiB, part_size=64 * KiB)
    summary = migrate(
        "memory://mig-src-6/",
        "memory://mig-dst-6/",
        keys=[key_a],
        to_keys=[key_b],
        mode="rewrap",
        config=config,
        verify=True,
    )
    assert (summary.copied, summary.failed) == (2, 0)
    dst = MemoryStore.shared("mig-dst-6")
    assert dst.read_all("big") == store.read_all("big")
    assert EncryptionClient(key_b).get((dst, "big")) == big


def test_native_in_place_is_refused(key_a: str) -> None:
    """A native migration onto its own prefix is refused, pointing at rewrap."""
    with pytest.raises(ConfigurationError, match="rewrap"):
        migrate("memory://mig-src-7/", "memory://mig-src-7/", keys=[key_a])


def test_cli_migrate_and_rewrap(key_a: str, key_b: str, tmp_path: Path) -> None:
    """cse migrate --json reports totals and exits 0; a failed object makes it exit 1; cse rewrap rotates."""
    store = MemoryStore.shared("mig-src-8")
    _fill(EncryptionClient(key_a), store, "", 4)
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "migrate",
            "memory://mig-src-8/",
            "memory://mig-dst-8/",
            "--key",
            key_a,
            "--to-key",
            key_b,
            "--json",
            "--journal",
            str(tmp_path / "j.db"),
            "--verify",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["copied"], report["failed"], report["ok"]) == (4, 0, True)
    assert report["kms_calls"] == 0  # RSA keys: no key service
    store.put("zz-plain", b"plain", {})
    result = runner.invoke(
        main,
        [
            "migrate",
            "memory://mig-src-8/",
            "memory://mig-dst-8/",
            "--key",
            key_a,
            "--journal",
            str(tmp_path / "j.db"),
        ],
    )
    assert result.exit_code == 1
    assert "FAILED memory://mig-src-8/zz-plain" in result.output
    assert "skipped" in result.output
    store.delete("zz-plain")
    result = runner.invoke(
        main, ["rewrap", "memory://mig-dst-8/", "--key", key_b, "--to-key", key_a, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["copied"] == 4
    assert EncryptionClient(key_a).get("memory://mig-dst-8/o003") is not None
