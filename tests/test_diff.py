"""The diff as plain function calls on values (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from watcher.core.diff import (
    NotFound,
    Observation,
    Snapshot,
    TransitionKind,
    diff,
    operation_via,
    orchestration_via,
)
from watcher.core.models import Operation, Orchestration

NOW = datetime(2026, 1, 1, tzinfo=UTC)
K = TransitionKind


def orch(state: str, description: str = "Scheduled 3 operations") -> Orchestration:
    return Orchestration("o1", type="upgradeCluster", state=state, description=description)


def op(op_id: str, state: str, runtime: str | None = None, description: str = "") -> Operation:
    return Operation(
        op_id, runtime_id=runtime or f"rt-{op_id}", state=state, description=description
    )


def ops(*items: Operation) -> dict[str, Operation]:
    return {o.operation_id: o for o in items}


def snap(o: Orchestration, *items: Operation, revision: int = 1) -> Snapshot:
    return Snapshot("o1", o, ops(*items), revision)


def test_first_observation_is_a_baseline_without_per_operation_transitions() -> None:
    result = diff(
        Snapshot("o1"),
        Observation(orch("in progress"), ops(op("a", "succeeded"), op("b", "pending"))),
        NOW,
    )
    assert [t.kind for t in result.transitions] == [K.BASELINE]
    assert result.transitions[0].detail["counts"] == {"pending": 1, "succeeded": 1}
    assert len(result.changed) == 2


@pytest.mark.parametrize(
    ("old", "new", "kind", "via"),
    [
        ("pending", "in progress", K.OPERATION_STATE, ()),
        ("in progress", "succeeded", K.OPERATION_COMPLETED, ()),
        ("pending", "succeeded", K.OPERATION_COMPLETED, ("in progress",)),
        ("pending", "failed", K.OPERATION_COMPLETED, ("in progress",)),
        ("pending", "canceled", K.OPERATION_COMPLETED, ()),
        ("in progress", "failed", K.OPERATION_COMPLETED, ()),
        ("pending", "hibernating", K.OPERATION_STATE, ()),
    ],
)
def test_operation_state_changes(
    old: str, new: str, kind: TransitionKind, via: tuple[str, ...]
) -> None:
    result = diff(
        snap(orch("in progress"), op("a", old)),
        Observation(orch("in progress"), ops(op("a", new))),
        NOW,
    )
    [t] = result.transitions
    assert (t.kind, t.from_state, t.to_state, t.via) == (kind, old, new, via)
    assert t.key == f"o1:op:a:{old}>{new}"


def test_unchanged_observation_records_nothing_and_writes_nothing() -> None:
    prev = snap(orch("in progress"), op("a", "pending"), op("b", "succeeded"))
    result = diff(prev, Observation(orch("in progress"), prev.operations), NOW)
    assert result.transitions == []
    assert result.changed == []
    assert result.removed == []


def test_description_only_change_of_an_operation_is_stored_not_announced() -> None:
    prev = snap(
        orch("in progress"), op("a", "in progress", description="cluster upgrade in progress")
    )
    new = ops(op("a", "in progress", description="Performing post-upgrade tasks"))
    result = diff(prev, Observation(orch("in progress"), new), NOW)
    assert result.transitions == []
    assert [o.description for o in result.changed] == ["Performing post-upgrade tasks"]


def test_retry_appends_new_operation_for_failed_runtime() -> None:
    prev = snap(orch("failed"), op("a", "failed", runtime="r1"), op("b", "succeeded", runtime="r2"))
    new = ops(
        op("a", "failed", runtime="r1"),
        op("b", "succeeded", runtime="r2"),
        op("a2", "in progress", runtime="r1"),
    )
    result = diff(
        prev,
        Observation(orch("in progress", "Scheduled 2 operations, retried 1 operations"), new),
        NOW,
    )
    kinds = [(t.kind, t.from_state, t.to_state, t.via) for t in result.transitions]
    assert kinds == [
        (K.ORCHESTRATION_STATE, "failed", "in progress", ("retrying",)),
        (K.OPERATION_RETRY, None, "pending", ()),
        (K.OPERATION_STATE, "pending", "in progress", ()),
    ]


def test_whole_retry_cycle_between_polls_is_passed_through() -> None:
    prev = snap(orch("failed"), op("a", "failed", runtime="r1"))
    new = ops(op("a", "failed", runtime="r1"), op("a2", "failed", runtime="r1"))
    result = diff(
        prev, Observation(orch("failed", "Scheduled 1 operations, retried 1 operations"), new), NOW
    )
    state = [t for t in result.transitions if t.kind is K.ORCHESTRATION_STATE]
    assert [(t.from_state, t.via, t.to_state) for t in state] == [
        ("failed", ("retrying", "in progress"), "failed")
    ]


def test_cancel_passes_canceling() -> None:
    prev = snap(orch("in progress"), op("a", "pending"))
    result = diff(
        prev,
        Observation(orch("canceled", "Orchestration was canceled"), ops(op("a", "canceled"))),
        NOW,
    )
    kinds = [(t.kind, t.to_state, t.via) for t in result.transitions]
    # Operations first, the orchestration's terminal state last.
    assert kinds == [
        (K.OPERATION_COMPLETED, "canceled", ()),
        (K.ORCHESTRATION_STATE, "canceled", ("canceling",)),
    ]


def test_vanished_operation() -> None:
    prev = snap(orch("in progress"), op("a", "succeeded"), op("b", "pending"))
    result = diff(prev, Observation(orch("in progress"), ops(op("b", "pending"))), NOW)
    [t] = result.transitions
    assert (t.kind, t.operation_id, t.from_state, t.to_state) == (
        K.OPERATION_VANISHED,
        "a",
        "succeeded",
        None,
    )
    assert result.removed == ["a"]


def test_not_found_is_reported_once() -> None:
    prev = snap(orch("in progress"))
    first = diff(prev, NotFound("o1"), NOW)
    assert [t.kind for t in first.transitions] == [K.ORCHESTRATION_NOT_FOUND]
    again = diff(first.snapshot, NotFound("o1"), NOW)
    assert again.transitions == []


def test_orchestration_keys_stay_unique_when_a_state_repeats() -> None:
    s0 = snap(orch("failed"), op("a", "failed", runtime="r1"))
    s1 = diff(s0, Observation(orch("retrying", "x, retrying"), s0.operations), NOW)
    s2 = diff(
        s1.snapshot, Observation(orch("failed", "x, retried 1 operations"), s0.operations), NOW
    )
    keys = [t.key for t in s1.transitions + s2.transitions]
    assert len(keys) == len(set(keys)) == 2


def test_description_change_of_orchestration() -> None:
    prev = snap(orch("in progress", "Scheduled 3 operations"))
    result = diff(
        prev,
        Observation(orch("in progress", "Scheduled 3 operations, retried 1 operations"), {}),
        NOW,
    )
    [t] = result.transitions
    assert t.kind is K.ORCHESTRATION_DESCRIPTION
    assert t.detail["previous"] == "Scheduled 3 operations"


@pytest.mark.parametrize(
    ("old", "new", "retried", "has_ops", "via"),
    [
        ("pending", "in progress", False, True, ()),
        ("pending", "succeeded", False, True, ("in progress",)),
        ("pending", "succeeded", False, False, ()),
        ("pending", "canceled", False, True, ("canceling",)),
        ("in progress", "canceled", False, True, ("canceling",)),
        ("failed", "in progress", True, True, ("retrying",)),
        ("failed", "succeeded", True, True, ("retrying", "in progress")),
        ("retrying", "canceled", False, True, ("canceling",)),
        ("failed", "canceled", True, True, ("retrying", "in progress", "canceling")),
        ("failed", "canceled", False, True, ("retrying", "canceling")),
        ("retrying", "canceled", True, True, ("in progress", "canceling")),
        ("retrying", "succeeded", True, True, ("in progress",)),
        ("failed", "failed", True, True, ("retrying", "in progress")),
        ("succeeded", "pending", False, True, ()),
        ("weird", "succeeded", False, True, ()),
    ],
)
def test_orchestration_via(
    old: str, new: str, retried: bool, has_ops: bool, via: tuple[str, ...]
) -> None:
    assert orchestration_via(old, new, retried=retried, has_operations=has_ops) == via


def test_operation_via_legacy_retrying() -> None:
    assert operation_via("failed", "pending") == ("retrying",)
    assert operation_via("succeeded", "pending") == ()
