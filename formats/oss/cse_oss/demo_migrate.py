"""The cross-cloud leg of ``cse demo``: write on S3, migrate to OSS, read with oss2, rotate the key.

Registered as ``migrate`` in the ``cse.demo`` entry-point group, it runs after the S3 and OSS legs, on the
same local stand-ins, all in this process: moto's server (S3 and AWS KMS), the OSS emulator and the Alibaba
Cloud KMS emulator.

1. A handful of objects (a few KiB to a few MiB, one of them multipart) are encrypted into S3 as ``s3-v3``
   under an AWS KMS key; when the official AWS S3 Encryption Client (``s3_encryption``) is installed, it
   writes one of them, to show that its objects migrate too.
2. :func:`cse.migrate.migrate` copies the prefix to OSS in ``native`` mode (decrypt, then encrypt again as
   ``oss-v2``) under an Alibaba Cloud KMS key written in oss2's style (``aliyun-kms://...?style=oss2``),
   with a journal in the demo directory; a second run skips every object.
3. oss2's ``CryptoBucket`` with ``AliKMSProvider`` reads every migrated object; the SHA-256 must match.
4. :func:`cse.migrate.rewrap_prefix` rotates the OSS prefix in place to a second Alibaba Cloud KMS key (the
   ciphertext stays; only the wrapped keys change). The old key is then disabled: a copy of an object taken
   before the rotation no longer opens, while every rotated object opens under the new key, in cse and in
   oss2. (Alibaba Cloud KMS ``Decrypt`` finds the key from the ciphertext blob, so it is disabling the old
   key, not the choice of reader, that shows the objects no longer depend on it.)

Stores and key providers are passed to cse explicitly: the leg reads and changes no environment variable.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cse.client import EncryptionClient
from cse.config import TransferConfig
from cse.exceptions import CseError, KmsError
from cse.migrate import MigrationSummary, migrate, rewrap_prefix

if TYPE_CHECKING:
    from cse_aliyun_kms.testing import KmsEmulator

    from cse_oss.testing import OssEmulator

__all__ = ["run_migrate_leg"]

_AK = "cse-demo-access-key-id"
_SECRET = "cse-demo-access-key-secret"  # noqa: S105 - the throw-away credential of a local emulator
_REGION = "cn-hangzhou"
_SRC_BUCKET = "cse-demo-archive"
_DST_BUCKET = "cse-migrated"
_PREFIX = "archive/"
_SNAPSHOT = "before-rotation/notes.txt"
_JOURNAL = "migrate-journal.sqlite"
_KIB = 1024
_MIB = 1024 * _KIB
#: Parts of 5 MiB (S3's smallest), so the largest object goes in two.
_CONFIG = TransferConfig(multipart_threshold=5 * _MIB, part_size=5 * _MIB)
#: The objects written on S3 (relative key: size); the official client writes :data:`_OFFICIAL_NAME`.
_OBJECTS = {
    "notes.txt": 3 * _KIB + 17,
    "photos/cat.jpg": 280 * _KIB,
    "reports/q3.pdf": _MIB + 4321,
    "invoices/aws-sdk.bin": 200 * _KIB + 5,
    "backups/db.tar": 5 * _MIB + 300 * _KIB,
}
_OFFICIAL_NAME = "invoices/aws-sdk.bin"


def run_migrate_leg(root: Path, data: bytes, say: Callable[[str], Any]) -> dict[str, Any]:
    """Write objects on S3 (moto), migrate them to OSS (emulator), read them with oss2, rotate their key.

    ``data`` is not used: the leg writes its own set of objects of several sizes. The migration journal is
    ``root/migrate-journal.sqlite``. KMS calls are counted at the two KMS servers, by service and operation
    (``summary_kms_calls`` is what :func:`~cse.migrate.migrate` itself reported). Prints its steps with
    ``say`` and returns a report; raises :class:`~cse.exceptions.CseError` if a check fails.
    """
    del data
    try:
        server_module = importlib.import_module("moto.server")
    except ImportError:
        say("10. migrate leg  skipped: it starts on moto's S3 server (pip install 'moto[server]')")
        return {"skipped": "moto[server] is not installed"}
    try:
        importlib.import_module("cse_s3")
        importlib.import_module("cse_aws_kms")
        importlib.import_module("cse_aliyun_kms")
    except ImportError as exc:
        say(
            f"10. migrate leg  skipped: it needs cse-s3, cse-aws-kms and cse-aliyun-kms "
            f"({exc.name} is missing)"
        )
        return {"skipped": f"{exc.name} is not installed"}
    from cse_aliyun_kms.testing import KmsEmulator

    from cse_oss.testing import OssEmulator

    moto = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    oss_server = OssEmulator(_AK, _SECRET, "127.0.0.1", 0, buckets=[_DST_BUCKET])
    kms_server = KmsEmulator(_AK, _SECRET, "127.0.0.1", 0, region=_REGION)
    access_log = logging.getLogger("werkzeug")
    started = time.monotonic()
    with contextlib.ExitStack() as stack:  # stops whatever started, in reverse order, whatever happens
        stack.callback(access_log.setLevel, access_log.level)
        access_log.setLevel(logging.ERROR)  # the local server's request log is not the demo's output
        moto.start()
        stack.callback(moto.stop)
        oss_server.start()
        stack.callback(oss_server.stop)
        kms_server.start()
        stack.callback(kms_server.stop)
        report = _Leg(root, say, moto, oss_server, kms_server).run()
    report["seconds"] = round(time.monotonic() - started, 2)
    return report


class _Leg:
    """One run of the leg on started servers."""

    def __init__(
        self,
        root: Path,
        say: Callable[[str], Any],
        moto: Any,
        oss_server: OssEmulator,
        kms_server: KmsEmulator,
    ) -> None:
        """Connect clients to the servers, make the KMS keys and the objects' plaintext."""
        from cse_aliyun_kms import AliyunKmsProvider
        from cse_aws_kms import AwsKmsProvider
        from cse_s3.store import S3Store

        from cse_oss.store import OssStore

        self.root, self.say, self.kms_server = root, say, kms_server
        host, port = moto.get_host_and_port()
        self.moto_endpoint = f"http://{host}:{port}"
        self.oss_endpoint = str(oss_server.endpoint)
        self.aws_calls: Counter[str] = Counter()
        self.s3 = _s3_client(self.moto_endpoint)
        self.kms = _local_session().client("kms", endpoint_url=self.moto_endpoint)
        self.kms.meta.events.register("before-call.kms", self._count_aws_call)
        _fresh_bucket(self.s3, _SRC_BUCKET)
        self.aws_key_id = str(self.kms.create_key(Description="cse demo: migrate")["KeyMetadata"]["KeyId"])
        self.aws_key = AwsKmsProvider(self.aws_key_id, client=self.kms)
        self.s3_store = S3Store(_SRC_BUCKET, client=self.s3)

        import oss2  # type: ignore[import-untyped,unused-ignore]
        from aliyunsdkcore.client import AcsClient  # type: ignore[import-untyped,unused-ignore]

        self.oss_store = OssStore(
            oss2.Bucket(
                oss2.AuthV4(_AK, _SECRET), self.oss_endpoint, _DST_BUCKET, region=_REGION, enable_crc=False
            )
        )
        acs = AcsClient(_AK, _SECRET, _REGION, auto_retry=False)
        acs.add_endpoint(_REGION, "Kms", kms_server.endpoint)
        self.old_id = str(kms_server.create_key("cse demo: migrate, old key"))
        self.new_id = str(kms_server.create_key("cse demo: migrate, new key"))
        self.old_uri = f"aliyun-kms://{_REGION}/{self.old_id}?style=oss2"
        self.new_uri = f"aliyun-kms://{_REGION}/{self.new_id}?style=oss2"
        self.old_key = AliyunKmsProvider.from_uri(self.old_uri, client=acs)
        self.new_key = AliyunKmsProvider.from_uri(self.new_uri, client=acs)
        self.objects = {name: os.urandom(size) for name, size in _OBJECTS.items()}
        self.digests = {name: hashlib.sha256(body).digest() for name, body in self.objects.items()}

    def _count_aws_call(self, model: Any, **_kwargs: Any) -> None:
        """botocore's ``before-call`` hook on the AWS KMS client: count the operation."""
        self.aws_calls[str(model.name)] += 1

    def _kms_counts(self) -> dict[str, int]:
        """KMS calls so far, by service and operation, as the two KMS servers saw them."""
        counts = {f"AWS {name}": n for name, n in sorted(self.aws_calls.items())}
        counts.update({f"Alibaba {name}": n for name, n in sorted(self.kms_server.call_counts.items())})
        return counts

    def _reset_counts(self) -> None:
        self.aws_calls.clear()
        self.kms_server.reset_counters()

    def run(self) -> dict[str, Any]:
        """Steps 10.1 to 10.4; returns the leg's report."""
        self.say(
            f"10. migrate leg  S3 -> OSS: moto's S3 and AWS KMS on {self.moto_endpoint}; OSS emulator on "
            f"{self.oss_endpoint}; Alibaba Cloud KMS emulator on {self.kms_server.endpoint}"
        )
        official = self.write()
        migration = self.migrate()
        self.read_with_oss2(self.old_id, "old key")
        self.say(
            f"   10.3 oss2     oss2's CryptoBucket (AliKMSProvider, old key) reads all {len(self.digests)}: "
            "sha256 matches"
        )
        rotation = self.rotate()
        return {
            "ok": True,
            "source": self.s3_store.url(_PREFIX),
            "destination": self.oss_store.url(_PREFIX),
            "objects": {name: len(body) for name, body in self.objects.items()},
            "official_client_wrote": official,
            "aws_kms_key": self.aws_key_id,
            "key": self.old_uri,
            "new_key": self.new_uri,
            "journal": str(self.root / _JOURNAL),
            "migration": migration,
            "oss2_read": True,
            "rotation": rotation,
        }

    # -- 10.1 ----------------------------------------------------------------------------------------------

    def write(self) -> bool:
        """Encrypt the objects into S3 as s3-v3 under AWS KMS; the official client writes one if installed."""
        official = _official_put(self.kms, self.aws_key_id, self.moto_endpoint, self.objects[_OFFICIAL_NAME])
        client = EncryptionClient(self.aws_key, config=_CONFIG)
        notes = []
        for name, body in self.objects.items():
            if name == _OFFICIAL_NAME and official:
                notes.append(f"{name} {_human(len(body))} (by the AWS S3 Encryption Client)")
                continue
            put = client.put((self.s3_store, _PREFIX + name), body)
            notes.append(f"{name} {_human(len(body))}" + (f" ({put.parts} parts)" if put.parts else ""))
        formats = sorted(
            {client.head((self.s3_store, _PREFIX + name)).envelope.format for name in self.objects}
        )
        total = sum(len(body) for body in self.objects.values())
        self.say(
            f"   10.1 write    {self.s3_store.url(_PREFIX)}: {len(self.objects)} objects, {_human(total)}, "
            f"as {', '.join(formats)} under AWS KMS key {self.aws_key_id}"
        )
        self.say(f"                 {', '.join(notes[:3])},")
        self.say(f"                 {', '.join(notes[3:])}")
        if not official:
            self.say(
                "                 (the AWS S3 Encryption Client would write one: "
                "pip install amazon-s3-encryption-client-python)"
            )
        return official

    # -- 10.2 ----------------------------------------------------------------------------------------------

    def migrate(self) -> dict[str, Any]:
        """Native migration S3 -> OSS under the old Alibaba key, journaled; a second run must skip all."""
        journal = self.root / _JOURNAL
        for suffix in ("", "-wal", "-shm"):  # a fresh journal: this run's objects are new
            Path(f"{journal}{suffix}").unlink(missing_ok=True)
        self._reset_counts()
        src, dst = (self.s3_store, _PREFIX), (self.oss_store, _PREFIX)
        summary = migrate(
            src,
            dst,
            keys=[self.aws_key],
            to_keys=[self.old_key],
            mode="native",
            journal=journal,
            config=_CONFIG,
        )
        _check(summary, len(self.objects), "the migration to OSS")
        calls = self._kms_counts()
        formats = sorted({o.format for o in summary.objects})
        self.say(
            f"   10.2 migrate  {self.s3_store.url(_PREFIX)} -> {self.oss_store.url(_PREFIX)}, native mode "
            f"(decrypt, encrypt again as {', '.join(formats)})"
        )
        self.say(f"                 under {self.old_uri} (wrapped keys in oss2's style)")
        self.say(
            f"                 copied {summary.copied}, failed {summary.failed}, {summary.bytes} bytes, "
            f"{sum(calls.values())} KMS calls ({_calls(calls)}), {summary.seconds:.2f} s"
        )
        again = migrate(
            src,
            dst,
            keys=[self.aws_key],
            to_keys=[self.old_key],
            mode="native",
            journal=journal,
            config=_CONFIG,
        )
        if again.skipped != len(self.objects) or again.copied or again.failed:
            raise CseError(f"demo: the second migration run did not skip every object ({again.to_dict()})")
        self.say(f"                 journal {journal}: a second run skips all {again.skipped}")
        return {
            "copied": summary.copied,
            "failed": summary.failed,
            "bytes": summary.bytes,
            "formats": formats,
            "kms_calls": sum(calls.values()),
            "kms_calls_by_operation": calls,
            "summary_kms_calls": summary.kms_calls,
            "seconds": round(summary.seconds, 3),
            "second_run_skipped": again.skipped,
        }

    # -- 10.3 ----------------------------------------------------------------------------------------------

    def read_with_oss2(self, key_id: str, label: str) -> None:
        """Read every migrated object with oss2's CryptoBucket + AliKMSProvider and compare the SHA-256."""
        import oss2

        provider = oss2.crypto.AliKMSProvider(_AK, _SECRET, _REGION, key_id)
        provider.kms_client.add_endpoint(_REGION, "Kms", self.kms_server.endpoint)
        bucket = oss2.CryptoBucket(
            oss2.AuthV4(_AK, _SECRET),
            self.oss_endpoint,
            _DST_BUCKET,
            crypto_provider=provider,
            region=_REGION,
        )
        for name, digest in self.digests.items():
            if hashlib.sha256(bucket.get_object(_PREFIX + name).read()).digest() != digest:
                raise CseError(f"demo: oss2's CryptoBucket read different bytes for {name} ({label})")

    # -- 10.4 ----------------------------------------------------------------------------------------------

    def rotate(self) -> dict[str, Any]:
        """Rewrap the OSS prefix in place to the new key, disable the old key, show what opens now."""
        self.oss_store.copy(_PREFIX + "notes.txt", _SNAPSHOT)  # the object as it is before the rotation
        self._reset_counts()
        summary = rewrap_prefix((self.oss_store, _PREFIX), keys=[self.old_key], to_keys=[self.new_key])
        _check(summary, len(self.objects), "the key rotation")
        calls = self._kms_counts()
        self.say(f"   10.4 rotate   rewrap {self.oss_store.url(_PREFIX)} in place to {self.new_uri}:")
        self.say(
            f"                 {summary.copied} objects re-keyed by server-side copy (ciphertext unchanged), "
            f"{sum(calls.values())} KMS calls ({_calls(calls)})"
        )
        self.kms_server.disable_key(self.old_id)
        try:
            EncryptionClient(self.old_key).get((self.oss_store, _SNAPSHOT))
        except CseError as exc:
            code = re.search(r"\b(?:Rejected|Forbidden)\.\w+", str(exc))
            # The family (KmsError, whatever its subclass) and the cloud code: "KmsError: Rejected.Disabled".
            family = "KmsError" if isinstance(exc, KmsError) else type(exc).__name__
            refused = family + (f": {code.group(0)}" if code else "")
        else:
            raise CseError("demo: an object under the disabled old key still opened")
        self.say(
            f"                 old key disabled: {self.oss_store.url(_SNAPSHOT)}, a copy from before the "
            f"rotation, no longer opens ({refused})"
        )
        reader = EncryptionClient(self.new_key)
        for name, digest in self.digests.items():
            if hashlib.sha256(reader.get((self.oss_store, _PREFIX + name))).digest() != digest:
                raise CseError(f"demo: {name} decrypted under the new key differs from the original")
        self.read_with_oss2(self.new_id, "new key")
        self.say(
            f"                 new key: all {len(self.digests)} rotated objects open in cse and in oss2's "
            "CryptoBucket (AliKMSProvider, new key), sha256 matches"
        )
        return {
            "rewrapped": summary.copied,
            "failed": summary.failed,
            "kms_calls": sum(calls.values()),
            "kms_calls_by_operation": calls,
            "old_key_disabled": True,
            "old_key_refused": refused,
            "new_key_read": True,
            "oss2_read_new_key": True,
        }


# -- helpers ----------------------------------------------------------------------------------------------


def _check(summary: MigrationSummary, expected: int, what: str) -> None:
    """Raise if ``summary`` is not ``expected`` objects copied and none failed."""
    if summary.failed or summary.copied != expected:
        errors = "; ".join(f"{o.src_url}: {o.error}" for o in summary.objects if o.error)
        raise CseError(
            f"demo: {what} copied {summary.copied} of {expected} objects, {summary.failed} failed: {errors}"
        )


def _calls(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "none"


def _human(size: int) -> str:
    if size >= _MIB:
        return f"{size / _MIB:.1f} MiB"
    return f"{size / _KIB:.0f} KiB"


def _local_session() -> Any:
    """A boto3 session for moto's server on this machine, which accepts any credentials."""
    import boto3  # type: ignore[import-untyped,unused-ignore]

    credentials = {"aws_access_key_id": "demo", "aws_secret_access_key": "demo"}
    return boto3.session.Session(region_name="us-east-1", **credentials)


def _s3_client(endpoint: str) -> Any:
    from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

    return _local_session().client(
        "s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"})
    )


def _fresh_bucket(s3: Any, name: str) -> None:
    """Create the bucket, or empty it: moto's state outlives its server within one process."""
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=name)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])


def _official_put(kms: Any, key_id: str, endpoint: str, body: bytes) -> bool:
    """Write :data:`_OFFICIAL_NAME` with the official AWS S3 Encryption Client; False if not installed."""
    try:
        s3ec = importlib.import_module("s3_encryption")
        keyring = importlib.import_module("s3_encryption.materials.kms_keyring")
    except ImportError:
        return False
    # The official client installs hooks on the S3 client it wraps, so it gets one of its own.
    config = s3ec.S3EncryptionClientConfig(keyring=keyring.KmsKeyring(kms_client=kms, kms_key_id=key_id))
    client = s3ec.S3EncryptionClient(wrapped_s3_client=_s3_client(endpoint), config=config)
    client.put_object(Bucket=_SRC_BUCKET, Key=_PREFIX + _OFFICIAL_NAME, Body=body)
    return True
