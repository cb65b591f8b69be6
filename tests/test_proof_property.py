"""Property (PRODUCT.md "What is recorded is what KEB showed"), checked after *every* cycle:
a truth model (``FakeKeb`` with worker hand-offs, skips, retries, cancels and deletions) moves
operations between every request of a cycle and between cycles, and

* every recorded operation state is one the operation really had, and none goes backwards;
* every transition recorded in the cycle starts and ends in states the operation really had;
* after a poll during which nothing moved, every recorded state equals KEB's. A cycle that
  *defers* (documented: it records nothing and the next one sweeps) is not such a poll; the
  quiet polls go on until one records. The one blind spot of the unchanged path is checked
  around, not hidden: while a retry's rows are in but its description is not (KEB writes
  the rows first), a new row and a retried operation failing again leave ``operationStats``
  as they were; the description written next makes the following cycle sweep.

``test_history_property`` checks the whole recorded path at the end; this one catches a
wrong state that a later full sweep would have repaired.
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
from watcher.config import PollConfig
from watcher.engine.cycle import Engine, PollResult
from watcher.store.database import Store

CLOCK = datetime(2026, 1, 1, tzinfo=UTC)


class Proof:
    def __init__(self, tmp: Path, seed: int, size: int, workers: int, spread: bool) -> None:
        self.rng = random.Random(seed)
        self.keb = FakeKeb(
            random.Random(seed + 1), size=size, workers=workers, spread=spread, handoffs=True
        )
        self.store = Store(tmp / f"p-{uuid.uuid4().hex}.db")
        self.store.track([self.keb.orch_id], None, CLOCK)
        self.engine = Engine(
            self.store,
            self.keb,
            PollConfig(full_sweep_every=1e9, stuck_after=0.0),
            clock=lambda: CLOCK,
        )
        self.stored: dict[str, str] = {}
        self.seen_transitions = 0

    def poll(self, move: float) -> PollResult | None:
        """One cycle; ``None`` when nothing is polled any more (finished and delivered)."""
        rng, keb = self.rng, self.keb
        calls = [0]
        hand_off_at = rng.choice((3, 3, 4, 5, 6))  # a worker hand-off lands at this call for sure

        def interleave() -> None:
            calls[0] += 1
            if calls[0] == hand_off_at:
                keb.hand_off()
            elif rng.random() < move:
                _ = (rng.random() < 0.5 and keb.hand_off()) or keb.step()

        keb.interleave = interleave if move else None
        try:
            results = asyncio.run(self.engine.poll_once()).results
        finally:
            keb.interleave = None
        self.check()
        return results[0] if results else None

    def check(self) -> None:
        truth = self.keb.truth
        rows = self.store.conn.execute("SELECT operation_id, state FROM operations")
        stored = dict(rows.fetchall())
        for op_id, state in stored.items():
            path = truth[op_id]
            assert state in path, f"{op_id}: stored {state!r}, KEB's path {path}"
            before = self.stored.get(op_id)
            if before is not None:
                assert path.index(state) >= path.index(before), (op_id, before, state, path)
        history = self.store.history(self.keb.orch_id)
        for t in history[self.seen_transitions :]:
            if t.operation_id is None or t.to_state is None:
                continue
            path = truth[t.operation_id]
            assert t.to_state in path, (t.operation_id, t.to_state, path)
            assert t.from_state is None or t.from_state in path, (t.operation_id, t, path)
        self.seen_transitions = len(history)
        self.stored = stored

    def quiet_poll(self) -> None:
        """Nothing moves during this poll: afterwards every stored state is KEB's."""
        for _ in range(3):
            result = self.poll(0.0)
            if result is None:
                break
            assert result.ok, result.error
            if result.mode != "deferred":
                break
        else:
            raise AssertionError("three quiet polls in a row deferred")
        if self.keb.staged_total:
            # A retry's rows are in, its description is not yet (KEB's write order, §12.2):
            # a new row and a retried operation failing again can leave operationStats
            # exactly as they were (failed counts instances). The unchanged path cannot see
            # that; the description written next makes the cycle after it sweep.
            return
        live = {op.op_id: op.state for op in self.keb.ops if not op.vanished}
        assert self.stored == live, {
            op_id: (self.stored.get(op_id), state)
            for op_id, state in live.items()
            if self.stored.get(op_id) != state
        }


def run_proof(tmp: Path, seed: int, size: int, workers: int, move: float, spread: bool) -> None:
    proof = Proof(tmp, seed, size, workers, spread)
    rng, keb = proof.rng, proof.keb
    cycles = 0
    while not keb.finished and cycles < 150:
        for _ in range(rng.randint(0, 3)):
            rng.choice((keb.step, keb.step, keb.hand_off, keb.skip))()
        proof.poll(move)
        cycles += 1
        if rng.random() < 0.3:
            proof.quiet_poll()
    proof.quiet_poll()
    proof.store.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10**6),
    size=st.integers(0, 230),
    workers=st.integers(1, 20),
    move=st.sampled_from([0.2, 0.5, 1.0]),
    spread=st.booleans(),
)
def test_every_cycle_records_only_what_keb_had(
    tmp_path: Path, seed: int, size: int, workers: int, move: float, spread: bool
) -> None:
    run_proof(tmp_path, seed, size, workers, move, spread)
