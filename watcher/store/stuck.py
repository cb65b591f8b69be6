"""What is stuck: the store's reads for it and its one write (PRODUCT.md "Stuck is news too").

:class:`StuckQueries` is mixed into :class:`watcher.store.database.Store`. KEB operations carry
no timestamps, so *since when* something is in its state is when the watcher recorded it
entering that state (the newest transition into it), else when the baseline was taken. The
reads follow what is in progress, not the size of the orchestration (an index on transitions
by operation). What is stuck now and the notifications about it are written in one
transaction, so a crash never announces a change twice nor loses it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from watcher.core.intents import Intent
from watcher.core.models import IN_PROGRESS, Orchestration
from watcher.core.stuck import STALLING_STATES, Stalled
from watcher.store.guard import sealed


def stalled_from_column(text: str | None) -> tuple[Stalled, ...]:
    """The ``tracked.stuck`` column as records (``NULL``: nothing stuck)."""
    if not text:
        return ()
    return tuple(Stalled.from_json(item) for item in json.loads(text))


@sealed
class StuckQueries:
    """Reads of ``tracked.stuck`` and of the transitions that say since when; its write."""

    @property
    def conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    @staticmethod
    def _insert_intents(conn: sqlite3.Connection, intents: Sequence[Intent], now: datetime) -> int:
        raise NotImplementedError

    def stuck_of(self, orch_id: str) -> tuple[Stalled, ...]:
        """What was stuck when last evaluated (empty: nothing)."""
        row = self.conn.execute(
            "SELECT stuck FROM tracked WHERE orchestration_id = ?", (orch_id,)
        ).fetchone()
        return stalled_from_column(row[0] if row else None)

    def _baseline_at(self, orch_id: str) -> datetime | None:
        row = self.conn.execute(
            "SELECT at FROM transitions WHERE key = ?", (f"{orch_id}:baseline",)
        ).fetchone()
        return datetime.fromisoformat(row[0]) if row else None

    def stuck_candidates(self, orch_id: str, orch: Orchestration) -> list[Stalled]:
        """Everything that could be stuck, each with since when it has been in its state:
        the operations stored ``in progress``, and the orchestration when it is ``pending``,
        ``canceling`` or ``retrying`` (since the watcher saw it enter that state, else since
        the baseline)."""
        baseline = self._baseline_at(orch_id)
        out: list[Stalled] = []
        if orch.state in STALLING_STATES:
            # Seen since, on the watcher's clock, as for operations: KEB's createdAt comes
            # from another clock and would make a skew look like a wait.
            row = self.conn.execute(
                "SELECT MAX(at) FROM transitions WHERE orchestration_id = ? "
                "AND kind = 'orchestration_state' AND to_state = ?",
                (orch_id, orch.state),
            ).fetchone()
            since = datetime.fromisoformat(row[0]) if row and row[0] else baseline
            if since is not None:
                out.append(Stalled(orch.state, since))
        rows = self.conn.execute(
            "SELECT o.operation_id, o.shoot_name, o.description, "
            "(SELECT MAX(t.at) FROM transitions t WHERE t.orchestration_id = o.orchestration_id "
            "AND t.operation_id = o.operation_id AND t.to_state = ?) "
            "FROM operations o WHERE o.orchestration_id = ? AND o.state = ? ORDER BY o.id",
            (IN_PROGRESS, orch_id, IN_PROGRESS),
        ).fetchall()
        for op_id, shoot, description, entered in rows:
            since = datetime.fromisoformat(entered) if entered else baseline
            if since is not None:
                out.append(Stalled(IN_PROGRESS, since, op_id, shoot, description))
        return out

    def last_card(self, orch_id: str) -> dict[str, Any] | None:
        """The payload of the orchestration's newest card notification (``None``: none)."""
        row = self.conn.execute(
            "SELECT payload FROM outbox WHERE orchestration_id = ? "
            "AND kind IN ('tracking_started', 'progress') ORDER BY id DESC LIMIT 1",
            (orch_id,),
        ).fetchone()
        if row is None:
            return None
        payload = json.loads(row[0])
        return payload if isinstance(payload, dict) else None

    def record_stuck(
        self, orch_id: str, current: Sequence[Stalled], intents: Sequence[Intent], now: datetime
    ) -> None:
        """What is stuck now and the notifications about the change, in one transaction."""
        text = json.dumps([s.to_json() for s in current]) if current else None
        with self.transaction() as conn:
            conn.execute("UPDATE tracked SET stuck = ? WHERE orchestration_id = ?", (text, orch_id))
            if intents:
                self._insert_intents(conn, intents, now)
