"""When ``watcher run`` ticks, which orchestrations it polls on a tick, which ones it discovers.

Pure decisions (no I/O, no clock reads: ``now`` is passed in), table-tested in
``tests/test_runner.py``; :mod:`watcher.faces.run.service` does the I/O around them.

The service ticks every ``[poll] interval`` (or on its cron schedule). Not every tracked
orchestration needs every tick; the cadence adapts to what KEB is doing, in ticks so that it
scales with the configured interval:

* **every tick** while operations run, while KEB is canceling or retrying, before the first
  poll of this process, and after a failed poll;
* **every** :data:`~watcher.core.pace.PENDING_TICKS` **ticks** while everything unfinished
  is pending (KEB starts operations as workers free up), and while an ended orchestration
  waits for its final notification to be delivered;
* while every pending operation waits for a maintenance window that opens later: **half the
  time until the first window opens**, within :data:`~watcher.core.pace.WINDOW_TICKS`.

Maintenance windows are read as ``watcher watch`` reads them
(:func:`watcher.core.pace.window_wait`: concrete dates, or year-0 times of day that repeat
daily in UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from watcher.core.afterlife import running
from watcher.core.models import (
    FAILED,
    IN_PROGRESS,
    MaintenanceWindow,
    Orchestration,
    is_terminal_orchestration,
)
from watcher.core.pace import poll_every, service_pace

#: A failed orchestration may be retried at any time: it is checked at least this often.
RETRY_CHECK: Final = 60.0


@dataclass(frozen=True, slots=True)
class Standing:
    """What the scheduler knows about one tracked orchestration at a tick.

    ``windows`` are the maintenance windows of its pending operations; the caller needs to
    load them only when :func:`watcher.core.pace.idle_pending` is true.
    """

    orchestration_id: str
    state: str | None
    counts: Mapping[str, int]
    failing: bool = False
    last_polled: datetime | None = None
    windows: tuple[MaintenanceWindow, ...] = ()


def cadence(
    state: str | None,
    counts: Mapping[str, int],
    windows: Iterable[MaintenanceWindow],
    now: datetime,
    tick: float,
) -> float:
    """Seconds between two polls of one orchestration; ``0.0`` means every tick.

    The rule is :func:`watcher.core.pace.poll_every` within :func:`~watcher.core.pace.service_pace`;
    before the first poll (``state`` unknown) every tick; a ``failed`` one every tick too, up
    to once a minute (a retry may come at any time, docs/keb-api.md §12.4, and checking costs
    one request: docs/contract.md §2.4); a succeeded or canceled one that waits for its final
    notification every :data:`~watcher.core.pace.PENDING_TICKS` ticks.

    >>> cadence("in progress", {"in progress": 2, "pending": 5}, (), None, 60.0)
    0.0
    >>> cadence("pending", {"pending": 5}, (), None, 60.0)
    180.0
    >>> cadence("failed", {"failed": 1}, (), None, 60.0), cadence("failed", {}, (), None, 10.0)
    (0.0, 60.0)
    """
    pace = service_pace(tick)
    if state is None:
        return pace.quick
    if is_terminal_orchestration(state) and running(counts):
        # Operations outlive the outcome (docs/keb-concurrency.md §3.4): followed as if the
        # orchestration still ran, until they end.
        return poll_every(IN_PROGRESS, counts, windows, now, pace)
    if state == FAILED:
        return RETRY_CHECK if tick < RETRY_CHECK else pace.quick
    if is_terminal_orchestration(state):
        return pace.pending
    return poll_every(state, counts, windows, now, pace)


def is_due(item: Standing, now: datetime, tick: float) -> bool:
    """Poll ``item`` on this tick? Half a tick of slack absorbs jitter and cycle time."""
    if item.failing or item.last_polled is None:
        return True
    every = cadence(item.state, item.counts, item.windows, now, tick)
    return every == 0.0 or (now - item.last_polled).total_seconds() >= every - tick / 2


def due(items: Sequence[Standing], now: datetime, tick: float) -> list[str]:
    """The IDs to poll on this tick, in the order given."""
    return [item.orchestration_id for item in items if is_due(item, now, tick)]


@dataclass(frozen=True, slots=True)
class Discovery:
    """What discovery makes of one KEB listing: IDs to track, and ended ones it leaves alone."""

    new: tuple[str, ...]
    ended: tuple[str, ...]


def discover(
    listed: Iterable[Orchestration], known: Iterable[str], types: Sequence[str] = ()
) -> Discovery:
    """New orchestrations to track: not known yet (tracked, untracked or finished before),
    of one of ``types`` (any if empty), and not already ended.

    An orchestration that has already ended when discovery first sees it is *not* tracked:
    nothing is recorded and nothing announced, so turning discovery on never floods a channel
    with old outcomes. If KEB runs it again (a retry), the next listing finds it active and
    tracks it then. (KEB filters by ``[poll] discover_states`` itself.)
    """
    seen = set(known)
    new: list[str] = []
    ended: list[str] = []
    for orch in listed:
        orch_id = orch.orchestration_id
        if orch_id in seen or (types and orch.type not in types):
            continue
        seen.add(orch_id)
        (ended if is_terminal_orchestration(orch.state) else new).append(orch_id)
    return Discovery(tuple(new), tuple(ended))
