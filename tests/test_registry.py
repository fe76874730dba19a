"""The plugin registry: entry points, runtime registration, selection by scheme, install hints."""

from __future__ import annotations

from importlib import metadata
from typing import Any

import pytest

from cse import registry
from cse.client import EncryptionClient
from cse.exceptions import ConfigurationError, MissingExtraError, UnknownSchemeError
from cse.formats.native import NativeFormat
from cse.stores.file import FileStore
from cse.stores.memory import MemoryStore


def test_built_in_plugins_come_from_entry_points() -> None:
    assert {"file", "memory"} <= set(registry.available_stores())
    assert "cse-v1" in registry.available_formats()
    assert "rsa" in registry.available_providers()
    assert registry.store_class("file") is FileStore
    assert isinstance(registry.get_format("cse-v1"), NativeFormat)
    import cse_rsa

    assert registry.provider_class("rsa") is cse_rsa.RsaKeyProvider


def test_selection_by_url_scheme(tmp_path: Any) -> None:
    store, key = registry.open_store(f"file://{tmp_path}/a/b.bin")
    assert isinstance(store, FileStore)
    assert key == "b.bin"
    store, key = registry.open_store("MEMORY://bucket/x/y")
    assert isinstance(store, MemoryStore)
    assert key == "x/y"


def test_runtime_registration_wins_and_is_used_by_the_client(key_a: str) -> None:
    class TeamStore(MemoryStore):
        scheme = "team"

        @classmethod
        def from_url(cls, url: str) -> tuple[MemoryStore, str]:
            bucket, _, key = url.split("://", 1)[1].partition("/")
            return MemoryStore.shared(f"team-{bucket}"), key

    registry.register_store("team", TeamStore)
    assert "team" in registry.available_stores()
    client = EncryptionClient(key_a)
    client.put("team://one/greeting", b"hi")
    assert client.get("team://one/greeting") == b"hi"
    assert MemoryStore.shared("team-one").head("greeting").size > 2


@pytest.mark.parametrize(
    ("call", "name", "dist", "extra"),
    [
        (lambda: registry.open_store("s3://bucket/key"), "s3", "cse-s3", "cse[aws]"),
        (lambda: registry.open_store("oss://bucket/key"), "oss", "cse-oss", "cse[aliyun]"),
        (lambda: registry.open_provider("aws-kms://alias/k"), "aws-kms", "cse-aws-kms", "cse[aws]"),
        (
            lambda: registry.open_provider("aliyun-kms://cn-hangzhou/k"),
            "aliyun-kms",
            "cse-aliyun-kms",
            "cse[aliyun]",
        ),
        (lambda: registry.get_format("s3-v3"), "s3-v3", "cse-s3", "cse[aws]"),
        (lambda: registry.get_format("oss-v2"), "oss-v2", "cse-oss", "cse[aliyun]"),
    ],
)
def test_missing_extras_name_what_to_install(call: Any, name: str, dist: str, extra: str) -> None:
    installed = {
        ep.name
        for group in ("cse.stores", "cse.providers", "cse.formats")
        for ep in metadata.entry_points(group=group)
    }
    if name in installed:
        pytest.skip(f"{dist} is installed")
    with pytest.raises(MissingExtraError) as info:
        call()
    message = str(info.value)
    assert dist in message and f"'{extra}'" in message and "pip install" in message
    assert isinstance(info.value, ImportError) and isinstance(info.value, ConfigurationError)


def test_unknown_schemes_list_what_is_available() -> None:
    with pytest.raises(UnknownSchemeError, match="unknown store URL scheme 'ftp'.*file.*memory"):
        registry.open_store("ftp://host/x")
    with pytest.raises(UnknownSchemeError, match="unknown key URI scheme 'vault'.*rsa"):
        registry.open_provider("vault://x")
    with pytest.raises(UnknownSchemeError, match="not a store URL"):
        registry.open_store("/no/scheme/here")
    with pytest.raises(UnknownSchemeError, match="unknown format 'nope'"):
        registry.get_format("nope")


def test_a_broken_plugin_is_reported_as_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = metadata.EntryPoint(name="broken", value="cse_no_such_module:Store", group="cse.stores")
    real = registry._entry_points

    def fake(group: str) -> dict[str, metadata.EntryPoint]:
        found = real(group)
        if group == "cse.stores":
            found["broken"] = broken
        return found

    monkeypatch.setattr(registry, "_entry_points", fake)
    with pytest.raises(MissingExtraError, match="could not be imported.*cse_no_such_module"):
        registry.store_class("broken")


def test_an_installed_distribution_without_the_plugin_says_to_upgrade(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(registry._KNOWN[registry.STORE_GROUP], "nostore", ("cse", "cse[all]"))
    with pytest.raises(
        MissingExtraError, match=r"the installed cse \S+ does not; upgrade it with: pip install --upgrade"
    ):
        registry.open_store("nostore://bucket/key")
