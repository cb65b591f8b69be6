"""SQLite persistence: tracked orchestrations, snapshots, transitions and the outbox.

The database is opened in WAL mode so that readers (``watcher list``, ``history``) never block
the poller. Schema changes are numbered migrations recorded in ``PRAGMA user_version``.

Correctness rule: for one orchestration in one cycle, the snapshot, its transitions and the
notification intents derived from them are written in **one** transaction
(:meth:`Store.commit_diff`). A crash before the commit leaves the old snapshot, so the next
cycle finds the same changes again; a crash after it has recorded everything. Transition and
intent keys are unique, so nothing can be recorded twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from watcher.clock import from_iso, iso, utcnow
from watcher.core.afterlife import running
from watcher.core.diff import Diff, Transition
from watcher.core.intents import Intent
from watcher.core.models import (
    Operation,
    is_terminal_orchestration,
    operation_stats,
    parse_keb_time,
)
from watcher.core.tracked import Tracked
from watcher.errors import StoreError
from watcher.redact import redact
from watcher.store.board import BoardQueries
from watcher.store.files import FileIdentity, corrupted, created_here, refused
from watcher.store.guard import sealed
from watcher.store.journal import JournalQueries
from watcher.store.rows import OP_COLUMNS, operation_row
from watcher.store.schema import MIGRATIONS, SCHEMA_VERSION
from watcher.store.silences import SilenceQueries
from watcher.store.snapshots import SnapshotQueries
from watcher.store.stuck import StuckQueries, stalled_from_column


def _journal_mode(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()


@sealed
class Store(SnapshotQueries, JournalQueries, BoardQueries, SilenceQueries, StuckQueries):
    """One SQLite database. Not thread-safe: use it from one thread (the event loop's)."""

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        """Open the database at ``path``; with ``create``, make it (and its folders) first,
        readable by their owner only. Without, a missing database is a :class:`UsageError`
        naming the path: a cron job must not quietly start an empty one."""
        self.path = str(path)
        try:
            if self.path != ":memory:":
                created_here(Path(self.path), create=create)
            conn = self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            if self.path != ":memory:" and _journal_mode(conn) != "wal":
                # WAL is a property of the file: set once, when the database is new, so that
                # opening it (every `watcher poll`) does not pay for importing sqlite-utils.
                import sqlite_utils

                sqlite_utils.Database(conn).enable_wal()
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._migrate()
            self._file = None if self.path == ":memory:" else FileIdentity(Path(self.path))
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) and (foreign := refused(Path(self.path), exc)):
                raise foreign from None
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise StoreError(corrupted(self.path, exc)) from exc
            raise StoreError(f"{self.path}: cannot open database: {exc}") from exc
        except (sqlite3.Error, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise StoreError(f"{self.path}: cannot open database: {reason}") from exc

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

    def lost(self) -> str | None:
        """Why the opened database file is no longer the one at ``path`` or cannot be
        written (deleted, replaced, made read-only), in one line; None while all is well."""
        return None if self._file is None else self._file.lost()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of a SELECT as dicts keyed by column name."""
        cursor = self._conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: database schema {version} is newer than this keb-watcher "
                f"understands ({SCHEMA_VERSION}); upgrade keb-watcher"
            )
        for number in range(version, SCHEMA_VERSION):
            # Not executescript(): it commits first, and a migration must be all or nothing.
            with self.transaction() as conn:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot start a transaction: {exc}") from exc
        try:
            yield conn
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: write failed, nothing was changed: {exc}") from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: commit failed: {exc}") from exc

    # -- tracking -------------------------------------------------------------------------

    def track(self, ids: Iterable[str], channel: str | None, now: datetime) -> list[str]:
        """Start (or resume) tracking. Returns the IDs that were not tracked before.

        Re-tracking a known orchestration resumes polling without a new baseline: its
        snapshot and history are kept.
        """
        new: list[str] = []
        with self.transaction() as conn:
            for orch_id in ids:
                row = conn.execute(
                    "SELECT active, finished_at FROM tracked WHERE orchestration_id = ?",
                    (orch_id,),
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO tracked (orchestration_id, channel, tracked_at) "
                        "VALUES (?, ?, ?)",
                        (orch_id, channel, iso(now)),
                    )
                    new.append(orch_id)
                    continue
                conn.execute(
                    "UPDATE tracked SET active = 1, untracked_at = NULL, finished_at = NULL, "
                    "channel = COALESCE(?, channel) WHERE orchestration_id = ?",
                    (channel, orch_id),
                )
        return new

    def untrack(self, ids: Iterable[str], now: datetime) -> list[str]:
        """Stop polling; history is kept. Returns the IDs that were not tracked (never, or no
        longer)."""
        unknown: list[str] = []
        with self.transaction() as conn:
            for orch_id in ids:
                cur = conn.execute(
                    "UPDATE tracked SET active = 0, untracked_at = ? "
                    "WHERE orchestration_id = ? AND active = 1",
                    (iso(now), orch_id),
                )
                if cur.rowcount == 0:
                    unknown.append(orch_id)
        return unknown

    def tracked(self, *, include_inactive: bool = False) -> list[Tracked]:
        return self._tracked("" if include_inactive else "WHERE t.active = 1")

    def tracked_one(self, orch_id: str) -> Tracked | None:
        """One tracked (or formerly tracked) orchestration, or None."""
        found = self._tracked("WHERE t.orchestration_id = ?", (orch_id,))
        return found[0] if found else None

    def _tracked(self, where: str, params: Sequence[Any] = ()) -> list[Tracked]:
        sql = (
            "SELECT t.*, o.state, o.description, o.type, o.counts, o.operation_count, "
            "t.not_found, json_extract(o.raw, '$.createdAt') AS created_at "
            f"FROM tracked t LEFT JOIN orchestrations o USING (orchestration_id) {where} "
            "ORDER BY t.tracked_at, t.orchestration_id"
        )
        out = []
        for row in self._rows(sql, params):
            out.append(
                Tracked(
                    orchestration_id=row["orchestration_id"],
                    channel=row["channel"],
                    tracked_at=datetime.fromisoformat(row["tracked_at"]),
                    active=bool(row["active"]),
                    finished_at=from_iso(row["finished_at"]),
                    last_success_at=from_iso(row["last_success_at"]),
                    last_error=row["last_error"],
                    consecutive_failures=row["consecutive_failures"],
                    last_full_sweep_at=from_iso(row["last_full_sweep_at"]),
                    state=row["state"],
                    description=row["description"],
                    type=row["type"],
                    counts=json.loads(row["counts"]) if row["counts"] else {},
                    operation_count=row["operation_count"] or 0,
                    not_found=bool(row["not_found"]),
                    created_at=parse_keb_time(row["created_at"]),
                    stuck=stalled_from_column(row["stuck"]),
                )
            )
        return out

    def is_known(self, orch_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM tracked WHERE orchestration_id = ? "
            "UNION SELECT 1 FROM transitions WHERE orchestration_id = ? LIMIT 1",
            (orch_id, orch_id),
        ).fetchone()
        return row is not None

    def ids_starting(self, prefix: str) -> list[str]:
        """The IDs of tracked (or untracked, with history) orchestrations that start with
        ``prefix`` (hex digits and hyphens: no LIKE wildcards)."""
        pattern = prefix.lower() + "%"
        rows = self.conn.execute(
            "SELECT orchestration_id FROM tracked WHERE lower(orchestration_id) LIKE ? "
            "UNION SELECT orchestration_id FROM transitions WHERE lower(orchestration_id) LIKE ?",
            (pattern, pattern),
        ).fetchall()
        return sorted(row[0] for row in rows)

    def commit_diff(
        self,
        result: Diff,
        *,
        now: datetime,
        cycle_id: int | None,
        full_sweep: bool,
        intents: Sequence[Intent] = (),
        finished: bool = False,
        reorder: bool = False,
        sweep_next: bool = False,
    ) -> int:
        """Write the new snapshot, its transitions and intents in one transaction.

        ``reorder`` rewrites every operation row so that row order follows KEB's order again
        (after a full sweep found it differs); ``sweep_next`` makes the next cycle sweep fully
        (what was recorded is not a proven whole). Returns the number of rows written.
        """
        snap = result.snapshot
        orch_id = snap.orchestration_id
        orch = snap.orchestration
        rows = 0
        with self.transaction() as conn:
            if orch is not None:
                counts = snap.state_counts()
                expected = snap.expected_stats
                if expected is None:
                    expected = operation_stats(
                        (op.runtime_id, op.state) for op in snap.operations.values()
                    )
                conn.execute(
                    "INSERT INTO orchestrations (orchestration_id, type, state, description, raw, "
                    "expected_stats, counts, operation_count, revision, not_found, observed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (orchestration_id) DO UPDATE SET type = excluded.type, "
                    "state = excluded.state, description = excluded.description, "
                    "raw = excluded.raw, expected_stats = excluded.expected_stats, "
                    "counts = excluded.counts, "
                    "operation_count = excluded.operation_count, revision = excluded.revision, "
                    "not_found = excluded.not_found, observed_at = excluded.observed_at",
                    (
                        orch_id,
                        orch.type,
                        orch.state,
                        orch.description,
                        json.dumps(orch.to_json(), separators=(",", ":")),
                        json.dumps(dict(expected)),
                        json.dumps(counts),
                        sum(counts.values()),
                        snap.revision,
                        int(snap.not_found),
                        iso(now),
                    ),
                )
                rows += 1
            if reorder and snap.complete:
                conn.execute("DELETE FROM operations WHERE orchestration_id = ?", (orch_id,))
                changed: Iterable[Operation] = snap.operations.values()
            else:
                changed = result.changed
            if result.removed:
                conn.executemany(
                    "DELETE FROM operations WHERE orchestration_id = ? AND operation_id = ?",
                    [(orch_id, op_id) for op_id in result.removed],
                )
                rows += len(result.removed)
            cur = conn.executemany(
                f"INSERT INTO operations ({OP_COLUMNS}) VALUES ({', '.join('?' * 14)}) "
                "ON CONFLICT (orchestration_id, operation_id) DO UPDATE SET "
                "runtime_id = excluded.runtime_id, shoot_name = excluded.shoot_name, "
                "state = excluded.state, description = excluded.description, "
                "plan_name = excluded.plan_name, plan_id = excluded.plan_id, "
                "global_account_id = excluded.global_account_id, "
                "sub_account_id = excluded.sub_account_id, dry_run = excluded.dry_run, "
                "window_begin = excluded.window_begin, window_end = excluded.window_end, "
                "extra = excluded.extra",
                [operation_row(orch_id, op) for op in changed],
            )
            rows += max(cur.rowcount, 0)
            rows += self._insert_transitions(conn, result.transitions, cycle_id)
            rows += self._insert_intents(conn, intents, now)
            conn.execute(
                "UPDATE tracked SET last_attempt_at = ?1, last_success_at = ?1, "
                "last_error = NULL, consecutive_failures = 0, "
                "last_full_sweep_at = CASE WHEN ?6 THEN NULL WHEN ?2 THEN ?1 "
                "ELSE last_full_sweep_at END, "
                "finished_at = CASE WHEN ?3 THEN ?1 ELSE NULL END, not_found = ?4 "
                "WHERE orchestration_id = ?5",
                (
                    iso(now),
                    int(full_sweep),
                    int(finished),
                    int(snap.not_found),
                    orch_id,
                    int(sweep_next),
                ),
            )
            rows += 1
        return rows

    @staticmethod
    def _insert_transitions(
        conn: sqlite3.Connection, transitions: Sequence[Transition], cycle_id: int | None
    ) -> int:
        cur = conn.executemany(
            "INSERT INTO transitions (key, orchestration_id, cycle_id, kind, at, operation_id, "
            "runtime_id, shoot_name, from_state, to_state, via, description, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    t.key,
                    t.orchestration_id,
                    cycle_id,
                    t.kind.value,
                    iso(t.at),
                    t.operation_id,
                    t.runtime_id,
                    t.shoot_name,
                    t.from_state,
                    t.to_state,
                    json.dumps(list(t.via)),
                    t.description,
                    json.dumps(dict(t.detail)),
                )
                for t in transitions
            ],
        )
        return max(cur.rowcount, 0)

    def enqueue(self, intents: Sequence[Intent], now: datetime) -> int:
        """Write intents on their own (most come with a snapshot through :meth:`commit_diff`)."""
        with self.transaction() as conn:
            return self._insert_intents(conn, intents, now)

    @staticmethod
    def _insert_intents(conn: sqlite3.Connection, intents: Sequence[Intent], now: datetime) -> int:
        cur = conn.executemany(
            "INSERT INTO outbox (key, orchestration_id, kind, priority, channel, payload, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
            [
                (
                    i.key,
                    i.orchestration_id,
                    i.kind,
                    i.priority,
                    i.channel,
                    redact(json.dumps(dict(i.payload), default=str)),
                    iso(now),
                )
                for i in intents
            ],
        )
        return max(cur.rowcount, 0)

    def record_failure(self, orch_id: str, error: str, now: datetime) -> None:
        """Remember that polling this orchestration failed; its snapshot is untouched."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE tracked SET last_attempt_at = ?, last_error = ?, "
                "consecutive_failures = consecutive_failures + 1 WHERE orchestration_id = ?",
                (iso(now), redact(error), orch_id),
            )

    def record_checks(self, orch_ids: Sequence[str], now: datetime) -> None:
        """Remember that these orchestrations were polled and found unchanged (one
        transaction for all of them: the unchanged path stays one request and one write)."""
        if not orch_ids:
            return
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE tracked SET last_attempt_at = ?1, last_success_at = ?1, "
                "last_error = NULL, consecutive_failures = 0 WHERE orchestration_id = ?2",
                [(iso(now), orch_id) for orch_id in orch_ids],
            )

    def request_full_sweep(self, orch_id: str) -> None:
        """Make the next cycle sweep this orchestration fully (an incremental proof failed)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE tracked SET last_full_sweep_at = NULL WHERE orchestration_id = ?",
                (orch_id,),
            )

    def mark_finished(self, orch_id: str, now: datetime) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE tracked SET finished_at = ? WHERE orchestration_id = ?",
                (iso(now), orch_id),
            )

    # -- outbox ---------------------------------------------------------------------------

    def undelivered_for(self, orch_id: str) -> int:
        """Intents of this orchestration not delivered yet (pending, failed or dead)."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE orchestration_id = ? "
            "AND status IN ('pending', 'failed', 'dead')",
            (orch_id,),
        ).fetchone()
        return int(row[0])

    def finish_if_done(self, orch_id: str, now: datetime) -> bool:
        """Stop polling an orchestration that has ended (or that KEB does not know) once
        every notification about it was delivered. Returns whether it is finished now."""
        row = self.conn.execute(
            "SELECT o.state, t.not_found, t.finished_at, o.counts FROM tracked t "
            "LEFT JOIN orchestrations o USING (orchestration_id) WHERE t.orchestration_id = ?",
            (orch_id,),
        ).fetchone()
        if row is None or row[2] is not None:
            return row is not None
        ended = bool(row[1]) or (row[0] is not None and is_terminal_orchestration(row[0]))
        # Operations that outlive the outcome are followed until they end.
        live = not row[1] and running(json.loads(row[3]) if row[3] else {})
        if not ended or live or self.undelivered_for(orch_id):
            return False
        self.mark_finished(orch_id, now)
        return True

    # -- the watcher's own health ---------------------------------------------------------

    def health(self) -> tuple[datetime | None, str | None, bool]:
        """Since when KEB has been failing (None: healthy), the last error, announced?"""
        row = self.conn.execute(
            "SELECT unhealthy_since, last_error, alerted FROM health WHERE id = 1"
        ).fetchone()
        return from_iso(row[0]), row[1], bool(row[2])

    def set_health(
        self,
        since: datetime | None,
        error: str | None,
        alerted: bool,
        intents: Sequence[Intent] = (),
        now: datetime | None = None,
    ) -> None:
        """Update the health record and enqueue its alert in one transaction."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE health SET unhealthy_since = ?, last_error = ?, alerted = ? WHERE id = 1",
                (iso(since) if since else None, redact(error) if error else None, int(alerted)),
            )
            if intents:
                self._insert_intents(conn, intents, now or utcnow())
