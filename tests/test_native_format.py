"""The native cse-v1 format: the shared Format conformance suite, then cse-v1 specifics."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cse.envelope import ContentAlgorithm, Envelope, WrapAlgorithm, WrappedKey
from cse.exceptions import DecryptionError, MetadataError
from cse.formats.native import METADATA_KEY, NativeFormat
from cse.testing.formats import FormatConformance

FMT = NativeFormat()


def rsa_key(n: int = 0, **kw: Any) -> WrappedKey:
    """A wrapped key as the rsa provider records it (dummy ciphertext)."""
    fields: dict[str, Any] = {
        "wrap_algorithm": WrapAlgorithm.RSA_OAEP_SHA256,
        "ciphertext": bytes([n]) * 256,
        "key_id": f"sha256:{n:032x}",
        "provider": "rsa",
    }
    fields.update(kw)
    return WrappedKey(**fields)


def envelope(**kw: Any) -> Envelope:
    """A cse-v1 envelope with fixed parameters; ``kw`` overrides fields."""
    fields: dict[str, Any] = {
        "format": "cse-v1",
        "content_algorithm": ContentAlgorithm.CSE_V1,
        "wrapped_keys": (rsa_key(),),
        "salt": bytes(range(32)),
        "nonce_prefix": bytes(range(7)),
        "commitment": bytes(range(32, 64)),
        "segment_size": 1024 * 1024,
        "encryption_context": {"bucket": "photos", "key": "2024/cat.jpg"},
    }
    fields.update(kw)
    return Envelope(**fields)


SAMPLES = {
    "basic": envelope(),
    "empty-context": envelope(encryption_context={}),
    "non-ascii": envelope(
        encryption_context={"città": "Zürich", "emoji": "😀", "ctl": 'a\nb\x00\x7f"\\', "\ue000": "pua"},
        wrapped_keys=(rsa_key(material_description={"ключ": "значение", "empty": ""}),),
    ),
    "several-keys": envelope(
        wrapped_keys=(
            rsa_key(1, material_description={"purpose": "backup"}),
            WrappedKey(
                wrap_algorithm=WrapAlgorithm.KMS_CONTEXT,
                ciphertext=os.urandom(184),
                key_id="arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                provider="aws-kms",
            ),
            WrappedKey(
                wrap_algorithm=WrapAlgorithm.ALIYUN_KMS,
                ciphertext=os.urandom(128),
                key_id="key-hzz62f1cb66fa42qo3fzs",
                provider="aliyun-kms",
            ),
        )
    ),
    "smallest-segments": envelope(segment_size=16),
    "largest-segments": envelope(segment_size=64 * 1024 * 1024),
}


class TestNativeFormatConformance(FormatConformance):
    """NativeFormat passes the shared conformance suite, for every sample envelope."""

    @pytest.fixture
    def fmt(self) -> NativeFormat:
        """The format under test."""
        return NativeFormat()

    @pytest.fixture(params=sorted(SAMPLES))
    def envelope(self, request: pytest.FixtureRequest) -> Envelope:
        """Each sample envelope in turn."""
        return SAMPLES[request.param]


# ------------------------------------------------------------------------------------------- helpers


def document(env: Envelope | None = None) -> dict[str, Any]:
    """The parsed JSON document of an envelope."""
    return json.loads(FMT.encode(env or envelope())[METADATA_KEY])


def decode_doc(doc: Any) -> Envelope:
    """Decode a (possibly damaged) document."""
    return FMT.decode({METADATA_KEY: json.dumps(doc)})


def metadata_error(doc: Any, *fragments: str) -> MetadataError:
    """Decoding ``doc`` raises MetadataError whose message holds every fragment."""
    with pytest.raises(MetadataError) as info:
        decode_doc(doc)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    return info.value


# -------------------------------------------------------------------------------------------- version


@pytest.mark.parametrize("version", [2, 0, 99])
def test_unknown_version_says_upgrade(version: int) -> None:
    """A newer (or unknown) version asks the user to upgrade cse."""
    doc = document()
    doc["version"] = version
    metadata_error(doc, "version", "upgrade")


@pytest.mark.parametrize("version", ["1", True, 1.0, None, [1]])
def test_version_must_be_the_integer_1(version: Any) -> None:
    """``"1"``, ``true`` and ``1.0`` are not version 1."""
    doc = document()
    doc["version"] = version
    metadata_error(doc, "version")


def test_wrong_content_algorithm() -> None:
    """Only the cse-v1 content algorithm is accepted."""
    doc = document()
    doc["content_algorithm"] = "AES/GCM/NoPadding"
    metadata_error(doc, "content_algorithm")


# ------------------------------------------------------------------------------------ fields and keys


def test_unknown_top_level_field() -> None:
    """An unknown field is refused and named."""
    doc = document()
    doc["compression"] = "zstd"
    metadata_error(doc, "unknown", "compression")


def test_unknown_key_entry_field() -> None:
    """An unknown field in a key entry is refused."""
    doc = document()
    doc["keys"][0]["wrapped_iv"] = "AAAA"
    metadata_error(doc, "keys[0]")


@pytest.mark.parametrize(
    "name",
    [
        "version",
        "content_algorithm",
        "segment_size",
        "salt",
        "nonce_prefix",
        "commitment",
        "encryption_context",
        "keys",
    ],
)
def test_every_top_level_field_is_required(name: str) -> None:
    """Removing any field is a MetadataError naming it."""
    doc = document()
    del doc[name]
    metadata_error(doc, "missing", name)


@pytest.mark.parametrize(
    "name", ["provider", "wrap_algorithm", "key_id", "ciphertext", "material_description"]
)
def test_every_key_entry_field_is_required(name: str) -> None:
    """Removing any field of a key entry is a MetadataError naming the entry."""
    doc = document(SAMPLES["several-keys"])
    del doc["keys"][2][name]
    metadata_error(doc, "keys[2]")


def test_keys_list_empty() -> None:
    """An object with no wrapped key cannot be decrypted: MetadataError naming 'keys'."""
    doc = document()
    doc["keys"] = []
    metadata_error(doc, "keys", "non-empty")


@pytest.mark.parametrize("keys", [None, {}, "AAAA", [None], ["x"], [[]]])
def test_keys_must_be_a_list_of_objects(keys: Any) -> None:
    """``keys`` is a non-empty list of objects."""
    doc = document()
    doc["keys"] = keys
    metadata_error(doc, "keys")


def test_several_wrapped_keys_round_trip_in_order() -> None:
    """Every wrapped key comes back, in order, with every field."""
    env = SAMPLES["several-keys"]
    decoded = FMT.decode(FMT.encode(env))
    assert decoded.wrapped_keys == env.wrapped_keys
    assert [k.provider for k in decoded.wrapped_keys] == ["rsa", "aws-kms", "aliyun-kms"]
    doc = document(env)
    assert [k["wrap_algorithm"] for k in doc["keys"]] == ["RSA-OAEP-SHA256", "kms+context", "KMS/ALICLOUD"]
    assert doc["keys"][1]["material_description"] == {}


def test_encode_requires_provider_and_key_id() -> None:
    """cse-v1 records who wrapped each key; a key without provider or key id is not encodable."""
    bare = envelope(wrapped_keys=(WrappedKey(wrap_algorithm="RSA-OAEP-SHA256", ciphertext=b"x"),))
    with pytest.raises(ValueError, match="provider"):
        FMT.encode(bare)


def test_encode_refuses_other_content_algorithms() -> None:
    """Only cse-v1 envelopes are encodable."""
    other = Envelope(
        format="s3-v2", content_algorithm=ContentAlgorithm.AES_GCM, wrapped_keys=(rsa_key(),), iv=bytes(12)
    )
    with pytest.raises(ValueError, match="cse-v1"):
        FMT.encode(other)


@pytest.mark.parametrize("name", ["provider", "wrap_algorithm", "key_id"])
@pytest.mark.parametrize("value", ["", None, 1, [], {}])
def test_key_entry_strings(name: str, value: Any) -> None:
    """provider, wrap_algorithm and key_id are non-empty strings."""
    doc = document()
    doc["keys"][0][name] = value
    metadata_error(doc, f"keys[0].{name}")


# ------------------------------------------------------------------------------------- encoded values


@pytest.mark.parametrize(("name", "length"), [("salt", 32), ("nonce_prefix", 7), ("commitment", 32)])
def test_parameter_lengths(name: str, length: int) -> None:
    """salt, nonce prefix and commitment have exact lengths."""
    for wrong in (length - 1, length + 1, 0):
        doc = document()
        doc[name] = base64.b64encode(bytes(wrong)).decode()
        metadata_error(doc)


@pytest.mark.parametrize("value", ["AAAA!", "AAA", "AA==\n", " AAAA", "ÄÄÄÄ", 123, None, ["AAAA"]])
@pytest.mark.parametrize("name", ["salt", "nonce_prefix", "commitment", "keys[0].ciphertext"])
def test_invalid_base64(name: str, value: Any) -> None:
    """Base64 is strict: standard alphabet, padded, no whitespace."""
    doc = document()
    if name.startswith("keys"):
        doc["keys"][0]["ciphertext"] = value
    else:
        doc[name] = value
    metadata_error(doc, name.split(".")[-1])


def test_empty_wrapped_key_ciphertext() -> None:
    """A wrapped key is at least one byte."""
    doc = document()
    doc["keys"][0]["ciphertext"] = ""
    metadata_error(doc, "keys[0]")


@pytest.mark.parametrize("size", [0, -1, 15, 64 * 1024 * 1024 + 1, 1.5, "1024", True, None])
def test_segment_size_bounds(size: Any) -> None:
    """The segment size is an integer 16..64 MiB."""
    doc = document()
    doc["segment_size"] = size
    metadata_error(doc, "segment_size")


@pytest.mark.parametrize("size", [16, 17, 4096, 64 * 1024 * 1024])
def test_segment_size_accepted(size: int) -> None:
    """Any integer segment size in bounds is accepted."""
    doc = document()
    doc["segment_size"] = size
    assert decode_doc(doc).segment_size == size


@pytest.mark.parametrize("value", [None, [], "x", {"a": 1}, {"a": None}, {"a": ["b"]}])
@pytest.mark.parametrize("name", ["encryption_context", "material_description"])
def test_string_maps(name: str, value: Any) -> None:
    """The context and material descriptions are objects of strings."""
    doc = document()
    if name == "material_description":
        doc["keys"][0][name] = value
    else:
        doc[name] = value
    metadata_error(doc, name)


# ---------------------------------------------------------------------------------- JSON and text


def test_non_ascii_context_round_trips_as_json_escapes() -> None:
    """Non-ASCII text travels as \\u escapes (surrogate pairs above U+FFFF) and comes back unchanged."""
    env = SAMPLES["non-ascii"]
    raw = FMT.encode(env)[METADATA_KEY]
    assert raw.isascii()
    assert all(" " <= c <= "~" for c in raw)
    assert "citt\\u00e0" in raw
    assert "Z\\u00fcrich" in raw
    assert "\\ud83d\\ude00" in raw
    assert "\\u007f" in raw
    assert "\\u0000" in raw
    decoded = FMT.decode({METADATA_KEY: raw})
    assert decoded.encryption_context == env.encryption_context
    assert decoded.wrapped_keys[0].material_description == {"ключ": "значение", "empty": ""}
    assert decoded == env


def test_canonical_encoding() -> None:
    """Compact JSON, members sorted by name at every level, exactly as docs/cse-v1.md shows."""
    env = envelope(
        encryption_context={"b": "2", "a": "1"},
        wrapped_keys=(rsa_key(0, ciphertext=b"\x01\x02\x03", material_description={"z": "", "y": "é"}),),
        segment_size=65536,
    )
    assert FMT.encode(env) == {
        "cse-v1": '{"commitment":"ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",'
        '"content_algorithm":"cse-v1/AES-256-GCM-HKDF-SHA256-STREAM",'
        '"encryption_context":{"a":"1","b":"2"},'
        '"keys":[{"ciphertext":"AQID","key_id":"sha256:00000000000000000000000000000000",'
        '"material_description":{"y":"\\u00e9","z":""},"provider":"rsa","wrap_algorithm":"RSA-OAEP-SHA256"}],'
        '"nonce_prefix":"AAECAwQFBg==","salt":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",'
        '"segment_size":65536,"version":1}'
    }


def test_any_json_layout_is_read() -> None:
    """Readers accept any valid JSON layout (whitespace, member order), not only the canonical one."""
    doc = document(SAMPLES["non-ascii"])
    pretty = json.dumps(dict(reversed(list(doc.items()))), indent=4, ensure_ascii=False)
    assert FMT.decode({METADATA_KEY: pretty}) == SAMPLES["non-ascii"]


def test_duplicate_member_names_are_refused() -> None:
    """A repeated member name is ambiguous across JSON parsers: refused."""
    raw = FMT.encode(envelope())[METADATA_KEY]
    with pytest.raises(MetadataError, match="repeats"):
        FMT.decode({METADATA_KEY: raw[:-1] + ',"version":1}'})
    with pytest.raises(MetadataError, match="repeats"):
        FMT.decode(
            {METADATA_KEY: raw.replace('"encryption_context":{', '"encryption_context":{"a":"1","a":"2",')}
        )


def test_lone_surrogate_in_context_is_a_metadata_error() -> None:
    """\\ud800 alone is valid JSON but not Unicode text; it cannot be hashed into the AAD."""
    raw = FMT.encode(envelope())[METADATA_KEY].replace('"bucket":"photos"', '"bucket":"\\ud800"')
    with pytest.raises(MetadataError, match="surrogate"):
        FMT.decode({METADATA_KEY: raw})


@pytest.mark.parametrize("raw", ["", "{", "%%%", "null", "[]", "1", '"x"', "[" * 100_000, "{}", "NaN"])
def test_not_a_document(raw: str) -> None:
    """Anything but a JSON object with the fields is a MetadataError."""
    with pytest.raises(MetadataError):
        FMT.decode({METADATA_KEY: raw})


def test_detect_and_missing_document() -> None:
    """detect() looks for the cse-v1 key; decode without it names the key."""
    assert FMT.detect({"cse-v1": "anything"})
    assert not FMT.detect({"cse-v2": "{}", "x-amz-key-v2": "AAAA"})
    with pytest.raises(MetadataError, match="cse-v1"):
        FMT.decode({"x-amz-key-v2": "AAAA"})


def test_metadata_error_is_a_decryption_error() -> None:
    """A caller catching DecryptionError also catches malformed metadata."""
    assert issubclass(MetadataError, DecryptionError)


# ---------------------------------------------------------------------------------------- properties

TEXT = st.text(max_size=12)  # hypothesis' text never holds lone surrogates
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None)
@given(
    context=st.dictionaries(TEXT, TEXT, max_size=6),
    description=st.dictionaries(TEXT, TEXT, max_size=4),
    key_id=st.text(min_size=1, max_size=30),
)
def test_any_text_round_trips_header_safe(
    context: dict[str, str], description: dict[str, str], key_id: str
) -> None:
    """Whatever the text in the context, material description and key id, the header is printable ASCII."""
    env = envelope(
        encryption_context=context, wrapped_keys=(rsa_key(key_id=key_id, material_description=description),)
    )
    metadata = FMT.encode(env)
    assert all(" " <= c <= "~" for c in metadata[METADATA_KEY])
    assert FMT.decode(metadata) == env


PATHS = [
    *[(name,) for name in document()],
    *[("keys", 0, name) for name in document()["keys"][0]],
    ("encryption_context", "bucket"),
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=JSON_VALUES, delete=st.booleans())
def test_damaged_documents_raise_only_metadata_error(path: tuple[Any, ...], value: Any, delete: bool) -> None:
    """Any field replaced by any JSON value (or removed) decodes or raises MetadataError, nothing else."""
    doc = document()
    parent: Any = doc
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    with contextlib.suppress(MetadataError):
        decode_doc(doc)
