"""What the local key providers (``rsa``, ``aes``) share: a set of keys, the first of which wraps, selected
for unwrapping by key id or material description."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from cse.envelope import WrappedKey
from cse.exceptions import ConfigurationError, NoMatchingKeyError
from cse.providers import KeyProvider, KeyRequest
from cse_rsa.keys import canonical_material_description

__all__ = ["LocalKey", "LocalKeySetProvider"]


class LocalKey(Protocol):
    """What a key of a local key set offers."""

    @property
    def key_id(self) -> str:
        """The key's identifier."""
        ...

    @property
    def material_description(self) -> Mapping[str, str]:
        """The key's material description."""
        ...

    def matches(self, material_description: Mapping[str, str]) -> bool:
        """Whether ``material_description`` selects this key."""
        ...


K = TypeVar("K", bound=LocalKey)


class LocalKeySetProvider(KeyProvider, Generic[K]):
    """A key provider over a set of local keys: the first wraps; any the object selects unwraps.

    Subclasses set :attr:`_key_class`, :attr:`_kind` and :attr:`_load_hint`, and implement ``wrap`` and
    ``unwrap`` with :meth:`_wrapping_key` and :meth:`_unwrapping_keys`.
    """

    #: The key class the set holds.
    _key_class: ClassVar[type[Any]]
    #: How messages name a key ("RSA", "AES").
    _kind: ClassVar[str]
    #: How to load a key, for the error that names a wrong argument.
    _load_hint: ClassVar[str]

    def __init__(self, keys: K | Iterable[K]) -> None:
        """Use ``keys`` (one key or several, the first wraps); raise ConfigurationError if there are none."""
        name = self._key_class.__name__
        chosen = (cast(K, keys),) if isinstance(keys, self._key_class) else tuple(cast(Iterable[K], keys))
        if not chosen:
            raise ConfigurationError(f"an {self.scheme} key provider needs at least one {name}")
        for key in chosen:
            if not isinstance(key, self._key_class):
                raise ConfigurationError(
                    f"an {self.scheme} key provider takes {name} objects, not {type(key).__name__} "
                    f"({self._load_hint})"
                )
        self._keys: tuple[K, ...] = chosen

    @property
    def keys(self) -> tuple[K, ...]:
        """The keys, the wrapping key first."""
        return self._keys

    @property
    def key_id(self) -> str:
        """The key id of the wrapping (first) key: ``sha256:`` and 32 hex digits."""
        return self._keys[0].key_id

    @property
    def material_description(self) -> Mapping[str, str]:
        """The material description of the wrapping (first) key."""
        return self._keys[0].material_description

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={list(self._keys)!r})"

    def _check_algorithm(self, algorithm: str) -> None:
        if algorithm not in self.wrap_algorithms:
            raise ConfigurationError(
                f"the {self.scheme} key provider does not implement the wrap algorithm {algorithm!r}; it "
                f"implements {', '.join(self.wrap_algorithms)}"
            )

    def _select(self, key_id: str | None, material_description: Mapping[str, str]) -> list[K]:
        if key_id is not None:
            return [key for key in self._keys if key.key_id == key_id]
        return [key for key in self._keys if key.matches(material_description)]

    def _inventory(self) -> str:
        return "; ".join(
            f"{k.key_id} {canonical_material_description(k.material_description)}" for k in self._keys
        )

    def can_unwrap(self, wrapped: WrappedKey) -> bool:
        """Whether ``wrapped`` uses one of our wrap algorithms and its key id (else material description)
        selects one of our keys."""
        if not super().can_unwrap(wrapped):
            return False
        return bool(self._select(wrapped.key_id, wrapped.material_description))

    def _wrapping_key(self, request: KeyRequest) -> K:
        """The first key, once the request's algorithm and material description fit it.

        ``request.material_description`` must be the wrapping key's (the one the format records), else the
        object could not select its key again: that is a ConfigurationError.
        """
        self._check_algorithm(request.wrap_algorithm)
        key = self._keys[0]
        if not key.matches(request.material_description):
            asked = canonical_material_description(request.material_description)
            own = canonical_material_description(key.material_description)
            raise ConfigurationError(
                f"the material description to record, {asked}, is not the one of the wrapping {self._kind} "
                f"key {key.key_id}, {own}; pass the provider's material_description in the KeyRequest"
            )
        return key

    def _unwrapping_keys(self, request: KeyRequest) -> list[K]:
        """The keys ``request.key_id`` (else its material description) selects; NoMatchingKeyError if none."""
        self._check_algorithm(request.wrap_algorithm)
        selected = self._select(request.key_id, request.material_description)
        if not selected:
            asked = (
                f"key id {request.key_id}"
                if request.key_id is not None
                else f"material description {canonical_material_description(request.material_description)}"
            )
            raise NoMatchingKeyError(
                f"no key of this {self.scheme} key provider matches the {asked}; the provider has: "
                f"{self._inventory()}"
            )
        return selected
