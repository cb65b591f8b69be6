"""Notifications that outlive a Slack outage, end to end against the fake Slack over real HTTP:
giving up on time (never on a count), 429s that cost nothing, and a crash between a post and
saving its ``ts`` (a fault injected at exactly that point)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.fakeslack import FakeSlack
from tests.test_notify_e2e import CHANNEL, Setup, make_setup, setups
from tests.test_notify_pacing import key_of, thread_of
from watcher.app import Watcher
from watcher.config.loader import load_config
from watcher.core.intents import Intent
from watcher.core.kinds import Kind, priority
from watcher.notify.budget import RateBudget
from watcher.notify.render import Renderer
from watcher.notify.samples import SAMPLES
from watcher.notify.sender import Sender
from watcher.notify.slack import BotSlack
from watcher.sim import Simulator
from watcher.store.database import Store
from watcher.store.outbox import AttemptResult, Entry, Outbox

__all__ = ["setups"]

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_an_outage_longer_than_the_old_attempt_budget_loses_nothing(
    tmp_path: Path, setups: list[Setup]
) -> None:
    """Slack is down for 3 hours of KEB time while the orchestration ends: every
    notification is retried many more times than the 8 attempts that used to kill it, none
    dies, and the first poll after Slack is back delivers everything, in event order, with
    the final summary last."""
    sim = Simulator.from_scenario("failures", seed=4)
    s = make_setup(tmp_path, sim, slack_options={"post_interval": 0.0})
    setups.append(s)
    s.config.write_text(s.config.read_text() + 'digest_interval = "0s"\n')
    config = load_config(s.config, {})
    budget = RateBudget(post_interval=0.0)
    with Watcher(config, clock=lambda: sim.now, budget=budget) as app:
        app.track(sim.orchestration_ids(), None)
        assert asyncio.run(app.poll(deadline=30)).undelivered == 0  # the card
        s.slack.outage(10**6)
        for _ in range(90):  # 3 hours: 90 polls, 2 minutes of KEB time apart
            sim.advance(120)
            outcome = asyncio.run(app.poll(deadline=0.2))
            assert not outcome.cycle.failed
            assert outcome.undelivered > 0
        assert sim.all_finished()
        waiting = app.outbox().entries(("pending", "failed", "dead"))
        assert {e.status for e in waiting} == {"pending"}  # nothing dead, nothing failed
        assert "finished" in {e.kind for e in waiting}
        assert max(e.attempts for e in waiting) > 8  # the old budget, long spent
        s.slack.clear_failures()
        sim.advance(120)
        outcome = asyncio.run(app.poll(deadline=30))
        assert outcome.undelivered == 0
        assert app.outbox().entries(("pending", "failed", "dead")) == []
    _card, replies = thread_of(s.slack)
    keys = [key_of(m) for m in replies]
    assert len(keys) == len(set(keys)), Counter(keys)
    kinds = [k.split(":")[1] for k in keys]
    assert kinds[-1] == "finished", kinds
    with Store(tmp_path / "watcher.db") as store:
        ids = {e.key: e.id for e in Outbox(store).entries(("sent",))}
    assert [ids[k] for k in keys] == sorted(ids[k] for k in keys)  # event order


CARD_KEY = "o1:card"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(channels={"#kyma-upgrades": CHANNEL}, post_interval=0.0, retry_after=0) as f:
        yield f


def sender(store: Store, slack: FakeSlack, **kw: Any) -> Sender:
    args: dict[str, Any] = {
        "default_channel": "#kyma-upgrades",
        "budget": RateBudget(post_interval=0.0),
        "rng": lambda: 0.0,
    }
    args.update(kw)
    return Sender(Outbox(store), BotSlack("xoxb-test-token", slack.api_url), Renderer(), **args)


def enqueue(store: Store, *kinds: str) -> None:
    store.enqueue(
        [
            Intent(f"o1:{kind}:{i}", kind, "o1", priority(Kind(kind)), dict(SAMPLES[kind]), None)
            for i, kind in enumerate(kinds)
        ],
        NOW,
    )


def deliver(s: Sender, seconds: float = 20) -> None:
    asyncio.run(s.deliver(deadline=time.monotonic() + seconds))


def test_a_429_storm_then_a_503_is_delivered(tmp_path: Path, slack: FakeSlack) -> None:
    store = Store(tmp_path / "w.db")
    enqueue(store, "tracking_started")
    slack.fail_next("chat.postMessage", error="ratelimited", count=12)  # Retry-After: 0
    slack.fail_next("chat.postMessage", error="service_unavailable", status=503)
    deliver(sender(store, slack))
    [entry] = Outbox(store).entries(("sent", "pending", "dead"))
    assert entry.status == "sent"
    posts = [c.status for c in slack.calls if c.method == "chat.postMessage"]
    assert posts == [429] * 12 + [503, 200]
    assert len(slack.messages(CHANNEL)) == 1


class Crash(BaseException):
    """The process dies here (a BaseException: nothing catches it on the way out)."""


def test_a_crash_between_the_post_and_saving_its_ts_posts_nothing_twice(
    tmp_path: Path, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "w.db")
    enqueue(store, "tracking_started")
    deliver(sender(store, slack))
    store.enqueue(
        [Intent("o1:finished:1", "finished", "o1", 1, dict(SAMPLES["finished"]), None)], NOW
    )
    real = Outbox.step

    def dies_saving_the_ts(
        self: Outbox, done: AttemptResult | None, begin: Entry | None, now: datetime
    ) -> None:
        if done is not None and done.status == "sent":
            raise Crash  # Slack has the message; its ts is never written
        real(self, done, begin, now)

    monkeypatch.setattr(Outbox, "step", dies_saving_the_ts)
    with pytest.raises(Crash):
        deliver(sender(store, slack))
    monkeypatch.setattr(Outbox, "step", real)
    [ambiguous] = Outbox(store).entries(("pending",))
    assert ambiguous.attempts == 1
    assert ambiguous.slack_ts is None
    posted = [m for m in slack.messages(CHANNEL) if m.metadata and key_of(m) == "o1:finished:1"]
    assert len(posted) == 1
    deliver(sender(store, slack))  # the next run
    posted = [m for m in slack.messages(CHANNEL) if m.metadata and key_of(m) == "o1:finished:1"]
    assert len(posted) == 1  # found by its key, not posted again
    [sent] = [e for e in Outbox(store).entries(("sent",)) if e.key == "o1:finished:1"]
    assert sent.slack_ts == posted[0].ts


def test_a_notification_given_up_is_named_counted_and_announced_once_slack_is_back(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    sim = Simulator.from_scenario("failures", seed=4)
    s = make_setup(tmp_path, sim, slack_options={"post_interval": 0.0})
    setups.append(s)
    cfg = str(s.config)
    s.config.write_text(s.config.read_text() + 'digest_interval = "0s"\ngive_up_after = "1s"\n')
    cli("--config", cfg, "track", *sim.orchestration_ids())
    assert cli("--config", cfg, "poll").code == 0  # the card
    s.slack.outage(10**6)
    sim.advance(600)
    failed = cli("--config", cfg, "poll")
    assert failed.code == 1
    dead = cli("--config", cfg, "outbox", "list", "--status", "dead", "-o", "json").json()
    assert dead
    for entry in dead:  # each named, with what happened
        assert f"watcher: outbox {entry['id']} ({entry['kind']}, " in failed.err
        assert "given up: Slack" in failed.err
    # Slack is back: one short message says how many were given up and how to see them.
    s.slack.clear_failures()
    back = cli("--config", cfg, "poll")
    assert back.code == 1, back.err  # still given up: named again
    assert f"watcher: outbox {dead[0]['id']} " in back.err
    notices = [m for m in s.slack.messages(CHANNEL) if "gave up on" in m.text]
    assert len(notices) == 1, [m.text for m in notices]
    assert f"gave up on {len(dead)} notification" in notices[0].text
    assert "watcher outbox list --status dead" in notices[0].text
    # Sent again on request, in event order, the final summary last.
    assert cli("--config", cfg, "outbox", "retry", "--all").code == 0
    while not sim.all_finished():
        sim.advance(600)
        cli("--config", cfg, "poll")
    assert cli("--config", cfg, "poll").code == 0
    [card] = [m for m in s.slack.messages(CHANNEL) if m.metadata and key_of(m).endswith(":card")]
    keys = [key_of(m) for m in s.slack.messages(CHANNEL) if m.thread_ts == card.ts]
    assert len(keys) == len(set(keys))
    with Store(tmp_path / "watcher.db") as store:
        ids = {e.key: e.id for e in Outbox(store).entries(("sent",))}
    assert [ids[k] for k in keys] == sorted(ids[k] for k in keys)
    assert keys[-1].split(":")[1] == "finished"


def test_a_permanent_answer_waits_for_its_fix_then_retry_all_keeps_the_thread_in_order(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    sim = Simulator.from_scenario("failures", seed=4)
    s = make_setup(tmp_path, sim, slack_options={"post_interval": 0.0})
    setups.append(s)
    cfg = str(s.config)
    s.config.write_text(s.config.read_text() + 'digest_interval = "0s"\n')
    cli("--config", cfg, "track", *sim.orchestration_ids())
    assert cli("--config", cfg, "poll").code == 0  # the card
    sim.advance(300)
    assert cli("--config", cfg, "poll").code == 0
    s.slack.remove_bot(CHANNEL)  # someone removed the app from the channel
    checked = cli("--config", cfg, "check-config", "--online")
    assert checked.code == 2
    assert (
        "slack.channel #kyma-upgrades: not_in_channel; fix: invite the app to the channel "
        "(/invite @your-app)" in checked.err
    )
    errors = []
    for _ in range(60):
        sim.advance(300)
        errors.append(cli("--config", cfg, "poll").err)
        if sim.all_finished():
            break
    named = [e for e in errors if "waits for a fix: Slack chat." in e]
    assert named
    assert "not_in_channel; fix: invite the app to the channel (/invite @your-app)" in named[-1]
    calls = len(s.slack.calls)
    assert cli("--config", cfg, "poll").code == 1
    posts = [c for c in s.slack.calls[calls:] if c.method.startswith("chat.")]
    assert posts == []  # not retried blindly
    waiting = cli("--config", cfg, "outbox", "list", "-o", "json").json()
    assert {e["status"] for e in waiting} >= {"failed"}
    assert "finished" in {e["kind"] for e in waiting}
    # Fixed: invited back, and everything that waited is sent in event order.
    s.slack.remove_bot(CHANNEL, removed=False)
    assert cli("--config", cfg, "check-config", "--online").code == 0
    assert cli("--config", cfg, "outbox", "retry", "--all").code == 0
    assert cli("--config", cfg, "poll").code == 0
    [card] = [m for m in s.slack.messages(CHANNEL) if m.metadata and key_of(m).endswith(":card")]
    keys = [key_of(m) for m in s.slack.messages(CHANNEL) if m.thread_ts == card.ts]
    assert len(keys) == len(set(keys))
    with Store(tmp_path / "watcher.db") as store:
        outbox = Outbox(store)
        ids = {e.key: e.id for e in outbox.entries(("sent",))}
        progress = [e for e in outbox.entries(("sent", "superseded")) if e.kind == "progress"]
    assert [ids[k] for k in keys] == sorted(ids[k] for k in keys)
    assert keys[-1].split(":")[1] == "finished"
    # The card shows the newest state: no older card state was sent after it.
    newest = max(e.id for e in progress)
    sent_last = max((e for e in progress if e.status == "sent"), key=lambda e: e.sent_at or NOW)
    assert sent_last.id == newest


def test_a_long_lived_sender_catches_up_within_a_minute_of_slacks_return(
    tmp_path: Path, slack: FakeSlack
) -> None:
    """`watcher run` keeps one sender: after a failure that put Slack five minutes into
    backoff, it asks Slack (auth.test, at most once a minute) and delivers as soon as it
    answers, not five minutes later."""
    store = Store(tmp_path / "w.db")
    enqueue(store, "tracking_started")
    now = [NOW]
    s = sender(store, slack, clock=lambda: now[0], rng=lambda: 0.99)
    with sqlite3.connect(tmp_path / "w.db") as db:  # failing for an hour already
        db.execute("UPDATE outbox SET failing_since = ?", ((NOW - timedelta(hours=1)).isoformat(),))
    slack.outage(1)
    deliver(s, 1)
    [entry] = Outbox(store).entries(("pending",))
    assert entry.next_attempt_at == NOW + timedelta(minutes=5)  # capped, jitter included
    probes = len([c for c in slack.calls if c.method == "auth.test"])
    now[0] = NOW + timedelta(seconds=30)
    deliver(s, 1)
    assert len([c for c in slack.calls if c.method == "auth.test"]) == probes  # not yet
    assert Outbox(store).entries(("sent",)) == []
    now[0] = NOW + timedelta(seconds=61)
    before = len(slack.calls)
    deliver(s, 1)
    methods = [c.method for c in slack.calls[before:]]
    assert methods[0] == "auth.test"
    assert methods[-1] == "chat.postMessage"
    assert [e.kind for e in Outbox(store).entries(("sent",))] == ["tracking_started"]


def test_the_last_delivery_before_a_stop_sends_a_digest_waiting_for_its_clock(
    tmp_path: Path, slack: FakeSlack
) -> None:
    store = Store(tmp_path / "w.db")
    enqueue(store, "tracking_started", "failure_digest")
    s = sender(store, slack, clock=lambda: NOW, digest_interval=600.0)
    deliver(s)
    store.enqueue(
        [Intent("o1:failures:2", "failure_digest", "o1", 2, dict(SAMPLES["failure_digest"]))],
        NOW,
    )
    deliver(s)
    [held] = Outbox(store).entries(("pending",))
    assert held.next_attempt_at is not None  # on its clock: ten minutes after the first
    asyncio.run(s.deliver(deadline=time.monotonic() + 20, final=True))  # `run` stops
    assert Outbox(store).entries(("pending",)) == []
    assert "o1:failures:2" in {e.key for e in Outbox(store).entries(("sent",))}
