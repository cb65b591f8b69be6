"""KEB as it really behaves (docs/keb-api.md §12), end to end over real HTTP against the simulator:
a late retry of a failed orchestration, a KEB without the orchestration API, a legacy
``upgradeKyma`` orchestration, claimed totals far above the rows, absurd bodies."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Keb, write_config
from tests.test_ground_truth import check_against_truth, follow, poll_recording
from tests.test_notify_e2e import CHANNEL, Setup, make_setup
from watcher.core.diff import Observation, Snapshot, diff
from watcher.core.models import Orchestration
from watcher.core.tracked import due
from watcher.sim import Simulator
from watcher.store.database import Store

NO_API = "serves no orchestration API"


def poll(keb: Keb, cli: Cli) -> Any:
    return poll_recording(keb, cli)


def kinds(db: Path, table: str = "transitions") -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute(f"SELECT kind FROM {table} ORDER BY id")]


def cycle_requests(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT requests FROM cycles ORDER BY id")]


# -- no orchestration API ----------------------------------------------------------------------


def test_no_orchestration_api_marks_nothing_gone_and_polling_resumes(
    keb_factory: Any, cli: Cli
) -> None:
    keb = keb_factory("failures")
    ids = keb.sim.orchestration_ids()
    db = keb.config.parent / "watcher.db"
    cli("--config", str(keb.config), "track", *ids)
    assert poll(keb, cli).code == 0
    keb.sim.advance(600)
    keb.sim.faults.inject("no-api", count=None, path_prefix="/orchestrations")
    for _ in range(2):
        failed = poll(keb, cli)
        assert failed.code == 1
        [line] = failed.err.strip().splitlines()  # one line, however many are tracked
        assert line.startswith("watcher: ")
        assert NO_API in line
        assert "KEB 1.15.1" in line
        assert "Traceback" not in failed.err
        assert "nothing to poll" not in failed.out
    assert "orchestration_not_found" not in kinds(db)
    listed = cli("--config", str(keb.config), "list", "-o", "json").json()
    assert [(t["notFound"], t["finished"]) for t in listed] == [(False, False)]
    assert NO_API in listed[0]["lastError"]
    keb.sim.faults.clear()
    follow(keb, cli, (120.0, 600.0))
    check_against_truth(keb, cli)


def test_a_wrong_base_url_is_not_gone_either(keb_factory: Any, cli: Cli, tmp_path: Path) -> None:
    keb = keb_factory("small")
    ids = keb.sim.orchestration_ids()
    cli("--config", str(keb.config), "track", *ids)
    wrong = write_config(tmp_path / "wrong.toml", keb.server.url + "/not-keb", keb.sim.token)
    result = cli("--config", str(wrong), "poll")
    assert result.code == 1
    [line] = result.err.strip().splitlines()
    # Both readings, and the URL that was asked (never the token).
    url = f"{keb.server.url}/not-keb/orchestrations/{ids[0]}"
    assert line == (
        f"watcher: KEB GET {url} answered a plain-text 404: the endpoint serves no "
        "orchestration API. Either keb.url is wrong (it must be KEB's base URL, without "
        "/orchestrations), or it points at KEB 1.15.1 or later, which removed the "
        "orchestration API; that KEB serves the runtimes API (GET /runtimes) instead, and "
        "`watcher fleet add NAME` follows its runtimes."
    )
    assert keb.sim.token not in result.err + result.out
    assert "orchestration_not_found" not in kinds(tmp_path / "watcher.db")
    # `watch` against the same URL: exit 5, the same line.
    env = {"KEB_URL": keb.server.url + "/not-keb", "KEB_TOKEN": keb.sim.token}
    watched = cli("watch", ids[0], "--output", "text", env=env)
    assert watched.code == 5, (watched.out, watched.err)
    assert line in (watched.err + watched.out).splitlines()
    assert keb.sim.token not in watched.err + watched.out


def test_watch_exits_5_without_orchestration_api(keb_factory: Any, cli: Cli) -> None:
    keb = keb_factory("small")
    keb.sim.faults.inject("no-api", count=None, path_prefix="/orchestrations")
    [orch_id] = keb.sim.orchestration_ids()
    env = {"KEB_URL": keb.server.url, "KEB_TOKEN": keb.sim.token}
    result = cli("watch", orch_id, "--output", "text", env=env)
    assert result.code == 5, (result.out, result.err)
    assert NO_API in result.err + result.out
    assert "Traceback" not in result.err


def test_no_api_counts_toward_the_keb_unhealthy_alert_and_announces_nothing(
    tmp_path: Path, cli: Cli
) -> None:
    s: Setup = make_setup(tmp_path, Simulator.from_scenario("small"), extra='alert_after = "0s"\n')
    try:
        db = s.config.parent / "watcher.db"
        cli("--config", str(s.config), "track", *s.sim.orchestration_ids())
        assert cli("--config", str(s.config), "poll").code == 0
        s.sim.faults.inject("no-api", count=None, path_prefix="/orchestrations")
        s.sim.advance(300)
        assert cli("--config", str(s.config), "poll").code == 1
        sent = kinds(db, "outbox")
        assert "keb_unhealthy" in sent
        assert "not_found" not in sent
        s.sim.faults.clear()
        assert cli("--config", str(s.config), "poll").code == 0
        assert "keb_recovered" in kinds(db, "outbox")
        texts = "\n".join(m.text for m in s.slack.messages(CHANNEL))
        assert "does not know orchestration" not in texts
        assert NO_API in texts  # the alert says what is wrong
    finally:
        s.keb.stop()
        s.slack.stop()


# -- failed is not final ------------------------------------------------------------------------


def test_a_late_retry_is_recorded_and_announced_and_waiting_costs_one_request(
    tmp_path: Path, cli: Cli
) -> None:
    s = make_setup(tmp_path, Simulator.from_scenario("late-retry", seed=2))
    try:
        db = s.config.parent / "watcher.db"
        [orch_id] = s.sim.orchestration_ids()
        cli("--config", str(s.config), "track", orch_id)
        for _ in range(40):  # until it failed and its final summary went out
            assert cli("--config", str(s.config), "poll").code == 0
            listed = cli("--config", str(s.config), "list", "-o", "json").json()
            if listed[0]["finished"]:
                break
            s.sim.advance(120)
        assert listed[0]["state"] == "failed"
        assert listed[0]["watchingForRetriesUntil"] is not None
        text = cli("--config", str(s.config), "list").out
        assert "failed, watching for retries until" in text
        # Waiting for a retry: polled every time, one request each, on the unchanged path.
        before = len(cycle_requests(db))
        for _ in range(5):
            s.sim.advance(1800)
            result = cli("--config", str(s.config), "poll")
            assert result.code == 0
            assert "unchanged" in result.out, result.out
        assert cycle_requests(db)[before:] == [1] * 5
        # Three hours after it failed, an operator retries it; it runs again and ends.
        for _ in range(60):
            s.sim.advance(300)
            assert cli("--config", str(s.config), "poll").code == 0
            if (
                s.sim.all_finished()
                and cli("--config", str(s.config), "list", "-o", "json").json()[0]["finished"]
            ):
                break
        history = cli("--config", str(s.config), "history", orch_id, "-o", "json").json()
        rerun = next(
            i
            for i, t in enumerate(history)
            if t["kind"] == "orchestration_state" and t["from"] == "failed"
        )
        assert history[rerun]["to"] == "retrying" or "retrying" in history[rerun]["via"]
        failed_runtimes = {
            t["runtimeID"] for t in history[:rerun] if t["to"] == "failed" and t["operationID"]
        }
        later = [t["kind"] for t in history[rerun:]]
        assert "operation_added" not in later  # the new operations are retries, not additions
        retries = [t for t in history[rerun:] if t["kind"] == "operation_retry"]
        assert {t["runtimeID"] for t in retries} == failed_runtimes
        sent = kinds(db, "outbox")
        assert sent.count("retried") == 1
        assert sent.count("finished") == 2  # a second run, a second final summary
        finals = [m for m in s.slack.messages(CHANNEL) if m.reply_broadcast]
        assert len(finals) == 2
        assert finals[1].thread_ts == finals[0].thread_ts
        retried = [
            m
            for m in s.slack.messages(CHANNEL)
            if m.metadata and m.metadata["event_payload"]["kind"] == "retried"
        ]
        assert len(retried) == 1
        assert retried[0].thread_ts == finals[0].thread_ts
        assert finals[0].ts < retried[0].ts < finals[1].ts  # in the order of the events
        assert "run 2" in retried[0].text
    finally:
        s.keb.stop()
        s.slack.stop()


def test_a_failed_orchestration_is_due_only_within_its_retry_window(tmp_path: Path) -> None:
    """The window runs from the delivery of the final summary (``finished_at``)."""
    ended = datetime(2026, 1, 1, tzinfo=UTC)
    with Store(tmp_path / "w.db") as store:
        store.track(["o-failed", "o-done"], None, ended)
        for orch_id, state in (("o-failed", "failed"), ("o-done", "succeeded")):
            orch = Orchestration(orch_id, type="upgradeCluster", state=state)
            result = diff(Snapshot(orch_id), Observation(orch, {}), ended)
            store.commit_diff(result, now=ended, cycle_id=None, full_sweep=True, finished=True)
        window = 7 * 86400.0
        tracked = store.tracked()
        assert [t.orchestration_id for t in due(tracked, ended + timedelta(days=6), window)] == [
            "o-failed"
        ]
        assert due(tracked, ended + timedelta(days=7), window) == []
        assert due(tracked, ended + timedelta(days=1), 0.0) == []


# -- legacy upgradeKyma -------------------------------------------------------------------------


def test_a_legacy_kyma_orchestration_is_followed_without_asking_for_its_operations_again(
    keb_factory: Any, cli: Cli
) -> None:
    keb = keb_factory("legacy")
    legacy, cluster = keb.sim.orchestration_ids()
    db = keb.config.parent / "watcher.db"
    cli("--config", str(keb.config), "track", legacy, cluster)
    for _ in range(30):
        result = poll(keb, cli)
        assert result.code == 0, result.err
        keb.sim.advance(60)
    # After the baseline (GET, the refused list, the closing GET), the legacy one costs one
    # GET a cycle: the 500 is not asked for again.
    lines = [line for line in result.out.splitlines() if line.startswith(legacy)]
    assert "unchanged" in lines[0], lines
    assert "succeeded" in cli("--config", str(keb.config), "status", cluster).out
    assert cycle_requests(db)[-3:] == [1, 1, 1]  # the cluster one ended: one GET a cycle
    history = cli("--config", str(keb.config), "history", legacy, "-o", "json").json()
    assert {t["kind"] for t in history} <= {"baseline", "orchestration_state"}
    assert history[-1]["to"] == keb.sim.orchestration_state(legacy)
    check_against_truth(keb, cli, [cluster])


# -- sanity limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("inflated-total", "1000000"),
        ("empty-page", "received for totalCount"),
        ("deep-json", "nested deeper than KEB ever nests"),
    ],
)
def test_what_keb_claims_is_bounded(keb_factory: Any, cli: Cli, kind: str, expected: str) -> None:
    keb = keb_factory("failures")
    ids = keb.sim.orchestration_ids()
    cli("--config", str(keb.config), "track", *ids)
    assert poll(keb, cli).code == 0
    keb.sim.advance(600)  # 200 operations now: the poll after this sweeps them
    keb.sim.faults.inject(kind, count=None, path_prefix="/orchestrations")
    before = keb.server.request_count
    result = poll(keb, cli)
    if kind != "deep-json":
        # A list that does not hold together once may be a momentary race (§12.6): the
        # cycle defers; the sweep of the next cycle fails the same way, which is an error.
        assert (result.code, result.err) == (0, ""), result.err
        assert "deferred: the list changed while swept" in result.out
        result = poll(keb, cli)
    assert result.code == 1
    assert "Traceback" not in result.err
    [line] = result.err.strip().splitlines()
    assert expected in line, line
    assert keb.server.request_count - before <= 40  # two cycles; a full sweep is 4 pages
    keb.sim.faults.clear()
    follow(keb, cli, (120.0, 600.0))
    check_against_truth(keb, cli)


def test_an_ended_orchestration_stays_polled_until_its_final_summary_is_delivered(
    tmp_path: Path, cli: Cli
) -> None:
    s = make_setup(tmp_path, Simulator.from_scenario("small"))
    try:
        cli("--config", str(s.config), "track", *s.sim.orchestration_ids())
        assert cli("--config", str(s.config), "poll").code == 0
        s.sim.advance(3600)  # it has succeeded
        s.slack.fail_next("chat.postMessage", "internal_error", status=500, count=100)
        assert cli("--config", str(s.config), "poll").code == 1  # the summary is undelivered
        [item] = cli("--config", str(s.config), "list", "-o", "json").json()
        assert item["state"] == "succeeded"
        assert item["finished"] is False  # still polled: its final summary is not out
        s.slack.clear_failures()
        stuck = cli("--config", str(s.config), "outbox", "list", "-o", "json").json()
        ids = [str(entry["id"]) for entry in stuck]
        assert cli("--config", str(s.config), "outbox", "retry", *ids).code == 0
        assert cli("--config", str(s.config), "poll").code == 0
        [item] = cli("--config", str(s.config), "list", "-o", "json").json()
        assert item["finished"] is True
    finally:
        s.keb.stop()
        s.slack.stop()


def test_watch_says_a_missing_orchestration_api_once_for_the_endpoint(
    keb_factory: Any, cli: Cli
) -> None:
    """The error's type, not its text, says the endpoint is the problem: one line for all the
    orchestrations, naming none of them, as `poll` says it."""
    keb = keb_factory("demo")
    keb.sim.faults.inject("no-api", count=None, path_prefix="/orchestrations")
    ids = keb.sim.orchestration_ids()[:2]
    env = {"KEB_URL": keb.server.url, "KEB_TOKEN": keb.sim.token}
    result = cli("watch", *ids, "--output", "text", env=env)
    assert result.code == 5, (result.out, result.err)
    said = [line for line in result.err.splitlines() if NO_API in line]
    assert len(said) == 1, result.err
    assert said[0].startswith("watcher: KEB GET ")
