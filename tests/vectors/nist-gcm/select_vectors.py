"""Regenerate the NIST AES-GCM subset in this directory from the ``cryptography_vectors`` distribution.

Run by hand (see README.md)::

    python -m pip download --no-deps cryptography_vectors==48.0.0 -d /tmp/cv
    python tests/vectors/nist-gcm/select_vectors.py /tmp/cv/cryptography_vectors-48.0.0-py3-none-any.whl

Keeps, from ``gcmEncryptExtIV256.rsp`` and ``gcmDecrypt256.rsp``, every section whose header says
``[Keylen = 256]``, ``[IVlen = 96]`` and ``[Taglen = 128]``, byte for byte (including FAIL cases), after a
comment naming the origin. Nothing else is changed.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).parent
MEMBER = "cryptography_vectors/ciphers/AES/GCM/{}"
FILES = ("gcmEncryptExtIV256.rsp", "gcmDecrypt256.rsp")


def select(text: str) -> str:
    """The leading comment block and the sections with 256-bit keys, 96-bit IVs and 128-bit tags."""
    parts = re.split(r"(?m)^(?=\[Keylen = )", text)
    head, sections = parts[0], parts[1:]
    kept = []
    for section in sections:
        header = dict(re.findall(r"\[(\w+) = (\d+)\]", section))
        if header.get("Keylen") == "256" and header.get("IVlen") == "96" and header.get("Taglen") == "128":
            kept.append(section)
    return head + "".join(kept)


def main(wheel: str) -> None:
    """Write the selected files next to this script."""
    version = re.search(r"cryptography_vectors-([^-]+)-", Path(wheel).name)
    with zipfile.ZipFile(wheel) as zf:
        for name in FILES:
            text = zf.read(MEMBER.format(name)).decode("ascii").replace("\r\n", "\n")
            note = (
                f"# Selected for cse from NIST CAVP GCMVS {name}, as shipped in the cryptography_vectors "
                f"{version.group(1) if version else '?'} PyPI distribution:\n"
                "# only the sections with Keylen = 256, IVlen = 96, Taglen = 128 (see README.md).\n"
            )
            (HERE / name).write_text(note + select(text), encoding="ascii")


if __name__ == "__main__":
    main(sys.argv[1])
