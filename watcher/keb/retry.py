"""When to try a KEB request again, and how long to wait first. Pure: no I/O, no clock reads.

The client retries connection failures, timeouts, 5xx, 429 and damaged 2xx bodies; this module
only decides the delays. ``Retry-After`` (RFC 9110 §10.2.3) is either delay-seconds or an
HTTP-date; both are honoured, capped so that a confused gateway cannot park a poll for hours.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: The longest server-requested wait the client will honour, in seconds.
MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter for transient KEB failures.

    ``attempts`` counts every try, the first one included, so ``attempts=1`` never retries.
    The delay after failed attempt *n* is ``min(cap, base * 2**(n-1))`` reduced by up to
    ``jitter`` of itself (so concurrent pollers do not retry in lockstep), but never less than
    the server's ``Retry-After`` (itself capped at ``max_retry_after``).

    >>> policy = RetryPolicy(attempts=4, base=0.5, cap=10.0, jitter=0.0)
    >>> [policy.delay(n) for n in (1, 2, 3, 6)]
    [0.5, 1.0, 2.0, 10.0]
    >>> policy.delay(1, retry_after=2.0)
    2.0
    >>> policy.delay(1, retry_after=3600.0)
    300.0
    """

    attempts: int = 4
    base: float = 0.5
    cap: float = 10.0
    jitter: float = 0.5
    max_retry_after: float = MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, got {self.attempts}")
        if self.base < 0 or self.cap < 0 or self.max_retry_after < 0:
            raise ValueError("RetryPolicy.base, cap and max_retry_after must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"RetryPolicy.jitter must be between 0 and 1, got {self.jitter}")

    def should_retry(self, attempt: int) -> bool:
        """Whether another try is allowed after failed attempt number ``attempt`` (1-based)."""
        return attempt < self.attempts

    def backoff(self, attempt: int) -> float:
        """The delay before jitter: ``min(cap, base * 2**(attempt-1))``."""
        exponent = min(max(attempt - 1, 0), 62)
        return min(self.cap, self.base * 2.0**exponent)

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        *,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        ``rng`` returns a float in ``[0, 1)``; pass a constant for deterministic delays.
        """
        backoff = self.backoff(attempt)
        delay = backoff * (1.0 - self.jitter * rng())
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or ``None`` if absent or unreadable.

    Accepts delay-seconds (``"2"``) and an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``),
    which is measured from ``now``; a date in the past means "now" (``0.0``).

    >>> parse_retry_after("2", datetime(2024, 1, 1, tzinfo=UTC))
    2.0
    >>> parse_retry_after("Mon, 01 Jan 2024 00:00:30 GMT", datetime(2024, 1, 1, tzinfo=UTC))
    30.0
    >>> parse_retry_after("soon", datetime(2024, 1, 1, tzinfo=UTC)) is None
    True
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
