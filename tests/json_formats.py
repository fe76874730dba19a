"""Test-only formats that store a whole Envelope as JSON, to drive the GCM and CTR codecs through the client.

The real S3 and OSS formats arrive with their own distributions; these exercise the client's paths for
whole-object-authenticated (GCM, committing GCM) and unauthenticated (CTR) content today.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import ValidationError

from cse.envelope import ContentAlgorithm, Envelope, WrapAlgorithm
from cse.exceptions import MetadataError
from cse.formats.base import Format
from cse.registry import register_format


class _JsonFormat(Format):
    field: ClassVar[str] = ""
    wrap_algorithms = (WrapAlgorithm.RSA_OAEP_SHA1, WrapAlgorithm.RSA_PKCS1, WrapAlgorithm.AES_GCM)

    def detect(self, metadata: Mapping[str, str]) -> bool:
        return self.field in metadata

    def decode(self, metadata: Mapping[str, str]) -> Envelope:
        try:
            doc: dict[str, Any] = json.loads(metadata[self.field])
            for name in ("iv", "message_id", "commitment", "plaintext_mac"):
                if doc.get(name) is not None:
                    doc[name] = base64.b64decode(doc[name])
            for wk in doc["wrapped_keys"]:
                wk["ciphertext"] = base64.b64decode(wk["ciphertext"])
                if wk.get("wrapped_iv"):
                    wk["wrapped_iv"] = base64.b64decode(wk["wrapped_iv"])
            return Envelope.model_validate(doc)
        except (KeyError, ValueError, TypeError, ValidationError) as exc:
            raise MetadataError(f"{self.field} metadata is malformed: {type(exc).__name__}") from None

    def encode(self, envelope: Envelope) -> dict[str, str]:
        doc = envelope.model_dump()
        for name in ("iv", "message_id", "commitment", "salt", "nonce_prefix", "plaintext_mac"):
            if doc.get(name) is not None:
                doc[name] = base64.b64encode(doc[name]).decode()
        for wk in doc["wrapped_keys"]:
            wk["ciphertext"] = base64.b64encode(wk["ciphertext"]).decode()
            if wk.get("wrapped_iv"):
                wk["wrapped_iv"] = base64.b64encode(wk["wrapped_iv"]).decode()
        return {self.field: json.dumps(doc, sort_keys=True)}


class JsonGcmFormat(_JsonFormat):
    name = "test-gcm"
    field = "test-gcm"
    content_algorithm = ContentAlgorithm.AES_GCM


class JsonCommittingFormat(_JsonFormat):
    name = "test-committing"
    field = "test-committing"
    content_algorithm = ContentAlgorithm.AES_GCM_COMMITTING


class JsonCtrFormat(_JsonFormat):
    name = "test-ctr"
    field = "test-ctr"
    content_algorithm = ContentAlgorithm.AES_CTR
    wraps_iv = True
    wrap_algorithms = (WrapAlgorithm.RSA_PKCS1,)


def register() -> None:
    """Register the three test formats."""
    for cls in (JsonGcmFormat, JsonCommittingFormat, JsonCtrFormat):
        register_format(cls.name, cls)


class JsonPolicedGcmFormat(JsonGcmFormat):
    """Plain GCM governed by the commitment policy, as S3 V2 is."""

    name = "test-gcm-policed"
    field = "test-gcm-policed"
    key_committing = False
    commitment_policy_applies = True


class JsonPolicedCommittingFormat(JsonCommittingFormat):
    """Committing GCM governed by the commitment policy, as S3 V3 is."""

    name = "test-committing-policed"
    field = "test-committing-policed"
    commitment_policy_applies = True


def register_policed() -> None:
    """Register the two formats governed by the commitment policy."""
    for cls in (JsonPolicedGcmFormat, JsonPolicedCommittingFormat):
        register_format(cls.name, cls)
