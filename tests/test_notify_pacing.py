"""The channel people read, end to end: the simulator as KEB, the fake Slack Web API over real
HTTP, the real configuration and the real sender. What is checked is what the channel shows:
replies in event order with the final summary last, one digest per ``slack.digest_interval``,
card edits coalesced, Retry-After kept, a quick catch-up after an outage, and every message
valid Block Kit."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from pathlib import Path
from typing import Any

from slack_sdk.models.blocks import Block

from tests.conftest import Cli
from tests.fakeslack import FakeSlack, Message
from tests.test_notify_e2e import CHANNEL, DIGEST, EVENT, Setup, make_setup, setups
from watcher.app import Watcher
from watcher.config.loader import load_config
from watcher.notify.budget import RateBudget
from watcher.sim import Simulator
from watcher.sim.scenarios import ALL_REASONS

__all__ = ["setups"]  # the fixture, shared with test_notify_e2e


def key_of(message: Message) -> str:
    assert message.metadata is not None
    assert message.metadata["event_type"] == EVENT
    return str(message.metadata["event_payload"]["key"])


def assert_valid_block_kit(slack: FakeSlack) -> None:
    """Every message Slack got, edits included, passes slack_sdk's own Block Kit checks."""
    sent = [c for c in slack.calls if c.method in ("chat.postMessage", "chat.update") and c.ok]
    assert sent
    for call in sent:
        assert call.args.get("text"), call.args
        for raw in call.args.get("blocks") or []:
            block = Block.parse(raw)
            assert block is not None, raw
            block.validate_json()  # raises SlackObjectFormationError


def thread_of(slack: FakeSlack) -> tuple[Message, list[Message]]:
    [card] = [m for m in slack.messages(CHANNEL) if m.thread_ts is None and m.metadata]
    return card, [m for m in slack.messages(CHANNEL) if m.thread_ts == card.ts]


def outbox_ids(cli: Cli, config: Path) -> dict[str, dict[str, Any]]:
    rows = cli("--config", str(config), "outbox", "list", "--status", "sent", "-o", "json").json()
    return {row["key"]: row for row in rows}


def test_after_a_slack_outage_the_thread_is_in_order_and_one_poll_catches_up(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    s = make_setup(
        tmp_path,
        Simulator.from_scenario("failures", seed=4),
        extra="",
        slack_options={"post_interval": 0.05, "retry_after": 3},
    )
    setups.append(s)
    cfg = str(s.config)
    s.config.write_text(s.config.read_text() + 'digest_interval = "0s"\n')
    cli("--config", cfg, "track", *s.sim.orchestration_ids())
    assert cli("--config", cfg, "poll").code == 0
    s.sim.advance(300)
    assert cli("--config", cfg, "poll").code == 0
    # A 429 with Retry-After 3 s: the sender must sit it out (the fake records violations).
    s.slack.fail_next("chat.postMessage", error="ratelimited", count=1)
    s.sim.advance(300)
    assert cli("--config", cfg, "poll").code == 0
    # Slack goes down for 10 calls while operations keep failing.
    updates_before = sum(c.method == "chat.update" and c.ok for c in s.slack.calls)
    s.slack.outage(10)
    polls_in_outage = 0
    while s.slack.outage_left:
        s.sim.advance(200)
        cli("--config", cfg, "poll")
        polls_in_outage += 1
        assert polls_in_outage < 20
    assert polls_in_outage >= 2  # so that digests and card edits piled up
    pending = cli("--config", cfg, "outbox", "list", "-o", "json").json()
    assert sum(e["kind"] == "progress" for e in pending) <= 1  # edits coalesced while waiting
    # Slack is back: the first poll delivers everything and exits 0.
    s.sim.advance(200)
    caught_up = cli("--config", cfg, "poll")
    assert caught_up.code == 0, caught_up.err
    assert cli("--config", cfg, "outbox", "list", "-o", "json").json() == []
    # Pending card edits of the outage went out as one edit, not one per poll: at most that
    # one and the catch-up poll's own (none when its cycle was deferred, KEB having moved).
    edits = sum(c.method == "chat.update" and c.ok for c in s.slack.calls) - updates_before
    assert 1 <= edits <= 2, (edits, polls_in_outage)
    merged = cli("--config", cfg, "outbox", "list", "--status", "superseded", "-o", "json").json()
    assert any(
        e["kind"] == "failure_digest" and e["lastError"].startswith("merged into") for e in merged
    ), merged  # the digests of the outage polls became one
    for _ in range(40):
        if s.sim.all_finished():
            break
        s.sim.advance(300)
        assert cli("--config", cfg, "poll").code == 0
    assert cli("--config", cfg, "poll").code == 0
    assert s.sim.all_finished()

    _card, replies = thread_of(s.slack)
    keys = [key_of(m) for m in replies]
    assert len(keys) == len(set(keys)), Counter(keys)  # no reply twice
    sent = outbox_ids(cli, s.config)
    ids = [sent[k]["id"] for k in keys]
    assert ids == sorted(ids), list(zip(keys, ids, strict=True))  # event order
    kinds = [sent[k]["kind"] for k in keys]
    assert kinds[-1] == "finished", kinds
    assert kinds.count("finished") == 1, kinds
    assert "failure_digest" in kinds
    assert replies[-1].reply_broadcast
    assert s.slack.violations == []
    ratelimited = [c for c in s.slack.calls if c.status == 429]
    assert ratelimited
    after = [
        c
        for c in s.slack.calls
        if c.method == "chat.postMessage" and c.channel == CHANNEL and c.at > ratelimited[0].at
    ]
    assert after[0].at - ratelimited[0].at >= 3.0
    assert_valid_block_kit(s.slack)


def sim_poll(app: Watcher) -> tuple[bool, int]:
    outcome = asyncio.run(app.poll(deadline=30))
    return not outcome.cycle.failed, outcome.undelivered


def test_a_two_thousand_operation_upgrade_polled_every_minute_gets_a_digest_per_10_minutes(
    tmp_path: Path, setups: list[Setup]
) -> None:
    """2,000 operations, 150 failures over 4 reasons, polled every minute of KEB time until
    it ends (about 1 h 50 m): at most 12 posts in all with the default interval, every
    failure reason named, a digest at most every 10 minutes, the card edited every cycle."""
    sim = Simulator(DIGEST, seed=3)
    s = make_setup(
        tmp_path, sim, slack_options={"post_interval": 0.05, "update_per_minute": 10_000}
    )
    setups.append(s)
    config = load_config(s.config, {})
    assert config.slack.digest_interval == 600
    budget = RateBudget(post_interval=0.06, updates_per_minute=10_000)
    with Watcher(config, clock=lambda: sim.now, budget=budget) as app:
        app.track(sim.orchestration_ids(), None)
        polls = 0
        while True:
            ok, undelivered = sim_poll(app)
            assert ok
            assert undelivered == 0
            polls += 1
            tracked = app.tracked(include_inactive=True)
            if sim.all_finished() and all(t.finished_at for t in tracked):
                break
            assert polls < 200
            sim.advance(60)
        digests = [e for e in app.outbox().entries(("sent",)) if e.kind == "failure_digest"]
        merged = [e for e in app.outbox().entries(("superseded",)) if e.kind == "failure_digest"]
    assert polls >= 60, polls
    posts = [c for c in s.slack.calls if c.method == "chat.postMessage" and c.ok]
    kinds = Counter(c.args["metadata"]["event_payload"]["kind"] for c in posts)
    # One digest per 10 minutes of KEB time at most (this run has failures in nearly every
    # minute: 111 polls would have been 100 digests), and one an hour once every reason has
    # been named; no reply for pending -> in progress (the card shows it).
    assert kinds["failure_digest"] <= -(-polls // 10), kinds
    assert len(posts) <= 12, kinds
    assert kinds["finished"] == kinds["tracking_started"] == 1, kinds
    assert kinds["state_changed"] == 0, kinds
    assert len(digests) >= 2  # the clock lets digests through, it does not silence them
    times = sorted(e.sent_at for e in digests if e.sent_at is not None)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(gap >= 600 for gap in gaps), gaps
    assert merged  # what came between was merged, not dropped
    card, replies = thread_of(s.slack)
    keys = [key_of(m) for m in replies]
    assert len(keys) == len(set(keys)), Counter(keys)  # no digest twice
    digest_text = "\n".join(m.text for m in replies if ":failures:" in key_of(m))
    for reason in ALL_REASONS:  # every reason named in a digest, and in the outcome
        assert reason.split(": ")[-1][:40] in digest_text, reason
        assert reason.split(": ")[-1][:40] in replies[-1].text, reason
    assert card.edits >= polls // 2  # the card is current on (nearly) every cycle
    assert replies[-1].reply_broadcast
    assert "failed" in replies[-1].text
    assert [m.reply_broadcast for m in replies].count(True) == 1
    # Every failure is accounted for: the digests' new failures add up to what KEB reports
    # as failed by the last digest, and the final summary names all 150.
    assert "150" in replies[-1].text
    assert s.slack.violations == []
    assert_valid_block_kit(s.slack)


def test_retry_after_holds_across_polls(tmp_path: Path, cli: Cli, setups: list[Setup]) -> None:
    """A 429's Retry-After outlives the process that got it: the next poll calls the method
    (in that channel) only once it has run out, for every notification, not just the one
    that got the 429."""
    s = make_setup(
        tmp_path,
        Simulator.from_scenario("failures", seed=4),
        slack_options={"post_interval": 0.05, "retry_after": 8},
    )
    setups.append(s)
    cfg = str(s.config)
    cli("--config", cfg, "track", *s.sim.orchestration_ids())
    assert cli("--config", cfg, "poll").code == 0
    s.slack.fail_next("chat.postMessage", error="ratelimited", count=1)
    s.sim.advance(600)
    first = cli("--config", cfg, "poll")
    assert first.code == 1  # 8 s is more than a poll lingers for a retry
    s.sim.advance(300)
    # What is left of the 8 s must be within what a poll lingers for (5 s), however fast
    # or slow the first poll was: then the next poll sits out the rest instead of giving up.
    [limited] = [c for c in s.slack.calls if c.status == 429]
    time.sleep(max(0.0, limited.at + 8.0 - 4.0 - time.monotonic()))
    second = cli("--config", cfg, "poll")
    assert second.code == 0, second  # sits out the rest of the 8 s
    assert s.slack.violations == []
    assert [c for c in s.slack.calls if c.status == 429] == [limited]
    posts = [c for c in s.slack.calls if c.method == "chat.postMessage" and c.at > limited.at]
    assert posts
    assert posts[0].at - limited.at >= 8.0


def test_label_links_mention_and_next_steps_appear_exactly_where_configured(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    sim = Simulator.from_scenario("failures", seed=4)
    s = make_setup(tmp_path, sim, slack_options={"post_interval": 0.05}, slack_config="")
    setups.append(s)
    s.config.write_text(
        s.config.read_text().replace("[keb]\n", '[keb]\nname = "prod-eu"\n')
        + f'\n[slack]\ntoken = "xoxb-test-token"\nchannel = "#kyma-upgrades"\n'
        f'base_url = "{s.slack.api_url}"\ndigest_interval = "0s"\n'
        'mention_on_failure = "<!subteam^S0123ABC>"\n'
        "\n[links]\n"
        'orchestration = { Dashboard = "https://dash.example/o?id={orchestration_id}" }\n'
        'operation = { Logs = "https://logs.example/?q={shoot}&op={operation_id}" }\n'
    )
    cli("--config", str(s.config), "track", *sim.orchestration_ids())
    for _ in range(40):
        assert cli("--config", str(s.config), "poll").code == 0
        if sim.all_finished():
            break
        sim.advance(300)
    assert cli("--config", str(s.config), "poll").code == 0
    [orch_id] = sim.orchestration_ids()
    card, replies = thread_of(s.slack)
    kinds = {key_of(m): m for m in replies}
    assert all("prod-eu" in m.text for m in [card, *replies]), [m.text[:80] for m in replies]
    assert f"<https://dash.example/o?id={orch_id}|Dashboard>" in str(card.blocks)
    digests = [m for k, m in kinds.items() if ":failures:" in k]
    [final] = [m for k, m in kinds.items() if ":finished:" in k]
    assert digests
    for digest in digests:
        assert f"kcp orchestration {orch_id} operations --state failed" in str(digest.blocks)
        assert "https://logs.example/?q=" in str(digest.blocks)
        assert "<!subteam^S0123ABC>" not in str(digest.blocks) + digest.text
    assert "KEB upgrade failed" in final.text
    assert "<!subteam^S0123ABC>" in str(final.blocks)
    assert f"kcp orchestration retry {orch_id}" in str(final.blocks)
    assert "<!subteam^S0123ABC>" not in str(card.blocks)
    assert "<!date^" in str(card.blocks)  # every reader's own time zone
    assert_valid_block_kit(s.slack)


def test_check_config_online_names_the_scopes_the_slack_app_lacks(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    s = make_setup(tmp_path, Simulator.from_scenario("small"))
    setups.append(s)
    good = cli("--config", str(s.config), "check-config", "--online")
    assert good.code == 0, good.err
    assert "Slack: token has every scope needed" in good.out
    s.slack.scopes = "chat:write,channels:read"
    bad = cli("--config", str(s.config), "check-config", "--online")
    assert bad.code == 2
    for scope in ("groups:read", "channels:history", "groups:history"):
        assert scope in bad.err
    assert "chat:write (" not in bad.err
    manifest = (Path(__file__).parents[1] / "deploy" / "slack-app-manifest.yaml").read_text()
    import yaml

    scopes = yaml.safe_load(manifest)["oauth_config"]["scopes"]["bot"]
    from watcher.notify.slack import SCOPES

    assert sorted(scopes) == sorted(SCOPES)  # the manifest asks for exactly what is used
