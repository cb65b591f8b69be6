"""Drain the outbox into Slack: at least once, in practice exactly once, never spam.

* Order: lower priority value first (final summaries and failure digests before card
  updates); pending card updates of one orchestration are coalesced, only the newest is sent.
* Budget: a call waits for :class:`RateBudget`; a 429 pauses that method for ``Retry-After``.
* Transient errors (5xx, network, 429) are retried with exponential backoff and jitter; after
  ``max_attempts`` the intent is ``dead``. Permanent errors (``invalid_auth``,
  ``channel_not_found``...) mark it ``failed`` with Slack's answer. Every attempt and its
  answer is recorded (``attempts`` table); ``watcher outbox`` shows and acts on them.
* Crash safety: the attempt counter is committed before each call and Slack's ``ts`` right
  after it. An intent that was attempted but has no ``ts`` may have been posted just before a
  crash: its key is looked up in the channel's message metadata before posting again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.clock import utcnow
from watcher.errors import SlackFailure
from watcher.notify.blocks import Message, plain_message
from watcher.notify.budget import RateBudget
from watcher.notify.pacing import REPLY_KINDS, Pacing
from watcher.notify.render import Renderer, fallback_text
from watcher.notify.slack import Destination, Posted, metadata
from watcher.store.outbox import Card, Entry, Outbox

log = logging.getLogger("watcher.notify")

CARD_KINDS = frozenset({"tracking_started", "progress"})


def _ids(entry: Entry) -> dict[str, object]:
    """``extra=`` for log records about ``entry`` (see :mod:`watcher.logs`)."""
    return {"intent_id": entry.id, "orchestration_id": entry.orchestration_id}


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class Sender:
    """Delivers due outbox entries to one destination."""

    def __init__(
        self,
        outbox: Outbox,
        destination: Destination,
        renderer: Renderer,
        *,
        default_channel: str | None,
        routes: Mapping[str, str] | None = None,
        max_attempts: int = 8,
        budget: RateBudget | None = None,
        clock: Callable[[], datetime] = utcnow,
        rng: Callable[[], float] = random.random,
        on_delivered: Callable[[str], None] | None = None,
        digest_interval: float = 0.0,
    ) -> None:
        self.outbox = outbox
        self.destination = destination
        self.renderer = renderer
        self.default_channel = default_channel
        self.routes = dict(routes or {})
        self.max_attempts = max_attempts
        self.budget = budget or RateBudget()
        self.clock = clock
        self.rng = rng
        self.on_delivered = on_delivered
        self.pacing = Pacing(
            outbox,
            digest_interval=digest_interval,
            threads=destination.threads,
            routed=lambda e: e.channel is None and e.kind in self.routes,
        )
        # Backoff belongs to the destination: after a transient error nothing is sent until
        # this time; the first call that succeeds makes everything that waited due again.
        self._down_until: datetime | None = None
        self._probed = False

    def channel_for(self, entry: Entry) -> str | None:
        """``track --channel`` wins, then ``[slack.routes]`` for the kind, then the default."""
        return entry.channel or self.routes.get(entry.kind) or self.default_channel

    def _method(self, entry: Entry) -> str:
        if not self.destination.edits:
            return "webhook"
        if entry.kind in CARD_KINDS and self.outbox.card(entry.orchestration_id or "") is not None:
            return "chat.update"
        return "chat.postMessage"

    async def deliver(
        self,
        *,
        deadline: float,
        linger: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        allowed: Callable[[], bool] | None = None,
    ) -> DeliveryReport:
        """Send what is due until nothing is left that can go before ``deadline`` (monotonic).

        Rate-limit waits are sat out within the deadline; an intent whose next attempt (after
        an error) is more than ``linger`` seconds away is left for a later run. ``allowed`` is
        asked before each attempt; delivery stops when it says no (the service lost its lease).
        """
        report = DeliveryReport()
        await self._probe()
        while True:
            if allowed is not None and not allowed():
                return report
            self.outbox.supersede_stale_card_updates()
            self.outbox.hold_back_silenced(self.clock())
            self.outbox.merge_pending_digests()
            pending = self.pacing.prepare(self.clock())
            due = self.outbox.due(self.clock())
            remaining = deadline - time.monotonic()
            down = (self._down_until - self.clock()).total_seconds() if self._down_until else 0
            if due and down > 0:
                if down > min(remaining, linger):
                    return report
                await sleep(down)
                continue
            if not due:
                nxt = self.outbox.next_due_at()
                if nxt is None:
                    return report
                wait = (nxt - self.clock()).total_seconds()
                if wait > min(remaining, linger):
                    return report
                await sleep(max(0.0, wait))
                continue
            soonest = None
            progressed = False
            for entry in due:
                if self._waits_for_card(entry) or self.pacing.waits_for_earlier(entry, pending):
                    continue
                wait = self.budget.wait(self._method(entry), self.channel_for(entry))
                if wait > 0:
                    soonest = wait if soonest is None else min(soonest, wait)
                    continue
                await self._attempt(entry, report)
                progressed = True
                break  # re-read: priorities and coalescing may have changed
            if progressed:
                continue
            later = self._next_in(pending)  # what the waiting replies wait for
            if later is not None and later <= min(remaining, linger):
                soonest = later if soonest is None else min(soonest, later)
            if soonest is None or soonest > remaining:
                return report
            await sleep(soonest)

    async def _attempt(self, entry: Entry, report: DeliveryReport) -> None:
        method = self._method(entry)
        channel = self.channel_for(entry)
        if method == "webhook" and entry.kind == "progress":
            self.outbox.mark_skipped(entry, "a webhook cannot edit the card")
            report.skipped += 1
            if self.on_delivered and entry.orchestration_id:
                self.on_delivered(entry.orchestration_id)
            return
        self.outbox.begin_attempt(entry, self.clock())
        self.budget.spend(method, channel)
        try:
            posted = await self._send(entry, channel)
        except SlackFailure as failure:
            self._failed(entry, failure, channel, report)
            return
        now = self.clock()
        self.outbox.record_attempt(entry, now, method, ok=True)
        self._recovered(now)
        self.outbox.mark_sent(
            entry, now, posted.channel if posted else None, posted.ts if posted else None
        )
        report.sent += 1
        log.info("outbox %d (%s %s): sent", entry.id, entry.kind, entry.key, extra=_ids(entry))
        if self.on_delivered and entry.orchestration_id:
            self.on_delivered(entry.orchestration_id)

    def _failed(
        self, entry: Entry, failure: SlackFailure, channel: str | None, report: DeliveryReport
    ) -> None:
        now = self.clock()
        self.outbox.record_attempt(
            entry,
            now,
            failure.method,
            ok=False,
            error=failure.error,
            retry_after=failure.retry_after,
        )
        message = str(failure)
        if failure.retry_after is not None:
            self.budget.pause(failure.method, channel, failure.retry_after)
            self.outbox.mark_retry(entry, now + timedelta(seconds=failure.retry_after), message)
            report.retried += 1
            log.warning(
                "outbox %d: %s; waiting %.0fs as Slack asked",
                entry.id,
                message,
                failure.retry_after,
                extra=_ids(entry),
            )
        elif failure.transient and entry.attempts + 1 < self.max_attempts:
            delay = min(300.0, 2.0 ** (entry.attempts + 1)) * (0.5 + self.rng())
            self.outbox.mark_retry(entry, now + timedelta(seconds=delay), message)
            self._down_until = now + timedelta(seconds=delay)
            report.retried += 1
            log.warning(
                "outbox %d: %s; next attempt in %.0fs",
                entry.id,
                message,
                delay,
                extra=_ids(entry),
            )
        else:
            dead = failure.transient
            self.outbox.mark_failed(entry, message, dead=dead)
            report.failed += 1
            report.errors.append(f"outbox {entry.id} ({entry.kind}): {message}")
            log.error(
                "outbox %d (%s): %s: %s",
                entry.id,
                entry.kind,
                "dead" if dead else "failed",
                message,
                extra=_ids(entry),
            )

    def _next_in(self, pending: list[Entry]) -> float | None:
        """Seconds until the next pending notification that is not due yet comes due."""
        now = self.clock()
        later = [e.next_attempt_at for e in pending if e.next_attempt_at]
        later = [at for at in later if at > now]
        return (min(later) - now).total_seconds() if later else None

    async def _probe(self) -> None:
        """Once per sender (a `poll`, the service's start): when notifications wait out a
        transient error, ask Slack whether it answers again (``auth.test``, which posts
        nothing); if it does, they are due at once instead of after their backoff."""
        if self._probed:
            return
        self._probed = True
        for entry, method, left in self.outbox.rate_limits(self.clock()):
            self.budget.pause(method, self.channel_for(entry), left)
        if not self.outbox.backing_off(self.clock()):
            return
        try:
            await asyncio.to_thread(self.destination.probe)
        except SlackFailure as failure:
            log.warning("Slack still fails (%s); the outbox waits", failure)
            return
        self._recovered(self.clock())

    def _recovered(self, now: datetime) -> None:
        self._down_until = None
        released = self.outbox.release_backoff(now)
        if released:
            log.info("Slack answers again: %d notifications due now", released)

    # -- the Slack side: database work here, each Slack call in a worker thread -----------

    def _render(self, entry: Entry) -> Message:
        payload = entry.payload
        if entry.kind in CARD_KINDS and entry.orchestration_id:
            # The card says it is silenced, as it is when it is sent (docs/notifications.md).
            silence = self.outbox.store.silences(self.clock()).get(entry.orchestration_id)
            if silence is not None:
                payload = {**payload, "silence": silence.to_json()}
        rendered = self.renderer.render(entry.kind, payload)
        if rendered.error:
            self.outbox.set_render_error(entry, rendered.error)
            log.error(
                "outbox %d: %s (sent as plain text)", entry.id, rendered.error, extra=_ids(entry)
            )
        return rendered.message

    async def _send(self, entry: Entry, channel: str | None) -> Posted | None:
        message = self._render(entry)
        meta = metadata(entry.kind, entry.key, entry.orchestration_id)
        try:
            return await self._route(entry, channel, message, meta)
        except SlackFailure as failure:
            if failure.error.startswith("invalid_blocks"):
                # Slack refused our blocks: the words still matter more than the layout.
                self.outbox.set_render_error(entry, f"Slack refused the blocks: {failure.error}")
                plain = plain_message(fallback_text(entry.kind, entry.payload))
                return await self._route(entry, channel, plain, meta)
            raise

    async def _route(
        self, entry: Entry, channel: str | None, message: Message, meta: dict[str, object]
    ) -> Posted | None:
        dest = self.destination
        orch_id = entry.orchestration_id
        if not dest.edits:
            return await asyncio.to_thread(dest.post, channel, message, dict(meta))
        if orch_id and entry.kind in CARD_KINDS:
            return await self._card(entry, orch_id, channel, message)
        # A kind routed to a channel of its own is a top-level post there; everything else
        # about an orchestration goes into its card's thread.
        routed = entry.channel is None and entry.kind in self.routes
        card = self.outbox.card(orch_id) if orch_id and not routed else None
        thread_ts = card.ts if card else None
        target = card.channel_id if card else channel
        if entry.attempts > 0:
            found = await asyncio.to_thread(dest.find, target, entry.key, thread_ts=thread_ts)
            if found is not None:
                log.info(
                    "outbox %d: already in Slack (ts %s), not posted again",
                    entry.id,
                    found.ts,
                    extra=_ids(entry),
                )
                return found
        return await asyncio.to_thread(
            dest.post,
            target,
            message,
            dict(meta),
            thread_ts=thread_ts,
            broadcast=entry.kind == "finished",
        )

    def _waits_for_card(self, entry: Entry) -> bool:
        """A thread reply whose card is still in the outbox waits for it (even though the
        reply has the higher priority), so that it lands in the card's thread."""
        if (
            entry.kind not in REPLY_KINDS
            or not entry.orchestration_id
            or not self.destination.threads
        ):
            return False
        if self.outbox.card(entry.orchestration_id) is not None:
            return False
        return any(
            other.orchestration_id == entry.orchestration_id and other.kind in CARD_KINDS
            for other in self.outbox.entries(("pending",))
        )

    async def _card(
        self, entry: Entry, orch_id: str, channel: str | None, message: Message
    ) -> Posted:
        dest = self.destination
        card_meta = metadata("tracking_started", f"{orch_id}:card", orch_id)
        card = self.outbox.card(orch_id)
        if card is None:
            # Once per orchestration: after a lost database (or a crash right after the post)
            # the card is already in the channel, recognisable by its metadata.
            found = await asyncio.to_thread(dest.find_card, channel, orch_id)
            if found is not None:
                card = Card(found.channel, found.ts)
                self.outbox.save_card(orch_id, card, self.clock())
        if card is not None:
            try:
                return await asyncio.to_thread(
                    dest.update, card.channel_id, card.ts, message, card_meta
                )
            except SlackFailure as failure:
                if not failure.error.startswith("message_not_found"):
                    raise
                log.warning(
                    "card of %s was deleted in Slack; posting a new one",
                    orch_id,
                    extra=_ids(entry),
                )
                self.outbox.forget_card(orch_id)
        posted = await asyncio.to_thread(dest.post, channel, message, card_meta)
        self.outbox.save_card(orch_id, Card(posted.channel, posted.ts), self.clock())
        return posted
