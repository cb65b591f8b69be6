"""The incremental proof: what moved since the last snapshot, read in few requests, or nothing.

Called when ``operationStats`` changed but the orchestration's state and description did not.
KEB facts it relies on (docs/keb-api.md §12, §13 and keb-concurrency.md, "kc" below):

* (F1) Operations only move forward: ``pending -> in progress -> succeeded | failed``,
  ``pending -> succeeded | failed | canceled`` without ``in progress`` (kc §3.1). The only
  way back is a legacy ``retrying`` row resumed under its old ID (``failed -> retrying ->
  pending``), whose ``retrying`` state this proof refuses to reason about.
* (F2) New rows are appended at the tail (``ORDER BY created_at``; retries and re-resolved
  targets get a new ID and ``createdAt = now``, kc §8); rows disappear only by deletion.
* (F3) ``operationStats`` counts every state but ``failed`` plainly; ``failed`` counts
  *instances* with a failed operation and none ``in progress``, ``succeeded`` or
  ``retrying`` (kc §1.1), so one write can move pending -1, in progress +1, failed -1.
* (F4) No two requests share a snapshot, nor do a page and its ``totalCount`` or an
  orchestration and its stats (kc §1); workers hand off between any two requests (kc §2).

The steps, and why each is sound:

1. The ``in progress`` list (its size is bounded by ``workers``, though retries can exceed
   it, §12.10), the ``canceled`` list when the canceled count grew, the ``failed`` list when
   the number of failed instances grew, and the *tail* of the whole list. By F2 every
   operation created since the last poll is on the tail, whatever its state; the tail's
   ``totalCount`` must equal the old count plus the new ones it shows, which also rules out
   deletions (a deletion and an insertion would keep the count but shift a stored row onto
   the tail, where it is recognised as not new). The pending list is *not* read first:
   with maintenance windows the operations that leave ``pending`` are spread over the
   whole list (§12.1).
2. Reads are facts of their moment. An operation read twice (it moved between two lists,
   F4) keeps the later state (F1 orders them); a read behind the stored state is refused
   (the never-backwards guard), as no forward move explains it.
3. Raw counts then say how many previously pending operations left ``pending`` without
   appearing in any list read (F1: straight to ``succeeded``, say). Only then is the whole
   pending list read, to name them.
4. Operations that left ``in progress`` (or ``pending``) unseen are resolved by the terminal
   count deltas (plain counts, F3), their own GETs, or the failed list; those named by
   counting alone are *inferred*.
5. A closing GET after every list. Only if its state, description and ``operationStats``
   equal the opening GET's is anything inferred recorded: the vector (pending, pending +
   in progress) never grows but by an insertion (F1, F2) and every forward move lowers one
   of them, so equal stats before and after the lists mean nothing moved while they were
   read, and a count read before them still describes what they showed. Otherwise (the
   steady state of a backlog, F4) only what was read directly is recorded, the inferred
   rest is not, and the next cycle sweeps fully (mode ``partial``).
6. The predicted operations must reproduce the GET's ``operationStats`` exactly: raw counts
   for every state but ``failed``, and ``failed`` recomputed per instance for the runtimes
   the moved operations belong to (F3). By F1 a forward move the cycle did not see lowers
   pending or pending + in progress, so equality proves there is none.

A cycle never costs more than a full sweep plus one request: every read, the closing GET
included, is charged against that budget before it is made (a list by the pages its count
needs; a list that turns out longer is not read on, :class:`~watcher.errors.KebListChanged`),
and an incremental observation whose first reads and closing GET alone would exceed it is
not tried (the full sweep is as cheap). When a proof fails after lists were read, or a read
would exceed the budget, the observation is *deferred*: nothing is recorded now, and the
next cycle sweeps fully (a failed proof is never followed by a full sweep in the same cycle,
and the pending list is never read in a cycle that sweeps).

What counts cannot see (the unchanged path's blind spot, :mod:`watcher.engine.observer`):
equal ``operationStats`` on the single GET of an unchanged cycle prove nothing moved *unless*
a row was inserted (or deleted) in the same interval and another move compensated it, for
example a retry's new row (pending +1) and a retried operation failing again (pending -1 via
in progress, ``failed`` unchanged as it counts instances). KEB writes a retry's rows and then
its description (§12.2), and the description change makes the next cycle sweep; deletions
happen only with KEB's cleaning enabled (off by default); the periodic full sweep
(``poll.full_sweep_every``) bounds the rest.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from watcher.core.diff import Observation, Snapshot
from watcher.core.models import (
    CANCELED,
    FAILED,
    IN_PROGRESS,
    MAX_PAGE_SIZE,
    PENDING,
    SUCCEEDED,
    Operation,
    OperationDetail,
    Orchestration,
    Page,
    is_terminal_operation,
    operation_stats,
)
from watcher.core.tracked import SnapshotHead
from watcher.engine.moves import forward, same_moment
from watcher.errors import KebListChanged, KebNotFound

#: Pages of new operations read at the tail before a full sweep is the better proof.
TAIL_PAGES = 2


async def get_or_none(keb: KebReader, orch_id: str, op_id: str) -> Operation | None:
    """One operation by its own GET; ``None`` when KEB answers 404 (it is gone)."""
    try:
        return (await keb.get_operation(orch_id, op_id)).operation
    except KebNotFound:
        return None


class KebReader(Protocol):
    """The read side of :class:`watcher.keb.KebClient` that observing needs."""

    async def get_orchestration(self, orchestration_id: str) -> Orchestration: ...

    async def list_operations(
        self,
        orchestration_id: str,
        states: Sequence[str] = (),
        *,
        max_pages: int | None = None,
    ) -> list[Operation]: ...

    async def list_operations_page(
        self,
        orchestration_id: str,
        *,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        states: Sequence[str] = (),
    ) -> Page[Operation]: ...

    async def get_operation(self, orchestration_id: str, operation_id: str) -> OperationDetail: ...


class SnapshotReader(Protocol):
    """The read side of :class:`watcher.store.database.Store` that observing needs."""

    def load_snapshot(self, head: SnapshotHead) -> Snapshot: ...

    def operations_in_state(self, orch_id: str, state: str) -> dict[str, Operation]: ...

    def operation_ids_in_state(self, orch_id: str, state: str) -> list[str]: ...

    def operations_by_id(self, orch_id: str, ids: Iterable[str]) -> dict[str, Operation]: ...

    def runtime_states(
        self, orch_id: str, runtimes: Iterable[str]
    ) -> list[tuple[str, str, str]]: ...


class Unproven(Exception):
    """The incremental observation could not prove consistency.

    ``spent``: requests beyond the orchestration's GET were made, so a full sweep now would
    cost more than a full sweep; the caller defers to the next cycle instead.
    """

    def __init__(self, message: str, *, spent: bool) -> None:
        super().__init__(message)
        self.spent = spent


def full_sweep_cost(operation_count: int) -> int:
    """Requests of a full sweep: the GET, every page, the closing GET.

    >>> full_sweep_cost(0), full_sweep_cost(2000), full_sweep_cost(2001)
    (3, 22, 23)
    """
    return 2 + max(1, math.ceil(operation_count / MAX_PAGE_SIZE))


def pages(n: int) -> int:
    return max(1, math.ceil(n / MAX_PAGE_SIZE))


class Incremental:
    """One incremental observation of one orchestration (see the module docstring)."""

    def __init__(
        self, keb: KebReader, snapshots: SnapshotReader, orch: Orchestration, head: SnapshotHead
    ) -> None:
        self.keb = keb
        self.snapshots = snapshots
        self.orch = orch
        self.head = head
        self.orch_id = orch.orchestration_id
        self.stats = dict(orch.operation_stats or {})
        self.counts = dict(head.counts)
        self.requests = 1  # the GET that gave the stats
        #: Operations whose new state was counted, not read.
        self.inferred: set[str] = set()
        #: ``False`` after :meth:`run` when the closing GET differed from the opening one:
        #: the observation holds only what was read, and the next cycle sweeps.
        self.confirmed = True
        #: A full sweep plus one request: no cycle may cost more.
        self.budget = full_sweep_cost(head.operation_count) + 1

    def _fail(self, message: str) -> Unproven:
        return Unproven(message, spent=self.requests > 1)

    def _charge(self, requests: int, what: str) -> None:
        if self.requests + requests > self.budget:
            raise self._fail(f"{what} would cost more than a full sweep")
        self.requests += requests

    async def _list(self, state: str, expected: int) -> list[Operation]:
        """The ``state`` list, in the pages ``expected`` items need and not one more."""
        needed = pages(expected)
        self._charge(needed, f"reading the {state} list")
        try:
            return await self.keb.list_operations(self.orch_id, [state], max_pages=needed)
        except KebListChanged as exc:
            raise self._fail(str(exc)) from None

    async def run(self) -> tuple[Observation, Snapshot]:
        orch_id, counts, stats = self.orch_id, self.counts, self.stats
        for state in counts:
            if state not in (PENDING, IN_PROGRESS) and not is_terminal_operation(state):
                raise self._fail(f"operations in state {state!r}")
        for state in stats:
            if state not in (PENDING, IN_PROGRESS) and not is_terminal_operation(state):
                raise self._fail(f"KEB counts operations in state {state!r}")
        old_failed = (self.head.expected_stats or {}).get(FAILED, 0)
        want_canceled = stats.get(CANCELED, 0) > counts.get(CANCELED, 0)
        want_failed = stats.get(FAILED, 0) > old_failed
        first = pages(stats.get(IN_PROGRESS, 0)) + 1
        first += pages(stats.get(CANCELED, 0)) if want_canceled else 0
        first += pages(counts.get(FAILED, 0) + 1) if want_failed else 0
        if self.requests + first + 1 > self.budget:
            raise self._fail("a full sweep costs no more")  # nothing read yet: sweep now
        in_progress, (tail, tail_stored), canceled, failed = await asyncio.gather(
            self._list(IN_PROGRESS, stats.get(IN_PROGRESS, 0)),
            self._tail(),
            self._list(CANCELED, stats.get(CANCELED, 0)) if want_canceled else _nothing(),
            self._list(FAILED, counts.get(FAILED, 0) + 1) if want_failed else _nothing(),
        )
        seen: dict[str, Operation] = {}
        for op in (*tail, *canceled, *failed, *in_progress):
            other = seen.get(op.operation_id)
            if other is not None and other.state != op.state:
                # Read twice at two moments (it moved while the lists were read): each read
                # is a fact of its moment, the later state is the one that stays.
                if forward(op.state, other.state):
                    continue
                if not forward(other.state, op.state):
                    raise self._fail(
                        f"operation {op.operation_id} read as {other.state!r} and {op.state!r}"
                    )
            seen[op.operation_id] = op

        in_progress_old = self.snapshots.operations_in_state(orch_id, IN_PROGRESS)
        previous: dict[str, Operation] = {**tail_stored, **in_progress_old}
        unknown = [i for i in seen if i not in previous]
        previous.update(self.snapshots.operations_by_id(orch_id, unknown))
        added = {i for i in seen if i not in previous}
        if added - {op.operation_id for op in tail}:
            raise self._fail("a new operation is not at the end of the list")
        for op_id, op in seen.items():
            old = previous.get(op_id)
            if old is not None and old.state != op.state and not forward(old.state, op.state):
                raise self._fail(f"operation {op_id} went from {old.state!r} to {op.state!r}")
        updates = {i: op for i, op in seen.items() if i in added or previous[i] != op}
        left_pending = {
            i
            for i, op in seen.items()
            if i in previous and previous[i].state == PENDING and op.state != PENDING
        }
        added_pending = sum(1 for i in added if seen[i].state == PENDING)
        unseen = counts.get(PENDING, 0) - len(left_pending) + added_pending - stats.get(PENDING, 0)
        if unseen < 0:
            raise self._fail("more operations are pending than the counts allow")
        departed = {i for i in in_progress_old if i not in seen}
        if unseen:
            added_ids = {i for i in added if seen[i].state == PENDING}
            gone = await self._pending_removals(left_pending, added_ids, unseen)
            previous.update(self.snapshots.operations_by_id(orch_id, gone))
            departed |= gone
        if departed:
            known = dict(counts)
            for op_id, op in updates.items():
                old = previous.get(op_id)
                if old is not None:
                    known[old.state] = known.get(old.state, 0) - 1
                known[op.state] = known.get(op.state, 0) + 1
            await self._resolve_departed(previous, departed, known, updates)
        order = {op_id: i for i, op_id in enumerate(previous)}
        changed = {
            i: updates[i]
            for i in sorted(updates, key=lambda i: (order.get(i, len(order)), i))
            if previous.get(i) != updates[i]
        }
        self._charge(1, "the closing GET")
        closing = await self.keb.get_orchestration(orch_id)
        if not same_moment(self.orch, closing):
            # KEB moved while the lists were read: counts read before them prove nothing.
            # What was read directly stays (a fact of its moment); the rest waits.
            read = {i: op for i, op in changed.items() if i not in self.inferred}
            failed_runtimes = self._failed_runtimes(read.values())
            self.confirmed = False
        else:
            failed_runtimes = self._check_counts(previous, changed)
            read = changed
        head = self.head
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
        return Observation(self.orch, read, complete=False), snapshot

    async def _tail(self) -> tuple[list[Operation], dict[str, Operation]]:
        """The last page(s) of the whole list: every operation created since the last poll,
        and the stored rows of those that are not new (read once, reused by the caller).

        The total must be the old one plus the new operations shown (pages and ``totalCount``
        are separate queries in KEB, §12.6, so both are checked against each other).
        """
        known = self.head.operation_count
        first = known // MAX_PAGE_SIZE + 1  # the page that holds the first new operation
        items: list[Operation] = []
        total = -1
        for number in range(first, first + TAIL_PAGES):
            self._charge(1, f"page {number} of the list")
            page = await self.keb.list_operations_page(
                self.orch_id, page=number, page_size=MAX_PAGE_SIZE
            )
            if total not in (-1, page.total_count):
                raise self._fail("the operation count changed while the tail was read")
            total = page.total_count
            items.extend(page.items)
            expected_here = min(MAX_PAGE_SIZE, max(0, total - (number - 1) * MAX_PAGE_SIZE))
            if len(page.items) != expected_here:
                raise self._fail(
                    f"page {number} holds {len(page.items)} operations for totalCount {total}"
                )
            if total <= number * MAX_PAGE_SIZE:
                break
        else:
            raise self._fail("too many new operations for an incremental observation")
        offset = (first - 1) * MAX_PAGE_SIZE
        new = max(0, total - known)
        if total < known or len(items) != total - offset:
            raise self._fail(f"operations were deleted or the list shifted ({known} -> {total})")
        stored = self.snapshots.operations_by_id(self.orch_id, (op.operation_id for op in items))
        fresh = [op for op in items if op.operation_id not in stored]
        if len(fresh) != new or any(op.operation_id in stored for op in items[len(items) - new :]):
            raise self._fail(f"{len(fresh)} new operations on the tail, {new} by the count")
        return items, stored

    async def _pending_removals(
        self, left_seen: set[str], added: set[str], unseen: int
    ) -> set[str]:
        """Name the ``unseen`` previously pending operations that left ``pending`` without
        showing up in any list read: the whole pending list, if that keeps the cycle within
        a full sweep plus one request."""
        pending_now = self.stats.get(PENDING, 0)
        if self.requests + pages(pending_now) + 1 > self.budget:  # and the closing GET
            raise self._fail(f"{unseen} operations left the pending list unseen")
        listed = await self._list(PENDING, pending_now)
        now = {op.operation_id for op in listed}
        old = set(self.snapshots.operation_ids_in_state(self.orch_id, PENDING))
        if not now - old <= added:
            raise self._fail("the pending list changed while it was read")
        gone = old - now - left_seen
        if len(gone) != unseen or len(listed) != pending_now:
            raise self._fail("pending removals do not match the counts")
        return gone

    async def _resolve_departed(
        self,
        previous: Mapping[str, Operation],
        departed: set[str],
        counts: Mapping[str, int],
        updates: dict[str, Operation],
    ) -> None:
        """Find the terminal state of operations that left pending/in progress unseen.

        ``succeeded`` and ``canceled`` are plain counts, so their deltas tell how many went
        where; ``failed`` is de-duplicated and only checked at the end. Failed operations are
        always read (their description is the failure reason); when the deltas say everything
        succeeded (or was canceled) nothing more is read. An operation is never declared
        vanished here: without its own 404 the proof fails instead.
        """
        stats = self.stats
        n = len(departed)
        to_succeeded = stats.get(SUCCEEDED, 0) - counts.get(SUCCEEDED, 0)
        to_canceled = stats.get(CANCELED, 0) - counts.get(CANCELED, 0)
        for state, delta in ((SUCCEEDED, to_succeeded), (CANCELED, to_canceled)):
            if delta == n:
                for op_id in departed:
                    updates[op_id] = _inferred(previous[op_id], state)
                self.inferred |= departed
                return
        if to_succeeded < 0 or to_canceled < 0 or to_succeeded + to_canceled > n:
            raise self._fail("terminal counts went down")
        failed_pages = pages(counts.get(FAILED, 0) + n)
        canceled_pages = pages(stats.get(CANCELED, 0)) if to_canceled else 0
        if n <= failed_pages + canceled_pages:
            self._charge(n, f"{n} single reads")
            details = await asyncio.gather(*(self._get_or_none(i) for i in departed))
            for op_id, op in zip(departed, details, strict=True):
                if op is None:
                    raise self._fail(f"operation {op_id} vanished")
                updates[op_id] = op
            return
        found: dict[str, Operation] = {}
        states = (FAILED, CANCELED) if to_canceled else (FAILED,)
        for state in states:
            for op in await self._list(state, counts.get(state, 0) + n):
                if op.operation_id in departed:
                    found[op.operation_id] = op
        for op_id in departed:
            if op_id in found:
                updates[op_id] = found[op_id]
            else:
                updates[op_id] = _inferred(previous[op_id], SUCCEEDED)
                self.inferred.add(op_id)

    async def _get_or_none(self, op_id: str) -> Operation | None:
        return await get_or_none(self.keb, self.orch_id, op_id)

    def _check_counts(
        self, previous: Mapping[str, Operation], changed: Mapping[str, Operation]
    ) -> frozenset[str]:
        """Prove that the predicted operations reproduce KEB's ``operationStats``.

        Raw counts follow from the moves; ``failed`` is per runtime, so it is recomputed for
        the runtimes the changed operations belong to only. Returns the runtimes among those
        that had a failed operation before (for retry detection).
        """
        counts, stats = dict(self.counts), self.stats
        for op_id, op in changed.items():
            old = previous.get(op_id)
            if old is not None:
                counts[old.state] = counts.get(old.state, 0) - 1
            counts[op.state] = counts.get(op.state, 0) + 1
        raw = {k: v for k, v in counts.items() if v and k != FAILED}
        kebs = {k: v for k, v in stats.items() if v and k != FAILED}
        if raw != kebs:
            raise self._fail(f"counts do not add up (KEB {stats}, predicted {counts})")
        before = self._runtime_states(changed.values())
        after = dict(before)
        after.update((op_id, (op.runtime_id, op.state)) for op_id, op in changed.items())
        old_failed = operation_stats(before.values())[FAILED]
        new_failed = operation_stats(after.values())[FAILED]
        expected = (self.head.expected_stats or {}).get(FAILED, 0) - old_failed + new_failed
        if expected != stats.get(FAILED, 0):
            raise self._fail(
                f"failed runtimes do not add up (KEB {stats.get(FAILED, 0)}, predicted {expected})"
            )
        return frozenset(rt for rt, state in before.values() if state == FAILED)

    def _runtime_states(self, ops: Iterable[Operation]) -> dict[str, tuple[str, str]]:
        """Stored ``(runtime, state)`` of every operation of the runtimes of ``ops``."""
        runtimes = {op.runtime_id for op in ops}
        return {
            op_id: (rt, state)
            for op_id, rt, state in self.snapshots.runtime_states(self.orch_id, runtimes)
        }

    def _failed_runtimes(self, ops: Iterable[Operation]) -> frozenset[str]:
        """The runtimes of ``ops`` that had a failed operation before (retry detection)."""
        before = self._runtime_states(ops)
        return frozenset(rt for rt, state in before.values() if state == FAILED)


async def _nothing() -> list[Operation]:
    return []


def _inferred(op: Operation, state: str) -> Operation:
    """An operation whose new state was proven by counting, not read: its description is
    unknown until the next full sweep (the final one, when the orchestration ends, at the
    latest), so it is left empty rather than showing the stale one."""
    return replace(op, state=state, description="")
