"""KEB moves operations between a poller's requests (docs/keb-api.md §13, keb-concurrency.md):
the simulator's ``--moves`` and the ``handoffs`` and ``legacy-retrying`` scenarios, and the
real CLI against them over real HTTP, its history compared with the ground truth exactly.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Keb, write_config
from tests.test_ground_truth import check_against_truth, follow, poll_recording
from watcher.core.models import operation_stats
from watcher.sim import SimServer, Simulator, TruthEvent

pytestmark = pytest.mark.slow


@pytest.fixture
def moving(tmp_path: Path) -> Iterator[Any]:
    started: list[Keb] = []

    def start(scenario: str, moves: float, seed: int = 1) -> Keb:
        sim = Simulator.from_scenario(scenario, seed=seed, moves=moves)
        server = SimServer(sim).start()
        config = write_config(tmp_path / f"{scenario}-{seed}.toml", server.url, sim.token)
        started.append(Keb(sim, server, config))
        return started[-1]

    yield start
    for keb in started:
        keb.server.stop()


def op_moves(truth: list[TruthEvent]) -> Counter[tuple[str | None, str]]:
    return Counter(
        (e.from_state, e.to_state)
        for e in truth
        if e.operation_id is not None and e.from_state != e.to_state
    )


def stats_after_each_event(truth: list[TruthEvent]) -> list[tuple[TruthEvent, dict[str, int]]]:
    """``operationStats`` replayed from the truth, after every operation event."""
    states: dict[str, tuple[str, str]] = {}
    out = []
    for e in truth:
        if e.operation_id is None:
            continue
        states[e.operation_id] = (e.runtime_id, e.to_state)
        out.append((e, operation_stats(states.values())))
    return out


# -- the simulator ------------------------------------------------------------------------


def test_moves_make_the_get_and_the_lists_see_different_moments() -> None:
    """With ``moves``, the in-progress list disagrees with the stats of the GET just before
    it (a worker moved in between); without, never."""

    def disagreements(moves: float) -> int:
        sim = Simulator.from_scenario("handoffs", seed=2, moves=moves)
        [orch_id] = sim.orchestration_ids()
        n = 0
        for _ in range(60):
            stats = sim.get_orchestration(orch_id)["operationStats"]
            listed = sim.list_operations(orch_id, 1, 100, ["in progress"])["totalCount"]
            n += listed != stats.get("in progress", 0)
            sim.advance(7.0)
        return n

    assert disagreements(0.0) == 0
    assert disagreements(1.0) > 0


def test_handoffs_are_separate_writes_and_skips_never_run() -> None:
    sim = Simulator.from_scenario("handoffs", seed=3)
    [orch_id] = sim.orchestration_ids()
    sim.run_until_finished()
    truth = sim.truth(orch_id)
    moves = op_moves(truth)
    assert moves[("pending", "succeeded")] > 0  # preempted, never in progress
    assert moves[("pending", "failed")] + moves[("in progress", "failed")] > 0
    ends = {e.time for e in truth if e.to_state in ("succeeded", "failed")}
    starts = [e.time for e in truth if (e.from_state, e.to_state) == ("pending", "in progress")]
    # The worker takes the next operation 5 ms after the previous one ended: two writes,
    # never one instant.
    assert not [t for t in starts if t in ends]
    assert [t for t in starts if any(0 < (t - end).total_seconds() <= 0.01 for end in ends)]
    skipped = {
        e.operation_id for e in truth if (e.from_state, e.to_state) == ("pending", "succeeded")
    }
    ran = {e.operation_id for e in truth if e.to_state == "in progress"}
    assert skipped
    assert not skipped & ran


def test_a_retried_instance_starting_moves_three_counters_in_one_write() -> None:
    """Per-instance ``failed`` (keb-concurrency.md §1.1): pending -1, in progress +1, failed -1."""
    sim = Simulator.from_scenario("handoffs", seed=3)
    [orch_id] = sim.orchestration_ids()
    sim.run_until_finished()
    replay = stats_after_each_event(sim.truth(orch_id))
    triple = 0
    for (_, before), (e, after) in itertools.pairwise(replay):
        if (e.from_state, e.to_state) != ("pending", "in progress"):
            continue
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in {*before, *after}}
        if delta.get("failed") == -1:
            assert delta.get("pending") == -1
            assert delta.get("in progress") == 1
            triple += 1
    assert triple > 0


def test_legacy_rows_fail_twice_under_one_id() -> None:
    sim = Simulator.from_scenario("legacy-retrying", seed=1)
    [orch_id] = sim.orchestration_ids()
    sim.run_until_finished()
    per_op = Counter(
        e.operation_id
        for e in sim.truth(orch_id)
        if (e.from_state, e.to_state) == ("in progress", "failed")
    )
    assert sorted(per_op.values())[-1] == 2
    descriptions = {e.description for e in sim.truth(orch_id) if e.from_state == "retrying"}
    assert descriptions == {"Operation retry triggered"}


def test_the_cli_offers_moves_and_the_new_scenarios() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "watcher", "sim", "--help"], capture_output=True, text=True
    ).stdout
    assert "--moves" in out
    assert "handoffs" in out
    assert "legacy-retrying" in out
    served = subprocess.Popen(
        [sys.executable, "-m", "watcher", "sim", "--port", "0", "--speed", "0", "--moves", "1",
         "--scenario", "handoffs"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert served.stdout is not None
        banner = served.stdout.readline()
    finally:
        served.terminate()
        served.wait(timeout=10)
    assert "scenario 'handoffs'" in banner
    assert "moves 1" in banner
    bad = subprocess.run(
        [sys.executable, "-m", "watcher", "sim", "--moves", "2"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert "--moves" in bad.stderr


# -- the watcher against it -----------------------------------------------------------------


def test_a_legacy_operation_failing_twice_under_one_id_is_recorded(
    keb_factory: Any, cli: Cli
) -> None:
    """The second ``in progress -> failed`` is a new event, never a key collision: every
    poll exits 0, ``list`` ends at failed, the history has both failures."""
    keb = keb_factory("legacy-retrying")
    [orch_id] = keb.sim.orchestration_ids()
    cli("--config", str(keb.config), "track", "--no-check", orch_id)
    for _ in range(200):
        result = poll_recording(keb, cli)
        assert result.code == 0, result.err
        if keb.sim.all_finished():
            break
        keb.sim.advance(20.0)
    result = poll_recording(keb, cli)
    assert result.code == 0, result.err
    [listed] = cli("--config", str(keb.config), "list", "-o", "json").json()
    assert listed["state"] == "failed"
    history = cli("--config", str(keb.config), "history", orch_id, "-o", "json").json()
    failures = Counter(
        t["operationID"] for t in history if t["operationID"] and t["to"] == "failed"
    )
    assert 2 in failures.values(), failures
    check_against_truth(keb, cli)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_poll_during_hand_offs_records_only_what_kEB_showed(
    moving: Any, cli: Cli, seed: int
) -> None:
    keb = moving("handoffs", moves=0.5, seed=seed)
    follow(keb, cli, (9.0, 23.0, 4.0))
    check_against_truth(keb, cli)


def test_hand_offs_during_a_poll_are_met_with_a_partial_record(moving: Any, cli: Cli) -> None:
    """The mode is not idle: workers move while polls read, and the watcher records only
    what it read (``partial``) and sweeps in the next cycle, never a counted state."""
    keb = moving("handoffs", moves=1.0, seed=4)
    cli("--config", str(keb.config), "track", "--no-check", *keb.sim.orchestration_ids())
    outputs = []
    for _ in range(40):
        result = poll_recording(keb, cli)
        assert result.code == 0, result.err
        outputs.append(result.out)
        keb.sim.advance(7.0)
    # The closing GET of an incremental cycle saw KEB move (not only a sweep that did).
    assert any("(partial: KEB moved while read" in out for out in outputs), outputs
    check_against_truth(keb, cli)
