"""The :class:`~cse.formats.Format` conformance suite.

Subclass :class:`FormatConformance` under a name pytest collects and give it two fixtures: ``fmt``, the
format under test, and ``envelope``, a sample :class:`~cse.envelope.Envelope` that the format can encode
(use the fields the format carries, and leave the others at their defaults)::

    import pytest
    from cse.envelope import Envelope, WrappedKey
    from cse.testing.formats import FormatConformance

    class TestMyFormat(FormatConformance):
        optional_keys = frozenset({"my-unencrypted-content-length"})

        @pytest.fixture
        def fmt(self):
            return MyFormat()

        @pytest.fixture
        def envelope(self):
            return Envelope(format="my-format", content_algorithm="AES/GCM/NoPadding", iv=bytes(12),
                            wrapped_keys=(WrappedKey(wrap_algorithm="kms+context", ciphertext=b"blob"),))

Give the ``envelope`` fixture ``params=[...]`` to run every test against several envelopes (with and
without an encryption context, with non-ASCII text, with several wrapped keys ...).

What the suite checks:

* :meth:`Format.encode` gives a ``dict[str, str]`` whose keys are lower-case HTTP header tokens and whose
  values are printable ASCII (safe as HTTP header values on every store), and does so deterministically;
* ``decode(encode(envelope)) == envelope`` (apart from :attr:`FormatConformance.ignored_fields`), the
  decoded envelope names the format, and encoding it again gives the same metadata;
* :meth:`Format.detect` is true for the format's own encoding (also among unrelated user metadata) and false
  for ``{}`` and for unrelated metadata (the ``unrelated_metadata`` fixture, which you may extend with
  other formats' encodings);
* removing any one key makes :meth:`Format.decode` raise :class:`~cse.exceptions.MetadataError`, or makes
  :meth:`Format.detect` false (except for :attr:`FormatConformance.optional_keys`);
* replacing any one value with garbage (:attr:`FormatConformance.garbage_values`) makes ``decode`` raise
  :class:`~cse.exceptions.MetadataError` or ``detect`` false, never another exception, not even the plain
  :class:`~cse.exceptions.DecryptionError` that :class:`~cse.exceptions.MetadataError` derives from
  (except that :attr:`FormatConformance.lenient_keys` may decode).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import pytest

from cse.envelope import Envelope
from cse.exceptions import MetadataError
from cse.formats.base import Format

__all__ = ["FormatConformance"]

#: An HTTP header field name (RFC 9110 token), in lower case.
_TOKEN = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")


def _fields(envelope: Envelope, ignored: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in envelope.model_dump().items() if k not in ignored}


def _decode_outcome(fmt: Format, metadata: Mapping[str, str], what: str) -> str:
    """``"undetected"``, ``"decoded"`` or ``"metadata-error"``; any other exception fails the test."""
    try:
        if not fmt.detect(metadata):
            return "undetected"
        fmt.decode(metadata)
    except MetadataError as exc:
        if not str(exc):
            pytest.fail(f"{fmt.name}: the MetadataError for {what} says nothing")
        return "metadata-error"
    except Exception as exc:  # any other exception is the failure this suite looks for
        pytest.fail(f"{fmt.name}: {what} raised {type(exc).__name__}: {exc} instead of MetadataError")
    return "decoded"


class FormatConformance:
    """Tests every :class:`~cse.formats.Format` must pass. Subclass it; define ``fmt`` and ``envelope``."""

    #: Metadata keys the format may do without: removing one of them may leave the metadata decodable.
    optional_keys: ClassVar[frozenset[str]] = frozenset()
    #: Metadata keys whose value the format may ignore or accept as free text, so garbage may decode.
    lenient_keys: ClassVar[frozenset[str]] = frozenset()
    #: Envelope fields the format does not carry; they are not compared after a round trip.
    ignored_fields: ClassVar[frozenset[str]] = frozenset()
    #: Values that are garbage for every field.
    garbage_values: ClassVar[tuple[str, ...]] = ("%%%", "", "{")

    # ------------------------------------------------------------------------------------------- fixtures

    @pytest.fixture
    def fmt(self) -> Format:
        """The format under test. Override this fixture in your subclass."""
        raise NotImplementedError("subclass FormatConformance and define a `fmt` fixture (your Format)")

    @pytest.fixture
    def envelope(self) -> Envelope:
        """A sample envelope the format can encode. Override this fixture in your subclass."""
        raise NotImplementedError(
            "subclass FormatConformance and define an `envelope` fixture (an Envelope your format encodes)"
        )

    @pytest.fixture
    def unrelated_metadata(self) -> list[dict[str, str]]:
        """User metadata that is not in the format. Extend it with other formats' encodings."""
        return [
            {},
            {"content-type": "text/plain"},
            {"owner": "alice", "project": "x", "x-amz-meta-note": "hello"},
            {"cse": "1", "version": "1", "key": "value"},
        ]

    @pytest.fixture
    def encoded(self, fmt: Format, envelope: Envelope) -> dict[str, str]:
        """The format's encoding of ``envelope``."""
        return fmt.encode(envelope)

    # ------------------------------------------------------------------------------------ class attributes

    def test_class_attributes(self, fmt: Format) -> None:
        """The format has a name, a content algorithm and, if writable, wrap algorithms."""
        assert isinstance(fmt.name, str)
        assert fmt.name
        assert isinstance(fmt.content_algorithm, str)
        assert fmt.content_algorithm
        assert isinstance(fmt.wrap_algorithms, tuple)
        assert all(isinstance(a, str) and a for a in fmt.wrap_algorithms)
        if fmt.writable:
            assert fmt.wrap_algorithms, "a writable format names the wrap algorithms it can describe"

    # -------------------------------------------------------------------------------------------- encoding

    def test_encode_gives_a_string_map(self, encoded: dict[str, str]) -> None:
        """``encode`` returns a non-empty ``dict[str, str]``."""
        assert isinstance(encoded, dict)
        assert encoded
        for key, value in encoded.items():
            assert isinstance(key, str), key
            assert isinstance(value, str), key

    def test_keys_are_lowercase_header_names(self, encoded: dict[str, str]) -> None:
        """Keys are lower case HTTP header tokens (stores lower-case user metadata names on read)."""
        for key in encoded:
            assert key == key.lower(), f"metadata key {key!r} is not lower case"
            assert _TOKEN.fullmatch(key), f"metadata key {key!r} is not an HTTP header name"

    def test_values_are_header_safe(self, encoded: dict[str, str]) -> None:
        """Values are printable ASCII with no surrounding whitespace, so any store carries them verbatim."""
        for key, value in encoded.items():
            assert value.isascii(), f"metadata value of {key!r} is not ASCII"
            bad = sorted({c for c in value if not " " <= c <= "~"})
            assert not bad, f"metadata value of {key!r} holds control characters {bad!r}"
            assert value == value.strip(" "), f"metadata value of {key!r} has surrounding spaces"

    def test_encode_is_deterministic(self, fmt: Format, envelope: Envelope, encoded: dict[str, str]) -> None:
        """Encoding the same envelope twice gives the same metadata."""
        assert fmt.encode(envelope) == encoded

    # ----------------------------------------------------------------------------------------- round trip

    def test_round_trip(self, fmt: Format, envelope: Envelope, encoded: dict[str, str]) -> None:
        """``decode(encode(envelope))`` equals ``envelope`` on every field the format carries."""
        decoded = fmt.decode(encoded)
        assert isinstance(decoded, Envelope)
        assert _fields(decoded, self.ignored_fields) == _fields(envelope, self.ignored_fields)

    def test_decoded_envelope_names_the_format(self, fmt: Format, encoded: dict[str, str]) -> None:
        """The decoded envelope's ``format`` is the format's name."""
        assert fmt.decode(encoded).format == fmt.name

    def test_reencoding_is_stable(self, fmt: Format, encoded: dict[str, str]) -> None:
        """Encoding a decoded envelope gives back the same metadata."""
        assert fmt.encode(fmt.decode(encoded)) == encoded

    def test_decode_takes_any_mapping_and_leaves_it_alone(self, fmt: Format, encoded: dict[str, str]) -> None:
        """``decode`` accepts a read-only mapping, and ignores unrelated user metadata beside its own."""
        expected = fmt.decode(encoded)
        assert fmt.decode(MappingProxyType(dict(encoded))) == expected
        mixed = {"content-type": "application/octet-stream", "owner": "alice", **encoded}
        assert fmt.detect(mixed)
        assert fmt.decode(mixed) == expected

    # --------------------------------------------------------------------------------------------- detect

    def test_detects_its_own_encoding(self, fmt: Format, encoded: dict[str, str]) -> None:
        """``detect`` is true for what ``encode`` wrote."""
        assert fmt.detect(encoded)
        assert fmt.detect(MappingProxyType(dict(encoded)))

    def test_does_not_detect_unrelated_metadata(
        self, fmt: Format, unrelated_metadata: list[dict[str, str]]
    ) -> None:
        """``detect`` is false for ``{}`` and for metadata of other kinds."""
        assert not fmt.detect({})
        for metadata in unrelated_metadata:
            assert not fmt.detect(metadata), f"{fmt.name} claims unrelated metadata {sorted(metadata)}"

    def test_decode_of_empty_metadata_is_a_metadata_error(self, fmt: Format) -> None:
        """``decode({})`` raises :class:`MetadataError`."""
        with pytest.raises(MetadataError):
            fmt.decode({})

    # ------------------------------------------------------------------------------------ damaged metadata

    def test_removing_any_key_fails(self, fmt: Format, encoded: dict[str, str]) -> None:
        """Without any one of its keys the metadata is a MetadataError, or no longer detected."""
        for key in encoded:
            damaged = {k: v for k, v in encoded.items() if k != key}
            outcome = _decode_outcome(fmt, damaged, f"metadata without {key!r}")
            if key not in self.optional_keys:
                assert outcome != "decoded", f"{fmt.name} decodes metadata without {key!r}"

    def test_garbage_values_fail(self, fmt: Format, encoded: dict[str, str]) -> None:
        """Garbage in any one value is a MetadataError (never another exception), or not detected."""
        for key in encoded:
            for garbage in self.garbage_values:
                if garbage == encoded[key]:
                    continue
                damaged = {**encoded, key: garbage}
                outcome = _decode_outcome(fmt, damaged, f"{key}={garbage!r}")
                if key not in self.lenient_keys:
                    assert outcome != "decoded", f"{fmt.name} decodes {key}={garbage!r}"
