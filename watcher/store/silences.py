"""Silences (``watcher silence``): an orchestration's non-final notifications held back for a
while, as Alertmanager silences alerts. Mixed into :class:`watcher.store.database.Store`.

A silence names who set it, why and until when; one per orchestration (a new one replaces
it). What it holds back is decided by :func:`watcher.notify.plan.plan` (``SILENCEABLE``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from watcher.clock import iso
from watcher.core.kinds import Kind, priority
from watcher.core.tracked import Silence
from watcher.store.guard import sealed


@sealed
class SilenceQueries:
    """Setting, lifting and reading silences."""

    @property
    def conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def silence(
        self,
        ids: Sequence[str],
        until: datetime,
        reason: str | None,
        by: str | None,
        now: datetime,
    ) -> None:
        """Silence ``ids`` until ``until`` (replacing a silence they had); their Slack cards
        are redrawn to say so (:meth:`_redraw_cards`)."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO silences (orchestration_id, until, reason, created_by, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (orchestration_id) DO UPDATE SET "
                "until = excluded.until, reason = excluded.reason, "
                "created_by = excluded.created_by, created_at = excluded.created_at",
                [(i, iso(until), reason, by, iso(now)) for i in ids],
            )
            self._redraw_cards(conn, ids, "silenced", now)

    def unsilence(self, ids: Sequence[str], now: datetime) -> list[str]:
        """Lift the silences of ``ids``; returns those that had none in force."""
        active = self.silences(now)
        with self.transaction() as conn:
            conn.executemany("DELETE FROM silences WHERE orchestration_id = ?", [(i,) for i in ids])
            self._redraw_cards(conn, [i for i in ids if i in active], "unsilenced", now)
        return [i for i in ids if i not in active]

    @staticmethod
    def _redraw_cards(
        conn: sqlite3.Connection, ids: Sequence[str], why: str, now: datetime
    ) -> None:
        """Queue an edit of each orchestration's card, with the payload it was last sent with,
        so that the card shows the silence (or no longer does) at the next delivery rather than
        at the orchestration's next change. Nothing for a card not sent yet: when it goes, it
        is rendered with the silence as it is then."""
        conn.executemany(
            "INSERT OR IGNORE INTO outbox (key, orchestration_id, kind, priority, channel, "
            "payload, "
            "created_at) SELECT orchestration_id || ':progress:' || ? || ':' || ?, "
            "orchestration_id, 'progress', ?, channel, payload, ? FROM outbox "
            "WHERE orchestration_id = ? AND kind IN ('tracking_started', 'progress') "
            "AND status = 'sent' ORDER BY id DESC LIMIT 1",
            [(why, iso(now), priority(Kind.PROGRESS), iso(now), i) for i in ids],
        )

    def silences(self, now: datetime) -> dict[str, Silence]:
        """The silences in force at ``now``, by orchestration (expired ones are not)."""
        rows = self.conn.execute(
            "SELECT orchestration_id, until, reason, created_by, created_at FROM silences "
            "WHERE until > ?",
            (iso(now),),
        ).fetchall()
        return {
            row[0]: Silence(
                row[0],
                datetime.fromisoformat(row[1]),
                row[2],
                row[3],
                datetime.fromisoformat(row[4]),
            )
            for row in rows
        }
