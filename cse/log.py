"""Logging: the ``cse`` logger and its children, and the CLI's handlers.

cse logs through :mod:`logging` under the names ``cse`` (``cse.client``, ``cse.kms``, ``cse.store``,
``cse.cache``, ``cse.migrate``). Nothing is printed unless the application configures logging, as with
every library. What is logged:

* ``DEBUG`` on ``cse.kms``: every request to a key service: operation, key id, region, duration, attempts,
  and the outcome (``ok`` or the name of the error class);
* ``DEBUG`` on ``cse.store``: every store request: operation, store URL of the key, bytes, duration, outcome;
* ``DEBUG`` on ``cse.cache``: data-key cache hits and misses, with the provider's description;
* ``INFO``/``DEBUG`` on ``cse.migrate``: the steps of a migration;
* ``WARNING`` on ``cse.client``: opt-ins that weaken security (``allow_legacy``, ``delayed_authentication``,
  ``allow_unauthenticated_ranges``), when a client is made with them and when a read relies on them.

Records never carry key material, plaintext or credentials: their fields are names, ids, sizes and times.
Each record has the structured fields as ``record.cse`` (a dict), which :class:`JsonFormatter` writes out.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

__all__ = ["JsonFormatter", "configure_cli_logging", "event", "get_logger", "timed"]

logger = logging.getLogger("cse")


def get_logger(name: str) -> logging.Logger:
    """The child logger ``cse.NAME``."""
    return logging.getLogger(f"cse.{name}")


def _text(message: str, fields: dict[str, Any]) -> str:
    shown = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    return f"{message} {shown}" if shown else message


def event(log: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log ``message`` with ``fields`` (names, ids, sizes: never secrets) at ``level``."""
    if log.isEnabledFor(level):
        log.log(level, "%s", _text(message, fields), extra={"cse": {"event": message, **fields}})


@contextmanager
def timed(log: logging.Logger, message: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """Time the block and log ``message`` at DEBUG with ``fields``, ``duration_ms`` and ``outcome`` (``ok``,
    or the class name of the exception that left the block, which propagates). The block may add fields
    to the dict it is given."""
    if not log.isEnabledFor(logging.DEBUG):
        yield fields
        return
    start = time.perf_counter()
    outcome = "ok"
    try:
        yield fields
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        duration_ms = round((time.perf_counter() - start) * 1000, 3)
        event(log, logging.DEBUG, message, **fields, duration_ms=duration_ms, outcome=outcome)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` and the record's cse fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a line of JSON."""
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "cse", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__
        return json.dumps(out, default=str, sort_keys=False)


_CLI_HANDLER: logging.Handler | None = None


class _Quiet(logging.Filter):
    """Drops every record (the CLI's filter on a third-party logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Never let the record through."""
        return False


def configure_cli_logging(verbosity: int, as_json: bool, stream: IO[str] | None = None) -> None:
    """The CLI's logging: warnings by default, ``-v`` info, ``-vv`` debug, to standard error; as JSON lines
    with ``--log-json``. Replaces the handler an earlier call installed."""
    global _CLI_HANDLER
    import sys

    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    if _CLI_HANDLER is not None:
        logger.removeHandler(_CLI_HANDLER)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logger.addHandler(handler)
    logger.setLevel(level)
    # Alibaba Cloud's credential chain logs each source it tries, with tracebacks, on the logger
    # "credentials", through a handler of its own that it adds when imported. Its answer is cse's error, so
    # the CLI lets its records through with -vv only: a filter on the logger, which outlasts that import.
    chain = logging.getLogger("credentials")
    for old in [f for f in chain.filters if isinstance(f, _Quiet)]:
        chain.removeFilter(old)
    if verbosity < 2:
        chain.addFilter(_Quiet())
    _CLI_HANDLER = handler
