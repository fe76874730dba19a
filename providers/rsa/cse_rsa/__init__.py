"""Local key providers for cse: RSA (OSS PKCS#1 v1.5, S3 RSA-OAEP-SHA1 pseudo-key, OAEP-SHA256 for cse-v1)
and AES-256 (the S3 ``AES/GCM`` key wrap).

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

Local AES-256 keys (details in :mod:`cse_rsa.aes`) take the same URI syntax without ``passphrase-env``::

    from cse_rsa import AesKeyProvider, generate_aes_key

    generate_aes_key("/keys/2025.bin")  # 32 random bytes, mode 0600
    provider = AesKeyProvider.from_uri("aes:///keys/2025.bin?desc=generation=2025")

with the key URI syntax::

    aes:///ABSOLUTE/PATH/key.bin[?matdesc=URL-ENCODED-JSON][&desc=NAME=VALUE ...]
                                [&also=/ABSOLUTE/PATH/older.bin[&desc=...] ...]
"""

from cse_rsa.aes import AES_KEY_BYTES, AesKey, AesKeyProvider, generate_aes_key
from cse_rsa.keys import (
    DEFAULT_KEY_BITS,
    MIN_KEY_BITS,
    RsaKey,
    canonical_material_description,
    generate_keypair,
)
from cse_rsa.provider import RsaKeyProvider

__all__ = [
    "AES_KEY_BYTES",
    "AesKey",
    "AesKeyProvider",
    "DEFAULT_KEY_BITS",
    "MIN_KEY_BITS",
    "RsaKey",
    "RsaKeyProvider",
    "canonical_material_description",
    "generate_aes_key",
    "generate_keypair",
]
