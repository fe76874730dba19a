"""Local RSA key provider for cse: OSS PKCS#1 v1.5, S3 RSA-OAEP-SHA1 pseudo-key, and OAEP-SHA256 for cse-v1.

Use it through a key URI (``cse ... --key rsa:///keys/key.pem``) or in Python::

    from cse_rsa import RsaKey, RsaKeyProvider, generate_keypair

    generate_keypair("/keys/2025.pem", "/keys/2025.pub.pem")
    provider = RsaKeyProvider([
        RsaKey.from_file("/keys/2025.pem", material_description={"generation": "2025"}),
        RsaKey.from_file("/keys/2024.pem", passphrase_env="OLD_PW",
                         material_description={"generation": "2024"}),
    ])

Key URI syntax (details in :mod:`cse_rsa.provider`)::

    rsa:///ABSOLUTE/PATH/key.pem[?passphrase-env=VAR][&matdesc=URL-ENCODED-JSON][&desc=NAME=VALUE ...]
                                [&also=/ABSOLUTE/PATH/older.pem[&passphrase-env=...][&desc=...] ...]

Parameters apply to the key file named last before them; the first key file wraps new objects, and every
key file unwraps the objects its key id or material description selects (key rotation).
"""

from cse_rsa.keys import (
    DEFAULT_KEY_BITS,
    MIN_KEY_BITS,
    RsaKey,
    canonical_material_description,
    generate_keypair,
)
from cse_rsa.provider import RsaKeyProvider

__all__ = [
    "DEFAULT_KEY_BITS",
    "MIN_KEY_BITS",
    "RsaKey",
    "RsaKeyProvider",
    "canonical_material_description",
    "generate_keypair",
]
