"""The cross-cloud leg of ``cse demo`` (``cse_oss.demo_migrate``): S3 -> OSS, oss2 reads, key rotation."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cse.cli import main

pytest.importorskip("cse_oss")
pytest.importorskip("cse_s3")
pytest.importorskip("cse_aliyun_kms")
pytest.importorskip("moto.server")


def test_migrate_leg_writes_migrates_reads_and_rotates(tmp_path: Path) -> None:
    """The leg on its own: every step reports, the journal is in the demo directory, the environment is
    left exactly as it was."""
    from cse_oss.demo_migrate import run_migrate_leg

    before = dict(os.environ)
    lines: list[str] = []
    report = run_migrate_leg(tmp_path, b"unused", lines.append)
    assert dict(os.environ) == before
    assert report["ok"]
    assert report["source"] == "s3://cse-demo-archive/archive/"
    assert report["destination"] == "oss://cse-migrated/archive/"
    n = len(report["objects"])
    assert n >= 4 and max(report["objects"].values()) > 5 * 1024 * 1024  # one multipart object
    migration = report["migration"]
    assert migration["copied"] == n and migration["failed"] == 0
    assert migration["bytes"] == sum(report["objects"].values())
    assert migration["formats"] == ["oss-v2"]
    assert migration["kms_calls_by_operation"]["AWS Decrypt"] == n
    assert migration["second_run_skipped"] == n
    assert Path(report["journal"]) == tmp_path / "migrate-journal.sqlite" and Path(report["journal"]).exists()
    assert report["key"].endswith("?style=oss2") and report["new_key"].endswith("?style=oss2")
    assert report["oss2_read"] is True
    rotation = report["rotation"]
    assert rotation["rewrapped"] == n and rotation["failed"] == 0
    assert rotation["old_key_refused"] == "KmsError: Rejected.Disabled"
    assert rotation["new_key_read"] and rotation["oss2_read_new_key"]
    assert report["official_client_wrote"] is (importlib.util.find_spec("s3_encryption") is not None)

    assert lines[0].startswith("10. migrate leg  S3 -> OSS")
    steps = [line.split()[0] for line in lines[1:] if line.startswith("   10.")]
    assert steps == ["10.1", "10.2", "10.3", "10.4"]
    text = "\n".join(lines)
    assert f"copied {n}, failed 0" in text and "KMS calls" in text
    assert f"a second run skips all {n}" in text
    assert "oss2's CryptoBucket (AliKMSProvider, old key) reads all" in text
    assert "no longer opens (KmsError: Rejected.Disabled)" in text
    assert "(2 parts)" in text


def test_migrate_leg_skips_without_moto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without moto's server the leg says it is skipped and why, and reports it."""
    from cse_oss.demo_migrate import run_migrate_leg

    monkeypatch.setitem(sys.modules, "moto.server", None)  # makes the import fail
    lines: list[str] = []
    report = run_migrate_leg(tmp_path, b"", lines.append)
    assert "skipped" in report
    assert lines == ["10. migrate leg  skipped: it starts on moto's S3 server (pip install 'moto[server]')"]


def test_cse_demo_json_reports_the_migrate_leg(tmp_path: Path) -> None:
    """``cse demo --json`` reports the migrate leg OK, its journal in the demo directory."""
    before = dict(os.environ)
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path / "demo"), "--json"])
    assert result.exit_code == 0, result.output
    assert dict(os.environ) == before
    report = json.loads(result.stdout)
    assert report["ok"]
    assert {"s3", "oss", "migrate"} <= set(report["legs"])
    leg = report["legs"]["migrate"]
    assert leg["ok"] and leg["migration"]["failed"] == 0 and leg["rotation"]["rewrapped"] > 0
    assert (tmp_path / "demo" / "migrate-journal.sqlite").exists()


def test_demo_runs_the_migrate_leg_after_the_s3_and_oss_legs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leg order: s3, oss, migrate, then the others by name, whatever order the entry points come in."""
    from importlib import metadata

    import cse.demo

    ran: list[str] = []

    class FakeEntryPoint:
        def __init__(self, name: str) -> None:
            self.name = name

        def load(self) -> Callable[..., dict[str, Any]]:
            def leg(*_args: Any) -> dict[str, Any]:
                ran.append(self.name)
                return {"ok": True}

            return leg

    names = ["zeta", "migrate", "alpha", "oss", "s3"]
    monkeypatch.setattr(metadata, "entry_points", lambda group: [FakeEntryPoint(n) for n in names])
    reports = cse.demo._plugin_legs(tmp_path, b"", lambda _msg: None)
    assert ran == ["s3", "oss", "migrate", "alpha", "zeta"]
    assert set(reports) == set(names)
