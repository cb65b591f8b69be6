"""The single-instance lease: take, renew, expire, steal, release; and `watcher poll` with it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Cli, Keb
from watcher.errors import LeaseHeld, StoreError
from watcher.store.database import Store
from watcher.store.lease import Holding, Keeper, Lease, holding

T0 = datetime(2024, 5, 14, 8, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stores(tmp_path: Path) -> list[Store]:
    """Two connections to one database file: two processes, as far as SQLite can tell."""
    path = tmp_path / "watcher.db"
    return [Store(path), Store(path)]


def lease(store: Store, holder: str, clock: Clock, *, alive: bool = True) -> Lease:
    return Lease(store, holder, 10.0, clock=clock, alive=lambda pid: alive, host="here")


def test_the_first_takes_it_the_second_is_told_who_holds_it_until_when(
    stores: list[Store], clock: Clock
) -> None:
    a = lease(stores[0], "here:100:aaa", clock)
    b = lease(stores[1], "here:200:bbb", clock)
    assert a.acquire() is None
    assert a.held
    other = b.acquire()
    assert other == Holding("here:100:aaa", T0, T0 + timedelta(seconds=10))
    assert other.who == "here:100"
    assert other.until == "2024-05-14T08:00:10Z"
    assert not b.held
    assert str(LeaseHeld(other.who, other.until)) == (
        "another keb-watcher (here:100) holds the lease until 2024-05-14T08:00:10Z; not polling"
    )


def test_renewing_keeps_it_from_expiring(stores: list[Store], clock: Clock) -> None:
    a = lease(stores[0], "here:100:aaa", clock)
    b = lease(stores[1], "here:200:bbb", clock)
    a.acquire()
    for _ in range(5):
        clock.advance(6)
        assert a.renew()
        assert b.acquire() is not None
    current = b.acquire()
    assert current is not None
    assert current.acquired_at == T0  # renewing does not make it a new lease
    assert current.expires_at == clock.now + timedelta(seconds=10)


def test_an_expired_lease_is_taken_over_and_the_old_holder_learns_it(
    stores: list[Store], clock: Clock
) -> None:
    a = lease(stores[0], "here:100:aaa", clock)
    b = lease(stores[1], "here:200:bbb", clock)
    a.acquire()
    clock.advance(9.9)
    assert b.acquire() is not None
    clock.advance(0.2)
    assert not a.held  # by its own clock, before it even asks
    assert b.acquire() is None
    assert b.held
    assert not a.renew()
    assert not a.held
    assert a.acquire() is not None  # and it waits like anyone else


def test_a_lease_whose_process_died_on_this_host_is_taken_at_once(
    stores: list[Store], clock: Clock
) -> None:
    lease(stores[0], "here:100:aaa", clock).acquire()
    elsewhere = Lease(stores[1], "there:100:ccc", 10.0, clock=clock, alive=lambda pid: False)
    elsewhere.host = "there"
    assert elsewhere.acquire() is not None  # another host: cannot check its process
    assert lease(stores[1], "here:200:bbb", clock, alive=True).acquire() is not None
    assert lease(stores[1], "here:200:bbb", clock, alive=False).acquire() is None


def test_release_frees_it_and_only_the_holder_can_release(
    stores: list[Store], clock: Clock
) -> None:
    a = lease(stores[0], "here:100:aaa", clock)
    b = lease(stores[1], "here:200:bbb", clock)
    a.acquire()
    b.release()  # not its lease: nothing happens
    assert b.acquire() is not None
    a.release()
    assert not a.held
    assert b.acquire() is None


def test_taking_it_is_one_immediate_transaction(stores: list[Store], clock: Clock) -> None:
    """While another connection has the write lock, acquiring waits for it (busy timeout)
    instead of reading a stale row; with the lock held past the timeout it fails cleanly."""
    blocker = sqlite3.connect(stores[0].path, timeout=0.1)
    blocker.execute("BEGIN IMMEDIATE")
    stores[1].conn.execute("PRAGMA busy_timeout = 100")
    with pytest.raises(StoreError, match="cannot start a transaction"):
        lease(stores[1], "here:200:bbb", clock).acquire()
    blocker.execute("ROLLBACK")
    blocker.close()
    assert lease(stores[1], "here:200:bbb", clock).acquire() is None


def test_keeper_waits_announces_once_then_takes_over(stores: list[Store], clock: Clock) -> None:
    a = lease(stores[0], "here:100:aaa", clock)
    a.acquire()
    acquired: list[bool] = []
    waiting: list[Holding] = []
    keeper = Keeper(
        lease(stores[1], "here:200:bbb", clock),
        on_acquired=lambda: acquired.append(True),
        on_waiting=waiting.append,
    )
    delay = keeper.step()
    assert not keeper.held
    assert 0 < delay <= 10 / 3
    clock.advance(5)
    keeper.step()
    assert [w.who for w in waiting] == ["here:100", "here:100"]
    clock.advance(5.1)
    keeper.step()
    assert keeper.held
    assert acquired == [True]
    keeper.step()  # renews
    assert acquired == [True]


def test_holding_raises_when_taken_and_releases_after(stores: list[Store], clock: Clock) -> None:
    async def main() -> None:
        a = lease(stores[0], "here:100:aaa", clock)
        async with holding(a):
            with pytest.raises(LeaseHeld):
                async with holding(lease(stores[1], "here:200:bbb", clock)):
                    pass
        assert a.current() is None

    asyncio.run(main())


def test_poll_refuses_while_another_holds_the_lease(
    keb_factory: Callable[[str], Keb], cli: Cli
) -> None:
    keb = keb_factory("small")
    cfg = str(keb.config)
    assert cli("--config", cfg, "track", *keb.sim.orchestration_ids()).code == 0
    store = Store(keb.config.parent / "watcher.db")
    other = Lease(store, "build-7:4242:abc", 60.0, host="build-7")
    assert other.acquire() is None
    refused = cli("--config", cfg, "poll")
    assert refused.code == 1
    assert refused.out == ""
    [line] = refused.err.splitlines()
    assert line.startswith("watcher: another keb-watcher (build-7:4242) holds the lease until ")
    assert line.endswith("; not polling")
    other.release()
    assert cli("--config", cfg, "poll").code == 0
    assert store.conn.execute("SELECT COUNT(*) FROM lease").fetchone()[0] == 0  # released
    store.close()
