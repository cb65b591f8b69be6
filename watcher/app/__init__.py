"""The application facade the CLI talks to: configuration, store and KEB client together.

Commands stay thin: they parse arguments, call one method here and print what it returns.
Resources are opened lazily, so ``watcher status`` never creates a database and
``watcher history`` never needs KEB.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from watcher.clock import Clock, utcnow
from watcher.config import Config
from watcher.core.diff import Transition, TransitionKind
from watcher.core.ids import is_uuid, require_uuids, resolve
from watcher.core.models import FAILED, Operation, Orchestration, finished_count
from watcher.core.policy import Reference, failure_groups, summary
from watcher.core.watching import Sink, Sleep, Summary, WatchOptions
from watcher.core.wording import transition_text
from watcher.engine.cycle import CycleReport, Engine, notification_policy
from watcher.engine.observer import KebReader
from watcher.errors import ConfigError, UsageError
from watcher.keb import CommandToken, FileToken, KebClient, RetryPolicy, StaticToken, TokenProvider
from watcher.keb.timing import ExchangeHook, timed_transport
from watcher.store.board import OperationPage
from watcher.store.database import Store, Tracked
from watcher.store.lease import Lease, holder_id, holding, lease_ttl
from watcher.store.outbox import Outbox

if TYPE_CHECKING:
    # Notifications (jinja2, slack-sdk) load only on the paths that send or render them, so
    # that `watcher poll` without Slack, `list` and `status` start quickly.
    from watcher.notify.budget import RateBudget
    from watcher.notify.render import Rendered, Renderer
    from watcher.notify.sender import DeliveryReport, Sender
    from watcher.notify.slack import Destination

#: How long `watcher poll` keeps delivering (sitting out Slack's rate limits) before it exits;
#: what is still undelivered then stays in the outbox for the next run.
DELIVERY_DEADLINE = 60.0

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_ids(ids: Sequence[str]) -> list[str]:
    """Orchestration IDs are UUIDs in KEB; accept any plain token, reject what cannot be one."""
    for orch_id in ids:
        if not _ID.match(orch_id):
            raise UsageError(f"{orch_id!r} is not an orchestration ID (expected e.g. a UUID)")
    return list(dict.fromkeys(ids))


def token_provider(config: Config) -> TokenProvider:
    keb = config.keb
    if keb.token:
        return StaticToken(keb.token.reveal())
    if keb.token_file is not None:
        return FileToken(keb.token_file)
    if keb.token_command:
        return CommandToken(keb.token_command)
    raise ConfigError(
        "keb: no token configured: set keb.token, keb.token_file or keb.token_command "
        "(or the KEB_TOKEN environment variable)"
    )


def keb_client(config: Config, *, observe: ExchangeHook | None = None) -> KebClient:
    """The KEB client; ``observe`` sees every HTTP exchange (status class, seconds)."""
    transport = timed_transport(observe, config.keb.concurrency) if observe else None
    return KebClient(
        config.keb.url,
        token_provider(config),
        timeout=config.keb.timeout,
        concurrency=config.keb.concurrency,
        retry=RetryPolicy(attempts=config.keb.retries),
        transport=transport,
    )


def destination(config: Config) -> Destination | None:
    """The Slack destination the configuration names, or None when Slack is not configured."""
    slack = config.slack
    if not (slack.token or slack.webhook_url):
        return None  # and slack-sdk is never loaded
    from watcher.notify.slack import BotSlack, WebhookSlack

    if slack.token:
        return BotSlack(slack.token.reveal(), slack.base_url)
    assert slack.webhook_url is not None
    return WebhookSlack(slack.webhook_url.reveal())


@dataclass
class PollOutcome:
    """One `watcher poll`: the cycle, what was delivered, and what is still undelivered."""

    cycle: CycleReport
    delivery: DeliveryReport | None = None
    undelivered: int = 0


@dataclass(frozen=True, slots=True)
class BoardState:
    """The top of the dashboard: ``revision`` changes whenever a poll recorded something or
    ended, ``last_cycle_at`` is when the last poll cycle ended, ``unhealthy_since`` since when
    KEB has been failing (``keb_error`` why), ``undelivered`` the outbox depth."""

    revision: str
    last_cycle_at: datetime | None
    unhealthy_since: datetime | None
    keb_error: str | None
    undelivered: int


class Watcher:
    """One configured keb-watcher: the one place that wires the KEB client, the store, the
    engine, the sender and the destination. Every face builds one; resources open on first
    use.

    Overrides, for the faces that run without a configured database or Slack (``watch``
    without a config file, ``demo``) and for tests: ``clock`` (the engine's, the sender's and
    the lease's time), ``store`` (an open store), ``memory`` (a private in-memory store),
    ``destination`` (where notifications go instead of the configured Slack) and ``budget``
    (the sender's rate budget).
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
    ) -> None:
        self.config = config
        self.clock = clock
        self._store = store
        self._memory = memory
        self._destination = destination
        self._budget = budget
        self._scratch: Watcher | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(":memory:" if self._memory else self.config.storage.path)
        return self._store

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
        return self.store.track(require_uuids(ids), channel, self.clock())

    def resolve(self, value: str) -> str:
        """The full ID ``value`` names: itself when it is a UUID, else the one known
        orchestration it is a unique prefix (8 characters or more) of
        (:func:`watcher.core.ids.resolve`)."""
        if is_uuid(value):
            return value.lower()
        if self.config.source is None and self._store is None:
            raise UsageError(
                f"{value!r}: give the full orchestration ID (prefixes are looked up among the "
                "tracked ones, which needs a configuration file)"
            )
        return resolve(value, self.store.ids_starting(value) if len(value) >= 8 else ())

    def untrack(self, ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Stop tracking; returns the full IDs, and those of them that were not tracked."""
        full = list(dict.fromkeys(self.resolve(i) for i in ids))
        return full, self.store.untrack(full, self.clock())

    def tracked(self, *, include_inactive: bool = False) -> list[Tracked]:
        return self.store.tracked(include_inactive=include_inactive)

    def due(self) -> list[Tracked]:
        """The tracked orchestrations a cycle polls: unfinished, or finished and waiting for
        their final notification."""
        return self.store.due()

    def history(self, orch_id: str) -> list[Transition]:
        orch_id = self.resolve(orch_id)
        if not self.store.is_known(orch_id):
            raise UsageError(f"{orch_id} is not tracked and has no history")
        return self.store.history(orch_id)

    # -- the dashboard's reads (watcher.faces.web) -------------------------------------------

    def reader(self) -> Watcher:
        """This watcher on a connection of its own to the same database, for another thread
        (a request of the dashboard: a :class:`Store` serves one thread). Close it after use."""
        if self._memory:
            raise UsageError("the dashboard needs a database file, not an in-memory store")
        return Watcher(self.config, clock=self.clock, store=Store(self.config.storage.path))

    def progress(self, orch_id: str) -> dict[str, Any] | None:
        """What every message shows of an orchestration as last seen (counts, elapsed,
        throughput, ETA: :func:`watcher.core.policy.summary`); None before its first poll."""
        head = self.store.load_head(orch_id)
        if head.orchestration is None:
            return None
        found = self.store.reference(orch_id)
        reference = Reference(found[0], finished_count(found[1])) if found else None
        return summary(head.orchestration, head.counts, self.clock(), reference)

    def orchestration(self, orch_id: str) -> Orchestration | None:
        """KEB's orchestration object as last polled, or None."""
        return self.store.load_head(orch_id).orchestration

    def failure_reasons(self, orch_id: str, limit: int = -1) -> list[tuple[str, int]]:
        return self.store.failure_reasons(orch_id, limit)

    def failed_operations(self, orch_id: str) -> list[Operation]:
        return self.store.failed_operations(orch_id)

    def find_operations(
        self, orch_id: str, *, states: Sequence[str], search: str, limit: int
    ) -> OperationPage:
        return self.store.find_operations(orch_id, states=states, search=search, limit=limit)

    def timeline(self, orch_id: str, recent: int) -> tuple[list[Transition], list[Transition]]:
        """The orchestration-level transitions (oldest first) and the newest ``recent``
        transitions of any kind (newest first)."""
        return (
            self.store.orchestration_transitions(orch_id),
            self.store.recent_transitions(orch_id, recent),
        )

    def board_state(self) -> BoardState:
        """What the top of the dashboard shows, and the revision of the data it shows."""
        since, error, _alerted = self.store.health()
        return BoardState(
            revision=self.store.revision(),
            last_cycle_at=self.store.last_cycle_at(),
            unhealthy_since=since,
            keb_error=error,
            undelivered=self.outbox().undelivered(),
        )

    def history_from(self, orch_id: str) -> tuple[str, int, list[Transition]]:
        """The full ID ``orch_id`` names (a unique prefix will do), the last transition row of
        the database and then its history: :meth:`transitions_after` that row follows on."""
        orch_id = self.resolve(orch_id)
        last = self.store.last_transition_id()
        return orch_id, last, self.history(orch_id)

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
        if self._store is None and (
            self.config.source is None or not Path(self.config.storage.path).exists()
        ):
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
            clock=self.clock,
            full_sweep_every=self.config.poll.full_sweep_every,
            concurrency=self.config.poll.concurrency,
            policy=notification_policy(self.store) if notifying else None,
            alert_after=self.config.poll.alert_after if notifying else None,
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
            max_attempts=slack.max_attempts,
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
        context = {
            "keb_name": self.config.keb.name,
            "mention": self.config.slack.mention_on_failure,
            "links": {"orchestration": links.orchestration, "operation": links.operation},
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
        app = self if self._memory or orch_id in self.tracked_ids() else self.scratch()
        if app is not self or self._memory:
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
        return not self._memory and orch_id in self.tracked_ids()

    def scratch(self) -> Watcher:
        """A watcher like this one over a private in-memory store, for following what is not
        tracked; closed with this one."""
        if self._scratch is None:
            self._scratch = Watcher(self.config, clock=self.clock, memory=True)
        return self._scratch

    # -- notifications --------------------------------------------------------------------

    def check_templates(self) -> list[str]:
        """Render every template against sample data; the errors, one line each."""
        from watcher.notify.samples import SAMPLES

        return self.renderer().check(SAMPLES)

    def check_slack(self) -> list[str]:
        """Reach Slack: ``auth.test`` and the channel (bot token), or nothing (webhook)."""
        from watcher.notify.slack import BotSlack

        dest = destination(self.config)
        if dest is None:
            return ["Slack: not configured (notifications are off)"]
        if not isinstance(dest, BotSlack):
            return ["Slack: incoming webhook configured (not called: it would post a message)"]
        who = dest.auth_test()
        lines = [f"Slack: token accepted (team {who.get('team')}, bot user {who.get('user')})"]
        from watcher.notify.slack import SCOPES

        granted = dest.granted_scopes()
        missing = sorted(set(SCOPES) - granted) if granted is not None else []
        if missing:
            raise ConfigError(
                "slack.token: the Slack app lacks the scopes "
                + ", ".join(f"{scope} ({SCOPES[scope]})" for scope in missing)
                + "; add them (deploy/slack-app-manifest.yaml) and reinstall the app"
            )
        if granted is not None:
            lines.append(f"Slack: token has every scope needed ({', '.join(sorted(SCOPES))})")
        channels = {self.config.slack.channel, *self.config.slack.routes.values()} - {None}
        for channel in sorted(c for c in channels if c):
            info = dest.channel_info(channel)
            found = info.get("channel", {})
            lines.append(f"Slack: channel {channel} found ({found.get('id', '?')})")
        return lines

    def outbox(self) -> Outbox:
        return Outbox(self.store)

    def notify_test(self, channel: str | None) -> dict[str, Any]:
        """Post a test message; Slack's answer, as Slack gave it."""
        from watcher.notify.blocks import to_message
        from watcher.notify.slack import BotSlack, metadata

        dest = destination(self.config)
        if dest is None:
            raise ConfigError(
                "slack: not configured: set slack.token and slack.channel, or slack.webhook_url"
            )
        target = channel or self.config.slack.channel
        if isinstance(dest, BotSlack) and not target:
            raise UsageError("no channel: give --channel or set slack.channel")
        message = to_message(
            ":wave: *keb-watcher test message*\n"
            "If you can read this, notifications reach this channel."
        )
        meta = metadata("test", f"test:{self.clock().isoformat()}", None)
        return dict(dest.post(target, message, meta).answer)

    def render(self, kind: str, orch_id: str | None) -> Rendered:
        """What a notification of ``kind`` looks like: for sample data, or for a tracked
        orchestration as it is now."""
        from watcher.notify.samples import SAMPLES

        renderer = self.renderer()
        renderer.template_for(kind)
        if orch_id is None:
            return renderer.render(kind, SAMPLES[kind])
        orch_id = self.resolve(orch_id)
        head = self.store.load_head(orch_id)
        if head.orchestration is None:
            raise UsageError(f"{orch_id} has no snapshot yet (track it and poll first)")
        payload = self._live_payload(kind, orch_id)
        return renderer.render(kind, payload)

    def _live_payload(self, kind: str, orch_id: str) -> dict[str, Any]:
        """The sample payload of ``kind`` with everything a snapshot can tell filled in."""
        from watcher.notify.samples import SAMPLES

        snap = self.store.load_snapshot(self.store.load_head(orch_id))
        assert snap.orchestration is not None
        payload = dict(SAMPLES[kind])
        payload.update(summary(snap.orchestration, snap.state_counts(), self.clock(), None))
        failed = [
            {"description": op.description, "shoot": op.shoot_name, "operation_id": op.operation_id}
            for op in snap.operations.values()
            if op.state == FAILED
        ]
        history = self.store.history(orch_id)
        payload.update(
            failures=failure_groups(failed),
            new_failures=len(failed),
            more_reasons=0,
            last_change=transition_text(history[-1]) if history else "-",
        )
        for t in reversed(history):
            if t.kind is TransitionKind.ORCHESTRATION_STATE:
                payload["change"] = {
                    "from": t.from_state,
                    "to": t.to_state,
                    "via": list(t.via),
                    "description": t.description,
                }
                break
        payload["orchestration"] = {**payload.get("orchestration", {}), "id": orch_id}
        return payload
