"""The SQLite schema, as numbered migrations (``PRAGMA user_version`` is the number applied).

Never edit a released migration: append a new one. Each runs in one transaction.

* ``tracked``: what the user asked to follow, and how polling it went;
* ``orchestrations``: the snapshot head (KEB's JSON, raw counts, expected ``operationStats``);
* ``operations``: one row per operation, in KEB order (row id);
* ``transitions``: the recorded history, unique by ``key``;
* ``outbox``: notification intents until delivered, unique by ``key``;
* ``cycles``: one row per poll cycle;
* ``cards``: the Slack message (channel ID, ts) that is each orchestration's living card;
* ``attempts``: every delivery attempt with Slack's answer;
* ``health``: since when KEB has been failing, and whether that was announced;
* ``lease``: which process may poll and send now (``watcher run`` and ``watcher poll``);
* ``silences``: orchestrations whose non-final notifications are held back, until when.
* ``selections``, ``fleet_runtimes``, ``fleet_transitions``: fleet watch (``watcher fleet``);
  ``selections.stuck``: what is stuck now in a selection, as last evaluated.
* ``tracked.stuck``: what is stuck now (``poll.stuck_after``), as last evaluated.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema.
    """
    CREATE TABLE tracked (
        orchestration_id TEXT PRIMARY KEY,
        channel TEXT,
        tracked_at TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        untracked_at TEXT,
        finished_at TEXT,
        last_attempt_at TEXT,
        last_success_at TEXT,
        last_error TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        last_full_sweep_at TEXT,
        not_found INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE orchestrations (
        orchestration_id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        state TEXT NOT NULL,
        description TEXT NOT NULL,
        raw TEXT NOT NULL,
        expected_stats TEXT NOT NULL,
        counts TEXT NOT NULL,
        operation_count INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        not_found INTEGER NOT NULL DEFAULT 0,
        observed_at TEXT NOT NULL
    );
    CREATE TABLE operations (
        id INTEGER PRIMARY KEY,
        orchestration_id TEXT NOT NULL,
        operation_id TEXT NOT NULL,
        runtime_id TEXT NOT NULL,
        shoot_name TEXT NOT NULL,
        state TEXT NOT NULL,
        description TEXT NOT NULL,
        plan_name TEXT NOT NULL,
        plan_id TEXT NOT NULL,
        global_account_id TEXT NOT NULL,
        sub_account_id TEXT NOT NULL,
        dry_run INTEGER NOT NULL,
        window_begin TEXT NOT NULL,
        window_end TEXT NOT NULL,
        extra TEXT,
        UNIQUE (orchestration_id, operation_id)
    );
    CREATE INDEX operations_by_state ON operations (orchestration_id, state, id);
    CREATE INDEX operations_by_runtime ON operations (orchestration_id, runtime_id);
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        orchestration_id TEXT NOT NULL,
        cycle_id INTEGER,
        kind TEXT NOT NULL,
        at TEXT NOT NULL,
        operation_id TEXT,
        runtime_id TEXT NOT NULL,
        shoot_name TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT,
        via TEXT NOT NULL,
        description TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX transitions_by_orchestration ON transitions (orchestration_id, id);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        orchestration_id TEXT,
        kind TEXT NOT NULL,
        priority INTEGER NOT NULL,
        channel TEXT,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        slack_channel TEXT,
        slack_ts TEXT
    );
    CREATE INDEX outbox_by_status ON outbox (status, priority, id);
    CREATE TABLE cycles (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        polled INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        requests INTEGER NOT NULL DEFAULT 0,
        transitions INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 2: notification delivery: the Slack message of each orchestration's card, every send
    # attempt with Slack's answer, and the watcher's own health (KEB reachable or not).
    """
    CREATE TABLE cards (
        orchestration_id TEXT PRIMARY KEY,
        channel_id TEXT NOT NULL,
        ts TEXT NOT NULL,
        posted_at TEXT NOT NULL
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        outbox_id INTEGER NOT NULL,
        at TEXT NOT NULL,
        method TEXT NOT NULL,
        ok INTEGER NOT NULL,
        error TEXT,
        retry_after REAL
    );
    CREATE INDEX attempts_by_outbox ON attempts (outbox_id, id);
    ALTER TABLE outbox ADD COLUMN render_error TEXT;
    ALTER TABLE outbox ADD COLUMN last_attempt_at TEXT;
    CREATE TABLE health (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        unhealthy_since TEXT,
        last_error TEXT,
        alerted INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO health (id) VALUES (1);
    """,
    # 3: the single-instance lease shared by `watcher run` and `watcher poll` (watcher.store.lease);
    # outbox rows by orchestration, for finishing and pruning one orchestration.
    """
    CREATE TABLE lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        acquired_at TEXT NOT NULL,
        renewed_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX outbox_by_orchestration ON outbox (orchestration_id, status);
    """,
    # 4: silences (`watcher silence`): who muted an orchestration's non-final notifications,
    # why and until when (watcher.store.silences).
    """
    CREATE TABLE silences (
        orchestration_id TEXT PRIMARY KEY,
        until TEXT NOT NULL,
        reason TEXT,
        created_by TEXT,
        created_at TEXT NOT NULL
    );
    """,
    # 5 (fleet watch): selections of runtimes followed through /runtimes, one record per
    # runtime (keyed by instance ID, its operations as JSON), and their recorded history.
    """
    CREATE TABLE selections (
        name TEXT PRIMARY KEY,
        filters TEXT NOT NULL,
        channel TEXT,
        added_at TEXT NOT NULL,
        baseline_at TEXT,
        last_full_sweep_at TEXT,
        last_success_at TEXT,
        last_error TEXT
    );
    CREATE TABLE fleet_runtimes (
        selection TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (selection, instance_id)
    );
    CREATE TABLE fleet_transitions (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        selection TEXT NOT NULL,
        change TEXT NOT NULL,
        at TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        operation_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        description TEXT NOT NULL,
        shoot TEXT NOT NULL,
        subaccount_id TEXT NOT NULL,
        runtime_id TEXT NOT NULL
    );
    CREATE INDEX fleet_transitions_by_instance ON fleet_transitions (instance_id, id);
    CREATE INDEX fleet_transitions_by_selection ON fleet_transitions (selection, id);
    """,
    # 6 (stuck alerts): what is stuck now (JSON list, watcher.core.stuck.Stalled), per tracked
    # orchestration; transitions by operation, to find when each operation entered its state.
    """
    ALTER TABLE tracked ADD COLUMN stuck TEXT;
    CREATE INDEX transitions_by_operation ON transitions (orchestration_id, operation_id, id);
    """,
    # 7: notifications give up on time (slack.give_up_after), not on a count: since when a
    # pending notification has been failing for a transient reason (429s do not count).
    """
    ALTER TABLE outbox ADD COLUMN failing_since TEXT;
    """,
    # 8 (fleet watch, stuck): what is stuck now per selection (JSON list, like tracked.stuck);
    # fleet transitions by operation, to find when each operation entered its state.
    """
    ALTER TABLE selections ADD COLUMN stuck TEXT;
    CREATE INDEX fleet_transitions_by_operation
        ON fleet_transitions (selection, operation_id, id);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
