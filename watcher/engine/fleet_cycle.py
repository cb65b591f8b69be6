"""One poll cycle over the selections (fleet watch), beside the orchestrations' cycle.

For each selection: load its records, observe (:mod:`watcher.engine.fleet_observer`), diff
(:func:`watcher.core.fleet_diff.fleet_diff`), ask the policy for intents
(:func:`watcher.core.fleet_policy.fleet_intents`), and commit records, transitions and intents
in one transaction (:meth:`watcher.store.selections.SelectionStore.commit`). A selection whose
reads fail keeps its records; the error is recorded against it and reported. After the
commit, what is stuck (``poll.fleet_stuck_after``) is evaluated with :mod:`watcher.core.stuck`,
as for an orchestration: a ``stuck`` or ``unstuck`` reply in the selection's thread and the
card edited, once per change of what is stuck.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.core.fleet import TrackedSelection
from watcher.core.fleet_diff import FleetChange, RuntimeRecord
from watcher.core.fleet_policy import ended_counts, fleet_intents, outbox_id, stuck_candidates
from watcher.core.followed import Followed, SourceKind
from watcher.core.stuck import Stalled, stalled, stuck_intents
from watcher.core.stuck import view as stuck_view
from watcher.engine.fleet_observer import FleetWatch
from watcher.engine.keb_health import watch_keb_health
from watcher.errors import KebError
from watcher.keb.runtimes import RuntimesClient
from watcher.store.selections import SelectionStore

#: The card counts what finished in the last 24 hours (PRODUCT.md "Fleet watch").
DAY = timedelta(hours=24)


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
    stuck_after: float = 0.0,
    alert_after: float | None = None,
    keb_url: str = "",
) -> list[SelectionReport]:
    """Poll every selection once, in the order they were added; ``stuck_after`` (seconds,
    0: off) is the selections' stuck threshold; ``alert_after`` (``None``: no alerts) feeds
    the blind alert (:mod:`watcher.engine.keb_health`)."""
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
        # Read even when the check is off: what was stuck before it was turned off is cleared.
        was_stuck = store.stuck_of(tracked.name)
        intents = (
            fleet_intents(
                tracked.name,
                tracked.channel,
                watch.records,
                transitions,
                baseline=baseline,
                now=now,
                stuck=stuck_view(was_stuck, now, stuck_after) if stuck_after > 0 else None,
                recent=ended_counts(store.ended_since(tracked.name, now - DAY)),
            )
            if notify
            else []
        )
        store.commit(
            tracked.name, previous, watch.records, transitions, intents, now=now, full_sweep=full
        )
        _check_stuck(store, tracked, watch.records, was_stuck, now, stuck_after, notify)
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
    if alert_after is not None:
        outcomes = [None if r.ok else r.exception for r in reports]
        watch_keb_health(store.store, outcomes, now=now, alert_after=alert_after, url=keb_url)
    return reports


def _check_stuck(
    store: SelectionStore,
    tracked: TrackedSelection,
    records: dict[str, RuntimeRecord],
    previous: tuple[Stalled, ...],
    now: datetime,
    after: float,
    notify: bool,
) -> None:
    """Stuck is news (:mod:`watcher.core.stuck`), evaluated after every successful poll of
    the selection: what is stuck and the replies about a change, in one transaction."""
    if after <= 0:  # off: what was stuck is forgotten, without an all-clear nothing earned
        if previous:
            store.record_stuck(tracked.name, (), (), now)
        return
    name = tracked.name
    baseline = tracked.baseline_at or now
    candidates = stuck_candidates(records, store.entered(name, records), baseline)
    current = stalled(candidates, now, after)
    if [(s.key, s.since) for s in previous] == [(s.key, s.since) for s in current]:
        return
    key_of = outbox_id(name)
    base = {"fleet": name, "followed": Followed(SourceKind.SELECTION, name).metadata()}
    intents = (
        stuck_intents(
            key_of,
            previous=previous,
            current=current,
            base=base,
            card=store.store.last_card(key_of),
            channel=tracked.channel,
            now=now,
            after=after,
        )
        if notify
        else []
    )
    store.record_stuck(name, current, intents, now)
