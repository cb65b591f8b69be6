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
from types import TracebackType
from typing import Any

from watcher.config.loader import Config
from watcher.core.diff import Transition, TransitionKind
from watcher.core.models import FAILED, Orchestration
from watcher.core.policy import failure_groups, summary
from watcher.engine.cycle import CycleReport, Engine, notification_policy, utcnow
from watcher.errors import ConfigError, UsageError
from watcher.faces import reports as report
from watcher.keb import CommandToken, FileToken, KebClient, RetryPolicy, StaticToken, TokenProvider
from watcher.keb.timing import ExchangeHook, timed_transport
from watcher.notify.render import Rendered, Renderer
from watcher.notify.samples import SAMPLES
from watcher.notify.sender import DeliveryReport, Sender
from watcher.notify.slack import BotSlack, Destination, WebhookSlack, metadata
from watcher.store.database import Store, Tracked
from watcher.store.lease import Lease, holder_id, holding, lease_ttl
from watcher.store.outbox import Outbox

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
        ca_file=config.keb.ca_file,
    )


def destination(config: Config) -> Destination | None:
    """The Slack destination the configuration names, or None when Slack is not configured."""
    slack = config.slack
    if slack.token:
        return BotSlack(slack.token.reveal(), slack.base_url)
    if slack.webhook_url:
        return WebhookSlack(slack.webhook_url.reveal())
    return None


@dataclass
class PollOutcome:
    """One `watcher poll`: the cycle, what was delivered, and what is still undelivered."""

    cycle: CycleReport
    delivery: DeliveryReport | None = None
    undelivered: int = 0


class Watcher:
    """One configured keb-watcher: what every command needs, opened on first use."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], datetime] = utcnow,
        store: Store | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._store = store

    @property
    def store(self) -> Store:
        """The database; a missing one is an error (exit 2): see :meth:`open_store`."""
        return self.open_store(create=False)

    def open_store(self, *, create: bool) -> Store:
        """The database, created (owner-only) when missing if ``create``: only ``track``,
        ``run`` with discovery and ``demo`` create it (PRODUCT.md)."""
        if self._store is None:
            self._store = Store(self.config.storage.path, create=create)
        return self._store

    def close(self) -> None:
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
        """Start tracking; returns the IDs that are new (the others resume)."""
        ids = check_ids(ids)
        return self.open_store(create=True).track(ids, channel, self.clock())

    def untrack(self, ids: Sequence[str]) -> list[str]:
        """Stop tracking; returns the IDs that were not tracked."""
        return self.store.untrack(check_ids(ids), self.clock())

    def tracked(self) -> list[Tracked]:
        return self.store.tracked()

    def history(self, orch_id: str) -> list[Transition]:
        check_ids([orch_id])
        if not self.store.is_known(orch_id):
            raise UsageError(f"{orch_id} is not tracked and has no history")
        return self.store.history(orch_id)

    # -- KEB ------------------------------------------------------------------------------

    async def status(self, orch_id: str) -> Orchestration:
        check_ids([orch_id])
        async with keb_client(self.config) as keb:
            return await keb.get_orchestration(orch_id)

    def engine(self, keb: KebClient) -> Engine:
        """The poll engine; it writes notification intents only when Slack is configured."""
        notifying = destination(self.config) is not None
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
        dest = destination(self.config)
        if dest is None:
            return None
        slack = self.config.slack
        return Sender(
            Outbox(self.store),
            dest,
            self.renderer(),
            default_channel=slack.channel,
            routes=slack.routes,
            max_attempts=slack.max_attempts,
            clock=self.clock,
            on_delivered=self._delivered,
        )

    def _delivered(self, orch_id: str) -> None:
        self.store.finish_if_done(orch_id, self.clock())

    def renderer(self) -> Renderer:
        return Renderer(self.config.templates.dir)

    async def poll(self, *, deadline: float = DELIVERY_DEADLINE) -> PollOutcome:
        """Exactly one cycle over everything tracked, then deliver what is pending.

        Holds the single-instance lease meanwhile (:mod:`watcher.store.lease`); raises
        :class:`~watcher.store.lease.LeaseHeld` when another keb-watcher holds it.
        """
        lease = Lease(self.store, holder_id(), lease_ttl(self.config.poll.interval))
        async with holding(lease):
            async with keb_client(self.config) as keb:
                cycle = await self.engine(keb).poll_once()
            outcome = PollOutcome(cycle)
            sender = self.sender()
            if sender is not None:
                outcome.delivery = await sender.deliver(deadline=time.monotonic() + deadline)
                outcome.undelivered = sender.outbox.undelivered()
        return outcome

    # -- notifications --------------------------------------------------------------------

    def check_templates(self) -> list[str]:
        """Render every template against sample data; the errors, one line each."""
        return self.renderer().check(SAMPLES)

    def check_slack(self) -> list[str]:
        """Reach Slack: ``auth.test`` and the channel (bot token), or nothing (webhook)."""
        dest = destination(self.config)
        if dest is None:
            return ["Slack: not configured (notifications are off)"]
        if not isinstance(dest, BotSlack):
            return ["Slack: incoming webhook configured (not called: it would post a message)"]
        who = dest.auth_test()
        lines = [f"Slack: token accepted (team {who.get('team')}, bot user {who.get('user')})"]
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
        dest = destination(self.config)
        if dest is None:
            raise ConfigError(
                "slack: not configured: set slack.token and slack.channel, or slack.webhook_url"
            )
        target = channel or self.config.slack.channel
        if isinstance(dest, BotSlack) and not target:
            raise UsageError("no channel: give --channel or set slack.channel")
        from watcher.notify.blocks import to_message

        message = to_message(
            ":wave: *keb-watcher test message*\n"
            "If you can read this, notifications reach this channel."
        )
        meta = metadata("test", f"test:{self.clock().isoformat()}", None)
        return dict(dest.post(target, message, meta).answer)

    def render(self, kind: str, orch_id: str | None) -> Rendered:
        """What a notification of ``kind`` looks like: for sample data, or for a tracked
        orchestration as it is now."""
        renderer = self.renderer()
        renderer.template_for(kind)
        if orch_id is None:
            return renderer.render(kind, SAMPLES[kind])
        head = self.store.load_head(check_ids([orch_id])[0])
        if head.orchestration is None:
            raise UsageError(f"{orch_id} has no snapshot yet (track it and poll first)")
        payload = self._live_payload(kind, orch_id)
        return renderer.render(kind, payload)

    def _live_payload(self, kind: str, orch_id: str) -> dict[str, Any]:
        """The sample payload of ``kind`` with everything a snapshot can tell filled in."""
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
            last_change=report.transition_line(history[-1]).split("  ", 1)[1] if history else "-",
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
