"""The durable outbox: notification intents until Slack has them, and what happened on the way.

Intents are written by the poll cycle in the same transaction as the snapshot change that
caused them (:meth:`watcher.store.database.Store.commit_diff`). This module is the delivery side:

* ``pending`` -> ``sent`` (Slack's channel and ``ts`` recorded the moment they are known);
* ``pending`` -> ``pending`` again with a later ``next_attempt_at`` after a transient error;
* ``failed``: Slack refused it for good (``invalid_auth``, ``channel_not_found``...); it waits
  with Slack's answer, holding back the later replies of its thread, until the user retries or
  drops it (``watcher outbox``);
* ``dead``: transient errors (not 429s) for ``slack.give_up_after`` (``failing_since`` says
  since when a pending notification has been failing);
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
from watcher.core.intents import Intent
from watcher.core.tracked import Silence
from watcher.redact import redact
from watcher.store.database import Store
from watcher.store.guard import sealed

UNDELIVERED: Final = ("pending", "failed", "dead")
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
    #: When the transient failures of this notification began (None: not failing).
    failing_since: datetime | None = None

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
            failing_since=from_iso(row.get("failing_since")),
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
            "failingSince": self.failing_since.isoformat() if self.failing_since else None,
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


@dataclass(frozen=True, slots=True)
class Shown:
    """What the channel already shows of one orchestration."""

    card: Card | None = None
    #: The outbox ID of the newest card state shown (0: none).
    card_state: int = 0
    #: The outbox ID of the newest final summary sent (0: none).
    final: int = 0
    #: When the current run's last failure digest was sent, and the reasons its digests named.
    last_digest_at: datetime | None = None
    reasons: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one Slack call for a notification ended in: written in one transaction."""

    entry: Entry
    at: datetime
    method: str
    #: The notification's status afterwards: sent, pending (a retry), failed or dead.
    status: str
    #: Slack's answer (its error code) for the attempts table; ``error``: the whole message.
    answer: str | None = None
    error: str | None = None
    retry_after: float | None = None
    next_attempt_at: datetime | None = None
    failing_since: datetime | None = None
    slack_channel: str | None = None
    slack_ts: str | None = None
    #: The orchestration's card, when this call posted it (or found it in the channel).
    card: Card | None = None
    render_error: str | None = None
    #: A notification queued in the same transaction (the notice that one was given up).
    queue: Intent | None = None


@sealed
class Outbox:
    """Delivery-side access to the outbox, cards and attempts tables of a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _select(self, where: str, params: Sequence[Any] = ()) -> list[Entry]:
        sql = f"SELECT * FROM outbox WHERE {where} ORDER BY priority, id"
        return [Entry.from_row(row) for row in self.store._rows(sql, params)]

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

    _WAITING: Final = (
        "SELECT DISTINCT orchestration_id FROM outbox WHERE status IN ('pending', 'failed') "
        "AND orchestration_id IS NOT NULL"
    )

    def waiting(self) -> list[Entry]:
        """What is still to deliver: pending notifications, and failed ones that wait for a fix
        (they hold back the later replies of their thread). The sender reads this once per
        drain."""
        return self._select("status IN ('pending', 'failed')")

    def shown(self) -> dict[str, Shown]:
        """What the channel shows of each orchestration that has notifications waiting: its
        card, the newest card state and final summary sent, and for those with a failure digest
        waiting, the current run's digests sent (when the last one went, the reasons named)."""
        conn = self.store.conn
        cards = {
            orch: Card(channel, ts)
            for orch, channel, ts in conn.execute(
                "SELECT orchestration_id, channel_id, ts FROM cards "
                f"WHERE orchestration_id IN ({self._WAITING})"
            )
        }
        sent: dict[str, tuple[int, int]] = {
            orch: (card or 0, final or 0)
            for orch, card, final in conn.execute(
                "SELECT orchestration_id, "
                "MAX(CASE WHEN kind IN ('tracking_started', 'progress') THEN id END), "
                "MAX(CASE WHEN kind = 'finished' THEN id END) FROM outbox WHERE status = 'sent' "
                f"AND orchestration_id IN ({self._WAITING}) GROUP BY orchestration_id"
            )
        }
        digests: dict[str, tuple[datetime | None, set[str]]] = {}
        for orch, sent_at, payload in conn.execute(
            "SELECT d.orchestration_id, d.sent_at, d.payload FROM outbox d "
            "WHERE d.kind = 'failure_digest' AND d.status = 'sent' AND d.orchestration_id IN ("
            "SELECT orchestration_id FROM outbox WHERE status = 'pending' "
            "AND kind = 'failure_digest' AND attempts = 0) AND d.id > COALESCE((SELECT MAX(f.id) "
            "FROM outbox f WHERE f.orchestration_id = d.orchestration_id "
            "AND f.kind = 'finished'), 0)"
        ):
            last, reasons = digests.get(orch, (None, set()))
            at = from_iso(sent_at)
            if at is not None and (last is None or at > last):
                last = at
            reasons |= {str(g.get("reason")) for g in json.loads(payload).get("failures", [])}
            digests[orch] = (last, reasons)
        return {
            orch: Shown(
                card=cards.get(orch),
                card_state=sent.get(orch, (0, 0))[0],
                final=sent.get(orch, (0, 0))[1],
                last_digest_at=digests.get(orch, (None, set()))[0],
                reasons=frozenset(digests.get(orch, (None, set()))[1]),
            )
            for orch in {*cards, *sent, *digests}
        }

    def silences(self, now: datetime) -> dict[str, Silence]:
        """The silences in force at ``now``: the plan holds their replies back."""
        return self.store.silences(now)

    def channel_ids(self) -> list[tuple[str | None, str, str]]:
        """(channel, kind, Slack's channel ID) of the newest sent notification per channel
        and kind: which channel ID Slack answered with where."""
        rows = self.store.conn.execute(
            "SELECT channel, kind, slack_channel FROM outbox WHERE id IN (SELECT MAX(id) "
            "FROM outbox WHERE status = 'sent' AND slack_channel IS NOT NULL "
            "GROUP BY channel, kind)"
        ).fetchall()
        return [(row[0], str(row[1]), str(row[2])) for row in rows]

    def settle(
        self,
        skips: Sequence[tuple[int, str, str]],
        merges: Sequence[tuple[int, dict[str, Any]]],
        holds: Sequence[tuple[int, datetime | None]],
    ) -> None:
        """What a plan decided without calling Slack, in one transaction: (ID, status, why)
        of what it skips, (ID, payload) of digests that absorbed others, (ID, until) of
        digests on their clock."""
        if not (skips or merges or holds):
            return
        with self.store.transaction() as conn:
            conn.executemany(
                "UPDATE outbox SET status = ?, last_error = ? WHERE id = ? AND status = 'pending'",
                [(status, why, i) for i, status, why in skips],
            )
            conn.executemany(
                "UPDATE outbox SET payload = ? WHERE id = ?",
                [(json.dumps(payload, default=str), i) for i, payload in merges],
            )
            conn.executemany(
                "UPDATE outbox SET next_attempt_at = ? WHERE id = ?",
                [(iso(at) if at else None, i) for i, at in holds],
            )

    def step(self, done: AttemptResult | None, begin: Entry | None, now: datetime) -> None:
        """One transaction: the result of the call just made (its attempt, the notification's
        new status, Slack's ``ts``, the card), and the attempt counter of the next call,
        committed before that call is made (from then on a crash leaves it ambiguous)."""
        with self.store.transaction() as conn:
            if done is not None:
                self._write_result(conn, done)
            if begin is not None:
                conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ? WHERE id = ?",
                    (iso(now), begin.id),
                )

    @staticmethod
    def _write_result(conn: Any, r: AttemptResult) -> None:
        # Errors are text from Slack and KEB: no secret reaches the database file.
        error = redact(r.error) if r.error else None
        conn.execute(
            "INSERT INTO attempts (outbox_id, at, method, ok, error, retry_after) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                r.entry.id,
                iso(r.at),
                r.method,
                int(r.status == "sent"),
                redact(r.answer) if r.answer else None,
                r.retry_after,
            ),
        )
        if r.status == "sent":
            conn.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?, slack_channel = ?, "
                "slack_ts = ?, last_error = NULL, failing_since = NULL WHERE id = ?",
                (iso(r.at), r.slack_channel, r.slack_ts, r.entry.id),
            )
        else:
            conn.execute(
                "UPDATE outbox SET status = ?, last_error = ?, next_attempt_at = ?, "
                "failing_since = ? WHERE id = ?",
                (
                    r.status,
                    error,
                    iso(r.next_attempt_at) if r.next_attempt_at else None,
                    iso(r.failing_since) if r.failing_since else None,
                    r.entry.id,
                ),
            )
        if r.render_error is not None:
            conn.execute(
                "UPDATE outbox SET render_error = ? WHERE id = ?",
                (redact(r.render_error), r.entry.id),
            )
        if r.queue is not None:
            Store._insert_intents(conn, [r.queue], r.at)
        if r.card is not None and r.entry.orchestration_id:
            conn.execute(
                "INSERT INTO cards (orchestration_id, channel_id, ts, posted_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (orchestration_id) DO UPDATE SET "
                "channel_id = excluded.channel_id, ts = excluded.ts",
                (r.entry.orchestration_id, r.card.channel_id, r.card.ts, iso(r.at)),
            )

    def attempts(self, entry_id: int) -> list[dict[str, Any]]:
        return list(
            self.store._rows("SELECT * FROM attempts WHERE outbox_id = ? ORDER BY id", [entry_id])
        )

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

    # -- pacing: thread order, digests on a clock, the destination's backoff ---------------

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

    def release_backoff(self, now: datetime) -> list[int]:
        """Slack answered again: what waited out a transient error is due now (their IDs). A
        429's ``Retry-After`` still holds for the notifications it was given to."""
        with self.store.transaction() as conn:
            ids = [
                int(row[0])
                for row in conn.execute(
                    f"SELECT id FROM outbox WHERE {self._TRANSIENT_WAIT}", (iso(now),)
                )
            ]
            conn.executemany(
                "UPDATE outbox SET next_attempt_at = ? WHERE id = ?", [(iso(now), i) for i in ids]
            )
            return ids

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
        """Send failed or dead intents again (attempt counter and give-up clock reset); the
        sender puts them back in event order, skipping what newer notifications superseded."""
        marks = ", ".join("?" * len(ids))
        with self.store.transaction() as conn:
            cur = conn.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, "
                "failing_since = NULL "
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
