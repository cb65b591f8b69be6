"""One poll cycle over the selections (fleet watch), beside the orchestrations' cycle.

For each selection: load its records, observe (:mod:`watcher.engine.fleet_observer`), diff
(:func:`watcher.core.fleet_diff.fleet_diff`), ask the policy for intents
(:func:`watcher.core.fleet_policy.fleet_intents`), and commit records, transitions and intents
in one transaction (:meth:`watcher.store.selections.SelectionStore.commit`). A selection whose
reads fail keeps its records; the error is recorded against it and reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.core.fleet_diff import FleetChange
from watcher.core.fleet_policy import fleet_intents
from watcher.engine.fleet_observer import FleetWatch
from watcher.errors import KebError
from watcher.keb.runtimes import RuntimesClient
from watcher.store.selections import SelectionStore


@dataclass(frozen=True, slots=True)
class SelectionReport:
    """How polling one selection went."""

    name: str
    ok: bool
    runtimes: int = 0
    transitions: int = 0
    requests: int = 0
    baseline: bool = False
    full_sweep: bool = False
    error: str | None = None
    exception: KebError | None = None
    #: Runtimes found this cycle to make KEB fail their pages (reported once each).
    unreadable: tuple[str, ...] = ()


async def poll_selections(
    store: SelectionStore,
    client: RuntimesClient,
    *,
    now: datetime,
    full_sweep_every: float,
    notify: bool,
) -> list[SelectionReport]:
    """Poll every selection once, in the order they were added."""
    reports: list[SelectionReport] = []
    for tracked in store.selections():
        previous = store.records(tracked.name)
        watch = FleetWatch(
            tracked.selection,
            timedelta(seconds=full_sweep_every),
            records=dict(previous),
            last_full_sweep=tracked.last_full_sweep_at,
            baseline_taken=tracked.baseline_at is not None,
        )
        baseline = tracked.baseline_at is None
        full = watch.full_due(now)
        before = client.stats.requests
        try:
            transitions = await watch.poll(client, now)
        except KebError as err:
            store.record_failure(tracked.name, str(err), now)
            reports.append(SelectionReport(tracked.name, False, error=str(err), exception=err))
            continue
        intents = (
            fleet_intents(
                tracked.name,
                tracked.channel,
                watch.records,
                transitions,
                baseline=baseline,
                now=now,
            )
            if notify
            else []
        )
        store.commit(
            tracked.name, previous, watch.records, transitions, intents, now=now, full_sweep=full
        )
        reports.append(
            SelectionReport(
                tracked.name,
                True,
                runtimes=len(watch.records),
                transitions=len(transitions),
                requests=client.stats.requests - before,
                baseline=baseline,
                full_sweep=full,
                unreadable=tuple(
                    t.instance_id for t in transitions if t.change is FleetChange.UNREADABLE
                ),
            )
        )
    return reports
