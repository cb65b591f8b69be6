"""``watcher run``: the long-running service around the poll engine.

Three jobs on one APScheduler 3 ``AsyncIOScheduler`` (UTC), and the lease beside them:

* **poll**, on ``[poll] interval`` (``IntervalTrigger``) or ``[poll] cron`` (``CronTrigger``),
  with ``jitter``, ``coalesce``, ``max_instances=1`` and a misfire grace of one interval
  (APScheduler's default of one second silently drops a run that starts late). A run is
  discovery (opt-in, :func:`watcher.core.cadence.discover`), then one engine cycle over the tracked
  orchestrations that are due on this tick (:func:`watcher.core.cadence.due`), then metrics and
  readiness. It runs at once whenever this process takes the lease.
* **deliver**, every second: the outbox sender with a short deadline, one run at a time, so
  Slack's rate limits and backoff never hold up a poll.
* **retention**, hourly: :func:`watcher.store.retention.prune`.
* The :class:`~watcher.store.lease.Keeper` takes, renews or waits for the lease; no job polls, sends
  or prunes unless this process holds it.

Shutdown on SIGTERM or SIGINT: pause the scheduler, let the job runs in flight finish within
:data:`CYCLE_GRACE` (APScheduler 3 cancels running coroutine jobs on shutdown and cannot wait
for them, so each run is a task of ours, shielded from it), deliver what is pending within
:data:`FLUSH_DEADLINE`, release the lease, exit 0. A run cut short loses nothing: each
orchestration's snapshot, transitions and notifications are committed together or not at all.
A second signal skips the waiting.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from starlette.applications import Starlette

from watcher.app import Watcher, keb_client
from watcher.core.cadence import Standing, discover, due
from watcher.core.durations import format_duration
from watcher.core.models import MaintenanceWindow
from watcher.core.pace import idle_pending
from watcher.core.tracked import Tracked
from watcher.core.wording import plural, transition_text
from watcher.engine.cycle import CycleReport, Engine
from watcher.errors import KebError, StoreError, WatcherError
from watcher.faces.run.health import Readiness, health_routes
from watcher.faces.run.metrics import Metrics
from watcher.faces.run.schedule import poll_trigger, tick_seconds
from watcher.faces.run.server import WebServer, surface
from watcher.keb import KebClient
from watcher.notify.sender import Sender
from watcher.store.lease import Holding, Keeper, Lease, holder_id, lease_ttl
from watcher.store.retention import prune

log = logging.getLogger("watcher.faces.run.service")

#: How long a stop waits for the job runs in flight before cancelling them. With
#: :data:`FLUSH_DEADLINE`, the lease is released within 5 s of SIGTERM: a `poll` or another
#: `run` started next must not wait for it.
CYCLE_GRACE: Final = 2.0
#: How long a stop keeps delivering pending notifications (the rest stay in the outbox).
FLUSH_DEADLINE: Final = 2.0
DELIVER_EVERY: Final = 1.0
#: Deadline of one delivery run; what is left goes in the next.
DELIVER_SLICE: Final = 5.0
RETENTION_EVERY: Final = 3600.0

Job = Callable[[], Coroutine[Any, Any, None]]


class Service:
    """One ``watcher run``: :meth:`run` returns the exit code once stopped."""

    def __init__(self, app: Watcher, *, metrics: Metrics | None = None) -> None:
        self.app = app
        self.config = app.config
        self.store = app.store
        self.metrics = metrics if metrics is not None else Metrics()
        self.metrics.alert_after.set(self.config.poll.alert_after)
        #: The service's notion of now (the app's clock): what it records and schedules by.
        self.clock = app.clock
        self.tick = tick_seconds(self.config.poll, self.clock())
        self.lease = Lease(self.store, holder_id(), lease_ttl(self.tick))
        self.keeper = Keeper(self.lease, on_acquired=self._acquired, on_waiting=self._waiting)
        self.readiness = Readiness(
            self.config.service.ready_after_intervals * self.tick, probe=self.store.lost
        )
        self._lost: str | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._last_polled: dict[str, datetime] = {}
        self._ended_seen: set[str] = set()
        self._last_transition = self.store.last_transition_id()
        self._tracked_count = 0
        self._delivering = False
        self._stopping = False
        self._scheduler: AsyncIOScheduler | None = None
        self._keb: KebClient | None = None
        self._engine: Engine | None = None
        self._sender: Sender | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._hurry = asyncio.Event()
        self._release = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signal, sig)
        listen = self.config.service.listen
        web = WebServer(listen, self._surface()) if listen else None
        try:
            if web is not None:
                await web.start()
                log.info("serving /healthz, /readyz and /metrics on %s", web.url)
                log.info("dashboard: %s/", web.url)
            async with keb_client(self.config, observe=self.metrics.keb_request) as keb:
                self._keb = keb
                self._engine = self.app.engine(keb)
                self._sender = self.app.sender()
                self.metrics.start_attempts_after(self.app.outbox())
                self._scheduler = self._schedule()
                self._scheduler.start()
                log.info("%s", self._describe())
                keeper = asyncio.create_task(self.keeper.run(self._release))
                await self._stop.wait()
                await self._shutdown(self._scheduler, keeper)
        finally:
            if web is not None:
                await web.stop()
            # Stopping is decided: a further SIGTERM (a supervisor repeating itself) must not
            # kill the exiting process, which the loop's close would allow (it restores the
            # default action); Ctrl-C keeps Python's own handler.
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return 0

    def _surface(self) -> Starlette:
        """Health, readiness and metrics, and the web dashboard beside them (stale after the
        /readyz window)."""
        from watcher.faces.web.routes import Dashboard

        service = self.config.service
        dashboard = Dashboard(
            self.app,
            stale_after=self.readiness.window,
            token=service.dashboard_token,
            public_url=service.public_url,
        )
        health = health_routes(self.readiness, self.metrics.exposition, service.metrics_token)
        return surface([*health, *dashboard.routes()], dashboard.middleware())

    def _describe(self) -> str:
        poll = self.config.poll
        when = f"cron {poll.cron!r}" if poll.cron else f"every {format_duration(poll.interval)}"
        parts = [
            f"keb-watcher run: polling {when} (jitter {format_duration(poll.jitter)})",
            plural(len(self.app.due()), "orchestration") + " tracked"
            if self.app.tracked(include_inactive=True)
            else "nothing tracked yet (`watcher track ID` adds one)",
            "discovery on" if poll.discover else "discovery off",
            "notifications on" if self._sender is not None else "notifications off",
        ]
        return ", ".join(parts)

    def _schedule(self) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(timezone=UTC)
        grace = max(1, round(self.tick))
        scheduler.add_job(
            self._job(self._cycle),
            poll_trigger(self.config.poll),
            id="poll",
            name="poll cycle",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=grace,
        )
        if self._sender is not None:
            # Two instances, so that a tick during a long delivery run returns at once (one
            # delivers at a time: see _deliver) instead of being logged as skipped.
            scheduler.add_job(
                self._job(self._deliver),
                IntervalTrigger(seconds=DELIVER_EVERY, timezone=UTC),
                id="deliver",
                name="deliver notifications",
                coalesce=True,
                max_instances=2,
                misfire_grace_time=grace,
            )
        scheduler.add_job(
            self._job(self._prune),
            IntervalTrigger(seconds=RETENTION_EVERY, timezone=UTC),
            id="retention",
            name="prune history",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=round(RETENTION_EVERY),
            next_run_time=self.clock() + timedelta(seconds=max(10.0, self.tick)),
        )
        return scheduler

    def _job(self, work: Job) -> Job:
        """A job function that runs ``work`` as a task of ours, shielded from the scheduler
        (which cancels coroutine jobs on shutdown), and only while we hold the lease."""

        async def run() -> None:
            if self._stopping or not self.keeper.held:
                return
            task = asyncio.create_task(work())
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled():  # cut short by a stop, which logged it: no traceback
                    return
                raise

        run.__qualname__ = run.__name__ = getattr(work, "__name__", "job")
        return run

    def _signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if not self._stop.is_set():
            log.info(
                "%s received: stopping (the cycle in flight may finish, pending notifications "
                "are delivered; %s again to stop at once)",
                name,
                name,
            )
            self.readiness.standby("stopping")
            self._stop.set()
        else:
            log.warning("%s received again: stopping now", name)
            self._hurry.set()

    def _acquired(self) -> None:
        self.readiness.standby(None)
        self.metrics.lease.set(1)
        if self._scheduler is not None and not self._stopping:
            self._scheduler.modify_job("poll", next_run_time=self.clock())

    def _waiting(self, other: Holding) -> None:
        self.metrics.lease.set(0)
        self.readiness.standby(
            f"another keb-watcher ({other.who}) holds the lease until {other.until}"
        )

    async def _shutdown(self, scheduler: AsyncIOScheduler, keeper: asyncio.Task[None]) -> None:
        self._stopping = True
        if not self.lease.held:
            self._release.set()  # standing by: nothing to finish
        scheduler.pause()
        if self._inflight:
            log.info("waiting up to %s for the cycle in flight", format_duration(CYCLE_GRACE))
            if not await self._settle(CYCLE_GRACE):
                log.warning(
                    "stopping without finishing the cycle in flight: every orchestration it "
                    "did not commit is polled again by the next run"
                )
                for task in list(self._inflight):
                    task.cancel()
                await asyncio.gather(*self._inflight, return_exceptions=True)
        scheduler.shutdown(wait=False)
        if self.lease.held and self._sender is not None and not self._hurry.is_set():
            await self._flush(self._sender)  # the keeper still renews the lease meanwhile
        self._release.set()
        await keeper
        try:
            self.lease.release()
        except StoreError as exc:
            log.warning("could not release the lease (it expires by itself): %s", exc)
        self.metrics.lease.set(0)
        log.info("stopped; lease released")

    async def _settle(self, seconds: float) -> bool:
        """Wait for the job runs in flight; False if they are still running after
        ``seconds`` or a second signal."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._inflight and not self._hurry.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return False
            hurry = asyncio.ensure_future(self._hurry.wait())
            await asyncio.wait(
                {*self._inflight, hurry}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            hurry.cancel()
        return not self._inflight

    async def _flush(self, sender: Sender) -> None:
        log.info("delivering pending notifications (up to %s)", format_duration(FLUSH_DEADLINE))
        delivery = asyncio.ensure_future(
            sender.deliver(
                deadline=time.monotonic() + FLUSH_DEADLINE,
                linger=0.0,
                allowed=lambda: self.lease.held,
                final=True,
            )
        )
        hurry = asyncio.ensure_future(self._hurry.wait())
        await asyncio.wait(
            {delivery, hurry}, timeout=FLUSH_DEADLINE + 0.5, return_when=asyncio.FIRST_COMPLETED
        )
        hurry.cancel()
        if not delivery.done():
            delivery.cancel()
            await asyncio.gather(delivery, return_exceptions=True)
        elif delivery.exception() is not None:
            log.error("delivering notifications: %s", delivery.exception())
        else:
            self.metrics.delivered(delivery.result())
        left = sender.outbox.undelivered()
        if left:
            log.warning(
                "%d notifications undelivered; kept in the outbox for the next run "
                "(see `watcher outbox list`)",
                left,
            )

    # -- jobs -----------------------------------------------------------------------------

    async def _cycle(self) -> None:
        assert self._engine is not None
        lost = self.store.lost()
        if lost != self._lost:
            if lost:
                log.error("%s; not polling (/readyz fails) until then", lost)
            else:
                log.info("the database file is back; polling again")
            self._lost = lost
        if lost:
            self.metrics.cycles.labels("failure").inc()
            return
        started, now = time.monotonic(), self.clock()
        attempts = answered = 0
        error: str | None = None
        try:
            if self.config.poll.discover:
                attempts += 1
                error = await self._discover()
                answered += error is None
            report = await self._engine.poll_once(select=lambda items: self._select(items, now))
            # Selections of runtimes (fleet watch) in the same cycle, through /runtimes.
            fleet = await self.app.fleet.poll(notify=self.app.destination() is not None)
        except WatcherError as exc:
            log.error("poll cycle failed: %s", exc)
            self.readiness.failed(str(exc))
            self.metrics.cycles.labels("failure").inc()
            return
        for result in report.results:
            if result.ok:
                self._last_polled[result.orchestration_id] = now
            else:
                self._last_polled.pop(result.orchestration_id, None)
                error = error or result.message
        attempts += len(report.results) + len(fleet)
        answered += sum(result.ok for result in report.results) + sum(f.ok for f in fleet)
        for selection in fleet:
            if not selection.ok:
                log.warning("fleet %s: poll failed: %s", selection.name, selection.error)
                error = error or selection.error
        success = attempts == 0 or answered > 0
        self._account(report, time.monotonic() - started, success, error)

    def _account(
        self, report: CycleReport, seconds: float, success: bool, error: str | None
    ) -> None:
        assert self._keb is not None
        self.metrics.cycle(report, seconds, success, self.clock())
        self.metrics.keb_stats(self._keb.stats.snapshot())
        self.metrics.read_outbox(self.app.outbox())
        self._last_transition, new = self.store.transitions_after(self._last_transition)
        self.metrics.recorded(new)
        tracked = self.store.tracked()
        self.metrics.tracked_states(t.state for t in tracked)
        self.metrics.failure_reasons(
            pair for t in tracked for pair in self.store.failure_reasons(t.orchestration_id)
        )
        for t in new:
            ids = {"orchestration_id": t.orchestration_id, "operation_id": t.operation_id}
            level = logging.DEBUG if t.operation_id else logging.INFO
            line = transition_text(t)
            log.log(level, "orchestration %s: %s", t.orchestration_id, line, extra=ids)
        if success:
            self.readiness.succeeded()
        else:
            self.readiness.failed(error or "every request to KEB failed")
        failed = len(report.failed)
        level = logging.INFO if new or failed else logging.DEBUG
        log.log(
            level,
            "cycle %d: polled %d of %d tracked, %d transitions, %d failed, %.2fs",
            report.cycle_id,
            len(report.results),
            self._tracked_count,
            len(new),
            failed,
            seconds,
        )

    def _select(self, items: Sequence[Tracked], now: datetime) -> list[Tracked]:
        """The tracked orchestrations due on this tick (:func:`watcher.core.cadence.due`)."""
        self._tracked_count = len(items)
        self.metrics.tracked.set(len(items))
        standings = []
        for t in items:
            last = self._last_polled.get(t.orchestration_id)
            windows: tuple[MaintenanceWindow, ...] = ()
            if last is not None and idle_pending(t.state, t.counts):
                windows = tuple(self.store.pending_windows(t.orchestration_id))
            failing = t.consecutive_failures > 0
            standings.append(
                Standing(t.orchestration_id, t.state, t.counts, failing, last, windows)
            )
        chosen = set(due(standings, now, self.tick))
        return [t for t in items if t.orchestration_id in chosen]

    async def _discover(self) -> str | None:
        """Track what KEB lists that is new and still running; the error, if KEB failed."""
        assert self._keb is not None
        poll = self.config.poll
        try:
            listed = await self._keb.list_orchestrations(poll.discover_states)
        except KebError as exc:
            log.warning("discovery: cannot list orchestrations: %s", exc)
            return str(exc)
        known = [t.orchestration_id for t in self.store.tracked(include_inactive=True)]
        found = discover(listed, known, poll.discover_types)
        if found.new:
            self.store.track(found.new, None, self.clock())
            self.metrics.discovered.inc(len(found.new))
            for orch_id in found.new:
                log.info("discovery: tracking %s", orch_id, extra={"orchestration_id": orch_id})
        for orch_id in set(found.ended) - self._ended_seen:
            self._ended_seen.add(orch_id)
            log.debug(
                "discovery: %s had already ended when first listed; not tracked",
                orch_id,
                extra={"orchestration_id": orch_id},
            )
        return None

    async def _deliver(self) -> None:
        if self._sender is None or self._delivering:
            return
        self._delivering = True
        try:
            report = await self._sender.deliver(
                deadline=time.monotonic() + DELIVER_SLICE,
                linger=DELIVER_EVERY,
                allowed=lambda: self.keeper.held,
            )
            self.metrics.delivered(report)
            self.metrics.read_attempts(self.app.outbox())
            self.metrics.read_outbox(self.app.outbox())
        except WatcherError as exc:
            log.error("delivering notifications: %s", exc)
        finally:
            self._delivering = False

    async def _prune(self) -> None:
        retention = self.config.storage.retention
        try:
            pruned = prune(self.store, self.clock(), retention)
        except WatcherError as exc:
            log.error("retention: %s", exc)
            return
        if pruned.rows:
            log.info(
                "retention: forgot %d orchestrations ended more than %s ago (%d rows)",
                len(pruned.orchestrations),
                format_duration(retention),
                pruned.rows,
            )
