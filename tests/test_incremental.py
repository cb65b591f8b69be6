"""The incremental proof, cycle by cycle: which mode each poll takes and how many requests it
makes, whatever the place in the pending list where operations start (docs/keb-api.md §12.1).

A wrong count here costs requests, not correctness, so the property test cannot see it; these
tests pin the cost: a cycle never makes more requests than a full sweep plus one.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fake_keb import FakeKeb
from watcher.config import PollConfig
from watcher.core.models import FAILED, IN_PROGRESS, PENDING, SUCCEEDED, Operation, Page
from watcher.engine.cycle import Engine, PollResult
from watcher.errors import KebListChanged
from watcher.store.database import Store

#: Settings whose periodic full sweep never comes due (and no stuck check).
NO_SWEEP = PollConfig(full_sweep_every=1e9, stuck_after=0.0)

CLOCK = datetime(2026, 1, 1, tzinfo=UTC)
SIZE = 500
FULL = 2 + math.ceil(SIZE / 100)  # GET, every page, the closing GET


class World:
    def __init__(self, tmp: Path) -> None:
        self.keb = FakeKeb(random.Random(0), size=SIZE, workers=50)
        self.keb.step()  # the orchestration starts: 500 pending operations
        self.store = Store(tmp / "w.db")
        self.store.track([self.keb.orch_id], None, CLOCK)
        self.engine = Engine(self.store, self.keb, NO_SWEEP, clock=lambda: CLOCK)

    def poll(self) -> tuple[PollResult, int]:
        before = self.keb.requests
        [result] = asyncio.run(self.engine.poll_once()).results
        assert result.ok, result.error
        return result, self.keb.requests - before

    def move(self, indexes: range, state: str, description: str = "") -> list[str]:
        ops = [self.keb.ops[i] for i in indexes]
        for op in ops:
            self.keb._move(op, state, description or op.description)
        return [op.op_id for op in ops]

    def stored(self, op_ids: list[str]) -> set[str]:
        return {op.state for op in self.store.operations_by_id(self.keb.orch_id, op_ids).values()}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    result, requests = w.poll()
    assert (result.mode, requests) == ("full", FULL)
    yield w
    w.store.close()


def test_nothing_changed_is_one_request(world: World) -> None:
    assert world.poll()[0].mode == "unchanged"
    assert world.poll()[1] == 1


def test_spread_pickups_cost_the_in_progress_list_and_the_tail(world: World) -> None:
    started = world.move(range(7, SIZE, 50), IN_PROGRESS)  # 10, all over the pending list
    result, requests = world.poll()
    assert result.mode == "incremental"
    assert requests == 4  # GET, the in-progress list, the tail page, the closing GET
    assert result.transitions == len(started)
    assert world.stored(started) == {IN_PROGRESS}


def test_failures_read_the_failed_list_once(world: World) -> None:
    started = world.move(range(3, SIZE, 100), IN_PROGRESS)
    world.poll()
    failed = world.move(range(3, SIZE, 200), FAILED, "quota exceeded")
    result, requests = world.poll()
    assert result.mode == "incremental"
    assert requests == 5  # GET, in progress, tail, failed, the closing GET
    assert world.stored(failed) == {FAILED}
    assert world.stored(sorted(set(started) - set(failed))) == {IN_PROGRESS}


def test_a_jump_from_pending_to_succeeded_reads_the_pending_list_within_budget(
    world: World,
) -> None:
    # 123 done: the 377 still pending fit in 4 pages, and the cycle in a full sweep plus one.
    done = world.move(range(11, SIZE, 4), SUCCEEDED, "Operation succeeded")
    result, requests = world.poll()
    assert result.mode == "incremental"
    pending_pages = math.ceil((SIZE - len(done)) / 100)
    assert requests == 4 + pending_pages  # GET, in progress, tail, pending, closing GET
    assert requests <= FULL + 1
    assert world.stored(done) == {SUCCEEDED}
    history = [t for t in world.store.history(world.keb.orch_id) if t.operation_id in done]
    assert [t.via for t in history] == [(IN_PROGRESS,)] * len(done)


def test_a_deleted_operation_defers_to_the_next_full_sweep(world: World) -> None:
    victim = world.keb.ops[42]
    victim.vanished = True
    world.keb.truth[victim.op_id].append("vanished")
    world.move(range(5, 10), IN_PROGRESS)
    result, requests = world.poll()
    assert result.mode == "deferred"
    assert requests <= FULL + 1
    assert result.transitions == 0
    result, requests = world.poll()
    assert result.mode == "full"
    assert requests <= FULL + 1 + 1  # the sweep and the vanished one's own GET (404)
    kinds = [t.kind.value for t in world.store.history(world.keb.orch_id)]
    assert kinds.count("operation_vanished") == 1
    assert world.poll()[0].mode == "unchanged"


def test_never_more_than_a_full_sweep_plus_one(world: World) -> None:
    rng = random.Random(5)
    for _ in range(40):
        for _ in range(rng.randint(0, 30)):
            world.keb.step()
        stored = {row[0] for row in world.store.conn.execute("SELECT operation_id FROM operations")}
        # A full sweep asks for each operation missing from its pages by itself (its 404).
        deleted = sum(1 for op in world.keb.ops if op.vanished and op.op_id in stored)
        result, requests = world.poll()
        assert requests <= FULL + 1 + deleted, (result.mode, result.reason, requests)
        if world.keb.finished:
            break


def test_the_pending_state_itself_is_not_assumed(world: World) -> None:
    # A legacy 'retrying' operation row: no incremental proof, a full sweep straight away.
    world.move(range(0, 1), "retrying")
    result, requests = world.poll()
    assert result.mode == "full"
    assert requests <= FULL + 1
    assert world.stored([world.keb.ops[0].op_id]) == {"retrying"}
    assert PENDING in world.stored([world.keb.ops[1].op_id])


def test_an_operation_a_paging_race_hides_is_asked_for_not_declared_vanished(
    world: World,
) -> None:
    hidden = world.keb.ops[150].op_id
    world.move(range(0, 3), IN_PROGRESS)
    world.keb.description = "Scheduled 500 operations, retried 0 operations"  # forces a sweep
    real = world.keb.list_operations

    async def racy(orchestration_id: str, states: Sequence[str] = ()) -> list[Operation]:
        # Rows shifted between two page reads: one row was never seen, the count still holds.
        return [op for op in await real(orchestration_id, states) if op.operation_id != hidden]

    world.keb.list_operations = racy  # type: ignore[method-assign]
    result, _ = world.poll()
    assert result.mode == "full"
    kinds = [t.kind.value for t in world.store.history(world.keb.orch_id)]
    assert "operation_vanished" not in kinds
    assert world.stored([hidden]) == {PENDING}


def test_a_failed_orchestration_waiting_for_a_retry_costs_one_request_a_cycle(
    tmp_path: Path,
) -> None:
    keb = FakeKeb(random.Random(0), size=3, workers=3)
    keb.step()
    for op in keb.ops:
        keb._move(op, FAILED, "quota exceeded")
    keb._set_orch(FAILED)
    now = [CLOCK]
    with Store(tmp_path / "f.db") as store:
        store.track([keb.orch_id], None, CLOCK)
        engine = Engine(
            store, keb, PollConfig(full_sweep_every=60.0, stuck_after=0.0), clock=lambda: now[0]
        )
        asyncio.run(engine.poll_once())  # the baseline: failed, finished (nothing to deliver)
        for hours in (1, 24, 24 * 6):
            now[0] = CLOCK + timedelta(hours=hours)
            before = keb.requests
            [result] = asyncio.run(engine.poll_once()).results
            assert (result.mode, keb.requests - before) == ("unchanged", 1)
        now[0] = CLOCK + timedelta(days=7, seconds=1)  # the retry window is over
        assert asyncio.run(engine.poll_once()).results == []


def test_a_paging_race_defers_once_and_never_re_sweeps_in_the_same_cycle(
    world: World,
) -> None:
    """Every request of these polls lets KEB move on between its two queries (a page and its
    ``totalCount``, §12.6): the lists disagree with themselves, and no poll re-reads them."""
    rng = random.Random(3)
    modes = []
    for _ in range(30):
        world.keb.interleave = lambda: world.keb.step() if rng.random() < 0.5 else None
        lists, before = len(world.keb.lists), world.keb.requests
        [result] = asyncio.run(world.engine.poll_once()).results
        requests = world.keb.requests - before
        world.keb.interleave = None
        # Twice in a row a sweep that did not hold together is an error of that cycle.
        assert result.ok or isinstance(result.error, KebListChanged), result
        modes.append(result.mode)
        vanished = sum(op.vanished for op in world.keb.ops)
        assert requests <= 2 + math.ceil(len(world.keb.ops) / 100) + 1 + vanished, result
        read = world.keb.lists[lists:]
        assert not ((PENDING,) in read and () in read), read
        assert len(read) == len(set(read)), read  # no list twice in one cycle
    assert "deferred" in modes


def test_a_sweep_that_fails_again_after_a_deferral_is_an_error_of_the_cycle(
    world: World,
) -> None:
    world.keb.description = "Scheduled 500 operations, retried 0 operations"  # forces a sweep
    real = world.keb.list_operations_page

    async def short(orchestration_id: str, **kwargs: Any) -> Page[Operation]:
        page = await real(orchestration_id, **kwargs)
        return Page(page.items[1:], page.count - 1, page.total_count)  # one row never seen

    world.keb.list_operations_page = short  # type: ignore[method-assign]
    [result] = asyncio.run(world.engine.poll_once()).results
    assert (result.ok, result.mode) == (True, "deferred")
    [result] = asyncio.run(world.engine.poll_once()).results
    assert not result.ok
    assert isinstance(result.error, KebListChanged)
    world.keb.list_operations_page = real  # type: ignore[method-assign]
    assert world.poll()[0].mode == "full"


def test_the_pending_list_is_not_read_when_it_would_cost_more_than_a_full_sweep(
    world: World,
) -> None:
    world.move(range(0, 150), IN_PROGRESS)  # two pages in progress (a second worker pool)
    world.move(range(150, 151), FAILED, "quota exceeded")
    world.move(range(160, SIZE, 31), SUCCEEDED, "Operation succeeded")  # pending -> succeeded
    result, requests = world.poll()
    # GET, 2 in-progress pages, the tail, the failed list: 5; the pending list would need 4
    # more, beyond a full sweep plus one (8): the cycle defers and the next one sweeps.
    assert (result.mode, requests) == ("deferred", 5)
    result, requests = world.poll()
    assert (result.mode, requests) == ("full", FULL)
