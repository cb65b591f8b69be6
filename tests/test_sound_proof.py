"""The incremental proof under read skew (docs/keb-api.md §13, keb-concurrency.md §0): KEB's
workers move operations between the orchestration GET that gave ``operationStats`` and the
lists read after it. A state inferred from those counts is recorded only when a closing GET
after the lists shows the same state, description and stats; otherwise only what was read
directly is recorded, and the next cycle sweeps fully.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.test_incremental import FULL, SIZE, World
from watcher.core.models import FAILED, IN_PROGRESS, PENDING, SUCCEEDED, Orchestration


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
    """Run ``action`` at the ``number``-th call of this poll: each request is a call, and
    so is the moment between its two queries (an orchestration GET and a list page are
    two calls each)."""
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


# -- each refusal and guard of the proof, reached, with its mode and request count pinned ---


def fail_and_retry(world: World) -> tuple[int, int]:
    """op 0 in progress, op 1 failed and retried (a new pending row for its runtime at the
    tail, before KEB writes the retry description); returns the indexes (0, retry row)."""
    world.move(range(0, 2), IN_PROGRESS)
    assert world.poll()[0].mode == "incremental"
    world.move(range(1, 2), FAILED, "quota exceeded")
    assert world.poll()[0].mode == "incremental"
    world.keb._new_op(world.keb.ops[1].runtime)
    result, requests = world.poll()
    assert (result.mode, requests) == ("incremental", 4)  # GET, in progress, tail, closing
    return 0, len(world.keb.ops) - 1


def test_a_failure_hidden_by_the_per_instance_count_is_read_by_its_own_get(
    world: World,
) -> None:
    """op 0 fails while the retry row of a failed runtime starts: one write moves pending
    -1, in progress +1 and failed -1, the other failed +1, so ``failed`` does not move. The
    departed operation is asked for by itself, never assumed succeeded."""
    a, retry = fail_and_retry(world)
    world.move(range(a, a + 1), FAILED, "shoot reconciliation timed out")
    world.move(range(retry, retry + 1), IN_PROGRESS)
    result, requests = world.poll()
    assert (result.mode, requests) == ("incremental", 5)  # GET, in progress, tail, op, closing
    op = world.store.operations_by_id(world.keb.orch_id, [world.keb.ops[a].op_id])
    assert op[world.keb.ops[a].op_id].state == FAILED
    assert op[world.keb.ops[a].op_id].description == "shoot reconciliation timed out"


@pytest.mark.parametrize(
    ("key", "requests_made", "why"),
    [
        ("succeeded", 4, "counts do not add up"),  # GET, in progress, tail, closing
        ("failed", 5, "failed runtimes do not add up"),  # and the failed list
    ],
)
def test_counts_the_operations_cannot_explain_are_refused(
    world: World, key: str, requests_made: int, why: str
) -> None:
    """The final equality: a KEB answer whose raw counts, or whose per-instance ``failed``,
    the predicted operations do not reproduce is not recorded (the cycle defers)."""
    world.move(range(0, 3), IN_PROGRESS)
    real = world.keb.get_orchestration

    async def off(orchestration_id: str) -> Orchestration:
        orch = await real(orchestration_id)
        stats = dict(orch.operation_stats or {})
        stats[key] = stats.get(key, 0) + 1
        return replace(orch, operation_stats=stats)

    world.keb.get_orchestration = off  # type: ignore[method-assign]
    result, requests = world.poll()
    assert (result.mode, requests) == ("deferred", requests_made)
    assert why in result.reason
    assert set(stored_states(world).values()) == {PENDING}
    world.keb.get_orchestration = real  # type: ignore[method-assign]
    result, requests = world.poll()
    assert (result.mode, requests) == ("full", FULL)


def test_the_tail_stops_at_a_full_last_page(world: World) -> None:
    for i in range(100):  # exactly one page of new operations: 600 in all
        world.keb._new_op(f"rt-new-{i:03d}")
    result, requests = world.poll()
    assert (result.mode, requests) == ("incremental", 4)  # GET, in progress, page 6, closing
    assert len(stored_states(world)) == 600


def test_a_read_beyond_a_full_sweep_plus_one_is_refused(world: World) -> None:
    world.move(range(0, 400), IN_PROGRESS)
    result, requests = world.poll()
    assert (result.mode, requests) == ("incremental", 7)  # GET, 4 pages, tail, closing
    world.move(range(0, 1), FAILED, "quota exceeded")
    for i in range(150):  # two tail pages
        world.keb._new_op(f"rt-new-{i:03d}")
    result, requests = world.poll()
    # GET, 4 in-progress pages, 2 tail pages, the failed list: 8 = a full sweep plus one
    # (for the 500 known operations); the closing GET would be the 9th: refused, deferred.
    assert (result.mode, requests) == ("deferred", 8)
    assert "closing GET would cost more than a full sweep" in result.reason
    assert world.poll()[0].mode == "full"


def test_a_read_behind_the_stored_state_never_takes_it_backwards(world: World) -> None:
    """KEB's init step can re-apply ``in progress`` on top of ``canceled`` when it loses the
    optimistic-lock race to a cancel (keb-concurrency.md §3.1): the incremental proof
    refuses the move, and the full sweep after it keeps ``canceled`` until the operation
    ends."""
    op = world.keb.ops[0]
    world.move(range(0, 1), "canceled", "Operation was canceled")
    world.move(range(1, 2), IN_PROGRESS)
    assert world.poll()[0].mode == "incremental"
    world.move(range(0, 1), IN_PROGRESS, "Operation created")
    result, requests = world.poll()
    assert (result.mode, requests) == ("deferred", 3)  # GET, in progress, tail
    assert "went from 'canceled' to 'in progress'" in result.reason
    result, requests = world.poll()
    assert (result.mode, requests) == ("full", FULL)
    assert stored_states(world)[op.op_id] == "canceled"
    world.move(range(0, 1), SUCCEEDED, "Operation succeeded")
    assert world.poll()[0].mode == "deferred"  # the counts hold the kept state against it
    assert world.poll()[0].mode == "full"
    assert stored_states(world)[op.op_id] == SUCCEEDED


def test_an_operation_read_twice_keeps_the_later_state(world: World) -> None:
    """A new operation read in progress in the in-progress list and failed on the tail read
    after it (it ended in between): the later read stays; KEB moved, so the cycle records
    what it read and the next one sweeps."""
    new = world.keb._new_op("rt-new")
    assert world.poll()[0].mode == "incremental"
    world.keb._move(new, IN_PROGRESS, "Operation created")
    # Calls: the GET (row, stats), the in-progress page (page, count), then the tail.
    at_request(world, 5, lambda: world.keb._move(new, FAILED, "quota exceeded"))
    result, requests = world.poll()
    world.keb.interleave = None
    assert (result.mode, requests) == ("partial", 4)  # GET, in progress, tail, closing
    assert stored_states(world)[new.op_id] == FAILED
    assert world.poll()[0].mode == "full"


def test_the_pending_list_is_not_read_when_the_closing_get_would_not_fit(world: World) -> None:
    """6 operations went straight to succeeded: naming them needs the pending list (5 pages),
    and with the closing GET that is one request beyond a full sweep plus one."""
    world.move(range(11, SIZE, 97), SUCCEEDED, "Operation succeeded")
    result, requests = world.poll()
    assert (result.mode, requests) == ("deferred", 3)  # GET, in progress, tail
    result, requests = world.poll()
    assert (result.mode, requests) == ("full", FULL)


def test_when_the_first_reads_fill_the_budget_the_sweep_comes_at_once(world: World) -> None:
    world.move(range(0, SIZE), IN_PROGRESS)
    result, requests = world.poll()
    assert (result.mode, requests) == ("incremental", FULL + 1)  # GET, 5 pages, tail, closing
    world.move(range(0, 1), FAILED, "quota exceeded")
    result, requests = world.poll()  # in progress (5) + tail + failed: no room for closing
    assert (result.mode, requests) == ("full", FULL)


def test_a_sweep_while_the_orchestration_moves_records_the_operations_it_read(
    world: World,
) -> None:
    """The orchestration's description changes while every page is read: the operations
    read are recorded (never nothing, so a busy orchestration cannot starve), the
    orchestration is not, and the next cycle sweeps again."""
    world.move(range(0, 5), IN_PROGRESS)
    world.keb.description = "Scheduled 500 operations, retried 0 operations"  # forces a sweep
    closing = 2 + 2 * 5 + 1  # the GET and five pages (two calls each), the closing GET
    at_request(world, closing, lambda: setattr(world.keb, "description", "changed"))
    result, requests = world.poll()
    world.keb.interleave = None
    assert (result.mode, requests) == ("partial", FULL)
    assert {stored_states(world)[op.op_id] for op in world.keb.ops[:5]} == {IN_PROGRESS}
    kinds = [t.kind.value for t in world.store.history(world.keb.orch_id)]
    assert "orchestration_description" not in kinds
    result, _ = world.poll()
    assert result.mode == "full"
    kinds = [t.kind.value for t in world.store.history(world.keb.orch_id)]
    assert kinds.count("orchestration_description") == 1


def test_a_repeated_transition_gets_a_key_of_its_own_and_a_duplicate_does_not(
    world: World,
) -> None:
    """A legacy row resumed under its old ID fails twice: two events, keys ``k`` and
    ``k#2``. The same change recorded by another process (the stored row already shows
    its end) is not a repeat: its key must collide."""
    op = world.keb.ops[0]
    world.move(range(0, 1), IN_PROGRESS)
    world.poll()
    world.move(range(0, 1), FAILED, "quota exceeded")
    world.poll()
    [first] = [t for t in world.store.history(world.keb.orch_id) if t.to_state == FAILED]
    assert world.store.repeats(world.keb.orch_id, [first]) == {}  # a duplicate
    world.keb._move(op, "retrying", "Operation retry triggered")
    world.keb._move(op, PENDING, "Operation retry triggered")
    world.keb._move(op, IN_PROGRESS, "Operation created")
    while world.poll()[0].mode == "deferred":
        pass
    assert stored_states(world)[op.op_id] == IN_PROGRESS
    assert world.store.repeats(world.keb.orch_id, [first]) == {first.key: 1}
    world.move(range(0, 1), FAILED, "quota exceeded")
    while world.poll()[0].mode == "deferred":
        pass
    keys = [t.key for t in world.store.history(world.keb.orch_id) if t.to_state == FAILED]
    assert keys == [first.key, f"{first.key}#2"]
