"""The composition root: configuration, store, KEB client, engine, sender and destination.

Commands stay thin: they parse arguments, call one method here and print what it returns.
Resources are opened lazily, so ``watcher status`` never creates a database and
``watcher history`` never needs KEB. What the dashboard reads is in
:mod:`watcher.app.dashboard`; notification checks and previews in
:mod:`watcher.app.notifications`; what is built from the configuration in
:mod:`watcher.app.factories`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from watcher.app.factories import destination, keb_client, token_provider
from watcher.clock import Clock, utcnow
from watcher.config import Config
from watcher.core.diff import Transition
from watcher.core.ids import is_uuid, require_uuids, resolve
from watcher.core.models import Orchestration, is_terminal_orchestration
from watcher.core.tracked import Silence, Tracked
from watcher.engine.cycle import CycleReport, Engine, due_now, notification_policy
from watcher.engine.observer import KebReader
from watcher.errors import KebNotFound, UsageError
from watcher.keb import KebClient
from watcher.keb.timing import ExchangeHook
from watcher.store.database import Store
from watcher.store.lease import Lease, holder_id, holding, lease_ttl
from watcher.store.outbox import Outbox

if TYPE_CHECKING:
    from watcher.app.dashboard import DashboardReads
    from watcher.app.fleet import FleetTools
    from watcher.app.notifications import NotificationTools
    from watcher.core.watching import Sink, Sleep, Summary, WatchOptions
    from watcher.engine.fleet_cycle import SelectionReport

    # Notifications (jinja2, slack-sdk) load only on the paths that send or render them, so
    # that `watcher poll` without Slack, `list` and `status` start quickly.
    from watcher.notify.budget import RateBudget
    from watcher.notify.render import Renderer
    from watcher.notify.sender import DeliveryReport, Sender
    from watcher.notify.slack import Destination

__all__ = [
    "DELIVERY_DEADLINE",
    "PollOutcome",
    "Watcher",
    "destination",
    "keb_client",
    "token_provider",
]

#: How long `watcher poll` keeps delivering (sitting out Slack's rate limits) before it exits;
#: what is still undelivered then stays in the outbox for the next run.
DELIVERY_DEADLINE = 60.0
#: The label of the link to the orchestration's dashboard page (``service.public_url``).
DASHBOARD_LINK = "keb-watcher"


@dataclass
class PollOutcome:
    """One `watcher poll`: the cycle, what was delivered, and what is still undelivered."""

    cycle: CycleReport
    delivery: DeliveryReport | None = None
    undelivered: int = 0
    #: The selections polled in the same cycle (fleet watch).
    fleet: list[SelectionReport] = field(default_factory=list)


class Watcher:
    """One configured keb-watcher: the one place that wires the KEB client, the store, the
    engine, the sender and the destination. Every face builds one; resources open on first
    use.

    Overrides, for the faces that run without a configured database or Slack (``watch``
    without a config file, ``demo``) and for tests: ``clock`` (the engine's, the sender's and
    the lease's time), ``store`` (an open store), ``memory`` (a private in-memory store),
    ``destination`` (where notifications go instead of the configured Slack) and ``budget``
    (the sender's rate budget); ``terminal`` prints what the channel would get through that
    function, with no rate limit (``demo``).
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = utcnow,
        store: Store | None = None,
        memory: bool = False,
        destination: Destination | None = None,
        budget: RateBudget | None = None,
        terminal: Callable[[str], None] | None = None,
    ) -> None:
        if terminal is not None:
            from watcher.notify.budget import RateBudget
            from watcher.notify.terminal import TerminalSlack

            destination = TerminalSlack(terminal)
            budget = RateBudget(post_interval=0.0, updates_per_minute=10**6)
        self.config = config
        self.clock = clock
        self._store = store
        #: The store lives in memory, for this process only (``watch`` without a config file).
        self.memory = memory
        self._destination = destination
        self._budget = budget
        self._scratch: Watcher | None = None

    @property
    def store(self) -> Store:
        """The database; a missing one is an error (exit 2): see :meth:`open_store`."""
        return self.open_store(create=False)

    def open_store(self, *, create: bool) -> Store:
        """The database, created (owner-only) when missing if ``create``: only ``track``,
        ``watch --track``, ``run`` and ``demo`` create it (docs/contract.md §2.5)."""
        if self._store is None:
            if self.memory:
                self._store = Store(":memory:", create=True)
            else:
                self._store = Store(self.config.storage.path, create=create)
        return self._store

    def has_database(self) -> bool:
        """Whether a database is open or exists at the configured path (``watch`` without
        ``--track`` follows in memory when there is none, and creates nothing)."""
        if self._store is not None:
            return True
        return (
            not self.memory
            and self.config.source is not None
            and Path(self.config.storage.path).exists()
        )

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- tracking -------------------------------------------------------------------------

    def track(self, ids: Sequence[str], channel: str | None) -> list[str]:
        """Start tracking full UUIDs (else :class:`UsageError`); returns the IDs that are new
        (the others resume)."""
        ids = require_uuids(ids)
        return self.open_store(create=True).track(ids, channel, self.clock())

    async def unknown_to_keb(self, ids: Sequence[str]) -> list[str]:
        """The IDs KEB answers its own 404 for (``track`` asks before it tracks). Any other
        error (unreachable, token rejected, no orchestration API) raises as it is."""
        unknown: list[str] = []
        async with self.keb() as keb:
            for orch_id in ids:
                try:
                    await keb.get_orchestration(orch_id)
                except KebNotFound:
                    unknown.append(orch_id)
        return unknown

    def resolve(self, value: str) -> str:
        """The full ID ``value`` names: itself when it is a UUID, else the one known
        orchestration it is a unique prefix (8 characters or more) of
        (:func:`watcher.core.ids.resolve`)."""
        if is_uuid(value):
            return value.lower()
        if not self.has_database():
            raise UsageError(
                f"{value!r}: give the full orchestration ID (prefixes are looked up among the "
                "tracked ones, which needs a configuration file and its database)"
            )
        return resolve(value, self.store.ids_starting(value) if len(value) >= 8 else ())

    def known_ids(self) -> list[str]:
        """Every ID a prefix may name: tracked ones and untracked ones with history."""
        return self.store.ids_starting("")

    def untrack(self, ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Stop tracking; returns the full IDs, and those of them that were not tracked."""
        full = list(dict.fromkeys(self.resolve(i) for i in ids))
        return full, self.store.untrack(full, self.clock())

    def silence(
        self, ids: Sequence[str], seconds: float, reason: str | None, by: str | None
    ) -> tuple[list[str], datetime]:
        """Silence the orchestrations ``ids`` name (unique prefixes will do) for ``seconds``;
        returns their full IDs and until when. Only what keb-watcher knows can be silenced."""
        full = list(dict.fromkeys(self.resolve(i) for i in ids))
        for orch_id in full:
            if not self.store.is_known(orch_id):
                raise UsageError(f"{orch_id} is not tracked (`watcher track` it first)")
        now = self.clock()
        until = now + timedelta(seconds=seconds)
        self.store.silence(full, until, reason, by, now)
        return full, until

    def unsilence(self, ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Lift silences; returns the full IDs, and those of them that were not silenced."""
        full = list(dict.fromkeys(self.resolve(i) for i in ids))
        return full, self.store.unsilence(full, self.clock())

    def silences(self) -> dict[str, Silence]:
        """The silences in force now, by orchestration."""
        return self.store.silences(self.clock())

    def tracked(self, *, include_inactive: bool = False) -> list[Tracked]:
        return self.store.tracked(include_inactive=include_inactive)

    def due(self) -> list[Tracked]:
        """The tracked orchestrations the next cycle polls: unfinished ones, ended ones whose
        final notification is not delivered yet, and failed ones still watched for a retry
        (``poll.retry_window``)."""
        return due_now(self.config.poll, self.store.tracked(), self.clock())

    def history(self, orch_id: str) -> list[Transition]:
        orch_id = self.resolve(orch_id)
        if not self.store.is_known(orch_id):
            raise UsageError(f"{orch_id} is not tracked and has no history")
        return self.store.history(orch_id)

    def history_from(self, orch_id: str) -> tuple[str, int, list[Transition]]:
        """The full ID ``orch_id`` names (a unique prefix will do), the last transition row of
        the database and then its history: :meth:`transitions_after` that row follows on."""
        orch_id = self.resolve(orch_id)
        last = self.store.last_transition_id()
        return orch_id, last, self.history(orch_id)

    def has_ended(self, orch_id: str) -> bool:
        """Whether the recorded state of ``orch_id`` is terminal (``history --follow`` ends)."""
        tracked = self.store.tracked_one(orch_id)
        return tracked is not None and is_terminal_orchestration(tracked.state or "")

    def transitions_after(self, orch_id: str, last_id: int) -> tuple[int, list[Transition]]:
        """The transitions of ``orch_id`` recorded after row ``last_id``, and the new last row."""
        last_id, new = self.store.transitions_after(last_id)
        return last_id, [t for t in new if t.orchestration_id == orch_id]

    # -- KEB ------------------------------------------------------------------------------

    async def status(self, orch_id: str) -> Orchestration:
        orch_id = self.resolve(orch_id)
        async with keb_client(self.config) as keb:
            return await keb.get_orchestration(orch_id)

    async def orchestrations(self, states: Sequence[str] = ()) -> list[Orchestration]:
        """What KEB lists in ``states`` (all if empty), every page, oldest first."""
        async with keb_client(self.config) as keb:
            return await keb.list_orchestrations(states)

    def tracked_ids(self) -> set[str]:
        """The IDs tracked now; empty, and no database created, when there is none yet."""
        if not self.has_database():
            return set()
        return {t.orchestration_id for t in self.store.tracked()}

    def keb(self, *, observe: ExchangeHook | None = None) -> KebClient:
        """A KEB client for this configuration; use it as an async context manager."""
        return keb_client(self.config, observe=observe)

    def destination(self) -> Destination | None:
        """Where notifications go: the override, else the configured Slack, else nowhere."""
        return self._destination if self._destination is not None else destination(self.config)

    def engine(self, keb: KebReader) -> Engine:
        """The poll engine; it writes notification intents only when there is a destination."""
        notifying = self.destination() is not None
        return Engine(
            self.store,
            keb,
            self.config.poll,
            clock=self.clock,
            policy=(
                notification_policy(
                    self.store,
                    stuck_after=self.config.poll.stuck_after,
                    digest_interval=self.config.slack.digest_interval,
                )
                if notifying
                else None
            ),
            alerts=notifying,
            keb_url=self.config.keb.url,
        )

    def sender(self) -> Sender | None:
        dest = self.destination()
        if dest is None:
            return None
        slack = self.config.slack
        from watcher.notify.sender import Sender

        return Sender(
            Outbox(self.store),
            dest,
            self.renderer(),
            default_channel=slack.channel,
            routes=slack.routes,
            give_up_after=slack.give_up_after,
            budget=self._budget,
            clock=self.clock,
            on_delivered=self._delivered,
            digest_interval=slack.digest_interval,
        )

    def _delivered(self, orch_id: str) -> None:
        self.store.finish_if_done(orch_id, self.clock())

    def renderer(self) -> Renderer:
        from watcher.notify.render import Renderer

        links = self.config.links
        orchestration = dict(links.orchestration)
        if self.config.service.public_url:  # our own dashboard's page of the orchestration
            page = f"{self.config.service.public_url}/orchestrations/{{orchestration_id}}"
            orchestration = {DASHBOARD_LINK: page, **orchestration}
        context = {
            "keb_name": self.config.keb.name,
            "mention": self.config.slack.mention_on_failure,
            "links": {"orchestration": orchestration, "operation": links.operation},
        }
        return Renderer(self.config.templates.dir, context=context)

    async def poll(self, *, deadline: float = DELIVERY_DEADLINE) -> PollOutcome:
        """Exactly one cycle over everything tracked, then deliver what is pending.

        Holds the single-instance lease meanwhile (:mod:`watcher.store.lease`); raises
        :class:`~watcher.store.lease.LeaseHeld` when another keb-watcher holds it.
        """
        lease = Lease(self.store, holder_id(), lease_ttl(self.config.poll.interval))
        async with holding(lease):
            async with self.keb() as keb:
                cycle = await self.engine(keb).poll_once()
            outcome = PollOutcome(cycle)
            outcome.fleet = await self.fleet.poll(notify=self.destination() is not None)
            outcome.delivery, outcome.undelivered = await self.deliver(deadline=deadline)
        return outcome

    async def deliver(
        self, *, deadline: float = DELIVERY_DEADLINE
    ) -> tuple[DeliveryReport | None, int]:
        """Deliver what the outbox holds, for up to ``deadline`` seconds: what was delivered
        (``None`` without a destination), and how many notifications are still undelivered."""
        sender = self.sender()
        if sender is None:
            return None, 0
        report = await sender.deliver(deadline=time.monotonic() + deadline)
        # Digests held for their clock are pending by design, not undelivered.
        held = sender.outbox.scheduled(self.clock())
        return report, sender.outbox.undelivered() - held

    async def follow(
        self,
        orch_id: str,
        sink: Sink,
        options: WatchOptions,
        *,
        sleep: Sleep,
        monotonic: Callable[[], float],
        rng: Callable[[], float],
        track: bool = False,
    ) -> Summary:
        """``watcher watch``: follow one orchestration (a full ID: :meth:`resolve`) until it
        is terminal (:func:`watcher.engine.follow.follow`).

        The tracked set changes only with ``track``. A tracked orchestration is polled and
        recorded as ``watcher poll`` would; any other is followed in a private in-memory
        store (:meth:`scratch`) that is gone when the watch ends."""
        if track:
            self.track([orch_id], None)
        app = self if self.memory or orch_id in self.tracked_ids() else self.scratch()
        if app is not self or self.memory:
            app.store.track([orch_id], None, app.clock())
        async with app.keb() as keb:
            from watcher.engine.follow import follow

            return await follow(
                orch_id,
                app.engine(keb),
                app.store,
                sink,
                options,
                sleep=sleep,
                clock=monotonic,
                now=app.clock,
                rng=rng,
            )

    def recorded(self, orch_id: str) -> bool:
        """Whether what a watch of ``orch_id`` saw went to the configured database."""
        return not self.memory and orch_id in self.tracked_ids()

    def scratch(self) -> Watcher:
        """A watcher like this one over a private in-memory store, for following what is not
        tracked; closed with this one."""
        if self._scratch is None:
            self._scratch = Watcher(self.config, clock=self.clock, memory=True)
        return self._scratch

    def outbox(self) -> Outbox:
        return Outbox(self.store)

    @property
    def dashboard(self) -> DashboardReads:
        """What the dashboard's pages read (:mod:`watcher.faces.web`)."""
        from watcher.app.dashboard import DashboardReads

        return DashboardReads(self)

    @property
    def fleet(self) -> FleetTools:
        """Fleet watch: selections of runtimes followed through ``/runtimes``."""
        from watcher.app.fleet import FleetTools

        return FleetTools(self)

    @property
    def notifications(self) -> NotificationTools:
        """Checking, previewing and testing notifications (``check-config``, ``render``,
        ``notify-test``)."""
        from watcher.app.notifications import NotificationTools

        return NotificationTools(self)
