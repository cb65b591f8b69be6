"""Observe one orchestration as cheaply as KEB allows, never at the cost of correctness.

KEB has no per-operation timestamps and pages cap at 100, so the naive cycle re-reads every
page. This module uses what KEB does offer (docs/keb-api.md §2, §3.4, §4):

1. ``GET /orchestrations/{id}`` carries ``operationStats``, which changes with every operation
   state change (operations only move forward; ``failed`` is de-duplicated per instance, which
   :func:`watcher.core.models.operation_stats` reproduces). If state, description and stats equal
   what our snapshot predicts, nothing changed: **one request**.
   (Its blind spot, a compensated insertion or deletion: :mod:`watcher.engine.incremental`.)
2. Otherwise, an *incremental* observation (:mod:`watcher.engine.incremental`): the small
   lists name what moved, whatever its place in the pending list, a closing GET confirms
   that KEB did not move while they were read, and the predicted operations must reproduce
   KEB's ``operationStats`` exactly. When KEB did move, only what was read directly is
   recorded (``partial``) and the next cycle sweeps. When the proof fails before any list
   was read, a full sweep follows; after, the observation is deferred to the next cycle's
   full sweep, so no cycle costs more than a full sweep plus one request.
3. On the baseline, on orchestration state/description changes, periodically (not while a
   failed orchestration waits for a retry) and after a deferral, a *full sweep* of all pages.
   Operations missing from a sweep are only declared vanished after their own GET answers
   404 (a paging race can hide an operation, deletion cannot). A read never takes a stored
   operation backwards but through a retry. When the orchestration changed while the pages
   were read, the operations read are still recorded (``partial``, against the stored
   orchestration) and the next cycle sweeps: a busy orchestration cannot starve the sweep.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from watcher.core.diff import NotFound, Observation, Snapshot
from watcher.core.models import Operation, Orchestration
from watcher.core.tracked import SnapshotHead
from watcher.engine.incremental import (
    Incremental,
    KebReader,
    SnapshotReader,
    Unproven,
    get_or_none,
)
from watcher.engine.moves import backwards
from watcher.errors import KebListChanged, KebNotFound, KebUnsupportedType

__all__ = ["Findings", "KebReader", "Mode", "Observer", "SnapshotReader"]

log = logging.getLogger("watcher.engine.observer")

#: ``deferred``: an incremental proof failed after lists were read; nothing is recorded this
#: cycle and the next one sweeps fully (so no cycle costs more than a full sweep plus one).
#: ``partial``: KEB moved while the cycle read (the closing GET differed from the opening
#: one); only what was read directly is recorded, and the next cycle sweeps fully.
Mode = Literal["unchanged", "incremental", "full", "not_found", "deferred", "partial"]


@dataclass(frozen=True, slots=True)
class Findings:
    """What observing found. ``observation`` is ``None`` when nothing changed (and nothing
    was loaded); otherwise ``previous`` is the snapshot to diff it against: complete for a
    full sweep, partial (just the operations involved) for an incremental observation."""

    mode: Mode
    observation: Observation | NotFound | None
    previous: Snapshot | None
    reason: str
    reorder: bool = False
    #: The next cycle must sweep fully (recorded in the same transaction as this one).
    sweep_next: bool = False


class Observer:
    """Turns KEB reads into observations for :func:`watcher.core.diff.diff`."""

    def __init__(self, keb: KebReader, snapshots: SnapshotReader) -> None:
        self.keb = keb
        self.snapshots = snapshots

    async def observe(
        self, head: SnapshotHead, *, force_full: bool = False, after_deferral: bool = False
    ) -> Findings:
        """The cheapest provable observation of ``head``'s orchestration.

        ``after_deferral``: the previous cycle deferred (this one sweeps). A list that again
        does not hold together while swept is then an error of the cycle, not another
        deferral: a momentary race (docs/keb-api.md §12.6) does not repeat every cycle, damage does.
        """
        orch_id = head.orchestration_id
        try:
            orch = await self.keb.get_orchestration(orch_id)
        except KebNotFound:
            previous = self.snapshots.load_snapshot(head)
            return Findings("not_found", NotFound(orch_id), previous, "KEB answered 404")
        old = head.orchestration
        reason = ""
        if old is None:
            reason = "baseline"
        elif force_full:
            reason = "periodic full sweep"
        elif (old.state, old.description) != (orch.state, orch.description):
            reason = "orchestration changed"
        elif orch.operation_stats is None or head.expected_stats is None:
            reason = "no operationStats"
        elif dict(orch.operation_stats) == dict(head.expected_stats):
            return Findings("unchanged", None, None, "operationStats unchanged")
        if not reason:
            try:
                incremental = Incremental(self.keb, self.snapshots, orch, head)
                observation, previous = await incremental.run()
                if not incremental.confirmed:
                    log.info("orchestration %s: moved while read; the next cycle sweeps", orch_id)
                    reason = "KEB moved while read: recorded what was read"
                    return Findings("partial", observation, previous, reason, sweep_next=True)
                return Findings("incremental", observation, previous, "operationStats changed")
            except Unproven as exc:
                if exc.spent:
                    log.info("orchestration %s: deferred to a full sweep (%s)", orch_id, exc)
                    return Findings("deferred", None, None, f"incremental not provable: {exc}")
                reason = f"incremental not provable: {exc}"
                log.info("orchestration %s: full sweep (%s)", orch_id, exc)
            except KebUnsupportedType:
                return self._orchestration_only(orch, head)
        previous = self.snapshots.load_snapshot(head)
        try:
            swept = await self._full(orch, previous)
        except KebUnsupportedType:
            return self._orchestration_only(orch, head)
        except KebListChanged as exc:
            if after_deferral:
                raise
            log.info("orchestration %s: %s; the next cycle sweeps", orch_id, exc)
            return Findings("deferred", None, None, "the list changed while swept")
        if swept is None:
            log.info("orchestration %s: changed while swept; the next cycle sweeps", orch_id)
            return Findings("deferred", None, None, "the orchestration changed while swept")
        observation, reorder = swept
        if not observation.complete:
            reason = "the orchestration changed while swept: recorded the operations read"
            return Findings("partial", observation, previous, reason, sweep_next=True)
        return Findings("full", observation, previous, reason, reorder)

    def _orchestration_only(self, orch: Orchestration, head: SnapshotHead) -> Findings:
        """A legacy ``upgradeKyma`` orchestration, whose operations KEB refuses to list with
        a 500 forever (docs/keb-api.md §12.8): follow the orchestration alone. Its stats become
        the expected ones, so the next cycles take the unchanged path (one request) and the
        500 is not asked for again until the orchestration itself changes."""
        previous = Snapshot(
            head.orchestration_id,
            head.orchestration,
            {},
            head.revision,
            head.not_found,
            complete=False,
            counts=head.counts,
            expected_stats=head.expected_stats,
            failed_runtimes=frozenset(),
        )
        observation = Observation(orch, {}, complete=False)
        return Findings("full", observation, previous, "operations not listable (legacy type)")

    # -- full sweep -----------------------------------------------------------------------

    async def _full(
        self, orch: Orchestration, previous: Snapshot
    ) -> tuple[Observation, bool] | None:
        """Every page, then a closing GET. If the orchestration's state or description moved
        while the pages were read (a retry was picked up, a cancel finished), the list and the
        orchestration tell different stories: ``None``, and the next cycle sweeps again
        (sweeping again now could repeat forever and would cost more than a full sweep)."""
        orch_id = orch.orchestration_id
        listed = await self.keb.list_operations(orch_id)
        closing = await self.keb.get_orchestration(orch_id)
        if (closing.state, closing.description) != (orch.state, orch.description):
            # The list and the orchestration tell different stories; each operation read is
            # still a fact of its moment: those are recorded (never backwards), against the
            # orchestration as stored, and the next cycle sweeps again. A sweep on a busy
            # orchestration so always makes progress.
            if previous.orchestration is None:
                return None
            moved = {
                op.operation_id: op
                for op in listed
                if (old := previous.operations.get(op.operation_id)) is not None
                and old != op
                and not backwards(old.state, op.state)
            }
            return Observation(previous.orchestration, moved, complete=False), False
        operations = {
            op.operation_id: _monotonic(previous.operations.get(op.operation_id), op)
            for op in listed
        }
        missing = [op_id for op_id in previous.operations if op_id not in operations]
        found = await asyncio.gather(*(get_or_none(self.keb, orch_id, op_id) for op_id in missing))
        for op in found:
            if op is not None:
                operations[op.operation_id] = op
        known_order = [op.operation_id for op in listed if op.operation_id in previous.operations]
        previous_order = [op_id for op_id in previous.operations if op_id in operations]
        reorder = bool(previous.operations) and known_order != previous_order[: len(known_order)]
        return Observation(orch, operations), reorder


def _monotonic(old: Operation | None, new: Operation) -> Operation:
    """A state read directly never takes an operation backwards but through a retry: a read
    behind what is stored (an older moment) keeps the stored operation."""
    if old is not None and backwards(old.state, new.state):
        log.info("operation %s: read %r after %r; kept", new.operation_id, new.state, old.state)
        return old
    return new
