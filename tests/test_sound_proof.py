"""The incremental proof under read skew (docs/keb-api.md §13, keb-concurrency.md §0): KEB's
workers move operations between the orchestration GET that gave ``operationStats`` and the
lists read after it. A state inferred from those counts is recorded only when a closing GET
after the lists shows the same state, description and stats; otherwise only what was read
directly is recorded, and the next cycle sweeps fully.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.test_incremental import FULL, World
from watcher.core.models import FAILED, IN_PROGRESS, PENDING, SUCCEEDED


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    assert w.poll()[0].mode == "full"
    yield w
    w.store.close()


def stored_states(world: World) -> dict[str, str]:
    rows = world.store.conn.execute("SELECT operation_id, state FROM operations")
    return dict(rows.fetchall())


def check_recorded_is_real(world: World, before: dict[str, str]) -> None:
    """Every stored state is one the operation really had, and none went backwards."""
    stored = stored_states(world)
    for op_id, state in stored.items():
        truth = world.keb.truth[op_id]
        assert state in truth, f"{op_id}: stored {state!r}, KEB's path {truth}"
        if op_id in before:
            assert truth.index(state) >= truth.index(before[op_id]), (op_id, before[op_id], state)


def at_request(world: World, number: int, action: Callable[[], None]) -> None:
    """Run ``action`` when KEB gets the ``number``-th call of this poll (a GET is two)."""
    calls = [0]

    def interleave() -> None:
        calls[0] += 1
        if calls[0] == number:
            action()

    world.keb.interleave = interleave


def test_a_hand_off_between_the_get_and_the_lists_is_not_counted_as_proof(world: World) -> None:
    """The issue's reproduction: the counts still add up after a worker hand-off, and the
    old proof stored ``succeeded`` for an operation KEB failed and ``pending`` for one KEB
    had finished."""
    a, c, d = (world.keb.ops[i] for i in (0, 1, 2))
    world.move(range(0, 1), IN_PROGRESS)
    assert world.poll()[0].mode == "incremental"
    world.keb._move(d, SUCCEEDED, "operation preempted by deprovisioning operation")
    before = stored_states(world)

    def hand_off() -> None:  # after the GET, before the in-progress list
        world.keb._move(a, FAILED, "quota exceeded")
        world.keb._move(c, IN_PROGRESS, "Operation created")

    at_request(world, 3, hand_off)
    result, requests = world.poll()
    world.keb.interleave = None
    check_recorded_is_real(world, before)
    assert result.mode == "partial"
    assert requests == 4  # GET, in progress, tail, closing GET
    stored = stored_states(world)
    assert stored[c.op_id] == IN_PROGRESS  # read directly: recorded
    assert stored[a.op_id] == IN_PROGRESS  # counted, not confirmed: not recorded yet
    assert stored[d.op_id] == PENDING
    # Nothing moves now: the next poll sweeps, and every stored state is KEB's.
    result, requests = world.poll()
    assert (result.mode, requests) == ("full", FULL)
    check_recorded_is_real(world, stored)
    assert stored_states(world) == {op.op_id: op.state for op in world.keb.ops}
    history = [t for t in world.store.history(world.keb.orch_id) if t.operation_id == a.op_id]
    assert [(t.from_state, t.to_state) for t in history] == [
        (PENDING, IN_PROGRESS),
        (IN_PROGRESS, FAILED),
    ]
