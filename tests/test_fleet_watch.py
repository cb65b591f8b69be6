"""Following a selection: the truth-model property, the request budget, and the demo fleet.

The property test drives the real :class:`RuntimesClient` and :class:`FleetWatch` against the
simulator's handlers (``httpx.MockTransport`` in front of the same ``FleetSim.answer`` the HTTP
server calls), with a truth model that moves runtimes between the requests of a cycle. The
other tests go over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.core.fleet import OUTCOME_NOT_SHOWN, Selection, is_ended
from watcher.core.fleet_diff import FleetChange, FleetTransition, failures
from watcher.engine.fleet_observer import FleetWatch
from watcher.keb import RetryPolicy, StaticToken
from watcher.keb.runtimes import RuntimesClient
from watcher.sim.fleet import PROVISION, Fleet, SimFleetOp, churn, populate
from watcher.sim.fleet_server import FleetServer, FleetSim, demo_fleet, gateway, runtime_token

T = TypeVar("T")
START = datetime(2026, 8, 21, 12, tzinfo=UTC)
CYCLE = timedelta(minutes=5)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def in_process(sim: FleetSim) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode(), keep_blank_values=True)
        path = request.url.path
        reply = gateway(request.headers.get("Authorization"), path) or sim.answer(path, query)
        status, content_type, body = reply
        return httpx.Response(status, headers={"Content-Type": content_type}, content=body)

    return httpx.MockTransport(handle)


def all_ops(fleet: Fleet) -> dict[str, tuple[str, SimFleetOp]]:
    ops = {}
    for inst in [*fleet.instances.values(), *(a.instance for a in fleet.archive.values())]:
        for o in inst.ops:
            ops[o.operation_id] = (inst.instance_id, o)
    return ops


def check_happened(fleet: Fleet, transitions: list[FleetTransition]) -> None:
    """Every recorded transition is something the truth model did."""
    truth = {(t.instance_id, t.operation_id, t.state) for t in fleet.truth}
    ops = all_ops(fleet)
    known = set(fleet.instances) | set(fleet.archive)
    for t in transitions:
        assert t.instance_id in known, t
        if t.change is FleetChange.DEPROVISIONED:
            assert (t.instance_id, "", "deprovisioned") in truth, t
        elif t.change is FleetChange.RUNTIME_APPEARED:
            continue
        elif t.to_state == OUTCOME_NOT_SHOWN:
            assert is_ended(ops[t.operation_id][1].state), t
        elif t.to_state == "pending":
            assert ops[t.operation_id][0] == t.instance_id, t
        else:
            assert (t.instance_id, t.operation_id, t.to_state) in truth, t
        if t.change is FleetChange.SUSPENDED:
            assert ops[t.operation_id][1].temporary, t
        if t.change is FleetChange.UNSUSPENDED:
            inst_ops = [o for o in ops.values() if o[0] == t.instance_id]
            first = next(o for _, o in inst_ops if o.type == PROVISION)
            assert first.operation_id != t.operation_id, t


def check_equal_to_truth(fleet: Fleet, watch: FleetWatch) -> None:
    """After a quiet full listing the records are the truth."""
    assert set(watch.records) == set(fleet.instances)
    for iid, inst in fleet.instances.items():
        rec = watch.records[iid]
        assert rec.runtime_id == inst.runtime_id
        for op_id, seen in rec.operations.items():
            real = inst.op(op_id)
            assert real is not None
            if seen.state == OUTCOME_NOT_SHOWN:
                assert is_ended(real.state)
            else:
                assert seen.state == real.state, (iid, op_id, seen, real)
        shown = [o for o in inst.ops if o.state not in ("pending", "canceled")]
        if shown:
            newest = sorted(shown, key=lambda o: o.created_at)[-1]
            assert rec.operations[newest.operation_id].state == newest.state


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**16),
    cycles=st.integers(2, 10),
    moves=st.integers(0, 6),
    race=st.floats(0.0, 0.6),
)
def test_every_recorded_transition_happened_and_a_quiet_sweep_equals_the_truth(
    seed: int, cycles: int, moves: int, race: float
) -> None:
    rng = random.Random(seed)
    fleet = Fleet(seed)
    populate(fleet, 25)
    sim = FleetSim(fleet)
    fleet.between_queries = lambda: churn(fleet, rng) if rng.random() < race else None
    watch = FleetWatch(Selection("all"), full_sweep_every=timedelta(minutes=20))
    recorded: list[FleetTransition] = []

    async def go() -> None:
        keb = RuntimesClient(
            "http://keb.test",
            StaticToken(runtime_token()),
            retry=RetryPolicy(attempts=1),
            transport=in_process(sim),
        )
        async with keb:
            now = START
            for _ in range(cycles):
                churn(fleet, rng, moves)
                recorded.extend(await watch.poll(keb, now))
                now += CYCLE
            fleet.between_queries = None
            watch.last_full_sweep = None  # the next cycle lists everything, and KEB is quiet
            recorded.extend(await watch.poll(keb, now))

    run(go())
    check_happened(fleet, recorded)
    keys = [t.key for t in recorded]
    assert len(keys) == len(set(keys))  # once each
    check_equal_to_truth(fleet, watch)


@pytest.fixture
def big_fleet() -> Iterator[tuple[str, FleetSim]]:
    fleet = Fleet(seed=9)
    populate(fleet, 5000, in_progress=20)
    sim = FleetSim(fleet)
    with FleetServer(sim) as server:
        yield server.url, sim


def test_a_quiet_cycle_over_5000_runtimes_with_20_in_progress_costs_at_most_5_requests(
    big_fleet: tuple[str, FleetSim],
) -> None:
    url, sim = big_fleet
    watch = FleetWatch(Selection("all"), full_sweep_every=timedelta(minutes=30))

    async def go() -> list[int]:
        costs = []
        async with RuntimesClient(url, StaticToken(runtime_token())) as keb:
            for cycle in range(3):
                before = sim.requests
                transitions = await watch.poll(keb, START + cycle * CYCLE)
                assert transitions == []  # the baseline announces nothing; nothing moved
                costs.append(sim.requests - before)
        return costs

    costs = run(go())
    assert costs[0] >= 50  # the baseline lists the whole selection
    assert costs[1:] == [1, 1]
    assert all(cost <= 5 for cost in costs[1:])


def test_the_demo_fleet_recorded_as_what_happened() -> None:
    fleet = demo_fleet(seed=1, size=12)
    sim = FleetSim(fleet)
    ids = list(fleet.instances)

    watch = FleetWatch(Selection("demo"), full_sweep_every=timedelta(minutes=30))

    async def go() -> list[FleetTransition]:
        out: list[FleetTransition] = []
        with FleetServer(sim) as server:
            async with RuntimesClient(server.url, StaticToken(runtime_token())) as keb:
                now = START
                baseline = await watch.poll(keb, now)  # no flood: the unreadable one only
                assert [(t.change, t.instance_id) for t in baseline] == [
                    (FleetChange.UNREADABLE, ids[5])
                ]
                for _ in range(16):
                    fleet.advance(300)
                    now += CYCLE
                    out.extend(await watch.poll(keb, now))
        return out

    transitions = run(go())
    by_change: dict[FleetChange, list[FleetTransition]] = {}
    for t in transitions:
        by_change.setdefault(t.change, []).append(t)
    failed = failures(transitions)
    assert {f.kind for f in failed} == {"provisioning", "update"}
    assert all(f.shoot and f.subaccount_id and f.instance_id for f in failed)
    deprovisioned = by_change[FleetChange.DEPROVISIONED]
    assert [t.instance_id for t in deprovisioned] == [ids[4]]
    ended = [
        t
        for t in by_change[FleetChange.OPERATION_ENDED]
        if t.instance_id == ids[4] and t.kind == "deprovisioning"
    ]
    assert [t.to_state for t in ended] == ["succeeded"]
    assert [t.instance_id for t in by_change[FleetChange.SUSPENDED]] == [ids[3]]
    unsuspended = by_change[FleetChange.UNSUSPENDED]
    assert [t.instance_id for t in unsuspended] == [ids[3]]
    assert unsuspended[0].runtime_id not in ("", None)
    # The legacy runtime fails its pages from the start: reported at the baseline, still
    # followed (read on its own with op_detail=all), never reported again.
    assert FleetChange.UNREADABLE not in by_change
    assert watch.records[ids[5]].unreadable
    assert watch.records[ids[5]].operations
    hung = [t for t in transitions if t.instance_id == ids[1] and t.kind == "update"]
    assert hung == []  # in progress since before the baseline, and it never moves
    assert [op.state for op in watch.records[ids[1]].open_operations()] == ["in progress"]


def test_a_runtime_keb_stops_showing_without_archiving_it_is_never_deprovisioned() -> None:
    """The simulator as a witness: KEB can lose sight of a runtime that exists (an empty
    last_operation_id hides it from every /runtimes answer). Absent and not archived is no
    deprovisioning: nothing is recorded and its record stays."""
    fleet = Fleet(seed=4)
    populate(fleet, 10)
    target = next(iter(fleet.instances))
    fleet.update(target, duration=600)
    sim = FleetSim(fleet)
    watch = FleetWatch(Selection("all"), full_sweep_every=timedelta(minutes=30))

    async def go() -> list[FleetTransition]:
        out: list[FleetTransition] = []
        async with RuntimesClient(
            "http://keb.test", StaticToken(runtime_token()), transport=in_process(sim)
        ) as keb:
            out.extend(await watch.poll(keb, START))
            fleet.hide(target)
            out.extend(await watch.poll(keb, START + CYCLE))  # active, now missing
            watch.last_full_sweep = None
            out.extend(await watch.poll(keb, START + 2 * CYCLE))  # the full listing too
        return out

    assert run(go()) == []
    assert [op.state for op in watch.records[target].open_operations()] == ["in progress"]
