"""The SQLite store: migrations, atomic commits, tracking semantics."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.core.diff import Diff, Observation, Snapshot, Transition, TransitionKind, diff
from watcher.core.intents import Intent
from watcher.core.models import MaintenanceWindow, Operation, Orchestration
from watcher.core.tracked import due
from watcher.errors import StoreError
from watcher.store.database import SCHEMA_VERSION, Store
from watcher.store.outbox import Outbox

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def orch(state: str = "in progress") -> Orchestration:
    return Orchestration(
        "o1",
        type="upgradeCluster",
        state=state,
        description="Scheduled 2 operations",
        operation_stats={"failed": 0, "pending": 2},
    )


def ops(*states: str) -> dict[str, Operation]:
    return {
        f"op{i}": Operation(f"op{i}", runtime_id=f"r{i}", state=s) for i, s in enumerate(states)
    }


def baseline(store: Store) -> Diff:
    store.track(["o1"], None, NOW)
    head = store.load_head("o1")
    result = diff(store.load_snapshot(head), Observation(orch(), ops("pending", "pending")), NOW)
    store.commit_diff(result, now=NOW, cycle_id=None, full_sweep=True)
    return result


def test_migrations_run_once_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    Store(path).close()
    with Store(path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this keb-watcher"):
        Store(path)


def test_unopenable_path_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open database"):
        Store(tmp_path)  # a directory


def test_snapshot_round_trip_keeps_order_and_extra_fields(tmp_path: Path) -> None:
    with Store(tmp_path / "w.db") as store:
        store.track(["o1"], "#chan", NOW)
        operations = {
            "z": Operation("z", runtime_id="r1", state="pending", extra={"new": 1}),
            "a": Operation("a", runtime_id="r2", state="succeeded"),
        }
        result = diff(Snapshot("o1"), Observation(orch(), operations), NOW)
        rows = store.commit_diff(result, now=NOW, cycle_id=None, full_sweep=True)
        assert rows == 1 + 2 + 1 + 1  # orchestration, operations, baseline, tracked
        head = store.load_head("o1")
        assert head.expected_stats == {"failed": 0, "pending": 1, "succeeded": 1}
        snap = store.load_snapshot(head)
        assert list(snap.operations) == ["z", "a"]
        assert snap.operations["z"].extra == {"new": 1}
        assert snap.revision == 1
        [tracked] = store.tracked()
        assert tracked.channel == "#chan"
        assert tracked.counts == {"pending": 1, "succeeded": 1}


def test_commit_is_all_or_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "w.db") as store:
        first = baseline(store)
        snap = store.load_snapshot(store.load_head("o1"))
        result = diff(snap, Observation(orch("succeeded"), ops("succeeded", "succeeded")), NOW)
        # A transition whose key was already recorded makes the whole commit fail ...
        clash = Transition(TransitionKind.OPERATION_STATE, "o1", first.transitions[0].key, NOW)
        broken = Diff(result.snapshot, [*result.transitions, clash], result.changed, result.removed)
        with pytest.raises(StoreError, match="nothing was changed"):
            store.commit_diff(
                broken,
                now=NOW,
                cycle_id=None,
                full_sweep=False,
                intents=[Intent("k1", "finished", "o1", 1)],
            )
        # ... and leaves snapshot, transitions and outbox exactly as they were.
        head = store.load_head("o1")
        assert head.orchestration is not None
        assert head.orchestration.state == "in progress"
        assert {o.state for o in store.load_snapshot(head).operations.values()} == {"pending"}
        assert [t.kind for t in store.history("o1")] == [TransitionKind.BASELINE]
        assert Outbox(store).entries() == []
        # The same change commits fine afterwards, intents included, once.
        store.commit_diff(
            result,
            now=NOW,
            cycle_id=None,
            full_sweep=False,
            intents=[Intent("k1", "finished", "o1", 1)],
        )
        assert len(store.history("o1")) == 1 + len(result.transitions)
        assert [e.key for e in Outbox(store).entries()] == ["k1"]


def test_track_untrack_retrack(tmp_path: Path) -> None:
    with Store(tmp_path / "w.db") as store:
        assert store.track(["o1", "o2"], None, NOW) == ["o1", "o2"]
        assert store.track(["o1"], None, NOW) == []
        assert store.untrack(["o2", "nope"], NOW) == ["nope"]
        assert [t.orchestration_id for t in store.tracked()] == ["o1"]
        store.mark_finished("o1", NOW)
        assert due(store.tracked(), None, 0.0) == []
        store.track(["o1"], None, NOW)  # resumes a finished one
        assert [t.orchestration_id for t in due(store.tracked(), None, 0.0)] == ["o1"]
        assert store.is_known("o2")
        assert not store.is_known("nope")


def test_failure_is_recorded_without_touching_snapshot(tmp_path: Path) -> None:
    with Store(tmp_path / "w.db") as store:
        baseline(store)
        store.record_failure("o1", "KEB GET /orchestrations/o1: 503 Service Unavailable", NOW)
        [tracked] = store.tracked()
        assert tracked.consecutive_failures == 1
        assert tracked.last_error is not None
        assert "503" in tracked.last_error
        assert tracked.state == "in progress"


def test_every_sqlite_error_is_a_store_error_reads_included(tmp_path: Path) -> None:
    """The store is sealed: a read on a damaged database raises StoreError naming the file,
    never a raw sqlite3 error (for the snapshot reads, the outbox and the lease alike)."""
    path = tmp_path / "w.db"
    store = Store(path)
    store.track(["a"], None, NOW)
    store.conn.execute("DROP TABLE operations")
    store.conn.execute("DROP TABLE tracked")
    store.conn.execute("DROP TABLE outbox")
    with pytest.raises(StoreError, match=r"w\.db: tracked failed: no such table"):
        store.tracked()
    with pytest.raises(StoreError, match=r"w\.db: operations in state failed"):
        store.operations_in_state("a", "failed")
    with pytest.raises(StoreError, match=r"w\.db: undelivered failed"):
        Outbox(store).undelivered()
    store.close()


def test_the_windows_and_failures_of_every_tracked_orchestration_in_one_query(
    tmp_path: Path,
) -> None:
    """`watcher run` reads the pending windows (what is due) and the failure reasons (its
    metrics) of the whole tracked set with one statement each, and they agree with the reads
    of one orchestration."""
    night = MaintenanceWindow("0000-01-01T22:00:00Z", "0000-01-01T23:00:00Z")
    snapshot = {
        "op0": Operation("op0", runtime_id="r0", state="pending", window=night),
        "op1": Operation("op1", runtime_id="r1", state="pending", window=night),
        "op2": Operation("op2", runtime_id="r2", state="failed", description="quota"),
        "op3": Operation("op3", runtime_id="r3", state="failed", description="quota"),
    }
    with Store(tmp_path / "w.db") as store:
        store.track(["o1", "o2"], None, NOW)
        head = store.load_head("o1")
        result = diff(store.load_snapshot(head), Observation(orch(), snapshot), NOW)
        store.commit_diff(result, now=NOW, cycle_id=None, full_sweep=True)
        statements: list[str] = []
        store.conn.set_trace_callback(statements.append)
        windows = store.pending_windows_of(["o1", "o2"])
        reasons = store.tracked_failure_reasons()
        store.conn.set_trace_callback(None)
        assert len(statements) == 2
        assert windows == {"o1": tuple(store.pending_windows("o1"))} == {"o1": (night,)}
        assert reasons == store.failure_reasons("o1") == [("quota", 2)]
        store.untrack(["o1"], NOW)
        assert store.pending_windows_of(["o1", "o2"]) == {}
        assert store.tracked_failure_reasons() == []
