"""How keb-watcher's records map to SQLite rows, and back: pure conversions.

:mod:`watcher.store.database` does the I/O; everything that turns an :class:`Operation`, a
:class:`Transition` or a tracked orchestration into a row (or a row into them) lives here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from watcher.core.diff import Transition, TransitionKind
from watcher.core.models import MaintenanceWindow, Operation, Orchestration
from watcher.core.stuck import Stalled

OP_COLUMNS = (
    "orchestration_id, operation_id, runtime_id, shoot_name, state, description, plan_name, "
    "plan_id, global_account_id, sub_account_id, dry_run, window_begin, window_end, extra"
)


@dataclass(frozen=True, slots=True)
class Tracked:
    """A tracked orchestration with what we last knew of it (for ``list`` and the poller)."""

    orchestration_id: str
    channel: str | None
    tracked_at: datetime
    active: bool
    finished_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    last_full_sweep_at: datetime | None
    state: str | None
    description: str | None
    type: str | None
    counts: Mapping[str, int]
    operation_count: int
    not_found: bool
    #: When KEB created the orchestration (its ``createdAt``), once a poll has seen it.
    created_at: datetime | None = None
    #: What is stuck (``poll.stuck_after``), as the last poll found it.
    stuck: tuple[Stalled, ...] = ()

    def retries_watched_until(self, retry_window: float) -> datetime | None:
        """Until when a finished ``failed`` orchestration is still polled for a retry
        (``None``: it is not a failed one whose final summary went out)."""
        if self.finished_at is None or self.state != "failed" or self.not_found:
            return None
        return self.finished_at + timedelta(seconds=retry_window)

    def watching_for_retries(self, now: datetime, retry_window: float) -> bool:
        until = self.retries_watched_until(retry_window)
        return until is not None and now < until


@dataclass(frozen=True, slots=True)
class SnapshotHead:
    """The orchestration part of a snapshot, cheap to load: enough to decide that nothing
    changed without reading thousands of operation rows.

    ``counts`` are raw operations per state; ``expected_stats`` is KEB's ``operationStats``
    (per-instance ``failed``) for the stored operations."""

    orchestration_id: str
    orchestration: Orchestration | None
    expected_stats: Mapping[str, int] | None
    counts: Mapping[str, int]
    operation_count: int
    revision: int
    not_found: bool


def operation_row(orch_id: str, op: Operation) -> tuple[Any, ...]:
    return (
        orch_id,
        op.operation_id,
        op.runtime_id,
        op.shoot_name,
        op.state,
        op.description,
        op.plan_name,
        op.plan_id,
        op.global_account_id,
        op.sub_account_id,
        int(op.dry_run),
        op.window.begin,
        op.window.end,
        json.dumps(dict(op.extra)) if op.extra else None,
    )


def operation_from_row(row: Sequence[Any]) -> Operation:
    extra = row[13]
    return Operation(
        operation_id=row[1],
        orchestration_id=row[0],
        runtime_id=row[2],
        shoot_name=row[3],
        state=row[4],
        description=row[5],
        plan_name=row[6],
        plan_id=row[7],
        global_account_id=row[8],
        sub_account_id=row[9],
        dry_run=bool(row[10]),
        window=MaintenanceWindow(row[11], row[12]),
        extra=MappingProxyType(json.loads(extra)) if extra else MappingProxyType({}),
    )


def transition_from_row(row: Mapping[str, Any]) -> Transition:
    return Transition(
        kind=TransitionKind(row["kind"]),
        orchestration_id=row["orchestration_id"],
        key=row["key"],
        at=datetime.fromisoformat(row["at"]),
        operation_id=row["operation_id"],
        runtime_id=row["runtime_id"],
        shoot_name=row["shoot_name"],
        from_state=row["from_state"],
        to_state=row["to_state"],
        via=tuple(json.loads(row["via"])),
        description=row["description"],
        detail=json.loads(row["detail"]),
    )
