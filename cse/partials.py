"""The partial files of downloads: where ``download_file`` writes before the rename, and their cleanup.

``download_file(ref, PATH)`` decrypts into ``.NAME.<random>.cse-partial`` in ``PATH``'s folder (``NAME``
is ``PATH``'s file name, so a partial says which destination it belongs to), created with mode 0600 and
locked (``flock``) while its download runs; it is renamed to ``PATH`` only after the object verified, and
removed on every failure the process survives. A process killed with SIGKILL cannot remove it; the next
``download_file`` (or ``cse get``) to the same ``PATH`` does: it removes every partial of that destination
that no running download holds. A resumable download (``checkpoint=``) writes ``PATH.cse-partial``
instead, and keeps it after a failure so that the next run continues it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

__all__ = ["PARTIAL_SUFFIX", "create_partial", "partials_of", "remove_stale_partials"]

#: The suffix of every partial file.
PARTIAL_SUFFIX = ".cse-partial"
# A partial younger than this may be one whose creator has not locked it yet.
_GRACE_SECONDS = 1.0

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; stale means older than a day
    fcntl = None  # type: ignore[assignment]
    _GRACE_SECONDS = 86_400.0


def _prefix(target: Path) -> str:
    return f".{target.name}."


def partials_of(target: str | os.PathLike[str]) -> list[Path]:
    """The partial files of downloads to ``target`` (``.NAME.*.cse-partial`` beside it), running or not."""
    path = Path(target)
    directory = path.parent if str(path.parent) else Path(".")
    prefix = _prefix(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(
        directory / n
        for n in names
        if n.startswith(prefix) and n.endswith(PARTIAL_SUFFIX) and len(n) > len(prefix) + len(PARTIAL_SUFFIX)
    )


def _held(fd: int) -> bool:
    """Whether another process (or open file) holds the download lock of this partial."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    return False


def remove_stale_partials(target: str | os.PathLike[str]) -> list[Path]:
    """Remove the partials of ``target`` that no running download holds; return what was removed.

    Partials of running downloads (locked), and any younger than a second, are kept.
    """
    removed: list[Path] = []
    now = time.time()
    for path in partials_of(target):
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if now - st.st_mtime < _GRACE_SECONDS or _held(fd):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(path)
        finally:
            os.close(fd)
    return removed


def create_partial(target: str | os.PathLike[str]) -> tuple[int, Path]:
    """Create a fresh partial file for a download to ``target`` (mode 0600, locked by the returned
    descriptor until it is closed), after removing stale partials of ``target``. Raises ``OSError``."""
    path = Path(target)
    directory = path.parent if str(path.parent) else Path(".")
    remove_stale_partials(path)
    fd, name = tempfile.mkstemp(prefix=_prefix(path), suffix=PARTIAL_SUFFIX, dir=directory)
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd, Path(name)
