"""Files in parts (cse.transfer): parallel part encryption at offsets, resumable uploads (checkpoint, or
the upload's crypto context from the store when the checkpoint is gone, and a killed process), and
resumable downloads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cse.client import EncryptionClient
from cse.config import TransferConfig
from cse.exceptions import ConfigurationError, StoreError
from cse.stores.base import GetResult, PartInfo
from cse.stores.memory import MemoryStore
from tests.conftest import OSS_AK, OSS_REGION, OSS_SECRET, oss2_bucket

KiB = 1024
MiB = 1024 * KiB
CONFIG = TransferConfig(
    multipart_threshold=256 * KiB, part_size=128 * KiB, max_concurrency=3, segment_size=64 * KiB
)


class FailingStore(MemoryStore):
    """A memory store whose upload_part fails for chosen part numbers, and whose get fails after N reads:
    a store that breaks mid-transfer."""

    def __init__(self, fail_parts: set[int] = frozenset(), fail_gets_after: int | None = None) -> None:  # type: ignore[assignment]
        super().__init__()
        self.fail_parts = set(fail_parts)
        self.fail_gets_after = fail_gets_after
        self.gets = 0

    def upload_part(
        self, key: str, upload_id: str, part_number: int, data: Any, headers: Any = None
    ) -> PartInfo:
        if part_number in self.fail_parts:
            raise StoreError(f"injected failure of part {part_number}")
        return super().upload_part(key, upload_id, part_number, data, headers)

    def get(self, key: str, start: int = 0, end: int | None = None) -> GetResult:
        self.gets += 1
        if self.fail_gets_after is not None and self.gets > self.fail_gets_after:
            raise StoreError("injected failure of a read")
        return super().get(key, start, end)


def _file(tmp_path: Path, size: int, name: str = "in.bin") -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


def _count(store: MemoryStore, operation: str) -> int:
    return sum(1 for op, _ in store.requests if op == operation)


@pytest.mark.parametrize("fmt", ["oss-v2", "cse-v1"])
@pytest.mark.parametrize("size", [256 * KiB + 1, 1 * MiB, 1 * MiB + 17])
def test_parallel_parts_round_trip(tmp_path: Path, key_a: str, fmt: str, size: int) -> None:
    """upload_file encrypts parts at their offsets in parallel; the object reads back whole and in ranges."""
    path, data = _file(tmp_path, size)
    store = MemoryStore()
    client = EncryptionClient(key_a, format=fmt, config=CONFIG)
    result = client.upload_file(path, (store, "o"))
    assert result.parts == -(-size // (128 * KiB))
    assert result.size == size
    assert client.get((store, "o")) == data
    assert client.get((store, "o"), range="1000-300000") == data[1000:300001]
    head = client.head((store, "o"))
    assert head.size == size
    if fmt == "oss-v2":
        assert head.metadata["client-side-encryption-data-size"] == str(size)
        assert head.metadata["client-side-encryption-part-size"] == str(128 * KiB)


def test_gcm_formats_refuse_a_checkpoint(tmp_path: Path, key_a: str) -> None:
    """S3 V3 is authenticated as a whole: a resumable upload of it is refused, saying what to do."""
    pytest.importorskip("cse_s3")
    path, _ = _file(tmp_path, 10)
    client = EncryptionClient(key_a, format="s3-v3")
    with pytest.raises(ConfigurationError, match="cannot be resumed"):
        client.upload_file(path, (MemoryStore(), "o"), checkpoint=tmp_path / "ckpt")


def test_failed_upload_without_checkpoint_is_aborted(tmp_path: Path, key_a: str) -> None:
    """Without a checkpoint, a failed part aborts the upload: nothing is left in the store."""
    path, _ = _file(tmp_path, 1 * MiB)
    store = FailingStore({3})
    client = EncryptionClient(key_a, format="oss-v2", config=CONFIG)
    with pytest.raises(StoreError, match="aborted"):
        client.upload_file(path, (store, "o"))
    assert store.list_multipart_uploads() == []
    assert list(store.list()) == []


@pytest.mark.parametrize("fmt", ["oss-v2", "cse-v1"])
def test_resume_from_checkpoint(tmp_path: Path, key_a: str, fmt: str) -> None:
    """A failed resumable upload keeps its upload and checkpoint; the checkpoint holds the wrapped key only;
    the second run sends only the parts that were missing."""
    path, data = _file(tmp_path, 1 * MiB + 5)
    checkpoint = tmp_path / "upload.ckpt"
    store = FailingStore({5, 6})
    client = EncryptionClient(key_a, format=fmt, config=CONFIG)
    with pytest.raises(StoreError, match="continue it") as info:
        client.upload_file(path, (store, "o"), checkpoint=checkpoint)
    assert str(checkpoint) in str(info.value)
    [upload] = store.list_multipart_uploads()
    saved = json.loads(checkpoint.read_text())
    assert saved["upload_id"] == upload.upload_id
    assert oct(checkpoint.stat().st_mode & 0o777) == "0o600"
    material = client._open  # the key is only reachable by unwrapping what the checkpoint holds:
    envelope = client._format(store, fmt).decode(saved["metadata"])
    plain_key = client.unwrap(envelope).key
    text = checkpoint.read_text()
    assert plain_key.hex() not in text.lower()
    import base64

    assert base64.b64encode(plain_key).decode() not in text
    del material
    held = store.list_parts("o", upload.upload_id)
    assert {1, 2, 3, 4} <= {p.part_number for p in held}
    assert not {5, 6} & {p.part_number for p in held}
    sent_before = _count(store, "upload_part")
    store.fail_parts.clear()
    result = client.upload_file(path, (store, "o"), checkpoint=checkpoint)
    assert result.parts == 9
    assert result.parts_resumed == len(held)
    assert _count(store, "upload_part") - sent_before == 9 - len(held)
    assert client.get((store, "o")) == data
    assert not checkpoint.exists()
    assert store.list_multipart_uploads() == []


def test_changed_file_starts_over(tmp_path: Path, key_a: str) -> None:
    """A checkpoint of another version of the file (size or mtime differ) is not used; and a part in the
    store that is not this file's bytes (MD5 differs) is sent again."""
    path, _ = _file(tmp_path, 1 * MiB)
    checkpoint = tmp_path / "upload.ckpt"
    store = FailingStore({8})
    client = EncryptionClient(key_a, format="oss-v2", config=CONFIG)
    with pytest.raises(StoreError):
        client.upload_file(path, (store, "o"), checkpoint=checkpoint)
    old_upload = json.loads(checkpoint.read_text())["upload_id"]
    path, data = _file(tmp_path, 1 * MiB)  # same size, new bytes, new mtime
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    store.fail_parts.clear()
    before = _count(store, "upload_part")
    result = client.upload_file(path, (store, "o"), checkpoint=checkpoint)
    # The checkpoint did not fit; the old upload (same key, same size) was found in the store, but none of
    # its parts hold this file's ciphertext, so all 8 parts were sent again.
    assert _count(store, "upload_part") - before == 8
    assert result.parts_resumed == 0
    assert client.get((store, "o")) == data
    assert old_upload


def test_resumable_download(tmp_path: Path, key_a: str) -> None:
    """A download that breaks keeps its partial file and checkpoint; the next run reads only the rest; an
    object changed in between starts over."""
    size = 1 * MiB + 3
    store = FailingStore(fail_gets_after=None)
    client = EncryptionClient(
        key_a,
        format="cse-v1",
        config=TransferConfig(part_size=128 * KiB, max_concurrency=1, segment_size=64 * KiB),
    )
    data = os.urandom(size)
    client.put((store, "o"), data)
    target = tmp_path / "out.bin"
    checkpoint = tmp_path / "dl.ckpt"
    store.gets, store.fail_gets_after = 0, 4
    with pytest.raises(StoreError, match="injected"):
        client.download_file((store, "o"), target, checkpoint=checkpoint)
    assert not target.exists()
    assert (tmp_path / "out.bin.cse-partial").exists()
    done = json.loads(checkpoint.read_text())["done"]
    assert done == [1, 2, 3, 4]
    store.gets, store.fail_gets_after = 0, None
    client.download_file((store, "o"), target, checkpoint=checkpoint)
    assert store.gets == 5  # parts 5..9 only
    assert target.read_bytes() == data
    assert not checkpoint.exists()
    assert not (tmp_path / "out.bin.cse-partial").exists()
    # Broken again, then the object is replaced: the next run does not mix the two versions.
    store.gets, store.fail_gets_after = 0, 2
    with pytest.raises(StoreError, match="injected"):
        client.download_file((store, "o"), tmp_path / "again.bin", checkpoint=checkpoint)
    new = os.urandom(size)
    client.put((store, "o"), new)
    store.gets, store.fail_gets_after = 0, None
    client.download_file((store, "o"), tmp_path / "again.bin", checkpoint=checkpoint)
    assert store.gets == 9
    assert (tmp_path / "again.bin").read_bytes() == new


def test_gcm_download_refuses_a_checkpoint(tmp_path: Path, key_a: str) -> None:
    """S3 V3 ranges are not authenticated on their own: no resumable download, a clear error."""
    pytest.importorskip("cse_s3")
    store = MemoryStore()
    client = EncryptionClient(key_a, format="s3-v3")
    client.put((store, "o"), b"x" * 100)
    with pytest.raises(ConfigurationError, match="authenticated only as a whole"):
        client.download_file((store, "o"), tmp_path / "o", checkpoint=tmp_path / "c")


# ------------------------------------------------------------------------------ OSS, through the emulator


def test_resume_on_oss_without_checkpoint_uses_list_parts(
    oss_emulator: Any, oss_bucket_name: str, key_a: str, tmp_path: Path
) -> None:
    """The checkpoint is lost, the upload is not: its crypto context comes back from ListParts and the
    upload continues; oss2's CryptoBucket reads the result."""
    from cse_oss.store import OssStore

    path, data = _file(tmp_path, 1 * MiB + 100)
    checkpoint = tmp_path / "upload.ckpt"

    class Breaking(OssStore):
        fail = True

        def upload_part(
            self, key: str, upload_id: str, part_number: int, data: Any, headers: Any = None
        ) -> PartInfo:
            if self.fail and part_number >= 4:
                raise StoreError("injected")
            return super().upload_part(key, upload_id, part_number, data, headers)

    store = Breaking(oss2_bucket(oss_emulator, oss_bucket_name))
    client = EncryptionClient(key_a, config=CONFIG)
    with pytest.raises(StoreError):
        client.upload_file(path, (store, "o"), checkpoint=checkpoint)
    checkpoint.unlink()
    fresh = OssStore(oss2_bucket(oss_emulator, oss_bucket_name))  # another process: knows nothing
    result = client.upload_file(path, (fresh, "o"), checkpoint=checkpoint)
    assert result.parts_resumed >= 3
    assert client.get((fresh, "o")) == data
    assert fresh.list_multipart_uploads() == []
    import oss2
    from oss2.crypto import RsaProvider

    pems = Path(key_a.removeprefix("rsa://"))
    provider = RsaProvider(
        key_pair={"private_key": pems.read_text(), "public_key": pems.with_name("a.pub.pem").read_text()}
    )
    crypto = oss2.CryptoBucket(
        oss2.AuthV4(OSS_AK, OSS_SECRET), oss_emulator.endpoint, oss_bucket_name, provider, region=OSS_REGION
    )
    assert crypto.get_object("o").read() == data


_CHILD = """
import sys
from cse import EncryptionClient, TransferConfig
client = EncryptionClient(sys.argv[1], config=TransferConfig(multipart_threshold=1, part_size=100 * 1024,
                          max_concurrency=1))
client.upload_file(sys.argv[2], sys.argv[3], checkpoint=sys.argv[4])
"""


def test_killed_upload_resumes(
    oss_env: str, oss_emulator: Any, oss_bucket_name: str, key_a: str, tmp_path: Path
) -> None:
    """A process killed (SIGKILL) in the middle of a resumable upload: the next run continues it from the
    checkpoint and the object arrives once, correct."""
    path, data = _file(tmp_path, 6 * MiB)
    checkpoint = tmp_path / "upload.ckpt"
    url = f"oss://{oss_bucket_name}/big.bin"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, key_a, str(path), url, str(checkpoint)])
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            with oss_emulator.lock:
                uploads = list(oss_emulator.buckets[oss_bucket_name].uploads.values())
                parts = max((len(u.parts) for u in uploads), default=0)
            if parts >= 10:
                break
            assert child.poll() is None, "the upload finished before it could be killed"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert checkpoint.exists()
    saved = json.loads(checkpoint.read_text())
    client = EncryptionClient(key_a, config=TransferConfig(multipart_threshold=1, part_size=100 * KiB))
    result = client.upload_file(path, url, checkpoint=checkpoint)
    assert result.parts == 62
    assert result.parts_resumed >= len(saved.get("parts", {}))
    assert client.get(url) == data
    assert not checkpoint.exists()
    with oss_emulator.lock:
        assert not oss_emulator.buckets[oss_bucket_name].uploads


def test_cli_put_and_get_continue_from_a_checkpoint(
    oss_env: str, oss_emulator: Any, oss_bucket_name: str, key_a: str, tmp_path: Path
) -> None:
    """``cse put --checkpoint`` continues a broken upload; ``cse get --checkpoint`` downloads in parts."""
    from click.testing import CliRunner
    from cse_oss.store import OssStore

    from cse.cli import main

    path, data = _file(tmp_path, 20 * MiB + 1)
    checkpoint = tmp_path / "put.ckpt"

    class Breaking(OssStore):
        def upload_part(
            self, key: str, upload_id: str, part_number: int, data: Any, headers: Any = None
        ) -> PartInfo:
            if part_number == 3:
                raise StoreError("injected")
            return super().upload_part(key, upload_id, part_number, data, headers)

    store = Breaking(oss2_bucket(oss_emulator, oss_bucket_name))
    with pytest.raises(StoreError):
        EncryptionClient(key_a).upload_file(path, (store, "big"), checkpoint=checkpoint)
    assert checkpoint.exists()
    url = f"oss://{oss_bucket_name}/big"
    runner = CliRunner()
    result = runner.invoke(
        main, ["put", str(path), url, "--key", key_a, "--checkpoint", str(checkpoint), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["parts"] == 3
    assert report["parts_resumed"] >= 1
    assert not checkpoint.exists()
    out = tmp_path / "out.bin"
    result = runner.invoke(
        main, ["get", url, str(out), "--key", key_a, "--checkpoint", str(tmp_path / "get.ckpt"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == data
    result = runner.invoke(main, ["put", "-", url, "--key", key_a, "--checkpoint", str(checkpoint)])
    assert result.exit_code == 2
    assert "standard input" in result.output


def test_put_rounds_ctr_parts_to_the_block(key_a: str) -> None:
    """A configured part size off the 16-byte boundary is rounded up for OSS V2 (put of bytes, too)."""
    store = MemoryStore()
    config = TransferConfig(multipart_threshold=256 * KiB, part_size=100 * KiB + 1)
    client = EncryptionClient(key_a, format="oss-v2", config=config)
    data = os.urandom(300 * KiB)
    client.put((store, "o"), data)
    assert client.head((store, "o")).metadata["client-side-encryption-part-size"] == str(100 * KiB + 16)
    assert client.get((store, "o")) == data


def test_a_checkpoint_that_cannot_be_continued_leaves_no_upload(tmp_path: Path, key_a: str) -> None:
    """A checkpoint of an oss-v2 upload, then the same file in cse-v1: the old upload is aborted, not left
    behind, and the new upload completes."""
    path, data = _file(tmp_path, 1 * MiB)
    checkpoint = tmp_path / "upload.ckpt"
    store = FailingStore({8})
    with pytest.raises(StoreError):
        EncryptionClient(key_a, format="oss-v2", config=CONFIG).upload_file(
            path, (store, "o"), checkpoint=checkpoint
        )
    [old] = store.list_multipart_uploads()
    store.fail_parts.clear()
    EncryptionClient(key_a, format="cse-v1", config=CONFIG).upload_file(
        path, (store, "o"), checkpoint=checkpoint
    )
    assert store.list_multipart_uploads() == []
    assert EncryptionClient(key_a).get((store, "o")) == data
    assert old.upload_id
