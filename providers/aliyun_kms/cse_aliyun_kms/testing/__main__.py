"""``python -m cse_aliyun_kms.testing``: run the KMS emulator and print its endpoint on one line."""

from __future__ import annotations

import argparse
import sys

from cse_aliyun_kms.testing._emulator import KmsEmulator

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, start the emulator, print its endpoint and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m cse_aliyun_kms.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--region", default="cn-hangzhou")
    parser.add_argument("--access-key-id", default="test-access-key-id")
    parser.add_argument("--access-key-secret", default="test-access-key-secret")
    parser.add_argument("--security-token", default=None, help="require this STS SecurityToken")
    parser.add_argument("--alias", default=None, help="also bind alias/<name> to the created key")
    args = parser.parse_args(argv)
    emulator = KmsEmulator(
        access_key_id=args.access_key_id,
        access_key_secret=args.access_key_secret,
        host=args.host,
        port=args.port,
        region=args.region,
        security_token=args.security_token,
    )
    key_id = emulator.create_key("created by python -m cse_aliyun_kms.testing")
    if args.alias:
        emulator.create_alias(
            args.alias if args.alias.startswith("alias/") else f"alias/{args.alias}", key_id
        )
    emulator.start()
    print(
        f"endpoint={emulator.endpoint} region={args.region} access_key_id={args.access_key_id} "
        f"access_key_secret={args.access_key_secret} key_id={key_id}",
        flush=True,
    )
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
