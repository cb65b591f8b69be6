"""What the dashboard's pages read (:mod:`watcher.faces.web`), through the composition root.

Each request of the dashboard runs in a thread of its own: :meth:`DashboardReads.reader` gives
it a watcher on its own connection to the same database (a store serves one thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from watcher.core.diff import Transition
from watcher.core.models import Operation, Orchestration, finished_count
from watcher.core.policy import Reference, summary
from watcher.errors import UsageError
from watcher.notify.pages import PageRenderer
from watcher.store.board import OperationPage
from watcher.store.database import Store

if TYPE_CHECKING:
    from watcher.app import Watcher

#: The dashboard's autoescaping page renderer, for the web face.
__all__ = ["BoardState", "DashboardReads", "PageRenderer"]


@dataclass(frozen=True, slots=True)
class BoardState:
    """The top of the dashboard: ``revision`` changes whenever a poll recorded something or
    ended, ``last_cycle_at`` is when the last poll cycle ended, ``unhealthy_since`` since when
    KEB has been failing (``keb_error`` why), ``undelivered`` the outbox depth, ``given_up``
    how many of those were given up after failing for ``slack.give_up_after``."""

    revision: str
    last_cycle_at: datetime | None
    unhealthy_since: datetime | None
    keb_error: str | None
    undelivered: int
    given_up: int = 0


class DashboardReads:
    """The dashboard's view of one :class:`~watcher.app.Watcher`."""

    def __init__(self, app: Watcher) -> None:
        self.app = app

    def reader(self) -> Watcher:
        """This watcher on a connection of its own to the same database, for another thread
        (a request of the dashboard: a :class:`Store` serves one thread). Close it after use."""
        if self.app.memory:
            raise UsageError("the dashboard needs a database file, not an in-memory store")
        from watcher.app import Watcher

        return Watcher(
            self.app.config,
            clock=self.app.clock,
            store=Store(self.app.config.storage.path, create=False),
        )

    def progress(self, orch_id: str) -> dict[str, Any] | None:
        """What every message shows of an orchestration as last seen (counts, elapsed,
        throughput, ETA: :func:`watcher.core.policy.summary`); None before its first poll."""
        head = self.app.store.load_head(orch_id)
        if head.orchestration is None:
            return None
        found = self.app.store.reference(orch_id)
        reference = Reference(found[0], finished_count(found[1])) if found else None
        return summary(head.orchestration, head.counts, self.app.clock(), reference)

    def orchestration(self, orch_id: str) -> Orchestration | None:
        """KEB's orchestration object as last polled, or None."""
        return self.app.store.load_head(orch_id).orchestration

    def failure_reasons(self, orch_id: str, limit: int = -1) -> list[tuple[str, int]]:
        return self.app.store.failure_reasons(orch_id, limit)

    def failed_operations(self, orch_id: str) -> list[Operation]:
        return self.app.store.failed_operations(orch_id)

    def find_operations(
        self, orch_id: str, *, states: Sequence[str], search: str, limit: int
    ) -> OperationPage:
        return self.app.store.find_operations(orch_id, states=states, search=search, limit=limit)

    def timeline(self, orch_id: str, recent: int) -> tuple[list[Transition], list[Transition]]:
        """The orchestration-level transitions (oldest first) and the newest ``recent``
        transitions of any kind (newest first)."""
        return (
            self.app.store.orchestration_transitions(orch_id),
            self.app.store.recent_transitions(orch_id, recent),
        )

    def pulse(self) -> tuple[str, datetime | None]:
        """What the pages' once-a-second check needs: the revision of the data and when the
        last poll cycle ended (two small reads; no health, no outbox count)."""
        return self.app.store.revision(), self.app.store.last_cycle_at()

    def board_state(self) -> BoardState:
        """What the top of the dashboard shows, and the revision of the data it shows."""
        since, error, _alerted = self.app.store.health()
        counts, _oldest = self.app.outbox().depth()
        return BoardState(
            revision=self.app.store.revision(),
            last_cycle_at=self.app.store.last_cycle_at(),
            unhealthy_since=since,
            keb_error=error,
            undelivered=sum(counts.values()),
            given_up=counts["dead"],
        )
