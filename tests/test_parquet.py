"""cse.parquet: Parquet modular encryption with cse keys, on local stores, moto's S3 and KMS, and the
OSS and Alibaba KMS emulators; interop with a hand-written pyarrow KmsClient and with awswrangler."""

from __future__ import annotations

import base64
import http.server
import io
import json
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pe = pytest.importorskip("pyarrow.parquet.encryption")

from cse import DataKeyCache, parquet  # noqa: E402
from cse.exceptions import ConfigurationError, CseError, DecryptionError, KmsError  # noqa: E402
from cse.registry import register_store  # noqa: E402
from cse.stores.base import GetResult  # noqa: E402
from cse.stores.memory import MemoryStore  # noqa: E402

SECRET_SSNS = ["123-45-6789", "987-65-4321", "555-12-3456", "111-22-3333"]


def sample_table() -> Any:
    return pa.table(
        {
            "id": [1, 2, 3, 4],
            "ssn": SECRET_SSNS,
            "region": ["eu", "us", "ap", "eu"],
            "amount": [10.5, 20.25, 30.0, 40.75],
        }
    )


@pytest.fixture(scope="module")
def local_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import cse_rsa

    d = tmp_path_factory.mktemp("pqkeys")
    cse_rsa.generate_keypair(d / "footer.pem", d / "footer.pub.pem", bits=2048)
    cse_rsa.generate_keypair(d / "other.pem", d / "other.pub.pem", bits=2048)
    cse_rsa.generate_aes_key(d / "pii.bin")
    return {
        "footer": f"rsa://{d / 'footer.pem'}",
        "other": f"rsa://{d / 'other.pem'}",
        "pii": f"aes://{d / 'pii.bin'}",
    }


def test_import_cse_does_not_import_pyarrow() -> None:
    code = "import cse, cse.cli, sys; assert 'pyarrow' not in sys.modules, 'pyarrow imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------- local stores


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_round_trip_local_keys(scheme: str, tmp_path: Path, local_keys: dict[str, str]) -> None:
    url = f"file://{tmp_path}/t.parquet" if scheme == "file" else "memory://pq-local/t.parquet"
    table = sample_table()
    parquet.write_table(table, url, footer_key="footer", column_keys={"pii": ["ssn"]}, keys=local_keys)
    assert parquet.read_table(url, keys=local_keys).equals(table)
    raw = (
        (tmp_path / "t.parquet").read_bytes()
        if scheme == "file"
        else MemoryStore.shared("pq-local").read_all("t.parquet")
    )
    assert raw.startswith(b"PARE") and raw.endswith(b"PARE")  # encrypted footer, plain object
    for ssn in SECRET_SSNS:
        assert ssn.encode() not in raw
    with pytest.raises(ConfigurationError, match="'footer' names no key"):
        parquet.read_table(url)
    with pytest.raises(Exception, match="no decryption"):  # pyarrow alone, without decryption properties
        pq.read_table(io.BytesIO(raw))


def test_aes_key_wraps(tmp_path: Path, local_keys: dict[str, str]) -> None:
    assert local_keys["pii"].startswith("aes://"), "the AES key provider should be available"
    url = f"file://{tmp_path}/aes.parquet"
    parquet.write_table(sample_table(), url, footer_key="pii", keys={"pii": local_keys["pii"]})
    assert parquet.read_table(url, keys={"pii": local_keys["pii"]}).equals(sample_table())


def test_plaintext_footer_leaves_schema_readable(tmp_path: Path, local_keys: dict[str, str]) -> None:
    path = tmp_path / "pf.parquet"
    parquet.write_table(
        sample_table(),
        f"file://{path}",
        footer_key="footer",
        column_keys={"pii": ["ssn"]},
        keys=local_keys,
        plaintext_footer=True,
    )
    # the footer is plain: anyone sees the column names and reads the unencrypted columns
    assert pq.read_schema(path).names == ["id", "ssn", "region", "amount"]
    assert pq.read_table(path, columns=["region"]).column("region").to_pylist() == ["eu", "us", "ap", "eu"]
    with pytest.raises(Exception):
        pq.read_table(path, columns=["ssn"])
    assert parquet.read_table(f"file://{path}", keys=local_keys).equals(sample_table())


def test_identifier_with_colon_is_refused_with_the_reason(local_keys: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="splits its column-keys property at ':'") as info:
        parquet.encryption_configuration("footer", {"aws-kms://alias/pii": ["ssn"]}, keys=local_keys)
    assert "keys={" in str(info.value)
    with pytest.raises(ConfigurationError, match="splits its column-keys property at ':'"):
        parquet.crypto_factory({"rsa:///k.pem": "rsa:///k.pem"})
    with pytest.raises(ConfigurationError, match="names no key"):
        parquet.write_table(sample_table(), "memory://pq-x/a.parquet", footer_key="nope", keys=local_keys)


def test_wrong_local_key_is_one_opaque_error(tmp_path: Path, local_keys: dict[str, str]) -> None:
    url = f"file://{tmp_path}/w.parquet"
    parquet.write_table(sample_table(), url, footer_key="footer", keys=local_keys)
    wrong = {"footer": local_keys["other"]}
    with pytest.raises(DecryptionError) as info:
        parquet.read_table(url, keys=wrong)
    assert type(info.value) is DecryptionError
    assert "authentication failed" in str(info.value)


def test_tampered_file_is_one_opaque_error(local_keys: dict[str, str]) -> None:
    store = MemoryStore.shared("pq-tamper")
    parquet.write_table(
        sample_table(),
        "memory://pq-tamper/t.parquet",
        footer_key="footer",
        column_keys={"pii": ["ssn"]},
        keys=local_keys,
    )
    data = store.read_all("t.parquet")
    for offset in (10, len(data) // 2, len(data) - 30):
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        store.put("t.parquet", bytes(damaged), {})
        with pytest.raises(CseError) as info:
            parquet.read_table("memory://pq-tamper/t.parquet", keys=local_keys)
        assert type(info.value) is DecryptionError, repr(info.value)
        for ssn in SECRET_SSNS:
            assert ssn not in str(info.value)


# ------------------------------------------------------------------------- ranged reads, counted


class CountingStore(MemoryStore):
    """A memory store (scheme ``countmem``) that counts the bytes its gets return."""

    scheme = "countmem"
    fetched = 0
    gets = 0

    @classmethod
    def from_url(cls, url: str) -> tuple[Any, str]:
        bucket, _, key = url[len("countmem://") :].partition("/")
        return cls.shared(bucket), key

    def get(self, key: str, start: int = 0, end: int | None = None) -> GetResult:
        result = super().get(key, start, end)
        type(self).fetched += result.end - result.start + 1
        type(self).gets += 1
        return result


def test_column_subset_fetches_only_its_ranges(local_keys: dict[str, str]) -> None:
    register_store("countmem", CountingStore)
    n = 20_000
    table = pa.table(
        {
            "id": list(range(n)),
            "big": [f"payload-{i:08d}-" + "x" * 40 for i in range(n)],
            "ssn": [f"{i:09d}" for i in range(n)],
        }
    )
    url = "countmem://pq-count/big.parquet"
    parquet.write_table(
        table, url, footer_key="footer", column_keys={"pii": ["ssn"]}, keys=local_keys, compression="none"
    )
    size = CountingStore.shared("pq-count").head("big.parquet").size
    CountingStore.fetched = CountingStore.gets = 0
    got = parquet.read_table(url, keys=local_keys, columns=["id"])
    assert got.column("id").to_pylist() == list(range(n))
    print(f"\ncolumn subset: fetched {CountingStore.fetched} of {size} bytes in {CountingStore.gets} gets")
    assert CountingStore.fetched < size * 0.25
    CountingStore.fetched = 0
    assert parquet.read_table(url, keys=local_keys).equals(table)
    assert CountingStore.fetched >= size * 0.9


# --------------------------------------------------------------- the re-use of encryption properties


class RecordingKmsClient(pe.KmsClient):
    """A toy KMS client (for the pyarrow-only reproduction): 'wraps' with a fixed prefix."""

    def __init__(self, config: Any) -> None:
        super().__init__()

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        return base64.b64encode(b"toy:" + key_bytes).decode()

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        return base64.b64decode(wrapped_key)[4:]


def _footer_deks(data: bytes) -> list[bytes]:
    return re.findall(rb'"wrappedDEK":"([^"]+)"', data)


REUSE_SCRIPT = """
import base64, io
import pyarrow as pa, pyarrow.parquet as pq, pyarrow.parquet.encryption as pe
class Toy(pe.KmsClient):
    def __init__(self, config):
        super().__init__()
    def wrap_key(self, key, identifier):
        return base64.b64encode(key).decode()
    def unwrap_key(self, wrapped, identifier):
        return base64.b64decode(wrapped)
factory = pe.CryptoFactory(Toy)
config = pe.EncryptionConfiguration(footer_key="f", column_keys={"k": ["a"]})
shared = factory.file_encryption_properties(pe.KmsConnectionConfig(), config)
table = pa.table({"a": [1, 2]})
pq.write_table(table, io.BytesIO(), encryption_properties=shared)
try:
    pq.write_table(table, io.BytesIO(), encryption_properties=shared)
except OSError as exc:
    print("ERROR", pa.__version__, exc)
else:
    print("WROTE", pa.__version__)
"""


def test_reuse_error_reproduced_with_pyarrow_14() -> None:
    """pyarrow 14 (the last series with the check) raises the error data teams hit. Runs pyarrow 14 in an
    isolated uv environment, offline: skipped when uv or a cached pyarrow 14 wheel is not at hand."""
    import shutil

    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    run = subprocess.run(
        [
            uv,
            "run",
            "--offline",
            "--isolated",
            "--no-project",
            "--python",
            f"{sys.version_info[0]}.{sys.version_info[1]}",
            "--with",
            "pyarrow==14.0.2",
            "--with",
            "numpy<2",
            "python",
            "-c",
            REUSE_SCRIPT,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode != 0:
        pytest.skip(f"pyarrow 14 is not available offline: {run.stderr.strip()[-200:]}")
    assert run.stdout.startswith("ERROR 14.0.2 Re-using encryption properties for another file"), run.stdout


def test_shared_encryption_properties_with_pyarrow_alone(local_keys: dict[str, str]) -> None:
    """One FileEncryptionProperties for two files: pyarrow 14 and older raise "Re-using encryption
    properties for another file"; newer pyarrow writes both files with the same data keys. cse's
    write_dataset makes fresh properties (fresh data keys) for every file."""
    factory = pe.CryptoFactory(RecordingKmsClient)
    config = pe.EncryptionConfiguration(footer_key="f", column_keys={"k": ["ssn"]}, double_wrapping=False)
    shared = factory.file_encryption_properties(pe.KmsConnectionConfig(), config)
    first, second = io.BytesIO(), io.BytesIO()
    pq.write_table(sample_table(), first, encryption_properties=shared)
    message = ""
    try:
        pq.write_table(sample_table(), second, encryption_properties=shared)
    except OSError as exc:  # pyarrow 14 and older
        message = str(exc)
    if message:
        assert "Re-using encryption properties for another file" in message
    else:  # newer pyarrow writes the second file, with the first file's data keys
        assert _footer_deks(first.getvalue()) == _footer_deks(second.getvalue()) != []

    urls = parquet.write_dataset(
        sample_table(),
        "memory://pq-reuse/ds",
        footer_key="footer",
        column_keys={"pii": ["ssn"]},
        partition_cols=["region"],
        keys=local_keys,
        encryption_options={"double_wrapping": False},
    )
    assert len(urls) == 3
    store = MemoryStore.shared("pq-reuse")
    deks = [tuple(_footer_deks(store.read_all(u.split("/", 3)[3]))) for u in urls]
    assert all(deks) and len(set(deks)) == 3  # fresh keys per file
    rows = sorted(r["id"] for u in urls for r in parquet.read_table(u, keys=local_keys).to_pylist())
    assert rows == [1, 2, 3, 4]


# ----------------------------------------------------------------------------------- AWS on moto


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Default boto3 clients (S3 store, KMS providers, hand-written clients) on moto's server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint


class HandWrittenKmsClient(pe.KmsClient):
    """The KMS client data teams write: Encrypt/Decrypt the key bytes, base64 of the CiphertextBlob."""

    instances: list[HandWrittenKmsClient] = []

    def __init__(self, kms_connection_config: Any) -> None:
        import boto3

        super().__init__()
        region = kms_connection_config.custom_kms_conf.get("aws_region_name", "us-east-1")
        self.kms = boto3.client("kms", region_name=region)
        self.unwrapped: list[str] = []
        HandWrittenKmsClient.instances.append(self)

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        response = self.kms.encrypt(KeyId=master_key_identifier, Plaintext=key_bytes)
        return base64.b64encode(response["CiphertextBlob"]).decode("utf-8")

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        self.unwrapped.append(wrapped_key)
        response = self.kms.decrypt(KeyId=master_key_identifier, CiphertextBlob=base64.b64decode(wrapped_key))
        return bytes(response["Plaintext"])


def _conn() -> Any:
    return pe.KmsConnectionConfig(custom_kms_conf={"aws_region_name": "us-east-1"})


def test_cse_file_opens_with_hand_written_client(aws_env: str, kms_key_id: str, kms_client: Any) -> None:
    buffer = io.BytesIO()
    factory = parquet.crypto_factory()
    config = pe.EncryptionConfiguration(
        footer_key=kms_key_id, column_keys={kms_key_id: ["ssn"]}, double_wrapping=False
    )
    pq.write_table(
        sample_table(), buffer, encryption_properties=factory.file_encryption_properties(_conn(), config)
    )
    assert factory.call_counts().get("Encrypt", 0) >= 1
    hand = pe.CryptoFactory(HandWrittenKmsClient)
    HandWrittenKmsClient.instances.clear()
    got = pq.read_table(
        pa.BufferReader(buffer.getvalue()), decryption_properties=hand.file_decryption_properties(_conn())
    )
    assert got.equals(sample_table())
    # what cse wrote is exactly base64(CiphertextBlob): KMS Decrypt without a context opens it
    wrapped = [w for c in HandWrittenKmsClient.instances for w in c.unwrapped]
    assert wrapped
    for text in wrapped:
        plain = kms_client.decrypt(CiphertextBlob=base64.b64decode(text, validate=True))["Plaintext"]
        assert len(plain) == 16


def test_hand_written_file_opens_with_cse(aws_env: str, kms_key_id: str, kms_client: Any) -> None:
    alias = "alias/pq-" + kms_key_id[:8]
    kms_client.create_alias(AliasName=alias, TargetKeyId=kms_key_id)
    hand = pe.CryptoFactory(HandWrittenKmsClient)
    config = pe.EncryptionConfiguration(footer_key=kms_key_id, column_keys={alias: ["ssn"]})
    buffer = io.BytesIO()
    pq.write_table(
        sample_table(), buffer, encryption_properties=hand.file_encryption_properties(_conn(), config)
    )
    factory = parquet.crypto_factory()
    got = pq.read_table(
        pa.BufferReader(buffer.getvalue()), decryption_properties=factory.file_decryption_properties(_conn())
    )
    assert got.equals(sample_table())
    assert factory.call_counts()["Decrypt"] >= 2  # the footer key and the alias's column key


def test_s3_round_trip_and_mixed_keys(
    aws_env: str, s3_bucket: str, kms_key_id: str, local_keys: dict[str, str]
) -> None:
    keys = {"footer": local_keys["footer"], "pii": f"aws-kms://{kms_key_id}?region=us-east-1"}
    url = f"s3://{s3_bucket}/tables/mixed.parquet"
    parquet.write_table(sample_table(), url, footer_key="footer", column_keys={"pii": ["ssn"]}, keys=keys)
    factory = parquet.crypto_factory(keys)
    assert parquet.read_table(url, factory=factory).equals(sample_table())
    assert factory.call_counts() == {"Decrypt": 1}  # the RSA footer key costs no KMS call
    # without the KMS key the footer opens (RSA) but the ssn column does not
    only_rsa = {"footer": local_keys["footer"], "pii": local_keys["other"]}
    assert parquet.read_table(url, keys=only_rsa, columns=["id"]).column("id").to_pylist() == [1, 2, 3, 4]
    with pytest.raises(DecryptionError):
        parquet.read_table(url, keys=only_rsa, columns=["ssn"])


def test_wrong_kms_key_is_one_opaque_error(
    aws_env: str, s3_bucket: str, kms_client: Any, kms_key_id: str
) -> None:
    other = kms_client.create_key()["KeyMetadata"]["KeyId"]
    url = f"s3://{s3_bucket}/w.parquet"
    parquet.write_table(sample_table(), url, footer_key="f", keys={"f": f"aws-kms://{kms_key_id}"})
    with pytest.raises(DecryptionError) as info:
        parquet.read_table(url, keys={"f": f"aws-kms://{other}"})
    assert "authentication failed" in str(info.value)


class FaultFront:
    """An HTTP front on 127.0.0.1 for moto's server that answers chosen KMS operations with AWS's JSON
    error body (moto does not refuse Decrypt or Encrypt with a disabled key); everything else is passed on."""

    def __init__(self, upstream: str, faults: dict[str, tuple[int, dict[str, str]]]) -> None:
        self.upstream = upstream
        self.faults = faults
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                target = self.headers.get("X-Amz-Target", "")
                operation = target.rpartition(".")[2]
                if operation in front.faults:
                    status, error = front.faults[operation]
                    payload = json.dumps(error).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/x-amz-json-1.1")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                request = urllib.request.Request(front.upstream + self.path, data=body, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                        status, data, kind = (
                            response.status,
                            response.read(),
                            response.headers.get("Content-Type"),
                        )
                except urllib.error.HTTPError as exc:
                    status, data, kind = exc.code, exc.read(), exc.headers.get("Content-Type")
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultFront:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_disabled_kms_key_is_one_clear_error(
    aws_env: str, s3_bucket: str, kms_client: Any, kms_key_id: str
) -> None:
    url = f"s3://{s3_bucket}/d.parquet"
    parquet.write_table(
        sample_table(), url, footer_key="f", column_keys={"f": ["ssn"]}, keys={"f": f"aws-kms://{kms_key_id}"}
    )
    kms_client.disable_key(KeyId=kms_key_id)
    arn = kms_client.describe_key(KeyId=kms_key_id)["KeyMetadata"]["Arn"]
    error = {"__type": "DisabledException", "message": f"{arn} is disabled."}
    with FaultFront(aws_env, {"Decrypt": (400, error), "Encrypt": (400, error)}) as front:
        key = f"aws-kms://{kms_key_id}?region=us-east-1&endpoint-url={front.endpoint}&max-attempts=1"
        with pytest.raises(KmsError) as info:
            parquet.read_table(url, keys={"f": key})
        message = str(info.value)
        assert "DisabledException" in message and "enable it" in message
        with pytest.raises(KmsError, match="DisabledException"):
            parquet.write_table(sample_table(), url + "2", footer_key="f", keys={"f": key})
    for ssn in SECRET_SSNS:
        assert ssn not in message


def _three_partitions(n: int = 30) -> Any:
    return pa.table(
        {
            "id": list(range(n)),
            "ssn": [f"{i:03d}-00-0000" for i in range(n)],
            "region": [("eu", "us", "ap")[i % 3] for i in range(n)],
        }
    )


def test_kms_calls_for_a_three_partition_dataset(aws_env: str, s3_bucket: str, kms_key_id: str) -> None:
    """KMS calls for writing and reading 3 partitions: pyarrow's cache (one factory), cse's key_cache
    (a factory per read, as awswrangler readers often do), and neither."""
    from datetime import timedelta

    figures: dict[str, dict[str, int]] = {}
    table = _three_partitions()
    cols = {"footer": [], "pii": ["ssn"]}
    aws = f"aws-kms://{kms_key_id}?region=us-east-1"
    keys = {"footer": aws, "pii": aws}

    def fresh_factory() -> Any:
        from cse_aws_kms import AwsKmsProvider

        provider = AwsKmsProvider(kms_key_id, region="us-east-1")
        return parquet.crypto_factory({"footer": provider, "pii": provider}), provider

    # writes: one factory (pyarrow's KEK cache) vs. a factory per file with single wrapping (no cache)
    cached, cached_provider = fresh_factory()
    urls = parquet.write_dataset(
        table,
        f"s3://{s3_bucket}/cached",
        footer_key="footer",
        column_keys={"pii": ["ssn"]},
        partition_cols=["region"],
        factory=cached,
    )
    assert len(urls) == 3
    figures["write, one factory (pyarrow cache)"] = cached_provider.call_counts()
    nocache, nocache_provider = fresh_factory()
    parquet.write_dataset(
        table,
        f"s3://{s3_bucket}/nocache",
        footer_key="footer",
        column_keys={"pii": ["ssn"]},
        partition_cols=["region"],
        factory=nocache,
        encryption_options={"double_wrapping": False, "cache_lifetime": timedelta(seconds=0)},
    )
    figures["write, no cache (single wrapping)"] = nocache_provider.call_counts()

    # reads of the cached dataset: a new factory per file, without and with cse's key_cache
    def read_all(key_cache: DataKeyCache | None) -> dict[str, int]:
        _, provider = fresh_factory()
        for url in urls:
            factory = parquet.crypto_factory({"footer": provider, "pii": provider}, key_cache=key_cache)
            parquet.read_table(url, factory=factory)
        return provider.call_counts()

    figures["read, factory per file, no cache"] = read_all(None)
    figures["read, factory per file, key_cache"] = read_all(DataKeyCache())
    one, provider = fresh_factory()
    for url in urls:
        parquet.read_table(url, factory=one)
    figures["read, one factory (pyarrow cache)"] = provider.call_counts()
    print("\nKMS calls, 3-partition dataset:\n" + "\n".join(f"  {k}: {v}" for k, v in figures.items()))

    # one Encrypt per master key identifier ("footer" and "pii", both on the same KMS key)
    assert figures["write, one factory (pyarrow cache)"] == {"Encrypt": 2}
    assert figures["write, no cache (single wrapping)"]["Encrypt"] >= 6
    # reads: one Decrypt per wrapped key encryption key (footer and pii) per file, unless cached
    assert figures["read, factory per file, no cache"] == {"Decrypt": 6}
    assert figures["read, factory per file, key_cache"] == {"Decrypt": 2}
    assert figures["read, one factory (pyarrow cache)"] == {"Decrypt": 2}
    del cols, keys


def test_awswrangler_dataset_on_moto(
    aws_env: str, s3_bucket: str, kms_key_id: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    import pandas as pd

    wr = pytest.importorskip("awswrangler")
    monkeypatch.setattr(wr.config, "s3_endpoint_url", aws_env)
    session = boto3.Session(region_name="us-east-1")
    df = pd.DataFrame(
        {
            "id": list(range(12)),
            "ssn": [f"{i:03d}-99-{i:04d}" for i in range(12)],
            "region": [("eu", "us", "ap")[i % 3] for i in range(12)],
        }
    )
    encryption = parquet.encryption_configuration(
        "footer",
        {"pii": ["ssn"]},
        keys={"footer": f"aws-kms://{kms_key_id}", "pii": f"aws-kms://{kms_key_id}"},
        region="us-east-1",
    )
    path = f"s3://{s3_bucket}/wr/"
    written = wr.s3.to_parquet(
        df,
        path,
        dataset=True,
        partition_cols=["region"],
        use_threads=True,
        boto3_session=session,
        encryption_configuration=encryption,
    )
    assert len(written["paths"]) == 3
    deks = set()
    for object_path in written["paths"]:
        key = object_path.split("/", 3)[3]
        raw = s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
        assert raw.startswith(b"PARE")
        deks.add(tuple(_footer_deks(raw)))
        for ssn in df["ssn"]:
            assert ssn.encode() not in raw
    assert len(deks) == 3  # fresh encryption properties (data keys) for every file
    decryption = parquet.decryption_configuration(
        {"footer": f"aws-kms://{kms_key_id}", "pii": f"aws-kms://{kms_key_id}"}, region="us-east-1"
    )
    back = wr.s3.read_parquet(path, dataset=True, boto3_session=session, decryption_configuration=decryption)
    back = back.sort_values("id").reset_index(drop=True)[["id", "ssn", "region"]]
    back["region"] = back["region"].astype(str)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    with pytest.raises(Exception) as info:
        wr.s3.read_parquet(path, dataset=True, boto3_session=session)
    assert not isinstance(info.value, AssertionError)
    # the files also open with cse's read_table on s3:// URLs
    keys = {"footer": f"aws-kms://{kms_key_id}", "pii": f"aws-kms://{kms_key_id}"}
    assert sum(parquet.read_table(p, keys=keys).num_rows for p in written["paths"]) == 12


# ------------------------------------------------------------------------ OSS and Alibaba Cloud KMS


def test_oss_with_aliyun_kms(oss_env: str, oss_bucket_name: str, aliyun_kms_key: str) -> None:
    keys = {"k": f"aliyun-kms://cn-hangzhou/{aliyun_kms_key}"}
    url = f"oss://{oss_bucket_name}/t.parquet"
    parquet.write_table(sample_table(), url, footer_key="k", column_keys={"k": ["ssn"]}, keys=keys)
    factory = parquet.crypto_factory(keys)
    assert parquet.read_table(url, factory=factory).equals(sample_table())
    assert factory.call_counts() == {"Decrypt": 1}
    assert parquet.read_table(url, keys=keys, columns=["ssn"]).column("ssn").to_pylist() == SECRET_SSNS


def test_configuration_dicts(local_keys: dict[str, str]) -> None:
    enc = parquet.encryption_configuration("footer", {"pii": ["ssn"]}, keys=local_keys, plaintext_footer=True)
    assert set(enc) == {"crypto_factory", "kms_connection_config", "encryption_config"}
    assert isinstance(enc["crypto_factory"], pe.CryptoFactory)
    assert enc["encryption_config"].plaintext_footer is True
    assert enc["encryption_config"].column_keys == {"pii": ["ssn"]}
    dec = parquet.decryption_configuration(local_keys)
    assert set(dec) == {"crypto_factory", "kms_connection_config"}
    with pytest.raises(ConfigurationError, match="EncryptionConfiguration"):
        parquet.encryption_configuration("footer", keys=local_keys, no_such_option=1)


def test_kms_client_resolution_rules(aws_env: str) -> None:
    client = parquet.CseKmsClient(region="eu-west-1")
    with pytest.raises(ConfigurationError, match="splits its column-keys property at ':'"):
        client.wrap_key(b"k" * 16, "rsa:///keys/k.pem")
    for identifier in (
        "alias/lake",
        "mrk-1234abcd12ab34cd56ef1234567890ab",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
    ):
        provider = client.provider(identifier)
        assert provider.scheme == "aws-kms" and provider.key_id == identifier
        assert provider.region == "eu-west-1"  # type: ignore[attr-defined]
    arn = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert parquet.CseKmsClient().provider(arn).region == "us-west-2"  # type: ignore[attr-defined]
    # the region comes from custom_kms_conf["aws_region_name"], as in hand-written clients
    factory = parquet.crypto_factory()
    config = pe.EncryptionConfiguration(footer_key="alias/none-such", uniform_encryption=True)
    conn = pe.KmsConnectionConfig(custom_kms_conf={"aws_region_name": "ap-south-1"})
    with pytest.raises(KmsError, match="NotFoundException.*ap-south-1"):  # moto, in that region
        factory.file_encryption_properties(conn, config)
    assert [p.region for p in factory.providers().values()] == ["ap-south-1"]  # type: ignore[attr-defined]
