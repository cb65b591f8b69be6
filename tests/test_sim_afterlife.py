"""Simulator scenarios for what KEB does after, around and instead of an outcome (issue 18):
operations outliving their orchestration, a retry that resolves nothing, a hanging operation,
a cancel that never concludes, a token without the orchestration group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.core.models import (
    CANCELING,
    FAILED,
    IN_PROGRESS,
    PENDING,
    RETRYING,
    SUCCEEDED,
    TERMINAL_ORCHESTRATION_STATES,
)
from watcher.sim import Simulator
from watcher.sim.tokens import TokenCheck, check_authorization


def _play(sim: Simulator, seconds: float, step: float = 60.0) -> list[dict[str, Any]]:
    """The orchestration's answers, one per ``step``."""
    [orch_id] = sim.orchestration_ids()
    seen = []
    for _ in range(int(seconds // step)):
        sim.advance(step)
        seen.append(sim.get_orchestration(orch_id))
    return seen


def test_operations_outlive_their_orchestrations_outcome() -> None:
    sim = Simulator.from_scenario("outlived", seed=3)
    seen = _play(sim, 3 * 3600)
    ended = next(o for o in seen if o["state"] in TERMINAL_ORCHESTRATION_STATES)
    assert ended["state"] == FAILED
    assert ended["operationStats"].get(IN_PROGRESS) == 3  # ended while 3 still ran
    last = seen[-1]
    assert last["state"] == FAILED
    assert last["operationStats"] == {FAILED: 1, SUCCEEDED: 11}  # they succeeded afterwards
    [orch_id] = sim.orchestration_ids()
    truth = sim.truth(orch_id)
    end_at = next(e.time for e in truth if e.operation_id is None and e.to_state == FAILED)
    late = [e for e in truth if e.operation_id and e.to_state == SUCCEEDED and e.time > end_at]
    assert len(late) == 3


def test_a_retry_that_resolves_nothing_goes_retrying_to_succeeded_with_failures_kept() -> None:
    sim = Simulator.from_scenario("retry-unresolved")
    states = []
    for answer in _play(sim, 3600, step=30.0):
        if not states or states[-1] != answer["state"]:
            states.append(answer["state"])
    assert states[-3:] == [FAILED, RETRYING, SUCCEEDED]
    final = sim.get_orchestration(sim.orchestration_ids()[0])
    assert final["operationStats"][FAILED] == 3
    assert final["operationStats"].get(PENDING, 0) == 0  # no new operation was created


def test_an_operation_hangs_in_progress() -> None:
    sim = Simulator.from_scenario("hanging")
    [orch_id] = sim.orchestration_ids()
    _play(sim, 60)
    first = sim.list_operations(orch_id)["data"][0]["operationID"]
    _play(sim, 84 * 60)
    assert sim.get_operation(orch_id, first)["state"] == IN_PROGRESS
    _play(sim, 10 * 60)
    assert sim.get_operation(orch_id, first)["state"] == SUCCEEDED  # it moves on
    assert sim.get_orchestration(orch_id)["state"] == IN_PROGRESS  # before the end
    _play(sim, 2 * 3600)
    assert sim.get_orchestration(orch_id)["state"] == SUCCEEDED


def test_a_cancel_that_never_concludes_stays_canceling() -> None:
    sim = Simulator.from_scenario("canceling-forever")
    seen = _play(sim, 86400, step=600.0)
    assert seen[-1]["state"] == CANCELING
    stats = seen[-1]["operationStats"]
    assert stats.get(IN_PROGRESS, 0) == 0
    assert stats[PENDING] > 0  # pending for good


def test_the_no_group_scenario_prints_a_token_its_gateway_refuses() -> None:
    sim = Simulator.from_scenario("no-group")
    assert check_authorization(f"Bearer {sim.token}") is TokenCheck.NO_GROUP
    assert check_authorization(f"Bearer {Simulator.from_scenario('small').token}") is TokenCheck.OK


def test_the_clock_starts_where_asked_and_only_the_times_shift() -> None:
    """`watcher sim` and `watcher demo` start the virtual clock at the real now (ages read
    as believable); the same seed gives the same world, IDs included."""
    start = datetime(2026, 12, 6, 3, 30, 12, 345678, tzinfo=UTC)
    fixed = Simulator.from_scenario("small")
    now = Simulator.from_scenario("small", start=start)
    assert now.epoch == start.replace(microsecond=0)
    assert now.now == start.replace(microsecond=0)
    assert now.orchestration_ids() == fixed.orchestration_ids()
    [orch_id] = now.orchestration_ids()
    created = datetime.fromisoformat(now.get_orchestration(orch_id)["createdAt"])
    assert timedelta(0) <= start - created < timedelta(seconds=2)  # seconds old, not years
    fixed.advance(600)
    now.advance(600)
    assert (
        now.get_orchestration(orch_id)["operationStats"]
        == (fixed.get_orchestration(orch_id)["operationStats"])
    )


def test_watcher_sim_starts_its_clock_at_the_real_now() -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "sim", "--port", "0", "--scenario", "small"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    [clock] = [line for line in lines if line.startswith("# virtual clock from ")]
    start = datetime.fromisoformat(clock.split()[-1])
    assert before <= start <= datetime.now(UTC)


def test_three_orchestrations_run_at_once_and_later_ones_wait_pending_with_no_operations() -> None:
    sim = Simulator.from_scenario("queued")
    ids = sim.orchestration_ids()
    sim.advance(300)
    answers = [sim.get_orchestration(o) for o in ids]
    assert [a["state"] for a in answers] == [IN_PROGRESS] * 3 + [PENDING] * 2
    assert [sim.list_operations(o)["totalCount"] for o in ids[3:]] == [0, 0]
    for _ in range(12):
        sim.advance(300)
    assert {sim.get_orchestration(o)["state"] for o in ids} == {SUCCEEDED}
    # First come, first served: the 4th started when the first slot freed, before the 5th.
    starts = [
        next(e.time for e in sim.truth(o) if e.operation_id is None and e.to_state == IN_PROGRESS)
        for o in ids
    ]
    assert starts[3] <= starts[4]
    assert starts[3] > min(starts[:3])
