"""The plugin registry: stores, formats and key providers by scheme or name.

Plugins are found through the entry-point groups ``cse.stores``, ``cse.formats`` and ``cse.providers``
(the entry point's name is the URL scheme or format name) and imported only when first asked for, so
``cse --help`` imports no cloud SDK. :func:`register_store`, :func:`register_format` and
:func:`register_provider` add plugins at run time; they win over entry points of the same name.
"""

from __future__ import annotations

import threading
from importlib import metadata
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cse.exceptions import MissingExtraError, UnknownSchemeError
from cse.formats.base import Format
from cse.providers import KeyProvider
from cse.stores.base import Store

__all__ = [
    "all_formats",
    "available_formats",
    "available_providers",
    "available_stores",
    "get_format",
    "open_provider",
    "open_store",
    "provider_class",
    "register_format",
    "register_provider",
    "register_store",
    "refresh",
    "store_class",
]

STORE_GROUP = "cse.stores"
FORMAT_GROUP = "cse.formats"
PROVIDER_GROUP = "cse.providers"

#: Plugins cse knows of but that live in other distributions: name -> (distribution, extra).
_KNOWN: dict[str, dict[str, tuple[str, str]]] = {
    STORE_GROUP: {"s3": ("cse-s3", "cse[aws]"), "oss": ("cse-oss", "cse[aliyun]")},
    FORMAT_GROUP: {
        **{name: ("cse-s3", "cse[aws]") for name in ("s3-v3", "s3-v2", "s3-v1")},
        **{name: ("cse-oss", "cse[aliyun]") for name in ("oss-v2", "oss-v1")},
    },
    PROVIDER_GROUP: {
        "rsa": ("cse-rsa", "cse[rsa]"),
        "aes": ("cse-rsa", "cse[rsa]"),
        "aws-kms": ("cse-aws-kms", "cse[aws]"),
        "aliyun-kms": ("cse-aliyun-kms", "cse[aliyun]"),
    },
}
_WHAT = {STORE_GROUP: "store URL scheme", FORMAT_GROUP: "format", PROVIDER_GROUP: "key URI scheme"}

_lock = threading.Lock()
_runtime: dict[str, dict[str, Any]] = {STORE_GROUP: {}, FORMAT_GROUP: {}, PROVIDER_GROUP: {}}
_loaded: dict[str, dict[str, Any]] = {STORE_GROUP: {}, FORMAT_GROUP: {}, PROVIDER_GROUP: {}}

T = TypeVar("T")


_found: dict[str, dict[str, metadata.EntryPoint]] = {}


def _entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    # Scanning every installed distribution's entry points costs milliseconds; every read detects its
    # format through them, so the scan is done once per group (:func:`refresh` forgets it).
    found = _found.get(group)
    if found is None:
        found = {ep.name: ep for ep in metadata.entry_points(group=group)}
        with _lock:
            _found[group] = found
    return found


def refresh() -> None:
    """Forget the plugins found so far, so that distributions installed since are seen."""
    with _lock:
        _found.clear()


def _names(group: str) -> list[str]:
    return sorted(set(_entry_points(group)) | set(_runtime[group]))


def _load(group: str, name: str) -> Any:
    with _lock:
        if name in _runtime[group]:
            return _runtime[group][name]
        if name in _loaded[group]:
            return _loaded[group][name]
    ep = _entry_points(group).get(name)
    if ep is None:
        known = _KNOWN[group].get(name)
        if known is not None:
            dist, extra = known
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                raise MissingExtraError(
                    f"the {_WHAT[group]} {name!r} needs the {dist} distribution, which is not installed; "
                    f"install it with: pip install '{extra}'"
                ) from None
            raise MissingExtraError(
                f"the {_WHAT[group]} {name!r} needs a {dist} that provides it, and the installed {dist} "
                f"{version} does not; upgrade it with: pip install --upgrade '{extra}'"
            )
        raise UnknownSchemeError(
            f"unknown {_WHAT[group]} {name!r}; available: {', '.join(_names(group)) or 'none'}"
        )
    try:
        obj = ep.load()
    except ImportError as exc:
        dist = ep.dist.name if ep.dist is not None else name
        raise MissingExtraError(
            f"the {_WHAT[group]} {name!r} could not be imported ({exc}); "
            f"reinstall {dist} and its dependencies"
        ) from exc
    with _lock:
        _loaded[group][name] = obj
    return obj


def register_store(scheme: str, cls: type[Store]) -> None:
    """Register a store class for a URL scheme at run time."""
    with _lock:
        _runtime[STORE_GROUP][scheme] = cls


def register_format(name: str, cls: type[Format]) -> None:
    """Register a format class at run time."""
    with _lock:
        _runtime[FORMAT_GROUP][name] = cls


def register_provider(scheme: str, cls: type[KeyProvider]) -> None:
    """Register a key provider class for a key URI scheme at run time."""
    with _lock:
        _runtime[PROVIDER_GROUP][scheme] = cls


def available_stores() -> list[str]:
    """The store URL schemes that are installed or registered."""
    return _names(STORE_GROUP)


def available_formats() -> list[str]:
    """The format names that are installed or registered."""
    return _names(FORMAT_GROUP)


def available_providers() -> list[str]:
    """The key URI schemes that are installed or registered."""
    return _names(PROVIDER_GROUP)


def _scheme(url: str, what: str) -> str:
    scheme = urlsplit(url).scheme
    if not scheme or "://" not in url:
        raise UnknownSchemeError(f"{url!r} is not a {what} (expected SCHEME://...)")
    return scheme.lower()


def store_class(scheme: str) -> type[Store]:
    """The store class of a URL scheme."""
    cls: type[Store] = _load(STORE_GROUP, scheme)
    return cls


def provider_class(scheme: str) -> type[KeyProvider]:
    """The key provider class of a key URI scheme."""
    cls: type[KeyProvider] = _load(PROVIDER_GROUP, scheme)
    return cls


def open_store(url: str) -> tuple[Store, str]:
    """Open the store a URL names (``file:///dir/key``, ``memory://bucket/key``, ``s3://bucket/key`` ...).

    Returns the store and the key or prefix part of the URL.
    """
    return store_class(_scheme(url, "store URL")).from_url(url)


def open_provider(uri: str) -> KeyProvider:
    """Build the key provider a key URI names (``rsa:///path/key.pem``, ``aws-kms://alias/x`` ...)."""
    return provider_class(_scheme(uri, "key URI")).from_uri(uri)


def get_format(name: str) -> Format:
    """An instance of the named format."""
    cls: type[Format] = _load(FORMAT_GROUP, name)
    return cls()


def all_formats() -> list[Format]:
    """Instances of every installed format that can be imported (for detection on read)."""
    found: list[Format] = []
    for name in _names(FORMAT_GROUP):
        try:
            found.append(get_format(name))
        except MissingExtraError:
            continue
    return found
