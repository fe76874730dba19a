"""Defaults for the ``cse`` command from the environment and from a config file of named profiles.

Precedence, as in the AWS CLI: an option on the command line, then its environment variable, then the
profile, then the built-in default.

* **Environment.** Every option ``--NAME`` of every command reads ``CSE_NAME`` (upper case, ``-`` as
  ``_``): ``CSE_KEY``, ``CSE_TO_KEY``, ``CSE_FORMAT``, ``CSE_CONTEXT``, ``CSE_WORKERS`` ... Options that
  repeat take several values separated by spaces (``CSE_CONTEXT="app=billing team=data"``).
* **Config file.** ``CSE_CONFIG`` or ``--config`` names it; else ``$XDG_CONFIG_HOME/cse/config.toml``
  (``~/.config/cse/config.toml``). A missing default file is no error; a missing named one is.

  .. code-block:: toml

      [profiles.default]          # used when no --profile / CSE_PROFILE is given
      key = "rsa:///keys/dev.pem"

      [profiles.archive]
      key = ["aws-kms://alias/archive", "rsa:///keys/old.pem"]
      to-key = "aliyun-kms://cn-hangzhou/alias/archive"
      context = ["app=billing"]
      workers = 8
      oss-endpoint = "https://oss-cn-hangzhou.aliyuncs.com"   # store settings: see STORE_SETTINGS

  A profile's entries are option names without the dashes, and apply to every command that has that
  option, or store settings (:data:`STORE_SETTINGS`), which become the SDKs' environment variables unless
  those are set already. Credentials do not belong here: the SDKs' own files and roles hold them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

__all__ = [
    "STORE_SETTINGS",
    "WEAKENING_OPTIONS",
    "apply_environment",
    "default_config_path",
    "load_profile",
    "set_envvars",
]

#: Profile entries that configure stores and key services: entry -> the environment variable it sets.
STORE_SETTINGS: dict[str, str] = {
    "aws-profile": "AWS_PROFILE",
    "aws-region": "AWS_REGION",
    "s3-endpoint-url": "AWS_ENDPOINT_URL_S3",
    "kms-endpoint-url": "AWS_ENDPOINT_URL_KMS",
    "oss-endpoint": "OSS_ENDPOINT",
    "oss-region": "OSS_REGION",
    "aliyun-kms-endpoint": "CSE_ALIYUN_KMS_ENDPOINT",
}

#: Opt-ins that weaken security: they are given on the command line each time, never by an environment
#: variable or a profile, so that a forgotten default cannot switch a check off for every later run.
WEAKENING_OPTIONS = frozenset(
    {"allow-legacy", "delayed-authentication", "allow-unauthenticated-ranges", "allow-cse-only"}
)
#: Options that read no environment variable (they choose the config file and profile themselves, or weaken
#: security).
_NO_ENVVAR = {"help", "version", "config", "profile"} | WEAKENING_OPTIONS


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/cse/config.toml``, or ``~/.config/cse/config.toml``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "cse" / "config.toml"


def envvar_for(option: str) -> str:
    """The environment variable of an option: ``--to-key`` reads ``CSE_TO_KEY``."""
    return "CSE_" + option.lstrip("-").upper().replace("-", "_")


def set_envvars(command: click.Command) -> None:
    """Give every long option of ``command`` and of its subcommands its ``CSE_`` environment variable."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar is None:
            long = [o for o in param.opts if o.startswith("--")]
            if long and long[0].lstrip("-") not in _NO_ENVVAR:
                param.envvar = envvar_for(long[0])
                param.show_envvar = True
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            set_envvars(sub)


def _read(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        message = f"the config file {path} is not valid TOML: {exc}; fix it or unset CSE_CONFIG"
        raise click.UsageError(message) from None
    except OSError as exc:
        raise click.UsageError(f"cannot read the config file {path}: {exc.strerror}") from None


def load_profile(path: Path | None, name: str | None) -> dict[str, Any]:
    """The entries of profile ``name`` (``default`` when ``None``) of the config file ``path`` (the
    default file when ``None``). A missing default file or default profile gives ``{}``; a named file or
    profile that is missing is a :class:`click.UsageError` that says what exists."""
    explicit = path is not None
    path = path if path is not None else default_config_path()
    if not path.is_file():
        if explicit:
            raise click.UsageError(f"the config file {path} does not exist; create it or unset CSE_CONFIG")
        if name is not None:
            raise click.UsageError(f"profile {name!r} asked for, but there is no config file at {path}")
        return {}
    data = _read(path)
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise click.UsageError(f"{path}: 'profiles' must be a table of tables ([profiles.NAME])")
    if name is None:
        return dict(profiles.get("default", {}))
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise click.UsageError(f"{path} has no profile {name!r} (profiles: {known})")
    return dict(profiles[name])


def _option_names(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(o.lstrip("-") for o in param.opts if o.startswith("--"))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            names |= _option_names(sub)
    return names


def _default_map(command: click.Command, entries: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name is None:
            continue
        for opt in param.opts:
            entry = opt.lstrip("-")
            if opt.startswith("--") and entry in entries:
                value = entries[entry]
                if param.multiple and not isinstance(value, list):
                    value = [value]
                out[param.name] = value
    if isinstance(command, click.Group):
        for sub_name, sub in command.commands.items():
            sub_map = _default_map(sub, entries)
            if sub_map:
                out[sub_name] = sub_map
    return out


def apply_environment(
    group: click.Group, ctx: click.Context, config: str | None, profile: str | None
) -> dict[str, Any]:
    """Load the profile and make it the defaults of every subcommand (``ctx.default_map``); export its
    store settings to the environment where the variables are unset. Unknown entries are refused with the
    names a profile may use. Returns the profile's entries."""
    entries = load_profile(Path(config) if config else None, profile)
    weakening = sorted(set(entries) & WEAKENING_OPTIONS)
    if weakening:
        raise click.UsageError(
            f"profile {profile or 'default'!r} sets {', '.join(weakening)}: options that weaken security "
            "are not taken from profiles (nor from CSE_* variables); give them on the command line"
        )
    options = _option_names(group) - _NO_ENVVAR
    unknown = sorted(set(entries) - options - set(STORE_SETTINGS))
    if unknown:
        where = f"profile {profile or 'default'!r}"
        raise click.UsageError(
            f"{where} has unknown entries {', '.join(unknown)}; a profile takes option names "
            f"(such as key, to-key, format, context) and store settings ({', '.join(STORE_SETTINGS)})"
        )
    for entry, variable in STORE_SETTINGS.items():
        if entry in entries and not os.environ.get(variable):
            os.environ[variable] = str(entries[entry])
    ctx.default_map = _default_map(group, {k: v for k, v in entries.items() if k not in STORE_SETTINGS})
    return entries
