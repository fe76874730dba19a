"""Partial files of downloads: named after their destination, 0600, removed by the next download to the same
destination after a SIGKILL, kept while their download runs; resumable downloads still resume."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cse import EncryptionClient, TransferConfig
from cse.cli import main
from cse.partials import create_partial, partials_of, remove_stale_partials

CONFIG = TransferConfig(part_size=64 * 1024, segment_size=16 * 1024, max_concurrency=1, chunk_size=16 * 1024)

# Downloads URL into DEST, and blocks for ever in the progress callback once it has written something
# (after its first part with a checkpoint), having touched MARKER: the parent then kills it with SIGKILL.
_KILLED = textwrap.dedent(
    """
    import pathlib, sys, time
    from cse import EncryptionClient, TransferConfig
    key, url, dest, marker, checkpoint = sys.argv[1:6]
    config = TransferConfig(part_size=64 * 1024, max_concurrency=1, chunk_size=16 * 1024)
    def stall(n):
        pathlib.Path(marker).write_text("written")
        time.sleep(3600)
    client = EncryptionClient(key, config=config)
    client.download_file(url, dest, callback=stall, checkpoint=checkpoint or None)
    """
)


def _kill_download(key: str, url: str, dest: Path, checkpoint: Path | None = None) -> None:
    marker = dest.parent / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED, key, url, str(dest), str(marker), str(checkpoint or "")],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the download never wrote anything"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    marker.unlink()
    time.sleep(1.1)  # past the grace period of a partial that was just created


@pytest.fixture
def stored(tmp_path: Path, key_a: str) -> tuple[str, bytes]:
    data = os.urandom(300_000)
    url = (tmp_path / "vault").as_uri() + "/obj.bin"
    EncryptionClient(key_a, config=CONFIG).put(url, data)
    return url, data


def test_a_killed_get_leaves_a_partial_the_next_get_removes(
    tmp_path: Path, key_a: str, stored: tuple[str, bytes]
) -> None:
    url, data = stored
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "result.bin"
    other = out / ".other.bin.abcd1234.cse-partial"  # a partial of another destination
    other.write_bytes(b"not ours")
    _kill_download(key_a, url, dest)
    [partial] = partials_of(dest)
    assert partial.name.startswith(".result.bin.") and partial.name.endswith(".cse-partial")
    assert stat.S_IMODE(partial.stat().st_mode) == 0o600
    assert partial.stat().st_size > 0 and not dest.exists()
    result = CliRunner().invoke(main, ["get", url, str(dest), "--key", key_a, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert dest.read_bytes() == data
    assert partials_of(dest) == [] and not partial.exists()
    assert other.read_bytes() == b"not ours"


def test_the_library_download_removes_a_killed_partial(
    tmp_path: Path, key_a: str, stored: tuple[str, bytes]
) -> None:
    url, data = stored
    dest = tmp_path / "lib.bin"
    _kill_download(key_a, url, dest)
    assert len(partials_of(dest)) == 1
    EncryptionClient(key_a).download_file(url, dest)
    assert dest.read_bytes() == data and partials_of(dest) == []


def test_a_running_download_keeps_its_partial(tmp_path: Path) -> None:
    dest = tmp_path / "busy.bin"
    fd, partial = create_partial(dest)
    try:
        assert stat.S_IMODE(partial.stat().st_mode) == 0o600
        old = time.time() - 3600
        os.utime(partial, (old, old))
        assert remove_stale_partials(dest) == [] and partial.exists()  # locked: its download runs
    finally:
        os.close(fd)
    assert remove_stale_partials(dest) == [partial] and not partial.exists()


def test_a_fresh_partial_is_kept_for_a_moment(tmp_path: Path) -> None:
    dest = tmp_path / "new.bin"
    partial = tmp_path / ".new.bin.zzzz.cse-partial"
    partial.write_bytes(b"")  # unlocked, but just created: its creator may be about to lock it
    assert remove_stale_partials(dest) == []
    old = time.time() - 60
    os.utime(partial, (old, old))
    assert remove_stale_partials(dest) == [partial]


def test_a_killed_resumable_download_resumes(tmp_path: Path, key_a: str, stored: tuple[str, bytes]) -> None:
    url, data = stored
    dest = tmp_path / "resumed.bin"
    checkpoint = tmp_path / "get.ckpt"
    _kill_download(key_a, url, dest, checkpoint)
    partial = dest.with_name(dest.name + ".cse-partial")
    assert stat.S_IMODE(partial.stat().st_mode) == 0o600
    done = json.loads(checkpoint.read_text())["done"]
    assert done == [1]
    got: list[int] = []
    EncryptionClient(key_a, config=CONFIG).download_file(
        url, dest, checkpoint=checkpoint, callback=got.append
    )
    assert dest.read_bytes() == data
    assert sum(got) == len(data) - 64 * 1024  # part 1 was not read again
    assert not partial.exists() and not checkpoint.exists()
