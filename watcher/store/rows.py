"""How keb-watcher's records map to SQLite rows, and back: pure conversions.

:mod:`watcher.store.database` does the I/O; everything that turns an :class:`Operation`, a
:class:`Transition` into a row (or a row into them) lives here; the records themselves are
:mod:`watcher.core`'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from watcher.core.diff import Transition, TransitionKind
from watcher.core.models import MaintenanceWindow, Operation

OP_COLUMNS = (
    "orchestration_id, operation_id, runtime_id, shoot_name, state, description, plan_name, "
    "plan_id, global_account_id, sub_account_id, dry_run, window_begin, window_end, extra"
)


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
