"""Time, in one place: the wall clock the I/O layers read, and the ISO form the store keeps.

Pure code (:mod:`watcher.core`) never reads the clock: callers pass ``now``. Long-running
parts (the engine, the sender, the lease, the service) take a :data:`Clock` argument that
defaults to :func:`utcnow`, so tests and the demo run them on a simulated clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

#: Something that tells the current time, timezone-aware.
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    """The stored form of a time: UTC, microseconds, sortable as text.

    >>> from datetime import timedelta, timezone
    >>> iso(datetime(2024, 5, 14, 10, 0, tzinfo=timezone(timedelta(hours=2))))
    '2024-05-14T08:00:00.000000+00:00'
    """
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_iso(value: str | None) -> datetime | None:
    """The inverse of :func:`iso`; ``None`` for a missing value."""
    return datetime.fromisoformat(value) if value else None
