"""Reading a selection of runtimes as cheaply as can be proven correct.

The strategy (docs/keb-runtimes-api.md §8, "§" below; docs/architecture.md §8):

1. **Every cycle**, the selection's runtimes in an active state: one walk of
   ``state=provisioning&state=deprovisioning&state=updating&state=upgrading`` with
   ``op_detail=last``. With 20 operations in progress that is one request, however large the
   selection.
2. **Runtimes that were active last cycle** and are missing from that walk, or whose open
   operation it no longer shows, are read by ``instance_id`` with ``op_detail=all`` and
   ``state=all`` (50 per request): the ``state`` filter and the state shown disagree (§2.3),
   ``last`` hides an operation once a newer one runs, and a suspended runtime leaves the
   default list. Their lists show how every open operation ended (or that KEB no longer
   shows it: the update list holds two, §3.5).
3. **Those still missing** are asked of the archive (``state=deprovisioned&instance_id=``):
   listed there, the runtime was deprovisioned; otherwise nothing is concluded (a page walk
   can skip rows, §4.4) and the next cycle asks again.
4. **Every** ``poll.full_sweep_every``, and on the first poll (the baseline), the whole
   selection instead of step 1 (``state=all``, ``op_detail=last``; the default filter would
   hide suspended and deprovision-incomplete runtimes, §2.3): it finds operations that
   started and ended between two polls and runtimes that were never active, and every known
   runtime absent from it goes through steps 2 and 3.

Timestamps are never compared with the poller's clock (three clocks, §8), and ``updatedAt`` is
not read as a heartbeat: what moved is what KEB's operation IDs and states say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.core.fleet import ACTIVE_FILTER, Selection
from watcher.core.fleet_diff import (
    FleetObservation,
    FleetTransition,
    RuntimeRecord,
    fleet_diff,
)
from watcher.keb.runtimes import RuntimesClient


async def observe_fleet(
    client: RuntimesClient,
    selection: Selection,
    records: Mapping[str, RuntimeRecord],
    *,
    full: bool,
) -> FleetObservation:
    """One cycle's reads of ``selection`` (see the module docstring)."""
    filters = selection.params()
    listing = await client.listing(filters, states=("all",) if full else ACTIVE_FILTER)
    seen = dict(listing.runtimes)
    follow_up: set[str] = set()
    for instance_id, record in records.items():
        open_ops = record.open_operations()
        runtime = seen.get(instance_id)
        if runtime is None:
            if open_ops or full:
                follow_up.add(instance_id)
        elif open_ops:
            shown = {op.operation_id for op in runtime.operations}
            if any(op.operation_id not in shown for op in open_ops):
                follow_up.add(instance_id)
    detailed: set[str] = set()
    deprovisioned: set[str] = set()
    if follow_up:
        details = await client.by_instances(follow_up)
        for instance_id, runtime in details.runtimes.items():
            seen[instance_id] = runtime
            detailed.add(instance_id)
        missing = follow_up - set(details.runtimes)
        if missing:
            deprovisioned = await client.deprovisioned(missing)
    return FleetObservation(
        runtimes=seen,
        detailed=frozenset(detailed),
        complete=full,
        deprovisioned=frozenset(deprovisioned),
        unreadable=frozenset(listing.unreadable),
    )


@dataclass(slots=True)
class FleetWatch:
    """One selection followed cycle after cycle: its records, when it was last swept whole,
    and the requests each cycle cost. The store keeps the records between processes; this
    holds them for one."""

    selection: Selection
    full_sweep_every: timedelta
    records: dict[str, RuntimeRecord] = field(default_factory=dict)
    last_full_sweep: datetime | None = None
    baseline_taken: bool = False

    def full_due(self, now: datetime) -> bool:
        return (
            self.last_full_sweep is None
            or not self.baseline_taken
            or now - self.last_full_sweep >= self.full_sweep_every
        )

    async def poll(self, client: RuntimesClient, now: datetime) -> list[FleetTransition]:
        """One cycle: observe, diff, keep the new records; the transitions it recorded."""
        full = self.full_due(now)
        observed = await observe_fleet(client, self.selection, self.records, full=full)
        result = fleet_diff(
            self.selection.name, self.records, observed, now, baseline=not self.baseline_taken
        )
        self.records = result.records
        self.baseline_taken = True
        if full:
            self.last_full_sweep = now
        return result.transitions
