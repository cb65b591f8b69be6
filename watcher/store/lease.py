"""Single-instance safety: one lease row in SQLite says which process may poll and send.

``watcher run`` holds the lease while it runs and renews it every third of its time to live;
``watcher poll`` holds it for its one cycle. A process that finds it held by someone else does
not poll: ``run`` waits and retries (:class:`Keeper`), ``poll`` exits 1 (:class:`LeaseHeld`).

* Every read-decide-write is one ``BEGIN IMMEDIATE`` transaction
  (:meth:`watcher.store.database.Store.transaction`), so two processes can never both take it.
* A holder that crashed stops renewing; its lease is taken over once it has expired. When the
  holder ran on this host (same host name) and its process is gone (``kill(pid, 0)`` answers
  "no such process"), the lease is taken over at once: a cron ``poll`` after a crash need not
  wait. A live process, or one we cannot check, always keeps its lease until it expires.
* A holder acts only while its *own* record of the expiry is in the future (:attr:`Lease.held`),
  so a process that stalled past its expiry stops polling and sending even before it learns
  that another one took over.

Times are wall-clock UTC: the holders are different processes that share only the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from watcher.clock import iso, utcnow
from watcher.errors import LeaseHeld, StoreError
from watcher.store.database import Store
from watcher.store.guard import sealed

log = logging.getLogger("watcher.store.lease")

#: The one lease there is: the right to poll KEB and write to Slack for this database.
LEASE_NAME: Final = "poller"
#: A lease never lives shorter than this, so that an event loop busy for a few seconds (a
#: large first snapshot) does not lose it between two renewals...
MIN_TTL: Final = 5.0
#: ...nor longer than this, so that a crashed holder blocks the next one for at most a minute.
MAX_TTL: Final = 60.0


def lease_ttl(interval: float) -> float:
    """How long a lease lives: one polling interval, within 5 s to 60 s. It is renewed every
    third of that.

    >>> lease_ttl(1.0), lease_ttl(30.0), lease_ttl(3600.0)
    (5.0, 30.0, 60.0)
    """
    return min(max(interval, MIN_TTL), MAX_TTL)


def holder_id() -> str:
    """``host:pid:random``: who holds the lease, readable and unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _shown(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pid_alive(pid: int) -> bool:
    """False only when this host has no process ``pid`` (a permission error means alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class Holding:
    """Who holds the lease, since when and until when."""

    holder: str
    acquired_at: datetime
    expires_at: datetime

    @property
    def who(self) -> str:
        """``host:pid`` of the holder (its ID without the random part)."""
        return self.holder.rsplit(":", 1)[0] if self.holder.count(":") >= 2 else self.holder

    @property
    def until(self) -> str:
        """The expiry as people read it: ``2024-05-14T08:15:00Z``."""
        return _shown(self.expires_at)

    def crashed_here(self, host: str, alive: Callable[[int], bool] = pid_alive) -> bool:
        """The holder ran on ``host`` and its process is gone."""
        parts = self.holder.split(":")
        if len(parts) < 3 or parts[0] != host or not parts[1].isdigit():
            return False
        return not alive(int(parts[1]))


@sealed
class Lease:
    """The lease as seen by one holder. Not thread-safe (like the :class:`Store` it uses)."""

    def __init__(
        self,
        store: Store,
        holder: str,
        ttl: float,
        *,
        clock: Callable[[], datetime] = utcnow,
        alive: Callable[[int], bool] = pid_alive,
        host: str | None = None,
        name: str = LEASE_NAME,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl!r}")
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.clock = clock
        self.alive = alive
        self.host = host if host is not None else socket.gethostname()
        self.name = name
        #: Our own record of when our lease ends; None while we do not hold it.
        self.expires_at: datetime | None = None

    @property
    def held(self) -> bool:
        """We hold the lease and, by our own clock, it has not expired."""
        return self.expires_at is not None and self.clock() < self.expires_at

    def current(self) -> Holding | None:
        """Who holds the lease now (expired or not), read without a transaction."""
        return self._read(self.store.conn)

    def _read(self, conn: sqlite3.Connection) -> Holding | None:
        row = conn.execute(
            "SELECT holder, acquired_at, expires_at FROM lease WHERE name = ?", (self.name,)
        ).fetchone()
        if row is None:
            return None
        return Holding(row[0], datetime.fromisoformat(row[1]), datetime.fromisoformat(row[2]))

    def acquire(self) -> Holding | None:
        """Take the lease if it is free, expired, ours, or held by a process that died on
        this host. Returns None when we hold it now, else who holds it."""
        now = self.clock()
        expires = now + timedelta(seconds=self.ttl)
        with self.store.transaction() as conn:
            other = self._read(conn)
            if (
                other is not None
                and other.holder != self.holder
                and other.expires_at > now
                and not other.crashed_here(self.host, self.alive)
            ):
                return other
            acquired = other.acquired_at if other and other.holder == self.holder else now
            conn.execute(
                "INSERT INTO lease (name, holder, acquired_at, renewed_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at, "
                "expires_at = excluded.expires_at",
                (self.name, self.holder, iso(acquired), iso(now), iso(expires)),
            )
        if other is not None and other.holder != self.holder:
            how = f"expired {other.until}" if other.expires_at <= now else "its process is gone"
            log.warning("took over the lease of keb-watcher %s (%s)", other.who, how)
        self.expires_at = expires
        return None

    def renew(self) -> bool:
        """Extend our lease by ``ttl``. False when it is no longer ours (it expired and
        another process took it); then :attr:`held` is False too."""
        now = self.clock()
        expires = now + timedelta(seconds=self.ttl)
        with self.store.transaction() as conn:
            cur = conn.execute(
                "UPDATE lease SET renewed_at = ?, expires_at = ? WHERE name = ? AND holder = ?",
                (iso(now), iso(expires), self.name, self.holder),
            )
        if cur.rowcount != 1:
            self.expires_at = None
            return False
        self.expires_at = expires
        return True

    def release(self) -> None:
        """Give the lease up (if it is still ours), so that the next instance need not wait."""
        self.expires_at = None
        with self.store.transaction() as conn:
            conn.execute(
                "DELETE FROM lease WHERE name = ? AND holder = ?", (self.name, self.holder)
            )


async def _renew_every(lease: Lease, period: float) -> None:
    while True:
        await asyncio.sleep(period)
        try:
            if not lease.renew():
                log.error("lost the lease (it expired and another keb-watcher took it)")
                return
        except StoreError as exc:
            log.warning("could not renew the lease: %s", exc)


@contextlib.asynccontextmanager
async def holding(lease: Lease) -> AsyncIterator[Lease]:
    """Hold the lease for a block of work (``watcher poll``), renewed in the background.

    Raises :class:`LeaseHeld` when another process holds it; releases it at the end.
    """
    other = lease.acquire()
    if other is not None:
        raise LeaseHeld(other.who, other.until)
    renewer = asyncio.create_task(_renew_every(lease, lease.ttl / 3))
    try:
        yield lease
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        try:
            lease.release()
        except StoreError as exc:
            log.warning("could not release the lease (it expires by itself): %s", exc)


class Keeper:
    """Holds the lease for ``watcher run``: take it, or wait for it; renew it; notice its loss.

    ``on_acquired`` is called each time the lease becomes ours (e.g. to poll at once),
    ``on_waiting`` each time we find it held by another process (e.g. for ``/readyz``).
    """

    def __init__(
        self,
        lease: Lease,
        *,
        on_acquired: Callable[[], None] = lambda: None,
        on_waiting: Callable[[Holding], None] = lambda holding: None,
    ) -> None:
        self.lease = lease
        self.on_acquired = on_acquired
        self.on_waiting = on_waiting
        self._announced: str | None = None

    @property
    def held(self) -> bool:
        return self.lease.held

    def step(self) -> float:
        """One look at the lease; returns the seconds until the next look."""
        lease, period = self.lease, self.lease.ttl / 3
        try:
            if lease.expires_at is not None:
                if lease.renew():
                    return period
                log.error(
                    "lost the lease: it expired and another keb-watcher took it; "
                    "not polling until it is free again"
                )
            other = lease.acquire()
        except StoreError as exc:
            log.warning("cannot read or write the lease: %s", exc)
            return period
        if other is None:
            self._announced = None
            log.info("holding the lease as %s (renewed every %.1fs)", lease.holder, period)
            self.on_acquired()
            return period
        self.on_waiting(other)
        if other.holder != self._announced:
            self._announced = other.holder
            log.warning(
                "another keb-watcher (%s) holds the lease until %s; waiting until it is "
                "released or expires (checking every %.1fs)",
                other.who,
                other.until,
                period,
            )
        until_expiry = (other.expires_at - lease.clock()).total_seconds()
        return max(0.05, min(period, until_expiry + 0.05))

    async def run(self, stop: asyncio.Event) -> None:
        """Look after the lease until ``stop`` is set (the caller releases it)."""
        while not stop.is_set():
            delay = self.step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
