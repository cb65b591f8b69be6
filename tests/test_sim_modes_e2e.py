"""KEB's write order and read races (docs/keb-api.md §12.2, §12.5, §12.6, §12.10), end to end: the
real CLI (`watcher track`, `watcher poll`) against the simulator over real HTTP, and
`watcher history` compared with the simulator's ground truth, exactly.

* ``retry-rows``: a retry inserts its rows one at a time and only then writes the
  description; polls land in between;
* ``races``: every answer is two queries (a page and its ``totalCount``, an orchestration and
  its ``operationStats``) and the world moves in between; no cycle makes more requests than
  a full sweep plus one, and none reads the pending list and sweeps in one cycle;
* ``canceling``: operations canceled one by one as workers pick them up, then the rest in bulk;
* ``retry-running``: a retry while in progress runs beyond ``workers``.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Keb, write_config
from tests.test_ground_truth import check_against_truth, follow, poll_recording
from watcher.sim import SimServer, Simulator, TruthEvent

pytestmark = pytest.mark.slow


@pytest.fixture
def raced(tmp_path: Path) -> Iterator[Any]:
    started: list[Keb] = []

    def start(scenario: str, races: float, seed: int = 1) -> Keb:
        sim = Simulator.from_scenario(scenario, seed=seed, races=races)
        server = SimServer(sim).start()
        config = write_config(tmp_path / f"{scenario}.toml", server.url, sim.token)
        started.append(Keb(sim, server, config))
        return started[-1]

    yield start
    for keb in started:
        keb.server.stop()


def cycles(keb: Keb) -> list[int]:
    with sqlite3.connect(keb.config.parent / "watcher.db") as conn:
        return [row[0] for row in conn.execute("SELECT requests FROM cycles ORDER BY id")]


def max_parallel(truth: list[TruthEvent]) -> int:
    running: set[str] = set()
    most = 0
    for e in truth:
        if e.operation_id is None:
            continue
        if e.to_state == "in progress":
            running.add(e.operation_id)
        else:
            running.discard(e.operation_id)
        most = max(most, len(running))
    return most


def test_a_poll_between_the_retry_rows_and_the_description(keb_factory: Any, cli: Cli) -> None:
    keb = keb_factory("retry-rows")
    [orch_id] = keb.sim.orchestration_ids()
    seen: list[tuple[int, str]] = []
    cli("--config", str(keb.config), "track", orch_id)
    while not (keb.sim.all_finished() and "finished" in str(seen[-1:])):
        summary = keb.sim.state_summary()["orchestrations"][0]
        seen.append((summary["operations"], summary["description"]))
        result = poll_recording(keb, cli)
        assert result.code == 0, result.err
        listed = cli("--config", str(keb.config), "list", "-o", "json").json()
        if listed[0]["finished"]:
            seen.append((0, "finished"))
        assert len(seen) < 400
        keb.sim.advance(25.0)
    # Some polls saw new rows while the description did not say "retried" yet.
    assert any(n > 20 and "retried" not in desc for n, desc in seen), seen
    check_against_truth(keb, cli)


@pytest.mark.parametrize(
    ("scenario", "steps"),
    [
        ("failures", (45.0, 20.0)),
        ("retry-rows", (25.0, 60.0)),
        ("retry-running", (30.0, 15.0)),
        ("canceling", (20.0, 45.0)),
    ],
)
def test_pages_and_counts_read_at_different_moments(
    raced: Any, cli: Cli, scenario: str, steps: tuple[float, ...]
) -> None:
    keb = raced(scenario, races=0.3)
    follow(keb, cli, steps)
    check_against_truth(keb, cli)
    total = keb.sim.state_summary()["orchestrations"][0]["operations"]
    bound = 2 + math.ceil(total / 100) + 1  # the GET, every page, the closing GET; plus one
    assert max(cycles(keb)) <= bound, (cycles(keb), bound)


def test_the_race_mode_makes_lists_disagree_and_polls_defer(raced: Any, cli: Cli) -> None:
    """The mode is not idle: some answers disagree with themselves, and the watcher defers."""
    keb = raced("failures", races=0.5)
    cli("--config", str(keb.config), "track", "--no-check", *keb.sim.orchestration_ids())
    outputs = []
    for _ in range(40):
        result = cli("--config", str(keb.config), "poll")
        outputs.append(result.out + result.err)
        keb.sim.advance(30.0)
    assert any("deferred" in out for out in outputs), outputs


def test_canceling_cancels_one_by_one_before_the_bulk(keb_factory: Any, cli: Cli) -> None:
    keb = keb_factory("canceling")
    follow(keb, cli, (20.0, 45.0))
    paths = check_against_truth(keb, cli)
    [orch_id] = keb.sim.orchestration_ids()
    assert paths[orch_id][-2:] == ["canceling", "canceled"]
    canceled = [e.description for e in keb.sim.truth(orch_id) if e.to_state == "canceled"]
    one_by_one = f"orchestration {orch_id} was canceled"
    assert one_by_one in canceled
    assert "Operation was canceled" in canceled
    history = cli("--config", str(keb.config), "history", orch_id, "-o", "json").json()
    assert sum(t["to"] == "canceled" for t in history if t["operationID"]) == len(
        [d for d in canceled if d != "Orchestration was canceled"]
    )


def test_a_retry_while_in_progress_runs_beyond_workers(keb_factory: Any, cli: Cli) -> None:
    keb = keb_factory("retry-running")
    follow(keb, cli, (30.0, 15.0))
    check_against_truth(keb, cli)
    [orch_id] = keb.sim.orchestration_ids()
    assert max_parallel(keb.sim.truth(orch_id)) > 4  # workers = 4
    history = cli("--config", str(keb.config), "history", orch_id, "-o", "json").json()
    assert any(t["kind"] == "operation_retry" for t in history)
