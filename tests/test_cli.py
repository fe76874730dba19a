"""The ``cse`` command, driven in-process with click's runner and, for start-up, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cse.cli import main


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _ok(runner: CliRunner, *args: str, input: bytes | None = None) -> str:  # noqa: A002
    result = runner.invoke(main, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _fails(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.startswith("cse: error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_help_does_not_import_cloud_sdks() -> None:
    code = (
        "import sys\n"
        "from cse.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 'oss2', 'aliyunsdkcore', 'aliyunsdkkms', 'alibabacloud_oss_v2', 'cse_rsa'))\n"
        "print('IMPORTED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "IMPORTED []" in out
    assert "keygen" in out and "demo" in out


def test_full_cli_round_trip(runner: CliRunner, tmp_path: Path) -> None:
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    out = json.loads(
        _ok(runner, "keygen", "rsa", "--private", str(priv), "--public", str(pub), "--bits", "2048", "--json")
    )
    key = out["key_uri"]
    assert key == f"rsa://{priv}"
    assert oct(priv.stat().st_mode & 0o777) == "0o600"
    data = os.urandom(100_000)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    vault = f"file://{tmp_path}/vault"
    put = json.loads(
        _ok(runner, "put", str(src), f"{vault}/a.bin", "--key", key, "--context", "team=x", "--json")
    )
    assert put["size"] == len(data) and put["format"] == "cse-v1"
    head = json.loads(_ok(runner, "head", f"{vault}/a.bin", "--json"))
    assert head["size"] == len(data)
    assert head["encryption_context"] == {"team": "x"}
    assert head["authentication"] == "segment"
    assert head["keys"][0]["wrap_algorithm"] == "RSA-OAEP-SHA256"
    text = json.dumps(head)
    assert "ciphertext" not in text  # the envelope view never shows wrapped or plain keys
    human = _ok(runner, "head", f"{vault}/a.bin")
    assert "cse-v1" in human and "segment" in human
    _ok(runner, "get", f"{vault}/a.bin", str(tmp_path / "out.bin"), "--key", key)
    assert (tmp_path / "out.bin").read_bytes() == data
    result = runner.invoke(main, ["cat", f"{vault}/a.bin", "--key", key, "--range", "10-19"])
    assert result.exit_code == 0 and result.stdout_bytes == data[10:20]
    result = runner.invoke(main, ["cat", f"{vault}/a.bin", "--key", key, "--range", "-5"])
    assert result.stdout_bytes == data[-5:]
    result = runner.invoke(main, ["cat", f"{vault}/a.bin", "--key", key, "--range", "99990-"])
    assert result.stdout_bytes == data[99990:]
    listing = json.loads(_ok(runner, "ls", f"{vault}/", "--json"))
    assert [row["key"] for row in listing] == ["a.bin"]
    _ok(runner, "cp", f"{vault}/a.bin", f"{vault}/b.bin", "--key", key)
    result = runner.invoke(main, ["cat", f"{vault}/b.bin", "--key", key])
    assert result.stdout_bytes == data
    _ok(runner, "rm", f"{vault}/a.bin")
    assert [row["key"] for row in json.loads(_ok(runner, "ls", f"{vault}/", "--json"))] == ["b.bin"]


def test_put_from_stdin_and_get_to_stdout(runner: CliRunner, tmp_path: Path, key_a: str) -> None:
    data = os.urandom(5000)
    url = f"file://{tmp_path}/v/s.bin"
    _ok(runner, "put", "-", url, "--key", key_a, input=data)
    result = runner.invoke(main, ["get", url, "-", "--key", key_a])
    assert result.exit_code == 0 and result.stdout_bytes == data


def test_cp_with_to_key_rewraps(runner: CliRunner, tmp_path: Path, key_a: str, key_b: str) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"rotate me")
    url = f"file://{tmp_path}/v/a.bin"
    _ok(runner, "put", str(src), url, "--key", key_a)
    _ok(runner, "cp", url, f"file://{tmp_path}/v/b.bin", "--key", key_a, "--to-key", key_b)
    result = runner.invoke(main, ["cat", f"file://{tmp_path}/v/b.bin", "--key", key_b])
    assert result.stdout_bytes == b"rotate me"
    line = _fails(runner, "cat", f"file://{tmp_path}/v/b.bin", "--key", key_a)
    assert "no configured key can unwrap" in line


def test_demo_runs_and_reports(runner: CliRunner, tmp_path: Path) -> None:
    out = _ok(runner, "demo", "--dir", str(tmp_path / "demo"))
    assert "demo OK" in out and "tamper" in out
    report = json.loads(_ok(runner, "demo", "--dir", str(tmp_path / "demo2"), "--json"))
    assert report["ok"] and report["tamper_detected"] and report["format"] == "cse-v1"


# ------------------------------------------------------------------------------ bad input: clear errors


def test_wrong_key(runner: CliRunner, tmp_path: Path, key_a: str, key_b: str) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"x" * 10)
    url = f"file://{tmp_path}/v/a.bin"
    _ok(runner, "put", str(src), url, "--key", key_a)
    line = _fails(runner, "get", url, str(tmp_path / "out"), "--key", key_b)
    assert "no configured key can unwrap" in line and "key id" in line
    assert not (tmp_path / "out").exists()


def test_missing_key_file(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"x")
    line = _fails(runner, "put", str(src), f"file://{tmp_path}/v/a", "--key", f"rsa://{tmp_path}/nope.pem")
    assert "nope.pem" in line and "does not exist" in line and "cse keygen rsa" in line


def test_malformed_pem(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
    src = tmp_path / "in.bin"
    src.write_bytes(b"x")
    line = _fails(runner, "put", str(src), f"file://{tmp_path}/v/a", "--key", f"rsa://{bad}")
    assert "bad.pem" in line and "not base64" not in line


def test_malformed_sidecar(runner: CliRunner, tmp_path: Path, key_a: str) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"x" * 100)
    url = f"file://{tmp_path}/v/a.bin"
    _ok(runner, "put", str(src), url, "--key", key_a)
    sidecar = tmp_path / "v" / ".cse" / "a.bin.json"
    assert sidecar.exists()
    sidecar.write_text("{ this is not json")
    line = _fails(runner, "get", url, str(tmp_path / "out"), "--key", key_a)
    assert "sidecar" in line or "a.bin.json" in line
    line = _fails(runner, "head", url)
    assert "a.bin" in line


def test_unknown_url_scheme(runner: CliRunner, tmp_path: Path, key_a: str) -> None:
    line = _fails(runner, "ls", "ftp://host/x")
    assert "unknown store URL scheme 'ftp'" in line and "file" in line and "memory" in line
    line = _fails(runner, "cat", f"file://{tmp_path}/x", "--key", "vault://k")
    assert "unknown key URI scheme 'vault'" in line


def test_missing_extra(runner: CliRunner, key_a: str) -> None:
    from cse import registry

    checked = 0
    if "oss" not in registry.available_stores():
        line = _fails(runner, "ls", "oss://bucket/prefix")
        assert "cse-oss" in line and "cse[aliyun]" in line and "pip install" in line
        checked += 1
    if "aliyun-kms" not in registry.available_providers():
        line = _fails(runner, "cat", "memory://b/k", "--key", "aliyun-kms://cn-hangzhou/x")
        assert "cse-aliyun-kms" in line and "pip install" in line
        checked += 1
    if not checked:
        pytest.skip("the OSS store and the Alibaba KMS provider are both installed")


def test_missing_object_and_missing_key_option(runner: CliRunner, tmp_path: Path, key_a: str) -> None:
    line = _fails(runner, "head", f"file://{tmp_path}/nothing")
    assert "nothing" in line
    result = runner.invoke(main, ["cat", f"file://{tmp_path}/x"])
    assert result.exit_code == 2 and "--key" in result.output


def test_bad_range(runner: CliRunner, tmp_path: Path, key_a: str) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"0123456789")
    url = f"file://{tmp_path}/v/a"
    _ok(runner, "put", str(src), url, "--key", key_a)
    result = runner.invoke(main, ["cat", url, "--key", key_a, "--range", "abc"])
    assert result.exit_code == 2
    assert "A-B, A- or -N" in result.output
    assert "not satisfiable" in _fails(runner, "cat", url, "--key", key_a, "--range", "10-")


def test_put_with_several_keys_lets_each_decrypt(
    runner: CliRunner, tmp_path: Path, key_a: str, key_b: str
) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"shared secret")
    url = f"file://{tmp_path}/v/a"
    _ok(runner, "put", str(src), url, "--key", key_a, "--key", key_b)
    assert len(json.loads(_ok(runner, "head", url, "--json"))["keys"]) == 2
    for key in (key_a, key_b):
        assert runner.invoke(main, ["cat", url, "--key", key]).stdout_bytes == b"shared secret"


def test_cp_across_stores_wraps_for_every_to_key(
    runner: CliRunner, tmp_path: Path, key_a: str, key_b: str
) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"moving")
    _ok(runner, "put", str(src), f"file://{tmp_path}/one/a", "--key", key_a)
    dst = f"file://{tmp_path}/two/a"
    _ok(runner, "cp", f"file://{tmp_path}/one/a", dst, "--key", key_a, "--to-key", key_a, "--to-key", key_b)
    for key in (key_a, key_b):
        assert runner.invoke(main, ["cat", dst, "--key", key]).stdout_bytes == b"moving"


def test_keygen_refuses_to_overwrite_and_names_the_flag(runner: CliRunner, tmp_path: Path) -> None:
    args = [
        "keygen",
        "rsa",
        "--private",
        str(tmp_path / "k.pem"),
        "--public",
        str(tmp_path / "k.pub"),
        "--bits",
        "2048",
    ]
    _ok(runner, *args)
    assert "--overwrite" in _fails(runner, *args)
    _ok(runner, *args, "--overwrite")
