"""Content-cipher throughput: cse's streaming path against raw ``cryptography`` ``update_into``.

For each cipher, encrypt and decrypt the same bytes through cse's streaming encryptor/decryptor objects
(built by the content codecs, exactly as the client uses them: fixed-size chunks into one reused output
buffer) and through a bare ``cryptography`` ``Cipher(...).update_into`` loop with the same chunking.
Runs alternate, and each figure is the median of several repetitions measured in the same process, so the
ratio holds on a noisy shared machine. Also sweeps the cse-v1 segment size, which chose its default.

    python benchmarks/bench.py [--size-mib 256] [--repeat 5] [--json bench-results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--segment-size", type=int, default=DEFAULT_SEGMENT_SIZE)
    parser.add_argument("--json", default="bench-results.json", help="where to write the results")
    args = parser.parse_args()
    size = args.size_mib * MiB
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"streaming {args.size_mib} MiB in {CHUNK // 1024} KiB chunks, median of {args.repeat}\n")
    rows = bench_ciphers(size, args.repeat, args.segment_size)
    print(f"{'cipher':<32} {'dir':<8} {'cse MiB/s':>10} {'raw MiB/s':>10} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['cipher']:<32} {r['direction']:<8} {r['cse_mib_s']:>10.0f} "
            f"{r['raw_mib_s']:>10.0f} {r['ratio']:>6.2f}"
        )
    segs = bench_segment_sizes(min(size, 128 * MiB), args.repeat)
    print("\ncse-v1 segment size sweep (encrypt, ratio to raw AES-GCM update_into):")
    for r in segs:
        print(f"  {r['segment_size'] // 1024:>5} KiB  {r['ratio']:.2f}")
    with open(args.json, "w") as fh:
        json.dump({"ciphers": rows, "segment_sizes": segs, "machine": platform.platform()}, fh, indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
