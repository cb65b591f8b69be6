"""Pure decisions: (previous snapshot, new observation) -> transitions.

Nothing here awaits, reads a clock or touches the database; ``now`` is passed in. The caller
writes the returned snapshot, the transitions and any notifications in one transaction, so a
transition is recorded exactly once: either the new snapshot and its transitions are committed
together, or neither is, and the next cycle diffs against the old snapshot again.

KEB facts relied on (docs/keb-api.md §4): operations only move forward
(pending -> in progress -> succeeded | failed, pending -> canceled); a retry never revives a
failed operation but appends a new one for the same runtime; the orchestration goes
failed -> retrying -> in progress, and pending|in progress|retrying -> canceling -> canceled.
States skipped between two polls are reported in ``via`` ("passed through").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from watcher.core.models import (
    CANCELED,
    CANCELING,
    FAILED,
    IN_PROGRESS,
    PENDING,
    RETRYING,
    SUCCEEDED,
    Operation,
    Orchestration,
    is_terminal_operation,
    is_terminal_orchestration,
    operation_stats,
)


class TransitionKind(StrEnum):
    """What a recorded transition means. Values are stored in the database: never rename."""

    BASELINE = "baseline"
    ORCHESTRATION_STATE = "orchestration_state"
    ORCHESTRATION_DESCRIPTION = "orchestration_description"
    ORCHESTRATION_NOT_FOUND = "orchestration_not_found"
    OPERATION_ADDED = "operation_added"
    OPERATION_RETRY = "operation_retry"
    OPERATION_STATE = "operation_state"
    OPERATION_COMPLETED = "operation_completed"
    OPERATION_VANISHED = "operation_vanished"


_NO_DETAIL: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded change. ``key`` is stable and unique per logical change, so recording the
    same change twice is impossible (the store has a unique index on it)."""

    kind: TransitionKind
    orchestration_id: str
    key: str
    at: datetime
    operation_id: str | None = None
    runtime_id: str = ""
    shoot_name: str = ""
    from_state: str | None = None
    to_state: str | None = None
    via: tuple[str, ...] = ()
    description: str = ""
    detail: Mapping[str, Any] = field(default_factory=lambda: _NO_DETAIL)

    @property
    def path(self) -> tuple[str, ...]:
        """Every state this transition passed, from the old state to the new one."""
        head = (self.from_state,) if self.from_state is not None else ()
        tail = (self.to_state,) if self.to_state is not None else ()
        return head + self.via + tail


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What we last knew of one tracked orchestration.

    ``orchestration`` is ``None`` until the first observation (the baseline). ``revision``
    counts orchestration-level transitions and makes their keys unique even when a state
    repeats (failed -> retrying -> ... -> failed).

    A *complete* snapshot holds every operation in KEB order (oldest first). A partial one
    (``complete=False``) holds only the operations an incremental observation touches, plus
    what is needed to reason about the rest: ``counts`` (raw operations per state, over all
    of them), ``expected_stats`` (KEB's ``operationStats`` for all of them) and
    ``failed_runtimes`` (runtimes of the loaded operations that have a failed operation).
    """

    orchestration_id: str
    orchestration: Orchestration | None = None
    operations: Mapping[str, Operation] = field(default_factory=dict)
    revision: int = 0
    not_found: bool = False
    complete: bool = True
    counts: Mapping[str, int] | None = None
    expected_stats: Mapping[str, int] | None = None
    failed_runtimes: frozenset[str] | None = None

    def state_counts(self) -> dict[str, int]:
        return dict(self.counts) if self.counts is not None else state_counts(self.operations)

    def runtimes_with_failures(self) -> frozenset[str]:
        if self.failed_runtimes is not None:
            return self.failed_runtimes
        return frozenset(op.runtime_id for op in self.operations.values() if op.state == FAILED)


@dataclass(frozen=True, slots=True)
class Observation:
    """What KEB says now.

    ``complete``: ``operations`` is the whole list (KEB order), and an operation missing from
    it has vanished. Otherwise it holds only operations that changed or are new; every one of
    them that existed before must be in the previous snapshot's ``operations``.
    """

    orchestration: Orchestration
    operations: Mapping[str, Operation]
    complete: bool = True


@dataclass(frozen=True, slots=True)
class NotFound:
    """KEB answered 404 for the orchestration."""

    orchestration_id: str


@dataclass(frozen=True, slots=True)
class Diff:
    """The outcome of :func:`diff`: what to record and what to write back.

    ``changed`` lists the operations whose stored row must be inserted or updated (new, or
    state/description/fields changed); ``removed`` the IDs whose rows must be deleted.
    """

    snapshot: Snapshot
    transitions: list[Transition]
    changed: list[Operation]
    removed: list[str]


# The paths KEB can take; used to name the states skipped between two polls.
_ORCHESTRATION_GRAPH: Final[Mapping[str, tuple[str, ...]]] = {
    PENDING: (IN_PROGRESS, CANCELING),
    IN_PROGRESS: (SUCCEEDED, FAILED, CANCELING),
    # retrying -> succeeded: none of the retried instances resolves any more (KEB's manager
    # finds no runtime to run; docs/keb-concurrency.md §3.2): it never ran again.
    RETRYING: (IN_PROGRESS, CANCELING, SUCCEEDED),
    CANCELING: (CANCELED,),
    FAILED: (RETRYING,),
}
_OPERATION_GRAPH: Final[Mapping[str, tuple[str, ...]]] = {
    PENDING: (IN_PROGRESS, CANCELED),
    IN_PROGRESS: (SUCCEEDED, FAILED),
    # Legacy rows (Jan-Aug 2022): failed -> retrying -> pending "Operation retry triggered".
    FAILED: (RETRYING,),
    RETRYING: (PENDING,),
}


def _shortest_via(
    graph: Mapping[str, tuple[str, ...]], start: str, goal: str
) -> tuple[str, ...] | None:
    """States strictly between ``start`` and ``goal`` on the shortest path, or ``None``."""
    queue: deque[tuple[str, tuple[str, ...]]] = deque([(start, ())])
    seen = {start}
    while queue:
        state, path = queue.popleft()
        for nxt in graph.get(state, ()):
            if nxt == goal:
                return path
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, (*path, nxt)))
    return None


def operation_via(old: str, new: str) -> tuple[str, ...]:
    """States an operation passed between two observations (``pending`` -> ``succeeded``
    passed ``in progress``). Unknown states and impossible moves give ``()``."""
    via = _shortest_via(_OPERATION_GRAPH, old, new)
    return via if via is not None else ()


def orchestration_via(
    old: str, new: str, *, retried: bool, has_operations: bool
) -> tuple[str, ...]:
    """States an orchestration passed between two observations.

    ``retried`` says a retry happened in between (new operations for failed runtimes, or
    ``retried K operations`` in the description), so failed -> failed passed retrying and
    in progress. An orchestration with no operations goes from pending straight to its end
    (KEB: ``N == 0 -> succeeded``).
    """
    if old == new:
        return (RETRYING, IN_PROGRESS) if retried and old == FAILED else ()
    if old == PENDING and not has_operations and new in (SUCCEEDED, FAILED):
        return ()
    if retried and old in (FAILED, RETRYING) and new not in (RETRYING, IN_PROGRESS):
        # The retry was picked up (new operations, "retried K operations"), so the
        # orchestration ran again before it got where it is now.
        rest = _shortest_via(_ORCHESTRATION_GRAPH, IN_PROGRESS, new)
        if rest is not None:
            head = (RETRYING, IN_PROGRESS) if old == FAILED else (IN_PROGRESS,)
            return (*head, *rest)
    via = _shortest_via(_ORCHESTRATION_GRAPH, old, new)
    return via if via is not None else ()


def state_counts(operations: Mapping[str, Operation]) -> dict[str, int]:
    """Raw number of operations per state (not KEB's de-duplicated ``failed``)."""
    counts: dict[str, int] = {}
    for op in operations.values():
        counts[op.state] = counts.get(op.state, 0) + 1
    return dict(sorted(counts.items()))


def _retried(
    prev: Snapshot, new: Orchestration, added: list[Operation], failed_runtimes: frozenset[str]
) -> bool:
    old = prev.orchestration
    assert old is not None
    if "retried" in new.description and new.description != old.description:
        return True
    if any(op.runtime_id in failed_runtimes for op in added):
        return True
    # KEB inserts the retry rows before it writes the new state (docs/keb-api.md §12.2): a retrying
    # orchestration with unfinished operations was picked up, so it ran again even if we
    # only see it canceling now.
    return old.state == RETRYING and any(
        op.state in (PENDING, IN_PROGRESS) for op in prev.operations.values()
    )


def diff(prev: Snapshot, observed: Observation | NotFound, now: datetime) -> Diff:
    """Compare what we knew with what KEB says now.

    * First observation (no baseline yet): one ``baseline`` transition with the counts; the
      operations are stored but not announced one by one.
    * 404: one ``orchestration_not_found`` transition, only the first time.
    * Otherwise: orchestration state/description changes and, per operation, added (or retry),
      state changed, completed (terminal), vanished, each with the states passed through.
    """
    orch_id = prev.orchestration_id
    if isinstance(observed, NotFound):
        if prev.not_found:
            return Diff(prev, [], [], [])
        transition = Transition(
            TransitionKind.ORCHESTRATION_NOT_FOUND,
            orch_id,
            f"{orch_id}:rev{prev.revision + 1}:not_found",
            now,
            from_state=prev.orchestration.state if prev.orchestration else None,
        )
        snapshot = Snapshot(
            orch_id, prev.orchestration, prev.operations, prev.revision + 1, not_found=True
        )
        return Diff(snapshot, [transition], [], [])

    new_orch = observed.orchestration
    new_ops = observed.operations
    old_orch = prev.orchestration
    if old_orch is None:
        counts = state_counts(new_ops)
        transition = Transition(
            TransitionKind.BASELINE,
            orch_id,
            f"{orch_id}:baseline",
            now,
            to_state=new_orch.state,
            description=new_orch.description,
            detail={"operations": len(new_ops), "counts": counts},
        )
        snapshot = _complete(orch_id, new_orch, new_ops, prev.revision + 1)
        if not observed.complete:
            # Operations KEB will not list (a legacy type): its own stats are the expectation.
            snapshot = replace(snapshot, expected_stats=new_orch.operation_stats)
        return Diff(snapshot, [transition], list(new_ops.values()), [])

    op_transitions: list[Transition] = []
    changed: list[Operation] = []
    added: list[Operation] = []
    if observed.complete and not prev.complete:
        raise ValueError("a complete observation needs a complete previous snapshot")
    # A new operation for a runtime whose operation failed, before or since the last poll
    # (KEB can fail an operation and take the retry between two polls), is its retry.
    failed_runtimes = prev.runtimes_with_failures() | {
        op.runtime_id
        for op_id, op in new_ops.items()
        if op.state == FAILED and op_id in prev.operations
    }
    counts = prev.state_counts()
    for op_id, op in new_ops.items():
        old = prev.operations.get(op_id)
        if old is None:
            added.append(op)
            changed.append(op)
            counts[op.state] = counts.get(op.state, 0) + 1
            op_transitions.extend(_added(orch_id, op, now, op.runtime_id in failed_runtimes))
            continue
        if old != op:
            changed.append(op)
        if old.state != op.state:
            counts[old.state] = counts.get(old.state, 0) - 1
            counts[op.state] = counts.get(op.state, 0) + 1
            op_transitions.append(_moved(orch_id, op, old.state, now))
    removed = (
        [op_id for op_id in prev.operations if op_id not in new_ops] if observed.complete else []
    )
    for op_id in removed:
        old = prev.operations[op_id]
        op_transitions.append(
            _op_transition(
                TransitionKind.OPERATION_VANISHED, old, now, orch_id, "vanished", old.state, None
            )
        )

    revision = prev.revision
    head: list[Transition] = []
    tail: list[Transition] = []
    retried = _retried(prev, new_orch, added, failed_runtimes)
    if old_orch.state != new_orch.state or (retried and new_orch.state == FAILED):
        revision += 1
        transition = Transition(
            TransitionKind.ORCHESTRATION_STATE,
            orch_id,
            f"{orch_id}:rev{revision}:state",
            now,
            from_state=old_orch.state,
            to_state=new_orch.state,
            via=orchestration_via(
                old_orch.state, new_orch.state, retried=retried, has_operations=bool(new_ops)
            ),
            description=new_orch.description,
            detail=_run_detail(old_orch, new_orch),
        )
        # Operations finish before their orchestration does; a restart comes before them.
        (tail if is_terminal_orchestration(new_orch.state) else head).append(transition)
    elif old_orch.description != new_orch.description:
        revision += 1
        head.append(
            Transition(
                TransitionKind.ORCHESTRATION_DESCRIPTION,
                orch_id,
                f"{orch_id}:rev{revision}:description",
                now,
                from_state=old_orch.state,
                to_state=new_orch.state,
                description=new_orch.description,
                detail={"previous": old_orch.description},
            )
        )
    if observed.complete:
        snapshot = _complete(orch_id, new_orch, new_ops, revision)
    else:
        merged = dict(prev.operations)
        merged.update(new_ops)
        snapshot = Snapshot(
            orch_id,
            new_orch,
            merged,
            revision,
            complete=False,
            counts={state: n for state, n in sorted(counts.items()) if n},
            # The observer proved that the operations now reproduce KEB's stats.
            expected_stats=new_orch.operation_stats,
            failed_runtimes=failed_runtimes
            | {op.runtime_id for op in new_ops.values() if op.state == FAILED},
        )
    return Diff(snapshot, head + op_transitions + tail, changed, removed)


def _run_detail(old: Orchestration, new: Orchestration) -> Mapping[str, Any]:
    """For a failed orchestration that runs again (a retry, docs/keb-api.md §12.4): when the new
    run started. A retry request sets ``updatedAt`` and the pickup does not touch it (§4.5),
    so while the new run goes on ``updatedAt`` is its start; once it has ended again,
    ``updatedAt`` is the end and the start was not seen (``None``)."""
    if old.state != FAILED:
        return _NO_DETAIL
    started = new.updated_at if new.state in (RETRYING, IN_PROGRESS, CANCELING) else None
    return {"run_started": started.isoformat() if started else None}


def _complete(
    orch_id: str, orch: Orchestration, ops: Mapping[str, Operation], revision: int
) -> Snapshot:
    return Snapshot(
        orch_id,
        orch,
        ops,
        revision,
        counts=state_counts(ops),
        expected_stats=operation_stats((op.runtime_id, op.state) for op in ops.values()),
    )


def _op_transition(
    kind: TransitionKind,
    op: Operation,
    now: datetime,
    orch_id: str,
    key: str,
    from_state: str | None,
    to_state: str | None,
) -> Transition:
    via = operation_via(from_state, to_state) if from_state and to_state else ()
    return Transition(
        kind,
        orch_id,
        f"{orch_id}:op:{op.operation_id}:{key}",
        now,
        operation_id=op.operation_id,
        runtime_id=op.runtime_id,
        shoot_name=op.shoot_name,
        from_state=from_state,
        to_state=to_state,
        via=via,
        description=op.description,
    )


def _added(orch_id: str, op: Operation, now: datetime, retry: bool) -> list[Transition]:
    """A new operation after the baseline: created as ``pending``, then moved on if it was
    already further when we first saw it."""
    kind = TransitionKind.OPERATION_RETRY if retry else TransitionKind.OPERATION_ADDED
    created = _op_transition(kind, op, now, orch_id, "added", None, PENDING)
    if op.state == PENDING:
        return [created]
    return [created, _moved(orch_id, op, PENDING, now)]


def _moved(orch_id: str, op: Operation, old_state: str, now: datetime) -> Transition:
    terminal = is_terminal_operation(op.state)
    kind = TransitionKind.OPERATION_COMPLETED if terminal else TransitionKind.OPERATION_STATE
    key = f"{old_state}>{op.state}"
    return _op_transition(kind, op, now, orch_id, key, old_state, op.state)
