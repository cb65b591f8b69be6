"""The snapshot reads of the store: what observing and diffing need, cheaply.

:class:`SnapshotQueries` is mixed into :class:`watcher.store.database.Store`; it is the read
side that :class:`watcher.engine.observer.SnapshotReader` describes. The partial reads serve
incremental observation: their cost follows what changed, not how many operations the
orchestration has.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from watcher.core.diff import Snapshot
from watcher.core.models import MaintenanceWindow, Operation, Orchestration
from watcher.core.tracked import SnapshotHead
from watcher.store.guard import sealed
from watcher.store.rows import OP_COLUMNS, operation_from_row


@sealed
class SnapshotQueries:
    """Reads of the ``orchestrations`` and ``operations`` tables."""

    @property
    def conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def load_head(self, orch_id: str) -> SnapshotHead:
        row = self.conn.execute(
            "SELECT raw, expected_stats, counts, operation_count, revision, not_found "
            "FROM orchestrations WHERE orchestration_id = ?",
            (orch_id,),
        ).fetchone()
        if row is None:
            # Never observed; KEB may still have answered 404 (recorded on the tracked row).
            gone = self.conn.execute(
                "SELECT not_found FROM tracked WHERE orchestration_id = ?", (orch_id,)
            ).fetchone()
            return SnapshotHead(orch_id, None, None, {}, 0, 0, bool(gone and gone[0]))
        return SnapshotHead(
            orch_id,
            Orchestration.from_json(json.loads(row[0])),
            json.loads(row[1]),
            json.loads(row[2]),
            row[3],
            row[4],
            bool(row[5]),
        )

    def load_snapshot(self, head: SnapshotHead) -> Snapshot:
        """The complete snapshot: the head plus every operation, in KEB order."""
        rows = self.conn.execute(
            f"SELECT {OP_COLUMNS} FROM operations WHERE orchestration_id = ? ORDER BY id",
            (head.orchestration_id,),
        ).fetchall()
        operations = {row[1]: operation_from_row(row) for row in rows}
        return Snapshot(
            head.orchestration_id,
            head.orchestration,
            operations,
            head.revision,
            head.not_found,
            counts=head.counts,
            expected_stats=head.expected_stats,
        )

    # The partial reads below serve incremental observation: their cost follows what
    # changed, not how many operations the orchestration has.

    def operations_in_state(self, orch_id: str, state: str) -> dict[str, Operation]:
        rows = self.conn.execute(
            f"SELECT {OP_COLUMNS} FROM operations WHERE orchestration_id = ? AND state = ? "
            "ORDER BY id",
            (orch_id, state),
        ).fetchall()
        return {row[1]: operation_from_row(row) for row in rows}

    def pending_windows(self, orch_id: str) -> list[MaintenanceWindow]:
        """The distinct maintenance windows of the orchestration's pending operations."""
        rows = self.conn.execute(
            "SELECT DISTINCT window_begin, window_end FROM operations "
            "WHERE orchestration_id = ? AND state = 'pending'",
            (orch_id,),
        ).fetchall()
        return [MaintenanceWindow(begin, end) for begin, end in rows]

    def pending_windows_of(self, ids: Iterable[str]) -> dict[str, tuple[MaintenanceWindow, ...]]:
        """The distinct maintenance windows of the pending operations of each of ``ids`` (all
        actively tracked), in one query: ``watcher run`` asks for them on each tick."""
        wanted = set(ids)
        rows = self.conn.execute(
            "SELECT DISTINCT o.orchestration_id, o.window_begin, o.window_end "
            "FROM tracked t JOIN operations o "
            "ON o.orchestration_id = t.orchestration_id AND o.state = 'pending' "
            "WHERE t.active = 1"
        ).fetchall()
        found: dict[str, list[MaintenanceWindow]] = {}
        for orch_id, begin, end in rows:
            if orch_id in wanted:
                found.setdefault(orch_id, []).append(MaintenanceWindow(begin, end))
        return {orch_id: tuple(windows) for orch_id, windows in found.items()}

    def operation_ids_in_state(self, orch_id: str, state: str) -> list[str]:
        """IDs in KEB order (oldest first)."""
        rows = self.conn.execute(
            "SELECT operation_id FROM operations WHERE orchestration_id = ? AND state = ? "
            "ORDER BY id",
            (orch_id, state),
        ).fetchall()
        return [row[0] for row in rows]

    def operations_by_id(self, orch_id: str, ids: Iterable[str]) -> dict[str, Operation]:
        out: dict[str, Operation] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self.conn.execute(
                f"SELECT {OP_COLUMNS} FROM operations WHERE orchestration_id = ? "
                f"AND operation_id IN ({', '.join('?' * len(chunk))}) ORDER BY id",
                (orch_id, *chunk),
            ).fetchall()
            out.update((row[1], operation_from_row(row)) for row in rows)
        return out

    def runtime_states(self, orch_id: str, runtimes: Iterable[str]) -> list[tuple[str, str, str]]:
        """``(operation_id, runtime_id, state)`` of every operation of these runtimes."""
        out: list[tuple[str, str, str]] = []
        wanted = list(runtimes)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            out.extend(
                self.conn.execute(
                    "SELECT operation_id, runtime_id, state FROM operations "
                    f"WHERE orchestration_id = ? AND runtime_id IN ({', '.join('?' * len(chunk))})",
                    (orch_id, *chunk),
                ).fetchall()
            )
        return out
