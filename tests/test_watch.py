"""`watcher watch`: the pure follow loop (intervals, backoff, exit decisions) and the real
command against the simulator, one test per exit code.

The command runs through the real entry point (``cli`` fixture); only its seams are replaced
(:class:`watcher.faces.watch.command.WatchHooks`): its sleep advances the simulator's
manual clock, and its clocks read the simulator's, so an orchestration of twenty virtual
minutes is followed in well under a second.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Cli, Keb, Result
from watcher.app import Watcher
from watcher.cli import main
from watcher.core.models import MaintenanceWindow
from watcher.core.pace import idle_pending, window_wait
from watcher.core.watching import (
    PENDING_INTERVAL,
    QUICK_INTERVAL,
    Finish,
    Follow,
    Observed,
    PollFailed,
    Reconnect,
    Summary,
    Wait,
    WatchOptions,
    WatchOutcome,
    poll_interval,
    reconnect_delay,
    step,
)
from watcher.errors import (
    KebAuthError,
    KebNotFound,
    KebRequestError,
    KebUnavailable,
    StoreError,
    TokenError,
)
from watcher.faces.watch.command import WatchHooks, make_watch_command
from watcher.store.database import Store

NOW = datetime(2024, 5, 14, 8, 0, tzinfo=UTC)


# -- the pure core -----------------------------------------------------------------------


def window(begin: str, end: str) -> MaintenanceWindow:
    return MaintenanceWindow(begin, end)


@pytest.mark.parametrize(
    ("win", "expected"),
    [
        (window("2024-05-14T09:00:00Z", "2024-05-14T13:00:00Z"), 3600.0),
        (window("2024-05-14T07:00:00Z", "2024-05-14T11:00:00Z"), 0.0),  # open now
        (window("2024-05-13T07:00:00Z", "2024-05-13T11:00:00Z"), None),  # passed
        (window("0000-01-01T09:30:00Z", "0000-01-01T13:30:00Z"), 5400.0),  # daily, later
        (window("0000-01-01T22:00:00Z", "0000-01-01T02:00:00Z"), 50400.0),  # daily, tonight
        (window("0000-01-01T06:00:00Z", "0000-01-01T10:00:00Z"), 0.0),  # daily, open
        (window("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"), None),  # immediate: none
        (window("", ""), None),
    ],
)
def test_window_wait(win: MaintenanceWindow, expected: float | None) -> None:
    assert window_wait(win, NOW) == expected


LATER = window("2024-05-14T10:00:00Z", "2024-05-14T14:00:00Z")  # opens in 2 h
SOON = window("2024-05-14T08:03:00Z", "2024-05-14T12:00:00Z")  # opens in 3 min
OPEN = window("2024-05-14T07:00:00Z", "2024-05-14T11:00:00Z")


@pytest.mark.parametrize(
    ("state", "counts", "windows", "expected"),
    [
        ("in progress", {"in progress": 3, "pending": 9}, [], QUICK_INTERVAL),
        ("canceling", {"pending": 9}, [LATER], QUICK_INTERVAL),
        ("retrying", {"failed": 2}, [], QUICK_INTERVAL),
        ("in progress", {"succeeded": 12}, [], QUICK_INTERVAL),  # about to finish
        (None, {}, [], QUICK_INTERVAL),  # not seen yet
        ("pending", {}, [], PENDING_INTERVAL),
        ("in progress", {"pending": 9, "succeeded": 3}, [], PENDING_INTERVAL),
        ("in progress", {"pending": 2, "succeeded": 3}, [LATER, LATER], 300.0),
        ("in progress", {"pending": 2}, [SOON, LATER], 90.0),  # half of 3 min
        ("in progress", {"pending": 2}, [OPEN, LATER], PENDING_INTERVAL),  # one could start
        ("in progress", {"pending": 2}, [window("", ""), LATER], PENDING_INTERVAL),
        ("in progress", {"pending": 1, "in progress": 1}, [LATER], QUICK_INTERVAL),
    ],
)
def test_poll_interval_adapts(
    state: str | None, counts: dict[str, int], windows: list[MaintenanceWindow], expected: float
) -> None:
    assert poll_interval(state, counts, windows, NOW) == expected


def test_idle_pending_is_what_decides_whether_windows_are_read() -> None:
    assert idle_pending("pending", {})
    assert idle_pending("in progress", {"pending": 3, "failed": 1})
    assert not idle_pending("in progress", {"pending": 3, "in progress": 1})
    assert not idle_pending("succeeded", {"succeeded": 3})


@given(st.integers(1, 200), st.floats(0.1, 600), st.floats(0, 0.999))
def test_reconnect_delay_grows_and_is_capped_by_the_interval(
    attempt: int, cap: float, r: float
) -> None:
    delay = reconnect_delay(attempt, cap, rng=lambda: r)
    assert 0 < delay <= cap
    assert delay >= min(cap, 2.0 ** (min(attempt, 40) - 1)) / 2


OPTS = WatchOptions(interval=None, timeout=None, give_up_after=600.0)


def observed(state: str | None, interval: float = 5.0, not_found: bool = False) -> Observed:
    return Observed(state, not_found, interval)


@pytest.mark.parametrize(
    ("state", "outcome", "code"),
    [
        ("succeeded", WatchOutcome.SUCCEEDED, 0),
        ("failed", WatchOutcome.FAILED, 1),
        ("canceled", WatchOutcome.CANCELED, 3),
    ],
)
def test_terminal_states_finish_with_their_code(
    state: str, outcome: WatchOutcome, code: int
) -> None:
    _, action = step(Follow(started=0.0), observed(state), 0.0, OPTS)
    assert action == Finish(outcome, f"orchestration {state}")
    assert Summary("x", outcome, "", NOW, 0.0).exit_code == code


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (KebAuthError("401 Unauthorized: Jwt is expired", status=401), WatchOutcome.AUTH),
        (KebAuthError("403 Forbidden: RBAC: access denied", status=403), WatchOutcome.AUTH),
        (TokenError("token file /x is empty"), WatchOutcome.AUTH),
        (KebNotFound("404", status=404), WatchOutcome.NOT_FOUND),
        (KebRequestError("400 bad paging", status=400), WatchOutcome.KEB_ERROR),
    ],
)
def test_errors_retrying_cannot_fix_finish_at_once_with_5(
    error: Any, outcome: WatchOutcome
) -> None:
    _, action = step(Follow(started=0.0), PollFailed(error), 0.0, OPTS)
    assert isinstance(action, Finish)
    assert action.outcome is outcome
    assert Summary("x", outcome, "", NOW, 0.0).exit_code == 5


def test_404_observed_finishes_with_not_found() -> None:
    _, action = step(Follow(started=0.0), observed(None, not_found=True), 0.0, OPTS)
    assert isinstance(action, Finish)
    assert action.outcome is WatchOutcome.NOT_FOUND


def test_transient_errors_back_off_until_give_up_and_a_success_resets() -> None:
    follow, now = Follow(started=0.0, interval=30.0), 0.0
    delays = []
    error = PollFailed(KebUnavailable("KEB GET /orchestrations/x: 502 Bad Gateway\n<html>"))
    while True:
        follow, action = step(follow, error, now, OPTS, rng=lambda: 1.0)
        if isinstance(action, Finish):
            break
        assert isinstance(action, Reconnect)
        assert action.attempt == len(delays) + 1
        assert "\n" not in action.reason
        delays.append(action.seconds)
        now += action.seconds
    assert delays[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]  # doubling, capped at the interval
    assert max(delays) == 30.0
    assert action.outcome is WatchOutcome.UNREACHABLE
    assert now == 600.0  # the last attempt is made exactly when the outage reaches 10m
    assert action.reason.startswith("KEB unreachable for 10m (")

    follow = Follow(started=0.0, interval=5.0)
    follow, _ = step(follow, error, 0.0, OPTS)
    follow, _ = step(follow, error, 3.0, OPTS)
    follow, action = step(follow, observed("in progress"), 5.0, OPTS)
    assert action == Wait(5.0)
    assert follow.failures == 0
    assert follow.failing_since is None
    follow, action = step(follow, error, 599.0, OPTS)
    assert isinstance(action, Reconnect)
    assert action.attempt == 1


def test_a_database_conflict_is_retried_not_fatal() -> None:
    error = PollFailed(StoreError("watcher.db: write failed, nothing was changed: UNIQUE"))
    follow, action = step(Follow(started=0.0), error, 0.0, OPTS)
    assert isinstance(action, Reconnect)
    _, action = step(follow, error, 600.0, OPTS)
    assert isinstance(action, Finish)
    assert action.reason.startswith("polls failing for 10m (2 attempts): watcher.db: ")


def test_timeout_wins_when_it_comes_first_and_waits_never_overshoot_it() -> None:
    opts = WatchOptions(timeout=60.0, give_up_after=600.0)
    follow = Follow(started=100.0)
    _, action = step(follow, observed("in progress", 30.0), 145.0, opts)
    assert action == Wait(15.0)
    _, action = step(follow, observed("in progress", 30.0), 160.0, opts)
    assert action == Finish(
        WatchOutcome.TIMEOUT, "--timeout 1m reached; orchestration still in progress"
    )
    error = PollFailed(KebUnavailable("connection refused"))
    _, action = step(follow, error, 160.0, opts)
    assert isinstance(action, Finish)
    assert action.outcome is WatchOutcome.TIMEOUT
    _, action = step(Follow(started=0.0), observed("succeeded"), 1e9, opts)
    assert isinstance(action, Finish)
    assert action.outcome is WatchOutcome.SUCCEEDED


# -- the command against the simulator ---------------------------------------------------


class SimTime:
    """The command's seams on the simulator's manual clock; ``on_sleep`` can act (stop the
    server, inject faults) at a virtual time."""

    def __init__(self, keb: Keb, on_sleep: Callable[[float], None] | None = None) -> None:
        self.keb = keb
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return (self.keb.sim.now - self.keb.sim.epoch).total_seconds()

    def now(self) -> datetime:
        return self.keb.sim.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.keb.sim.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep(self.clock())

    def hooks(self, **changes: Any) -> WatchHooks:
        base = {
            "sleep": self.sleep,
            "clock": self.clock,
            "now": self.now,
            "rng": lambda: 0.5,
            "terminal": lambda: False,
        }
        return WatchHooks(**{**base, **changes})


Watch = Callable[..., Result]


@pytest.fixture
def watch(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Watch:
    """``watch(keb, time, *args)``: `watcher --config <keb's> watch <args>` with ``time``'s
    hooks; ``config=False`` runs without a config file (KEB_URL/KEB_TOKEN in ``env``)."""

    def run(
        keb: Keb,
        time: SimTime,
        *args: str,
        config: bool = True,
        env: dict[str, str] | None = None,
        **hooks: Any,
    ) -> Result:
        monkeypatch.setitem(main.commands, "watch", make_watch_command(time.hooks(**hooks)))
        prefix = ["--config", str(keb.config)] if config else []
        database = keb.config.parent / "watcher.db"
        if config and not database.exists():
            Store(database).close()  # a watch records into the database `track` created
        return cli(*prefix, "watch", *args, env=env)

    return run


def orch(keb: Keb) -> str:
    return keb.sim.orchestration_ids()[0]


def summary_line(result: Result) -> str:
    return next(line for line in result.out.splitlines() if "  summary: " in line)


def test_succeeded_exits_0_and_records_history_like_poll(
    keb_factory: Any, cli: Cli, watch: Watch
) -> None:
    keb = keb_factory("small")
    time = SimTime(keb)
    result = watch(keb, time, orch(keb), "--track")
    assert result.code == 0, result.err
    assert keb.sim.orchestration_state(orch(keb)) == "succeeded"
    assert f"summary: {orch(keb)}: orchestration succeeded; operations 12: 12" in summary_line(
        result
    )
    assert result.err == ""
    # adaptive: 30s while the orchestration is pending, then 5s while operations run
    assert time.slept[0] == PENDING_INTERVAL
    assert set(time.slept[1:]) == {QUICK_INTERVAL}
    history = cli("--config", str(keb.config), "history", orch(keb), "-o", "json").json()
    lines = [line for line in result.out.splitlines() if "  summary: " not in line]
    assert len(history) == len(lines)
    assert history[-1]["to"] == "succeeded"


def test_failed_exits_1_with_failures_grouped_by_reason(keb_factory: Any, watch: Watch) -> None:
    keb = keb_factory("failures")
    result = watch(keb, SimTime(keb), orch(keb), "--interval", "2m")
    assert result.code == 1, result.err
    assert f"summary: {orch(keb)}: orchestration failed;" in summary_line(result)
    reasons = [line for line in result.out.splitlines() if line.startswith("  ")]
    failed = keb.sim.list_operations(orch(keb), 1, 100, ["failed"])["totalCount"]
    assert sum(int(line.split(" x ")[0]) for line in reasons) == failed == 30
    assert len(reasons) == 4


def test_canceled_exits_3(keb_factory: Any, watch: Watch) -> None:
    keb = keb_factory("cancel")
    result = watch(keb, SimTime(keb), orch(keb), "--interval", "1m")
    assert result.code == 3, result.err
    assert "orchestration canceling -> canceled" in result.out
    assert f"summary: {orch(keb)}: orchestration canceled;" in summary_line(result)


@pytest.mark.parametrize(("scenario", "code"), [("small", 0), ("failures", 1), ("cancel", 3)])
def test_already_terminal_at_start_exits_at_once_with_its_code(
    keb_factory: Any, watch: Watch, scenario: str, code: int
) -> None:
    keb = keb_factory(scenario)
    keb.sim.run_until_finished()
    time = SimTime(keb)
    result = watch(keb, time, orch(keb), "--output", "json")
    assert result.code == code
    assert time.slept == []  # one poll, no waiting
    events = [json.loads(line) for line in result.out.splitlines()]
    assert [e["type"] for e in events] == ["transition", "status", "summary"]
    assert events[0]["kind"] == "baseline"
    assert events[-1]["exitCode"] == code
    assert events[-1]["from"] == events[-1]["to"] == keb.sim.orchestration_state(orch(keb))


def test_polls_slowly_while_every_pending_operation_waits_for_its_window(
    keb_factory: Any, watch: Watch
) -> None:
    """The maintenance scenario: windows open at 08:00, 09:00, ... 12:00. Once the 08:00
    operations are done, everything left waits for 09:00: polls slow down to 60s-5m, and the
    first poll after 09:00 is quick again."""
    keb = keb_factory("maintenance")
    time = SimTime(keb)
    result = watch(keb, time, orch(keb), "--timeout", "75m")
    assert result.code == 4
    slow = [s for s in time.slept if s > PENDING_INTERVAL]
    assert slow
    assert all(60.0 <= s <= 300.0 for s in slow)
    assert QUICK_INTERVAL in time.slept[time.slept.index(slow[-1]) :]


def test_timeout_exits_4(keb_factory: Any, watch: Watch) -> None:
    keb = keb_factory("small")
    time = SimTime(keb)
    result = watch(keb, time, orch(keb), "--timeout", "2m")
    assert result.code == 4
    assert time.clock() == pytest.approx(120.0)  # stopped at the deadline, not after
    assert (
        result.err
        == f"watcher: {orch(keb)}: --timeout 2m reached; orchestration still in progress\n"
    )
    assert keb.sim.orchestration_state(orch(keb)) == "in progress"


def test_unknown_id_exits_5_without_a_config_file(
    keb_factory: Any, watch: Watch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keb = keb_factory("small")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    env = {"KEB_URL": keb.server.url, "KEB_TOKEN": keb.sim.token}
    unknown = "0d3c1d1e-0000-4000-8000-000000000000"
    result = watch(keb, SimTime(keb), unknown, config=False, env=env)
    assert result.code == 5
    assert result.err == f"watcher: {unknown}: KEB does not know this orchestration (404)\n"
    assert list(workdir.iterdir()) == []  # no config file: the snapshot stayed in memory


@pytest.mark.parametrize("how", ["gateway rejects every token", "KEB_TOKEN wins and is bad"])
def test_rejected_token_exits_5(keb_factory: Any, watch: Watch, how: str) -> None:
    keb = keb_factory("small")
    env = None
    if how.startswith("gateway"):
        keb.sim.faults.inject("reject-token", count=None)
    else:
        env = {"KEB_URL": keb.server.url, "KEB_TOKEN": "not-a-jwt"}
    time = SimTime(keb)
    result = watch(keb, time, orch(keb), env=env)
    assert result.code == 5
    assert "401 Unauthorized" in result.err
    assert time.slept == []  # retrying cannot fix it: no reconnecting


def test_keb_down_shorter_than_give_up_after_is_ridden_out(keb_factory: Any, watch: Watch) -> None:
    keb = keb_factory("small")
    state = {"down": False}

    def outage(t: float) -> None:
        if 300 <= t < 500 and not state["down"]:
            keb.server.stop()
            state["down"] = True
        elif t >= 500 and state["down"]:
            keb.restart()
            state["down"] = False

    time = SimTime(keb, on_sleep=outage)
    result = watch(keb, time, orch(keb), "--give-up-after", "5m")
    assert result.code == 0, result.err
    notices = [line for line in result.err.splitlines() if "reconnecting" in line]
    assert len(notices) >= 3
    assert "reconnecting (attempt 1, next in 0.8s): " in notices[0]  # 1s with rng 0.5
    assert "reconnecting (attempt 3, next in 3.0s): " in notices[2]
    assert "KEB reachable again" in result.err
    assert "Traceback" not in result.err


def test_keb_down_longer_than_give_up_after_exits_5(keb_factory: Any, watch: Watch) -> None:
    keb = keb_factory("small")
    down_since: list[float] = []

    def outage(t: float) -> None:
        if t >= 60 and not down_since:
            keb.sim.faults.inject("502-html", count=None)
            down_since.append(t)  # the poll right after this sleep is the first to fail

    time = SimTime(keb, on_sleep=outage)
    result = watch(keb, time, orch(keb), "--give-up-after", "2m")
    assert result.code == 5
    assert "reconnecting (attempt 1, next in" in result.err
    last = result.err.splitlines()[-1]
    assert last.startswith(f"watcher: {orch(keb)}: KEB unreachable for 2m (")
    assert "502 Bad Gateway" in last
    assert time.clock() == pytest.approx(down_since[0] + 120.0)


def test_a_database_conflict_during_watch_is_not_called_a_keb_outage(
    keb_factory: Any, cli: Cli, watch: Watch
) -> None:
    """KEB answers every poll; the database refuses every commit (as when another process
    recorded the same change first): the watch says polls are failing, not that KEB is down."""
    keb = keb_factory("small")
    assert cli("--config", str(keb.config), "track", orch(keb)).code == 0
    with sqlite3.connect(keb.config.parent / "watcher.db") as db:
        db.execute(
            "CREATE TRIGGER clash BEFORE INSERT ON transitions "
            "BEGIN SELECT RAISE(ABORT, 'UNIQUE constraint failed: transitions.key'); END"
        )
    time = SimTime(keb)
    result = watch(keb, time, orch(keb), "--give-up-after", "2m")
    assert result.code == 5
    last = result.err.splitlines()[-1]
    assert last.startswith(f"watcher: {orch(keb)}: polls failing for 2m (")
    assert "UNIQUE constraint failed" in last
    assert "KEB unreachable" not in result.err
    assert keb.server.request_count > 0  # KEB was asked, and answered


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--interval", "5 minutes"], "--interval: bad duration"),
        (["--interval", "0s"], "--interval: must be more than 0s"),
        (["--give-up-after", "-1m"], "--give-up-after: bad duration"),
        (["--output", "yaml"], "Invalid value for '--output'"),
    ],
)
def test_usage_errors_exit_2(keb_factory: Any, watch: Watch, args: list[str], needle: str) -> None:
    keb = keb_factory("small")
    result = watch(keb, SimTime(keb), orch(keb), *args)
    assert result.code == 2
    assert needle in result.err


def test_no_config_and_no_keb_url_exits_2(
    keb_factory: Any, watch: Watch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keb = keb_factory("small")
    monkeypatch.chdir(tmp_path)
    result = watch(keb, SimTime(keb), orch(keb), config=False)
    assert result.code == 2
    assert "or set KEB_URL and KEB_TOKEN" in result.err


def test_unusable_database_exits_2(keb_factory: Any, watch: Watch, tmp_path: Path) -> None:
    keb = keb_factory("small")
    text = keb.config.read_text().replace(str(tmp_path / "watcher.db"), str(tmp_path))
    keb.config.write_text(text)  # storage.path names a directory
    result = watch(keb, SimTime(keb), orch(keb))
    assert result.code == 2
    assert result.err.startswith(f"watcher: {tmp_path}: cannot open database")


def test_notify_without_slack_says_so_and_keeps_the_exit_code(
    keb_factory: Any, watch: Watch
) -> None:
    keb = keb_factory("small")
    keb.sim.run_until_finished()
    result = watch(keb, SimTime(keb), orch(keb), "--notify")
    assert result.code == 0
    assert result.err == "watcher: --notify: notifications are not configured\n"

    got: list[Summary] = []

    async def on_finished(summary: Summary, app: Watcher) -> None:
        got.append(summary)

    result = watch(keb, SimTime(keb), orch(keb), "--notify", on_finished=on_finished)
    assert result.code == 0
    assert result.err == ""
    assert [(s.outcome, s.state) for s in got] == [(WatchOutcome.SUCCEEDED, "succeeded")]
    assert watch(keb, SimTime(keb), orch(keb), on_finished=on_finished).code == 0
    assert len(got) == 1  # without --notify the hook is not called


# -- golden outputs ----------------------------------------------------------------------


def _operation_line(line: str) -> str | None:
    if line.startswith("{"):
        event = json.loads(line)
        return event["time"] if event["type"] == "transition" and event["operationID"] else None
    m = re.match(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)  c-", line)
    return m.group(1) if m else None


def normalise(text: str) -> str:
    """Operations that changed in the same poll are sorted (the engine records them in an
    order that varies with PYTHONHASHSEED), then UUIDs become <id1>, <id2>, ... in order of
    appearance. Times need no normalising: the watch's clocks are the simulator's."""
    lines: list[str] = []
    for key, group in itertools.groupby(text.splitlines(), key=_operation_line):
        items = list(group)
        lines.extend(sorted(items) if key is not None else items)
    ids: dict[str, str] = {}

    def name(m: re.Match[str]) -> str:
        return ids.setdefault(m.group(0), f"<id{len(ids) + 1}>")

    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    return re.sub(uuid, name, "\n".join(lines) + "\n")


GOLDEN_PLAIN = """\
2024-05-14 08:00:00 UTC  baseline: pending, operations 0
2024-05-14 08:05:00 UTC  orchestration pending -> in progress: "Scheduled 12 operations"
2024-05-14 08:05:00 UTC  c-3b6fe50 <id1>: added pending
2024-05-14 08:05:00 UTC  c-414c343 <id2>: added pending
2024-05-14 08:05:00 UTC  c-414c343 <id2>: pending -> in progress -> succeeded "Operation succeeded"
2024-05-14 08:05:00 UTC  c-64b2d2b <id3>: added pending
2024-05-14 08:05:00 UTC  c-6ec9d28 <id4>: added pending
2024-05-14 08:05:00 UTC  c-6ec9d28 <id4>: pending -> in progress
2024-05-14 08:05:00 UTC  c-81f9c1f <id5>: added pending
2024-05-14 08:05:00 UTC  c-9403560 <id6>: added pending
2024-05-14 08:05:00 UTC  c-a11d459 <id7>: added pending
2024-05-14 08:05:00 UTC  c-b9d179e <id8>: added pending
2024-05-14 08:05:00 UTC  c-b9d179e <id8>: pending -> in progress
2024-05-14 08:05:00 UTC  c-c2cd789 <id9>: added pending
2024-05-14 08:05:00 UTC  c-c2cd789 <id9>: pending -> in progress
2024-05-14 08:05:00 UTC  c-d707107 <id10>: added pending
2024-05-14 08:05:00 UTC  c-e1fab9d <id11>: added pending
2024-05-14 08:05:00 UTC  c-e6c3f33 <id12>: added pending
2024-05-14 08:05:00 UTC  c-e6c3f33 <id12>: pending -> in progress -> succeeded "Operation succeeded"
2024-05-14 08:10:00 UTC  c-64b2d2b <id3>: pending -> in progress
2024-05-14 08:10:00 UTC  c-6ec9d28 <id4>: in progress -> succeeded "Operation succeeded"
2024-05-14 08:10:00 UTC  c-81f9c1f <id5>: pending -> in progress
2024-05-14 08:10:00 UTC  c-a11d459 <id7>: pending -> in progress -> succeeded "Operation succeeded"
2024-05-14 08:10:00 UTC  c-b9d179e <id8>: in progress -> succeeded "Operation succeeded"
2024-05-14 08:10:00 UTC  c-c2cd789 <id9>: in progress -> succeeded "Operation succeeded"
2024-05-14 08:10:00 UTC  c-e1fab9d <id11>: pending -> in progress
2024-05-14 08:15:00 UTC  c-3b6fe50 <id1>: pending -> in progress
2024-05-14 08:15:00 UTC  c-64b2d2b <id3>: in progress -> succeeded "Operation succeeded"
2024-05-14 08:15:00 UTC  c-81f9c1f <id5>: in progress -> succeeded "Operation succeeded"
2024-05-14 08:15:00 UTC  c-9403560 <id6>: pending -> in progress
2024-05-14 08:15:00 UTC  c-d707107 <id10>: pending -> in progress
2024-05-14 08:15:00 UTC  c-e1fab9d <id11>: in progress -> succeeded "Operation succeeded"
2024-05-14 08:20:00 UTC  c-3b6fe50 <id1>: in progress -> succeeded "Operation succeeded"
2024-05-14 08:20:00 UTC  c-9403560 <id6>: in progress -> succeeded "Operation succeeded"
2024-05-14 08:20:00 UTC  c-d707107 <id10>: in progress -> succeeded "Operation succeeded"
2024-05-14 08:20:00 UTC  orchestration in progress -> succeeded: "Scheduled 12 operations"
2024-05-14 08:20:00 UTC  summary: <id13>: orchestration succeeded; operations 12: 12 succeeded; 12 completed in 20m watched; exit 0
"""  # noqa: E501

GOLDEN_JSON = """\
{"type":"transition","time":"2024-05-14T08:10:00+00:00","orchestrationID":"<id1>","state":"in progress","kind":"baseline","operationID":null,"runtimeID":null,"shootName":null,"from":null,"to":"in progress","via":[],"description":"Scheduled 12 operations","detail":{"operations":12,"counts":{"in progress":3,"pending":3,"succeeded":6}},"key":"<id1>:baseline","counts":{"in progress":3,"pending":3,"succeeded":6}}
{"type":"status","time":"2024-05-14T08:10:00+00:00","orchestrationID":"<id1>","state":"in progress","orchestrationType":"upgradeCluster","description":"Scheduled 12 operations","operations":12,"counts":{"in progress":3,"pending":3,"succeeded":6},"elapsed":0.0,"interval":300.0,"stuck":null}
{"type":"reconnecting","time":"2024-05-14T08:15:00+00:00","orchestrationID":"<id1>","state":"in progress","attempt":1,"nextIn":0.75,"failingFor":0.0,"reason":"KEB GET /orchestrations/<id1>: 500 Internal Server Error: while getting orchestrations: dbr: failed to connect to database: connection refused (simulated fault)","counts":{"in progress":3,"pending":3,"succeeded":6}}
{"type":"transition","time":"2024-05-14T08:15:00.750000+00:00","orchestrationID":"<id1>","state":"in progress","kind":"operation_completed","operationID":"<id2>","runtimeID":"<id3>","shootName":"c-64b2d2b","from":"in progress","to":"succeeded","via":[],"description":"Operation succeeded","detail":{},"key":"<id1>:op:<id2>:in progress>succeeded","counts":{"in progress":3,"succeeded":9}}
{"type":"transition","time":"2024-05-14T08:15:00.750000+00:00","orchestrationID":"<id1>","state":"in progress","kind":"operation_completed","operationID":"<id4>","runtimeID":"<id5>","shootName":"c-e1fab9d","from":"in progress","to":"succeeded","via":[],"description":"Operation succeeded","detail":{},"key":"<id1>:op:<id4>:in progress>succeeded","counts":{"in progress":3,"succeeded":9}}
{"type":"transition","time":"2024-05-14T08:15:00.750000+00:00","orchestrationID":"<id1>","state":"in progress","kind":"operation_completed","operationID":"<id6>","runtimeID":"<id7>","shootName":"c-81f9c1f","from":"in progress","to":"succeeded","via":[],"description":"Operation succeeded","detail":{},"key":"<id1>:op:<id6>:in progress>succeeded","counts":{"in progress":3,"succeeded":9}}
{"type":"transition","time":"2024-05-14T08:15:00.750000+00:00","orchestrationID":"<id1>","state":"in progress","kind":"operation_state","operationID":"<id8>","runtimeID":"<id9>","shootName":"c-3b6fe50","from":"pending","to":"in progress","via":[],"description":"cluster upgrade in progress","detail":{},"key":"<id1>:op:<id8>:pending>in progress","counts":{"in progress":3,"succeeded":9}}
{"type":"transition","time":"2024-05-14T08:15:00.750000+00:00","orchestrationID":"<id1>","state":"in progress","kind":"operation_state","operationID":"<id10>","runtimeID":"<id11>","shootName":"c-d707107","from":"pending","to":"in progress","via":[],"description":"cluster upgrade in progress","detail":{},"key":"<id1>:op:<id10>:pending>in progress","counts":{"in progress":3,"succeeded":9}}
{"type":"transition","time":"2024-05-14T08:15:00.750000+00:00","orchestrationID":"<id1>","state":"in progress","kind":"operation_state","operationID":"<id12>","runtimeID":"<id13>","shootName":"c-9403560","from":"pending","to":"in progress","via":[],"description":"cluster upgrade in progress","detail":{},"key":"<id1>:op:<id12>:pending>in progress","counts":{"in progress":3,"succeeded":9}}
{"type":"status","time":"2024-05-14T08:15:00.750000+00:00","orchestrationID":"<id1>","state":"in progress","orchestrationType":"upgradeCluster","description":"Scheduled 12 operations","operations":12,"counts":{"in progress":3,"succeeded":9},"elapsed":300.75,"interval":300.0,"stuck":null}
{"type":"summary","time":"2024-05-14T08:16:00+00:00","orchestrationID":"<id1>","state":"in progress","outcome":"timeout","exitCode":4,"reason":"--timeout 6m reached; orchestration still in progress","description":"Scheduled 12 operations","operations":12,"counts":{"in progress":3,"succeeded":9},"completed":3,"elapsed":360.0,"failures":[],"from":"in progress","to":"in progress"}
"""  # noqa: E501


def test_plain_output_golden(keb_factory: Any, watch: Watch) -> None:
    keb = keb_factory("small")
    result = watch(keb, SimTime(keb), orch(keb), "--interval", "5m")
    assert result.code == 0
    assert normalise(result.out) == GOLDEN_PLAIN


def test_json_output_golden_and_every_line_parses(keb_factory: Any, watch: Watch) -> None:
    """Started mid-way, one 500 from KEB, ended by --timeout: every type of line once."""
    keb = keb_factory("small")
    keb.sim.advance(600)

    def blip(t: float) -> None:
        if t == 900:
            keb.sim.faults.inject("5xx", count=1)

    time = SimTime(keb, on_sleep=blip)
    result = watch(keb, time, orch(keb), "-o", "json", "--interval", "5m", "--timeout", "6m")
    assert result.code == 4
    events = [json.loads(line) for line in result.out.splitlines()]
    assert all({"type", "time", "orchestrationID", "state"} <= set(e) for e in events)
    assert {e["type"] for e in events} == {"transition", "status", "reconnecting", "summary"}
    assert normalise(result.out) == GOLDEN_JSON


def test_notify_sends_the_final_summary_to_slack(keb_factory: Any, watch: Watch) -> None:
    """`--notify` with Slack configured: the card and the outcome reach the channel."""
    from tests.fakeslack import FakeSlack

    keb = keb_factory("failures")
    with FakeSlack(channels={"#kyma-upgrades": "C0KYMA001"}, post_interval=0.0) as slack:
        keb.config.write_text(
            keb.config.read_text()
            + f'\n[slack]\ntoken = "xoxb-test-token"\nchannel = "#kyma-upgrades"\n'
            f'base_url = "{slack.api_url}"\n'
        )
        result = watch(keb, SimTime(keb), orch(keb), "--notify", "--track")
        assert result.code == 1, result.err  # the orchestration failed
        assert "--notify" not in result.err
        messages = slack.messages("C0KYMA001")
        final = [m for m in messages if m.reply_broadcast]
        assert len(final) == 1
        assert "KEB upgrade failed" in final[0].text
        assert messages[0].thread_ts is None  # the card, with the outcome in its thread
        assert final[0].thread_ts == messages[0].ts
