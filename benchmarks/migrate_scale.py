"""``migrate-scale``: many small objects ``file://`` -> ``file://``, the local engine against the Dask engine.

N objects of ``--scale-size`` bytes (default 256) are written once under local AES keys (``aes://``: key
wrapping costs microseconds, so what is measured is cse's per-object work and the engine's), then migrated
natively (decrypt, verify, re-encrypt for another key) with a journal, four ways, each into a fresh
destination:

* ``local, 1 thread``     the local engine, ``workers=1``;
* ``dask, 1 process``     a LocalCluster of one worker process of one thread, ``workers=1`` per task: with
                          the line above, the per-object overhead of the Dask path,
                          ``(t_dask1 - t_local1) / N``;
* ``local, 4 threads``    the local engine as ``cse migrate`` runs it by default;
* ``dask, machine``       a LocalCluster sized to the machine (one worker process per core), ``workers=4``.

Cluster start-up is timed apart and not counted. The journal's size per object is reported too (it is the
figure docs/migration.md scales to 10^8 objects).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def _write(root: Path, n: int, size: int, key: str) -> str:
    from cse import EncryptionClient

    url = f"file://{root}/"
    body = os.urandom(size)
    with EncryptionClient(key) as client, ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: client.put(f"{url}d{i // 1000:04d}/o{i:07d}", body), range(n)))
    return url


def bench_migrate_scale(n: int, size: int = 256, work: str | None = None) -> list[dict[str, Any]]:
    """The four runs above over ``n`` objects of ``size`` bytes; one row each."""
    import distributed
    from cse_rsa.aes import generate_aes_key

    from cse.migrate import migrate

    base = Path(tempfile.mkdtemp(prefix="cse-scale-", dir=work))
    rows: list[dict[str, Any]] = []
    try:
        for name in ("old", "new"):
            generate_aes_key(base / f"{name}.bin")
        old, new = f"aes://{base / 'old.bin'}", f"aes://{base / 'new.bin'}"
        t = time.perf_counter()
        src = _write(base / "src", n, size, old)
        print(f"   wrote {n} objects in {time.perf_counter() - t:.1f} s")
        cpus = len(os.sched_getaffinity(0))

        def run(label: str, processes: int, **kw: Any) -> None:
            dst = base / f"dst-{len(rows)}"
            journal = base / f"journal-{len(rows)}.db"
            cluster = client = None
            startup = 0.0
            if kw.get("engine") == "dask":
                t0 = time.perf_counter()
                cluster = distributed.LocalCluster(
                    n_workers=processes,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
                client = distributed.Client(cluster, set_as_default=False)
                startup = time.perf_counter() - t0
                kw["scheduler"] = client
            try:
                t0 = time.perf_counter()
                summary = migrate(src, f"file://{dst}/", keys=[old], to_keys=[new], journal=journal, **kw)
                seconds = time.perf_counter() - t0
            finally:
                if client is not None:
                    client.close()
                if cluster is not None:
                    cluster.close()
            assert (summary.copied, summary.failed) == (n, 0), (summary.copied, summary.failed)
            rows.append(
                {
                    "run": label,
                    "objects": n,
                    "object_size": size,
                    "seconds": seconds,
                    "objects_per_s": n / seconds,
                    "cluster_startup_s": startup,
                    "journal_bytes_per_object": journal.stat().st_size / n,
                }
            )
            print(
                f"   {label:<18} {seconds:>8.1f} s {n / seconds:>9.0f} objects/s"
                + (f"  (cluster start-up {startup:.1f} s, not counted)" if startup else "")
            )
            shutil.rmtree(dst)

        run("local, 1 thread", 1, workers=1)
        run("dask, 1 process", 1, workers=1, engine="dask", batch_objects=1000)
        run("local, 4 threads", 1, workers=4)
        run(f"dask, {cpus} processes", cpus, workers=4, engine="dask", batch_objects=1000)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    local1, dask1 = rows[0]["seconds"], rows[1]["seconds"]
    overhead = (dask1 - local1) / n
    for row in rows:
        row["dask_overhead_us_per_object"] = overhead * 1e6
    return rows
