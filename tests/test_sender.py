"""The sender against a fake Slack over real HTTP: order, coalescing, crash recovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.fakeslack import FakeSlack
from watcher.core.intents import Intent
from watcher.core.kinds import Kind, priority
from watcher.notify.budget import RateBudget
from watcher.notify.render import Renderer
from watcher.notify.samples import SAMPLES
from watcher.notify.sender import Sender
from watcher.notify.slack import BotSlack, metadata
from watcher.store.database import Store
from watcher.store.outbox import Outbox

CHANNEL = "C0KYMA001"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(channels={"#kyma-upgrades": CHANNEL}, post_interval=0.0) as fake:
        yield fake


def enqueue(store: Store, *intents: Intent) -> None:
    store.enqueue(intents, NOW)


def intent(kind: str, key: str) -> Intent:
    return Intent(key, kind, "o1", priority(Kind(kind)), dict(SAMPLES[kind]), None)


def sender(store: Store, slack: FakeSlack) -> Sender:
    return Sender(
        Outbox(store),
        BotSlack("xoxb-test-token", slack.api_url),
        Renderer(),
        default_channel="#kyma-upgrades",
        budget=RateBudget(post_interval=0.0),
        clock=lambda: NOW,
    )


def deliver(s: Sender) -> None:
    asyncio.run(s.deliver(deadline=time.monotonic() + 20))


def test_finals_and_failures_before_progress_and_only_the_newest_card_edit(
    tmp_path: Path, slack: FakeSlack
) -> None:
    store = Store(tmp_path / "w.db")
    enqueue(store, intent("tracking_started", "o1:card"))
    deliver(sender(store, slack))
    enqueue(
        store,
        intent("progress", "o1:progress:1"),
        intent("progress", "o1:progress:2"),
        intent("failure_digest", "o1:failures:1"),
        intent("progress", "o1:progress:3"),
        intent("finished", "o1:finished:1"),
    )
    before = len(slack.calls)
    deliver(sender(store, slack))
    calls = [
        (c.method, (c.args.get("metadata") or {}).get("event_payload", {}).get("key"))
        for c in slack.calls[before:]
    ]
    assert [method for method, _ in calls] == ["chat.postMessage", "chat.update"]
    # The final summary lists every failure: the digest still pending is absorbed into it,
    # so that the summary is the run's last reply.
    assert calls[0][1] == "o1:finished:1"
    entries = {e.key: e for e in Outbox(store).entries(("sent", "superseded"))}
    statuses = {key: e.status for key, e in entries.items()}
    assert statuses["o1:progress:1"] == statuses["o1:progress:2"] == "superseded"
    assert statuses["o1:failures:1"] == "superseded"
    assert "absorbed into the final summary" in (entries["o1:failures:1"].last_error or "")
    assert statuses["o1:progress:3"] == "sent"
    [card] = [m for m in slack.messages(CHANNEL) if m.thread_ts is None]
    assert card.edits == 1
    replies = [m for m in slack.messages(CHANNEL) if m.ts != card.ts]
    assert len(replies) == 1
    assert all(m.thread_ts == card.ts for m in replies)


def test_a_post_that_reached_slack_just_before_a_crash_is_not_sent_again(
    tmp_path: Path, slack: FakeSlack
) -> None:
    store = Store(tmp_path / "w.db")
    enqueue(store, intent("tracking_started", "o1:card"))
    deliver(sender(store, slack))
    enqueue(store, intent("finished", "o1:finished:1"))
    outbox = Outbox(store)
    [entry] = outbox.waiting()
    # The process posts the message and dies before it can record Slack's ts.
    outbox.step(None, entry, NOW)
    card = outbox.card("o1")
    assert card is not None
    BotSlack("xoxb-test-token", slack.api_url).post(
        card.channel_id,
        Renderer().render("finished", entry.payload).message,
        metadata("finished", entry.key, "o1"),
        thread_ts=card.ts,
        broadcast=True,
    )
    posts = len([c for c in slack.calls if c.method == "chat.postMessage"])
    deliver(sender(store, slack))  # the next run
    assert len([c for c in slack.calls if c.method == "chat.postMessage"]) == posts
    [sent] = [e for e in outbox.entries(("sent",)) if e.key == "o1:finished:1"]
    assert sent.slack_ts is not None


def test_a_429_is_honoured_and_nothing_is_retried_in_a_tight_loop(
    tmp_path: Path, slack: FakeSlack
) -> None:
    store = Store(tmp_path / "w.db")
    slack.fail_next("chat.postMessage", error="ratelimited", count=1)  # Retry-After: 1
    enqueue(store, intent("tracking_started", "o1:card"))
    s = sender(store, slack)
    s.clock = lambda: datetime.now(UTC)
    deliver(s)
    posts = [c for c in slack.calls if c.method == "chat.postMessage"]
    assert [c.status for c in posts] == [429, 200]
    assert posts[1].at - posts[0].at >= 1.0
    assert slack.violations == []


def test_check_config_reports_a_broken_template_in_one_line(tmp_path: Path, cli: Cli) -> None:
    templates = tmp_path / "t"
    templates.mkdir()
    (templates / "finished.j2").write_text("{% if %}")
    config = tmp_path / "watcher.toml"
    config.write_text(f'[keb]\nurl = "http://127.0.0.1:9"\n[templates]\ndir = "{templates}"\n')
    result = cli("--config", str(config), "check-config")
    assert result.code == 2
    assert "template finished.j2, line 1" in result.err
    assert len(result.err.strip().splitlines()) == 1
