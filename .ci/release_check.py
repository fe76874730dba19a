"""Checks run by ``nox -s release`` in a virtualenv that has the built wheels installed (never the workspace).

    python release_check.py full DIST README.md  # pip install --find-links DIST 'cse[aws,aliyun,testing]'
    python release_check.py bare DIST            # pip install --find-links DIST cse

Both check that every installed cse distribution is the one built into DIST (the same RECORD as the wheel
there, so not one from an index) and imported from the venv. ``full`` checks that every plugin registered
and runs the README's first ``python`` block; ``bare`` checks that the local keys work through the ``cse``
command and that no cloud SDK came with it.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata

FULL = ["cse", "cse-rsa", "cse-s3", "cse-aws-kms", "cse-oss", "cse-aliyun-kms"]
BARE = ["cse", "cse-rsa"]


def fail(message: str) -> None:
    """Stop with ``message``."""
    raise SystemExit(f"release check failed: {message}")


def check_from_wheels(dist: str, names: list[str]) -> None:
    """Every distribution in ``names`` is installed from its wheel in ``dist`` and imported from this venv."""
    for name in names:
        version = metadata.version(name)
        wheels = glob.glob(os.path.join(dist, f"{name.replace('-', '_')}-{version}-*.whl"))
        if len(wheels) != 1:
            fail(f"{name} {version} is installed but {dist} has {len(wheels)} wheels of it")
        with zipfile.ZipFile(wheels[0]) as whl:
            record = next(n for n in whl.namelist() if n.endswith(".dist-info/RECORD"))
            built = {line.split(",")[0]: line for line in whl.read(record).decode().splitlines()}
            if not any(n.endswith(".dist-info/licenses/LICENSE") for n in whl.namelist()):
                fail(f"{wheels[0]} has no LICENSE")
        installed = metadata.distribution(name).read_text("RECORD") or ""
        for line in installed.splitlines():
            path = line.split(",")[0]
            if path.endswith(".py") and path in built and built[path] != line:
                fail(f"{name}: {path} differs from the wheel in {dist}")
        print(f"ok: {name} {version} installed from {os.path.basename(wheels[0])}")
    import cse

    if not cse.__file__ or not cse.__file__.startswith(sys.prefix):
        fail(f"cse imported from {cse.__file__}, not from the venv {sys.prefix}")


def check_full(dist: str, readme: str) -> None:
    """All plugins registered; the conformance kit imports; the README's library example runs."""
    check_from_wheels(dist, FULL)
    from cse import registry

    want = {
        "providers": ({"rsa", "aes", "aws-kms", "aliyun-kms"}, registry.available_providers()),
        "stores": ({"file", "memory", "s3", "oss"}, registry.available_stores()),
        "formats": ({"cse-v1", "s3-v3", "s3-v2", "s3-v1", "oss-v2", "oss-v1"}, registry.available_formats()),
    }
    for what, (expected, found) in want.items():
        if not expected <= set(found):
            fail(f"{what}: expected {sorted(expected)}, registered {sorted(found)}")
        print(f"ok: {what} registered: {', '.join(sorted(found))}")
    for name in ("aws-kms", "aliyun-kms"):
        registry.provider_class(name)
    for name in ("s3", "oss"):
        registry.store_class(name)
    import cse.testing  # the conformance kit: needs pytest, from cse[testing]

    print(f"ok: cse.testing imports ({cse.testing.__name__})")
    with open(readme, encoding="utf-8") as fh:
        example = re.search(r"```python\n(.*?)```", fh.read(), re.S)
    if example is None:
        fail(f"no python block in {readme}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", example.group(1)], cwd=tmp, check=True)
    print("ok: the README's library example ran against the installed wheels")


def check_bare(dist: str) -> None:
    """The base install alone: local keys through the command, and no cloud SDK."""
    check_from_wheels(dist, BARE)
    for sdk in ("boto3", "oss2", "cse-s3", "cse-oss", "cse-aws-kms", "cse-aliyun-kms"):
        try:
            metadata.version(sdk)
        except metadata.PackageNotFoundError:
            continue
        fail(f"a bare `pip install cse` installed {sdk}")
    cse_cmd = os.path.join(os.path.dirname(sys.executable), "cse")
    with tempfile.TemporaryDirectory() as tmp:

        def run(*args: str) -> bytes:
            return subprocess.run([cse_cmd, *args], cwd=tmp, check=True, capture_output=True).stdout

        secret = os.urandom(100_000)
        with open(os.path.join(tmp, "plain.bin"), "wb") as fh:
            fh.write(secret)
        key = f"rsa://{tmp}/key.pem"
        run("keygen", "rsa", "--private", "key.pem", "--public", "key.pub.pem", "--bits", "2048")
        run("put", "plain.bin", f"file://{tmp}/vault/plain.bin", "--key", key)
        with open(os.path.join(tmp, "vault", "plain.bin"), "rb") as fh:
            if secret[:64] in fh.read():
                fail("the stored object holds the plaintext")
        if run("cat", f"file://{tmp}/vault/plain.bin", "--key", key) != secret:
            fail("cse cat did not give back what cse put stored")
        aes = f"{tmp}/aes.bin"
        from cse_rsa import generate_aes_key

        generate_aes_key(aes)
        run("put", "plain.bin", f"file://{tmp}/vault/aes.bin", "--key", f"aes://{aes}")
        if run("cat", f"file://{tmp}/vault/aes.bin", "--key", f"aes://{aes}") != secret:
            fail("aes:// round trip failed")
    print("ok: bare install: cse keygen rsa, put and cat with rsa:// and aes://, no cloud SDK")


if __name__ == "__main__":
    if sys.argv[1:2] == ["full"] and len(sys.argv) == 4:
        check_full(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["bare"] and len(sys.argv) == 3:
        check_bare(sys.argv[2])
    else:
        fail(__doc__ or "usage")
