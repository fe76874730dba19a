"""Unfinished multipart uploads: put and upload_file abort their own on every failure they survive;
``cse uploads`` (and :mod:`cse.uploads`) lists and aborts what a hard kill leaves, on every store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cse import EncryptionClient, TransferConfig
from cse.cli import main
from cse.exceptions import ConfigurationError, MultipartError, StoreError
from cse.stores.base import ObjectInfo, PartInfo, Store
from cse.stores.file import FileStore
from cse.stores.memory import MemoryStore
from cse.uploads import abort_uploads, list_uploads, parse_age
from tests import json_formats

json_formats.register()

SMALL = TransferConfig(multipart_threshold=0, part_size=16 * 1024, chunk_size=4096, part_attempts=2)


class BreakingStore(MemoryStore):
    """A memory store that fails one chosen operation (``upload_part`` of a part number, or
    ``complete_multipart``), and optionally every ``abort_multipart``."""

    def __init__(self, fail: str, part: int = 1, abort_fails: bool = False) -> None:
        super().__init__()
        self.fail, self.part, self.abort_fails = fail, part, abort_fails

    def upload_part(
        self, key: str, upload_id: str, part_number: int, data: Any, headers: Any = None
    ) -> PartInfo:
        if self.fail == "part" and part_number == self.part:
            raise StoreError(f"injected failure of part {part_number}")
        if self.fail == "interrupt" and part_number == self.part:
            raise KeyboardInterrupt
        return super().upload_part(key, upload_id, part_number, data, headers)

    def complete_multipart(self, key: str, upload_id: str, parts: Any) -> ObjectInfo:
        if self.fail == "complete":
            raise StoreError("injected failure of the completion")
        return super().complete_multipart(key, upload_id, parts)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        if self.abort_fails:
            raise StoreError("injected failure of the abort")
        super().abort_multipart(key, upload_id)


def _chunks_then(error: BaseException) -> Iterator[bytes]:
    yield os.urandom(50_000)
    raise error


def _put_bytes(client: EncryptionClient, store: Store, tmp_path: Path) -> None:
    client.put((store, "k"), os.urandom(100_000))


def _put_failing_source(client: EncryptionClient, store: Store, tmp_path: Path) -> None:
    client.put((store, "k"), _chunks_then(OSError("disk went away")))


def _put_wrong_length(client: EncryptionClient, store: Store, tmp_path: Path) -> None:
    client.put((store, "k"), os.urandom(100_000), content_length=90_000)


def _put_interrupted_callback(client: EncryptionClient, store: Store, tmp_path: Path) -> None:
    seen = [0]

    def callback(n: int) -> None:
        seen[0] += n
        if seen[0] > 40_000:
            raise KeyboardInterrupt

    client.put((store, "k"), os.urandom(100_000), callback=callback)


def _upload_file(client: EncryptionClient, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    path.write_bytes(os.urandom(100_000))
    client.upload_file(path, (store, "k"))


def _writer(client: EncryptionClient, store: Store, tmp_path: Path) -> None:
    with client.open_writer((store, "k")) as writer:
        writer.write(os.urandom(60_000))
        raise RuntimeError("the producer failed")


PUTS: dict[str, Callable[[EncryptionClient, Store, Path], None]] = {
    "put": _put_bytes,
    "upload_file": _upload_file,
    "open_writer": _writer,
}


@pytest.mark.parametrize("fmt", ["cse-v1", "test-gcm"])
@pytest.mark.parametrize("how", sorted(PUTS))
@pytest.mark.parametrize("fail", ["part", "complete", "interrupt"])
def test_every_failed_put_aborts_its_upload(
    fmt: str, how: str, fail: str, key_a: str, tmp_path: Path
) -> None:
    store = BreakingStore(fail)
    client = EncryptionClient(key_a, format=fmt, config=SMALL)
    with pytest.raises((StoreError, KeyboardInterrupt, RuntimeError)) as info:
        PUTS[how](client, store, tmp_path)
    if fail != "interrupt" and how != "open_writer":
        assert isinstance(info.value, MultipartError) and "was aborted" in str(info.value)
    assert store.list_multipart_uploads() == []
    assert list(store.list()) == []


@pytest.mark.parametrize(
    "body", [_put_failing_source, _put_wrong_length, _put_interrupted_callback], ids=lambda f: f.__name__
)
def test_failures_of_the_body_abort_the_upload(
    body: Callable[[EncryptionClient, Store, Path], None], key_a: str, tmp_path: Path
) -> None:
    store = MemoryStore()
    with pytest.raises((OSError, ConfigurationError, KeyboardInterrupt)):
        body(EncryptionClient(key_a, config=SMALL), store, tmp_path)
    assert store.list_multipart_uploads() == []
    assert list(store.list()) == []


@pytest.mark.parametrize("how", ["put", "upload_file"])
def test_an_upload_that_cannot_be_aborted_says_how_to_clean_it(how: str, key_a: str, tmp_path: Path) -> None:
    store = BreakingStore("part", abort_fails=True)
    with pytest.raises(MultipartError) as info:
        PUTS[how](EncryptionClient(key_a, config=SMALL), store, tmp_path)
    message = str(info.value)
    [left] = store.list_multipart_uploads()
    assert "could not be aborted" in message and left.upload_id in message
    assert f"cse uploads {store.url('k')} --abort" in message
    assert "was aborted" not in message


def test_an_interrupt_whose_abort_fails_carries_a_note(key_a: str, tmp_path: Path) -> None:
    if sys.version_info < (3, 11):
        pytest.skip("exception notes need Python 3.11")
    store = BreakingStore("interrupt", abort_fails=True)
    with pytest.raises(KeyboardInterrupt) as info:
        _put_bytes(EncryptionClient(key_a, config=SMALL), store, tmp_path)
    notes = getattr(info.value, "__notes__", [])
    assert any("could not be aborted" in note and "cse uploads" in note for note in notes)


# ------------------------------------------------------------------------------------- the library


def _leave_upload(store: Store, key: str, parts: int, size: int = 20_000) -> str:
    upload_id = store.create_multipart(key, {"note": "left"})
    for number in range(1, parts + 1):
        store.upload_part(key, upload_id, number, os.urandom(size))
    return upload_id


@pytest.mark.parametrize("make", [MemoryStore, "file"])
def test_list_and_abort_uploads(make: Any, tmp_path: Path) -> None:
    store: Store = FileStore(str(tmp_path / "vault")) if make == "file" else make()
    a = _leave_upload(store, "dir/a.bin", 2)
    b = _leave_upload(store, "dir/b.bin", 0)
    _leave_upload(store, "other/c.bin", 1)
    found = list_uploads((store, "dir/"))
    assert [(u.key, u.upload_id, u.parts, u.bytes) for u in found] == [
        ("dir/a.bin", a, 2, 40_000),
        ("dir/b.bin", b, 0, 0),
    ]
    assert all(u.initiated is not None and u.url == store.url(u.key) for u in found)
    assert list_uploads((store, "dir/"), older_than="1h") == []
    assert abort_uploads((store, "dir/"), older_than=3600) == []
    assert len(list_uploads((store, ""))) == 3
    aborted = abort_uploads((store, "dir/"))
    assert {u.upload_id for u in aborted} == {a, b}
    assert [u.key for u in list_uploads((store, ""))] == ["other/c.bin"]
    assert abort_uploads((store, ""), older_than=timedelta(0))[0].key == "other/c.bin"
    assert list_uploads((store, "")) == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1.5d", 129_600), ("1w", 604_800)],
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "2x", "h", "-1h", True, -5])
def test_a_bad_age_says_what_an_age_is(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="age"):
        parse_age(bad)


def test_the_command_lists_and_aborts_on_file(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path / "vault"))
    upload_id = _leave_upload(store, "x/big.bin", 3)
    prefix = store.url("x/")
    runner = CliRunner()
    listed = runner.invoke(main, ["uploads", prefix])
    assert listed.exit_code == 0 and upload_id in listed.output and "3 parts" in listed.output
    bad = runner.invoke(main, ["uploads", prefix, "--abort", "--older-than", "soon"])
    assert bad.exit_code == 1 and "is not an age" in bad.output
    kept = runner.invoke(main, ["uploads", prefix, "--abort", "--older-than", "2h", "--json"])
    assert json.loads(kept.stdout) == {"aborted": []}
    empty = runner.invoke(main, ["uploads", store.url("nothing/")])
    assert empty.exit_code == 0 and "no unfinished uploads" in empty.output


# ----------------------------------------------------------------- a hard kill, on every store


def _kill_mid_upload(url: str, key: str, store: Store, prefix: str) -> None:
    """Run ``cse put - URL`` in a subprocess, feed it more than the multipart threshold, and SIGKILL it
    once the store holds a part of its upload (stdin stays open, so it cannot finish first)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cse.cli", "put", "-", url, "--key", key, "--no-progress"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None

    def feed() -> None:
        try:
            for _ in range(26):  # 26 MiB: the 16 MiB threshold, then parts of 8 MiB
                proc.stdin.write(os.urandom(1 << 20))  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError, OSError):
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            uploads = list_uploads((store, prefix))
            if uploads and uploads[0].parts >= 1:
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.05)
        else:
            pytest.fail("the put never had a part uploaded")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        feeder.join(30)
        if proc.stdin:
            proc.stdin.close()
    assert proc.returncode == -signal.SIGKILL


def _after_kill(url_prefix: str, store: Store, prefix: str, check_age: bool = True) -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["uploads", url_prefix, "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["url"] == store.url(f"{prefix}big.bin") and row["parts"] >= 1 and row["bytes"] >= row["parts"]
    assert row["initiated"] and row["upload_id"]
    if check_age:  # moto reports every upload as started in 2010
        assert json.loads(
            runner.invoke(main, ["uploads", url_prefix, "--abort", "--older-than", "1h", "--json"]).stdout
        ) == {"aborted": []}
    aborted = runner.invoke(main, ["uploads", url_prefix, "--abort", "--json"])
    assert aborted.exit_code == 0, aborted.output
    assert [r["upload_id"] for r in json.loads(aborted.stdout)["aborted"]] == [row["upload_id"]]
    assert list_uploads((store, prefix)) == []
    assert [info.key for info in store.list(prefix)] == []


def test_a_killed_put_on_file_is_listed_and_aborted(tmp_path: Path, key_a: str) -> None:
    root = tmp_path / "vault"
    store = FileStore(str(root))
    _kill_mid_upload(store.url("k/big.bin"), key_a, store, "k/")
    _after_kill(store.url("k/"), store, "k/")
    # the parts are gone from the disk, not only from the listing
    left = [p for p in root.rglob("*") if p.is_file() and ".cse" in p.parts and "uploads" in p.parts]
    assert left == []


def test_a_killed_put_on_s3_is_listed_and_aborted(
    moto_endpoint: str, s3_bucket: str, key_a: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cse_s3")
    from cse.registry import open_store

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    store, _ = open_store(f"s3://{s3_bucket}/")
    _kill_mid_upload(f"s3://{s3_bucket}/k/big.bin", key_a, store, "k/")
    _after_kill(f"s3://{s3_bucket}/k/", store, "k/", check_age=False)


def test_a_killed_put_on_oss_is_listed_and_aborted(oss_env: str, oss_bucket_name: str, key_a: str) -> None:
    pytest.importorskip("cse_oss")
    from cse.registry import open_store

    store, _ = open_store(f"oss://{oss_bucket_name}/")
    _kill_mid_upload(f"oss://{oss_bucket_name}/k/big.bin", key_a, store, "k/")
    _after_kill(f"oss://{oss_bucket_name}/k/", store, "k/")
