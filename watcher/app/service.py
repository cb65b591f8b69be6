"""The cycle ``watcher run`` schedules, composed in one place.

:class:`ServiceCycles` is what :mod:`watcher.faces.run.service` asks for on each tick: over the
same KEB client (one per process, opened by :meth:`ServiceCycles.open`) and the same store
that ``watcher poll`` uses, it runs discovery (opt-in), one engine cycle over the tracked
orchestrations due on this tick (:func:`watcher.core.cadence.due`, fed by one query for the
pending maintenance windows) and the fleet selections, and reads back what the cycle recorded.
It decides nothing about scheduling, HTTP or signals, which stay in the face; it holds the
state a cycle needs from the one before (when each orchestration was last polled).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from watcher.core.cadence import Standing, discover, due
from watcher.core.diff import Transition
from watcher.core.pace import idle_pending
from watcher.core.tracked import Tracked
from watcher.engine.cycle import CycleReport, Engine
from watcher.errors import KebError
from watcher.keb import KebClient
from watcher.keb.timing import ExchangeHook
from watcher.notify.sender import DeliveryReport, Sender
from watcher.store.lease import Holding, Keeper, Lease, holder_id, lease_ttl
from watcher.store.outbox import Outbox
from watcher.store.retention import Pruned, prune

if TYPE_CHECKING:
    from watcher.app import Watcher
    from watcher.engine.fleet_cycle import SelectionReport

#: What the ``run`` face reads besides the cycles: the lease and the records of a cycle and a
#: delivery (faces import ``app``, never the layers below it).
__all__ = [
    "CycleReport",
    "DeliveryReport",
    "Holding",
    "Keeper",
    "Lease",
    "Outbox",
    "Recorded",
    "Sender",
    "ServiceCycle",
    "ServiceCycles",
]

log = logging.getLogger("watcher.app.service")


@dataclass
class ServiceCycle:
    """One scheduled cycle: the engine's report, the selections polled beside it, what
    discovery started tracking, and whether any request to KEB was answered."""

    report: CycleReport
    #: How many tracked orchestrations the cycle chose from.
    tracked: int
    fleet: list[SelectionReport] = field(default_factory=list)
    discovered: list[str] = field(default_factory=list)
    success: bool = True
    #: The first error of the cycle (discovery, an orchestration, a selection), if any.
    error: str | None = None


@dataclass
class Recorded:
    """What the store holds after a cycle: the transitions recorded since the last read, the
    state of each tracked orchestration, and its failed operations by reason."""

    transitions: list[Transition]
    states: list[str | None]
    failure_reasons: list[tuple[str, int]]


class ServiceCycles:
    """The cycles of one ``watcher run`` over one KEB client, engine and sender."""

    def __init__(self, app: Watcher, tick: float) -> None:
        self.app = app
        self.tick = tick
        self._keb: KebClient | None = None
        self._engine: Engine | None = None
        self.sender: Sender | None = None
        self._last_polled: dict[str, datetime] = {}
        self._ended_seen: set[str] = set()
        self._last_transition = app.store.last_transition_id()

    @asynccontextmanager
    async def open(self, *, observe: ExchangeHook | None = None) -> AsyncIterator[None]:
        """Open the KEB client (``observe`` sees every exchange) and build the engine and
        the sender over it, for the life of the service."""
        async with self.app.keb(observe=observe) as keb:
            self._keb = keb
            self._engine = self.app.engine(keb)
            self.sender = self.app.sender()
            try:
                yield
            finally:
                self._keb = self._engine = self.sender = None

    # -- what the face reads --------------------------------------------------------------

    def lost(self) -> str | None:
        """Why the database can no longer be used (deleted, replaced, read-only), or None."""
        return self.app.store.lost()

    def outbox(self) -> Outbox:
        return self.app.outbox()

    def lease(self) -> Lease:
        """This process's claim on the single-instance lease, renewed every few ticks."""
        return Lease(self.app.store, holder_id(), lease_ttl(self.tick))

    def keb_stats(self) -> Mapping[str, int]:
        assert self._keb is not None
        return self._keb.stats.snapshot()

    def prune(self, now: datetime) -> Pruned:
        """Forget what ended more than ``storage.retention`` ago."""
        return prune(self.app.store, now, self.app.config.storage.retention)

    def recorded(self) -> Recorded:
        """What the cycles recorded since the last call, and the tracked set as it is now."""
        store = self.app.store
        self._last_transition, new = store.transitions_after(self._last_transition)
        return Recorded(new, [t.state for t in store.tracked()], store.tracked_failure_reasons())

    # -- one cycle ------------------------------------------------------------------------

    async def cycle(self, now: datetime) -> ServiceCycle:
        """Discovery (when on), one engine cycle over what is due at ``now``, and the fleet
        selections. Raises :class:`~watcher.errors.WatcherError` when the cycle itself
        cannot run (the store failed); KEB's errors are in the result."""
        assert self._engine is not None
        config = self.app.config
        attempts = answered = 0
        error: str | None = None
        discovered: list[str] = []
        if config.poll.discover:
            attempts += 1
            try:
                discovered = await self._discover()
                answered += 1
            except KebError as exc:
                log.warning("discovery: cannot list orchestrations: %s", exc)
                error = str(exc)
        chosen_from: list[int] = [0]

        def select(items: Sequence[Tracked]) -> list[Tracked]:
            chosen_from[0] = len(items)
            return self._select(items, now)

        report = await self._engine.poll_once(select=select)
        # Selections of runtimes (fleet watch) in the same cycle, through /runtimes.
        fleet = await self.app.fleet.poll(notify=self.app.destination() is not None)
        for result in report.results:
            if result.ok:
                self._last_polled[result.orchestration_id] = now
            else:
                self._last_polled.pop(result.orchestration_id, None)
                error = error or result.message
        attempts += len(report.results) + len(fleet)
        answered += sum(result.ok for result in report.results) + sum(f.ok for f in fleet)
        for selection in fleet:
            if not selection.ok:
                log.warning("fleet %s: poll failed: %s", selection.name, selection.error)
                error = error or selection.error
        success = attempts == 0 or answered > 0
        return ServiceCycle(report, chosen_from[0], fleet, discovered, success, error)

    def _select(self, items: Sequence[Tracked], now: datetime) -> list[Tracked]:
        """The tracked orchestrations due on this tick (:func:`watcher.core.cadence.due`)."""
        windows = self.app.store.pending_windows_of(t.orchestration_id for t in items)
        standings = []
        for t in items:
            last = self._last_polled.get(t.orchestration_id)
            idle = last is not None and idle_pending(t.state, t.counts)
            standings.append(
                Standing(
                    t.orchestration_id,
                    t.state,
                    t.counts,
                    t.consecutive_failures > 0,
                    last,
                    windows.get(t.orchestration_id, ()) if idle else (),
                )
            )
        chosen = set(due(standings, now, self.tick))
        return [t for t in items if t.orchestration_id in chosen]

    async def _discover(self) -> list[str]:
        """Track what KEB lists that is new and still running; the IDs newly tracked."""
        assert self._keb is not None
        poll = self.app.config.poll
        store = self.app.store
        listed = await self._keb.list_orchestrations(poll.discover_states)
        known = [t.orchestration_id for t in store.tracked(include_inactive=True)]
        found = discover(listed, known, poll.discover_types)
        if found.new:
            store.track(found.new, None, self.app.clock())
            for orch_id in found.new:
                log.info("discovery: tracking %s", orch_id, extra={"orchestration_id": orch_id})
        for orch_id in set(found.ended) - self._ended_seen:
            self._ended_seen.add(orch_id)
            log.debug(
                "discovery: %s had already ended when first listed; not tracked",
                orch_id,
                extra={"orchestration_id": orch_id},
            )
        return list(found.new)
