"""The store's journal: recorded transitions read back, and the log of poll cycles.

:class:`JournalQueries` is mixed into :class:`watcher.store.database.Store`; writing
transitions happens in :meth:`~watcher.store.database.Store.commit_diff`, in the same
transaction as the snapshot and the outbox.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from watcher.clock import iso
from watcher.core.diff import Transition
from watcher.store.guard import sealed
from watcher.store.rows import transition_from_row


@sealed
class JournalQueries:
    """Reads of ``transitions`` and writes of ``cycles``."""

    @property
    def conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def history(self, orch_id: str) -> list[Transition]:
        """Every recorded transition of one orchestration, oldest first."""
        return [
            transition_from_row(row)
            for row in self._rows(
                "SELECT * FROM transitions WHERE orchestration_id = ? ORDER BY id", [orch_id]
            )
        ]

    def state_transitions(self, orch_id: str) -> list[Transition]:
        """The orchestration's recorded state changes, oldest first (runs, retries)."""
        return [
            transition_from_row(row)
            for row in self._rows(
                "SELECT * FROM transitions WHERE orchestration_id = ? "
                "AND kind = 'orchestration_state' ORDER BY id",
                [orch_id],
            )
        ]

    def repeats(self, orch_id: str, transitions: Sequence[Transition]) -> dict[str, int]:
        """How often each operation transition of ``transitions`` was recorded already, for
        those that repeat one under the same operation ID.

        KEB 1.15.0 resumes legacy ``retrying`` rows under their *old* IDs, so one operation can
        go ``in progress -> failed`` twice (docs/keb-api.md §13): the second time is a new
        event. A key counts as repeated only while the operation's stored state is the
        transition's starting state; otherwise another process has already recorded this very
        change, and the unique key must make this commit fail.
        """
        moves = [t for t in transitions if t.operation_id is not None and t.from_state]
        keys = [t.key for t in moves]
        existing: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT key FROM transitions WHERE key IN ({marks})"
            existing.update(row[0] for row in self.conn.execute(sql, chunk))
        out: dict[str, int] = {}
        for t in moves:
            if t.key not in existing:
                continue
            row = self.conn.execute(
                "SELECT state FROM operations WHERE orchestration_id = ? AND operation_id = ?",
                (orch_id, t.operation_id),
            ).fetchone()
            if row is None or row[0] != t.from_state:
                continue
            # The key itself and its repeats ``key#2``, ``key#3``... ('$' follows '#').
            (count,) = self.conn.execute(
                "SELECT count(*) FROM transitions WHERE key = ?1 OR (key > ?1 || '#' "
                "AND key < ?1 || '$')",
                (t.key,),
            ).fetchone()
            out[t.key] = int(count)
        return out

    def ended_after(self, orch_id: str, key: str) -> list[tuple[str, str, str, str]]:
        """``(to_state, description, shoot, operation_id)`` of every operation end recorded
        after the transition ``key`` (an orchestration's outcome), oldest first."""
        rows = self.conn.execute(
            "SELECT to_state, description, shoot_name, operation_id FROM transitions "
            "WHERE orchestration_id = ? AND kind = 'operation_completed' "
            "AND id > COALESCE((SELECT id FROM transitions WHERE key = ?), 0) ORDER BY id",
            (orch_id, key),
        ).fetchall()
        return [(str(a), str(b), str(c), str(d or "")) for a, b, c, d in rows]

    def last_enqueued(self, orch_id: str, kind: str) -> datetime | None:
        """When the newest notification of ``kind`` about the orchestration was enqueued."""
        row = self.conn.execute(
            "SELECT MAX(created_at) FROM outbox WHERE orchestration_id = ? AND kind = ?",
            (orch_id, kind),
        ).fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def last_transition_id(self) -> int:
        row = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM transitions").fetchone()
        return int(row[0])

    def transitions_after(self, last_id: int) -> tuple[int, list[Transition]]:
        """Transitions recorded after row ``last_id`` (all orchestrations), and the new last
        row ID: lets a follower print what each cycle recorded."""
        rows = self._rows("SELECT * FROM transitions WHERE id > ? ORDER BY id", [last_id])
        if not rows:
            return last_id, []
        return int(rows[-1]["id"]), [transition_from_row(row) for row in rows]

    def begin_cycle(self, now: datetime) -> int:
        with self.transaction() as conn:
            cur = conn.execute("INSERT INTO cycles (started_at) VALUES (?)", (iso(now),))
            assert cur.lastrowid is not None
            return cur.lastrowid

    def finish_cycle(
        self,
        cycle_id: int,
        now: datetime,
        *,
        polled: int,
        failed: int,
        requests: int,
        transitions: int,
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE cycles SET finished_at = ?, polled = ?, failed = ?, requests = ?, "
                "transitions = ? WHERE id = ?",
                (iso(now), polled, failed, requests, transitions, cycle_id),
            )

    def reference(self, orch_id: str) -> tuple[datetime, dict[str, int]] | None:
        """When the baseline was taken and the operation counts then."""
        row = self.conn.execute(
            "SELECT at, detail FROM transitions WHERE orchestration_id = ? AND kind = 'baseline' "
            "ORDER BY id LIMIT 1",
            (orch_id,),
        ).fetchone()
        if row is None:
            return None
        counts = json.loads(row[1]).get("counts", {})
        return datetime.fromisoformat(row[0]), counts
