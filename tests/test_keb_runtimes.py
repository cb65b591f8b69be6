"""RuntimesClient against the simulator over real HTTP: paging, parameters, errors, narrowing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from watcher.errors import KebAuthError, KebRequestError
from watcher.keb import RetryPolicy, StaticToken
from watcher.keb.runtimes import RuntimesClient
from watcher.keb.session import Request
from watcher.sim.fleet import Fleet, populate
from watcher.sim.fleet_server import FleetServer, FleetSim, runtime_token
from watcher.sim.tokens import make_token

T = TypeVar("T")
NO_RETRY = RetryPolicy(attempts=1)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def served() -> Iterator[tuple[str, FleetSim]]:
    fleet = Fleet(seed=5)
    populate(fleet, 250)
    sim = FleetSim(fleet)
    with FleetServer(sim) as server:
        yield server.url, sim


def client(url: str, token: str | None = None) -> RuntimesClient:
    return RuntimesClient(url, StaticToken(token or runtime_token()), retry=NO_RETRY)


def test_walks_every_page_oldest_first(served: tuple[str, FleetSim]) -> None:
    url, sim = served

    async def go() -> list[str]:
        async with client(url) as keb:
            listing = await keb.listing(())
            assert keb.stats.requests == 3
            return list(listing.runtimes)

    assert run(go()) == list(sim.fleet.instances)


def test_a_walk_survives_rows_leaving_and_joining_between_pages(
    served: tuple[str, FleetSim],
) -> None:
    url, sim = served
    fleet = sim.fleet
    first = list(fleet.instances)

    def move() -> None:
        # Between every page and its count: an old runtime leaves, a new one comes.
        fleet.instances.pop(next(iter(fleet.instances)))
        fleet.provision(done=True)

    fleet.between_queries = move

    async def go() -> dict[str, Any]:
        async with client(url) as keb:
            return (await keb.listing(())).runtimes

    seen = run(go())
    assert len(seen) >= 240
    assert set(seen) <= set(first) | set(fleet.instances)
    assert sim.requests <= 250 // 100 + 1 + 2  # bounded however KEB moves


def test_filters_are_repeated_parameters_never_commas(served: tuple[str, FleetSim]) -> None:
    url, sim = served
    ids = list(sim.fleet.instances)[:3]

    async def go() -> None:
        async with client(url) as keb:
            listing = await keb.listing(tuple(("instance_id", i) for i in ids))
            assert list(listing.runtimes) == ids
            with pytest.raises(ValueError, match="no commas"):
                await keb.listing((("instance_id", f"{ids[0]},{ids[1]}"),))
            with pytest.raises(ValueError, match="only for instance_id"):
                await keb.page((("plan", "aws"),), op_detail="all")
            detailed = await keb.by_instances(ids)
            assert set(detailed.runtimes) == set(ids)
            assert all(r.operations for r in detailed.runtimes.values())

    run(go())


def test_errors_are_one_line_and_a_403_names_the_runtime_groups(
    served: tuple[str, FleetSim],
) -> None:
    url, _ = served

    async def go() -> None:
        async with client(url, make_token(groups=("orchestrationsAdmin",))) as keb:
            with pytest.raises(KebAuthError) as denied:
                await keb.listing(())
        message = str(denied.value)
        assert "403" in message
        assert "RBAC: access denied" in message
        assert "runtimeAdmin or runtimeOperator or runtimeViewer" in message
        assert "\n" not in message
        async with client(url, "garbage") as keb:
            with pytest.raises(KebAuthError, match=r"401.*Jwt verification fails"):
                await keb.listing(())
        async with client(url) as keb:
            # A bad request as a misconfigured proxy would pass it on: KEB's JSON 400.
            bad = Request("GET", "/runtimes", (("page_size", ""),))
            with pytest.raises(KebRequestError, match="400 Bad Request: while getting query"):
                await keb._session.call(bad)

    run(go())


def test_a_page_failed_by_one_legacy_runtime_costs_that_runtime_only(
    served: tuple[str, FleetSim], caplog: pytest.LogCaptureFixture
) -> None:
    url, sim = served
    legacy = list(sim.fleet.instances)[137]
    sim.fleet.add_legacy(legacy)

    async def go() -> None:
        async with client(url) as keb:
            for _ in range(2):
                before = keb.stats.requests
                listing = await keb.listing(())
                assert list(listing.runtimes) == list(sim.fleet.instances)
                assert listing.unreadable == [legacy]
                # page 2 fails; 10 pages of 10; the failing one in 10 pages of 1; then `all`
                assert keb.stats.requests - before <= 3 + 1 + 10 + 10 + 1

    with caplog.at_level(logging.INFO, logger="watcher.keb"):
        run(go())
    reports = [r for r in caplog.records if legacy in r.getMessage()]
    assert len(reports) == 1  # reported once, however often it is read


def test_events_never_go_out_without_a_filter(served: tuple[str, FleetSim]) -> None:
    url, sim = served
    target = next(iter(sim.fleet.instances))
    sim.fleet.update(target)

    async def go() -> None:
        async with client(url) as keb:
            with pytest.raises(ValueError, match="at least one instance"):
                await keb.events(["", ""])
            events = await keb.events([target])
            assert events
            assert {e["InstanceID"] for e in events} == {target}
            assert await keb.events(["no-such-instance"]) == []

    run(go())
