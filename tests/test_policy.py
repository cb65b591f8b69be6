"""The notification policy as plain function calls: transitions in, intents out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from watcher.core.diff import NotFound, Observation, Snapshot, diff
from watcher.core.kinds import Kind, priority
from watcher.core.models import Operation, Orchestration
from watcher.core.policy import (
    Reference,
    decide,
    failure_groups,
    health_intent,
    runs_from,
    summary,
)

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def orch(state: str = "in progress", description: str = "Scheduled 4 operations") -> Orchestration:
    return Orchestration(
        "o1",
        type="upgradeCluster",
        state=state,
        description=description,
        created_at=NOW - timedelta(hours=1),
        updated_at=NOW - timedelta(hours=1),
    )


def ops(*states: str, reason: str = "quota exceeded") -> dict[str, Operation]:
    return {
        f"op{i}": Operation(
            f"op{i}",
            runtime_id=f"r{i}",
            shoot_name=f"c-{i}",
            state=s,
            description=reason if s == "failed" else "",
        )
        for i, s in enumerate(states)
    }


def intents_for(prev: Snapshot, new: Observation | NotFound) -> list[tuple[str, str]]:
    result = diff(prev, new, NOW)
    return [(i.kind, i.key) for i in decide(result, channel=None, now=NOW, reference=None)]


def test_baseline_sends_one_card_and_nothing_per_operation() -> None:
    kinds = intents_for(Snapshot("o1"), Observation(orch(), ops("succeeded", "failed", "pending")))
    assert kinds == [("tracking_started", "o1:card")]


def test_a_cycle_with_500_completions_is_one_update_and_one_digest() -> None:
    prev = Snapshot("o1", orch(), ops(*["in progress"] * 500), revision=1)
    states = ["succeeded"] * 450 + ["failed"] * 50
    result = diff(prev, Observation(orch(), ops(*states)), NOW)
    intents = decide(result, channel="#c", now=NOW, reference=None)
    assert sorted(i.kind for i in intents) == ["failure_digest", "progress"]
    digest = next(i for i in intents if i.kind == "failure_digest")
    assert digest.payload["new_failures"] == 50
    [group] = digest.payload["failures"]
    assert (group["reason"], group["count"], group["more"]) == ("quota exceeded", 50, 47)
    assert len(group["examples"]) == 3
    assert all(i.channel == "#c" for i in intents)


def test_terminal_state_gives_a_final_summary_with_failures_by_reason() -> None:
    prev = Snapshot("o1", orch(), ops("in progress", "in progress", "succeeded"), revision=1)
    result = diff(prev, Observation(orch("failed"), ops("failed", "succeeded", "succeeded")), NOW)
    intents = {i.kind: i for i in decide(result, channel=None, now=NOW, reference=None)}
    # No separate digest: the final summary lists every failure by reason.
    assert set(intents) == {"progress", "finished"}
    final = intents["finished"]
    assert final.priority < intents["progress"].priority
    assert final.payload["counts"] == {"failed": 1, "succeeded": 2}
    assert final.payload["failures"][0]["count"] == 1
    assert final.payload["elapsed_seconds"] == 0.0  # created == updated in this sample


def test_state_change_that_is_not_the_end() -> None:
    prev = Snapshot("o1", orch("in progress"), ops("pending"), revision=1)
    kinds = intents_for(prev, Observation(orch("canceling", "canceled"), ops("pending")))
    assert [k for k, _ in kinds] == ["progress", "state_changed"]


def test_a_retry_of_a_failed_orchestration_is_announced_as_a_new_run() -> None:
    prev = Snapshot("o1", orch("failed"), ops("failed"), revision=1)
    retried_at = NOW - timedelta(minutes=10)
    retrying = replace(orch("retrying", "x, retrying"), updated_at=retried_at)
    result = diff(prev, Observation(retrying, ops("failed")), NOW)
    intents = decide(result, channel=None, now=NOW, reference=None)
    assert [i.kind for i in intents] == ["progress", "retried"]
    retried = intents[1].payload
    assert retried["change"]["from"] == "failed"
    assert retried["run"] == 2
    assert retried["elapsed_seconds"] == 600.0  # the new run's, from the retry request

    # It ends again, an hour later: a second final summary, timed from the retry.
    ended_at = NOW + timedelta(hours=1)
    again = replace(orch("succeeded", "x, retried 1 operations"), updated_at=ended_at)
    new_ops = {**ops("failed"), "op9": Operation("op9", runtime_id="r0", state="succeeded")}
    result2 = diff(result.snapshot, Observation(again, new_ops), ended_at)
    run = runs_from(result.transitions)
    finals = decide(result2, channel=None, now=ended_at, reference=None, run=run)
    final = next(i for i in finals if i.kind == "finished")
    assert final.payload["run"] == 2
    assert final.payload["elapsed_seconds"] == 4200.0
    first_final_key = "o1:finished:o1:rev1:state"
    assert final.key != first_final_key


def test_a_retry_that_ran_and_failed_between_two_polls_gives_both_replies() -> None:
    prev = Snapshot("o1", orch("failed"), ops("failed"), revision=1)
    new_ops = {**ops("failed"), "op9": Operation("op9", runtime_id="r0", state="failed")}
    result = diff(prev, Observation(orch("failed", "x, retried 1 operations"), new_ops), NOW)
    kinds = [i.kind for i in decide(result, channel=None, now=NOW, reference=None)]
    assert kinds == ["progress", "retried", "finished"]
    final = decide(result, channel=None, now=NOW, reference=None)[-1]
    assert final.payload["elapsed_seconds"] is None  # the new run's start was not seen


def test_not_found_once() -> None:
    prev = Snapshot("o1", orch(), ops("pending"), revision=1)
    assert intents_for(prev, NotFound("o1")) == [("not_found", "o1:not_found")]


def test_no_transitions_no_intents() -> None:
    prev = Snapshot("o1", orch(), ops("pending"), revision=1)
    assert intents_for(prev, Observation(orch(), ops("pending"))) == []


def test_keys_are_stable_and_distinct() -> None:
    prev = Snapshot("o1", orch(), ops("in progress", "in progress"), revision=1)
    new = Observation(orch(), ops("failed", "succeeded"))
    first = intents_for(prev, new)
    assert first == intents_for(prev, new)  # same cause, same keys: enqueued once
    other = intents_for(prev, Observation(orch(), ops("succeeded", "failed")))
    assert {k for _, k in first}.isdisjoint({k for _, k in other})


def test_summary_throughput_and_eta() -> None:
    counts = {"succeeded": 30, "pending": 70}
    s = summary(orch(), counts, NOW, Reference(NOW - timedelta(hours=2), 10))
    assert s["throughput_per_hour"] == 10.0
    assert s["eta_seconds"] == 7 * 3600
    assert s["progress"] == 0.3
    assert summary(orch(), counts, NOW, None)["eta_seconds"] is None


def test_failure_groups_order_and_more() -> None:
    items = [{"description": "b", "shoot": "s", "operation_id": "x"}] * 2 + [
        {"description": "a", "shoot": "s", "operation_id": "y"}
    ] * 5
    groups = failure_groups(items, examples=2)
    assert [(g["reason"], g["count"], g["more"]) for g in groups] == [("a", 5, 3), ("b", 2, 0)]


def test_health_intents() -> None:
    since = NOW - timedelta(minutes=11)
    down = health_intent("keb_unhealthy", since=since, now=NOW, error="503", url="u")
    up = health_intent("keb_recovered", since=since, now=NOW, error="503", url="u")
    assert down.key != up.key
    assert down.priority == up.priority == priority(Kind.KEB_UNHEALTHY)
    assert down.payload["duration_seconds"] == 660


def test_pending_to_in_progress_is_shown_on_the_card_only() -> None:
    prev = Snapshot("o1", orch("pending"), ops("pending"), revision=1)
    kinds = intents_for(prev, Observation(orch("in progress"), ops("in progress")))
    assert [k for k, _ in kinds] == ["progress"]
