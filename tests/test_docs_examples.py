"""Every example in the docs runs in a test.

Collects each ```python (or ```py) fenced block of docs/**/*.md and README.md and runs it with ``exec`` in a
fresh namespace, with a fresh temporary directory as the working directory. A block whose previous non-blank
line is the HTML comment ``<!-- no-test -->`` is skipped (for sketches that name hypothetical classes).
A block after ``<!-- test-on: moto -->`` runs against moto's S3 and KMS server: ``AWS_ENDPOINT_URL`` points at
it, and the buckets and KMS aliases that the block names (``s3://BUCKET/``, ``aws-kms://alias/NAME``) are
created first, in the region that the block names with ``region="..."`` (else us-east-1).

Blocks may be indented (inside admonitions or list items); fences of other languages (bash, toml, text) are
not run.
"""

from __future__ import annotations

import contextlib
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NO_TEST = "<!-- no-test -->"
ON_MOTO = "<!-- test-on: moto -->"

_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_PYTHON = {"python", "py", "python3"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    skip: bool
    moto: bool = False

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    previous = ""  # the last non-blank line outside a fence
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if match is None:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        info = match["info"].strip()
        language = info.split()[0].lstrip("{.").rstrip("}").lower() if info else ""
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        if language in _PYTHON:
            found.append(
                Block(
                    path,
                    i + 1,
                    textwrap.dedent("\n".join(body)) + "\n",
                    previous == NO_TEST,
                    previous == ON_MOTO,
                )
            )
        previous = lines[i].strip()
        i = j + 1
    return found


def _sources() -> list[Path]:
    paths = sorted(DOCS.rglob("*.md")) if DOCS.is_dir() else []
    readme = ROOT / "README.md"
    if readme.is_file():
        paths.append(readme)
    return paths


BLOCKS = [block for path in _sources() for block in _blocks(path)]


@pytest.mark.skipif(not BLOCKS, reason="no python examples in the docs yet")
@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_example_runs(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if block.skip:
        pytest.skip(f"marked {NO_TEST}")
    if block.moto:
        _prepare_moto(block.code, request.getfixturevalue("moto_endpoint"), monkeypatch)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__", "__file__": str(tmp_path / "example.py")}
    exec(compile(block.code, block.id, "exec"), namespace)


def _prepare_moto(code: str, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point boto3 at moto's server and create the buckets and KMS aliases that ``code`` names."""
    import boto3
    from botocore.config import Config

    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    region = next(iter(re.findall(r"region(?:_name)?=\W?([a-z]{2}-[a-z]+-[0-9])", code)), "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
    for bucket in sorted(set(re.findall(r"s3://([a-z0-9.-]+)", code))):
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
    kms = boto3.client("kms", region_name=region)
    existing = {alias["AliasName"] for alias in kms.list_aliases()["Aliases"]}
    for alias in sorted(set(re.findall(r"aws-kms://(alias/[A-Za-z0-9/_-]+)", code)) - existing):
        kms.create_alias(AliasName=alias, TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])


def test_docs_exist() -> None:
    assert DOCS.is_dir()
    assert (DOCS / "index.md").is_file()


def _tree(text: str) -> list[str]:
    """The lines of the first box-drawing tree rooted at ``CseError`` in ``text``, right-stripped."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "CseError")
    indent = len(lines[start]) - len(lines[start].lstrip())
    tree = []
    for line in lines[start:]:
        if not line.strip() or line.strip().startswith("```"):
            break
        tree.append(line[indent:].rstrip())
    return tree


def test_errors_page_shows_the_exception_tree() -> None:
    """docs/errors.md draws the same tree as the docstring of cse/exceptions.py, and names every class."""
    import cse.exceptions

    assert cse.exceptions.__doc__ is not None
    expected = _tree(cse.exceptions.__doc__)
    page = (DOCS / "errors.md").read_text(encoding="utf-8")
    assert _tree(page) == expected, "docs/errors.md: copy the tree from the docstring of cse/exceptions.py"
    for name in cse.exceptions.__all__:
        assert f"## {name}\n" in page, f"docs/errors.md has no section for {name}"
