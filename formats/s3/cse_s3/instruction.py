"""Instruction files: the S3 clients' way of keeping key material in a separate object, ``KEY.instruction``.

The instruction object's body is a JSON object of strings, its user metadata ``x-amz-crypto-instr-file: ""``.
Which keys go where (the S3EC specification's ``metadata-strategy.md``, and the Java client that writes
them; the official Python client only reads them):

* V1/V2: every encryption key is in the file (``x-amz-key-v2``, ``x-amz-iv``, ``x-amz-cek-alg``,
  ``x-amz-wrap-alg``, ``x-amz-tag-len``, ``x-amz-matdesc``); the object keeps none of them.
* V3: ``x-amz-c``, ``x-amz-d`` and ``x-amz-i`` stay in the object's metadata and must not be in the file;
  ``x-amz-3``, ``x-amz-w`` and ``x-amz-t`` / ``x-amz-m`` are in the file.

Reading (as the official clients): an object whose metadata has none of ``x-amz-key``, ``x-amz-key-v2``,
``x-amz-3`` may have an instruction file. Its keys are merged under the object's own metadata (the object
wins), and the result is refused, as the Python client refuses it, when the file holds a V3 object key
(``x-amz-c``/``x-amz-d``/``x-amz-i``), when the file holds a key that no S3 client writes, or when a V1/V2
file meets content keys (``x-amz-cek-alg``, ``x-amz-iv``, ``x-amz-wrap-alg``) in the object's metadata.

These are pure functions over string maps; :class:`cse_s3.store.S3Store` does the requests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cse.exceptions import MetadataError
from cse_s3.formats import (
    CEK_ALG,
    EXCLUSIVE_KEYS,
    INSTRUCTION_FILE_MARKER,
    IV,
    KEY_V3,
    S3EC_KEYS,
    TAG_LEN,
    V3_OBJECT_KEYS,
    WRAP_ALG,
)

__all__ = [
    "INSTRUCTION_SUFFIX",
    "MAX_INSTRUCTION_FILE_SIZE",
    "has_wrapped_key",
    "instruction_file_body",
    "merge_instruction_file",
    "parse_instruction_file",
    "split_for_instruction_file",
]

#: The default suffix of instruction files, as every S3 client uses it.
INSTRUCTION_SUFFIX = ".instruction"
#: Instruction files larger than this are not read (a real one is a few hundred bytes).
MAX_INSTRUCTION_FILE_SIZE = 64 * 1024
#: The keys that a V3 instruction file holds (the rest of the V3 keys stay on the object).
_V3_FILE_KEYS = frozenset({KEY_V3, "x-amz-w", "x-amz-t", "x-amz-m"})
#: The content keys a V1/V2 object must not carry in its own metadata when it uses an instruction file.
_V1V2_CONTENT_KEYS = (CEK_ALG, IV, WRAP_ALG)
#: The keys that a V1/V2 instruction file holds.
_V1V2_FILE_KEYS = frozenset({"x-amz-key", "x-amz-key-v2", IV, CEK_ALG, WRAP_ALG, TAG_LEN, "x-amz-matdesc"})


def has_wrapped_key(metadata: Mapping[str, str]) -> bool:
    """Whether the metadata itself carries a wrapped key (then no instruction file is looked for)."""
    return any(key in metadata for key in EXCLUSIVE_KEYS)


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("repeated JSON member name")
    return out


def parse_instruction_file(body: bytes, where: str) -> dict[str, str]:
    """The key map in an instruction file's body; :class:`MetadataError` naming ``where`` if malformed."""
    if len(body) > MAX_INSTRUCTION_FILE_SIZE:
        raise MetadataError(f"the instruction file {where} is larger than {MAX_INSTRUCTION_FILE_SIZE} bytes")
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_unique_names)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MetadataError(f"the instruction file {where} is not a JSON object") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise MetadataError(f"the instruction file {where} must be a JSON object of strings")
    unknown = sorted(set(value) - S3EC_KEYS)
    if unknown:
        raise MetadataError(
            f"the instruction file {where} holds keys no S3 Encryption Client writes: {', '.join(unknown)}"
        )
    if not has_wrapped_key(value):
        raise MetadataError(
            f"the instruction file {where} holds no wrapped key (none of {', '.join(EXCLUSIVE_KEYS)})"
        )
    return dict(value)


def merge_instruction_file(
    object_metadata: Mapping[str, str], instruction: Mapping[str, str], where: str
) -> dict[str, str]:
    """One map of an object's metadata and its instruction file's keys (the object's win), marked with
    ``x-amz-crypto-instr-file``; :class:`MetadataError` for the combinations the official clients refuse."""
    in_file = sorted(V3_OBJECT_KEYS & set(instruction))
    if in_file:
        raise MetadataError(
            f"refusing: the instruction file {where} holds {', '.join(in_file)}, which a V3 object keeps in "
            "its own metadata only (the instruction file may have been tampered with)"
        )
    if KEY_V3 not in instruction:
        on_object = [key for key in _V1V2_CONTENT_KEYS if key in object_metadata]
        if on_object:
            raise MetadataError(
                f"refusing: the object carries {', '.join(on_object)} in its own metadata while its V1/V2 "
                f"key material is in the instruction file {where}; no client writes that combination"
            )
    merged = {k: v for k, v in instruction.items() if k != INSTRUCTION_FILE_MARKER}
    merged.update(object_metadata)
    merged[INSTRUCTION_FILE_MARKER] = ""
    return merged


def split_for_instruction_file(metadata: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split metadata in the Java client's instruction-file layout: (object metadata, instruction file keys).

    The instruction map is empty when the metadata carries no wrapped key. The marker
    ``x-amz-crypto-instr-file`` is dropped from both.
    """
    own = {k: v for k, v in metadata.items() if k != INSTRUCTION_FILE_MARKER}
    if not has_wrapped_key(own):
        return own, {}
    file_keys = _V3_FILE_KEYS if KEY_V3 in own else _V1V2_FILE_KEYS
    instruction = {k: own.pop(k) for k in sorted(file_keys) if k in own}
    return own, instruction


def instruction_file_body(instruction: Mapping[str, str]) -> bytes:
    """The instruction file's body: compact JSON, as the Java client writes it."""
    return json.dumps(dict(instruction), separators=(",", ":"), sort_keys=True).encode("ascii")
