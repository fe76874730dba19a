"""cse's plaintext MAC on OSS V2 objects (``x-oss-meta-cse-plaintext-mac``), on the OSS emulator.

It turns the swap of ``client-side-encryption-start`` (or of the key) between two objects of the same key,
and a body changed at rest, into the opaque DecryptionError on whole reads of objects cse wrote; the
official SDKs ignore the header and read those objects as before; objects without it read as before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("cse_oss")

from cse.client import EncryptionClient  # noqa: E402
from cse.content import PLAINTEXT_MAC_INFO, plaintext_mac  # noqa: E402
from cse.exceptions import DecryptionError, MetadataError  # noqa: E402
from tests.conftest import oss2_bucket  # noqa: E402
from tests.test_oss_interop import Side, _oss2_rsa_bucket, side  # noqa: E402, F401, F811

META = "x-oss-meta-"
MAC = META + "cse-plaintext-mac"
START = META + "client-side-encryption-start"
KEY = META + "client-side-encryption-key"


@pytest.fixture
def store(oss_emulator: Any, oss_bucket_name: str) -> Any:
    from cse_oss.store import OssStore

    return OssStore(oss2_bucket(oss_emulator, oss_bucket_name))


def _swap(emulator: Any, bucket: str, a: str, b: str, *fields: str) -> None:
    meta_a, meta_b = emulator.get_object_metadata(bucket, a), emulator.get_object_metadata(bucket, b)
    new_a, new_b = dict(meta_a), dict(meta_b)
    for name in fields:
        new_a[name], new_b[name] = meta_b[name], meta_a[name]
    emulator.replace_metadata(bucket, a, new_a)
    emulator.replace_metadata(bucket, b, new_b)


@pytest.mark.parametrize("fields", [(START,), (KEY, START)], ids=["iv-swap", "key-and-iv-swap"])
def test_an_iv_swap_is_refused_for_objects_cse_wrote(
    store: Any, oss_emulator: Any, oss_bucket_name: str, key_a: str, tmp_path: Path, fields: tuple[str, ...]
) -> None:
    client = EncryptionClient(key_a, format="oss-v2")
    one, two = os.urandom(5000), os.urandom(5000)
    client.put((store, "one"), one)
    client.put((store, "two"), two)
    assert MAC in oss_emulator.get_object_metadata(oss_bucket_name, "one")
    _swap(oss_emulator, oss_bucket_name, "one", "two", *fields)
    for name in ("one", "two"):
        with pytest.raises(DecryptionError) as info:
            client.get((store, name))
        assert type(info.value) is DecryptionError
        target = tmp_path / name
        with pytest.raises(DecryptionError):
            client.download_file((store, name), target)
        assert not target.exists() and not list(tmp_path.glob(f".{name}.*"))


def test_without_the_mac_the_same_swap_goes_unnoticed(
    store: Any, oss_emulator: Any, oss_bucket_name: str, key_a: str
) -> None:
    """The contrast (the format's own limitation): objects oss2 wrote have no MAC, and the swap returns
    wrong plaintext, in cse as in oss2."""
    bucket = _oss2_rsa_bucket(oss_emulator, oss_bucket_name, key_a)
    one, two = os.urandom(5000), os.urandom(5000)
    bucket.put_object("one", one)
    bucket.put_object("two", two)
    _swap(oss_emulator, oss_bucket_name, "one", "two", START)
    client = EncryptionClient(key_a)
    assert client.head((store, "one")).envelope.plaintext_mac is None
    got = client.get((store, "one"))
    assert len(got) == len(one) and got != one
    assert bucket.get_object("one").read() == got


@pytest.mark.parametrize("side", ["oss2-rsa", "ossv2-rsa", "ossv2-kms"], indirect=True)
def test_the_official_sdks_ignore_the_mac(side: Side, oss_emulator: Any) -> None:  # noqa: F811
    data = os.urandom(70_000)
    side.cse.put((side.store, "with-mac"), data)
    assert MAC in oss_emulator.get_object_metadata(side.bucket, "with-mac")
    assert side.get("with-mac", None) == data
    assert side.get("with-mac", (17, 40_000)) == data[17:40_001]


def test_the_construction_is_the_documented_one(key_a: str) -> None:
    """HMAC-SHA256 under HKDF-SHA256(IKM = content key, salt = IV, info = "cse oss-v2 plaintext mac v1")
    over the plaintext and its length as 8 big-endian bytes (docs/oss.md)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from cse.content import ContentMaterial

    key, iv, data = os.urandom(32), os.urandom(16), os.urandom(1000)
    mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=iv, info=PLAINTEXT_MAC_INFO).derive(key)
    expected = hmac.new(mac_key, data + len(data).to_bytes(8, "big"), hashlib.sha256).digest()
    assert plaintext_mac(ContentMaterial(key, iv), data) == expected
    assert PLAINTEXT_MAC_INFO == b"cse oss-v2 plaintext mac v1"


def test_head_says_which_case_applies(
    store: Any, oss_emulator: Any, oss_bucket_name: str, key_a: str
) -> None:
    from click.testing import CliRunner

    from cse.cli import main
    from cse.config import TransferConfig

    client = EncryptionClient(key_a, format="oss-v2")
    client.put((store, "small"), os.urandom(1000))
    multipart = EncryptionClient(
        key_a, format="oss-v2", config=TransferConfig(multipart_threshold=0, part_size=100 * 1024)
    )
    multipart.put((store, "big"), os.urandom(250_000))
    assert client.head((store, "small")).authentication == "object"
    assert client.head((store, "big")).authentication == "none"
    runner = CliRunner(env={"OSS_ENDPOINT": oss_emulator.endpoint})
    from tests.conftest import OSS_AK, OSS_REGION, OSS_SECRET

    env = {"OSS_REGION": OSS_REGION, "OSS_ACCESS_KEY_ID": OSS_AK, "OSS_ACCESS_KEY_SECRET": OSS_SECRET}
    small = runner.invoke(main, ["head", f"oss://{oss_bucket_name}/small"], env=env)
    big = runner.invoke(main, ["head", f"oss://{oss_bucket_name}/big"], env=env)
    assert "plaintext MAC:      present" in small.output, small.output
    assert "plaintext MAC:      absent" in big.output, big.output
    # ranged reads of a MAC'd object are not checked (and need no opt-in): documented
    assert len(client.get((store, "small"), range=(10, 99))) == 90


def test_a_damaged_mac_header_is_a_metadata_error(
    store: Any, oss_emulator: Any, oss_bucket_name: str, key_a: str
) -> None:
    client = EncryptionClient(key_a, format="oss-v2")
    client.put((store, "k"), b"x" * 100)
    meta = oss_emulator.get_object_metadata(oss_bucket_name, "k")
    oss_emulator.replace_metadata(oss_bucket_name, "k", {**meta, MAC: base64.b64encode(b"short").decode()})
    with pytest.raises(MetadataError, match="cse-plaintext-mac"):
        client.get((store, "k"))
    wrong = base64.b64encode(bytes(32)).decode()
    oss_emulator.replace_metadata(oss_bucket_name, "k", {**meta, MAC: wrong})
    with pytest.raises(DecryptionError):
        client.get((store, "k"))
