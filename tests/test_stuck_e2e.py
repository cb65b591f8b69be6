"""Stuck is news too (issue 18, point 3), end to end: the simulator as KEB over HTTP, the fake
Slack Web API over HTTP, the real app with the simulator's clock (``poll.stuck_after``)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.conftest import Cli
from tests.fakeslack import Message
from tests.test_notify_e2e import CHANNEL, EVENT, Setup, make_setup, setups
from watcher.app import Watcher
from watcher.config.loader import load_config
from watcher.notify.budget import RateBudget
from watcher.sim import Simulator

__all__ = ["setups"]  # the fixture, shared with test_notify_e2e
FAST = RateBudget(post_interval=0.02, updates_per_minute=10_000)


def kind_of(message: Message) -> str:
    assert message.metadata is not None
    assert message.metadata["event_type"] == EVENT
    return str(message.metadata["event_payload"]["kind"])


def thread(s: Setup) -> list[Message]:
    [card] = [m for m in s.slack.messages(CHANNEL) if m.thread_ts is None and m.metadata]
    return [m for m in s.slack.messages(CHANNEL) if m.thread_ts == card.ts]


def card_edits(s: Setup) -> list[str]:
    return [c.args.get("text", "") for c in s.slack.calls if c.method == "chat.update" and c.ok]


def test_an_operation_in_progress_past_stuck_after_is_announced_once_then_unstuck(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    """``hanging``: the first of 60 operations stays in progress for 90 minutes. With
    ``stuck_after = "1h"`` and a poll every 5 minutes: one ``stuck`` reply naming it and
    since when (not repeated by the six polls while it stays stuck), the card shows it,
    ``list`` shows it, then one ``unstuck`` reply once it moved on, before the outcome."""
    sim = Simulator.from_scenario("hanging")
    s = make_setup(
        tmp_path,
        sim,
        extra='stuck_after = "1h"\n',
        slack_options={"post_interval": 0.01, "update_per_minute": 10_000},
    )
    setups.append(s)
    config = load_config(s.config, {})
    assert config.poll.stuck_after == 3600
    [orch_id] = sim.orchestration_ids()
    budget = RateBudget(post_interval=0.02, updates_per_minute=10_000)
    listed_stuck: list[Any] = []
    with Watcher(config, clock=lambda: sim.now, budget=budget) as app:
        app.track([orch_id], None)
        for _ in range(60):
            outcome = asyncio.run(app.poll(deadline=30))
            assert not outcome.cycle.failed
            assert outcome.undelivered == 0
            listed = cli("--config", str(s.config), "list", "-o", "json").json()
            listed_stuck.append(listed[0]["stuck"])
            if sim.all_finished() and all(t.finished_at for t in app.tracked()):
                break
            sim.advance(300)
        else:
            raise AssertionError("did not finish")
        hanging = next(
            t for t in app.store.history(orch_id) if t.kind.value == "operation_state"
        ).operation_id
    replies = thread(s)
    kinds = [kind_of(m) for m in replies]
    assert kinds.count("stuck") == 1, kinds
    assert kinds.count("unstuck") == 1, kinds
    assert kinds.index("stuck") < kinds.index("unstuck") < kinds.index("finished"), kinds
    assert kinds[-1] == "finished", kinds
    stuck = replies[kinds.index("stuck")]
    assert "*1 stuck*" in stuck.text
    assert hanging is not None
    assert hanging in stuck.text  # names what is stuck
    assert "since <!date^" in stuck.text  # and since when
    payload = stuck.metadata["event_payload"] if stuck.metadata else {}
    assert payload["orchestration_id"] == orch_id
    unstuck = replies[kinds.index("unstuck")]
    assert "moved on" in unstuck.text
    # The card showed it while it lasted, and no longer once it moved on.
    edits = card_edits(s)
    shown = [i for i, text in enumerate(edits) if "1 stuck" in text]
    assert shown
    assert "stuck" not in edits[-1]
    # `list` showed it while it lasted, and only then: not before the hour was up.
    stuck_polls = [i for i, value in enumerate(listed_stuck) if value]
    assert stuck_polls
    assert stuck_polls == list(range(stuck_polls[0], stuck_polls[-1] + 1))
    assert 11 <= stuck_polls[0] <= 13  # about 12 polls of 5 minutes after it started
    assert len(stuck_polls) >= 5
    first = listed_stuck[stuck_polls[0]]
    assert first["count"] == 1
    assert first["items"][0]["operationId"] == hanging


def test_stuck_after_0s_turns_it_off(tmp_path: Path, cli: Cli, setups: list[Setup]) -> None:
    sim = Simulator.from_scenario("hanging")
    s = make_setup(tmp_path, sim, extra='stuck_after = "0s"\n')
    setups.append(s)
    config = load_config(s.config, {})
    with Watcher(config, clock=lambda: sim.now) as app:
        app.track(sim.orchestration_ids(), None)
        for _ in range(20):
            asyncio.run(app.poll(deadline=30))
            sim.advance(600)
    kinds = [kind_of(m) for m in s.slack.messages(CHANNEL) if m.metadata]
    assert "stuck" not in kinds
    assert "unstuck" not in kinds
    assert cli("--config", str(s.config), "list", "-o", "json").json()[0]["stuck"] is None


def test_a_cancel_that_never_concludes_is_stuck_once_while_nothing_moves(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    """``canceling-forever``: once the running operations finished, nothing moves any more
    (every poll is the one-request unchanged path); the orchestration ``canceling`` for
    ``stuck_after`` is announced once, naming its state and since when, and never again."""
    sim = Simulator.from_scenario("canceling-forever")
    s = make_setup(
        tmp_path,
        sim,
        extra='stuck_after = "1h"\n',
        slack_options={"post_interval": 0.01, "update_per_minute": 10_000},
    )
    setups.append(s)
    loaded = load_config(s.config, {})
    # No periodic full sweep: once the cancel settled, every poll is the unchanged path.
    config = replace(loaded, poll=replace(loaded.poll, full_sweep_every=1e9))
    [orch_id] = sim.orchestration_ids()
    modes = []
    with Watcher(config, clock=lambda: sim.now, budget=FAST) as app:
        app.track([orch_id], None)
        for _ in range(40):  # ten hours of KEB time, a poll every 15 minutes
            outcome = asyncio.run(app.poll(deadline=30))
            assert not outcome.cycle.failed
            modes.append(outcome.cycle.results[0].mode)
            sim.advance(900)
    assert sim.orchestration_state(orch_id) == "canceling"
    assert modes[-20:] == ["unchanged"] * 20  # nothing moved: one request per poll
    replies = thread(s)
    stuck = [m for m in replies if kind_of(m) == "stuck"]
    assert len(stuck) == 1, [kind_of(m) for m in replies]
    assert "the orchestration is *canceling* since <!date^" in stuck[0].text
    listed = cli("--config", str(s.config), "list", "-o", "json").json()
    assert listed[0]["stuck"]["items"][0]["state"] == "canceling"
    assert listed[0]["stuck"]["items"][0]["operationId"] is None
    text = cli("--config", str(s.config), "list").out
    assert "[1 stuck since " in text


def test_a_pending_orchestration_waiting_for_a_keb_slot_is_stuck_then_moves(
    tmp_path: Path, setups: list[Setup]
) -> None:
    """``queued``: KEB runs 3 orchestrations at once; the 4th and 5th wait ``pending`` with
    no operations. With ``stuck_after = "10m"`` each waiting one gets one ``stuck`` reply
    naming its pending state since KEB created it, then ``unstuck`` once it starts."""
    sim = Simulator.from_scenario("queued")
    s = make_setup(
        tmp_path,
        sim,
        extra='stuck_after = "10m"\n',
        slack_options={"post_interval": 0.01, "update_per_minute": 10_000},
    )
    setups.append(s)
    config = load_config(s.config, {})
    ids = sim.orchestration_ids()
    with Watcher(config, clock=lambda: sim.now, budget=FAST) as app:
        app.track(ids, None)
        for _ in range(40):
            assert not asyncio.run(app.poll(deadline=30)).cycle.failed
            sim.advance(60)
    by_orch: dict[str, list[Message]] = {}
    for m in s.slack.messages(CHANNEL):
        if m.metadata:
            by_orch.setdefault(m.metadata["event_payload"]["orchestration_id"], []).append(m)
    for orch_id in ids[:3]:
        assert "stuck" not in [kind_of(m) for m in by_orch[orch_id]]
    for orch_id in ids[3:]:
        kinds = [kind_of(m) for m in by_orch[orch_id]]
        assert kinds.count("stuck") == 1, kinds
        assert kinds.count("unstuck") == 1, kinds
        assert kinds.index("stuck") < kinds.index("unstuck")
        [stuck] = [m for m in by_orch[orch_id] if kind_of(m) == "stuck"]
        assert "the orchestration is *pending* since <!date^" in stuck.text
