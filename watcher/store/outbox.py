"""The durable outbox: notification intents until Slack has them, and what happened on the way.

Intents are written by the poll cycle in the same transaction as the snapshot change that
caused them (:meth:`watcher.store.database.Store.commit_diff`). This module is the delivery side:

* ``pending`` -> ``sent`` (Slack's channel and ``ts`` recorded the moment they are known);
* ``pending`` -> ``pending`` again with a later ``next_attempt_at`` after a transient error;
* ``failed``: Slack refused it for good (``invalid_auth``, ``channel_not_found``...); kept
  with Slack's answer until the user retries or drops it (``watcher outbox``);
* ``dead``: transient errors more times than ``slack.max_attempts``;
* ``superseded``: a card update made obsolete by a newer one (only the newest is sent);
* ``skipped``: nothing to send in this mode (a webhook cannot edit a card);
* ``dropped``: the user said so.

``attempts`` is incremented and committed *before* each call, so after a crash an intent with
attempts but no ``ts`` is known to be ambiguous: the sender looks for its key in the channel's
message metadata before posting again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from watcher.clock import from_iso, iso
from watcher.core.failures import merge_digests
from watcher.redact import redact
from watcher.store.database import Store
from watcher.store.guard import sealed

UNDELIVERED: Final = ("pending", "failed", "dead")
#: What a silence holds back: failure digests and the other thread replies while it runs,
#: and stuck alerts; never the card (kept current) or the final summary (always sent).
SILENCEABLE: Final = ("failure_digest", "state_changed", "retried", "stuck", "unstuck")
STATUSES: Final = ("pending", "sent", "failed", "dead", "superseded", "skipped", "dropped")


@dataclass(frozen=True, slots=True)
class Entry:
    """One outbox row."""

    id: int
    key: str
    orchestration_id: str | None
    kind: str
    priority: int
    channel: str | None
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    slack_channel: str | None
    slack_ts: str | None
    render_error: str | None
    last_attempt_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Entry:
        return cls(
            id=row["id"],
            key=row["key"],
            orchestration_id=row["orchestration_id"],
            kind=row["kind"],
            priority=row["priority"],
            channel=row["channel"],
            payload=json.loads(row["payload"]),
            status=row["status"],
            attempts=row["attempts"],
            next_attempt_at=from_iso(row["next_attempt_at"]),
            last_error=row["last_error"],
            created_at=datetime.fromisoformat(row["created_at"]),
            sent_at=from_iso(row["sent_at"]),
            slack_channel=row["slack_channel"],
            slack_ts=row["slack_ts"],
            render_error=row["render_error"],
            last_attempt_at=from_iso(row["last_attempt_at"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "orchestrationID": self.orchestration_id,
            "kind": self.kind,
            "status": self.status,
            "attempts": self.attempts,
            "nextAttemptAt": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "lastError": self.last_error,
            "renderError": self.render_error,
            "createdAt": self.created_at.isoformat(),
            "sentAt": self.sent_at.isoformat() if self.sent_at else None,
            "slackChannel": self.slack_channel,
            "slackTs": self.slack_ts,
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    """One recorded Slack call."""

    id: int
    method: str
    ok: bool
    error: str | None
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class Card:
    channel_id: str
    ts: str


@sealed
class Outbox:
    """Delivery-side access to the outbox, cards and attempts tables of a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _select(self, where: str, params: Sequence[Any] = ()) -> list[Entry]:
        sql = f"SELECT * FROM outbox WHERE {where} ORDER BY priority, id"
        return [Entry.from_row(row) for row in self.store._rows(sql, params)]

    def due(self, now: datetime) -> list[Entry]:
        return self._select(
            "status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)",
            [iso(now)],
        )

    def next_due_at(self) -> datetime | None:
        row = self.store.conn.execute(
            "SELECT MIN(COALESCE(next_attempt_at, created_at)) FROM outbox WHERE status = 'pending'"
        ).fetchone()
        return from_iso(row[0])

    def entries(self, statuses: Iterable[str] = UNDELIVERED) -> list[Entry]:
        wanted = list(statuses)
        return self._select(f"status IN ({', '.join('?' * len(wanted))})", wanted)

    def get(self, entry_id: int) -> Entry | None:
        found = self._select("id = ?", [entry_id])
        return found[0] if found else None

    def undelivered(self) -> int:
        row = self.store.conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'failed', 'dead')"
        ).fetchone()
        return int(row[0])

    def supersede_stale_card_updates(self) -> int:
        """Keep only the newest pending card update of each orchestration."""
        with self.store.transaction() as conn:
            cur = conn.execute(
                "UPDATE outbox SET status = 'superseded' WHERE status = 'pending' "
                "AND kind = 'progress' AND id < (SELECT MAX(o2.id) FROM outbox o2 "
                "WHERE o2.status = 'pending' AND o2.kind = 'progress' "
                "AND o2.orchestration_id = outbox.orchestration_id)"
            )
            return max(cur.rowcount, 0)

    def hold_back_silenced(self, now: datetime) -> int:
        """Drop the pending notifications of :data:`SILENCEABLE` kinds of orchestrations
        silenced at ``now`` (``watcher silence``), saying so in ``last_error``. Cards and final
        summaries are never held back; what was held back is not sent later (the card and the
        final summary say where things stand)."""
        kinds = ", ".join(f"'{k}'" for k in SILENCEABLE)
        with self.store.transaction() as conn:
            cur = conn.execute(
                "UPDATE outbox SET status = 'dropped', last_error = (SELECT 'held back: "
                "silenced until ' || s.until || COALESCE(' by ' || s.created_by, '') "
                "|| COALESCE(' (' || s.reason || ')', '') FROM silences s "
                "WHERE s.orchestration_id = outbox.orchestration_id) "
                f"WHERE status = 'pending' AND kind IN ({kinds}) AND orchestration_id IN "
                "(SELECT orchestration_id FROM silences WHERE until > ?)",
                (iso(now),),
            )
            return max(cur.rowcount, 0)

    def merge_pending_digests(self) -> int:
        """Fold several pending failure digests of one orchestration into the newest, so that
        a Slack outage (or a backlog) ends in one digest per orchestration, not a burst."""
        merged = 0
        pending = [e for e in self.entries(("pending",)) if e.kind == "failure_digest"]
        by_orch: dict[str | None, list[Entry]] = {}
        for entry in pending:
            by_orch.setdefault(entry.orchestration_id, []).append(entry)
        for group in by_orch.values():
            if len(group) < 2:
                continue
            group.sort(key=lambda e: e.id)
            newest, older = group[-1], group[:-1]
            payload = merge_digests([e.payload for e in group])
            with self.store.transaction() as conn:
                conn.execute(
                    "UPDATE outbox SET payload = ? WHERE id = ?",
                    (json.dumps(payload, default=str), newest.id),
                )
                conn.executemany(
                    "UPDATE outbox SET status = 'superseded', last_error = ? WHERE id = ?",
                    [(f"merged into outbox {newest.id}", e.id) for e in older],
                )
            merged += len(older)
        return merged

    # -- one attempt ----------------------------------------------------------------------

    def begin_attempt(self, entry: Entry, now: datetime) -> None:
        """Committed before the call: from here on, a crash leaves an ambiguous attempt."""
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ? WHERE id = ?",
                (iso(now), entry.id),
            )

    def record_attempt(
        self,
        entry: Entry,
        now: datetime,
        method: str,
        *,
        ok: bool,
        error: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO attempts (outbox_id, at, method, ok, error, retry_after) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.id,
                    iso(now),
                    method,
                    int(ok),
                    redact(error) if error else None,
                    retry_after,
                ),
            )

    def attempts(self, entry_id: int) -> list[dict[str, Any]]:
        return list(
            self.store._rows("SELECT * FROM attempts WHERE outbox_id = ? ORDER BY id", [entry_id])
        )

    def _set(self, entry: Entry, sql: str, params: Sequence[Any]) -> None:
        # Errors are text from Slack and KEB: no secret reaches the database file.
        params = [redact(p) if isinstance(p, str) else p for p in params]
        with self.store.transaction() as conn:
            conn.execute(f"UPDATE outbox SET {sql} WHERE id = ?", (*params, entry.id))

    def mark_sent(self, entry: Entry, now: datetime, channel: str | None, ts: str | None) -> None:
        self._set(
            entry,
            "status = 'sent', sent_at = ?, slack_channel = ?, slack_ts = ?, last_error = NULL",
            [iso(now), channel, ts],
        )

    def mark_retry(self, entry: Entry, at: datetime, error: str) -> None:
        self._set(entry, "next_attempt_at = ?, last_error = ?", [iso(at), error])

    def mark_failed(self, entry: Entry, error: str, *, dead: bool = False) -> None:
        status = "dead" if dead else "failed"
        self._set(entry, "status = ?, last_error = ?", [status, error])

    def mark_skipped(self, entry: Entry, why: str) -> None:
        self._set(entry, "status = 'skipped', last_error = ?", [why])

    def set_render_error(self, entry: Entry, error: str) -> None:
        self._set(entry, "render_error = ?", [error])

    # -- cards ----------------------------------------------------------------------------

    def card(self, orch_id: str) -> Card | None:
        row = self.store.conn.execute(
            "SELECT channel_id, ts FROM cards WHERE orchestration_id = ?", (orch_id,)
        ).fetchone()
        return Card(row[0], row[1]) if row else None

    def save_card(self, orch_id: str, card: Card, now: datetime) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO cards (orchestration_id, channel_id, ts, posted_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (orchestration_id) DO UPDATE SET "
                "channel_id = excluded.channel_id, ts = excluded.ts",
                (orch_id, card.channel_id, card.ts, iso(now)),
            )

    def forget_card(self, orch_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM cards WHERE orchestration_id = ?", (orch_id,))

    # -- pacing: thread order, digests on a clock, the destination's backoff ---------------

    def absorb_digests(self) -> int:
        """A final summary lists every failure: failure digests of its run still pending (older
        than the summary) are superseded by it, so that the summary is the run's last reply."""
        with self.store.transaction() as conn:
            cur = conn.execute(
                "UPDATE outbox SET status = 'superseded', last_error = 'absorbed into the final "
                "summary, outbox ' || (SELECT MIN(f.id) FROM outbox f WHERE f.kind = 'finished' "
                "AND f.orchestration_id = outbox.orchestration_id AND f.id > outbox.id) "
                "WHERE status = 'pending' AND kind = 'failure_digest' AND EXISTS (SELECT 1 "
                "FROM outbox f WHERE f.kind = 'finished' AND f.id > outbox.id "
                "AND f.orchestration_id = outbox.orchestration_id "
                "AND f.status IN ('pending', 'sent'))"
            )
            return max(cur.rowcount, 0)

    def last_digest_sent(self, orch_id: str) -> datetime | None:
        """When the newest failure digest of the orchestration's current run was sent (a run
        ends with its final summary; a retry starts the next one)."""
        row = self.store.conn.execute(
            "SELECT MAX(sent_at) FROM outbox WHERE orchestration_id = ? "
            "AND kind = 'failure_digest' AND status = 'sent' AND id > COALESCE((SELECT MAX(id) "
            "FROM outbox WHERE orchestration_id = ? AND kind = 'finished'), 0)",
            (orch_id, orch_id),
        ).fetchone()
        return from_iso(row[0])

    def reported_reasons(self, orch_id: str) -> set[str]:
        """The failure reasons the sent digests of the orchestration's current run named."""
        rows = self.store.conn.execute(
            "SELECT payload FROM outbox WHERE orchestration_id = ? AND kind = 'failure_digest' "
            "AND status = 'sent' AND id > COALESCE((SELECT MAX(id) FROM outbox "
            "WHERE orchestration_id = ? AND kind = 'finished'), 0)",
            (orch_id, orch_id),
        ).fetchall()
        return {
            str(group.get("reason"))
            for (payload,) in rows
            for group in json.loads(payload).get("failures", [])
        }

    def schedule(self, entry: Entry, at: datetime | None) -> None:
        """Hold a notification that was never attempted until ``at`` (None: due now)."""
        self._set(entry, "next_attempt_at = ?", [iso(at) if at else None])

    def scheduled(self, now: datetime) -> int:
        """Failure digests waiting for their clock: pending by design, not undelivered."""
        row = self.store.conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND kind = 'failure_digest' "
            "AND attempts = 0 AND next_attempt_at > ?",
            (iso(now),),
        ).fetchone()
        return int(row[0])

    _TRANSIENT_WAIT: Final = (
        "status = 'pending' AND attempts > 0 AND next_attempt_at > ? AND (SELECT a.retry_after "
        "FROM attempts a WHERE a.outbox_id = outbox.id ORDER BY a.id DESC LIMIT 1) IS NULL"
    )

    def backing_off(self, now: datetime) -> int:
        """Pending notifications waiting out a transient error (not a 429's Retry-After)."""
        row = self.store.conn.execute(
            f"SELECT COUNT(*) FROM outbox WHERE {self._TRANSIENT_WAIT}", (iso(now),)
        ).fetchone()
        return int(row[0])

    def rate_limits(self, now: datetime) -> list[tuple[Entry, str, float]]:
        """429s whose ``Retry-After`` has not run out: (entry, method, seconds left). They
        outlive the process that got them (a later ``poll`` must not call the method early)."""
        rows = self.store.conn.execute(
            "SELECT outbox_id, method, at, retry_after FROM attempts "
            "WHERE retry_after IS NOT NULL AND at > ? ORDER BY id",
            (iso(now - timedelta(hours=1)),),
        ).fetchall()
        found = []
        for outbox_id, method, at, retry_after in rows:
            left = (datetime.fromisoformat(at) - now).total_seconds() + float(retry_after)
            entry = self.get(outbox_id)
            if left > 0 and entry is not None:
                found.append((entry, str(method), left))
        return found

    def release_backoff(self, now: datetime) -> int:
        """Slack answered again: what waited out a transient error is due now. A 429's
        ``Retry-After`` still holds for the notifications it was given to."""
        with self.store.transaction() as conn:
            cur = conn.execute(
                f"UPDATE outbox SET next_attempt_at = ? WHERE {self._TRANSIENT_WAIT}",
                (iso(now), iso(now)),
            )
            return max(cur.rowcount, 0)

    # -- what users do --------------------------------------------------------------------

    # -- what /metrics reports --------------------------------------------------------------

    def last_attempt_id(self) -> int:
        """The newest ``attempts`` row's ID (0 when there is none)."""
        row = self.store.conn.execute("SELECT COALESCE(MAX(id), 0) FROM attempts").fetchone()
        return int(row[0])

    def attempts_after(self, attempt_id: int) -> list[Attempt]:
        """Slack calls recorded after ``attempt_id``, oldest first."""
        rows = self.store.conn.execute(
            "SELECT id, method, ok, error, retry_after FROM attempts WHERE id > ? ORDER BY id",
            (attempt_id,),
        ).fetchall()
        return [Attempt(row[0], row[1], bool(row[2]), row[3], row[4]) for row in rows]

    def depth(self) -> tuple[dict[str, int], datetime | None]:
        """How many notifications are pending, failed and dead, and when the oldest pending
        one was created."""
        counts = dict.fromkeys(("pending", "failed", "dead"), 0)
        for status, count in self.store.conn.execute(
            "SELECT status, COUNT(*) FROM outbox WHERE status IN ('pending', 'failed', 'dead') "
            "GROUP BY status"
        ):
            counts[status] = int(count)
        row = self.store.conn.execute(
            "SELECT MIN(created_at) FROM outbox WHERE status = 'pending'"
        ).fetchone()
        return counts, from_iso(row[0])

    def retry(self, ids: Sequence[int], now: datetime) -> int:
        """Send failed or dead intents again (attempt counter reset)."""
        marks = ", ".join("?" * len(ids))
        with self.store.transaction() as conn:
            cur = conn.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ? "
                f"WHERE id IN ({marks}) AND status IN ('failed', 'dead', 'pending')",
                (iso(now), *ids),
            )
            return max(cur.rowcount, 0)

    def drop(self, ids: Sequence[int]) -> int:
        marks = ", ".join("?" * len(ids))
        with self.store.transaction() as conn:
            cur = conn.execute(
                f"UPDATE outbox SET status = 'dropped' WHERE id IN ({marks}) "
                "AND status IN ('pending', 'failed', 'dead')",
                tuple(ids),
            )
            return max(cur.rowcount, 0)
