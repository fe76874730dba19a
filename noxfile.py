"""Every check of the project is a nox session: ``nox -s tests`` (the default), ``large``, ``soak``, ``lint``,
``typecheck``, ``docs``, ``bench``, ``resolutions`` and ``release``. Extra arguments after ``--`` go to the
tool."""

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


# Packaging checks
# ----------------
# ``release`` and ``resolutions`` do not use the project's .venv for what they check: each builds its own
# virtualenvs under .nox/<session>/tmp, so they see what a user's ``pip install`` sees.

_WORKSPACE = [".", "providers/rsa", "providers/aws_kms", "formats/s3", "providers/aliyun_kms", "formats/oss"]

#: The tests run against each resolution: everything that needs only the distributions' own dependencies
#: (no official S3/OSS clients, which only the dev group installs), through the local emulators.
_RESOLUTION_TESTS = [
    "tests/test_ciphers.py",
    "tests/test_native_format.py",
    "tests/test_client.py",
    "tests/test_rsa.py",
    "tests/test_aes_provider.py",
    "tests/test_registry.py",
    "tests/test_stores.py",
    "tests/test_s3_store.py",
    "tests/test_s3_formats.py",
    "tests/test_aws_kms.py",
    "tests/test_oss_store.py",
    "tests/test_oss_formats.py",
    "tests/test_aliyun_kms_provider.py",
    "tests/test_migrate.py",
    "tests/test_cli_s3.py",
]

#: The test tools the resolutions install with the distributions (the ranges of the dev group).
_TEST_TOOLS = ["pytest-timeout>=2.3", "pytest-xdist>=3.5", "hypothesis>=6.100", "moto[server]>=5.2.1"]


def _project_python(session: nox.Session) -> str:
    """The interpreter of the project's .venv (after :func:`_sync`): every venv here uses the same Python."""
    code = "import sys; print(sys.executable)"
    out = session.run(_uv(), "run", "--no-sync", "python", "-c", code, external=True, silent=True)
    return str(out).strip().splitlines()[-1]


def _fresh_venv(session: nox.Session, path: str, python: str) -> str:
    """A new virtualenv with pip in it, at ``path``; returns its python."""
    shutil.rmtree(path, ignore_errors=True)
    session.run(_uv(), "venv", "--quiet", "--seed", "--python", python, path, external=True)
    return os.path.join(path, "bin", "python")


@nox.session(python=False)
def resolutions(session: nox.Session) -> None:
    """Install the workspace with the lowest versions its dependency ranges allow (``uv --resolution
    lowest-direct``) and with the newest (``highest``), each into its own venv, and run the tests that need
    only those dependencies against each. Pass ``lowest-direct`` or ``highest`` after ``--`` to run one."""
    _sync(session)
    python = _project_python(session)
    tmp = session.create_tmp()
    for resolution in session.posargs or ["lowest-direct", "highest"]:
        venv = os.path.join(tmp, resolution)
        py = _fresh_venv(session, venv, python)
        editable = [arg for member in _WORKSPACE[1:] for arg in ("-e", member)]
        # One resolution of the distributions' own ranges (cse[all,testing] brings pytest) and of the test
        # tools' ranges, so that nothing installed afterwards moves a version.
        session.run(
            _uv(), "pip", "install", "--python", py, "--resolution", resolution,
            "-e", ".[all,testing]", *editable, *_TEST_TOOLS, external=True,
        )  # fmt: skip
        session.run(_uv(), "pip", "list", "--python", py, external=True)
        session.run(py, "-m", "pytest", "-m", "not large", "-n", "2", "-q", *_RESOLUTION_TESTS, external=True)


@nox.session(python=False)
def release(session: nox.Session) -> None:
    """Build every distribution, install the wheels into fresh venvs (never the workspace) as a user would,
    and check them: ``cse[aws,aliyun,testing]`` installs and registers every plugin and runs the README's
    library example; a bare ``cse`` has the local keys (``cse keygen rsa``, encrypt, decrypt) and no cloud
    SDK."""
    _sync(session)
    python = _project_python(session)
    tmp = os.path.abspath(session.create_tmp())
    dist = os.path.join(tmp, "dist")
    shutil.rmtree(dist, ignore_errors=True)
    session.run(_uv(), "build", "--all-packages", "--out-dir", dist, external=True)
    check = os.path.abspath(os.path.join(".ci", "release_check.py"))
    readme = os.path.abspath("README.md")
    work = os.path.join(tmp, "work")

    full = _fresh_venv(session, os.path.join(tmp, "full"), python)
    session.run(full, "-m", "pip", "install", "--find-links", dist, "cse[aws,aliyun,testing]", external=True)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    with session.chdir(work):  # away from the checkout, so nothing imports from it
        session.run(os.path.join(tmp, "full", "bin", "cse"), "--version", external=True)
        session.run(full, check, "full", dist, readme, external=True)

    bare = _fresh_venv(session, os.path.join(tmp, "bare"), python)
    session.run(bare, "-m", "pip", "install", "--find-links", dist, "cse", external=True)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    with session.chdir(work):
        session.run(bare, check, "bare", dist, external=True)
