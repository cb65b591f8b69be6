"""`watcher track ID && watcher poll`, repeated against the simulator, records exactly what
KEB did, for every scenario: the real CLI, real HTTP, the simulator's ground truth."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import pytest

from tests.conftest import Cli, Keb, Result
from tests.history_check import (
    check_completions,
    check_operation,
    check_orchestration,
    first_kinds,
    recorded_paths,
)
from watcher.sim import TruthEvent

TERMINAL = ("succeeded", "failed", "canceled")


def truth_paths(events: Iterable[TruthEvent]) -> tuple[list[str], dict[str, list[str]]]:
    orch: list[str] = []
    ops: dict[str, list[str]] = {}
    for e in events:
        if e.operation_id is None:
            if not orch or orch[-1] != e.to_state:
                orch.append(e.to_state)
        elif e.from_state is None or e.from_state != e.to_state:
            ops.setdefault(e.operation_id, []).append(e.to_state)
    return orch, ops


def truth_lengths(keb: Keb) -> dict[str, int]:
    """How long each truth path is now, by orchestration and operation ID."""
    lengths: dict[str, int] = {}
    for orch_id in keb.sim.orchestration_ids():
        orch, ops = truth_paths(keb.sim.truth(orch_id))
        lengths[orch_id] = len(orch)
        lengths.update((op_id, len(path)) for op_id, path in ops.items())
    return lengths


def poll_recording(keb: Keb, cli: Cli) -> Result:
    """`watcher poll`, remembering where the truth stood around the polls that took the
    baselines (``keb.baseline``): from before the first poll to after the first one that
    polled every orchestration."""
    before = truth_lengths(keb) if keb.baseline is None else keb.baseline[0]
    result = cli("--config", str(keb.config), "poll")
    if keb.baseline_open:
        keb.baseline = (before, truth_lengths(keb))
        keb.baseline_open = result.code != 0
    return result


def follow(keb: Keb, cli: Cli, steps: Iterable[float], *, max_polls: int = 400) -> int:
    """Poll until KEB is done, advancing virtual time between polls. A failed orchestration
    stays watched for retries by itself (``poll.retry_window``). Remembers where the truth
    stood around the first poll, which takes the baseline (``keb.baseline``)."""
    ids = keb.sim.orchestration_ids()
    assert cli("--config", str(keb.config), "track", "--no-check", *ids).code == 0
    for polls, step in enumerate(itertools.cycle(steps), start=1):
        result = poll_recording(keb, cli)
        assert result.code == 0, result.err
        tracked = {
            t["orchestrationID"]: t
            for t in cli("--config", str(keb.config), "list", "-o", "json").json()
        }
        if keb.sim.all_finished() and all(t["finished"] for t in tracked.values()):
            return polls
        assert polls < max_polls, "the scenario did not finish"
        keb.sim.advance(step)
    raise AssertionError("unreachable")


def baseline_positions(keb: Keb, key: str) -> range | None:
    """The truth positions the baseline of ``key`` can have seen: from where the truth stood
    before the first poll to where it stood after it (a poll may race KEB's writes)."""
    if keb.baseline is None:
        return None
    before, after = keb.baseline
    return range(max(before.get(key, 0) - 1, 0), after.get(key, 0))


def check_against_truth(keb: Keb, cli: Cli, ids: Iterable[str] = ()) -> dict[str, Any]:
    """Each history equals the truth from its baseline on, exactly (see ``history_check``)."""
    summary: dict[str, Any] = {}
    for orch_id in ids or keb.sim.orchestration_ids():
        history = cli("--config", str(keb.config), "history", orch_id, "-o", "json").json()
        orch_truth, op_truth = truth_paths(keb.sim.truth(orch_id))
        orch_path, op_paths = recorded_paths(history)
        check_orchestration(orch_path, orch_truth, baseline_positions(keb, orch_id))
        final = {
            op["operationID"]: op["state"]
            for op in keb.sim.list_operations(orch_id, 1, 100)["data"]
        }
        kinds = first_kinds(history)
        runtimes: set[str] = set()
        retries: set[str] = set()
        for e in keb.sim.truth(orch_id):
            if e.operation_id is not None and e.from_state is None:
                if e.runtime_id in runtimes:
                    retries.add(e.operation_id)  # a new operation for a runtime seen before
                runtimes.add(e.runtime_id)
        for op_id, truth in op_truth.items():
            check_operation(
                op_id,
                op_paths.get(op_id),
                truth,
                final.get(op_id),
                first_kind=kinds.get(op_id),
                retry=op_id in retries,
                starts=baseline_positions(keb, op_id),
            )
        check_completions(history, op_truth)
        assert orch_path[-1] == keb.sim.orchestration_state(orch_id)
        summary[orch_id] = orch_path
    return summary


@pytest.mark.parametrize(
    ("scenario", "steps"),
    [
        ("small", (60.0,)),
        ("failures", (45.0, 300.0, 20.0)),
        ("cancel", (90.0, 30.0)),
        ("retry", (60.0, 20.0, 200.0)),
        ("maintenance", (600.0, 1800.0)),
        ("demo", (30.0, 120.0)),
    ],
)
def test_history_matches_ground_truth(
    keb_factory: Any, cli: Cli, scenario: str, steps: tuple[float, ...]
) -> None:
    keb = keb_factory(scenario)
    follow(keb, cli, steps)
    paths = check_against_truth(keb, cli)
    if scenario == "cancel":
        assert next(iter(paths.values()))[-2:] == ["canceling", "canceled"]
    if scenario == "retry":
        assert "retrying" in next(iter(paths.values()))


def test_coarse_polling_records_passed_through_states(keb_factory: Any, cli: Cli) -> None:
    """Polls far apart still record every operation's path (pending -> in progress ->
    succeeded, with in progress as passed through)."""
    keb = keb_factory("small")
    follow(keb, cli, (900.0,))
    check_against_truth(keb, cli)
    orch_id = keb.sim.orchestration_ids()[0]
    history = cli("--config", str(keb.config), "history", orch_id, "-o", "json").json()
    assert any(t["via"] == ["in progress"] for t in history if t["kind"] == "operation_completed")
