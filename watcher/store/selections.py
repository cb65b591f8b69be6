"""Fleet watch in SQLite: the selections, one record per runtime, and their history.

A selection's records, the transitions one cycle found and the notification intents they
caused are written in **one** transaction (:meth:`SelectionStore.commit`), as
:meth:`watcher.store.database.Store.commit_diff` does for an orchestration: a crash before the
commit leaves the old records and the next cycle finds the same changes; transition and
intent keys are unique, so nothing is recorded twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from watcher.clock import from_iso, iso
from watcher.core.fleet import (
    FleetOperation,
    Selection,
    TrackedSelection,
    selection_filters,
    selection_from_filters,
)
from watcher.core.fleet_diff import FleetChange, FleetTransition, RuntimeRecord
from watcher.core.intents import Intent
from watcher.core.models import parse_keb_time
from watcher.core.stuck import Stalled
from watcher.redact import redact
from watcher.store.database import Store
from watcher.store.guard import sealed
from watcher.store.stuck import stalled_from_column


@sealed
class SelectionStore:
    """The fleet tables of one :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, selection: Selection, channel: str | None, now: datetime) -> bool:
        """Follow ``selection``; ``False`` when one of that name exists already."""
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO selections (name, filters, channel, added_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (selection.name, json.dumps(selection_filters(selection)), channel, iso(now)),
            )
            return cur.rowcount == 1

    def remove(self, name: str) -> bool:
        """Stop following; its records go, its history stays. ``False`` if unknown."""
        with self.store.transaction() as conn:
            cur = conn.execute("DELETE FROM selections WHERE name = ?", (name,))
            conn.execute("DELETE FROM fleet_runtimes WHERE selection = ?", (name,))
            return cur.rowcount == 1

    def selections(self) -> list[TrackedSelection]:
        rows = self.store.conn.execute(
            "SELECT name, filters, channel, added_at, baseline_at, last_full_sweep_at, "
            "last_success_at, last_error FROM selections ORDER BY added_at, name"
        ).fetchall()
        return [
            TrackedSelection(
                selection=selection_from_filters(row[0], json.loads(row[1])),
                channel=row[2],
                added_at=datetime.fromisoformat(row[3]),
                baseline_at=from_iso(row[4]),
                last_full_sweep_at=from_iso(row[5]),
                last_success_at=from_iso(row[6]),
                last_error=row[7],
            )
            for row in rows
        ]

    def records(self, name: str) -> dict[str, RuntimeRecord]:
        rows = self.store.conn.execute(
            "SELECT record FROM fleet_runtimes WHERE selection = ? ORDER BY instance_id", (name,)
        ).fetchall()
        records = [record_from_json(json.loads(row[0])) for row in rows]
        return {r.instance_id: r for r in records}

    def commit(
        self,
        name: str,
        previous: Mapping[str, RuntimeRecord],
        records: Mapping[str, RuntimeRecord],
        transitions: Sequence[FleetTransition],
        intents: Sequence[Intent],
        *,
        now: datetime,
        full_sweep: bool,
    ) -> int:
        """Write what changed of the records, the transitions and the intents together."""
        changed = [r for iid, r in records.items() if previous.get(iid) != r]
        removed = [iid for iid in previous if iid not in records]
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO fleet_runtimes (selection, instance_id, record) VALUES (?, ?, ?) "
                "ON CONFLICT (selection, instance_id) DO UPDATE SET record = excluded.record",
                [(name, r.instance_id, json.dumps(record_to_json(r))) for r in changed],
            )
            conn.executemany(
                "DELETE FROM fleet_runtimes WHERE selection = ? AND instance_id = ?",
                [(name, iid) for iid in removed],
            )
            conn.executemany(
                "INSERT INTO fleet_transitions (key, selection, change, at, instance_id, "
                "operation_id, kind, from_state, to_state, description, shoot, subaccount_id, "
                "runtime_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        t.key,
                        name,
                        t.change.value,
                        iso(t.at),
                        t.instance_id,
                        t.operation_id,
                        t.kind,
                        t.from_state,
                        t.to_state,
                        redact(t.description),
                        t.shoot,
                        t.subaccount_id,
                        t.runtime_id,
                    )
                    for t in transitions
                ],
            )
            self.store._insert_intents(conn, intents, now)
            conn.execute(
                "UPDATE selections SET baseline_at = COALESCE(baseline_at, ?1), "
                "last_success_at = ?1, last_error = NULL, "
                "last_full_sweep_at = CASE WHEN ?2 THEN ?1 ELSE last_full_sweep_at END "
                "WHERE name = ?3",
                (iso(now), int(full_sweep), name),
            )
        return len(changed) + len(removed) + len(transitions)

    def record_failure(self, name: str, error: str, now: datetime) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE selections SET last_error = ? WHERE name = ?", (redact(error), name)
            )

    def ended_since(self, name: str, since: datetime) -> list[tuple[str, str]]:
        """``(change, to_state)`` of the selection's transitions recorded at or after
        ``since`` that end something (what the card counts for the last 24 hours)."""
        rows = self.store.conn.execute(
            "SELECT change, to_state FROM fleet_transitions WHERE selection = ? AND at >= ? "
            "AND change IN ('operation_ended', 'suspended', 'unsuspended', 'deprovisioned', "
            "'runtime_appeared')",
            (name, iso(since)),
        ).fetchall()
        return [(str(row[0]), str(row[1])) for row in rows]

    def stuck_of(self, name: str) -> tuple[Stalled, ...]:
        """What was stuck in the selection when last evaluated (empty: nothing)."""
        row = self.store.conn.execute(
            "SELECT stuck FROM selections WHERE name = ?", (name,)
        ).fetchone()
        return stalled_from_column(row[0] if row else None)

    def entered(self, name: str, records: Mapping[str, RuntimeRecord]) -> dict[str, datetime]:
        """Since when the watcher saw each open operation enter its current state (the
        newest recorded transition into it), by operation ID; one indexed read each."""
        out: dict[str, datetime] = {}
        for record in records.values():
            for op in record.open_operations():
                row = self.store.conn.execute(
                    "SELECT MAX(at) FROM fleet_transitions WHERE selection = ? "
                    "AND operation_id = ? AND to_state = ?",
                    (name, op.operation_id, op.state),
                ).fetchone()
                if row and row[0]:
                    out[op.operation_id] = datetime.fromisoformat(row[0])
        return out

    def record_stuck(
        self, name: str, current: Sequence[Stalled], intents: Sequence[Intent], now: datetime
    ) -> None:
        """What is stuck now and the notifications about the change, in one transaction."""
        text = json.dumps([s.to_json() for s in current]) if current else None
        with self.store.transaction() as conn:
            conn.execute("UPDATE selections SET stuck = ? WHERE name = ?", (text, name))
            self.store._insert_intents(conn, intents, now)

    def history(
        self, *, selection: str | None = None, instance_id: str | None = None, limit: int = 200
    ) -> list[FleetTransition]:
        """Recorded transitions, oldest first (the newest ``limit``)."""
        where, params = [], []
        if selection is not None:
            where.append("selection = ?")
            params.append(selection)
        if instance_id is not None:
            where.append("instance_id = ?")
            params.append(instance_id)
        sql = "SELECT * FROM fleet_transitions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY id DESC LIMIT {int(limit)}"
        cursor = self.store.conn.execute(sql, params)
        names = [c[0] for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor]
        return [_transition(row) for row in reversed(rows)]


def _transition(row: Mapping[str, Any]) -> FleetTransition:
    at = from_iso(row["at"])
    assert at is not None
    return FleetTransition(
        key=row["key"],
        change=FleetChange(row["change"]),
        instance_id=row["instance_id"],
        at=at,
        operation_id=row["operation_id"],
        kind=row["kind"],
        from_state=row["from_state"],
        to_state=row["to_state"],
        description=row["description"],
        shoot=row["shoot"],
        subaccount_id=row["subaccount_id"],
        runtime_id=row["runtime_id"],
    )


def record_to_json(record: RuntimeRecord) -> dict[str, Any]:
    return {
        "instance_id": record.instance_id,
        "runtime_id": record.runtime_id,
        "shoot": record.shoot,
        "subaccount_id": record.subaccount_id,
        "global_account_id": record.global_account_id,
        "plan": record.plan,
        "region": record.region,
        "unreadable": record.unreadable,
        "operations": [
            {
                "id": op.operation_id,
                "kind": op.kind,
                "state": op.state,
                "description": redact(op.description),
                "reason": redact(op.reason),
                "created_at": op.created_at.isoformat() if op.created_at else None,
                "updated_at": op.updated_at.isoformat() if op.updated_at else None,
            }
            for op in record.operations.values()
        ],
    }


def record_from_json(obj: Mapping[str, Any]) -> RuntimeRecord:
    operations = {
        op["id"]: FleetOperation(
            operation_id=op["id"],
            kind=op["kind"],
            state=op["state"],
            description=op.get("description", ""),
            created_at=parse_keb_time(op.get("created_at")),
            updated_at=parse_keb_time(op.get("updated_at")),
            reason=op.get("reason", ""),
        )
        for op in obj.get("operations", [])
    }
    return RuntimeRecord(
        instance_id=obj["instance_id"],
        runtime_id=obj.get("runtime_id", ""),
        shoot=obj.get("shoot", ""),
        subaccount_id=obj.get("subaccount_id", ""),
        global_account_id=obj.get("global_account_id", ""),
        plan=obj.get("plan", ""),
        region=obj.get("region", ""),
        operations=operations,
        unreadable=bool(obj.get("unreadable")),
    )
