"""Life after the outcome (issue 18, point 2), end to end: KEB (the simulator, over HTTP)
ends an orchestration while operations still run; they are followed until they end,
recorded, shown on the card and noted in the thread; the final summary is not repeated."""

from __future__ import annotations

import asyncio
from pathlib import Path

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


def test_late_successes_after_a_failed_outcome_are_followed_and_noted(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    """``outlived`` (seed 3): KEB says ``failed`` while 3 operations still run; they succeed
    afterwards. Polled every minute of KEB time."""
    sim = Simulator.from_scenario("outlived", seed=3)
    s = make_setup(
        tmp_path, sim, slack_options={"post_interval": 0.01, "update_per_minute": 10_000}
    )
    setups.append(s)
    config = load_config(s.config, {})
    [orch_id] = sim.orchestration_ids()
    finished_while_running = []
    with Watcher(config, clock=lambda: sim.now, budget=FAST) as app:
        app.track([orch_id], None)
        for _ in range(120):
            outcome = asyncio.run(app.poll(deadline=30))
            assert not outcome.cycle.failed
            assert outcome.undelivered == 0
            [tracked] = app.tracked(include_inactive=True)
            running = tracked.counts.get("in progress", 0) + tracked.counts.get("pending", 0)
            finished_while_running.append(tracked.finished_at is not None and running > 0)
            if tracked.finished_at is not None:
                break
            sim.advance(60)
        else:
            raise AssertionError("never finished")
        history = app.store.history(orch_id)
    assert not any(finished_while_running)  # followed until the last one ended
    assert tracked.state == "failed"
    assert dict(tracked.counts) == {"failed": 1, "succeeded": 11}

    # Recorded: the three successes come after the orchestration's failed transition.
    end = next(i for i, t in enumerate(history) if t.to_state == "failed" and not t.operation_id)
    late = [t for t in history[end + 1 :] if t.kind.value == "operation_completed"]
    assert [t.to_state for t in late] == ["succeeded"] * 3

    [card] = [m for m in s.slack.messages(CHANNEL) if m.thread_ts is None and m.metadata]
    replies = [m for m in s.slack.messages(CHANNEL) if m.thread_ts == card.ts]
    kinds = [kind_of(m) for m in replies]
    assert kinds.count("finished") == 1, kinds  # the final summary is not repeated
    notes = [m for m in replies if kind_of(m) == "after_outcome"]
    assert notes, kinds
    assert kinds.index("finished") < kinds.index("after_outcome")
    assert len(notes) <= 2, kinds  # once per digest interval, plus the last word
    assert "*After the outcome*" in notes[-1].text
    assert "3 operations ended since the orchestration was *failed*" in notes[-1].text
    assert "3 succeeded" in notes[-1].text
    assert "None is running any more" in notes[-1].text
    assert "failure_digest" not in kinds[kinds.index("finished") :]

    # The card showed them running after the outcome, and ends with what they did.
    edits = [c.args["text"] for c in s.slack.calls if c.method == "chat.update" and c.ok]
    assert any("still running after the outcome" in text for text in edits)
    assert "still running after the outcome" not in edits[-1]
    assert "11 succeeded" in edits[-1]


def run_scenario(s: Setup, every: float, polls: int) -> list[Message]:
    config = load_config(s.config, {})
    with Watcher(config, clock=lambda: s.sim.now, budget=FAST) as app:
        app.track(s.sim.orchestration_ids(), None)
        for _ in range(polls):
            assert not asyncio.run(app.poll(deadline=30)).cycle.failed
            s.sim.advance(every)
    return [m for m in s.slack.messages(CHANNEL) if m.metadata]


def test_a_retry_that_resolved_nothing_is_said_as_such(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    """``retry-unresolved``: failed, retried, and KEB goes ``retrying -> succeeded`` without
    running anything again. The retry reply says it was requested, the outcome that it
    resolved nothing and the failures stand; never "retried 0", never "in progress"."""
    sim = Simulator.from_scenario("retry-unresolved")
    s = make_setup(
        tmp_path, sim, slack_options={"post_interval": 0.01, "update_per_minute": 10_000}
    )
    setups.append(s)
    messages = run_scenario(s, 60.0, 40)
    text = "\n".join(m.text for m in messages)
    assert "retried 0" not in text
    [retried] = [m for m in messages if kind_of(m) == "retried"]
    assert "*failed* → *retrying*" in retried.text
    assert "retry requested for 3 operations" in retried.text
    outcomes = [m for m in messages if kind_of(m) == "finished"]
    assert len(outcomes) == 2
    assert "KEB upgrade failed" in outcomes[0].text
    assert "KEB upgrade succeeded" in outcomes[1].text
    assert "The retry resolved nothing" in outcomes[-1].text
    assert "3 failures still stand" in outcomes[-1].text
    assert "The retry resolved nothing" not in outcomes[0].text
    history = cli("--config", str(s.config), "history", sim.orchestration_ids()[0]).out
    assert "orchestration retrying -> succeeded" in history  # not via in progress


def test_a_retry_that_resolved_nothing_between_two_polls_is_said_as_such(
    tmp_path: Path, setups: list[Setup]
) -> None:
    """Polled every 15 minutes, the watcher sees ``in progress`` then ``succeeded`` with
    failures and KEB's ", retrying" still in the description: the same words."""
    sim = Simulator.from_scenario("retry-unresolved")
    s = make_setup(tmp_path, sim, slack_options={"post_interval": 0.01})
    setups.append(s)
    messages = run_scenario(s, 900.0, 4)
    [outcome] = [m for m in messages if kind_of(m) == "finished"]
    assert "KEB upgrade succeeded" in outcome.text
    assert "The retry resolved nothing" in outcome.text


def test_a_failure_after_a_succeeded_outcome_is_a_note_not_a_digest(
    tmp_path: Path, setups: list[Setup]
) -> None:
    """``outlived`` (seed 1): KEB says ``succeeded`` with 3 operations running, and one of
    them fails afterwards. The thread notes the failure as after the outcome, grouped by
    reason; no failure digest of a run that has ended, no second outcome."""
    sim = Simulator.from_scenario("outlived", seed=1)
    s = make_setup(
        tmp_path, sim, slack_options={"post_interval": 0.01, "update_per_minute": 10_000}
    )
    setups.append(s)
    messages = run_scenario(s, 60.0, 40)
    kinds = [kind_of(m) for m in messages]
    assert kinds.count("finished") == 1, kinds
    finished = kinds.index("finished")
    assert "KEB upgrade succeeded" in messages[finished].text
    assert "failure_digest" not in kinds[finished:], kinds
    notes = [m.text for m in messages[finished:] if kind_of(m) == "after_outcome"]
    assert any("failed after the outcome" in text for text in notes), notes
    assert "None is running any more" in notes[-1]
