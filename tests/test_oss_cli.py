"""The ``cse`` command on ``oss://`` URLs, with RSA and Alibaba Cloud KMS keys, against the emulators.

``oss_env`` points ``oss://`` (``OSS_ENDPOINT``, ``OSS_REGION``, credentials) and ``aliyun-kms://``
(``CSE_ALIYUN_KMS_ENDPOINT``) at the in-process OSS and KMS emulators.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cse.cli import main
from tests.conftest import OSS_REGION, oss2_bucket

pytest.importorskip("cse_oss")
pytest.importorskip("cse_aliyun_kms")

MiB = 1024 * 1024
_META = "x-oss-meta-client-side-encryption-"
_OSS_VARIABLES = (
    "OSS_ENDPOINT",
    "OSS_REGION",
    "OSS_ACCESS_KEY_ID",
    "OSS_ACCESS_KEY_SECRET",
    "OSS_SESSION_TOKEN",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "CSE_ALIYUN_KMS_ENDPOINT",
)


def _run(*args: str, input: bytes | None = None) -> Result:  # noqa: A002
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def _ok(*args: str) -> str:
    """Standard output of a command that must succeed."""
    result = _run(*args)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def _json(*args: str) -> Any:
    return json.loads(_ok(*args, "--json"))


def _cat(url: str, key: str, *extra: str) -> bytes:
    result = _run("cat", url, "--key", key, *extra)
    assert result.exit_code == 0, result.output
    return bytes(result.stdout_bytes)


def _error(result: Result) -> str:
    """The single ``cse: error:`` line of a failed command."""
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("cse: error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def kms_key(oss_env: str, aliyun_kms_key: str) -> str:
    """The key URI of a key in the KMS emulator (reached through ``CSE_ALIYUN_KMS_ENDPOINT``)."""
    return f"aliyun-kms://{OSS_REGION}/{aliyun_kms_key}"


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, bytes]:
    """A local file of 300,000 random bytes (single request, several CTR blocks)."""
    data = os.urandom(300_000)
    path = tmp_path / "in.bin"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("which", ["rsa", "kms"])
def test_every_command_on_oss(
    which: str,
    oss_env: str,
    oss_emulator: Any,
    oss_bucket_name: str,
    key_a: str,
    kms_key: str,
    source: tuple[Path, bytes],
    tmp_path: Path,
) -> None:
    """put, head, get, cat (whole and ranges), ls, cp and rm on oss://, written as oss-v2 by default."""
    key = key_a if which == "rsa" else kms_key
    path, data = source
    url = f"oss://{oss_bucket_name}/dir/a.bin"
    put = _json("put", str(path), url, "--key", key)
    assert put["url"] == url and put["size"] == len(data) and put["format"] == "oss-v2"
    assert put["stored_size"] == len(data)  # CTR: the ciphertext is as long as the plaintext

    stored = oss2_bucket(oss_emulator, oss_bucket_name).head_object("dir/a.bin").headers
    assert stored[_META + "cek-alg"] == "AES/CTR/NoPadding"
    wrap = "RSA/NONE/PKCS1Padding" if which == "rsa" else "KMS/ALICLOUD"
    assert stored[_META + "wrap-alg"] == wrap
    assert stored[_META + "unencrypted-content-length"] == str(len(data))
    body = oss_emulator.get_object_bytes(oss_bucket_name, "dir/a.bin")
    assert len(body) == len(data) and body != data

    head = _json("head", url)
    assert head["format"] == "oss-v2" and head["size"] == len(data)
    assert head["authentication"] == "object"  # cse's plaintext MAC: cse wrote it in one request
    assert head["plaintext_mac"].startswith("present")
    assert head["keys"][0]["wrap_algorithm"] == wrap
    assert head["encryption_context"] == {}
    assert "ciphertext" not in json.dumps(head)
    assert "oss-v2" in _ok("head", url)

    out = tmp_path / "out.bin"
    got = _json("get", url, str(out), "--key", key)
    assert got["size"] == len(data) and got["format"] == "oss-v2"
    assert out.read_bytes() == data
    assert _run("get", url, "-", "--key", key).stdout_bytes == data
    assert _cat(url, key) == data
    # CTR decrypts any range on its own: start, middle (unaligned), suffix, open-ended, past the end.
    assert _cat(url, key, "--range", "0-0") == data[:1]
    assert _cat(url, key, "--range", "100005-200017") == data[100005:200018]
    assert _cat(url, key, "--range", "-17") == data[-17:]
    assert _cat(url, key, "--range", "299990-") == data[299990:]
    assert _cat(url, key, "--range", "299990-400000") == data[299990:]

    listing = _json("ls", f"oss://{oss_bucket_name}/dir/")
    assert [(row["key"], row["url"], row["stored_size"]) for row in listing] == [
        ("dir/a.bin", url, len(data))
    ]
    copy = f"oss://{oss_bucket_name}/dir/b.bin"
    cp = _json("cp", url, copy, "--key", key)
    assert cp["dst"] == copy and cp["size"] == len(data) and cp["format"] == "oss-v2"
    assert _cat(copy, key) == data
    assert _json("rm", url) == {"deleted": url}
    assert [row["key"] for row in _json("ls", f"oss://{oss_bucket_name}/")] == ["dir/b.bin"]
    assert "no such object" in _error(_run("head", url))


def test_put_from_stdin_and_wrong_key(
    oss_env: str, oss_bucket_name: str, key_a: str, key_b: str, kms_key: str
) -> None:
    """Standard input goes to OSS; a key that did not wrap the object is refused, and nothing is output.

    OSS V2 records no key id for an RSA key, so another RSA key is tried and fails to unwrap (opaque
    authentication error); a KMS key cannot unwrap an RSA-wrapped key at all.
    """
    data = os.urandom(5000)
    url = f"oss://{oss_bucket_name}/stdin.bin"
    assert _run("put", "-", url, "--key", key_a, input=data).exit_code == 0
    assert _cat(url, key_a) == data
    wrong_rsa = _run("cat", url, "--key", key_b)
    assert "authentication failed" in _error(wrong_rsa) and wrong_rsa.stdout_bytes == b""
    wrong_kms = _run("cat", url, "--key", kms_key)
    assert "no configured key can unwrap" in _error(wrong_kms) and wrong_kms.stdout_bytes == b""


def test_multipart_upload_to_oss(
    oss_env: str, oss_emulator: Any, oss_bucket_name: str, kms_key: str, tmp_path: Path
) -> None:
    """A file above the multipart threshold goes in parts; the object records data size and part size."""
    data = os.urandom(17 * MiB + 5)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    url = f"oss://{oss_bucket_name}/big.bin"
    put = _json("put", str(path), url, "--key", kms_key)
    assert put["parts"] > 1 and put["format"] == "oss-v2"
    stored = oss2_bucket(oss_emulator, oss_bucket_name).head_object("big.bin").headers
    assert stored[_META + "data-size"] == str(len(data))
    part_size = int(stored[_META + "part-size"])
    assert part_size % 16 == 0 and part_size >= 100 * 1024
    assert -(-len(data) // part_size) == put["parts"]
    out = tmp_path / "out.bin"
    _ok("get", url, str(out), "--key", kms_key)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    start = part_size - 7  # across the first part boundary
    assert _cat(url, kms_key, "--range", f"{start}-{start + 99}") == data[start : start + 100]


def test_cp_between_oss_and_file(
    oss_env: str,
    oss_bucket_name: str,
    key_a: str,
    kms_key: str,
    source: tuple[Path, bytes],
    tmp_path: Path,
) -> None:
    """cp oss -> file, file -> oss and oss -> oss (re-wrapped for another key) keep the plaintext."""
    path, data = source
    origin = f"oss://{oss_bucket_name}/origin.bin"
    _ok("put", str(path), origin, "--key", kms_key)

    local = f"file://{tmp_path}/vault/from-oss.bin"
    down = _json("cp", origin, local, "--key", kms_key)
    assert down["dst"] == local and down["size"] == len(data)
    assert _json("head", local)["format"] == down["format"]
    assert _cat(local, kms_key) == data

    up = f"oss://{oss_bucket_name}/from-file.bin"
    back = _json("cp", local, up, "--key", kms_key)
    assert back["dst"] == up and back["size"] == len(data)
    assert _cat(up, kms_key) == data

    rewrapped = f"oss://{oss_bucket_name}/rewrapped.bin"
    moved = _json("cp", origin, rewrapped, "--key", kms_key, "--to-key", key_a)
    assert moved["format"] == "oss-v2"
    assert _json("head", rewrapped)["keys"][0]["wrap_algorithm"] == "RSA/NONE/PKCS1Padding"
    assert _cat(rewrapped, key_a) == data
    assert "no configured key can unwrap" in _error(_run("cat", rewrapped, "--key", kms_key))


def test_cse_v1_on_oss(
    oss_env: str, oss_emulator: Any, oss_bucket_name: str, key_a: str, source: tuple[Path, bytes]
) -> None:
    """--format cse-v1 writes cse's authenticated format to OSS: verified ranges, tampering detected."""
    path, data = source
    url = f"oss://{oss_bucket_name}/v1.bin"
    put = _json("put", str(path), url, "--key", key_a, "--format", "cse-v1", "--context", "team=x")
    assert put["format"] == "cse-v1" and put["stored_size"] > len(data)
    head = _json("head", url)
    assert head["format"] == "cse-v1" and head["authentication"] == "segment"
    assert head["encryption_context"] == {"team": "x"}
    assert _cat(url, key_a) == data
    assert _cat(url, key_a, "--range", "1000-1999") == data[1000:2000]
    stored = oss2_bucket(oss_emulator, oss_bucket_name).head_object("v1.bin").headers
    assert not any(name.startswith(_META) for name in stored)

    # A body changed at rest (the server recomputes its CRC-64) is caught by cse-v1's authentication.
    oss_emulator.tamper_object(oss_bucket_name, "v1.bin", offset=put["stored_size"] // 2)
    result = _run("cat", url, "--key", key_a)
    assert "authentication failed" in _error(result)
    assert not result.stdout_bytes.startswith(data[:1000])


def test_what_oss_v2_detects_and_what_it_does_not(
    oss_env: str, oss_emulator: Any, oss_bucket_name: str, key_a: str, source: tuple[Path, bytes]
) -> None:
    """The integrity section of docs/oss.md: CTR has no integrity; the CRC-64 and the length guard it.

    In transit: CRC-64 mismatch. Truncated at rest: the recorded plaintext length. A damaged wrapped IV:
    the unwrap fails. A byte changed at rest: cse's plaintext MAC on a whole read; a range decrypts to one
    changed byte, undetected.
    """
    path, data = source
    url = f"oss://{oss_bucket_name}/v2.bin"
    _ok("put", str(path), url, "--key", key_a)

    oss_emulator.corrupt_next_get(oss_bucket_name, "v2.bin", offset=1234)
    assert "corrupted in transit" in _error(_run("cat", url, "--key", key_a))
    assert _cat(url, key_a) == data  # the stored object is intact

    meta = oss_emulator.get_object_metadata(oss_bucket_name, "v2.bin")
    start = meta[_META + "start"]
    damaged = {**meta, _META + "start": ("A" if start[0] != "A" else "B") + start[1:]}
    oss_emulator.replace_metadata(oss_bucket_name, "v2.bin", damaged)
    assert "authentication failed" in _error(_run("cat", url, "--key", key_a))
    oss_emulator.replace_metadata(oss_bucket_name, "v2.bin", meta)

    oss_emulator.tamper_object(oss_bucket_name, "v2.bin", offset=1234)
    # The server recomputed the CRC-64 of what it stores, so only cse's plaintext MAC (objects cse wrote in
    # one request) catches the change, on whole reads ...
    assert "authentication failed" in _error(_run("cat", url, "--key", key_a))
    # ... and not in a range, which the MAC does not cover: there it decrypts to one changed byte.
    changed = _run("cat", url, "--key", key_a, "--range", "1000-1999").stdout_bytes
    assert len(changed) == 1000 and [i for i in range(1000) if changed[i] != data[1000 + i]] == [234]

    oss_emulator.truncate_object(oss_bucket_name, "v2.bin", len(data) - 16)
    line = _error(_run("cat", url, "--key", key_a))
    assert f"plaintext length of {len(data)} bytes" in line


def test_get_prints_nothing_but_the_plaintext(oss_env: str, oss_bucket_name: str, key_a: str) -> None:
    """Reading an object writes no warning of oss2's to standard error (a real process: no pytest logging)."""
    url = f"oss://{oss_bucket_name}/quiet.bin"
    assert _run("put", "-", url, "--key", key_a, input=b"quiet").exit_code == 0
    command = [sys.executable, "-m", "cse.cli", "cat", url, "--key", key_a]
    result = subprocess.run(command, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout == b"quiet", result.stderr
    assert result.stderr == b""


def test_v1_signing_without_oss_region(
    oss_env: str, monkeypatch: pytest.MonkeyPatch, oss_bucket_name: str, key_a: str
) -> None:
    """Without OSS_REGION the default bucket signs with V1; with STS-free credentials from the fallbacks."""
    for name in ("OSS_REGION", "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(name)  # ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET remain
    url = f"oss://{oss_bucket_name}/v1-signed.bin"
    assert _run("put", "-", url, "--key", key_a, input=b"signed with V1").exit_code == 0
    assert _cat(url, key_a) == b"signed with V1"
    assert [row["key"] for row in _json("ls", f"oss://{oss_bucket_name}/")] == ["v1-signed.bin"]


def test_missing_oss_endpoint_is_a_clear_error(
    oss_env: str, monkeypatch: pytest.MonkeyPatch, key_a: str, source: tuple[Path, bytes]
) -> None:
    """Without OSS_ENDPOINT, every command on oss:// fails with one line that names the variable."""
    monkeypatch.delenv("OSS_ENDPOINT")
    path, _ = source
    for args in (
        ("put", str(path), "oss://cse-bucket/a.bin", "--key", key_a),
        ("get", "oss://cse-bucket/a.bin", "out.bin", "--key", key_a),
        ("cat", "oss://cse-bucket/a.bin", "--key", key_a),
        ("ls", "oss://cse-bucket/"),
        ("head", "oss://cse-bucket/a.bin"),
        ("rm", "oss://cse-bucket/a.bin"),
    ):
        line = _error(_run(*args))
        assert "OSS_ENDPOINT" in line, (args, line)


def test_missing_credentials_name_the_variables(
    oss_env: str, monkeypatch: pytest.MonkeyPatch, oss_bucket_name: str
) -> None:
    """Without any credentials the error says which variables to set."""
    for name in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_ACCESS_KEY_ID"):
        monkeypatch.delenv(name)
    line = _error(_run("ls", f"oss://{oss_bucket_name}/"))
    assert "OSS_ACCESS_KEY_ID" in line and "ALIBABA_CLOUD_ACCESS_KEY_ID" in line


# ---------------------------------------------------------------------------------------------- demo


def test_oss_demo_leg_round_trips_and_reads_with_the_official_sdks(tmp_path: Path) -> None:
    """The OSS leg on its own: KMS object, RSA object read by oss2 (and alibabacloud-oss-v2); no env."""
    from cse_oss.demo import run_oss_leg

    before = {name: os.environ.get(name) for name in _OSS_VARIABLES}
    lines: list[str] = []
    report = run_oss_leg(tmp_path, os.urandom(300_000), lines.append)
    assert {name: os.environ.get(name) for name in _OSS_VARIABLES} == before
    assert report["ok"] and report["format"] == "oss-v2"
    assert report["key"].startswith(f"aliyun-kms://{OSS_REGION}/")
    assert "client-side-encryption-wrap-alg" in report["metadata_keys"]
    assert report["oss2_read"] is True
    assert report["rsa_key_uri"].startswith("rsa://")
    assert (tmp_path / "keys" / "oss-demo-private.pem").exists()
    text = "\n".join(lines)
    assert lines[0].startswith("9. OSS leg")
    assert "KMS/ALICLOUD" in text and "RSA/NONE/PKCS1Padding" in text and "oss2's CryptoBucket" in text
    assert "sha256 matches" in text


def test_cse_demo_runs_the_oss_leg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``cse demo --json`` reports the OSS leg, which needs no OSS or KMS settings in the environment."""
    for name in _OSS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    report = _json("demo", "--dir", str(tmp_path / "demo"))
    assert report["ok"]
    leg = report["legs"]["oss"]
    assert leg["ok"] and leg["format"] == "oss-v2" and leg["oss2_read"] is True
    assert leg["url"] == "oss://cse-demo/sample.bin"
