"""Stuck for selections (issue 22, second wave), end to end: ``watcher sim --api runtimes`` as
KEB over HTTP (its hanging update), the fake Slack Web API over HTTP, the real app with the
simulator's clock (``poll.fleet_stuck_after``), and the real CLI for ``fleet show``."""

from __future__ import annotations

import asyncio
import html
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cli
from tests.fakeslack import FakeSlack, Message
from watcher.app import Watcher
from watcher.config.loader import load_config
from watcher.notify.budget import RateBudget
from watcher.sim.fleet import Fleet
from watcher.sim.fleet_server import FleetServer, FleetSim, demo_fleet, runtime_token

CHANNEL = "C0KYMA001"
EPOCH = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
FAST = RateBudget(post_interval=0.01, updates_per_minute=10_000)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Fleet, FakeSlack, Path]]:
    fleet = demo_fleet(seed=1, size=12)
    with (
        FleetServer(FleetSim(fleet)) as server,
        FakeSlack(channels={"#kyma-upgrades": CHANNEL}, post_interval=0.0) as slack,
    ):
        config = tmp_path / "watcher.toml"
        config.write_text(
            f'[keb]\nurl = "{server.url}"\ntoken = "{runtime_token()}"\ntimeout = "5s"\n'
            f'retries = 1\n\n[storage]\npath = "{tmp_path / "watcher.db"}"\n\n'
            '[poll]\nfull_sweep_every = "1h"\nfleet_stuck_after = "1h"\nalert_after = "10m"\n\n'
            f'[slack]\ntoken = "xoxb-test-token"\nchannel = "#kyma-upgrades"\n'
            f'base_url = "{slack.api_url}"\n'
        )
        yield fleet, slack, config


def kind_of(message: Message) -> str:
    assert message.metadata is not None
    return str(message.metadata["event_payload"]["kind"])


def replies(slack: FakeSlack) -> list[Message]:
    ours = [m for m in slack.messages(CHANNEL) if m.metadata]
    [card] = [m for m in ours if m.thread_ts is None]
    return [m for m in ours if m.thread_ts == card.ts]


def test_a_hung_update_is_stuck_once_shown_on_the_card_and_in_show_then_unstuck(
    cli: Cli, world: tuple[Fleet, FakeSlack, Path]
) -> None:
    """The simulator's hanging update: with ``fleet_stuck_after = "1h"`` and a poll every 5
    minutes, one ``stuck`` reply in the selection's thread naming shoot, subaccount and
    instance (not repeated while it stays stuck), the card and ``fleet show`` show it, then
    one ``unstuck`` reply once it moved on, and the card no longer shows it."""
    fleet, slack, path = world
    config = load_config(path, {})
    assert config.poll.fleet_stuck_after == 3600
    hung = fleet.instances[list(fleet.instances)[1]]
    shown_stuck: list[Any] = []
    assert cli("--config", str(path), "fleet", "add", "demo").code == 0
    with Watcher(config, clock=lambda: EPOCH + timedelta(seconds=fleet.now), budget=FAST) as app:
        for _ in range(20):
            outcome = asyncio.run(app.poll(deadline=30))
            assert all(r.ok for r in outcome.fleet), outcome.fleet
            assert outcome.undelivered == 0
            view = cli("--config", str(path), "fleet", "show", "demo", "-o", "json").json()
            shown_stuck.append(view["stuck"])
            fleet.advance(300)
        text = cli("--config", str(path), "fleet", "show", "demo").out
        op = hung.last_op()
        assert op is not None
        assert op.hang
        op.hang = False  # the update moves on
        for _ in range(6):
            asyncio.run(app.poll(deadline=30))
            fleet.advance(300)
    kinds = [kind_of(m) for m in replies(slack)]
    assert kinds.count("stuck") == 1, kinds
    assert kinds.count("unstuck") == 1, kinds
    assert kinds.index("stuck") < kinds.index("unstuck"), kinds
    stuck = replies(slack)[kinds.index("stuck")]
    body = stuck.text + json.dumps(stuck.blocks)
    assert "*1 stuck*" in stuck.text
    for name in (hung.shoot, hung.subaccount, hung.instance_id):
        assert name in body
    assert "update" in body
    assert stuck.metadata is not None
    assert stuck.metadata["event_payload"]["fleet"] == "demo"
    assert "orchestration_id" not in stuck.metadata["event_payload"]
    unstuck = replies(slack)[kinds.index("unstuck")]
    assert "moved on" in unstuck.text
    # `fleet show` showed it from about an hour after the baseline, and on every poll after.
    polls = [i for i, value in enumerate(shown_stuck) if value]
    assert polls == list(range(polls[0], len(shown_stuck))), shown_stuck
    assert 11 <= polls[0] <= 13
    item = shown_stuck[polls[0]]["items"][0]
    assert item["instanceId"] == hung.instance_id
    assert item["subaccountId"] == hung.subaccount
    assert item["kind"] == "update"
    assert f"stuck: {hung.instance_id}" in text
    # The card showed it while it lasted, and no longer once it moved on.
    edits = [c.args.get("text", "") for c in slack.calls if c.method == "chat.update" and c.ok]
    assert any("1 stuck" in e for e in edits)
    assert "stuck" not in edits[-1]


def test_fleet_stuck_after_0s_turns_it_off(
    cli: Cli, world: tuple[Fleet, FakeSlack, Path], tmp_path: Path
) -> None:
    fleet, slack, path = world
    path.write_text(
        path.read_text().replace('fleet_stuck_after = "1h"', 'fleet_stuck_after = "0s"')
    )
    config = load_config(path, {})
    assert cli("--config", str(path), "fleet", "add", "demo").code == 0
    with Watcher(config, clock=lambda: EPOCH + timedelta(seconds=fleet.now), budget=FAST) as app:
        for _ in range(6):
            asyncio.run(app.poll(deadline=30))
            fleet.advance(1800)
    kinds = [kind_of(m) for m in slack.messages(CHANNEL) if m.metadata]
    assert "stuck" not in kinds
    assert cli("--config", str(path), "fleet", "show", "demo", "-o", "json").json()["stuck"] is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_selections_alone_feed_the_blind_alert_and_its_recovery(
    cli: Cli, world: tuple[Fleet, FakeSlack, Path]
) -> None:
    """Only selections followed: KEB unreachable for longer than ``poll.alert_after`` (10m)
    gives one ``keb_unhealthy`` alert (not repeated while it lasts), one ``keb_recovered``
    when the selection answers again; nothing is lost (the selection's records stay)."""
    fleet, slack, path = world
    good = path.read_text()
    url = good.split('url = "', 1)[1].split('"', 1)[0]
    dead = good.replace(url, f"http://127.0.0.1:{free_port()}")
    assert cli("--config", str(path), "fleet", "add", "demo").code == 0
    clock = lambda: EPOCH + timedelta(seconds=fleet.now)  # noqa: E731

    def poll() -> list[Any]:
        with Watcher(load_config(path, {}), clock=clock, budget=FAST) as app:
            return asyncio.run(app.poll(deadline=30)).fleet

    [first] = poll()
    assert first.ok
    path.write_text(dead)
    kinds: list[list[str]] = []
    for _ in range(5):  # 0, 5, 10, 15, 20 minutes unreachable
        [report] = poll()
        assert not report.ok
        assert report.error
        shown = cli("--config", str(path), "fleet", "show", "demo", "-o", "json").json()
        assert shown["runtimes"] == first.runtimes  # the outage loses no record
        kinds.append([kind_of(m) for m in slack.messages(CHANNEL) if m.metadata])
        fleet.advance(300)
    assert "keb_unhealthy" not in kinds[1]  # 5 minutes: not yet
    assert kinds[-1].count("keb_unhealthy") == 1  # after 10 minutes, once
    path.write_text(good)
    assert all(r.ok for r in poll())
    after = [kind_of(m) for m in slack.messages(CHANNEL) if m.metadata]
    assert after.count("keb_recovered") == 1
    assert after.count("keb_unhealthy") == 1


def test_the_card_counts_what_finished_in_the_last_24_hours_not_only_the_last_cycle(
    cli: Cli, world: tuple[Fleet, FakeSlack, Path]
) -> None:
    """Polls every 5 minutes over the demo's first hours: the last card edit counts every
    operation that ended and every suspension, unsuspension and deprovisioning recorded in
    the last 24 hours, whichever cycle saw it; a day later they no longer count."""
    fleet, slack, path = world
    config = load_config(path, {})
    assert cli("--config", str(path), "fleet", "add", "demo").code == 0
    clock = lambda: EPOCH + timedelta(seconds=fleet.now)  # noqa: E731
    with Watcher(config, clock=clock, budget=FAST) as app:
        for _ in range(30):
            asyncio.run(app.poll(deadline=30))
            fleet.advance(300)
    history = cli("--config", str(path), "fleet", "show", "demo", "-o", "json").json()["history"]
    expected: dict[str, int] = {}
    for h in history:
        if h["change"] == "operation_ended":
            expected[h["to_state"]] = expected.get(h["to_state"], 0) + 1
        elif h["change"] in ("suspended", "unsuspended", "deprovisioned", "runtime_appeared"):
            expected[h["change"]] = expected.get(h["change"], 0) + 1
    assert expected.get("failed", 0) >= 2
    assert len({h["at"] for h in history}) > 1  # recorded over several cycles
    edits = [c.args for c in slack.calls if c.method == "chat.update" and c.ok]
    last = edits[-1]["text"]
    assert "Finished in the last 24 hours" in last
    for what, n in expected.items():
        assert f"{n} × {what}" in last, (what, n, last)
    # A day later, with something new to show, what finished then no longer counts.
    fleet.advance(25 * 3600)
    fleet.update(list(fleet.instances)[2], fail=True)
    with Watcher(config, clock=clock, budget=FAST) as app:
        for _ in range(6):
            asyncio.run(app.poll(deadline=30))
            fleet.advance(600)
    last = [c.args for c in slack.calls if c.method == "chat.update" and c.ok][-1]["text"]
    assert "1 × failed" in last, last


def test_fleet_show_state_takes_loose_spellings_and_commas(
    cli: Cli, world: tuple[Fleet, FakeSlack, Path]
) -> None:
    fleet, _slack, path = world
    cfg = str(path)
    assert cli("--config", cfg, "fleet", "add", "demo").code == 0
    assert cli("--config", cfg, "poll").code == 0
    fleet.advance(3 * 3600)
    assert cli("--config", cfg, "poll").code == 0

    def shown(*states: str) -> set[str]:
        result = cli("--config", cfg, "fleet", "show", "demo", *states, "-o", "json")
        assert result.code == 0, result.err
        return {o["state"] for o in result.json()["operations"]}

    assert shown("--state", "failed") == {"failed"}
    assert shown("--state", "inprogress,FAILED") == {"in progress", "failed"}
    assert shown("--state", "In-Progress", "--state", "Failed") == {"in progress", "failed"}
    assert "succeeded" in shown("--state", "succeeded")
    bad = cli("--config", cfg, "fleet", "show", "demo", "--state", "running")
    assert bad.code == 2
    assert bad.err.count("\n") == 1
    assert "unknown state 'running'" in bad.err
    assert "inprogress" in bad.err


def test_the_dashboard_lists_selections_with_counts_failures_and_stuck(
    cli: Cli, world: tuple[Fleet, FakeSlack, Path]
) -> None:
    """The overview served over a real socket lists the selection: its runtimes, operations
    in progress, failures by reason and what is stuck (the hung update, after an hour)."""
    from tests.serving import serving
    from watcher.faces.web.routes import Dashboard

    fleet, _slack, path = world
    config = load_config(path, {})
    assert cli("--config", str(path), "fleet", "add", "demo").code == 0
    clock = lambda: EPOCH + timedelta(seconds=fleet.now)  # noqa: E731
    with Watcher(config, clock=clock, budget=FAST) as app:
        for _ in range(16):
            asyncio.run(app.poll(deadline=30))
            fleet.advance(300)
        dash = Dashboard(app, stale_after=3600)
        with serving(dash.routes(), dash.middleware()) as url:
            page = httpx.get(f"{url}/", timeout=10).text
    assert "Selections of runtimes" in page
    section = page.split('id="fleet"', 1)[1]
    assert '<tr data-selection="demo">' in section
    assert "× update" in section  # in progress by type
    hung = fleet.instances[list(fleet.instances)[1]]
    assert "1 stuck" in section
    assert hung.shoot in section
    failed_reasons = [
        f["reason"]
        for f in cli(
            "--config", str(path), "fleet", "show", "demo", "--state", "failed", "-o", "json"
        ).json()["operations"]
    ]
    assert failed_reasons
    for reason in failed_reasons:
        assert html.escape(reason, quote=False) in section


def test_turning_fleet_stuck_after_off_forgets_what_was_stuck_without_a_reply(
    cli: Cli, world: tuple[Fleet, FakeSlack, Path]
) -> None:
    fleet, slack, path = world
    assert cli("--config", str(path), "fleet", "add", "demo").code == 0
    clock = lambda: EPOCH + timedelta(seconds=fleet.now)  # noqa: E731

    def poll() -> None:
        with Watcher(load_config(path, {}), clock=clock, budget=FAST) as app:
            asyncio.run(app.poll(deadline=30))

    for _ in range(4):
        poll()
        fleet.advance(1800)
    show = ["--config", str(path), "fleet", "show", "demo", "-o", "json"]
    assert cli(*show).json()["stuck"]["count"] == 1
    path.write_text(path.read_text().replace('"1h"\nalert_after', '"0s"\nalert_after'))
    poll()
    assert cli(*show).json()["stuck"] is None
    kinds = [kind_of(m) for m in slack.messages(CHANNEL) if m.metadata]
    assert kinds.count("stuck") == 1
    assert "unstuck" not in kinds
