"""Pure: the records of a selection + one fleet observation -> the new records and what happened.

A selection's records are one :class:`RuntimeRecord` per runtime, keyed by instance ID (the
only stable key, docs/keb-runtimes-api.md §8), holding the last state KEB showed of every
operation seen. :func:`fleet_diff` compares them with a :class:`FleetObservation` and records
each change as what it is, once:

* ``runtime_appeared``; ``operation_appeared``, ``operation_changed`` and ``operation_ended``;
* ``suspended`` and ``unsuspended`` (same instance, new runtime ID), read from the suspension
  and unsuspension operations ending ``succeeded``;
* ``deprovisioned``: KEB deletes the instance and all its operations when a deprovisioning
  succeeds, so its ``succeeded`` is never shown (§3.8, §6.3). "Absent, and the archive says
  deprovisioned" (``state=deprovisioned&instance_id=``) is a succeeded deprovisioning: its
  open deprovisioning operation ends ``succeeded`` and the record goes. A runtime that is
  merely absent (a paging skip, a suspension under the default filter) changes nothing: no
  runtime is ever recorded as having "vanished";
* ``unreadable``: a runtime that makes KEB fail a page (§2.4), once (the baseline included:
  it is a problem to report, not history).

Rules that keep the history true (§3.8, §8): a recorded state never goes backwards (an ended
operation stays ended, nothing returns to ``pending``), and an open operation that an
``op_detail=all`` answer no longer lists has ended with an outcome KEB no longer shows (the
update list holds only the two newest): it ends with state ``unknown``. An ended operation
first shown by such a list that is older than one already known is history: recorded, not
announced. The first observation is a baseline: everything is recorded, nothing is
announced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from watcher.core.fleet import (
    DEPROVISIONING,
    OUTCOME_NOT_SHOWN,
    SUSPENSION,
    UNSUSPENSION,
    FleetOperation,
    FleetRuntime,
    is_ended,
)
from watcher.core.followed import OperationFact
from watcher.core.models import PENDING, SUCCEEDED


class FleetChange(StrEnum):
    RUNTIME_APPEARED = "runtime_appeared"
    OPERATION_APPEARED = "operation_appeared"
    OPERATION_CHANGED = "operation_changed"
    OPERATION_ENDED = "operation_ended"
    SUSPENDED = "suspended"
    UNSUSPENDED = "unsuspended"
    DEPROVISIONED = "deprovisioned"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class RuntimeRecord:
    """What we know of one runtime of a selection; ``operations`` by operation ID."""

    instance_id: str
    runtime_id: str = ""
    shoot: str = ""
    subaccount_id: str = ""
    global_account_id: str = ""
    plan: str = ""
    region: str = ""
    operations: Mapping[str, FleetOperation] = field(default_factory=dict)
    unreadable: bool = False

    def open_operations(self) -> list[FleetOperation]:
        return [op for op in self.operations.values() if not is_ended(op.state)]

    @property
    def active(self) -> bool:
        """Whether an operation of it was open when we last looked."""
        return any(not is_ended(op.state) for op in self.operations.values())


@dataclass(frozen=True, slots=True)
class FleetObservation:
    """What one cycle read of a selection.

    ``runtimes``: every runtime an answer showed (a later answer about the same instance
    wins); ``detailed``: instances read with ``op_detail=all``, whose lists name every open
    operation; ``complete``: the whole selection was listed; ``deprovisioned``: instances the
    archive confirmed; ``unreadable``: instances that make KEB fail a page."""

    runtimes: Mapping[str, FleetRuntime]
    detailed: frozenset[str] = frozenset()
    complete: bool = False
    deprovisioned: frozenset[str] = frozenset()
    unreadable: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FleetTransition:
    """One recorded change; ``key`` is unique per change (once-per)."""

    key: str
    change: FleetChange
    instance_id: str
    at: datetime
    operation_id: str = ""
    kind: str = ""
    from_state: str = ""
    to_state: str = ""
    description: str = ""
    shoot: str = ""
    subaccount_id: str = ""
    runtime_id: str = ""

    def fact(self) -> OperationFact:
        return OperationFact(
            self.operation_id,
            self.kind,
            self.to_state,
            self.description,
            self.instance_id,
            self.shoot,
            self.subaccount_id,
            self.runtime_id,
        )


@dataclass(frozen=True, slots=True)
class FleetDiff:
    records: dict[str, RuntimeRecord]
    transitions: list[FleetTransition]


def fleet_diff(
    selection: str,
    previous: Mapping[str, RuntimeRecord],
    observed: FleetObservation,
    now: datetime,
    *,
    baseline: bool = False,
) -> FleetDiff:
    """The new records and the transitions that lead to them (see the module docstring)."""
    records = dict(previous)
    out: list[FleetTransition] = []

    def emit(
        change: FleetChange, rec: RuntimeRecord, op: FleetOperation | None = None, old: str = ""
    ) -> None:
        if baseline and change is not FleetChange.UNREADABLE:
            return  # a baseline records; only a runtime we cannot read is news even then
        op_id = op.operation_id if op else ""
        to_state = op.state if op else ""
        key = f"{selection}:{rec.instance_id}:{op_id}:{change.value}:{to_state}"
        if change is FleetChange.UNSUSPENDED:
            key += f":{rec.runtime_id}"
        out.append(
            FleetTransition(
                key=key,
                change=change,
                instance_id=rec.instance_id,
                at=now,
                operation_id=op_id,
                kind=op.kind if op else "",
                from_state=old,
                to_state=to_state,
                description=(op.reason if op else ""),
                shoot=rec.shoot,
                subaccount_id=rec.subaccount_id,
                runtime_id=rec.runtime_id,
            )
        )

    def moved(rec: RuntimeRecord, op: FleetOperation, old: str) -> None:
        if old == "":
            emit(FleetChange.OPERATION_APPEARED, rec, op)
        if is_ended(op.state):
            emit(FleetChange.OPERATION_ENDED, rec, op, old)
        elif old != "":
            emit(FleetChange.OPERATION_CHANGED, rec, op, old)
        if op.state == SUCCEEDED and op.kind == SUSPENSION:
            emit(FleetChange.SUSPENDED, rec, op)
        if op.state == SUCCEEDED and op.kind == UNSUSPENSION:
            emit(FleetChange.UNSUSPENDED, rec, op)

    for instance_id, runtime in observed.runtimes.items():
        old_rec = previous.get(instance_id)
        rec = _refreshed(old_rec, runtime)
        operations = dict(rec.operations)
        if old_rec is None:
            emit(FleetChange.RUNTIME_APPEARED, rec)
        for op in runtime.operations:
            known = operations.get(op.operation_id)
            if known is None:
                operations[op.operation_id] = op
                if not _history(op, operations.values()):
                    moved(rec, op, "")
            elif known.state != op.state and not _backwards(known.state, op.state):
                operations[op.operation_id] = op
                moved(rec, op, known.state)
            elif known.state == op.state and op.reason != known.reason:
                operations[op.operation_id] = replace(known, reason=op.reason)
        if instance_id in observed.detailed:
            shown = {op.operation_id for op in runtime.operations}
            for op in list(operations.values()):
                if not is_ended(op.state) and op.operation_id not in shown:
                    ended = replace(op, state=OUTCOME_NOT_SHOWN)
                    operations[op.operation_id] = ended
                    emit(FleetChange.OPERATION_ENDED, rec, ended, op.state)
        unreadable = rec.unreadable
        if instance_id in observed.unreadable and not rec.unreadable:
            emit(FleetChange.UNREADABLE, rec)
            unreadable = True
        elif instance_id not in observed.unreadable and observed.complete:
            unreadable = False
        records[instance_id] = replace(rec, operations=operations, unreadable=unreadable)

    for instance_id in sorted(observed.deprovisioned):
        gone = records.pop(instance_id, None)
        if gone is None or instance_id in observed.runtimes:
            continue
        for op in gone.open_operations():
            if op.kind == DEPROVISIONING:
                moved(gone, replace(op, state=SUCCEEDED), op.state)
        emit(FleetChange.DEPROVISIONED, gone)
    return FleetDiff(records, out)


def _history(op: FleetOperation, known: Iterable[FleetOperation]) -> bool:
    """Whether ``op`` is an old, ended operation first shown now (an ``op_detail=all`` list
    reaching back before what we saw): ended before an operation already known was created.
    Operation times are compared only with each other, all from KEB's clock (§8)."""
    if not is_ended(op.state) or op.created_at is None:
        return False
    return any(
        other.created_at is not None and other.created_at > op.created_at
        for other in known
        if other.operation_id != op.operation_id
    )


def _backwards(known: str, shown: str) -> bool:
    """Whether showing ``shown`` after ``known`` would move the operation backwards."""
    return is_ended(known) or (shown == PENDING and known != PENDING)


def _refreshed(old: RuntimeRecord | None, runtime: FleetRuntime) -> RuntimeRecord:
    """The record's runtime fields from ``runtime``; a shoot KEB left empty keeps the old one
    (it comes from the last operation's data, §3.2)."""
    base = old or RuntimeRecord(runtime.instance_id)
    return replace(
        base,
        runtime_id=runtime.runtime_id,
        shoot=runtime.shoot or base.shoot,
        subaccount_id=runtime.subaccount_id,
        global_account_id=runtime.global_account_id,
        plan=runtime.plan,
        region=runtime.region,
    )


def failures(transitions: Iterable[FleetTransition]) -> list[OperationFact]:
    """The operations that ended failed, as facts for a failure digest."""
    return [
        t.fact()
        for t in transitions
        if t.change is FleetChange.OPERATION_ENDED and t.to_state == "failed"
    ]
