"""cse's benchmarks; every figure is a ratio to a reference measured in the same run (docs/performance.md).

Sections: content-cipher throughput against raw ``cryptography`` (below), and, in sibling modules, the
official clients' pipelines on the same bytes (``peers.py``), end to end on local servers (``e2e.py``), KMS
calls per object with and without data-key caching (``kms_calls.py``), start-up time (``startup.py``),
many small objects through the local and the Dask migration engines (``migrate_scale.py``, only with
``--only migrate-scale``) and, with ``--memory`` or ``CSE_BENCH_MEMORY=1``, peak RSS of 1 GiB round trips
(``memory.py``).

Content-cipher throughput: cse's streaming path against raw ``cryptography`` ``update_into``.

For each cipher, encrypt and decrypt the same bytes through cse's streaming encryptor/decryptor objects
(built by the content codecs, exactly as the client uses them: fixed-size chunks into one reused output
buffer) and through a bare ``cryptography`` ``Cipher(...).update_into`` loop with the same chunking.
Runs alternate, and each figure is the median of several repetitions measured in the same process, so the
ratio holds on a noisy shared machine. Also sweeps the cse-v1 segment size, which chose its default.

    python benchmarks/bench.py [--size-mib 256] [--repeat 7] [--json bench-results.json] [--memory]
                               [--only ciphers,peers,e2e,kms,startup,memory,migrate-scale]
                               [--scale-objects 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from cse.content import DEFAULT_SEGMENT_SIZE, ContentMaterial, codec_for
from cse.envelope import ContentAlgorithm, Envelope, WrappedKey

MiB = 1024 * 1024
CHUNK = MiB


def _envelope(algorithm: str, key: bytes, segment_size: int) -> tuple[Envelope, ContentMaterial]:
    codec = codec_for(algorithm)
    params = codec.new_parameters(key, segment_size=segment_size)
    iv = params.get("iv")
    env = Envelope(
        format="bench",
        content_algorithm=algorithm,
        wrapped_keys=(WrappedKey(wrap_algorithm="x", ciphertext=b"x"),),
        **params,
    )
    return env, ContentMaterial(key=key, iv=iv)


def _pump(transform: Any, src: memoryview, dst: memoryview, chunk: int = CHUNK) -> int:
    out = bytearray(transform.output_size(chunk))
    written = 0
    for i in range(0, len(src), chunk):
        n = transform.update_into(src[i : i + chunk], out)
        dst[written : written + n] = memoryview(out)[:n]
        written += n
    tail = transform.finalize()
    dst[written : written + len(tail)] = tail
    return written + len(tail)


def _raw(mode: Callable[[], Any], src: memoryview, dst: memoryview) -> int:
    ctx = Cipher(algorithms.AES(bytes(32)), mode()).encryptor()
    out = bytearray(CHUNK + 15)
    written = 0
    for i in range(0, len(src), CHUNK):
        n = ctx.update_into(src[i : i + CHUNK], out)
        dst[written : written + n] = memoryview(out)[:n]
        written += n
    ctx.finalize()
    return written


def _time(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_ciphers(size: int, repeat: int, segment_size: int) -> list[dict[str, Any]]:
    plaintext = memoryview(bytearray(os.urandom(size)))
    ciphertext = memoryview(bytearray(size + size // 1000 + 2 * MiB))
    scratch = memoryview(bytearray(size + 2 * MiB))
    key = os.urandom(32)
    rows = []
    for name, algorithm, raw_mode in [
        ("AES-256-GCM", ContentAlgorithm.AES_GCM, lambda: modes.GCM(b"\x00" * 12)),
        (
            "committing AES-256-GCM (S3 V3)",
            ContentAlgorithm.AES_GCM_COMMITTING,
            lambda: modes.GCM(b"\x01" * 12),
        ),
        ("AES-256-CTR", ContentAlgorithm.AES_CTR, lambda: modes.CTR(b"\x00" * 16)),
        ("cse-v1 segmented GCM", ContentAlgorithm.CSE_V1, lambda: modes.GCM(b"\x00" * 12)),
    ]:
        env, material = _envelope(algorithm, key, segment_size)
        codec = codec_for(algorithm)
        # The chunk sizes the client uses: whole segments for cse-v1, 1 MiB otherwise.
        pchunk, cchunk = codec.plaintext_chunk(env, CHUNK), codec.ciphertext_chunk(env, CHUNK)
        ct_len = _pump(codec.encryptor(material, env), plaintext, ciphertext, pchunk)
        body = ciphertext[:ct_len]
        enc_cse, enc_raw, dec_cse, dec_raw = [], [], [], []
        for _ in range(repeat):
            enc_raw.append(_time(lambda: _raw(raw_mode, plaintext, scratch)))
            enc_cse.append(_time(lambda: _pump(codec.encryptor(material, env), plaintext, scratch, pchunk)))
            dec_raw.append(_time(lambda: _raw(raw_mode, body[:size], scratch)))
            dec_cse.append(
                _time(lambda: _pump(codec.decryptor(material, env, ct_len), body, scratch, cchunk))
            )
        assert bytes(scratch[:64]) == bytes(plaintext[:64])
        for direction, cse_t, raw_t in (("encrypt", enc_cse, enc_raw), ("decrypt", dec_cse, dec_raw)):
            c, r = statistics.median(cse_t), statistics.median(raw_t)
            rows.append(
                {
                    "cipher": name,
                    "direction": direction,
                    "bytes": size,
                    "cse_mib_s": size / MiB / c,
                    "raw_mib_s": size / MiB / r,
                    "ratio": r / c,
                }
            )
    return rows


def bench_segment_sizes(size: int, repeat: int) -> list[dict[str, Any]]:
    plaintext = memoryview(bytearray(os.urandom(size)))
    scratch = memoryview(bytearray(size + size // 100 + 4 * MiB))
    key = os.urandom(32)
    rows = []
    for seg in (64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024):
        env, material = _envelope(ContentAlgorithm.CSE_V1, key, seg)
        codec = codec_for(ContentAlgorithm.CSE_V1)
        cse_t, raw_t = [], []
        for _ in range(repeat):
            raw_t.append(_time(lambda: _raw(lambda: modes.GCM(b"\x00" * 12), plaintext, scratch)))
            chunk = codec.plaintext_chunk(env, CHUNK)
            cse_t.append(_time(lambda: _pump(codec.encryptor(material, env), plaintext, scratch, chunk)))
        rows.append({"segment_size": seg, "ratio": statistics.median(raw_t) / statistics.median(cse_t)})
    return rows


SECTIONS = ("ciphers", "peers", "e2e", "kms", "startup", "memory", "migrate-scale")
#: Sections that run only when asked for by name (--only).
ON_REQUEST = ("memory", "migrate-scale")


def _machine() -> dict[str, Any]:
    from importlib import metadata

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {}
    for dist in (
        "cryptography",
        "boto3",
        "moto",
        "amazon-s3-encryption-client-python",
        "oss2",
        "alibabacloud-oss-v2",
        "pycryptodome",
        "pydantic",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _print_ciphers(rows: list[dict[str, Any]], segs: list[dict[str, Any]]) -> None:
    print(f"{'cipher':<32} {'dir':<8} {'cse MiB/s':>10} {'raw MiB/s':>10} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['cipher']:<32} {r['direction']:<8} {r['cse_mib_s']:>10.0f} "
            f"{r['raw_mib_s']:>10.0f} {r['ratio']:>6.2f}"
        )
    print("\ncse-v1 segment size sweep (encrypt, ratio to raw AES-GCM update_into):")
    for r in segs:
        print(f"  {r['segment_size'] // 1024:>5} KiB  {r['ratio']:.2f}")


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB else f"{n // 1024} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--segment-size", type=int, default=DEFAULT_SEGMENT_SIZE)
    parser.add_argument("--json", default="bench-results.json", help="where to write the results")
    parser.add_argument(
        "--memory",
        action="store_true",
        default=os.environ.get("CSE_BENCH_MEMORY") == "1",
        help="also measure peak RSS of 1 GiB round trips (about 4 minutes; or CSE_BENCH_MEMORY=1)",
    )
    parser.add_argument("--only", default="", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--e2e-objects", type=int, default=1000, help="small objects in the end-to-end run")
    parser.add_argument("--kms-objects", type=int, default=200, help="objects in the KMS-calls run")
    parser.add_argument(
        "--scale-objects", type=int, default=100_000, help="objects in the migrate-scale run (10^5)"
    )
    parser.add_argument("--scale-size", type=int, default=256, help="bytes per object in migrate-scale")
    parser.add_argument(
        "--scale-dir",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where migrate-scale keeps its stores (default /dev/shm: tmpfs, so that the file store's "
        "fsyncs do not measure the disk)",
    )
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    wanted = [s for s in args.only.split(",") if s] or [
        s for s in SECTIONS if s not in ON_REQUEST or (s == "memory" and args.memory)
    ]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    machine = _machine()
    results: dict[str, Any] = {"machine": machine, "repeat": args.repeat}
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, "
        f"cryptography {machine['versions']['cryptography']}"
    )

    if "ciphers" in wanted:
        size = args.size_mib * MiB
        print(
            f"\n== 1. content ciphers: {args.size_mib} MiB in {CHUNK // 1024} KiB chunks, "
            f"median of {args.repeat}"
        )
        rows = bench_ciphers(size, args.repeat, args.segment_size)
        segs = bench_segment_sizes(min(size, 128 * MiB), args.repeat)
        _print_ciphers(rows, segs)
        results["ciphers"], results["segment_sizes"] = rows, segs

    if "peers" in wanted:
        from peers import bench_peers

        print(f"\n== 2. against the official clients' pipelines, no network, median of {args.repeat}")
        print("   ratio = cse throughput / peer throughput (targets: >= 3 s3_encryption, >= 2 oss2)")
        rows = bench_peers(args.repeat)
        print(
            f"{'peer':<48} {'op':<14} {'object':>8} {'n':>4} "
            f"{'cse MiB/s':>10} {'peer MiB/s':>10} {'ratio':>6}"
        )
        for r in rows:
            print(
                f"{r['peer']:<48} {r['op']:<14} {_size(r['object_size']):>8} {r['objects']:>4} "
                f"{r['cse_mib_s']:>10.1f} {r['peer_mib_s']:>10.1f} {r['ratio']:>6.2f}"
            )
        results["peers"] = rows

    if "e2e" in wanted:
        from e2e import bench_e2e

        repeat = max(3, args.repeat // 2)
        print(f"\n== 3. end to end on local servers (own processes), median of {repeat}")
        print("   overhead = cse time / plain SDK time (target <= 1.10 for large objects)")
        rows = bench_e2e(repeat, args.e2e_objects)
        print(f"{'store':<24} {'job':<38} {'cse s':>8} {'plain s':>8} {'overhead':>8}")
        for r in rows:
            print(
                f"{r['store']:<24} {r['job']:<38} {r['cse_s']:>8.3f} {r['plain_s']:>8.3f} "
                f"{r['overhead']:>8.2f}"
            )
        results["e2e"] = rows

    if "memory" in wanted:
        from memory import bench_memory

        print(
            "\n== 4. peak RSS of a 1 GiB upload + download, each in a child process "
            "(target < 128 MiB for cse)"
        )
        rows = bench_memory()
        print(f"{'store':<20} {'client':<20} {'peak RSS MiB':>12} {'up s':>7} {'down s':>7} verified")
        for r in rows:
            if "error" in r:
                print(f"{r['store']:<20} {r['client']:<20} failed: {r['error']}")
                continue
            print(
                f"{r['store']:<20} {r['client']:<20} {r['peak_rss'] / MiB:>12.1f} "
                f"{r['upload_s']:>7.1f} {r['download_s']:>7.1f} {r['verified']}"
            )
        results["memory"] = rows
    elif "memory" not in args.only:
        print("\n== 4. memory: skipped (pass --memory or set CSE_BENCH_MEMORY=1; takes about 4 minutes)")

    if "kms" in wanted:
        from kms_calls import bench_kms_calls

        print(
            f"\n== 5. Alibaba Cloud KMS calls per object (emulator's request log), {args.kms_objects} x 1 KiB"
        )
        rows, notes = bench_kms_calls(args.kms_objects)
        print(f"{'client':<14} {'put calls/object':>16} {'get calls/object':>16}  put / get actions")
        for r in rows:
            print(
                f"{r['client']:<14} {r['put_calls_per_object']:>16.3f} {r['get_calls_per_object']:>16.3f}  "
                f"{r['put_calls']} / {r['get_calls']}"
            )
        for note in notes:
            print(f"   note: {note}")
        results["kms_calls"], results["kms_notes"] = rows, notes

    if "startup" in wanted:
        from startup import bench_startup

        print(f"\n== 6. start-up, fresh subprocesses, median of {args.repeat} (target: cse --help < 0.3 s)")
        rows = bench_startup(args.repeat)
        for r in rows:
            print(
                f"{r['command']:<34} {r['seconds']:>7.3f} s  {r['ratio_to_bare_python']:>5.1f}x bare python"
            )
        results["startup"] = rows

    if "migrate-scale" in wanted:
        from migrate_scale import bench_migrate_scale

        print(
            f"\n== 7. migrate {args.scale_objects} objects of {args.scale_size} B file:// -> file://, "
            "native, with a journal: local engine and Dask engine"
        )
        print(f"   stores and journals under {args.scale_dir or tempfile.gettempdir()}")
        rows = bench_migrate_scale(args.scale_objects, args.scale_size, args.scale_dir)
        print(
            f"   per-object overhead of the Dask path (dask 1 process - local 1 thread): "
            f"{rows[0]['dask_overhead_us_per_object']:.0f} us; journal "
            f"{rows[1]['journal_bytes_per_object']:.0f} bytes per object"
        )
        results["migrate_scale"] = rows

    with open(args.json, "w") as fh:
        json.dump(results, fh, indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
