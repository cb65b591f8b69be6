"""The reads of the web dashboard: bounded, indexed, one orchestration at a time.

:class:`BoardQueries` is mixed into :class:`watcher.store.database.Store`. Every read here is
bounded (``LIMIT``, ``GROUP BY``) or served by an index of the schema
(``operations_by_state``, ``transitions_by_orchestration``), so a page over 40 orchestrations
of 2,000 operations each costs milliseconds, not a scan of every row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from watcher.clock import from_iso
from watcher.core.diff import Transition
from watcher.core.models import FAILED, Operation
from watcher.store.guard import sealed
from watcher.store.rows import OP_COLUMNS, operation_from_row, transition_from_row


@dataclass(frozen=True, slots=True)
class OperationPage:
    """Operations that match a filter, in KEB order: the first ``limit`` and how many match."""

    operations: tuple[Operation, ...]
    matching: int


def _like(text: str) -> str:
    """``text`` as a LIKE pattern that matches it anywhere, wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@sealed
class BoardQueries:
    """Reads of ``operations``, ``transitions``, ``cycles`` for the dashboard."""

    @property
    def conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def failure_reasons(self, orch_id: str, limit: int = -1) -> list[tuple[str, int]]:
        """Failed operations grouped by description, most frequent first (``limit`` -1: all)."""
        rows = self.conn.execute(
            "SELECT description, COUNT(*) AS n FROM operations "
            "WHERE orchestration_id = ? AND state = ? GROUP BY description "
            "ORDER BY n DESC, description LIMIT ?",
            (orch_id, FAILED, limit),
        ).fetchall()
        return [(str(row[0]), int(row[1])) for row in rows]

    def tracked_failure_reasons(self) -> list[tuple[str, int]]:
        """Failed operations of every actively tracked orchestration grouped by orchestration
        and description, in one query (the service's metrics read them after each cycle)."""
        rows = self.conn.execute(
            "SELECT o.description, COUNT(*) FROM operations o JOIN tracked t "
            "USING (orchestration_id) WHERE t.active = 1 AND o.state = ? "
            "GROUP BY o.orchestration_id, o.description",
            (FAILED,),
        ).fetchall()
        return [(str(row[0]), int(row[1])) for row in rows]

    def find_operations(
        self,
        orch_id: str,
        *,
        states: Sequence[str] = (),
        search: str = "",
        limit: int = 200,
    ) -> OperationPage:
        """Operations in ``states`` (any when empty) whose shoot name, runtime ID or operation
        ID contains ``search``; at most ``limit`` of them, and the number that match."""
        where = "orchestration_id = ?"
        args: list[object] = [orch_id]
        if states:
            where += f" AND state IN ({', '.join('?' * len(states))})"
            args.extend(states)
        if search:
            where += (
                " AND (shoot_name LIKE ? ESCAPE '\\' OR runtime_id LIKE ? ESCAPE '\\' "
                "OR operation_id LIKE ? ESCAPE '\\')"
            )
            args.extend([_like(search)] * 3)
        matching = self.conn.execute(
            f"SELECT COUNT(*) FROM operations WHERE {where}", args
        ).fetchone()[0]
        rows = self.conn.execute(
            f"SELECT {OP_COLUMNS} FROM operations WHERE {where} ORDER BY id LIMIT ?",
            [*args, limit],
        ).fetchall()
        return OperationPage(tuple(operation_from_row(row) for row in rows), int(matching))

    def failed_operations(self, orch_id: str) -> list[Operation]:
        """Every failed operation, in KEB order (for failures by reason with every shoot)."""
        rows = self.conn.execute(
            f"SELECT {OP_COLUMNS} FROM operations WHERE orchestration_id = ? AND state = ? "
            "ORDER BY id",
            (orch_id, FAILED),
        ).fetchall()
        return [operation_from_row(row) for row in rows]

    def orchestration_transitions(self, orch_id: str) -> list[Transition]:
        """The orchestration-level history (baseline, states, description, not found)."""
        rows = self.conn.execute(
            "SELECT * FROM transitions WHERE orchestration_id = ? AND operation_id IS NULL "
            "ORDER BY id",
            (orch_id,),
        )
        names = [d[0] for d in rows.description]
        return [transition_from_row(dict(zip(names, row, strict=True))) for row in rows]

    def recent_transitions(self, orch_id: str, limit: int) -> list[Transition]:
        """The newest ``limit`` transitions of one orchestration, newest first."""
        rows = self.conn.execute(
            "SELECT * FROM transitions WHERE orchestration_id = ? ORDER BY id DESC LIMIT ?",
            (orch_id, limit),
        )
        names = [d[0] for d in rows.description]
        return [transition_from_row(dict(zip(names, row, strict=True))) for row in rows]

    def last_cycle_at(self) -> datetime | None:
        """When the last poll cycle finished (any outcome), or None before the first."""
        row = self.conn.execute("SELECT MAX(finished_at) FROM cycles").fetchone()
        return from_iso(row[0])

    def revision(self) -> str:
        """Changes whenever a poll recorded something or finished, or tracking changed: the
        dashboard reloads its data when this differs from what it showed."""
        row = self.conn.execute(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM transitions), "
            "(SELECT COALESCE(MAX(id), 0) FROM cycles WHERE finished_at IS NOT NULL), "
            "(SELECT COUNT(*) || '.' || COALESCE(MAX(last_success_at), '') || '.' || "
            "COALESCE(SUM(active), 0) || '.' || COUNT(finished_at) FROM tracked), "
            "(SELECT COALESCE(unhealthy_since, '') FROM health WHERE id = 1)"
        ).fetchone()
        return ":".join(str(value) for value in row)
