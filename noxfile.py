"""Every check of the project is a nox session: ``nox -s tests`` (the default), ``large``, ``soak``, ``lint``,
``typecheck``, ``docs`` and ``bench``. Extra arguments after ``--`` go to the tool."""

# How sessions install things
# ---------------------------
# The project is a uv workspace, and ``uv.lock`` pins every distribution of it. Rather than letting nox build
# one virtualenv per session, every session here is a ``python=False`` session that:
#
# 1. runs ``uv sync --all-packages`` (with ``--locked`` when ``CI`` is set, so a stale ``uv.lock`` fails the
#    build instead of being silently rewritten), which creates or updates the project's own ``.venv`` with the
#    whole workspace in editable mode plus the ``dev`` dependency group; when the environment is already in
#    sync this takes well under a second;
# 2. runs the tool through ``uv run --no-sync`` in that ``.venv``.
#
# Why: it works on a fresh machine where only ``pip install uv nox`` has been done (uv finds or downloads a
# Python, nox needs no virtualenv backend of its own), all sessions check exactly the locked versions, the
# workspace is installed once instead of once per session, and the environment is the same one an editor
# or ``uv run pytest`` uses. ``UV_PROJECT_ENVIRONMENT`` moves it elsewhere if needed.
#
# Extra arguments after ``--`` go to the tool: ``nox -s tests -- tests/test_cli.py -k rsa``.

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "none"


def _uv() -> str:
    """The uv executable: on PATH, or the one the ``uv`` Python package ships (``pip install --user uv``)."""
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin
    except ImportError:
        raise SystemExit("uv is not installed: pip install uv (see noxfile.py)") from None
    return str(find_uv_bin())


def _sync(session: nox.Session) -> None:
    args = [_uv(), "sync", "--all-packages"]
    if os.environ.get("CI"):
        args.append("--locked")
    session.run(*args, external=True)


def _run(session: nox.Session, *args: str, env: dict[str, str] | None = None) -> None:
    session.run(_uv(), "run", "--no-sync", *args, external=True, env=env)


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The test suite without the 1 GiB tests, on two workers."""
    _sync(session)
    _run(session, "pytest", "-m", "not large", "-n", "2", "--timeout=300", *session.posargs)


@nox.session(python=False)
def soak(session: nox.Session) -> None:
    """The fault soak of tests/test_faults.py, longer: 400 operations per store at a 20 % fault rate (set
    CSE_SOAK_OPS, CSE_SOAK_RATE, CSE_SOAK_SEED to change them; the seed is printed); then the fuzz tests of
    tests/test_fuzz.py with 500 examples each (CSE_FUZZ_EXAMPLES)."""
    _sync(session)
    env = {
        "CSE_SOAK_OPS": os.environ.get("CSE_SOAK_OPS", "400"),
        "CSE_SOAK_RATE": os.environ.get("CSE_SOAK_RATE", "0.2"),
    }
    soak_args = ["tests/test_faults.py", "-k", "soak", "-s", "-p", "no:logging"]
    _run(session, "pytest", *soak_args, *session.posargs, env=env)
    fuzz = {"CSE_FUZZ_EXAMPLES": os.environ.get("CSE_FUZZ_EXAMPLES", "500")}
    _run(session, "pytest", "tests/test_fuzz.py", "-n", "2", *session.posargs, env=fuzz)


@nox.session(python=False)
def large(session: nox.Session) -> None:
    """The tests that move objects of 1 GiB and more (slow; bounded-memory checks)."""
    _sync(session)
    _run(session, "pytest", "-m", "large", "--timeout=1800", *session.posargs)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff: lint rules and import order."""
    _sync(session)
    _run(session, "ruff", "check", ".", *session.posargs)


@nox.session(python=False)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the packages listed in [tool.mypy] of pyproject.toml."""
    _sync(session)
    _run(session, "mypy", *session.posargs)


@nox.session(python=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/, failing on any warning (broken link, missing page)."""
    _sync(session)
    # NO_MKDOCS_2_WARNING silences mkdocs-material's end-of-life banner, which is not a build warning.
    _run(session, "mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Every benchmark of docs/performance.md: throughput, the official clients, end to end, the 1 GiB
    peak-RSS jobs, KMS calls and start-up; about 8 minutes. Arguments after ``--`` replace the default
    ``--memory`` (``nox -s bench -- --only peers,startup`` for a quick look)."""
    _sync(session)
    _run(session, "python", "benchmarks/bench.py", *(session.posargs or ["--memory"]))
