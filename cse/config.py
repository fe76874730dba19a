"""Transfer settings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cse.content import DEFAULT_SEGMENT_SIZE
from cse.exceptions import ConfigurationError

__all__ = ["CommitmentPolicy", "TransferConfig"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class TransferConfig:
    """How cse moves bytes: thresholds, part sizes, concurrency and memory caps.

    Worst-case memory of one transfer, beyond the interpreter and the store's SDK:

    * upload (``put``, ``upload_file``): ``(max_concurrency + 1)`` part buffers of ``part_size`` plus the
      encryptor's overhead for one read (a few bytes for GCM and CTR, about two segments for cse-v1), plus
      ``chunk_size`` of plaintext: with the defaults, 3 * ~8 MiB + 1 MiB, about 25 MiB. Each part in flight
      also costs the store's SDK some working memory (botocore: about 3 MiB per 8 MiB part). Objects no
      larger than ``multipart_threshold`` go in one request and hold their plaintext and ciphertext: at most
      ``2 * multipart_threshold`` (32 MiB). A stream of unknown length first buffers up to
      ``multipart_threshold`` to see whether it fits in one request.
    * download (``download_file``, streaming ``open``, ranged reads): ``2 * chunk_size + segment_size``,
      about 3 MiB with the defaults, whatever the object's size.
    * ``get``/``open`` of an object that is authenticated only as a whole (S3 V2/V3) without
      ``delayed_authentication``: the plaintext is held until its tag verifies, up to
      ``max_authenticated_buffer`` (64 MiB); larger objects raise
      :class:`~cse.exceptions.AuthenticatedSizeLimitError`.

    The defaults keep a 1 GiB upload and download through boto3 under 128 MiB of peak RSS (``nox -s large``);
    raise ``max_concurrency`` for more parallel parts at about ``part_size + 3 MiB`` each.
    """

    #: Plaintext size above which uploads go multipart.
    multipart_threshold: int = 16 * MiB
    #: Ciphertext bytes per part (all parts but the last). Stores may raise it to fit their part limits.
    part_size: int = 8 * MiB
    #: Parts uploaded at once.
    max_concurrency: int = 2
    #: Bytes read, encrypted or decrypted per step.
    chunk_size: int = 1 * MiB
    #: Largest whole-object-authenticated plaintext held in memory by ``get``/``open``.
    max_authenticated_buffer: int = 64 * MiB
    #: cse-v1 plaintext segment size.
    segment_size: int = DEFAULT_SEGMENT_SIZE
    #: Attempts per part upload by the multipart engine, on top of the store's own retries of each request
    #: (1, the default: none; a retried part is re-sent with the same ciphertext). The store owns the
    #: retry budget of a request: S3 (botocore, standard mode) and OSS (the store) send a request at most
    #: 4 times, retrying only time-outs, connection failures, throttling and 5xx; file:// and memory://
    #: do not retry. So with the defaults one part is sent at most 4 times, and at most
    #: ``part_attempts * 4`` times in general.
    part_attempts: int = 1

    def __post_init__(self) -> None:
        checks = {
            "multipart_threshold": self.multipart_threshold >= 0,
            "part_size": self.part_size >= 16 * 1024,
            "max_concurrency": 1 <= self.max_concurrency <= 64,
            "chunk_size": self.chunk_size >= 4096,
            "max_authenticated_buffer": self.max_authenticated_buffer >= 0,
            "segment_size": 16 <= self.segment_size <= 64 * MiB,
            "part_attempts": self.part_attempts >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigurationError(
                f"invalid TransferConfig value(s): {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)} "
                "(part_size >= 16 KiB, 1 <= max_concurrency <= 64, chunk_size >= 4 KiB, "
                "16 <= segment_size <= 64 MiB, part_attempts >= 1)"
            )


class CommitmentPolicy(str, Enum):
    """Key-commitment policy, with the official S3 Encryption Client's names and default.

    It governs formats that have both a committing and a non-committing variant (the S3 family: V3
    commits, V2 and V1 do not); see :attr:`cse.formats.Format.commitment_policy_applies`.
    """

    #: Write only non-committing objects (S3 V2); read both. For writers that old readers must read.
    FORBID_ENCRYPT_ALLOW_DECRYPT = "forbid-encrypt-allow-decrypt"
    #: Write only committing objects; read both. The opt-in for reading S3 V2 objects.
    REQUIRE_ENCRYPT_ALLOW_DECRYPT = "require-encrypt-allow-decrypt"
    #: Write and read only committing objects (the default).
    REQUIRE_ENCRYPT_REQUIRE_DECRYPT = "require-encrypt-require-decrypt"

    @property
    def encrypt_requires_commitment(self) -> bool:
        """Whether new objects must commit to their key."""
        return self is not CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT

    @property
    def decrypt_requires_commitment(self) -> bool:
        """Whether objects that do not commit to their key are refused."""
        return self is CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
