"""Key URIs of the local-key providers (``rsa``, ``aes``): one parser, one syntax.

::

    SCHEME:///ABSOLUTE/PATH/key[?PARAM=VALUE&...]

The path names a key file; parameters apply to the key file named last before them, so that ``also=`` can
add more key files (key rotation). Every scheme takes ``matdesc=`` (a URL-encoded JSON object of strings),
``desc=NAME=VALUE`` (one material-description entry, repeatable) and ``also=/ABSOLUTE/PATH``; a scheme may
add options of its own that appear at most once per key file (``rsa`` adds ``passphrase-env=``).
``SCHEME://localhost/ABSOLUTE/PATH`` is accepted too; ``SCHEME://relative/key`` is not (``relative`` would be
a host name).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from cse.exceptions import ConfigurationError

__all__ = ["KeyFileSpec", "parse_key_uri", "uri_help"]

#: The parameters every local-key URI takes, after the scheme's own options.
COMMON_PARAMS = ("matdesc", "desc", "also")

#: Checks one value of a scheme-specific option: ``(value, key file path)``; raises ConfigurationError.
OptionCheck = Callable[[str, str], None]


@dataclass
class KeyFileSpec:
    """One key file a key URI names, with its options and material description."""

    path: str
    options: dict[str, str] = field(default_factory=dict)
    material_description: dict[str, str] = field(default_factory=dict)


def uri_help(scheme: str, example_file: str) -> str:
    """The one-line syntax reminder that error messages end with."""
    return f"{scheme}:///absolute/path/{example_file} (three slashes, then an absolute path)"


def _local_path(raw: str, uri: str, what: str, help_text: str) -> str:
    path = unquote(raw)
    if os.name == "nt" and re.match(r"^/[A-Za-z]:[/\\]", path):
        path = path[1:]
    if not path:
        raise ConfigurationError(f"the key URI {uri!r} names no key file; write {help_text}")
    if "\x00" in path or not os.path.isabs(path):
        raise ConfigurationError(
            f"the key URI {uri!r} gives {what} {path!r}, which is not an absolute path; write {help_text}"
        )
    return path


def _material_description_json(value: str, path: str) -> dict[str, str]:
    try:
        parsed = json.loads(value)
    except ValueError:
        raise ConfigurationError(
            f"matdesc= in the key URI for key file {path} is not JSON; give a URL-encoded JSON "
            f"object of strings, such as matdesc=%7B%22v%22%3A%221%22%7D"
        ) from None
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
    ):
        raise ConfigurationError(
            f"matdesc= in the key URI for key file {path} must be a JSON object of strings"
        )
    return parsed


def parse_key_uri(
    uri: str,
    *,
    scheme: str,
    example_file: str,
    options: Mapping[str, OptionCheck] | None = None,
) -> list[KeyFileSpec]:
    """Parse a local-key URI of ``scheme`` into its key files, the first one first.

    ``options`` are the scheme's own parameters (each at most once per key file) and their checks.
    Raises :class:`~cse.exceptions.ConfigurationError` naming what is wrong (never reading any file).
    """
    own = dict(options or {})
    help_text = uri_help(scheme, example_file)
    if not isinstance(uri, str):
        raise ConfigurationError(f"a key URI is a string, not {type(uri).__name__}")
    parts = urlsplit(uri)
    if parts.scheme.lower() != scheme:
        raise ConfigurationError(f"{uri!r} is not an {scheme} key URI; write {help_text}")
    if parts.netloc not in ("", "localhost"):
        raise ConfigurationError(
            f"the key URI {uri!r} reads {parts.netloc!r} as a host name; {scheme} key URIs take an absolute "
            f"path: {help_text}"
        )
    if parts.fragment:
        raise ConfigurationError(f"the key URI {uri!r} has a '#' fragment; percent-encode '#' as %23")
    specs = [KeyFileSpec(_local_path(parts.path, uri, "the key file", help_text))]
    try:
        params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ConfigurationError(
            f"the query of the key URI {uri!r} is malformed; it is NAME=VALUE pairs joined by '&'"
        ) from None
    for name, value in params:
        spec = specs[-1]
        if name == "also":
            specs.append(KeyFileSpec(_local_path(value, uri, "the key file also=", help_text)))
        elif name in own:
            own[name](value, spec.path)
            if name in spec.options:
                raise ConfigurationError(f"the key URI gives {name} twice for key file {spec.path}")
            spec.options[name] = value
        elif name == "matdesc":
            spec.material_description.update(_material_description_json(value, spec.path))
        elif name == "desc":
            key, sep, val = value.partition("=")
            if not sep or not key:
                raise ConfigurationError(
                    f"desc={value!r} in the key URI for key file {spec.path} is not NAME=VALUE "
                    f"(percent-encode '=' in the value as %3D)"
                )
            spec.material_description[key] = val
        else:
            known = ", ".join((*own, *COMMON_PARAMS))
            raise ConfigurationError(
                f"unknown parameter {name!r} in the key URI {uri!r}; {scheme} key URIs take {known}"
            )
    return specs
