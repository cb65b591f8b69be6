"""What we follow: a tracked orchestration as the poller knows it, and which are due.

:class:`Tracked` is what every face lists and what the engine polls; :class:`Silence` holds
an orchestration's notifications back for a while; :class:`SnapshotHead` is the part of a
stored snapshot that proves "nothing changed" without reading operation rows; :func:`due`
decides which tracked orchestrations a cycle polls. The store maps rows to these
records and back; it decides nothing about them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.core.models import FAILED, Orchestration
from watcher.core.stuck import Stalled


@dataclass(frozen=True, slots=True)
class Tracked:
    """A tracked orchestration with what we last knew of it (for ``list`` and the poller)."""

    orchestration_id: str
    channel: str | None
    tracked_at: datetime
    active: bool
    finished_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    last_full_sweep_at: datetime | None
    state: str | None
    description: str | None
    type: str | None
    counts: Mapping[str, int]
    operation_count: int
    not_found: bool
    #: When KEB created the orchestration (its ``createdAt``), once a poll has seen it.
    created_at: datetime | None = None
    #: What is stuck (``poll.stuck_after``), as the last poll found it.
    stuck: tuple[Stalled, ...] = ()

    def retries_watched_until(self, retry_window: float) -> datetime | None:
        """Until when a finished ``failed`` orchestration is still polled for a retry
        (``None``: it is not a failed one whose final summary went out)."""
        if self.finished_at is None or self.state != FAILED or self.not_found:
            return None
        return self.finished_at + timedelta(seconds=retry_window)

    def watching_for_retries(self, now: datetime, retry_window: float) -> bool:
        until = self.retries_watched_until(retry_window)
        return until is not None and now < until


@dataclass(frozen=True, slots=True)
class SnapshotHead:
    """The orchestration part of a snapshot, cheap to load: enough to decide that nothing
    changed without reading thousands of operation rows.

    ``counts`` are raw operations per state; ``expected_stats`` is KEB's ``operationStats``
    (per-instance ``failed``) for the stored operations."""

    orchestration_id: str
    orchestration: Orchestration | None
    expected_stats: Mapping[str, int] | None
    counts: Mapping[str, int]
    operation_count: int
    revision: int
    not_found: bool


@dataclass(frozen=True, slots=True)
class Silence:
    """One orchestration's silence: until when, why, set by whom and when."""

    orchestration_id: str
    until: datetime
    reason: str | None
    by: str | None
    at: datetime

    def held_back(self) -> str:
        """Why a notification it holds back was dropped (the outbox's ``last_error``).

        >>> from datetime import UTC
        >>> at = datetime(2026, 1, 1, tzinfo=UTC)
        >>> Silence("o", at, "INC-1", "ana", at).held_back()
        'held back: silenced until 2026-01-01T00:00:00.000000+00:00 by ana (INC-1)'
        """
        until = self.until.astimezone(UTC).isoformat(timespec="microseconds")
        by = f" by {self.by}" if self.by else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"held back: silenced until {until}{by}{why}"

    def to_json(self) -> dict[str, Any]:
        return {
            "until": self.until.isoformat(),
            "reason": self.reason,
            "by": self.by,
            "at": self.at.isoformat(),
        }


def due(tracked: Iterable[Tracked], now: datetime | None, retry_window: float) -> list[Tracked]:
    """The tracked orchestrations the next cycle polls: active and not finished, and failed
    ones whose final summary went out less than ``retry_window`` seconds before ``now`` (a
    failed orchestration can still be retried, docs/keb-api.md §12.4).

    >>> from datetime import UTC
    >>> at = datetime(2026, 1, 1, tzinfo=UTC)
    >>> done = Tracked("o", None, at, True, at, at, None, 0, None, FAILED, None, None, {}, 0, False)
    >>> [len(due([done], at + timedelta(hours=h), 86400.0)) for h in (1, 25)]
    [1, 0]
    """
    return [
        t
        for t in tracked
        if t.finished_at is None or (now is not None and t.watching_for_retries(now, retry_window))
    ]
