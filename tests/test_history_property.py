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
from watcher.diff import TransitionKind
from watcher.service import Engine
from watcher.store import Store

CLOCK = datetime(2026, 1, 1, tzinfo=UTC)


def recorded_paths(store: Store, orch_id: str) -> tuple[list[str], dict[str, list[str]]]:
    history = store.history(orch_id)
    baseline = next(t for t in history if t.kind is TransitionKind.BASELINE)
    orch_path = [baseline.to_state or ""]
    op_paths: dict[str, list[str]] = {}
    for t in history:
        if t.kind is TransitionKind.ORCHESTRATION_STATE:
            orch_path.extend([*t.via, t.to_state or ""])
        elif t.operation_id is not None:
            path = op_paths.setdefault(t.operation_id, [])
            if t.kind in (TransitionKind.OPERATION_ADDED, TransitionKind.OPERATION_RETRY):
                path.append(t.to_state or "")
            elif t.kind is TransitionKind.OPERATION_VANISHED:
                if not path:
                    path.append(t.from_state or "")
                path.append("vanished")
            else:
                if not path:
                    path.append(t.from_state or "")
                path.extend([*t.via, t.to_state or ""])
    return orch_path, op_paths


def is_suffix(recorded: list[str], truth: list[str]) -> bool:
    return any(
        recorded == truth[start:] for start, state in enumerate(truth) if state == recorded[0]
    )


def assert_suffix(recorded: list[str], truth: list[str], what: str) -> None:
    assert recorded, what
    assert is_suffix(recorded, truth), f"{what}: recorded {recorded} != truth {truth}"


def observable(truth: list[str]) -> list[list[str]]:
    """KEB cannot tell "in progress -> failed -> retrying -> in progress" from a retry of an
    in-progress orchestration (same descriptions, same new operations) when a poll missed the
    whole detour; both readings are then acceptable."""
    detour = ["in progress", "failed", "retrying", "in progress"]
    out = [truth]
    for i in range(len(truth) - 3):
        if truth[i : i + 4] == detour:
            out.append(truth[: i + 1] + truth[i + 4 :])
    return out


def run_history(
    tmp: Path, seed: int, size: int, workers: int, poll_every: float, race: float
) -> None:
    rng = random.Random(seed)
    keb = FakeKeb(random.Random(seed + 1), size=size, workers=workers)
    db = tmp / f"w-{uuid.uuid4().hex}.db"
    store = Store(db)
    store.track([keb.orch_id], None, CLOCK)

    def engine(s: Store, full_every: float) -> Engine:
        return Engine(s, keb, clock=lambda: CLOCK, full_sweep_every=full_every)

    full_every = rng.choice([0.0, 10**9])
    steps = 0
    while not keb.finished and steps < 5000:
        keb.step()
        steps += 1
        if rng.random() < poll_every:
            if rng.random() < 0.2:  # a restart: a new process opens the same database
                store.close()
                store = Store(db)
            keb.interleave = lambda: keb.step() if rng.random() < race else None
            report = asyncio.run(engine(store, full_every).poll_once())
            keb.interleave = None
            assert not report.failed, report.failed
            store.track([keb.orch_id], None, CLOCK)  # keep following a failed one for retry
    asyncio.run(engine(store, 10**9).poll_once())

    orch_path, op_paths = recorded_paths(store, keb.orch_id)
    assert any(is_suffix(orch_path, t) for t in observable(keb.orch_truth)), (
        orch_path,
        keb.orch_truth,
    )
    snapshot_ops = {row[0] for row in store.conn.execute("SELECT operation_id FROM operations")}
    for op_id, truth in keb.truth.items():
        if op_id in op_paths and truth[-1] == "vanished" and op_paths[op_id][-1] == "vanished":
            # What happened between the last poll and the deletion cannot be observed.
            seen = op_paths[op_id][:-1]
            assert any(truth[i : i + len(seen)] == seen for i in range(len(truth))), (
                op_id,
                seen,
                truth,
            )
        elif op_id in op_paths:
            assert_suffix(op_paths[op_id], truth, op_id)
        else:
            # Never changed since the baseline (or vanished before we ever saw it).
            assert op_id in snapshot_ops or truth[-1] == "vanished", op_id
            if op_id in snapshot_ops:
                row = store.conn.execute(
                    "SELECT state FROM operations WHERE operation_id = ?", (op_id,)
                ).fetchone()
                assert row[0] == truth[-1], (op_id, row[0], truth)
    completions: dict[str, int] = {}
    for t in store.history(keb.orch_id):
        if t.kind is TransitionKind.OPERATION_COMPLETED and t.operation_id:
            completions[t.operation_id] = completions.get(t.operation_id, 0) + 1
    assert all(n == 1 for n in completions.values()), completions
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
)
def test_recorded_history_matches_truth(
    tmp_path: Path, seed: int, size: int, workers: int, poll_every: float, race: float
) -> None:
    run_history(tmp_path, seed, size, workers, poll_every, race)
