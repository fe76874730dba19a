"""OSS end to end with cse's CRC-64 through fastcrc and through crcmod, in one process against the same
emulator: the overhead (cse time / plain oss2 time) of each shape of ``e2e.py`` for each backend.

Run: ``uv run python benchmarks/oss_crc_backends.py [--repeat 5] [--small 200] [--rounds 2]``.

The backend is switched in this process only (``cse_oss.crc64``'s update function and the store's note of
it); plain oss2 keeps its own CRC (crcmod), and the emulator, in its own process, its own.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import cse_oss.crc64 as crc_module
import cse_oss.store as store_module
import e2e
from common import rsa_keypair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--small", type=int, default=200, help="objects of 4 KiB")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    updates = {"fastcrc": crc_module._load_fastcrc(), "crcmod": crc_module._load_extension()}
    ratios: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        key_uri, _ = rsa_keypair(Path(tmp))
        for _ in range(args.rounds):
            for name, update in updates.items():
                if update is None:
                    continue
                crc_module._update = update
                store_module.CRC64_BACKEND = name
                for job, t in e2e._oss(key_uri, args.repeat, args.small).items():
                    ratios.setdefault((job, name), []).append(t["cse"] / t["plain"])
    print(f"{'shape':<40} {'backend':<8} overhead (cse / plain oss2), per round")
    for (job, name), values in sorted(ratios.items()):
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"{job:<40} {name:<8} {shown}  (median {statistics.median(values):.2f})")


if __name__ == "__main__":
    main()
