"""The ``cse`` fsspec protocol (cse/fs.py) with the real fsspec, pandas, pyarrow, dask and polars.

Stores are cse's own: ``memory://``, ``file://`` and ``s3://`` on moto's server. The byte counts come from a
``MemoryStore`` subclass that adds up the bytes each ranged get returns (the store itself is unchanged).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

fsspec = pytest.importorskip("fsspec")
pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from click.testing import CliRunner  # noqa: E402

from cse.cli import main  # noqa: E402
from cse.exceptions import ConfigurationError, DecryptionError, NoMatchingKeyError  # noqa: E402
from cse.fs import EncryptedFile, EncryptedFileSystem  # noqa: E402
from cse.stores.base import GetResult  # noqa: E402
from cse.stores.memory import MemoryStore  # noqa: E402

SMALL = {"multipart_threshold": 64 * 1024, "part_size": 32 * 1024, "chunk_size": 8192, "segment_size": 1000}


class CountingStore(MemoryStore):
    """A private memory store that adds up the stored bytes its gets return."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched = 0
        self.gets = 0
        self._count_lock = threading.Lock()

    def get(self, key: str, start: int = 0, end: int | None = None) -> GetResult:
        result = super().get(key, start, end)
        with self._count_lock:
            self.fetched += result.end - result.start + 1
            self.gets += 1
        return result


@pytest.fixture
def bucket() -> Iterator[str]:
    name = f"fs-{uuid.uuid4().hex[:12]}"
    yield name
    MemoryStore.reset_shared(name)


@pytest.fixture
def so(key_a: str) -> dict[str, Any]:
    """storage_options for the chained form."""
    return {"cse": {"key": key_a}}


def _frame(rows: int = 2000) -> Any:
    return pd.DataFrame(
        {"id": range(rows), "value": [i * 0.5 for i in range(rows)], "name": [f"n{i}" for i in range(rows)]}
    )


# ---------------------------------------------------------------------------- packaging and import


def test_import_cse_does_not_import_fsspec() -> None:
    code = "import sys, cse, cse.client; print('fsspec' in sys.modules, 'cse.fs' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_protocol_is_registered_by_entry_point_without_an_import(key_a: str, tmp_path: Path) -> None:
    # A fresh interpreter that never imports cse: fsspec finds the protocol through the entry point.
    code = (
        "import sys, fsspec\n"
        f"so = {{'cse': {{'key': {key_a!r}}}}}\n"
        f"url = 'cse::file://{tmp_path}/x.bin'\n"
        "with fsspec.open(url, 'wb', **so) as f: f.write(b'hello')\n"
        "with fsspec.open(url, 'rb', **so) as f: print(f.read().decode(), type(f).__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["hello", "cse.fs"]
    assert (tmp_path / "x.bin").read_bytes() != b"hello"  # stored encrypted


def test_inner_s3_and_oss_classes_parse_urls_and_refuse_to_be_used() -> None:
    s3 = fsspec.get_filesystem_class("s3")
    oss = fsspec.get_filesystem_class("oss")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        assert s3._strip_protocol("s3://bucket/a/b/") == "bucket/a/b"
        with pytest.raises(ImportError, match="cse::s3:// URLs"):
            s3()
    try:
        import ossfs  # noqa: F401
    except ImportError:
        assert oss._strip_protocol("oss://bucket/k") == "bucket/k"
        with pytest.raises(ImportError, match="ossfs"):
            oss()


# ------------------------------------------------------------------------------------------ paths


def test_chained_and_standalone_forms_name_the_same_objects(
    key_a: str, bucket: str, so: dict[str, Any]
) -> None:
    fs, path = fsspec.core.url_to_fs(f"cse::memory://{bucket}/dir/a.txt", **so)
    assert isinstance(fs, EncryptedFileSystem)
    assert path == f"/{bucket}/dir/a.txt"
    fs.pipe_file(path, b"chained")
    standalone = fsspec.filesystem("cse", key=key_a)
    assert standalone.cat_file(f"memory://{bucket}/dir/a.txt") == b"chained"
    assert standalone.ls(f"memory://{bucket}/dir", detail=False) == [f"memory://{bucket}/dir/a.txt"]
    # One URL for the standalone form: cse://STORE-URL.
    with fsspec.open(f"cse://memory://{bucket}/dir/a.txt", "rb", key=key_a) as f:
        assert f.read() == b"chained"
    assert fs.unstrip_protocol(path) == f"cse::memory://{bucket}/dir/a.txt"
    with pytest.raises(ConfigurationError, match="not a store URL"):
        standalone.cat_file("relative/path")


def test_unknown_options_and_inner_protocol_options_are_refused(key_a: str, bucket: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown option"):
        fsspec.filesystem("cse", key=key_a, colour="blue")
    with pytest.raises(ConfigurationError, match="cse opens its own store"):
        fsspec.open(f"cse::memory://{bucket}/x", "rb", cse={"key": key_a}, memory={"something": 1}).open()


# ------------------------------------------------------------------------------------- reading


@pytest.fixture
def ranged(key_a: str) -> tuple[EncryptedFileSystem, CountingStore, bytes]:
    store = CountingStore()
    fs = EncryptedFileSystem(key_a, stores=[store], skip_instance_cache=True, **SMALL)
    data = os.urandom(200_000)
    fs.pipe_file(store.url("blob"), data)
    store.fetched = store.gets = 0
    return fs, store, data


def test_seek_read_readinto_are_ranged_and_verified(
    ranged: tuple[EncryptedFileSystem, CountingStore, bytes],
) -> None:
    fs, store, data = ranged
    url = store.url("blob")
    with fs.open(url, "rb", block_size=4096) as f:
        assert isinstance(f, EncryptedFile)
        assert f.size == len(data) and f.seekable()
        f.seek(150_000)
        assert f.read(100) == data[150_000:150_100]
        buf = bytearray(50)
        assert f.readinto(buf) == 50 and bytes(buf) == data[150_100:150_150]
        f.seek(-10, io.SEEK_END)
        assert f.read() == data[-10:]
        f.seek(5)
        assert f.read(7) == data[5:12]
    # A few blocks, not the 200 kB object (segments of 1000 bytes plus their tags).
    assert 0 < store.fetched < 30_000


def test_cat_file_and_cat_ranges_fetch_only_their_ranges(
    ranged: tuple[EncryptedFileSystem, CountingStore, bytes],
) -> None:
    fs, store, data = ranged
    url = store.url("blob")
    assert fs.cat_file(url, 1000, 1010) == data[1000:1010]
    assert fs.cat_file(url, -5) == data[-5:]
    assert fs.cat_file(url, 10, -10) == data[10:-10]
    store.fetched = 0
    starts, ends = [0, 99_000, 199_990], [10, 99_500, 200_000]
    assert fs.cat_ranges([url] * 3, starts, ends) == [data[s:e] for s, e in zip(starts, ends)]
    assert store.fetched < 6 * 1100
    got = fs.cat_ranges([url, store.url("missing")], [0, 0], [4, 4])
    assert got[0] == data[:4] and isinstance(got[1], FileNotFoundError)


def test_parquet_column_reads_fetch_a_fraction_of_the_object(key_a: str) -> None:
    store = CountingStore()
    fs = EncryptedFileSystem(key_a, stores=[store], skip_instance_cache=True, block_size=64 * 1024)
    rows = 200_000
    table = pa.table({f"c{i}": pa.array(range(i, rows + i), pa.int64()) for i in range(8)})
    url = store.url("t.parquet")
    with fs.open(url, "wb") as f:
        pq.write_table(table, f, row_group_size=50_000, compression="none")
    stored = store.head("t.parquet").size
    store.fetched = 0
    got = pq.read_table(url, filesystem=fs, columns=["c3"])
    assert got.column("c3").to_pylist() == list(range(3, rows + 3))
    assert store.fetched < stored / 4, (store.fetched, stored)
    store.fetched = 0
    pf = pq.ParquetFile(fs.open(url, "rb"))
    assert pf.read_row_group(2, columns=["c0"]).column("c0")[0].as_py() == 100_000
    assert store.fetched < stored / 16, (store.fetched, stored)


def test_whole_object_authenticated_formats_follow_the_library_rules(key_a: str, bucket: str) -> None:
    # S3's GCM formats verify only whole objects: the reader verifies into memory (within the cap), ranges
    # then come from verified plaintext; above the cap the library's error says what to do.
    pytest.importorskip("cse_s3")
    fs = fsspec.filesystem("cse", key=key_a, format="s3-v3", max_authenticated_buffer=100_000)
    url = f"memory://{bucket}/gcm.bin"
    data = os.urandom(50_000)
    fs.pipe_file(url, data)
    assert fs.info(url)["format"] == "s3-v3" and fs.info(url)["size"] == len(data)
    assert fs.cat_file(url, 100, 200) == data[100:200]
    fs.pipe_file(url, os.urandom(200_000))
    from cse.exceptions import AuthenticatedSizeLimitError

    with pytest.raises(AuthenticatedSizeLimitError):
        fs.cat_file(url, 0, 10)


# ------------------------------------------------------------------------------------- writing


def test_write_streams_multipart_and_appears_only_on_close(key_a: str) -> None:
    store = MemoryStore()
    fs = EncryptedFileSystem(key_a, stores=[store], skip_instance_cache=True, **SMALL)
    url = store.url("big.bin")
    data = os.urandom(500_000)
    f = fs.open(url, "wb")
    for i in range(0, len(data), 7000):
        f.write(data[i : i + 7000])
    # Past the threshold the multipart upload is under way, and there is no object yet.
    for _ in range(100):
        if store.list_multipart_uploads():
            break
        threading.Event().wait(0.02)
    assert len(store.list_multipart_uploads()) == 1
    assert not fs.exists(url)
    assert f.tell() == len(data)
    f.close()
    assert f.writer.result is not None and f.writer.result.parts > 5
    assert fs.cat_file(url) == data
    assert fs.info(url)["size"] == len(data)
    assert store.list_multipart_uploads() == []


@pytest.mark.parametrize("size", [1000, 300_000])
@pytest.mark.parametrize("how", ["fs.open", "text", "fsspec.open", "pandas"])
def test_an_exception_in_the_with_block_leaves_nothing(key_a: str, size: int, how: str) -> None:
    store = MemoryStore()
    fs = EncryptedFileSystem(key_a, stores=[store], skip_instance_cache=True, **SMALL)
    url = store.url("dir/partial.bin")
    fs.pipe_file(store.url("dir/other"), b"x")

    class Boom(Exception):
        pass

    class Exploding:
        """A cell whose text fails after some rows: pandas fails half way through to_csv."""

        calls = 0

        def __str__(self) -> str:
            Exploding.calls += 1
            if Exploding.calls > size // 20:
                raise Boom
            return "v" * 10

    def write_and_fail() -> None:
        if how == "fs.open":
            with fs.open(url, "wb") as f:
                f.write(os.urandom(size))
                raise Boom
        elif how == "text":
            with fs.open(url, "w") as t:
                t.write("x" * size)
                raise Boom
        elif how == "fsspec.open":
            with fsspec.open(f"cse://{url}", "wb", stores=[store], key=key_a, skip_instance_cache=True) as f:
                f.write(os.urandom(size))
                raise Boom
        else:
            frame = pd.DataFrame({"a": [Exploding() for _ in range(size // 10)]})
            frame.to_csv(
                f"cse://{url}",
                storage_options={"stores": [store], "key": key_a, "skip_instance_cache": True, **SMALL},
                chunksize=10,
            )

    with pytest.raises(Boom):
        write_and_fail()
    assert not fs.exists(url)
    assert store.list_multipart_uploads() == []
    assert [i.key for i in store.list("")] == ["dir/other"]


def test_a_failing_upload_raises_from_write_or_close(key_a: str) -> None:
    class Failing(MemoryStore):
        def upload_part(self, *args: Any, **kwargs: Any) -> Any:
            from cse.exceptions import StoreError

            raise StoreError("the store is down")

    store = Failing()
    fs = EncryptedFileSystem(key_a, stores=[store], skip_instance_cache=True, part_attempts=1, **SMALL)
    from cse.exceptions import MultipartError

    def write() -> None:
        with fs.open(store.url("x"), "wb") as f:
            for _ in range(100):
                f.write(os.urandom(10_000))

    with pytest.raises(MultipartError, match="the store is down"):
        write()
    assert store.list_multipart_uploads() == [] and list(store.list("")) == []


def test_modes_and_operations_that_cannot_be_done(key_a: str, bucket: str) -> None:
    fs = fsspec.filesystem("cse", key=key_a)
    url = f"memory://{bucket}/x"
    fs.pipe_file(url, b"data")
    for mode in ("ab", "r+b"):
        with pytest.raises(NotImplementedError, match="written whole"):
            fs.open(url, mode)
    with pytest.raises(FileExistsError):
        fs.open(url, "xb")
    with pytest.raises(NotImplementedError, match="ciphertext"):
        fs.sign(url)
    with pytest.raises(NotImplementedError, match="transactions"), fs.transaction:
        fs.open(url, "wb")
    assert fs.modified(url) is not None


# --------------------------------------------------------------------------- listing and metadata


def test_listings_report_plaintext_sizes_and_only_objects(key_a: str, tmp_path: Path) -> None:
    root = tmp_path / "vault"
    fs, path = fsspec.core.url_to_fs(f"cse::file://{root}", cse={"key": key_a, **SMALL})
    for name, size in (("a.bin", 10), ("sub/b.bin", 100_000), ("sub/deep/c.bin", 0)):
        fs.pipe_file(f"{path}/{name}", os.urandom(size))
    # An unfinished upload (a writer still open) is not an object.
    pending = fs.open(f"{path}/sub/pending.bin", "wb")
    pending.write(os.urandom(200_000))
    assert (root / "sub" / ".cse").is_dir()  # sidecars and uploads live there
    assert fs.find(path) == [f"{path}/a.bin", f"{path}/sub/b.bin", f"{path}/sub/deep/c.bin"]
    detail = fs.find(path, detail=True)
    assert {k: v["size"] for k, v in detail.items()} == {
        f"{path}/a.bin": 10,
        f"{path}/sub/b.bin": 100_000,
        f"{path}/sub/deep/c.bin": 0,
    }
    assert detail[f"{path}/sub/b.bin"]["stored_size"] > 100_000
    assert fs.ls(path, detail=False) == [f"{path}/a.bin", f"{path}/sub"]
    assert [(e["name"], e["type"]) for e in fs.ls(f"{path}/sub")] == [
        (f"{path}/sub/b.bin", "file"),
        (f"{path}/sub/deep", "directory"),
    ]
    assert fs.glob(f"{path}/**/*.bin") == [f"{path}/a.bin", f"{path}/sub/b.bin", f"{path}/sub/deep/c.bin"]
    assert fs.find(path, maxdepth=1) == [f"{path}/a.bin"]
    assert fs.info(f"{path}/sub")["type"] == "directory"
    assert fs.exists(f"{path}/sub/b.bin") and fs.isfile(f"{path}/sub/b.bin") and fs.isdir(f"{path}/sub")
    assert not fs.exists(f"{path}/nothing") and not fs.exists(f"{path}/sub/pending.bin")
    with pytest.raises(FileNotFoundError):
        fs.info(f"{path}/nothing")
    pending.abort()
    assert not list((root / "sub" / ".cse").glob("uploads/*"))


def test_cp_is_server_side_and_keeps_the_envelope(key_a: str) -> None:
    store = MemoryStore()
    writer = EncryptedFileSystem(key_a, stores=[store], skip_instance_cache=True)
    writer.pipe_file(store.url("src/a"), b"payload")
    keyless = EncryptedFileSystem(stores=[store], skip_instance_cache=True)
    store.requests.clear()
    keyless.cp(store.url("src/a"), store.url("dst/a"))
    assert ("copy", "dst/a") in store.requests and ("get", "src/a") not in store.requests
    assert store.head("dst/a").metadata == store.head("src/a").metadata
    keyless.mv(store.url("dst/a"), store.url("moved/a"))
    assert not keyless.exists(store.url("dst/a"))
    assert writer.cat_file(store.url("moved/a")) == b"payload"
    keyless.cp(store.url("src"), store.url("tree"), recursive=True)
    assert keyless.find(store.url("tree")) == [store.url("tree/a")]
    keyless.rm(store.url("tree"), recursive=True)
    keyless.rm(store.url("moved/a"))
    assert [i.key for i in store.list("")] == ["src/a"]
    # Between stores the object is re-encrypted, which needs a key.
    other = MemoryStore()
    both = EncryptedFileSystem(key_a, stores=[store, other], skip_instance_cache=True)
    both.cp(store.url("src/a"), other.url("a"))
    assert both.cat_file(other.url("a")) == b"payload"


# -------------------------------------------------------------------------------------- errors


def test_tampered_object_raises_decryption_error_from_read(key_a: str) -> None:
    store = MemoryStore()
    fs = EncryptedFileSystem(key_a, stores=[store], skip_instance_cache=True, segment_size=1000)
    fs.pipe_file(store.url("t"), os.urandom(10_000))
    obj = store._objects["t"]
    flipped = bytearray(obj.data)
    flipped[5000] ^= 1
    obj.data = bytes(flipped)
    with fs.open(store.url("t"), "rb", block_size=1000) as f:
        assert len(f.read(100)) == 100  # the first segments are intact and verified
        with pytest.raises(DecryptionError) as err:
            f.read()
    assert "authentication failed" in str(err.value)
    with pytest.raises(DecryptionError):
        fs.cat_file(store.url("t"))


def test_wrong_key_and_missing_key(key_a: str, key_b: str, bucket: str) -> None:
    url = f"memory://{bucket}/secret.bin"
    fsspec.filesystem("cse", key=key_a).pipe_file(url, b"classified")
    with pytest.raises(DecryptionError):
        fsspec.filesystem("cse", key=key_b).cat_file(url)
    keyless = fsspec.filesystem("cse")
    assert keyless.info(url)["size"] == len(b"classified")
    with pytest.raises(ConfigurationError) as err:
        keyless.cat_file(url)
    message = str(err.value)
    assert url in message and "rsa://" in message and "key=KEY_URI" in message
    with pytest.raises(ConfigurationError, match=url):
        keyless.pipe_file(url, b"x")
    with pytest.raises((NoMatchingKeyError, DecryptionError)):
        fsspec.filesystem("cse", key=[key_b]).open(url, "rb").read()


def test_instances_are_cached_by_options_and_never_hold_keys_in_their_tokens(key_a: str, key_b: str) -> None:
    one = fsspec.filesystem("cse", key=key_a, format="cse-v1")
    assert fsspec.filesystem("cse", key=key_a, format="cse-v1") is one
    assert fsspec.filesystem("cse", key=key_b, format="cse-v1") is not one
    tokens = list(EncryptedFileSystem._cache)
    assert tokens and all(key_a not in t and "rsa://" not in t for t in tokens)
    assert key_a not in repr(one) and key_a not in one.fsid
    assert one._fs_token not in (key_a, key_b) and key_a not in one._fs_token


def test_concurrent_reads_from_one_instance(ranged: tuple[EncryptedFileSystem, CountingStore, bytes]) -> None:
    fs, store, data = ranged
    url = store.url("blob")
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(20):
                start = (seed * 7919 + i * 104_729) % (len(data) - 500)
                assert fs.cat_file(url, start, start + 500) == data[start : start + 500]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# ----------------------------------------------------------------------------------- the tools


def test_pandas_csv_and_parquet_through_file(tmp_path: Path, so: dict[str, Any]) -> None:
    frame = _frame()
    base = f"cse::file://{tmp_path}/data"
    frame.to_csv(f"{base}/t.csv", index=False, storage_options=so)
    assert pd.read_csv(f"{base}/t.csv", storage_options=so).equals(frame)
    frame.to_parquet(f"{base}/t.parquet", storage_options=so)
    assert pd.read_parquet(f"{base}/t.parquet", storage_options=so).equals(frame)
    got = pd.read_parquet(f"{base}/t.parquet", columns=["value"], storage_options=so)
    assert list(got.columns) == ["value"] and got["value"].sum() == frame["value"].sum()
    assert b"n1999" not in (tmp_path / "data" / "t.csv").read_bytes()


def test_pandas_csv_and_parquet_through_s3(
    moto_endpoint: str, s3_bucket: str, key_a: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cse_s3")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    frame = _frame()
    for fmt in ("s3-v3", "cse-v1"):
        so = {"cse": {"key": key_a, "format": fmt}}
        base = f"cse::s3://{s3_bucket}/{fmt}"
        frame.to_csv(f"{base}/t.csv", index=False, storage_options=so)
        assert pd.read_csv(f"{base}/t.csv", storage_options=so).equals(frame)
        frame.to_parquet(f"{base}/t.parquet", storage_options=so)
        got = pd.read_parquet(f"{base}/t.parquet", columns=["id", "name"], storage_options=so)
        assert got.equals(frame[["id", "name"]])
        fs, path = fsspec.core.url_to_fs(f"{base}/t.parquet", **so)
        assert fs.info(path)["format"] == fmt
        assert fs.find(f"{s3_bucket}/{fmt}") == [f"{s3_bucket}/{fmt}/t.csv", f"{s3_bucket}/{fmt}/t.parquet"]


def test_interop_with_the_cse_command(tmp_path: Path, key_a: str, so: dict[str, Any]) -> None:
    runner = CliRunner()
    frame = _frame(500)
    vault = f"file://{tmp_path}/vault"
    # pandas writes, the command decrypts.
    frame.to_csv(f"cse::{vault}/from-pandas.csv", index=False, storage_options=so)
    result = runner.invoke(
        main,
        ["get", f"{vault}/from-pandas.csv", str(tmp_path / "out.csv"), "--key", key_a],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "out.csv").equals(frame)
    # The command encrypts, pandas reads.
    frame.to_parquet(tmp_path / "in.parquet")
    result = runner.invoke(
        main,
        ["put", str(tmp_path / "in.parquet"), f"{vault}/from-cli.parquet", "--key", key_a],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(f"cse::{vault}/from-cli.parquet", storage_options=so).equals(frame)


def test_dask_read_csv_over_a_glob(tmp_path: Path, so: dict[str, Any]) -> None:
    dd = pytest.importorskip("dask.dataframe")
    total = 0
    for part in range(4):
        frame = pd.DataFrame({"x": range(part * 1000, part * 1000 + 1000)})
        total += int(frame["x"].sum())
        frame.to_csv(f"cse::file://{tmp_path}/parts/part-{part}.csv", index=False, storage_options=so)
    ddf = dd.read_csv(f"cse::file://{tmp_path}/parts/part-*.csv", storage_options=so)
    assert ddf.npartitions == 4
    assert int(ddf["x"].sum().compute(scheduler="threads")) == total


def test_pyarrow_read_table_with_a_filesystem(key_a: str, bucket: str) -> None:
    fs = fsspec.filesystem("cse", key=key_a)
    table = pa.table({"a": list(range(100)), "b": [str(i) for i in range(100)], "c": [1.5] * 100})
    path = f"memory://{bucket}/t.parquet"
    with fs.open(path, "wb") as f:
        pq.write_table(table, f)
    got = pq.read_table(path, filesystem=fs, columns=["b"])
    assert got.column_names == ["b"] and got.column("b").to_pylist() == table.column("b").to_pylist()


def test_polars(tmp_path: Path, key_a: str, so: dict[str, Any]) -> None:
    pl = pytest.importorskip("polars")
    fs, path = fsspec.core.url_to_fs(f"cse::file://{tmp_path}/p", **so)
    frame = pl.DataFrame({"a": list(range(1000)), "b": [f"s{i}" for i in range(1000)]})
    with fs.open(f"{path}/t.parquet", "wb") as f:
        frame.write_parquet(f)
    with fs.open(f"{path}/t.parquet", "rb") as f:
        got = pl.read_parquet(f, columns=["a"])
    assert got["a"].sum() == sum(range(1000))
    with fs.open(f"{path}/t.csv", "wb") as f:
        frame.write_csv(f)
    with fs.open(f"{path}/t.csv", "rb") as f:
        assert pl.read_csv(f).equals(frame)


def test_pandas_through_oss(oss_env: str, oss_bucket_name: str, key_a: str) -> None:
    pytest.importorskip("cse_oss")
    so = {"cse": {"key": key_a}}
    frame = _frame(300)
    url = f"cse::oss://{oss_bucket_name}/t.parquet"
    frame.to_parquet(url, storage_options=so)
    assert pd.read_parquet(url, columns=["name"], storage_options=so).equals(frame[["name"]])
    fs, path = fsspec.core.url_to_fs(url, **so)
    assert fs.info(path)["format"] == "oss-v2" and fs.ls(oss_bucket_name, detail=False) == [path]


def test_file_store_rooted_at_slash_names_its_objects_with_three_slashes() -> None:
    from cse.stores.file import FileStore

    assert FileStore("/").url("tmp/a b") == "file:///tmp/a%20b"
    assert FileStore("/").url("") == "file:///"
    assert FileStore("/tmp").url("x") == "file:///tmp/x"


def test_s3_instruction_files_are_not_listed(s3_client: Any, s3_bucket: str, key_a: str) -> None:
    cse_s3 = pytest.importorskip("cse_s3")
    store = cse_s3.S3Store(s3_bucket, client=s3_client, write_instruction_file=True)
    fs = EncryptedFileSystem(key_a, stores=[store], skip_instance_cache=True)
    fs.pipe_file(f"s3://{s3_bucket}/d/a.bin", b"abc" * 100)
    raw = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert raw == ["d/a.bin", "d/a.bin.instruction"]
    assert fs.find(f"s3://{s3_bucket}/d") == [f"s3://{s3_bucket}/d/a.bin"]
    assert fs.ls(f"s3://{s3_bucket}/d")[0]["size"] == 300
    assert fs.cat_file(f"s3://{s3_bucket}/d/a.bin") == b"abc" * 100


def test_a_write_inside_an_except_block_still_commits(key_a: str) -> None:
    # The abort-on-close rule looks for an exception raised after the open, not one already being handled.
    store = MemoryStore()
    fs = EncryptedFileSystem(key_a, stores=[store], skip_instance_cache=True)
    try:
        raise KeyError("handled")
    except KeyError:
        with fsspec.open(f"cse://{store.url('fallback')}", "wb", stores=[store], key=key_a) as f:
            f.write(b"written while handling another error")
        g = fs.open(store.url("explicit"), "wb")
        g.write(b"closed by hand")
        g.close()
    assert fs.cat_file(store.url("fallback")) == b"written while handling another error"
    assert fs.cat_file(store.url("explicit")) == b"closed by hand"
