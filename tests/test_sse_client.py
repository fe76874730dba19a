"""Server-side encryption under client-side encryption, and the boto3-style object settings (issue 16).

On ``memory://`` for the logic: the settings reach the store on every write path (single put, multipart,
upload_file's parallel and resumable paths, open_writer, copy), copies, rewraps and migrations keep them
(and, across kinds of store, follow the rule of :mod:`cse.settings`), and a mode the store lacks is refused
before anything is written. Then the same end to end on moto (S3) and the OSS emulator, read back by the
plain SDKs and by the official encryption clients.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from cse.cli import main
from cse.client import EncryptionClient
from cse.config import TransferConfig
from cse.exceptions import ConfigurationError
from cse.migrate import migrate, rewrap_prefix
from cse.settings import carry_settings, object_settings, server_side_encryption
from cse.stores.base import ObjectSettings, ServerSideEncryption, parse_sse
from cse.stores.memory import MemoryStore
from tests import json_formats

json_formats.register()

KiB = 1024
WRITES = ("put", "create_multipart", "copy")

FULL: dict[str, Any] = {
    "content_type": "text/csv",
    "content_disposition": 'attachment; filename="r.csv"',
    "cache_control": "max-age=60",
    "tags": {"team": "data", "tier": "gold"},
    "storage_class": "STANDARD_IA",
    "sse": "kms",
    "sse_key_id": "key-1",
}


class S3Like(MemoryStore):
    """A memory store of another kind, with S3's modes (for the cross-store rule)."""

    scheme: ClassVar[str] = "s3"
    sse_modes: ClassVar[frozenset[str]] = frozenset({"aes256", "kms", "dsse"})


class OssLike(MemoryStore):
    """A memory store of another kind, with OSS's modes."""

    scheme: ClassVar[str] = "oss"
    sse_modes: ClassVar[frozenset[str]] = frozenset({"aes256", "kms", "sm4"})


class CountingStore(MemoryStore):
    """Counts the bucket-default lookups."""

    def __init__(self) -> None:
        super().__init__()
        self.bucket_lookups = 0

    def get_bucket_encryption(self) -> ServerSideEncryption | None:
        self.bucket_lookups += 1
        return super().get_bucket_encryption()


def _settings(store: MemoryStore, key: str) -> ObjectSettings:
    info = store.head(key)
    return ObjectSettings(**{**info.settings.__dict__, "tags": store.get_tags(key)})


def _expected(**overrides: Any) -> ObjectSettings:
    return object_settings(**{**FULL, **overrides})


def _writes(store: MemoryStore) -> list[tuple[str, str]]:
    return [r for r in store.requests if r[0] in WRITES]


# ------------------------------------------------------------------------------------------ the values


def test_sse_values_parse_as_boto3_and_oss2_users_write_them() -> None:
    for value, mode in [
        ("kms", "kms"),
        ("KMS", "kms"),
        ("aws:kms", "kms"),
        ("AES256", "aes256"),
        ("aes256", "aes256"),
        ("SM4", "sm4"),
        ("aws:kms:dsse", "dsse"),
        ("DSSE", "dsse"),
    ]:
        assert server_side_encryption(value) == ServerSideEncryption(mode)
    assert server_side_encryption(None, "k") == ServerSideEncryption("kms", "k")  # a key id alone: kms
    assert server_side_encryption(ServerSideEncryption("dsse"), "k") == ServerSideEncryption("dsse", "k")
    assert server_side_encryption(None) is None
    with pytest.raises(ConfigurationError, match="takes no key id"):
        server_side_encryption("aes256", "k")
    with pytest.raises(ConfigurationError, match="two server-side encryption key ids"):
        server_side_encryption(ServerSideEncryption("kms", "a"), "b")
    with pytest.raises(ConfigurationError, match="aes256, kms, sm4, dsse"):
        server_side_encryption("rot13")
    with pytest.raises(ConfigurationError, match="tags"):
        object_settings(tags=[("a", "b")])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- every write path


def test_single_put_passes_every_setting_to_the_store(key_a: str) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a)
    client.put((store, "k"), b"data", metadata={"owner": "x"}, **FULL)
    assert _settings(store, "k") == _expected()
    assert store.head("k").metadata["owner"] == "x"
    assert client.get((store, "k")) == b"data"


def test_multipart_put_passes_the_settings_to_create_multipart(
    key_a: str, small_config: TransferConfig
) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a, config=small_config)
    data = os.urandom(300 * KiB)
    result = client.put((store, "k"), iter([data[:100_000], data[100_000:]]), **FULL)
    assert result.parts > 1
    assert ("create_multipart", "k") in store.requests and ("put", "k") not in store.requests
    assert _settings(store, "k") == _expected()
    assert client.get((store, "k")) == data


def test_no_settings_no_settings_argument(key_a: str, small_config: TransferConfig) -> None:
    """A store written before settings existed keeps working: nothing set, nothing passed."""

    class Old(MemoryStore):
        def put(self, key: str, data: Any, metadata: Any) -> Any:  # type: ignore[override]
            return super().put(key, data, metadata)

        def create_multipart(self, key: str, metadata: Any) -> str:  # type: ignore[override]
            return super().create_multipart(key, metadata)

        def copy(self, src_key: str, dst_key: str, metadata: Any = None) -> Any:  # type: ignore[override]
            return super().copy(src_key, dst_key, metadata)

    store = Old()
    client = EncryptionClient(key_a, config=small_config)
    client.put((store, "small"), b"x")
    client.put((store, "big"), os.urandom(200 * KiB))
    client.copy((store, "small"), (store, "copy"))
    client.rewrap((store, "small"), to_keys=[key_a])
    assert client.get((store, "copy")) == b"x"


@pytest.mark.parametrize("size", [10 * KiB, 300 * KiB])
def test_upload_file_passes_settings_and_metadata_on_both_paths(
    key_a: str, small_config: TransferConfig, tmp_path: Path, size: int
) -> None:
    """Small files go through put; large cse-v1 ones through the parallel part uploader."""
    store = MemoryStore()
    client = EncryptionClient(key_a, config=small_config)
    path = tmp_path / "f.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    result = client.upload_file(path, (store, "k"), metadata={"owner": "x"}, **FULL)
    assert (result.parts > 1) == (size > small_config.multipart_threshold)
    assert _settings(store, "k") == _expected()
    assert store.head("k").metadata["owner"] == "x"
    assert client.get((store, "k")) == data


def test_resumable_upload_file_starts_its_upload_with_the_settings(
    key_a: str, small_config: TransferConfig, tmp_path: Path
) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a, config=small_config)
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(300 * KiB))
    client.upload_file(path, (store, "k"), checkpoint=tmp_path / "ck.json", metadata={"o": "1"}, **FULL)
    assert _settings(store, "k") == _expected()
    assert store.head("k").metadata["o"] == "1"


@pytest.mark.parametrize("size", [10 * KiB, 300 * KiB])
def test_upload_file_refuses_metadata_named_like_the_format(
    key_a: str, small_config: TransferConfig, tmp_path: Path, size: int
) -> None:
    store = MemoryStore()
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(size))
    with pytest.raises(ConfigurationError, match="format's own"):
        EncryptionClient(key_a, config=small_config).upload_file(path, (store, "k"), metadata={"cse-v1": "x"})
    assert _writes(store) == [] and store.list_multipart_uploads() == []


@pytest.mark.parametrize("size", [10 * KiB, 300 * KiB])
def test_open_writer_passes_the_settings(key_a: str, small_config: TransferConfig, size: int) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a, config=small_config)
    data = os.urandom(size)
    with client.open_writer((store, "k"), metadata={"owner": "x"}, **FULL) as writer:
        writer.write(data)
    assert _settings(store, "k") == _expected()
    assert store.head("k").metadata["owner"] == "x"
    assert client.get((store, "k")) == data


# --------------------------------------------------------------------------- refused before writing


@pytest.mark.parametrize("size", [10 * KiB, 300 * KiB])
def test_a_mode_the_store_lacks_is_refused_before_anything_is_written(
    key_a: str, small_config: TransferConfig, tmp_path: Path, size: int
) -> None:
    store = MemoryStore()
    client = EncryptionClient(key_a, config=small_config)
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    calls = [
        lambda: client.put((store, "k"), data, sse="sm4"),
        lambda: client.put((store, "k"), iter([data]), sse="dsse"),
        lambda: client.upload_file(path, (store, "k"), sse="sm4"),
        lambda: client.upload_file(path, (store, "k"), sse="sm4", checkpoint=tmp_path / "ck.json"),
        lambda: client.open_writer((store, "k"), sse="sm4"),
    ]
    for call in calls:
        with pytest.raises(ConfigurationError, match=r"memory:// has no .* '(sm4|dsse)'; it has aes256, kms"):
            call()
    assert _writes(store) == []
    assert store.list_multipart_uploads() == []
    assert not (tmp_path / "ck.json").exists()


def test_the_refusal_comes_before_any_key_is_made(key_a: str) -> None:
    client = EncryptionClient(key_a)
    made: list[int] = []
    provider = client.wrap_keys[0]
    original = provider.generate_data_key

    def counting(request: Any) -> Any:
        made.append(1)
        return original(request)

    provider.generate_data_key = counting  # type: ignore[method-assign]
    with pytest.raises(ConfigurationError):
        client.put((MemoryStore(), "k"), b"x", sse="sm4")
    assert made == []
    client.put((MemoryStore(), "k"), b"x", sse="kms")
    assert made == [1]


def test_copy_refuses_a_mode_the_destination_lacks_before_writing(key_a: str) -> None:
    store, other = MemoryStore(), MemoryStore()
    client = EncryptionClient(key_a)
    client.put((store, "k"), b"x")
    for dst in [(store, "c"), (other, "c")]:
        with pytest.raises(ConfigurationError, match="'sm4'"):
            client.copy((store, "k"), dst, sse="sm4")
    assert ("copy", "c") not in store.requests and _writes(other) == []


# --------------------------------------------------------------------------------- copies keep them


def test_server_side_copy_and_rewrap_keep_the_settings(key_a: str, key_b: str) -> None:
    store = MemoryStore()
    client = EncryptionClient([key_a, key_b])
    client.put((store, "k"), b"data", metadata={"owner": "x"}, **FULL)
    client.copy((store, "k"), (store, "plain"))
    client.copy((store, "k"), (store, "rewrapped"), to_keys=[key_b])
    client.copy((store, "k"), (store, "replaced"), metadata={"owner": "y"})
    client.rewrap((store, "k"), to_keys=[key_b])
    for key in ("plain", "rewrapped", "replaced", "k"):
        assert _settings(store, key) == _expected(), key
        assert client.get((store, key)) == b"data"
    assert store.head("replaced").metadata["owner"] == "y"
    assert store.head("rewrapped").metadata["owner"] == "x"
    # A copy moved no body: every one was a server-side copy.
    assert [r for r in store.requests if r[0] == "put"] == [("put", "k")]


def test_copy_overrides_what_it_is_given(key_a: str, key_b: str) -> None:
    store = MemoryStore()
    client = EncryptionClient([key_a, key_b])
    client.put((store, "k"), b"data", **FULL)
    client.copy((store, "k"), (store, "c"), sse="aes256", content_type="application/json")
    assert _settings(store, "c") == _expected(sse="aes256", sse_key_id=None, content_type="application/json")
    client.copy((store, "k"), (store, "r"), to_keys=[key_b], storage_class="GLACIER", tags={"a": "b"})
    assert _settings(store, "r") == _expected(storage_class="GLACIER", tags={"a": "b"})


def test_a_re_encrypting_copy_keeps_the_settings(key_a: str) -> None:
    src, dst = MemoryStore(), MemoryStore()
    client = EncryptionClient(key_a)
    client.put((src, "k"), b"data", **FULL)
    client.copy((src, "k"), (dst, "k"))
    assert ("put", "k") in dst.requests  # re-encrypted, not copied server-side
    assert _settings(dst, "k") == _expected()  # one kind of store: everything kept, the key id too
    client.copy((src, "k"), (src, "other-format"), format="test-ctr")  # re-encrypted within the store
    assert ("put", "other-format") in src.requests
    assert _settings(src, "other-format") == _expected()
    client.copy((src, "k"), (dst, "o"), sse="aes256")
    assert _settings(dst, "o") == _expected(sse="aes256", sse_key_id=None)


def test_across_kinds_the_key_id_is_dropped_and_storage_classes_map(key_a: str) -> None:
    s3, oss = S3Like(), OssLike()
    client = EncryptionClient(key_a)
    client.put((s3, "k"), b"data", **FULL)
    client.copy((s3, "k"), (oss, "k"))
    assert _settings(oss, "k") == _expected(sse_key_id=None, storage_class="IA")
    client.put((s3, "glacier-ir"), b"data", storage_class="GLACIER_IR", sse="aes256")
    client.copy((s3, "glacier-ir"), (oss, "g"))
    assert oss.head("g").settings.storage_class is None  # no counterpart: dropped
    assert oss.head("g").settings.sse == ServerSideEncryption("aes256")
    # OSS -> S3 the other way round.
    client.put((oss, "a"), b"data", storage_class="Archive", sse="kms", sse_key_id="oss-key")
    client.copy((oss, "a"), (s3, "a"))
    assert s3.head("a").settings.storage_class == "GLACIER"
    assert s3.head("a").settings.sse == ServerSideEncryption("kms")


def test_across_kinds_a_mode_the_destination_lacks_is_refused_unless_overridden(key_a: str) -> None:
    s3, oss = S3Like(), OssLike()
    client = EncryptionClient(key_a)
    client.put((s3, "k"), b"data", sse="dsse", sse_key_id="arn:aws:kms:us-east-1:1:key/x")
    with pytest.raises(ConfigurationError, match="server-side encryption dsse, which oss:// does not have"):
        client.copy((s3, "k"), (oss, "k"))
    assert _writes(oss) == []
    client.copy((s3, "k"), (oss, "k"), sse="kms")
    assert oss.head("k").settings.sse == ServerSideEncryption("kms")


def test_carry_settings_rule_table() -> None:
    s3, oss, mem = S3Like(), OssLike(), MemoryStore()
    for value, expected in [
        ("STANDARD", "Standard"),
        ("STANDARD_IA", "IA"),
        ("GLACIER", "Archive"),
        ("DEEP_ARCHIVE", "ColdArchive"),
        ("ONEZONE_IA", None),
    ]:
        got = carry_settings(ObjectSettings(storage_class=value), s3, oss).storage_class
        assert got == expected, value
        if expected is not None:
            assert carry_settings(ObjectSettings(storage_class=expected), oss, s3).storage_class == value
    keep = ObjectSettings(storage_class="GLACIER", sse=ServerSideEncryption("kms", "k"))
    assert carry_settings(keep, s3, S3Like()) == keep  # one kind: everything kept
    assert carry_settings(keep, s3, mem).storage_class == "GLACIER"  # a local store keeps the label


# ------------------------------------------------------------------------------------------ migrate


def _fill(client: EncryptionClient, store: MemoryStore, n: int = 3, **settings: Any) -> dict[str, bytes]:
    data = {f"p/o{i}": os.urandom(100 + i) for i in range(n)}
    for key, value in data.items():
        client.put((store, key), value, **settings)
    return data


@pytest.mark.parametrize("mode", ["native", "rewrap"])
def test_migrate_keeps_the_settings(key_a: str, key_b: str, mode: str) -> None:
    src, dst = MemoryStore(), MemoryStore()
    data = _fill(EncryptionClient(key_a), src, **FULL)
    summary = migrate((src, "p/"), (dst, "q/"), keys=[key_a], to_keys=[key_b], mode=mode)  # type: ignore[arg-type]
    assert summary.copied == len(data) and not summary.failed
    for key in data:
        assert _settings(dst, "q/" + key[2:]) == _expected()


def test_migrate_across_kinds_follows_the_rule_and_fails_only_what_cannot_be_kept(key_a: str) -> None:
    s3, oss = S3Like(), OssLike()
    client = EncryptionClient(key_a)
    _fill(client, s3, 2, **FULL)
    client.put((s3, "p/dsse"), b"x", sse="dsse")
    summary = migrate((s3, "p/"), (oss, "p/"), keys=[key_a])
    assert summary.copied == 2 and summary.failed == 1
    (failed,) = [o for o in summary.objects if o.state == "failed"]
    assert failed.src_url.endswith("p/dsse") and "dsse, which oss:// does not have" in failed.error
    assert _settings(oss, "p/o0") == _expected(sse_key_id=None, storage_class="IA")
    # With an override, the object that failed goes too.
    summary = migrate((s3, "p/"), (oss, "p/"), keys=[key_a], sse="sm4")
    assert summary.copied == 3 and not summary.failed
    assert oss.head("p/dsse").settings.sse == ServerSideEncryption("sm4")
    assert oss.head("p/o0").settings.sse == ServerSideEncryption("sm4")


def test_migrate_override_is_checked_before_any_object(key_a: str) -> None:
    src, dst = MemoryStore(), MemoryStore()
    _fill(EncryptionClient(key_a), src)
    with pytest.raises(ConfigurationError, match="'sm4'"):
        migrate((src, "p/"), (dst, "p/"), keys=[key_a], sse="sm4")
    assert _writes(dst) == []


def test_rewrap_in_place_keeps_the_settings_or_changes_sse(key_a: str, key_b: str) -> None:
    store = MemoryStore()
    data = _fill(EncryptionClient(key_a), store, **FULL)
    assert rewrap_prefix((store, "p/"), keys=[key_a], to_keys=[key_b]).copied == len(data)
    for key in data:
        assert _settings(store, key) == _expected()
    rewrap_prefix((store, "p/"), keys=[key_b], to_keys=[key_a], sse="aes256")
    for key, value in data.items():
        assert _settings(store, key) == _expected(sse="aes256", sse_key_id=None)
        assert EncryptionClient(key_a).get((store, key)) == value


# --------------------------------------------------------------------------------------------- head


def test_head_reports_the_object_sse_without_asking_for_the_bucket_default(key_a: str) -> None:
    store = CountingStore()
    client = EncryptionClient(key_a)
    client.put((store, "k"), b"x", sse="kms", sse_key_id="k1", content_type="text/plain")
    head = client.head((store, "k"))
    assert head.server_side_encryption == ServerSideEncryption("kms", "k1")
    assert head.sse_source == "object" and head.bucket_encryption is None
    assert head.settings.content_type == "text/plain"
    assert store.bucket_lookups == 0


def test_head_falls_back_to_the_bucket_default(key_a: str) -> None:
    store = CountingStore()
    client = EncryptionClient(key_a)
    client.put((store, "plain"), b"x")
    head = client.head((store, "plain"))
    assert head.server_side_encryption is None and head.sse_source is None
    store.put_bucket_encryption(parse_sse("AES256"))
    client.put((store, "later"), b"x")  # the store applies its default to new objects
    assert client.head((store, "later")).sse_source == "object"
    head = client.head((store, "plain"))  # written before the default: the bucket's is reported
    assert head.bucket_encryption == ServerSideEncryption("aes256") and head.sse_source == "bucket default"
    assert store.bucket_lookups == 2


# ---------------------------------------------------------------------------------------------- CLI


def _ok(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> str:
    result = runner.invoke(main, list(args), catch_exceptions=False, env=env)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_cli_put_with_every_option_and_head_json(runner: CliRunner, key_a: str, tmp_path: Path) -> None:
    store = MemoryStore()
    src = tmp_path / "in.csv"
    src.write_bytes(b"a,b\n1,2\n")
    url = store.url("r.csv")
    _ok(
        runner,
        "put", str(src), url, "--key", key_a,
        "--sse", "AWS:KMS", "--sse-key-id", "key-1",
        "--content-type", "text/csv", "--content-disposition", 'attachment; filename="r.csv"',
        "--cache-control", "max-age=60", "--metadata", "owner=x", "--metadata", "dept=y",
        "--tag", "team=data", "--tag", "tier=gold", "--storage-class", "STANDARD_IA",
    )  # fmt: skip
    assert _settings(store, "r.csv") == _expected()
    assert {"owner": "x", "dept": "y"}.items() <= dict(store.head("r.csv").metadata).items()
    head = json.loads(_ok(runner, "head", url, "--json"))
    assert head["server_side_encryption"] == {"mode": "kms", "key_id": "key-1", "source": "object"}
    assert head["content_type"] == "text/csv" and head["storage_class"] == "STANDARD_IA"
    assert head["cache_control"] == "max-age=60"
    assert head["format"] == "cse-v1"  # the client-side envelope beside it
    text = _ok(runner, "head", url)
    assert "server-side:        kms, key key-1 (object)" in text
    assert "content type:       text/csv" in text and "storage class:      STANDARD_IA" in text


def test_cli_sse_key_id_alone_means_kms_and_stdin_put(runner: CliRunner, key_a: str) -> None:
    store = MemoryStore()
    result = runner.invoke(
        main, ["put", "-", store.url("k"), "--key", key_a, "--sse-key-id", "kk"], input=b"hello"
    )
    assert result.exit_code == 0, result.output
    assert store.head("k").settings.sse == ServerSideEncryption("kms", "kk")


def test_cli_refusals(runner: CliRunner, key_a: str, tmp_path: Path) -> None:
    store = MemoryStore()
    src = tmp_path / "f"
    src.write_bytes(b"x")
    bad = runner.invoke(main, ["put", str(src), store.url("k"), "--key", key_a, "--sse", "rot13"])
    assert bad.exit_code == 2 and "aes256, kms, sm4, dsse" in bad.output
    lacks = runner.invoke(main, ["put", str(src), store.url("k"), "--key", key_a, "--sse", "SM4"])
    assert lacks.exit_code == 1
    assert "memory:// has no server-side encryption 'sm4'; it has aes256, kms" in lacks.output
    assert _writes(store) == []
    tag = runner.invoke(main, ["put", str(src), store.url("k"), "--key", key_a, "--tag", "novalue"])
    assert tag.exit_code == 2 and "K=V" in tag.output


def test_cli_sse_from_the_environment(runner: CliRunner, key_a: str, tmp_path: Path) -> None:
    store = MemoryStore()
    src = tmp_path / "f"
    src.write_bytes(b"x")
    _ok(runner, "put", str(src), store.url("k"), "--key", key_a, env={"CSE_SSE": "aes256"})
    assert store.head("k").settings.sse == ServerSideEncryption("aes256")


def test_cli_cp_keeps_and_overrides(runner: CliRunner, key_a: str, key_b: str) -> None:
    store, other = MemoryStore(), MemoryStore()
    EncryptionClient(key_a).put((store, "k"), b"data", metadata={"owner": "x"}, **FULL)
    _ok(runner, "cp", store.url("k"), store.url("rewrapped"), "--key", key_a, "--to-key", key_b)
    _ok(runner, "cp", store.url("k"), store.url("meta"), "--key", key_a, "--metadata", "owner=z")
    _ok(runner, "cp", store.url("k"), other.url("k"), "--key", key_a)
    for s, key in [(store, "rewrapped"), (store, "meta"), (other, "k")]:
        assert _settings(s, key) == _expected(), key
    assert store.head("meta").metadata["owner"] == "z"
    _ok(runner, "cp", store.url("k"), store.url("o"), "--key", key_a, "--sse", "aes256", "--tag", "a=b")
    assert _settings(store, "o") == _expected(sse="aes256", sse_key_id=None, tags={"a": "b"})
    head = json.loads(_ok(runner, "head", store.url("o"), "--json"))
    assert head["server_side_encryption"] == {"mode": "aes256", "key_id": None, "source": "object"}


def test_cli_head_reports_the_bucket_default(runner: CliRunner, key_a: str) -> None:
    store = MemoryStore()
    EncryptionClient(key_a).put((store, "k"), b"x")
    head = json.loads(_ok(runner, "head", store.url("k"), "--json"))
    assert head["server_side_encryption"] is None
    assert "server-side:        none" in _ok(runner, "head", store.url("k"))
    store.put_bucket_encryption(ServerSideEncryption("kms", "bk"))
    head = json.loads(_ok(runner, "head", store.url("k"), "--json"))
    assert head["server_side_encryption"] == {"mode": "kms", "key_id": "bk", "source": "bucket default"}


def test_cli_migrate_and_rewrap_override_sse(runner: CliRunner, key_a: str, key_b: str) -> None:
    src, dst = MemoryStore(), MemoryStore()
    data = _fill(EncryptionClient(key_a), src, **FULL)
    _ok(runner, "migrate", src.url("p/"), dst.url("p/"), "--key", key_a, "--json")
    for key in data:
        assert _settings(dst, key) == _expected()
    _ok(runner, "migrate", src.url("p/"), dst.url("q/"), "--key", key_a, "--sse", "aes256",
        "--storage-class", "GLACIER")  # fmt: skip
    for key in data:
        assert _settings(dst, "q/" + key[2:]) == _expected(
            sse="aes256", sse_key_id=None, storage_class="GLACIER"
        )
    _ok(runner, "rewrap", src.url("p/"), "--key", key_a, "--to-key", key_b, "--sse-key-id", "new")
    for key in data:
        assert _settings(src, key) == _expected(sse_key_id="new")
    refused = runner.invoke(main, ["migrate", src.url("p/"), dst.url("r/"), "--key", key_b, "--sse", "dsse"])
    assert refused.exit_code == 1 and "'dsse'" in refused.output
    assert not list(dst.list("r/"))


def test_onto_a_store_without_sse_or_storage_classes_they_are_dropped(key_a: str, tmp_path: Path) -> None:
    """file:// has neither: a local copy of a cloud object keeps its content settings and tags."""
    from cse.stores.file import FileStore

    s3, local = S3Like(), FileStore(tmp_path / "vault")
    client = EncryptionClient(key_a)
    client.put((s3, "p/k"), b"data", **FULL)
    client.copy((s3, "p/k"), (local, "k"))
    got = local.head("k").settings
    assert got.sse is None and got.storage_class is None
    assert got.content_type == "text/csv" and local.get_tags("k") == FULL["tags"]
    summary = migrate((s3, "p/"), (local, "m/"), keys=[key_a])
    assert summary.copied == 1 and not summary.failed
    assert local.head("m/k").settings.content_type == "text/csv"
    with pytest.raises(ConfigurationError, match="file://"):
        client.copy((s3, "p/k"), (local, "x"), sse="kms")
