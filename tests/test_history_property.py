"""Property: whatever KEB does and whenever we poll, the recorded history is the truth.

Random KEB histories (fake_keb.FakeKeb) are observed at random poll points, with restarts
(the store closed and reopened, a new engine) in between and world steps interleaved between
the requests of one observation (paging races). After the world settles and a last poll, for
every operation the recorded path (baseline state, then each transition's passed-through and
target states) equals the truth from that state on: each completion exactly once, no
regressions, nothing lost. The same holds for the orchestration.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fake_keb import FakeKeb
from tests.history_check import (
    check_completions,
    check_operation,
    check_orchestration,
    first_kinds,
    recorded_paths,
)
from watcher.config import PollConfig
from watcher.core.models import PENDING
from watcher.engine.cycle import Engine
from watcher.engine.incremental import full_sweep_cost
from watcher.errors import KebResponseError
from watcher.faces.reports import transition_json
from watcher.store.database import Store

CLOCK = datetime(2026, 1, 1, tzinfo=UTC)


def history_dicts(store: Store, orch_id: str) -> list[dict[str, object]]:
    return [transition_json(t) for t in store.history(orch_id)]


def run_history(
    tmp: Path, seed: int, size: int, workers: int, poll_every: float, race: float, spread: bool
) -> None:
    rng = random.Random(seed)
    keb = FakeKeb(random.Random(seed + 1), size=size, workers=workers, spread=spread)
    db = tmp / f"w-{uuid.uuid4().hex}.db"
    store = Store(db)
    store.track([keb.orch_id], None, CLOCK)

    def engine(s: Store, full_every: float) -> Engine:
        return Engine(
            s, keb, PollConfig(full_sweep_every=full_every, stuck_after=0.0), clock=lambda: CLOCK
        )

    full_every = rng.choice([0.0, 10**9])
    steps = 0
    baseline: tuple[tuple[int, dict[str, int]], tuple[int, dict[str, int]]] | None = None
    while not keb.finished and steps < 5000:
        keb.step()
        steps += 1
        if rng.random() < poll_every:
            if rng.random() < 0.2:  # a restart: a new process opens the same database
                store.close()
                store = Store(db)
            keb.interleave = lambda: keb.step() if rng.random() < race else None
            before = keb.marks()
            requests, lists = keb.requests, len(keb.lists)
            report = asyncio.run(engine(store, full_every).poll_once())
            keb.interleave = None
            [result] = report.results
            # The bound (docs/contract.md §7): a full sweep plus one request, plus one GET
            # for each operation that vanished (its own 404 tells deletion from a race).
            vanished = sum(op.vanished for op in keb.ops)
            assert keb.requests - requests <= full_sweep_cost(len(keb.ops)) + 1 + vanished
            # The pending list is never read in a cycle that sweeps the whole list.
            read = keb.lists[lists:]
            assert not ((PENDING,) in read and () in read), read
            if baseline is None and result.ok and result.mode != "deferred":
                baseline = (before, keb.marks())  # the poll that took the baseline
            # A list that kept changing while paged fails the cycle (KEB's answers did not
            # hold together); nothing is recorded and a later cycle catches up.
            assert all(isinstance(r.error, KebResponseError) for r in report.failed)
    # The world has settled: one poll records the rest, or, when an incremental proof had to
    # be deferred, the full sweep of the cycle after it.
    report = asyncio.run(engine(store, 10**9).poll_once())
    if any(r.mode == "deferred" for r in report.results):
        report = asyncio.run(engine(store, 10**9).poll_once())
    assert [r.mode for r in report.results] != ["deferred"]

    if baseline is None:  # never polled while the world moved: the last poll is the baseline
        baseline = (keb.marks(), keb.marks())
    (orch_before, ops_before), (orch_after, ops_after) = baseline
    history = history_dicts(store, keb.orch_id)
    orch_path, op_paths = recorded_paths(history)
    check_orchestration(orch_path, keb.orch_truth, range(orch_before - 1, orch_after))
    stored = dict(store.conn.execute("SELECT operation_id, state FROM operations").fetchall())
    kinds = first_kinds(history)
    for op_id, truth in keb.truth.items():
        check_operation(
            op_id,
            op_paths.get(op_id),
            truth,
            stored.get(op_id),
            first_kind=kinds.get(op_id),
            retry=op_id in keb.retry_ops,
            starts=range(ops_before.get(op_id, 1) - 1, ops_after.get(op_id, 1)),
        )
    check_completions(history)
    store.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10**6),
    size=st.integers(0, 260),
    workers=st.integers(1, 30),
    poll_every=st.sampled_from([0.05, 0.2, 0.6, 1.0]),
    race=st.sampled_from([0.0, 0.0, 0.05, 0.3]),
    spread=st.booleans(),
)
def test_recorded_history_matches_truth(
    tmp_path: Path, seed: int, size: int, workers: int, poll_every: float, race: float, spread: bool
) -> None:
    run_history(tmp_path, seed, size, workers, poll_every, race, spread)
