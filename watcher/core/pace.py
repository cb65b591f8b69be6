"""How often to poll one orchestration: the one rule behind ``watch`` and ``run``.

Both faces poll quickly while operations run and slowly while everything waits. They differ
only in their bounds: ``watcher watch`` counts in seconds (:data:`WATCH_PACE`), ``watcher run``
in ticks of its schedule (:func:`service_pace`). Pure: ``now`` is passed in.

KEB facts this relies on (docs/keb-api.md §4 and §12.1): pending operations start as workers
free up, or, with ``maintenanceWindow: true``, inside their own runtime's window, which may be
hours away; a year-0 window (``0000-01-01T22:00:00Z``) is a time of day that repeats daily.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from watcher.core.models import (
    CANCELING,
    IN_PROGRESS,
    PENDING,
    RETRYING,
    MaintenanceWindow,
    is_terminal_operation,
)


@dataclass(frozen=True, slots=True)
class Pace:
    """Seconds between polls: ``quick`` while anything moves, ``pending`` while everything
    unfinished is pending, and between ``window_low`` and ``window_high`` (half the time until
    the first window opens) while every pending operation waits for a later window."""

    quick: float
    pending: float
    window_low: float
    window_high: float


#: ``watcher watch``: a person is looking, so changes show within seconds.
WATCH_PACE: Final = Pace(quick=5.0, pending=30.0, window_low=60.0, window_high=300.0)
#: ``watcher run`` polls while anything moves on every tick, else every this many ticks...
PENDING_TICKS: Final = 3
#: ...and within these bounds, in ticks, while every pending operation waits for a window.
WINDOW_TICKS: Final = (3, 30)


def service_pace(tick: float) -> Pace:
    """The service's bounds for a schedule that ticks every ``tick`` seconds; ``quick`` is
    ``0.0``: every tick.

    >>> service_pace(60.0)
    Pace(quick=0.0, pending=180.0, window_low=180.0, window_high=1800.0)
    """
    low, high = WINDOW_TICKS
    return Pace(
        quick=0.0, pending=PENDING_TICKS * tick, window_low=low * tick, window_high=high * tick
    )


def window_wait(window: MaintenanceWindow, now: datetime) -> float | None:
    """Seconds until ``window`` opens: ``0.0`` while it is open, ``None`` when unknown.

    A concrete window (dates) that has passed is unknown: KEB will pick another one. A
    year-0 window (times of day only, docs/keb-api.md §3) repeats daily in UTC.

    >>> from datetime import UTC, datetime
    >>> w = MaintenanceWindow("0000-01-01T22:00:00Z", "0000-01-01T02:00:00Z")
    >>> window_wait(w, datetime(2024, 5, 14, 21, 0, tzinfo=UTC))
    3600.0
    >>> window_wait(w, datetime(2024, 5, 14, 1, 0, tzinfo=UTC))
    0.0
    """
    begin, end = window.begin_at, window.end_at
    if begin is not None:
        if now < begin:
            return (begin - now).total_seconds()
        return 0.0 if end is None or now < end else None
    daily = window.daily
    if daily is None:
        return None
    start, stop = (t.hour * 3600 + t.minute * 60 + t.second for t in daily)
    now = now.astimezone(UTC)
    current = now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1e6
    is_open = start <= current < stop if start < stop else current >= start or current < stop
    return 0.0 if is_open or start == stop else (start - current) % 86400


def idle_pending(state: str | None, counts: Mapping[str, int]) -> bool:
    """Every unfinished operation is pending (or the orchestration itself is)."""
    if state == PENDING:
        return True
    if state != IN_PROGRESS:
        return False
    unfinished = {s for s, n in counts.items() if n and not is_terminal_operation(s)}
    return unfinished == {PENDING}


def poll_every(
    state: str | None,
    counts: Mapping[str, int],
    pending_windows: Iterable[MaintenanceWindow],
    now: datetime,
    pace: Pace,
) -> float:
    """Seconds until the next poll of one orchestration, within ``pace``.

    ``pending_windows`` are the maintenance windows of the pending operations; the caller
    needs to load them only when :func:`idle_pending` is true.

    >>> poll_every("in progress", {"in progress": 2, "pending": 5}, (), None, WATCH_PACE)
    5.0
    >>> poll_every("pending", {"pending": 5}, (), None, service_pace(60.0))
    180.0
    """
    if state in (CANCELING, RETRYING) or not idle_pending(state, counts):
        return pace.quick
    waits = [window_wait(w, now) for w in pending_windows]
    if waits and all(w is not None and w > 0 for w in waits):
        soonest = min(w for w in waits if w is not None)
        return min(pace.window_high, max(pace.window_low, soonest / 2))
    return pace.pending
