"""Retries under a deadline, for key providers and stores (imports no SDK).

A :class:`RetryPolicy` bounds one logical request: at most ``max_attempts`` sends, and no send starts once
``deadline`` seconds have passed since the first, or when the send's own timeout (``attempt_timeout``, the
SDK's read timeout) would not fit in what is left; the first send always starts. Between sends it sleeps a
"full jitter" backoff, uniform in ``[0, min(max_delay, base_delay * 2**retry)]``, and only errors that the
caller's ``retryable`` says a retry can help (time-outs, refused or reset connections, HTTP 5xx, throttling)
are retried. So a call that never gets an answer takes at most about ``deadline`` seconds:

>>> from cse.retry import Attempts, RetryPolicy, retry_call
>>> tally = Attempts()
>>> retry_call(lambda: "answer", RetryPolicy(), lambda exc: False, tally)
'answer'
>>> tally.count
1
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from cse.exceptions import ConfigurationError

__all__ = ["Attempts", "RetryPolicy", "retry_call"]

T = TypeVar("T")
_random = random.SystemRandom()


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and for how long, one request is tried (module docstring)."""

    #: Sends of the request, the first included.
    max_attempts: int = 3
    #: Seconds over all attempts and backoffs after which no attempt starts.
    deadline: float = 15.0
    #: The longest one attempt may wait without an answer (the SDK's read timeout); 0 if unknown.
    attempt_timeout: float = 0.0
    #: Backoff: the first retry waits up to ``base_delay``, doubling, capped at ``max_delay``.
    base_delay: float = 0.1
    max_delay: float = 2.0

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ConfigurationError(
                f"max_attempts must be a whole number of at least 1, not {self.max_attempts!r}"
            )
        for name in ("deadline", "attempt_timeout", "base_delay", "max_delay"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}")
        if self.deadline <= 0:
            raise ConfigurationError(f"deadline must be a positive number of seconds, not {self.deadline!r}")

    def backoff(self, retry: int) -> float:
        """The sleep before retry number ``retry`` (0 for the first retry): full jitter."""
        return _random.uniform(0.0, min(self.max_delay, self.base_delay * (2.0**retry)))


@dataclass
class Attempts:
    """What :func:`retry_call` did: how many sends, over how long, and why it stopped."""

    count: int = 0
    started: float = field(default_factory=time.monotonic)
    #: ``"ok"``, ``"not retryable"``, ``"attempts"`` (all used) or ``"deadline"``.
    stopped: str = ""

    @property
    def elapsed(self) -> float:
        """Seconds since the first attempt started."""
        return time.monotonic() - self.started

    def describe(self, policy: RetryPolicy) -> str:
        """``3 attempt(s) in 12.3 s (deadline 15 s)``, for error messages."""
        why = {"deadline": ", the deadline was reached", "attempts": ", all attempts used"}.get(
            self.stopped, ""
        )
        return f"{self.count} attempt(s) in {self.elapsed:.1f} s (deadline {policy.deadline:g} s{why})"


def retry_call(
    fn: Callable[[], T],
    policy: RetryPolicy,
    retryable: Callable[[BaseException], bool],
    tally: Attempts | None = None,
) -> T:
    """Call ``fn`` until it returns, under ``policy``; re-raise its last error when an error is not
    ``retryable``, the attempts are used up, or the deadline leaves no room for another attempt.

    ``tally`` (optional) records the attempts, the time and the reason it stopped, for the error message.
    """
    tally = tally if tally is not None else Attempts()
    tally.started = time.monotonic()
    while True:
        tally.count += 1
        try:
            result = fn()
        except Exception as exc:
            if not retryable(exc):
                tally.stopped = "not retryable"
                raise
            if tally.count >= policy.max_attempts:
                tally.stopped = "attempts"
                raise
            delay = policy.backoff(tally.count - 1)
            left = policy.deadline - tally.elapsed - delay
            if left <= 0 or left < policy.attempt_timeout:
                tally.stopped = "deadline"
                raise
            time.sleep(delay)
            continue
        tally.stopped = "ok"
        return result
