"""Catching up after a long Slack outage, end to end (simulator, fake Slack over real HTTP,
the real CLI): the outage spans a whole retried run, the notifications it piled up sit in a
long backoff, and the first `poll` after Slack recovers delivers all of them, in event order
in the card's thread, and exits 0. Also: dry runs say so in every message."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import Cli
from tests.test_notify_e2e import CHANNEL, Setup, make_setup, setups
from tests.test_notify_pacing import assert_valid_block_kit, key_of, outbox_ids, thread_of
from watcher.sim import Simulator
from watcher.sim.scenarios import OrchestrationSpec, ScenarioSpec

__all__ = ["setups"]


def test_after_a_long_outage_one_poll_delivers_everything_in_event_order(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    sim = Simulator.from_scenario("retry", seed=1)
    s = make_setup(tmp_path, sim, slack_options={"post_interval": 0.05})
    setups.append(s)
    cfg = str(s.config)
    s.config.write_text(s.config.read_text() + 'digest_interval = "0s"\n')
    cli("--config", cfg, "track", *sim.orchestration_ids())
    assert cli("--config", cfg, "poll").code == 0  # the card
    # Slack is down for a whole run, its failure, the retry and the second run.
    s.slack.outage(100_000)
    polls = 0
    while not sim.all_finished():
        sim.advance(120)
        assert cli("--config", cfg, "poll").code == 1
        polls += 1
        assert polls < 100
    pending = cli("--config", cfg, "outbox", "list", "-o", "json").json()
    kinds = Counter(e["kind"] for e in pending)
    assert kinds["finished"] == 2, kinds
    assert kinds["retried"] == 1, kinds
    assert kinds["state_changed"] >= 1, kinds
    # Each attempt so far put its notification in backoff; after a few more failures that
    # backoff is minutes long (up to 300 s): as if those had happened, put every attempted
    # notification five minutes ahead.
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    with sqlite3.connect(tmp_path / "watcher.db") as conn:
        held = conn.execute(
            "UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending' AND attempts > 0",
            (later,),
        ).rowcount
    assert held >= 2
    # Slack is back: the first poll asks it (auth.test), finds it answering, and delivers
    # everything at once, in the order of the events, and exits 0.
    s.slack.clear_failures()
    caught_up = cli("--config", cfg, "poll")
    assert caught_up.code == 0, caught_up.err
    assert cli("--config", cfg, "outbox", "list", "-o", "json").json() == []
    _card, replies = thread_of(s.slack)
    keys = [key_of(m) for m in replies]
    assert len(keys) == len(set(keys)), Counter(keys)  # nothing twice, no digest twice
    sent = outbox_ids(cli, s.config)
    ids = [sent[k]["id"] for k in keys]
    assert ids == sorted(ids), list(zip(keys, ids, strict=True))  # event order
    order = [sent[k]["kind"] for k in keys]
    assert order[-1] == "finished", order  # the second run's summary is the last reply
    assert order.count("finished") == 2, order
    assert order.index("finished") < order.index("retried"), order
    assert [m.reply_broadcast for m in replies].count(True) == 2
    assert "KEB upgrade succeeded" in replies[-1].text
    assert s.slack.violations == []
    assert_valid_block_kit(s.slack)


DRY_RUN = ScenarioSpec(
    "dry-run",
    "a dry run (KEB changes nothing, and its operations succeed)",
    (OrchestrationSpec(ops=40, workers=8, duration=(60.0, 240.0), dry_run=True, created=-1.0),),
)


def test_a_dry_run_says_so_in_every_message(tmp_path: Path, cli: Cli, setups: list[Setup]) -> None:
    sim = Simulator(DRY_RUN, seed=2)
    s = make_setup(tmp_path, sim, slack_options={"post_interval": 0.05})
    setups.append(s)
    cfg = str(s.config)
    s.config.write_text(s.config.read_text() + 'digest_interval = "0s"\n')
    cli("--config", cfg, "track", *sim.orchestration_ids())
    for _ in range(60):
        assert cli("--config", cfg, "poll").code == 0
        if sim.all_finished():
            break
        sim.advance(120)
    assert cli("--config", cfg, "poll").code == 0
    card, replies = thread_of(s.slack)
    assert [key_of(m).split(":")[1] for m in replies][-1] == "finished"
    for message in [card, *replies]:
        assert "(dry run)" in message.text, message.text[:120]
    assert "dry run: nothing was changed" in replies[-1].text
    updates = [c for c in s.slack.calls if c.method == "chat.update" and c.ok]
    assert updates
    assert all("(dry run)" in c.args["text"] for c in updates)  # every edit of the card too
    assert card.channel == CHANNEL
    assert_valid_block_kit(s.slack)
