"""``cse demo``: a whole local round trip that needs no cloud account."""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cse import registry
from cse.client import EncryptionClient
from cse.exceptions import CseError, DecryptionError

__all__ = ["DEMO_GROUP", "run_demo"]

#: Entry-point group of further demo legs: ``name = "package.module:function"``, where
#: ``function(root: Path, data: bytes, say: Callable[[str], object]) -> dict`` runs a round trip of ``data``
#: on the plugin's local stand-in (moto's server for S3, the emulator for OSS) and returns its report,
#: raising :class:`~cse.exceptions.CseError` if a check fails.
DEMO_GROUP = "cse.demo"

_SIZE = 5 * 1024 * 1024 + 12345


def run_demo(
    directory: str | os.PathLike[str] | None = None, echo: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """Make an RSA key, encrypt a file into a ``file://`` vault, inspect it, decrypt it and verify it.

    Also reads a byte range (authenticated) and shows that a flipped byte is detected. Returns a report;
    raises :class:`~cse.exceptions.CseError` if any check fails.
    """
    say = echo or (lambda _msg: None)
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="cse-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    registry.provider_class("rsa")  # a clear install hint if cse-rsa is missing
    cse_rsa = importlib.import_module("cse_rsa")

    private, public = root / "keys" / "demo-private.pem", root / "keys" / "demo-public.pem"
    private.parent.mkdir(exist_ok=True)
    if not private.exists():
        cse_rsa.generate_keypair(private, public, bits=2048)
    key_uri = f"rsa://{quote(str(private.resolve()))}"
    say(f"1. key pair      {private} (key URI {key_uri})")

    plain = root / "plain" / "sample.bin"
    plain.parent.mkdir(exist_ok=True)
    data = os.urandom(_SIZE)
    plain.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    say(f"2. plaintext     {plain} ({_SIZE} bytes, sha256 {digest[:16]}...)")

    vault = f"file://{(root / 'vault').resolve()}/"
    url = vault + "sample.bin"
    client = EncryptionClient(key_uri, encryption_context={"purpose": "demo"})
    put = client.upload_file(plain, url)
    say(f"3. encrypted     {put.url} ({put.stored_size} bytes stored, {put.parts or 1} request(s))")

    head = client.head(url)
    env = head.envelope
    say(f"4. metadata      format {env.format}, {env.content_algorithm}, segment {env.segment_size} bytes,")
    say(f"                 key {env.wrapped_keys[0].wrap_algorithm} id {env.wrapped_keys[0].key_id},")
    say(f"                 context {env.encryption_context}, authentication: {head.authentication}")

    restored = root / "restored" / "sample.bin"
    restored.parent.mkdir(exist_ok=True)
    client.download_file(url, restored)
    restored_digest = hashlib.sha256(restored.read_bytes()).hexdigest()
    if restored_digest != digest:
        raise CseError("demo: the decrypted file differs from the original")
    say(f"5. decrypted     {restored} (sha256 matches)")

    start, end = 3_000_000, 3_000_099
    piece = client.get(url, range=f"{start}-{end}")
    if piece != data[start : end + 1]:
        raise CseError("demo: the ranged read differs from the original")
    say(f"6. ranged read   bytes {start}-{end} verified without reading the whole object")

    tampered = vault + "tampered.bin"
    client.copy(url, tampered)
    stored = root / "vault" / "tampered.bin"
    with stored.open("r+b") as fh:
        fh.seek(2_000_000)
        byte = fh.read(1)
        fh.seek(2_000_000)
        fh.write(bytes([byte[0] ^ 1]))
    try:
        client.get(tampered)
    except DecryptionError as exc:
        detected = str(exc)
    else:
        raise CseError("demo: a flipped ciphertext bit was not detected")
    say(f"7. tamper test   one flipped bit in {tampered} -> DecryptionError: {detected[:60]}...")
    legs = _plugin_legs(root, data, say)
    say("demo OK")
    return {
        "legs": legs,
        "ok": True,
        "directory": str(root),
        "key_uri": key_uri,
        "url": url,
        "size": _SIZE,
        "stored_size": put.stored_size,
        "format": env.format,
        "sha256": digest,
        "range_verified": [start, end],
        "tamper_detected": True,
    }


def _plugin_legs(root: Path, data: bytes, say: Callable[[str], Any]) -> dict[str, Any]:
    """Run the demo legs that installed plugins register: S3, OSS, the S3 -> OSS migration, then any others in
    name order."""
    from importlib import metadata

    reports: dict[str, Any] = {}
    order = {"s3": 0, "oss": 1, "migrate": 2}
    for ep in sorted(metadata.entry_points(group=DEMO_GROUP), key=lambda e: (order.get(e.name, 3), e.name)):
        try:
            leg = ep.load()
        except ImportError as exc:
            say(f"   {ep.name} leg skipped: {exc}")
            reports[ep.name] = {"skipped": str(exc)}
            continue
        reports[ep.name] = leg(root, data, say)
    return reports
