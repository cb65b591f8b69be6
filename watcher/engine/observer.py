"""Observe one orchestration as cheaply as KEB allows, never at the cost of correctness.

KEB has no per-operation timestamps and pages cap at 100, so the naive cycle re-reads every
page. This module uses what KEB does offer (docs/keb-api.md §2, §3.4, §4):

1. ``GET /orchestrations/{id}`` carries ``operationStats``, which changes with every operation
   state change (operations only move forward; ``failed`` is de-duplicated per instance, which
   :func:`watcher.core.models.operation_stats` reproduces). If state, description and stats equal
   what our snapshot predicts, nothing changed: **one request**.
2. Otherwise, an *incremental* observation: the ``in progress`` list (bounded by ``workers``),
   the head of the ``pending`` list (ops start in creation order, and lists are oldest first,
   so the removals are located on the first page or two), the ``failed`` list or single GETs
   for operations that finished with a failure (their description is the reason), and
   elimination for the rest (``succeeded``). The predicted operation set must reproduce KEB's
   ``operationStats`` exactly; as operations only move forward, that also proves that
   nothing moved while the lists were read.
3. Whenever that proof fails (counts do not add up, lists changed under us, an unfamiliar
   state), and on the baseline, on orchestration state/description changes and periodically,
   a *full sweep* of all pages. Operations missing from a sweep are only declared vanished
   after their own GET answers 404 (a paging race can hide an operation, deletion cannot).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from watcher.core.diff import NotFound, Observation, Snapshot
from watcher.core.models import (
    CANCELED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    SUCCEEDED,
    Operation,
    OperationDetail,
    Orchestration,
    Page,
    is_terminal_operation,
    operation_stats,
)
from watcher.errors import KebNotFound
from watcher.store.database import SnapshotHead

log = logging.getLogger("watcher.engine.observer")

PAGE_SIZE = 100  # KEB's maximum page size (MaxPaginationPage).

Mode = Literal["unchanged", "incremental", "full", "not_found"]


class KebReader(Protocol):
    """The read side of :class:`watcher.keb.KebClient` that observing needs."""

    async def get_orchestration(self, orchestration_id: str) -> Orchestration: ...

    async def list_operations(
        self, orchestration_id: str, states: Sequence[str] = ()
    ) -> list[Operation]: ...

    async def list_operations_page(
        self,
        orchestration_id: str,
        *,
        page: int = 1,
        page_size: int = 100,
        states: Sequence[str] = (),
    ) -> Page[Operation]: ...

    async def get_operation(self, orchestration_id: str, operation_id: str) -> OperationDetail: ...


class SnapshotReader(Protocol):
    """The read side of :class:`watcher.store.database.Store` that observing needs."""

    def load_snapshot(self, head: SnapshotHead) -> Snapshot: ...

    def operations_in_state(self, orch_id: str, state: str) -> dict[str, Operation]: ...

    def operation_ids_in_state(
        self, orch_id: str, state: str, *, offset: int = 0, limit: int = -1
    ) -> list[str]: ...

    def operations_by_id(self, orch_id: str, ids: Iterable[str]) -> dict[str, Operation]: ...

    def runtime_states(
        self, orch_id: str, runtimes: Iterable[str]
    ) -> list[tuple[str, str, str]]: ...


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


class _Unproven(Exception):
    """The incremental observation could not prove consistency; sweep fully instead."""


class Observer:
    """Turns KEB reads into observations for :func:`watcher.core.diff.diff`."""

    def __init__(self, keb: KebReader, snapshots: SnapshotReader) -> None:
        self.keb = keb
        self.snapshots = snapshots

    async def observe(self, head: SnapshotHead, *, force_full: bool = False) -> Findings:
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
                observation, previous = await self._incremental(orch, head)
                return Findings("incremental", observation, previous, "operationStats changed")
            except _Unproven as exc:
                reason = f"incremental not provable: {exc}"
                log.info("orchestration %s: full sweep (%s)", orch_id, exc)
        previous = self.snapshots.load_snapshot(head)
        observation, reorder = await self._full(orch, previous)
        return Findings("full", observation, previous, reason, reorder)

    # -- full sweep -----------------------------------------------------------------------

    async def _full(self, orch: Orchestration, previous: Snapshot) -> tuple[Observation, bool]:
        """Every page, then a closing GET: if the orchestration's state or description moved
        while the pages were read (a retry was picked up, a cancel finished), the list and
        the orchestration would tell different stories, so sweep again (a few times)."""
        orch_id = orch.orchestration_id
        for _ in range(3):
            listed = await self.keb.list_operations(orch_id)
            closing = await self.keb.get_orchestration(orch_id)
            if (closing.state, closing.description) == (orch.state, orch.description):
                break
            orch = closing
        operations = {op.operation_id: op for op in listed}
        missing = [op_id for op_id in previous.operations if op_id not in operations]
        found = await asyncio.gather(*(self._get_or_none(orch_id, op_id) for op_id in missing))
        for op in found:
            if op is not None:
                operations[op.operation_id] = op
        known_order = [op.operation_id for op in listed if op.operation_id in previous.operations]
        previous_order = [op_id for op_id in previous.operations if op_id in operations]
        reorder = bool(previous.operations) and known_order != previous_order[: len(known_order)]
        return Observation(orch, operations), reorder

    async def _get_or_none(self, orch_id: str, op_id: str) -> Operation | None:
        try:
            return (await self.keb.get_operation(orch_id, op_id)).operation
        except KebNotFound:
            return None

    # -- incremental ----------------------------------------------------------------------

    async def _incremental(
        self, orch: Orchestration, head: SnapshotHead
    ) -> tuple[Observation, Snapshot]:
        """Only the operations that moved are read from KEB and loaded from the store."""
        orch_id = orch.orchestration_id
        stats = dict(orch.operation_stats or {})
        counts = dict(head.counts)
        for state in counts:
            if state not in (PENDING, IN_PROGRESS) and not is_terminal_operation(state):
                raise _Unproven(f"operations in state {state!r}")

        in_progress_old = self.snapshots.operations_in_state(orch_id, IN_PROGRESS)
        pending_old = _PendingPrefix(self.snapshots, orch_id, counts.get(PENDING, 0))
        removed_needed = pending_old.total - stats.get(PENDING, 0)
        if removed_needed < 0:
            raise _Unproven("the pending list grew (new operations)")
        in_progress_new, removed = await asyncio.gather(
            self.keb.list_operations(orch_id, [IN_PROGRESS]),
            self._pending_removals(
                orch_id, pending_old, removed_needed, stats.get(PENDING, 0), head.operation_count
            ),
        )
        updates: dict[str, Operation] = {op.operation_id: op for op in in_progress_new}
        previous = dict(in_progress_old)
        previous.update(self.snapshots.operations_by_id(orch_id, removed))
        unknown = [i for i in updates if i not in previous]
        for op_id, old in self.snapshots.operations_by_id(orch_id, unknown).items():
            if old.state == PENDING:
                raise _Unproven(f"operation {op_id} started but stayed pending")
            raise _Unproven("a finished operation is in progress again")
        departed = (set(in_progress_old) | removed) - set(updates)
        if departed:
            await self._resolve_departed(orch_id, previous, departed, counts, stats, updates)
        # A stable order (stored rows first, new operations last): the recorded history
        # must not depend on set iteration order.
        order = {op_id: i for i, op_id in enumerate(previous)}
        changed = {
            i: updates[i]
            for i in sorted(updates, key=lambda i: (order.get(i, len(order)), i))
            if previous.get(i) != updates[i]
        }
        failed_runtimes = self._check_counts(orch_id, head, counts, stats, previous, changed)

        snapshot = Snapshot(
            orch_id,
            head.orchestration,
            previous,
            head.revision,
            head.not_found,
            complete=False,
            counts=head.counts,
            expected_stats=head.expected_stats,
            failed_runtimes=failed_runtimes,
        )
        return Observation(orch, changed, complete=False), snapshot

    def _check_counts(
        self,
        orch_id: str,
        head: SnapshotHead,
        counts: dict[str, int],
        stats: Mapping[str, int],
        previous: Mapping[str, Operation],
        changed: Mapping[str, Operation],
    ) -> frozenset[str]:
        """Prove that the predicted operations reproduce KEB's ``operationStats``.

        Raw counts follow from the moves; ``failed`` is per instance, so it is recomputed
        for the runtimes the changed operations belong to only. Returns the runtimes among
        those that had a failed operation before (for retry detection).

        This also proves that nothing moved while the lists were read: every list was read
        after the GET that gave ``stats``, and operations only move forward (pending ->
        in progress -> terminal). Had any operation moved after that GET and been seen in its
        newer state, fewer would be pending or in progress than ``stats`` says.
        """
        for op_id, op in changed.items():
            old = previous.get(op_id)
            if old is not None:
                counts[old.state] = counts.get(old.state, 0) - 1
            counts[op.state] = counts.get(op.state, 0) + 1
        raw = {k: v for k, v in counts.items() if v and k != FAILED}
        kebs = {k: v for k, v in stats.items() if v and k != FAILED}
        if raw != kebs:
            raise _Unproven(f"counts do not add up (KEB {stats}, predicted {counts})")
        runtimes = {op.runtime_id for op in changed.values()}
        before = {
            op_id: (rt, state)
            for op_id, rt, state in self.snapshots.runtime_states(orch_id, runtimes)
        }
        after = dict(before)
        after.update((op_id, (op.runtime_id, op.state)) for op_id, op in changed.items())
        old_failed = operation_stats(before.values())[FAILED]
        new_failed = operation_stats(after.values())[FAILED]
        expected_failed = (head.expected_stats or {}).get(FAILED, 0) - old_failed + new_failed
        if expected_failed != stats.get(FAILED, 0):
            raise _Unproven(
                f"failed runtimes do not add up (KEB {stats.get(FAILED, 0)}, "
                f"predicted {expected_failed})"
            )
        return frozenset(rt for rt, state in before.values() if state == FAILED)

    async def _pending_removals(
        self,
        orch_id: str,
        pending_old: _PendingPrefix,
        removed_needed: int,
        pending_now: int,
        total: int,
    ) -> set[str]:
        """Which previously pending operations are no longer pending.

        KEB lists are oldest first and a pending list only loses members (new operations would
        have made it grow, which is excluded before). So page ``k`` shows the survivors among
        a prefix of the old pending list: once the prefix accounts for every removal, the rest
        of the list is unchanged and need not be read.
        """
        if removed_needed == 0:
            return set()
        # Removals cluster at the head: a page a little larger than their number usually
        # proves them all; beyond half the operations a full sweep is the cheaper proof.
        size = min(PAGE_SIZE, max(20, 2 * removed_needed + 10))
        budget = max(1, math.ceil(total / 2 / size))
        seen: set[str] = set()
        last = -1
        page_no = 1
        while True:
            if page_no > budget:
                raise _Unproven("pending removals are spread over too many pages")
            page = await self.keb.list_operations_page(
                orch_id, page=page_no, page_size=size, states=[PENDING]
            )
            if page.total_count != pending_now:
                raise _Unproven("the pending count changed while reading")
            for op in page.items:
                index = pending_old.index(op.operation_id)
                if index is None or index <= last:
                    raise _Unproven("the pending list is not the old one minus removals")
                last = index
                seen.add(op.operation_id)
            removed_before = last + 1 - len(seen)
            if removed_before == removed_needed:
                return set(pending_old.prefix(last + 1)) - seen
            if removed_before > removed_needed:
                raise _Unproven("more pending operations left than the counts say")
            if not page.items or len(seen) >= page.total_count:
                rest = set(pending_old.prefix(pending_old.total)) - seen
                if len(rest) != removed_needed:
                    raise _Unproven("pending removals do not match the counts")
                return rest
            page_no += 1

    async def _resolve_departed(
        self,
        orch_id: str,
        previous: Mapping[str, Operation],
        departed: set[str],
        counts: Mapping[str, int],
        stats: Mapping[str, int],
        updates: dict[str, Operation],
    ) -> None:
        """Find the terminal state of operations that left pending/in progress.

        ``succeeded`` and ``canceled`` are plain counts, so their deltas tell how many went
        where; ``failed`` is de-duplicated and only checked at the end. Failed operations are
        always read (their description is the failure reason); when the deltas say everything
        succeeded (or was canceled) nothing more is read.
        """
        n = len(departed)
        to_succeeded = stats.get(SUCCEEDED, 0) - counts.get(SUCCEEDED, 0)
        to_canceled = stats.get(CANCELED, 0) - counts.get(CANCELED, 0)
        for state, delta in ((SUCCEEDED, to_succeeded), (CANCELED, to_canceled)):
            if delta == n:
                for op_id in departed:
                    updates[op_id] = _inferred(previous[op_id], state)
                return
        if to_succeeded < 0 or to_canceled < 0 or to_succeeded + to_canceled > n:
            raise _Unproven("terminal counts went down")
        failed_pages = math.ceil((counts.get(FAILED, 0) + n) / PAGE_SIZE)
        canceled_pages = math.ceil(stats.get(CANCELED, 0) / PAGE_SIZE) if to_canceled else 0
        if n <= failed_pages + canceled_pages:
            details = await asyncio.gather(*(self._get_or_none(orch_id, i) for i in departed))
            for op_id, op in zip(departed, details, strict=True):
                if op is None:
                    raise _Unproven(f"operation {op_id} vanished")
                updates[op_id] = op
            return
        found: dict[str, Operation] = {}
        for state in (FAILED, CANCELED) if to_canceled else (FAILED,):
            for op in await self.keb.list_operations(orch_id, [state]):
                if op.operation_id in departed:
                    found[op.operation_id] = op
        for op_id in departed:
            updates[op_id] = found.get(op_id) or _inferred(previous[op_id], SUCCEEDED)


class _PendingPrefix:
    """The stored pending operation IDs in KEB order, read from the store only as far as
    the pages being checked reach (the head, usually): thousands of pending operations do
    not cost thousands of rows per cycle."""

    def __init__(self, snapshots: SnapshotReader, orch_id: str, total: int) -> None:
        self.snapshots = snapshots
        self.orch_id = orch_id
        self.total = total
        self.ids: list[str] = []
        self.positions: dict[str, int] = {}

    def _load_more(self) -> bool:
        if len(self.ids) >= self.total:
            return False
        chunk = self.snapshots.operation_ids_in_state(
            self.orch_id, PENDING, offset=len(self.ids), limit=max(200, len(self.ids))
        )
        if not chunk:
            self.total = len(self.ids)
            return False
        for op_id in chunk:
            self.positions[op_id] = len(self.ids)
            self.ids.append(op_id)
        return True

    def index(self, op_id: str) -> int | None:
        while op_id not in self.positions and self._load_more():
            pass
        return self.positions.get(op_id)

    def prefix(self, n: int) -> list[str]:
        while len(self.ids) < n and self._load_more():
            pass
        return self.ids[:n]


def _inferred(op: Operation, state: str) -> Operation:
    """An operation whose new state was proven by counting, not read: its description is
    unknown until the next full sweep (the final one, when the orchestration ends, at the
    latest), so it is left empty rather than showing the stale one."""
    return replace(op, state=state, description="")
