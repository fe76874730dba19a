"""KMS calls per object, with and without data-key caching, counted from the Alibaba Cloud KMS emulator's log.

200 objects of 1 KiB are put into the OSS emulator in format oss-v2 with an ``aliyun-kms://`` key, then read
back; the emulator's ``request_log`` says which KMS actions each phase caused. With caching, the client is
``EncryptionClient(key, key_cache=DataKeyCache(...))``; if ``cse.cache`` is not there (yet), that row is
skipped with a note.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from common import OSS_AK, OSS_REGION, OSS_SECRET, KiB

from cse.client import EncryptionClient

OBJECTS = 200


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _make_cache() -> tuple[Any, str | None]:
    try:
        from cse.cache import DataKeyCache  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None, "cse.cache.DataKeyCache is not available in this tree: the cached row is skipped"
    for kwargs in ({}, {"max_age": 300.0, "max_uses": 1000}):
        try:
            return DataKeyCache(**kwargs), None
        except TypeError:
            continue
    return None, "DataKeyCache() could not be constructed with default arguments: the cached row is skipped"


def _phase(kms: Any, fn: Any) -> Counter[str]:
    kms.reset_counters()
    fn()
    return Counter(record.action for record in list(kms.request_log))


def bench_kms_calls(objects: int = OBJECTS) -> tuple[list[dict[str, Any]], list[str]]:
    from cse_aliyun_kms.testing import KmsEmulator
    from cse_oss.testing import OssEmulator

    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    data = os.urandom(KiB)
    bucket = f"kms-{uuid.uuid4().hex[:12]}"
    with (
        OssEmulator(access_key_id=OSS_AK, access_key_secret=OSS_SECRET) as oss,
        KmsEmulator(access_key_id=OSS_AK, access_key_secret=OSS_SECRET, region=OSS_REGION) as kms,
    ):
        oss.create_bucket(bucket)
        key_uri = f"aliyun-kms://{OSS_REGION}/{kms.create_key('bench')}"
        env = {
            "OSS_ENDPOINT": oss.endpoint,
            "OSS_REGION": OSS_REGION,
            "OSS_ACCESS_KEY_ID": OSS_AK,
            "OSS_ACCESS_KEY_SECRET": OSS_SECRET,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": OSS_AK,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": OSS_SECRET,
            "CSE_ALIYUN_KMS_ENDPOINT": kms.endpoint,
        }
        cache, note = _make_cache()
        variants: list[tuple[str, dict[str, Any]]] = [("no cache", {})]
        if cache is None:
            notes.append(note or "")
        else:
            variants.append(("DataKeyCache", {"key_cache": cache}))
        with _env(env):
            for label, kwargs in variants:
                try:
                    client = EncryptionClient(key_uri, **kwargs)
                except TypeError as exc:
                    notes.append(f"EncryptionClient does not take {sorted(kwargs)} ({exc}): {label} skipped")
                    continue
                prefix = f"oss://{bucket}/{label.replace(' ', '-')}"
                put = _phase(kms, lambda: [client.put(f"{prefix}/{i}", data) for i in range(objects)])
                get = _phase(kms, lambda: [client.get(f"{prefix}/{i}") for i in range(objects)])
                counts = getattr(client.keys[0], "call_counts", None)
                rows.append(
                    {
                        "client": label,
                        "objects": objects,
                        "put_calls": dict(put),
                        "get_calls": dict(get),
                        "put_calls_per_object": sum(put.values()) / objects,
                        "get_calls_per_object": sum(get.values()) / objects,
                        "provider_call_counts": dict(counts()) if callable(counts) else None,
                    }
                )
    return rows, notes
