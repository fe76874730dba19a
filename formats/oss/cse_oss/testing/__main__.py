"""Run the OSS emulator: ``python -m cse_oss.testing [--host H] [--port P] [--access-key-id ID] ...``.

It prints one line, ``endpoint=http://HOST:PORT access_key_id=ID access_key_secret=SECRET bucket=...``, then
serves until interrupted.
"""

from __future__ import annotations

import argparse
import sys
import threading

from .server import OssEmulator

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, start the emulator, print its endpoint and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m cse_oss.testing", description="Run an OSS emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--access-key-id", default="test-access-key-id")
    parser.add_argument("--access-key-secret", default="test-access-key-secret")
    parser.add_argument("--security-token", default=None)
    parser.add_argument("--bucket", action="append", default=[], help="create this bucket (repeatable)")
    args = parser.parse_args(argv)
    emulator = OssEmulator(
        args.access_key_id,
        args.access_key_secret,
        args.host,
        args.port,
        security_token=args.security_token,
        buckets=args.bucket,
    )
    emulator.start()
    line = (
        f"endpoint={emulator.endpoint} access_key_id={emulator.access_key_id} "
        f"access_key_secret={emulator.access_key_secret}"
    )
    if args.bucket:
        line += " buckets=" + ",".join(args.bucket)
    print(line, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
