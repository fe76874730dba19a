"""The shared conformance suite of the :class:`~cse.providers.KeyProvider` contract.

Every built-in key provider passes it, and a third-party provider can run it (it needs pytest)::

    import pytest
    from cse.testing.providers import KeyProviderConformance

    class TestMyProvider(KeyProviderConformance):
        @pytest.fixture
        def provider(self):
            return MyProvider(...)

The suite checks, for every writable wrap algorithm of the provider and every content algorithm: fresh data
keys unwrap to their plaintext; 16- and 32-byte secrets round-trip; a damaged wrapped key fails with exactly
:class:`~cse.exceptions.DecryptionError` and its opaque message; a changed encryption context, material
description or content algorithm fails where the wrap algorithm binds it; ``repr`` and ``str`` never show
a plaintext key; 8 threads can share the provider; :meth:`~cse.providers.KeyProvider.can_unwrap` accepts
the provider's own wrapped keys and rejects other wrap algorithms and schemes.

Override these fixtures to adapt it:

``provider`` (required)
    the provider under test; it must be able to wrap and unwrap.
``wrap_algorithms``
    the wrap algorithms to test; default: the provider's minus its ``unwrap_only_algorithms``.
``content_algorithms``
    the content algorithms to pair them with; default: :data:`DEFAULT_CONTENT_ALGORITHMS`.
``encryption_context``
    the encryption context of the requests.
``bindings``
    per wrap algorithm, which request fields (``"encryption_context"``, ``"material_description"``,
    ``"content_algorithm"``) it authenticates; default: :data:`DEFAULT_BINDINGS`.
``unauthenticated_wrap_algorithms``
    wrap algorithms that cannot detect a damaged ciphertext (RSA PKCS#1 v1.5 with implicit rejection):
    for them a damaged wrapped key must fail opaquely or unwrap to a different secret.
``key_requests``
    the :class:`~cse.providers.KeyRequest` templates every test runs; default: every pair of the above.

The tests loop over the requests inside each test (the provider is a fixture, so the algorithms it offers
are known only when the test runs); a failure names the wrap and content algorithm.
"""

from __future__ import annotations

import base64
import dataclasses
import threading
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from cse.envelope import ContentAlgorithm, WrapAlgorithm, WrappedKey
from cse.exceptions import AUTHENTICATION_FAILED, ConfigurationError, CseError, DecryptionError
from cse.providers import DataKey, KeyProvider, KeyRequest

__all__ = [
    "DEFAULT_BINDINGS",
    "DEFAULT_CONTENT_ALGORITHMS",
    "UNAUTHENTICATED_WRAP_ALGORITHMS",
    "KeyProviderConformance",
]

#: The content algorithms the suite pairs with every wrap algorithm by default.
DEFAULT_CONTENT_ALGORITHMS: tuple[str, ...] = (
    ContentAlgorithm.CSE_V1,
    ContentAlgorithm.AES_GCM_COMMITTING,
    ContentAlgorithm.AES_GCM,
    ContentAlgorithm.AES_CTR,
)

#: The request fields each wrap algorithm authenticates, as the formats define them.
DEFAULT_BINDINGS: Mapping[str, frozenset[str]] = {
    WrapAlgorithm.RSA_OAEP_SHA256: frozenset({"material_description"}),
    WrapAlgorithm.RSA_OAEP_SHA1: frozenset({"content_algorithm"}),
    WrapAlgorithm.AES_GCM: frozenset({"content_algorithm"}),
    WrapAlgorithm.KMS_CONTEXT: frozenset({"encryption_context"}),
}

#: Wrap algorithms that cannot detect a damaged ciphertext.
UNAUTHENTICATED_WRAP_ALGORITHMS: frozenset[str] = frozenset({WrapAlgorithm.RSA_PKCS1})

_NO_SUCH_ALGORITHM = "cse-conformance/no-such-wrap-algorithm"
_THREADS = 8
_ROUNDS_PER_THREAD = 4


def _name(request: KeyRequest) -> str:
    return f"[wrap {request.wrap_algorithm}, content {request.content_algorithm}]"


def _flips(length: int) -> list[tuple[int, int]]:
    """(byte index, bit mask) pairs: first, second, middle, second to last and last byte."""
    positions = sorted({0, min(1, length - 1), length // 2, max(length - 2, 0), length - 1})
    return [(i, 1 << (i % 8)) for i in positions]


def _flip(data: bytes, index: int, mask: int) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


def _spellings(secret: bytes) -> list[str]:
    """Ways a secret could leak into text: hex, base64, urlsafe base64, and Python's bytes repr."""
    b64 = base64.b64encode(secret).decode("ascii")
    return [
        secret.hex(),
        secret.hex().upper(),
        b64.rstrip("="),
        base64.urlsafe_b64encode(secret).decode("ascii").rstrip("="),
        repr(secret)[2:-1],
    ]


def _assert_opaque(exc: BaseException, where: str) -> None:
    assert type(exc) is DecryptionError, f"{where}: raised {type(exc).__name__}, not exactly DecryptionError"
    assert str(exc) == AUTHENTICATION_FAILED, f"{where}: the DecryptionError message is not the opaque one"


class KeyProviderConformance:
    """Tests every :class:`~cse.providers.KeyProvider` must pass. Subclass it and override ``provider``."""

    # -- fixtures to override ----------------------------------------------------------------------------

    @pytest.fixture
    def provider(self) -> KeyProvider:
        """The provider under test. Override this fixture."""
        raise NotImplementedError("override the `provider` fixture of KeyProviderConformance")

    @pytest.fixture
    def wrap_algorithms(self, provider: KeyProvider) -> Sequence[str]:
        """The wrap algorithms to test: the provider's, minus the ones it only unwraps."""
        return [a for a in provider.wrap_algorithms if a not in provider.unwrap_only_algorithms]

    @pytest.fixture
    def content_algorithms(self) -> Sequence[str]:
        """The content algorithms to pair with each wrap algorithm."""
        return DEFAULT_CONTENT_ALGORITHMS

    @pytest.fixture
    def encryption_context(self) -> Mapping[str, str]:
        """The encryption context of every request."""
        return {"purpose": "cse-conformance", "object": "bucket/some/key"}

    @pytest.fixture
    def bindings(self) -> Mapping[str, Collection[str]]:
        """Per wrap algorithm, the request fields it authenticates."""
        return DEFAULT_BINDINGS

    @pytest.fixture
    def unauthenticated_wrap_algorithms(self) -> Collection[str]:
        """Wrap algorithms that cannot detect a damaged ciphertext."""
        return UNAUTHENTICATED_WRAP_ALGORITHMS

    @pytest.fixture
    def key_requests(
        self,
        provider: KeyProvider,
        wrap_algorithms: Sequence[str],
        content_algorithms: Sequence[str],
        encryption_context: Mapping[str, str],
    ) -> list[KeyRequest]:
        """The wrap requests every test runs: each wrap algorithm with each content algorithm."""
        return [
            KeyRequest(
                wrap_algorithm=wrap,
                content_algorithm=content,
                encryption_context=dict(encryption_context),
                material_description=dict(provider.material_description),
            )
            for wrap in wrap_algorithms
            for content in content_algorithms
        ]

    # -- helpers -----------------------------------------------------------------------------------------

    @staticmethod
    def unwrap_request(request: KeyRequest, data_key: DataKey | None = None, **changes: object) -> KeyRequest:
        """The request a reader builds to unwrap what ``request`` wrapped (with the recorded key id)."""
        key_id = data_key.key_id if data_key is not None else None
        return dataclasses.replace(request, key_id=key_id, **changes)  # type: ignore[arg-type]

    @staticmethod
    def _changed(request: KeyRequest, field: str) -> dict[str, object]:
        if field == "encryption_context":
            return {"encryption_context": {**request.encryption_context, "cse-conformance": "changed"}}
        if field == "material_description":
            return {"material_description": {**request.material_description, "cse-conformance": "changed"}}
        candidates = (*DEFAULT_CONTENT_ALGORITHMS, "cse-conformance/other")
        other = next(a for a in candidates if a != request.content_algorithm)
        return {"content_algorithm": other}

    # -- tests -------------------------------------------------------------------------------------------

    def test_declares_scheme_and_algorithms(
        self, provider: KeyProvider, wrap_algorithms: Sequence[str]
    ) -> None:
        """The provider names its scheme and wrap algorithms, and can wrap with at least one."""
        assert isinstance(provider, KeyProvider)
        assert provider.scheme, "KeyProvider.scheme is empty"
        assert provider.wrap_algorithms, "KeyProvider.wrap_algorithms is empty"
        assert set(provider.unwrap_only_algorithms) <= set(provider.wrap_algorithms)
        assert wrap_algorithms, "no wrap algorithm to test"
        assert isinstance(provider.key_id, str)
        for k, v in provider.material_description.items():
            assert isinstance(k, str), "a material description maps strings to strings"
            assert isinstance(v, str), "a material description maps strings to strings"
        assert provider.can_encrypt, "the conformance suite needs a provider that can wrap"
        assert isinstance(provider.describe(), str)
        assert "\n" not in provider.describe()

    def test_generate_data_key(self, provider: KeyProvider, key_requests: list[KeyRequest]) -> None:
        """generate_data_key returns 32 fresh bytes and a ciphertext that unwraps to them."""
        for request in key_requests:
            first = provider.generate_data_key(request)
            second = provider.generate_data_key(request)
            where = _name(request)
            assert isinstance(first, DataKey), where
            assert isinstance(first.plaintext, bytes), where
            assert len(first.plaintext) == 32, where
            assert isinstance(first.ciphertext, bytes), where
            assert first.ciphertext, where
            assert first.ciphertext != first.plaintext, where
            assert first.plaintext != second.plaintext, f"{where}: two data keys are equal"
            for key in (first, second):
                unwrapped = provider.unwrap(key.ciphertext, self.unwrap_request(request, key))
                assert unwrapped == key.plaintext, where

    @pytest.mark.parametrize("size", [16, 32])
    def test_wrap_unwrap_round_trip(
        self, provider: KeyProvider, key_requests: list[KeyRequest], size: int
    ) -> None:
        """wrap then unwrap gives the secret back (16 bytes: an OSS IV; 32: a content key)."""
        for i, request in enumerate(key_requests):
            secret = bytes((i * 7 + j * 13 + size) % 256 for j in range(size))
            wrapped = provider.wrap(secret, request)
            where = _name(request)
            assert isinstance(wrapped, bytes), where
            assert wrapped, where
            assert secret not in wrapped, where
            key = DataKey(plaintext=secret, ciphertext=wrapped, key_id=provider.key_id)
            assert provider.unwrap(wrapped, self.unwrap_request(request, key)) == secret, where

    def test_tampered_ciphertext_fails_opaquely(
        self,
        provider: KeyProvider,
        key_requests: list[KeyRequest],
        unauthenticated_wrap_algorithms: Collection[str],
    ) -> None:
        """Each of several bit flips, and truncation, fails with exactly DecryptionError and its message."""
        for request in key_requests:
            key = provider.generate_data_key(request)
            damaged = [_flip(key.ciphertext, i, m) for i, m in _flips(len(key.ciphertext))]
            damaged.append(key.ciphertext[:-1])
            for n, ciphertext in enumerate(damaged):
                where = f"{_name(request)} damage #{n}"
                try:
                    result = provider.unwrap(ciphertext, self.unwrap_request(request, key))
                except DecryptionError as exc:
                    _assert_opaque(exc, where)
                else:
                    assert request.wrap_algorithm in unauthenticated_wrap_algorithms, (
                        f"{where}: a damaged wrapped key unwrapped without error"
                    )
                    assert result != key.plaintext, f"{where}: a damaged wrapped key unwrapped to the key"

    @pytest.mark.parametrize("field", ["encryption_context", "material_description", "content_algorithm"])
    def test_bound_fields_are_authenticated(
        self,
        provider: KeyProvider,
        key_requests: list[KeyRequest],
        bindings: Mapping[str, Collection[str]],
        field: str,
    ) -> None:
        """Unwrapping with a changed field fails where the wrap algorithm binds that field."""
        bound = [r for r in key_requests if field in bindings.get(r.wrap_algorithm, ())]
        if not bound:
            pytest.skip(f"no tested wrap algorithm binds the {field.replace('_', ' ')}")
        for request in bound:
            key = provider.generate_data_key(request)
            changed = self.unwrap_request(request, key, **self._changed(request, field))
            with pytest.raises(DecryptionError) as info:
                provider.unwrap(key.ciphertext, changed)
            if type(info.value) is DecryptionError:
                _assert_opaque(info.value, _name(request))
            for spelling in _spellings(key.plaintext):
                assert spelling not in str(info.value), f"{_name(request)}: the error shows the key"

    def test_repr_never_shows_keys(self, provider: KeyProvider, key_requests: list[KeyRequest]) -> None:
        """repr and str of DataKey and of the provider never contain a plaintext key (raw, hex or base64)."""
        keys = [provider.generate_data_key(request) for request in key_requests]
        texts = [repr(provider), str(provider), provider.describe()]
        for key in keys:
            texts += [repr(key), str(key)]
        for key in keys:
            for spelling in _spellings(key.plaintext):
                for text in texts:
                    assert spelling not in text, "a plaintext key shows in a repr or str"
        for text in texts:
            assert "PRIVATE KEY" not in text, "private key material shows in a repr or str"

    def test_concurrent_use(self, provider: KeyProvider, key_requests: list[KeyRequest]) -> None:
        """Eight threads generate and unwrap keys at once, and every key comes back intact."""
        barrier = threading.Barrier(_THREADS)

        def work(worker: int) -> list[bytes]:
            barrier.wait(timeout=60)
            made: list[bytes] = []
            for r in range(_ROUNDS_PER_THREAD):
                request = key_requests[(worker + r) % len(key_requests)]
                key = provider.generate_data_key(request)
                assert provider.unwrap(key.ciphertext, self.unwrap_request(request, key)) == key.plaintext
                made.append(key.plaintext)
            return made

        with ThreadPoolExecutor(max_workers=_THREADS) as pool:
            results = list(pool.map(work, range(_THREADS)))
        plaintexts = [p for batch in results for p in batch]
        assert len(plaintexts) == _THREADS * _ROUNDS_PER_THREAD
        assert len(set(plaintexts)) == len(plaintexts), "threads received the same data key"

    def test_can_unwrap_own_keys(self, provider: KeyProvider, key_requests: list[KeyRequest]) -> None:
        """can_unwrap accepts what the provider wrapped, as a format records it."""
        for request in key_requests:
            key = provider.generate_data_key(request)
            wrapped = WrappedKey(
                wrap_algorithm=request.wrap_algorithm,
                ciphertext=key.ciphertext,
                key_id=key.key_id,
                provider=provider.scheme,
                material_description=dict(request.material_description),
            )
            assert provider.can_unwrap(wrapped), f"{_name(request)}: can_unwrap refuses its own key"

    def test_can_unwrap_rejects_others(self, provider: KeyProvider, key_requests: list[KeyRequest]) -> None:
        """can_unwrap rejects another wrap algorithm and another provider scheme."""
        request = key_requests[0]
        key = provider.generate_data_key(request)
        own = WrappedKey(
            wrap_algorithm=request.wrap_algorithm,
            ciphertext=key.ciphertext,
            key_id=key.key_id,
            provider=provider.scheme,
            material_description=dict(request.material_description),
        )
        known = [v for k, v in vars(WrapAlgorithm).items() if not k.startswith("_") and isinstance(v, str)]
        others = [a for a in known if a not in provider.wrap_algorithms]
        for algorithm in [_NO_SUCH_ALGORITHM, *others]:
            assert not provider.can_unwrap(own.model_copy(update={"wrap_algorithm": algorithm})), algorithm
        other_scheme = own.model_copy(update={"provider": provider.scheme + "-other"})
        assert not provider.can_unwrap(other_scheme), "can_unwrap accepts another provider's key"

    def test_unknown_wrap_algorithm_is_refused(
        self, provider: KeyProvider, key_requests: list[KeyRequest]
    ) -> None:
        """wrap and unwrap refuse an unknown wrap algorithm with a CseError."""
        request = dataclasses.replace(key_requests[0], wrap_algorithm=_NO_SUCH_ALGORITHM)
        with pytest.raises(CseError):
            provider.wrap(bytes(32), request)
        with pytest.raises(CseError):
            provider.unwrap(bytes(256), request)

    def test_unwrap_only_algorithms_refuse_wrap(
        self, provider: KeyProvider, key_requests: list[KeyRequest]
    ) -> None:
        """wrap refuses an unwrap-only (legacy) algorithm with a ConfigurationError."""
        if not provider.unwrap_only_algorithms:
            pytest.skip("the provider has no unwrap-only wrap algorithm")
        for algorithm in provider.unwrap_only_algorithms:
            request = dataclasses.replace(key_requests[0], wrap_algorithm=algorithm)
            with pytest.raises(ConfigurationError):
                provider.wrap(bytes(32), request)
