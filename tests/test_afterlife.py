"""Pure rules of life after the outcome (watcher.core.afterlife) and of retry wording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watcher.core.afterlife import after_outcome_note, ended_before, running
from watcher.core.diff import Transition, TransitionKind
from watcher.core.wording import transition_text

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
K = TransitionKind
OUTCOME = Transition(
    K.ORCHESTRATION_STATE,
    "o1",
    "o1:rev3:state",
    NOW - timedelta(hours=1),
    None,
    "",
    "",
    "in progress",
    "failed",
)


def done(op: str, state: str = "succeeded", frm: str = "in progress") -> Transition:
    return Transition(
        K.OPERATION_COMPLETED,
        "o1",
        f"o1:op:{op}:{frm}>{state}",
        NOW,
        op,
        "r",
        f"c-{op}",
        frm,
        state,
    )


def note(transitions: list[Transition], *, last: timedelta | None, still: int) -> str | None:
    intent = after_outcome_note(
        "o1",
        transitions,
        outcome=OUTCOME,
        since_outcome={"succeeded": 2, "failed": 1},
        late_failures=[{"description": "quota", "shoot": "c-x", "operation_id": "x"}],
        still_running=still,
        last_note=None if last is None else NOW - last,
        now=NOW,
        interval=600.0,
        base={"orchestration": {"id": "o1", "state": "failed"}},
        channel=None,
    )
    return None if intent is None else intent.kind


def test_running_counts_what_has_not_ended() -> None:
    assert running({"succeeded": 3, "failed": 1, "canceled": 2}) == 0
    assert running({"succeeded": 3, "pending": 1, "in progress": 2, "retrying": 1}) == 4


def test_ended_before_means_terminal_and_no_state_change_this_cycle() -> None:
    assert ended_before([done("a")], "failed")
    assert not ended_before([OUTCOME, done("a")], "failed")  # it ended in this cycle
    assert not ended_before([done("a")], "in progress")


def test_a_note_at_most_once_per_interval_but_always_the_last_word() -> None:
    assert note([done("a")], last=None, still=2) == "after_outcome"
    assert note([done("a")], last=timedelta(minutes=3), still=2) is None  # held
    assert note([done("a")], last=timedelta(minutes=10), still=2) == "after_outcome"
    assert note([done("a")], last=timedelta(minutes=3), still=0) == "after_outcome"  # last
    assert note([], last=None, still=2) is None  # nothing ended this cycle


def test_the_note_counts_everything_since_the_outcome() -> None:
    intent = after_outcome_note(
        "o1",
        [done("a")],
        outcome=OUTCOME,
        since_outcome={"succeeded": 2, "failed": 1},
        late_failures=[{"description": "quota", "shoot": "c-x", "operation_id": "x"}],
        still_running=0,
        last_note=None,
        now=NOW,
        interval=600.0,
        base={},
        channel="#c",
    )
    assert intent is not None
    after = intent.payload["after"]
    assert (after["ended"], after["failed"], after["running"]) == (3, 1, 0)
    assert after["outcome"] == "failed"
    assert after["failures"][0]["reason"] == "quota"
    assert intent.key.startswith("o1:after:o1:rev3:state:")


def test_pending_to_failed_is_not_said_to_have_run() -> None:
    text = transition_text(done("a", "failed", "pending"))
    assert "never seen in progress" in text
    assert "never seen in progress" not in transition_text(done("b", "failed"))


def test_an_ended_orchestration_with_operations_running_is_polled_as_if_it_ran() -> None:
    from watcher.core.cadence import cadence

    assert cadence("succeeded", {"succeeded": 9, "in progress": 3}, (), NOW, 60.0) == 0.0
    assert cadence("canceled", {"canceled": 9, "in progress": 1}, (), NOW, 60.0) == 0.0
    assert cadence("succeeded", {"succeeded": 12}, (), NOW, 60.0) > 0.0  # waits for delivery
