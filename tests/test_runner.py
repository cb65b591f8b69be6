"""`watcher run`'s decisions and jobs: cadence, discovery, schedule, retention, one cycle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from tests.conftest import Cli, Keb, write_config
from watcher.app import Watcher
from watcher.config import PollConfig, load_config
from watcher.core.cadence import Standing, cadence, discover, due, is_due
from watcher.core.models import MaintenanceWindow, Orchestration
from watcher.core.pace import PENDING_TICKS
from watcher.faces.run.schedule import poll_trigger, tick_seconds
from watcher.faces.run.service import Service
from watcher.store.database import Store
from watcher.store.retention import prune

NOW = datetime(2024, 5, 14, 8, 0, 0, tzinfo=UTC)
TICK = 60.0
RUNNING = {"in progress": 3, "pending": 10, "succeeded": 5}
ALL_PENDING = {"pending": 10, "succeeded": 5, "failed": 1}
# Windows opening 2h, 20 min and 90 s from NOW, one open now, one that passed, a daily one.
IN_2H = MaintenanceWindow("2024-05-14T10:00:00Z", "2024-05-14T14:00:00Z")
IN_20M = MaintenanceWindow("2024-05-14T08:20:00Z", "2024-05-14T12:20:00Z")
IN_90S = MaintenanceWindow("2024-05-14T08:01:30Z", "2024-05-14T12:01:30Z")
OPEN = MaintenanceWindow("2024-05-14T07:00:00Z", "2024-05-14T11:00:00Z")
DAILY_22 = MaintenanceWindow("0000-01-01T22:00:00Z", "0000-01-01T02:00:00Z")


@pytest.mark.parametrize(
    ("state", "counts", "windows", "seconds"),
    [
        # Something moves: every tick.
        ("in progress", RUNNING, (), 0.0),
        ("canceling", ALL_PENDING, (IN_2H,), 0.0),
        ("retrying", {"failed": 3}, (), 0.0),
        (None, {}, (), 0.0),  # never observed
        ("some future state", {}, (), 0.0),
        # Everything unfinished is pending: every third tick.
        ("pending", {"pending": 10}, (), PENDING_TICKS * TICK),
        ("in progress", ALL_PENDING, (), PENDING_TICKS * TICK),
        ("in progress", ALL_PENDING, (OPEN,), PENDING_TICKS * TICK),  # may start any moment
        ("in progress", ALL_PENDING, (IN_2H, OPEN), PENDING_TICKS * TICK),
        ("in progress", ALL_PENDING, (IN_2H, MaintenanceWindow()), PENDING_TICKS * TICK),
        # Ended, waiting for its final notification: every third tick.
        ("succeeded", {"succeeded": 10}, (), PENDING_TICKS * TICK),
        ("canceled", {"canceled": 10}, (), PENDING_TICKS * TICK),
        # Failed: a retry may come at any time (docs/contract.md §2.4): every tick.
        ("failed", {"failed": 1}, (), 0.0),
        # Every pending operation waits for a window: half the wait, 3 to 30 ticks.
        ("in progress", ALL_PENDING, (IN_2H,), 30 * TICK),  # not 3600: at most 30 ticks
        ("in progress", ALL_PENDING, (IN_2H, IN_20M), 600.0),
        ("in progress", ALL_PENDING, (IN_90S,), 3 * TICK),
        ("in progress", ALL_PENDING, (DAILY_22,), 30 * TICK),
        ("pending", {"pending": 4}, (IN_20M,), 600.0),
    ],
)
def test_cadence_follows_what_keb_is_doing(
    state: str | None,
    counts: dict[str, int],
    windows: tuple[MaintenanceWindow, ...],
    seconds: float,
) -> None:
    assert cadence(state, counts, windows, NOW, TICK) == seconds


def test_cadence_scales_with_the_tick() -> None:
    assert cadence("pending", {"pending": 1}, (), NOW, 1.0) == PENDING_TICKS
    assert cadence("in progress", ALL_PENDING, (DAILY_22,), NOW, 1.0) == 30.0


def standing(state: str | None, ago: float | None, *, failing: bool = False) -> Standing:
    counts = RUNNING if state == "in progress" else {"pending": 4}
    last = None if ago is None else NOW - timedelta(seconds=ago)
    return Standing(f"{state}-{ago}-{failing}", state, counts, failing, last)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (standing("in progress", 0.0), True),
        (standing("pending", None), True),  # never polled by this process
        (standing("pending", 0.0, failing=True), True),  # the last poll failed
        (standing("pending", TICK), False),
        (standing("pending", 2 * TICK), False),
        (standing("pending", 2.5 * TICK), True),  # half a tick early absorbs jitter
        (standing("pending", 3 * TICK - 5), True),
        (standing("pending", 10 * TICK), True),
    ],
)
def test_is_due(item: Standing, expected: bool) -> None:
    assert is_due(item, NOW, TICK) is expected


def test_due_keeps_the_order() -> None:
    items = [standing("in progress", 0.0), standing("pending", 0.0), standing("pending", None)]
    assert due(items, NOW, TICK) == [items[0].orchestration_id, items[2].orchestration_id]


def orch(orch_id: str, state: str, type_: str = "upgradeCluster") -> Orchestration:
    return Orchestration(orch_id, type=type_, state=state)


def test_discovery_tracks_new_running_ones_and_leaves_ended_ones_alone() -> None:
    listed = [
        orch("old-done", "succeeded"),
        orch("known", "in progress"),
        orch("untracked-by-user", "in progress"),
        orch("new-running", "in progress"),
        orch("new-pending", "pending"),
        orch("new-failed", "failed"),
        orch("new-canceled", "canceled"),
        orch("kyma", "in progress", "upgradeKyma"),
        orch("new-running", "in progress"),  # listed twice (paging race): tracked once
    ]
    found = discover(listed, {"known", "untracked-by-user"})
    assert found.new == ("new-running", "new-pending", "kyma")
    assert found.ended == ("old-done", "new-failed", "new-canceled")
    only_cluster = discover(listed, {"known", "untracked-by-user"}, ("upgradeCluster",))
    assert only_cluster.new == ("new-running", "new-pending")


def test_the_schedule_comes_from_the_poll_section() -> None:
    interval = poll_trigger(PollConfig(interval=90.0, jitter=5.0))
    assert isinstance(interval, IntervalTrigger)
    assert interval.interval == timedelta(seconds=90)
    assert interval.jitter == 5.0
    assert tick_seconds(PollConfig(interval=90.0), NOW) == 90.0
    cron = poll_trigger(PollConfig(cron="*/2 * * * mon-fri", jitter=0.0))
    assert isinstance(cron, CronTrigger)
    assert cron.jitter is None
    assert str(cron.timezone) == "UTC"
    fire = cron.get_next_fire_time(None, datetime(2024, 5, 18, 12, 0, 1, tzinfo=UTC))  # Sat
    assert fire == datetime(2024, 5, 20, 0, 0, tzinfo=UTC)
    assert tick_seconds(PollConfig(cron="*/2 * * * *"), NOW) == 120.0
    assert tick_seconds(PollConfig(cron="0 * * * *"), NOW + timedelta(seconds=1)) == 3600.0


def poll_until_finished(keb: Keb, cli: Cli) -> None:
    for _ in range(10):
        assert cli("--config", str(keb.config), "poll").code == 0
        keb.sim.advance(600)
        listed = cli("--config", str(keb.config), "list", "-o", "json").json()
        if keb.sim.all_finished() and all(t["finished"] for t in listed):
            return
    raise AssertionError("did not finish")


def rows_of(store: Store, orch_id: str) -> dict[str, int]:
    counts = {}
    for table in ("tracked", "orchestrations", "operations", "transitions", "outbox", "cards"):
        sql = f"SELECT COUNT(*) FROM {table} WHERE orchestration_id = ?"
        counts[table] = store.conn.execute(sql, (orch_id,)).fetchone()[0]
    return counts


def add_outbox(store: Store, key: str, orch_id: str | None, status: str, created: datetime) -> None:
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO outbox (key, orchestration_id, kind, priority, payload, status, "
            "created_at) VALUES (?, ?, 'progress', 5, '{}', ?, ?)",
            (key, orch_id, status, created.isoformat()),
        )
        conn.execute(
            "INSERT INTO attempts (outbox_id, at, method, ok) VALUES (?, ?, 'chat.update', 1)",
            (cur.lastrowid, created.isoformat()),
        )


def test_retention_forgets_what_ended_long_ago_and_keeps_the_rest(
    keb_factory: Callable[[str], Keb], cli: Cli
) -> None:
    keb = keb_factory("demo")
    cfg = str(keb.config)
    ids = keb.sim.orchestration_ids()
    assert cli("--config", cfg, "track", *ids).code == 0
    assert cli("--config", cfg, "poll").code == 0
    assert cli("--config", cfg, "untrack", ids[0]).code == 0
    keb.sim.run_until_finished()
    poll_until_finished(keb, cli)
    assert cli("--config", cfg, "track", ids[4]).code == 0  # followed again: kept
    store = Store(keb.config.parent / "watcher.db")
    now = datetime.now(UTC)
    kept_before = rows_of(store, ids[4])
    old = now - timedelta(days=40)
    add_outbox(store, "old-superseded", ids[4], "superseded", old)
    add_outbox(store, "old-sent", ids[4], "sent", old)
    add_outbox(store, "old-alert", None, "sent", old)
    add_outbox(store, "old-alert-pending", None, "pending", old)
    later = now + timedelta(days=31)
    add_outbox(store, "new-superseded", ids[4], "superseded", later - timedelta(days=29))

    assert prune(store, now, 30 * 86400.0).orchestrations == ()  # all of it is recent
    pruned = prune(store, later, 30 * 86400.0)

    assert sorted(pruned.orchestrations) == sorted(ids[:4])
    for orch_id in ids[:4]:
        assert set(rows_of(store, orch_id).values()) == {0}, orch_id
        history = cli("--config", cfg, "history", orch_id)
        assert history.code == 2
        assert "not tracked and has no history" in history.err
    left = {row[0] for row in store.conn.execute("SELECT key FROM outbox")}
    assert left == {"old-sent", "old-alert-pending", "new-superseded"}
    orphans = "SELECT COUNT(*) FROM attempts WHERE outbox_id NOT IN (SELECT id FROM outbox)"
    assert store.conn.execute(orphans).fetchone()[0] == 0
    assert rows_of(store, ids[4]) == {**kept_before, "outbox": 2}
    assert store.conn.execute("SELECT COUNT(*) FROM cycles").fetchone()[0] == 0
    history = cli("--config", cfg, "history", ids[4], "-o", "json").json()
    assert history[0]["kind"] == "baseline"
    assert pruned.rows > 100
    store.close()


def test_one_cycle_polls_only_the_orchestrations_that_are_due(
    keb_factory: Callable[[str], Keb], cli: Cli
) -> None:
    """At the epoch every demo orchestration is pending: after the baseline, none is due
    until three ticks have passed; once one runs, it is polled on every tick."""
    keb = keb_factory("demo")
    ids = keb.sim.orchestration_ids()
    assert cli("--config", str(keb.config), "track", *ids).code == 0
    config = load_config(keb.config, {})

    async def main() -> list[int]:
        polled = []
        with Watcher(config) as app:
            service = Service(app)
            registry = service.metrics.registry

            def polls() -> float:
                value = registry.get_sample_value(
                    "keb_watcher_orchestration_polls_total", {"outcome": "ok"}
                )
                return value or 0.0

            async with service.cycles.open():
                for step in range(4):
                    before = polls()
                    await service._cycle()
                    polled.append(int(polls() - before))
                    if step == 1:
                        keb.sim.advance(15)  # the first one starts
                        last_polled = service.cycles._last_polled
                        for orch_id in ids:  # three ticks pass
                            last_polled[orch_id] -= timedelta(seconds=3 * service.tick)
        return polled

    assert asyncio.run(main()) == [5, 0, 5, 1]
    with Store(keb.config.parent / "watcher.db") as store:
        transitions = store.history(ids[0])
    assert transitions[0].kind.value == "baseline"
    assert [t.to_state for t in transitions if t.operation_id is None][-1] == "in progress"


def test_discovery_tracks_running_orchestrations_not_ended_or_untracked_ones(
    keb_factory: Callable[[str], Keb], cli: Cli, tmp_path: Path
) -> None:
    keb = keb_factory("demo")
    ids = keb.sim.orchestration_ids()
    keb.sim.advance(1150)  # in progress x3, failed (retried later), succeeded
    states = [keb.sim.orchestration_state(i) for i in ids]
    assert states == ["in progress", "in progress", "in progress", "failed", "succeeded"]
    config_path = write_config(
        tmp_path / "discover.toml",
        keb.server.url,
        keb.sim.token,
        'discover = true\ndiscover_types = ["upgradeCluster"]\n',
    )
    cfg = str(config_path)
    assert cli("--config", cfg, "track", ids[0]).code == 0
    assert cli("--config", cfg, "untrack", ids[0]).code == 0  # the user said no
    config = load_config(config_path, {})

    async def cycle(service: Service) -> None:
        async with service.cycles.open():
            await service._cycle()

    with Watcher(config) as app:
        service = Service(app)
        asyncio.run(cycle(service))
        assert {t.orchestration_id for t in app.tracked()} == {ids[1], ids[2]}
        assert not app.store.is_known(ids[3])  # ended when first listed: nothing recorded
        assert not app.store.is_known(ids[4])
        keb.sim.advance(300)  # KEB retries the failed one (5 minutes after): it runs again
        assert keb.sim.orchestration_state(ids[3]) in ("retrying", "in progress")
        asyncio.run(cycle(service))
        assert {t.orchestration_id for t in app.tracked()} == {ids[1], ids[2], ids[3]}
        assert app.history(ids[3])[0].kind.value == "baseline"
        assert not app.store.is_known(ids[4])
        registry = service.metrics.registry
        assert registry.get_sample_value("keb_watcher_discovered_orchestrations_total") == 3


def test_an_orchestration_waiting_for_its_windows_is_polled_less_often(
    keb_factory: Callable[[str], Keb], cli: Cli
) -> None:
    """Every operation of the maintenance orchestration waits for a window hours ahead: the
    service's cycle reads those windows (one query for the tracked set) and leaves it alone
    for ten ticks (half the wait), where one with no window would be polled after three."""
    keb = keb_factory("maintenance")
    keb.sim.advance(2400)  # 08:40: the 08:00 window's operations are done, 24 wait from 09:00
    ids = keb.sim.orchestration_ids()
    assert cli("--config", str(keb.config), "track", *ids).code == 0
    config = load_config(keb.config, {})

    async def main() -> list[int]:
        polled = []
        with Watcher(config, clock=lambda: keb.sim.now) as app:
            service = Service(app)
            async with service.cycles.open():
                for _ in range(3):
                    cycle = await service.cycles.cycle(app.clock())
                    polled.append(len(cycle.report.results))
                    last_polled = service.cycles._last_polled
                    for orch_id in ids:  # three ticks pass
                        last_polled[orch_id] -= timedelta(seconds=3 * service.tick)
        return polled

    assert asyncio.run(main()) == [1, 0, 0]
