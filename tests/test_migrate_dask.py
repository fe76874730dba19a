"""The Dask engine of ``cse migrate`` / ``cse rewrap`` (:mod:`cse.migrate_dask`) on real ``distributed``
clusters, all on 127.0.0.1:

* a ``LocalCluster`` with two worker processes (``processes=True``), started once for the module;
* a scheduler and a worker started as subprocesses (``dask scheduler``, ``dask worker``), once for the
  module; the kill tests add a worker of their own to it, or kill the driver.

Stores: ``file://``, S3 on moto's server, OSS on the emulator; keys: RSA files, AWS KMS (moto) and Alibaba KMS
(the emulator). The official clients (the S3 Encryption Client, oss2) write the sources and read the results,
with the helpers of ``tests/test_migrate_e2e.py``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cse.cli import main
from cse.client import EncryptionClient
from cse.config import TransferConfig
from cse.exceptions import ConfigurationError
from cse.migrate import MARKER_ETAG, MARKER_TOKEN, migrate
from cse.stores.memory import MemoryStore

distributed = pytest.importorskip("distributed")
pytest.importorskip("oss2")
pytest.importorskip("s3_encryption")

import oss2  # noqa: E402

from tests.conftest import OSS_AK, OSS_REGION, OSS_SECRET, oss2_bucket  # noqa: E402
from tests.test_migrate_e2e import (  # noqa: E402
    _aws_kms_uri,
    _gdk_calls,
    _journal_states,
    _official,
    _official_get,
    _oss2_crypto,
    _oss2_kms_provider,
    _oss_keys,
    _oss_uploads,
    _parallel,
    _pems,
    _s3_keys,
)

pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

KiB = 1024
MiB = 1024 * KiB
DASK = str(Path(sys.executable).parent / "dask")


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cloud_env(moto_endpoint: str, oss_emulator: Any, aliyun_kms: Any) -> Iterator[dict[str, str]]:
    """The environment every worker needs for ``s3://``, ``oss://``, ``aws-kms://`` and ``aliyun-kms://``
    on the local servers, set in this process before any cluster starts (worker processes inherit it)."""
    env = {
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "AWS_ENDPOINT_URL_KMS": moto_endpoint,
        "OSS_ENDPOINT": oss_emulator.endpoint,
        "OSS_REGION": OSS_REGION,
        "OSS_ACCESS_KEY_ID": OSS_AK,
        "OSS_ACCESS_KEY_SECRET": OSS_SECRET,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": OSS_AK,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": OSS_SECRET,
        "CSE_ALIYUN_KMS_ENDPOINT": aliyun_kms.endpoint,
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        yield dict(os.environ)


@pytest.fixture(scope="module")
def local_client(cloud_env: dict[str, str]) -> Iterator[Any]:
    """A client of a ``LocalCluster`` with two worker processes of one thread each, on 127.0.0.1."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _worker(scheduler: str, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    """``dask worker`` (no nanny: a SIGKILL ends it for good) on 127.0.0.1, one thread."""
    return subprocess.Popen(
        [DASK, "worker", scheduler, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"]
        + ["--name", name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class External:
    """A scheduler and workers started as subprocesses, and a client of it for the tests to look with."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env = env
        schedule_file = tmp / "scheduler.json"
        self.scheduler = subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
            + ["--scheduler-file", str(schedule_file)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not schedule_file.exists() or not schedule_file.read_text().strip():
            assert self.scheduler.poll() is None, "dask scheduler exited"
            assert time.monotonic() < deadline, "dask scheduler wrote no scheduler file"
            time.sleep(0.1)
        time.sleep(0.2)
        self.address = json.loads(schedule_file.read_text())["address"]
        assert self.address.startswith("tcp://127.0.0.1:")
        self.workers = [_worker(self.address, env, "steady")]
        self.client = distributed.Client(self.address, set_as_default=False, timeout="30s")
        self.client.wait_for_workers(1, timeout=60)

    def add_worker(self, name: str) -> tuple[subprocess.Popen[bytes], str]:
        """Start one more worker; its process and address once the scheduler knows it."""
        before = set(self.client.scheduler_info()["workers"])
        proc = _worker(self.address, self.env, name)
        self.workers.append(proc)
        deadline = time.monotonic() + 60
        while True:
            new = set(self.client.scheduler_info()["workers"]) - before
            if new:
                return proc, new.pop()
            assert proc.poll() is None and time.monotonic() < deadline, "the extra worker did not join"
            time.sleep(0.1)

    def clients(self) -> set[str]:
        """The ids of the clients connected to the scheduler."""
        return set(self.client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.clients)))

    def idle(self, timeout: float = 60) -> None:
        """Wait until no task runs or waits anywhere on the cluster."""
        deadline = time.monotonic() + timeout
        while any(self.client.processing().values()):
            assert time.monotonic() < deadline, "the cluster is still busy"
            time.sleep(0.1)

    def close(self) -> None:
        """Stop the workers, then the scheduler (a worker told to stop while its scheduler is going away
        waits for it in vain before it exits)."""
        self.client.close()
        for group in (self.workers, [self.scheduler]):
            for proc in group:
                proc.terminate()
            for proc in group:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture(scope="module")
def external(cloud_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[External]:
    """``dask scheduler --port 0`` and one ``dask worker`` as subprocesses on 127.0.0.1, for the module."""
    cluster = External(cloud_env, tmp_path_factory.mktemp("dask"))
    try:
        yield cluster
    finally:
        cluster.close()


def _fill_file(client: EncryptionClient, root: Path, data: dict[str, bytes]) -> str:
    for key, value in data.items():
        client.put(f"file://{root}/{key}", value)
    return f"file://{root}/"


def _states(journal: Path) -> Counter[str]:
    with sqlite3.connect(journal) as db:
        return Counter(state for (state,) in db.execute("SELECT state FROM objects"))


def _oss_writes(emulator: Any, bucket: str) -> Counter[str]:
    """Completed writes per key of an OSS bucket: a PUT of a body, or a CompleteMultipartUpload."""
    return Counter(
        key
        for method, b, key, sub in emulator.request_log
        if b == bucket and key and ((method, sub) == ("PUT", ()) or (method, sub) == ("POST", ("uploadId",)))
    )


# ------------------------------------------------------------------------------------------- no cluster


def test_refusals_name_the_engine(key_a: str, tmp_path: Path) -> None:
    """memory:// stores, (store, prefix) pairs, key provider objects and a cluster option with the local
    engine are refused before any cluster starts, saying what to do instead."""
    store = MemoryStore.shared("dask-refused")
    EncryptionClient(key_a).put((store, "x"), b"x")
    with pytest.raises(ConfigurationError, match=r"memory://.*Dask engine.*engine='local'"):
        migrate("memory://dask-refused/", f"file://{tmp_path}/out/", keys=[key_a], engine="dask")
    with pytest.raises(ConfigurationError, match=r"dask-refused/out/ is a memory:// store.*Dask engine"):
        migrate(f"file://{tmp_path}/in/", "memory://dask-refused/out/", keys=[key_a], engine="dask")
    with pytest.raises(ConfigurationError, match="Dask engine takes the source as a URL"):
        migrate((store, ""), f"file://{tmp_path}/out/", keys=[key_a], engine="dask")
    provider = EncryptionClient(key_a).keys[0]
    with pytest.raises(ConfigurationError, match="key URIs") as info:
        migrate(f"file://{tmp_path}/in/", f"file://{tmp_path}/out/", keys=[provider], engine="dask")
    assert "BEGIN" not in str(info.value)
    with pytest.raises(ConfigurationError, match="engine='dask'"):
        migrate(f"file://{tmp_path}/in/", f"file://{tmp_path}/out/", keys=[key_a], scheduler="tcp://x:1")
    result = CliRunner().invoke(
        main, ["migrate", "file:///a/", "file:///b/", "--key", key_a, "--scheduler", "tcp://127.0.0.1:1"]
    )
    assert result.exit_code == 2
    assert "--engine dask" in result.output


# ------------------------------------------------------------------------------- LocalCluster, processes


def test_local_cluster_file_to_file(local_client: Any, key_a: str, key_b: str, tmp_path: Path) -> None:
    """40 objects file:// -> file:// on a LocalCluster of worker processes, in batches of 6: every object
    lands re-encrypted for key b and verified, with the source's ETag and the attempt's token recorded at the
    destination; one broken object fails alone with its reason (counted by reason, kept in the summary); the
    journal records every object; a rerun skips everything without a task's help; the per-object results are
    the local engine's."""
    rng = random.Random(17)
    data = {f"p/o{i:03d}": rng.randbytes(rng.randrange(0, 40 * KiB)) for i in range(40)}
    src = _fill_file(EncryptionClient(key_a), tmp_path / "src", data)
    (tmp_path / "src" / "p" / "zz-plain").write_bytes(b"not encrypted")  # no sidecar: cannot be read
    journal = tmp_path / "j.db"
    dst = f"file://{tmp_path}/dst/"
    seen: list[tuple[int, int, int, int]] = []

    summary = migrate(
        src + "p/",
        dst,
        keys=[key_a],
        to_keys=[key_b],
        engine="dask",
        scheduler=local_client,
        journal=journal,
        batch_objects=6,
        verify=True,
        progress=lambda *a: seen.append(a),
    )

    assert (summary.engine, summary.copied, summary.failed, summary.skipped) == ("dask", 40, 1, 0)
    assert summary.bytes == sum(len(v) for v in data.values())
    assert summary.failures == {"MetadataError": 1}
    [failed] = summary.objects  # the Dask engine keeps the failed outcomes only
    assert failed.src_url.endswith("p/zz-plain") and failed.reason == "MetadataError"
    assert "no metadata sidecar" in failed.error
    assert summary.kms_calls == 0
    assert len(seen) == 41 and seen[-1][0] == seen[-1][1] == 41
    assert seen[-1][2] == seen[-1][3]
    reader = EncryptionClient(key_b)
    for key, value in data.items():
        url = dst + key[2:]
        assert reader.get(url) == value, key
        head = reader.head(url)
        assert head.envelope.format == "cse-v1"
    meta = json.loads((tmp_path / "dst" / ".cse" / "o007.json").read_text())["metadata"]
    src_etag = json.loads((tmp_path / "src" / "p" / ".cse" / "o007.json").read_text())["etag"]
    assert meta[MARKER_ETAG] == src_etag and len(meta[MARKER_TOKEN]) == 16
    assert _states(journal) == {"done": 40, "failed": 1}
    with sqlite3.connect(journal) as db:
        shas = dict(db.execute("SELECT src_url, sha256 FROM objects WHERE state = 'done'").fetchall())
    import hashlib

    assert shas[src + "p/o003"] == hashlib.sha256(data["p/o003"]).hexdigest()

    again = migrate(
        src + "p/", dst, keys=[key_a], to_keys=[key_b], engine="dask", scheduler=local_client, journal=journal
    )
    assert (again.copied, again.skipped, again.failed) == (0, 40, 1)

    local = migrate(src + "p/", f"file://{tmp_path}/dst-local/", keys=[key_a], to_keys=[key_b])
    assert (local.copied, local.failed, local.failures) == (40, 1, {"MetadataError": 1})
    [local_failed] = [o for o in local.objects if o.state == "failed"]
    assert local_failed.error.replace("dst-local", "dst") == failed.error.replace("dst-local", "dst")


def test_local_cluster_rewrap_in_place_cli(local_client: Any, key_a: str, key_b: str, tmp_path: Path) -> None:
    """``cse rewrap --engine dask`` with DASK_SCHEDULER_ADDRESS: the stored ciphertext stays, only key b
    opens the objects afterwards."""
    data = {f"r{i}": os.urandom(i * 300) for i in range(9)}
    url = _fill_file(EncryptionClient(key_a), tmp_path / "vault", data)
    before = {k: (tmp_path / "vault" / k).read_bytes() for k in data}
    env = {"DASK_SCHEDULER_ADDRESS": local_client.scheduler.address}
    result = CliRunner(env=env).invoke(
        main,
        [
            "rewrap",
            url,
            "--key",
            key_a,
            "--to-key",
            key_b,
            "--engine",
            "dask",
            "--batch-objects",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["copied"], report["failed"], report["engine"], report["mode"]) == (9, 0, "dask", "rewrap")
    for key, value in data.items():
        assert (tmp_path / "vault" / key).read_bytes() == before[key]
        assert EncryptionClient(key_b).get(url + key) == value
        with pytest.raises(Exception):
            EncryptionClient(key_a).get(url + key)


def test_without_a_scheduler_a_local_cluster_is_started_and_closed(
    key_a: str, key_b: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cse migrate --engine dask`` with neither ``--scheduler`` nor ``DASK_SCHEDULER_ADDRESS``: cse starts a
    LocalCluster of worker processes on 127.0.0.1 (one per core), migrates on it, and closes it at the end."""
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    data = {f"n{i}": os.urandom(100 + i) for i in range(5)}
    src = _fill_file(EncryptionClient(key_a), tmp_path / "src", data)
    before = {p.pid for p in multiprocessing.active_children()}
    result = CliRunner().invoke(
        main,
        ["migrate", src, f"file://{tmp_path}/dst/", "--key", key_a, "--to-key", key_b, "--engine", "dask"]
        + ["--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["copied"], report["failed"], report["engine"]) == (5, 0, "dask")
    for key, value in data.items():
        assert EncryptionClient(key_b).get(f"file://{tmp_path}/dst/{key}") == value
    deadline = time.monotonic() + 30
    while {p.pid for p in multiprocessing.active_children()} - before:  # its worker processes are gone
        assert time.monotonic() < deadline, "the LocalCluster's worker processes outlived the run"
        time.sleep(0.1)


def test_worker_without_the_key_file_is_reported(local_client: Any, key_a: str, tmp_path: Path) -> None:
    """A key URI naming a file the workers do not have: the run stops before any object is touched, and the
    error names the workers and what they need."""
    url = _fill_file(EncryptionClient(key_a), tmp_path / "s", {"x": b"x"})
    with pytest.raises(
        ConfigurationError, match=r"Dask workers cannot migrate: tcp://127\.0\.0\.1:.*key files"
    ):
        migrate(
            url,
            f"file://{tmp_path}/d/",
            keys=[key_a],
            to_keys=[f"rsa://{tmp_path}/missing.pem"],
            engine="dask",
            scheduler=local_client,
        )
    assert not (tmp_path / "d").exists()


def test_local_cluster_oss_to_s3_read_by_the_s3_encryption_client(
    local_client: Any,
    moto_endpoint: str,
    s3_client: Any,
    kms_client: Any,
    kms_key_id: str,
    s3_bucket: str,
    oss_emulator: Any,
    oss_bucket_name: str,
    key_a: str,
) -> None:
    """16 objects written by oss2's CryptoBucket (RSA key a) move to S3 under AWS KMS (moto) on the
    LocalCluster's two worker processes, one of them multipart at S3: the official S3 Encryption Client
    reads every one; each records the OSS source's ETag and a token in its S3 user metadata; the KMS calls,
    summed over the worker processes, are one GenerateDataKey per object."""
    rng = random.Random(5)
    data = {f"src/o{i:02d}": rng.randbytes(rng.randrange(0, 30 * KiB)) for i in range(15)}
    data["src/big"] = rng.randbytes(6 * MiB + 5)
    writer = _oss2_crypto(oss_emulator, oss_bucket_name, oss2.crypto.RsaProvider(key_pair=_pems(key_a)))
    _parallel(lambda kv: writer.put_object(kv[0], kv[1]), data.items())

    summary = migrate(
        f"oss://{oss_bucket_name}/src/",
        f"s3://{s3_bucket}/dst/",
        keys=[key_a],
        to_keys=[_aws_kms_uri(kms_key_id, moto_endpoint)],
        engine="dask",
        scheduler=local_client,
        batch_objects=4,
        config=TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB),
    )

    assert (summary.copied, summary.failed, summary.skipped) == (len(data), 0, 0), summary.objects
    assert summary.kms_calls_by_operation == {"GenerateDataKey": len(data)}
    assert _s3_keys(s3_client, s3_bucket, "") == sorted(f"dst/{k[4:]}" for k in data)
    assert s3_client.head_object(Bucket=s3_bucket, Key="dst/big")["ETag"].endswith('-2"')  # multipart
    official = _official(moto_endpoint, kms_client, kms_key_id)
    plain_oss = oss2_bucket(oss_emulator, oss_bucket_name)
    for key, value in data.items():
        assert _official_get(official, s3_bucket, f"dst/{key[4:]}") == value, key
        meta = s3_client.head_object(Bucket=s3_bucket, Key=f"dst/{key[4:]}")["Metadata"]
        source_etag = plain_oss.head_object(key).etag
        assert meta[MARKER_ETAG] == source_etag.strip('"') and len(meta[MARKER_TOKEN]) == 16, key


# --------------------------------------------------------------------- external cluster: S3 -> OSS, KMS


def test_s3_to_oss_under_kms_on_an_external_cluster(
    external: External,
    moto_endpoint: str,
    kms_client: Any,
    kms_key_id: str,
    s3_bucket: str,
    oss_emulator: Any,
    aliyun_kms: Any,
    aliyun_kms_key: str,
    oss_bucket_name: str,
) -> None:
    """``cse migrate --engine dask --scheduler ADDRESS`` of 30 objects written by the official S3 Encryption
    Client under AWS KMS to OSS under Alibaba KMS, with a data-key cache: oss2's CryptoBucket reads every
    object; the summary's KMS calls, summed over the worker processes, are the AWS KMS Decrypts (one per
    object) plus every request the Alibaba KMS emulator received (a handful of GenerateDataKey thanks to the
    cache, an Encrypt per object for the OSS IV)."""
    official = _official(moto_endpoint, kms_client, kms_key_id)
    rng = random.Random(3)
    data = {f"in/k{i:02d}": rng.randbytes(rng.randrange(1, 20 * KiB)) for i in range(30)}
    _parallel(lambda kv: official.put_object(Bucket=s3_bucket, Key=kv[0], Body=kv[1]), data.items())
    extra, _ = external.add_worker("second")  # two worker processes
    try:
        mark = len(aliyun_kms.request_log)
        clients_before = external.clients()
        result = CliRunner().invoke(
            main,
            [
                "migrate",
                f"s3://{s3_bucket}/in/",
                f"oss://{oss_bucket_name}/out/",
                "--key",
                _aws_kms_uri(kms_key_id, moto_endpoint),
                "--to-key",
                f"aliyun-kms://{OSS_REGION}/{aliyun_kms_key}?style=oss2",
                "--cache-max-objects",
                "1000",
                "--engine",
                "dask",
                "--scheduler",
                external.address,
                "--batch-objects",
                "3",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        aliyun_calls = len(aliyun_kms.request_log) - mark
        gdk = _gdk_calls(aliyun_kms, mark)
        assert (report["copied"], report["failed"]) == (30, 0)
        assert 1 <= gdk <= 4  # one per worker process that took a task (the cache lives in each)
        assert report["kms_calls_by_operation"] == {"Decrypt": 30, "GenerateDataKey": gdk, "Encrypt": 30}
        assert report["kms_calls"] == 30 + aliyun_calls
        reader = _oss2_crypto(oss_emulator, oss_bucket_name, _oss2_kms_provider(aliyun_kms, aliyun_kms_key))
        for key, value in data.items():
            assert bytes(reader.get_object(f"out/{key[3:]}").read()) == value, key
        deadline = time.monotonic() + 20
        while external.clients() != clients_before:  # the run closed the client it opened
            assert time.monotonic() < deadline, "the run left its client connected to the scheduler"
            time.sleep(0.1)
    finally:
        extra.terminate()
        extra.wait(timeout=20)


# ---------------------------------------------------------------------------------------- kill tests


def test_sigkill_of_a_worker_midway(
    external: External,
    moto_endpoint: str,
    s3_client: Any,
    s3_bucket: str,
    oss_emulator: Any,
    oss_bucket_name: str,
    key_a: str,
    key_b: str,
    tmp_path: Path,
) -> None:
    """A second worker is SIGKILLed while it runs a task, with part of the objects done (some multipart at
    OSS): the scheduler runs its tasks again on the other worker, and the run finishes with every object
    copied once in the summary, none failed, the destination holding exactly the source keys with no
    unfinished multipart upload, and oss2 reading each one with key b."""
    from cse_s3 import S3Store

    rng = random.Random(11)
    data = {f"w/o{i:03d}": rng.randbytes(rng.randrange(1, 64 * KiB)) for i in range(60)}
    for i in (7, 23, 41):
        data[f"w/o{i:03d}"] = rng.randbytes(450 * KiB)  # multipart at OSS with the config below
    src = S3Store(s3_bucket, client=s3_client)
    with EncryptionClient(key_a) as writer:
        _parallel(lambda kv: writer.put((src, kv[0]), kv[1]), data.items())
    victim, victim_address = external.add_worker("victim")
    killed: list[int] = []

    def progress(done: int, total: int, size: int, total_size: int) -> None:
        if killed or done < 6:
            return
        busy = external.client.processing(workers=[victim_address]).get(victim_address)
        if busy:
            victim.send_signal(signal.SIGKILL)
            killed.append(done)

    summary = migrate(
        f"s3://{s3_bucket}/w/",
        f"oss://{oss_bucket_name}/w/",
        keys=[key_a],
        to_keys=[key_b],
        engine="dask",
        scheduler=external.client,
        journal=tmp_path / "j.db",
        batch_objects=3,
        workers=1,
        config=TransferConfig(multipart_threshold=200 * KiB, part_size=100 * KiB),
        progress=progress,
    )

    victim.wait(timeout=20)
    assert killed and victim.returncode == -signal.SIGKILL, "the victim was never caught running a task"
    assert killed[0] < len(data)
    assert (summary.copied, summary.failed, summary.skipped) == (len(data), 0, 0), summary.objects
    assert _oss_keys(oss_emulator, oss_bucket_name) == sorted(data)
    assert _oss_uploads(oss_emulator, oss_bucket_name) == []
    assert _states(tmp_path / "j.db") == {"done": len(data)}
    reader = _oss2_crypto(oss_emulator, oss_bucket_name, oss2.crypto.RsaProvider(key_pair=_pems(key_b)))
    for key, value in data.items():
        assert bytes(reader.get_object(key).read()) == value, key


def test_sigkill_of_the_driver_then_rerun(
    external: External,
    moto_endpoint: str,
    s3_client: Any,
    s3_bucket: str,
    oss_emulator: Any,
    oss_bucket_name: str,
    key_a: str,
    key_b: str,
    tmp_path: Path,
) -> None:
    """``cse migrate --engine dask`` S3 -> OSS in a subprocess, SIGKILLed while tasks run on the cluster;
    the tasks that were running finish without anyone to hear their outcome. The rerun with the same
    journal finds those objects complete at the destination (source ETag and token recorded there) and skips
    them, skips what the journal had done, and copies the rest: every destination key is written exactly
    once over both runs, the destination holds exactly the source keys, and oss2 reads each with key b."""
    from cse_s3 import S3Store

    rng = random.Random(13)
    data = {f"d/o{i:03d}": rng.randbytes(rng.randrange(1, 96 * KiB)) for i in range(80)}
    src = S3Store(s3_bucket, client=s3_client)
    with EncryptionClient(key_a) as writer:
        _parallel(lambda kv: writer.put((src, kv[0]), kv[1]), data.items())
    journal = tmp_path / "journal.db"
    command = [
        sys.executable,
        "-m",
        "cse.cli",
        "migrate",
        f"s3://{s3_bucket}/d/",
        f"oss://{oss_bucket_name}/d/",
        "--key",
        key_a,
        "--to-key",
        key_b,
        "--journal",
        str(journal),
        "--engine",
        "dask",
        "--scheduler",
        external.address,
        "--batch-objects",
        "4",
        "--workers",
        "1",
        "--json",
    ]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=external.env)
    deadline = time.monotonic() + 90
    running = False
    try:
        while True:
            assert first.poll() is None, f"the first run ended before it was killed: {first.communicate()}"
            assert time.monotonic() < deadline, "the first run made no progress"
            states = Counter(_journal_states(journal).values())
            if states["done"] >= 8 and states["copying"]:
                running = any(external.client.processing().values())
                if running:
                    break
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == -signal.SIGKILL
    external.idle()  # the orphaned tasks run to their end
    states = _journal_states(journal)
    done_first = {url for url, s in states.items() if s == "done"}
    assert 0 < len(done_first) < len(data)

    second = subprocess.run(command, capture_output=True, timeout=120, check=False, env=external.env)

    assert second.returncode == 0, second.stderr.decode()
    report = json.loads(second.stdout)
    assert report["failed"] == 0
    assert report["skipped"] + report["copied"] == len(data)
    assert report["skipped"] - report["recovered"] == len(done_first)
    assert report["recovered"] >= 1, "no task outlived the driver"
    assert _oss_keys(oss_emulator, oss_bucket_name) == sorted(data)
    assert _oss_uploads(oss_emulator, oss_bucket_name) == []
    writes = _oss_writes(oss_emulator, oss_bucket_name)
    assert {k: writes[k] for k in data if writes[k] != 1} == {}  # every key written exactly once
    assert set(_journal_states(journal).values()) == {"done"}
    reader = _oss2_crypto(oss_emulator, oss_bucket_name, oss2.crypto.RsaProvider(key_pair=_pems(key_b)))
    for key, value in data.items():
        assert bytes(reader.get_object(key).read()) == value, key


def test_local_cluster_s3_to_oss_keeps_and_overrides_sse(
    local_client: Any,
    moto_endpoint: str,
    s3_client: Any,
    kms_key_id: str,
    s3_bucket: str,
    oss_emulator: Any,
    oss_bucket_name: str,
    key_a: str,
) -> None:
    """The Dask engine keeps each object's settings by the cross-store rule of cse.settings, as the local
    engine does (SSE-KMS without the S3 key id, STANDARD_IA as IA, the content type and tags), fails the
    object whose mode OSS lacks, and an override (--sse) reaches every worker."""
    for key, sse in [("src/kms", "aws:kms"), ("src/dsse", "aws:kms:dsse")]:
        EncryptionClient(_aws_kms_uri(kms_key_id, moto_endpoint)).put(
            f"s3://{s3_bucket}/{key}",
            key.encode(),
            sse=sse,
            sse_key_id=kms_key_id,
            storage_class="STANDARD_IA",
            content_type="text/plain",
            tags={"team": "data"},
        )
    options: dict[str, Any] = {
        "keys": [_aws_kms_uri(kms_key_id, moto_endpoint)],
        "to_keys": [key_a],
        "engine": "dask",
        "scheduler": local_client,
    }
    summary = migrate(f"s3://{s3_bucket}/src/", f"oss://{oss_bucket_name}/dst/", **options)
    assert (summary.copied, summary.failed) == (1, 1), summary.objects
    assert "dsse, which oss:// does not have" in summary.objects[0].error
    plain = oss2_bucket(oss_emulator, oss_bucket_name)
    headers = plain.head_object("dst/kms").headers
    assert headers["x-oss-server-side-encryption"] == "KMS"
    assert kms_key_id not in headers.get("x-oss-server-side-encryption-key-id", "")
    assert headers["x-oss-storage-class"] == "IA" and headers["Content-Type"] == "text/plain"
    assert plain.get_object_tagging("dst/kms").tag_set.tagging_rule == {"team": "data"}
    summary = migrate(f"s3://{s3_bucket}/src/", f"oss://{oss_bucket_name}/sm4/", sse="sm4", **options)
    assert (summary.copied, summary.failed) == (2, 0), summary.objects
    for key in ("sm4/kms", "sm4/dsse"):
        assert plain.head_object(key).headers["x-oss-server-side-encryption"] == "SM4"
    with pytest.raises(ConfigurationError, match="'dsse'"):
        migrate(f"s3://{s3_bucket}/src/", f"oss://{oss_bucket_name}/x/", sse="dsse", **options)
