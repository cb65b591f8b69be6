"""Drain the outbox into Slack: at least once, in practice exactly once, never spam.

The decisions are :func:`watcher.notify.plan.plan`'s (coalescing, event order, the digest
clock, the rate budget) and :func:`~watcher.notify.plan.after_failure`'s (backoff, 429s,
giving up on time). This module is the thin driver that carries them out:

* **One read per drain.** The pending set and what the channel shows are read once; the plan
  is kept current in memory as sends succeed or fail, so delivering N notifications reads
  about N rows.
* **One write per send.** The attempt counter of a call is committed before the call, in the
  same transaction as the result of the call before it (the attempt, the status, Slack's
  ``ts``, the card). An intent that was attempted but has no ``ts`` may have been posted just
  before a crash: its key is looked up in the channel's message metadata before posting again.
* **Backoff belongs to Slack, not to a message.** After a transient error nothing more is sent
  until the backoff ends; the first call that succeeds makes every notification that waited
  out a transient error due at once. A 429 pauses that method (and channel) for exactly its
  ``Retry-After`` and never counts towards giving up (``slack.give_up_after``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import assert_never

from watcher.clock import utcnow
from watcher.core.intents import Intent
from watcher.core.kinds import CARD_KINDS, KINDS, Kind, Role
from watcher.core.tracked import Silence
from watcher.errors import SlackFailure
from watcher.notify.answers import fix_for
from watcher.notify.blocks import Message, plain_message
from watcher.notify.budget import RateBudget
from watcher.notify.drain import DeliveryReport, Drain
from watcher.notify.plan import (
    FINAL,
    GIVEN_UP,
    GiveUp,
    Retry,
    Rules,
    Send,
    after_failure,
)
from watcher.notify.render import Renderer, fallback_text
from watcher.notify.slack import Destination, Posted, metadata
from watcher.store.outbox import AttemptResult, Card, Entry, Outbox

__all__ = ["GIVE_UP_AFTER", "PROBE_EVERY", "DeliveryReport", "Sender", "given_up_text"]

log = logging.getLogger("watcher.notify")

#: The default of ``slack.give_up_after``: a day of transient failures.
GIVE_UP_AFTER = 24 * 3600.0
#: While Slack is in backoff, how often a long-lived sender (`watcher run`) asks it whether it
#: answers again, in seconds.
PROBE_EVERY = 60.0


def given_up_text(count: int) -> str:
    """The channel's notice that notifications were given up, and how to see them."""
    what = "1 notification" if count == 1 else f"{count} notifications"
    return (
        f":warning: keb-watcher gave up on {what} after Slack failed for longer than "
        "slack.give_up_after. See them with `watcher outbox list --status dead`; "
        "`watcher outbox retry --all` sends them again."
    )


def _ids(entry: Entry) -> dict[str, object]:
    """``extra=`` for log records about ``entry`` (see :mod:`watcher.logs`)."""
    return {"intent_id": entry.id, "orchestration_id": entry.orchestration_id}


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
        give_up_after: float = GIVE_UP_AFTER,
        budget: RateBudget | None = None,
        clock: Callable[[], datetime] = utcnow,
        rng: Callable[[], float] = random.random,
        on_delivered: Callable[[str], None] | None = None,
        digest_interval: float = 0.0,
    ) -> None:
        self.outbox = outbox
        self.destination = destination
        self.renderer = renderer
        self.give_up_after = give_up_after
        self.budget = budget or RateBudget()
        self.clock = clock
        self.rng = rng
        self.on_delivered = on_delivered
        # A channel named "#kyma-upgrades" and its ID "C0..." are one channel to Slack's
        # rate limit: names are replaced by the IDs Slack answers with, once known.
        self._channel_ids: dict[str, str] = {}
        self.rules = Rules(
            default_channel=default_channel,
            routes=dict(routes or {}),
            ids=self._channel_ids,
            threads=destination.threads,
            edits=destination.edits,
            digest_interval=digest_interval,
            post_interval=self.budget.post_interval,
            updates_per_minute=self.budget.updates_per_minute,
        )
        # Backoff belongs to the destination: after a transient error nothing is sent until
        # this time; the first call that succeeds makes everything that waited due again.
        self._down_until: datetime | None = None
        self._backing_off = False
        self._probed_at: datetime | None = None

    def channel_for(self, entry: Entry) -> str | None:
        """``track --channel`` wins, then ``[slack.routes]`` for the kind, then the default."""
        return self.rules.channel_for(entry)

    async def deliver(
        self,
        *,
        deadline: float,
        linger: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        allowed: Callable[[], bool] | None = None,
        final: bool = False,
    ) -> DeliveryReport:
        """Send what is due until nothing is left that can go before ``deadline`` (monotonic).

        ``final``: the last delivery before the process stops (``run``'s shutdown): failure
        digests waiting for their clock go now rather than wait for a process that may not
        come back soon.

        Rate-limit waits are sat out within the deadline; a notification whose next attempt
        (after an error) is more than ``linger`` seconds away is left for a later run.
        ``allowed`` is asked before each attempt; delivery stops when it says no (the service
        lost its lease)."""
        rules = replace(self.rules, digest_interval=0.0) if final else self.rules
        drain = Drain(self, DeliveryReport(), deadline, sleep, allowed, rules)
        try:
            self._learn_channels()
            await self._probe()
            while drain.allowed():
                before = drain.report.sent
                wait = await drain.run()
                if drain.report.sent > before and time.monotonic() < deadline:
                    continue  # read again: a cycle may have queued more meanwhile
                if wait is None or wait > min(deadline - time.monotonic(), linger):
                    break
                await sleep(max(0.0, wait))
        finally:
            if self.on_delivered:
                for orch_id in sorted(drain.touched):
                    self.on_delivered(orch_id)
        return drain.report

    def _learn(self, channel: str | None, channel_id: str | None) -> None:
        if channel and channel_id and channel != channel_id and channel not in self._channel_ids:
            self._channel_ids[channel] = channel_id
            self.budget.alias(channel, channel_id)

    def _learn_channels(self) -> None:
        """The channel IDs Slack answered with before (the newest per channel and kind)."""
        if self._channel_ids or not self.destination.edits:
            return
        for channel, kind, channel_id in self.outbox.channel_ids():
            name = channel or self.rules.routes.get(kind) or self.rules.default_channel
            self._learn(name, channel_id)

    # -- Slack's answers ------------------------------------------------------------------

    def _failure(
        self, entry: Entry, failure: SlackFailure, channel: str | None, render_error: str | None
    ) -> AttemptResult:
        now = self.clock()
        decision = after_failure(
            now=now,
            failing_since=entry.failing_since,
            transient=failure.transient,
            retry_after=failure.retry_after,
            # The notice that something was given up waits for Slack as long as it takes.
            give_up_after=self.give_up_after if entry.kind != GIVEN_UP else float("inf"),
            jitter=self.rng(),
        )
        message = str(failure)
        result = AttemptResult(
            entry,
            now,
            failure.method,
            "pending",
            answer=failure.error,
            error=message,
            retry_after=failure.retry_after,
            failing_since=entry.failing_since,
            render_error=render_error,
        )
        if isinstance(decision, Retry):
            if decision.counts:
                self._down_until = decision.at
                self._backing_off = True
                result = replace(result, failing_since=entry.failing_since or now)
                log.warning(
                    "outbox %d: %s; next attempt at %s",
                    entry.id,
                    message,
                    decision.at.isoformat(timespec="seconds"),
                    extra=_ids(entry),
                )
            else:
                self.budget.pause(failure.method, channel, failure.retry_after or 0.0)
                log.warning(
                    "outbox %d: %s; waiting %.0fs as Slack asked",
                    entry.id,
                    message,
                    failure.retry_after,
                    extra=_ids(entry),
                )
            return replace(result, next_attempt_at=decision.at)
        if isinstance(decision, GiveUp):
            error = f"{message} (given up after failing for slack.give_up_after)"
            log.error("outbox %d (%s): dead: %s", entry.id, entry.kind, error, extra=_ids(entry))
            # Once Slack answers again, the channel hears that something was given up.
            notice = Intent(f"{GIVEN_UP}:{entry.id}", GIVEN_UP, None, 0, {"count": 1})
            queue = notice if entry.kind != GIVEN_UP else None
            return replace(result, status="dead", error=error, queue=queue)
        error = f"{message}; fix: {fix_for(failure.error)}"
        log.error("outbox %d (%s): failed: %s", entry.id, entry.kind, error, extra=_ids(entry))
        return replace(result, status="failed", error=error)

    async def _probe(self) -> None:
        """When notifications wait out a transient error, ask Slack whether it answers again
        (``auth.test``, which posts nothing); if it does, they are due at once instead of
        after their backoff. At the sender's first delivery (a `poll`, the service's start),
        then at most every :data:`PROBE_EVERY` while the backoff lasts, so that `run` catches
        up within a minute of Slack's return, however long its backoff."""
        now = self.clock()
        if self._probed_at is None:
            for entry, method, left in self.outbox.rate_limits(now):
                self.budget.pause(method, self.channel_for(entry), left)
        else:
            backing_off = self._down_until is not None and self._down_until > now
            if not backing_off or (now - self._probed_at).total_seconds() < PROBE_EVERY:
                return
        self._probed_at = now
        if not self.outbox.backing_off(now):
            return
        try:
            await asyncio.to_thread(self.destination.probe)
        except SlackFailure as failure:
            log.warning("Slack still fails (%s); the outbox waits", failure)
            self._backing_off = True
            return
        self._recovered(self.clock())

    def _recovered(self, now: datetime) -> list[int]:
        self._down_until = None
        self._backing_off = False
        released = self.outbox.release_backoff(now)
        if released:
            log.info("Slack answers again: %d notifications due now", len(released))
        return released

    # -- the Slack side: each call in a worker thread ---------------------------------------

    def _render(self, entry: Entry, silence: Silence | None) -> tuple[Message, str | None]:
        payload = entry.payload
        role = KINDS[Kind(entry.kind)].role
        if role is Role.NOTICE:
            return plain_message(given_up_text(int(entry.payload.get("count", 1)))), None
        elif role is Role.CARD:
            if silence is not None:
                # The card says it is silenced, as it is when sent (docs/notifications.md).
                payload = {**payload, "silence": silence.to_json()}
        elif role is Role.REPLY or role is Role.ALERT:
            pass  # rendered from its payload as it is
        else:
            assert_never(role)
        rendered = self.renderer.render(entry.kind, payload)
        if rendered.error:
            log.error(
                "outbox %d: %s (sent as plain text)", entry.id, rendered.error, extra=_ids(entry)
            )
        return rendered.message, rendered.error

    async def call(
        self, send: Send, cards: Mapping[str, Card], silence: Silence | None = None
    ) -> AttemptResult:
        """Make the Slack call ``send`` asks for (a card says ``silence`` holds, when one
        does); what it ended in (nothing written yet)."""
        entry = send.entry
        self.budget.spend(send.method, send.channel)
        message, render_error = self._render(entry, silence)
        meta = metadata(entry.kind, entry.key, entry.orchestration_id)
        card: Card | None = None
        try:
            try:
                posted, card = await self._route(entry, send.channel, message, meta, cards)
            except SlackFailure as failure:
                if not failure.error.startswith("invalid_blocks"):
                    raise
                # Slack refused our blocks: the words still matter more than the layout.
                render_error = f"Slack refused the blocks: {failure.error}"
                plain = plain_message(fallback_text(entry.kind, entry.payload))
                posted, card = await self._route(entry, send.channel, plain, meta, cards)
        except SlackFailure as failure:
            return self._failure(entry, failure, send.channel, render_error)
        log.info("outbox %d (%s %s): sent", entry.id, entry.kind, entry.key, extra=_ids(entry))
        if self.destination.edits and posted:
            self._learn(send.channel, posted.channel)
        return AttemptResult(
            entry,
            self.clock(),
            send.method,
            "sent",
            slack_channel=posted.channel if posted else None,
            slack_ts=posted.ts if posted else None,
            card=card,
            render_error=render_error,
        )

    async def _route(
        self,
        entry: Entry,
        channel: str | None,
        message: Message,
        meta: dict[str, object],
        cards: Mapping[str, Card],
    ) -> tuple[Posted | None, Card | None]:
        dest = self.destination
        orch_id = entry.orchestration_id
        if not dest.edits:
            return await asyncio.to_thread(dest.post, channel, message, dict(meta)), None
        if orch_id and entry.kind in CARD_KINDS:
            return await self._card(entry, orch_id, channel, message, cards.get(orch_id))
        # A kind routed to a channel of its own is a top-level post there; everything else
        # about an orchestration goes into its card's thread.
        card = cards.get(orch_id) if orch_id and not self.rules.routed(entry) else None
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
                return found, None
        posted = await asyncio.to_thread(
            dest.post,
            target,
            message,
            dict(meta),
            thread_ts=thread_ts,
            broadcast=entry.kind == FINAL,
        )
        return posted, None

    async def _card(
        self, entry: Entry, orch_id: str, channel: str | None, message: Message, card: Card | None
    ) -> tuple[Posted, Card | None]:
        dest = self.destination
        card_meta = metadata(Kind.TRACKING_STARTED, f"{orch_id}:card", orch_id)
        found_card: Card | None = None
        if card is None:
            # Once per orchestration: after a lost database (or a crash right after the post)
            # the card is already in the channel, recognisable by its metadata.
            found = await asyncio.to_thread(dest.find_card, channel, orch_id)
            if found is not None:
                card = found_card = Card(found.channel, found.ts)
        if card is not None:
            try:
                posted = await asyncio.to_thread(
                    dest.update, card.channel_id, card.ts, message, card_meta
                )
                return posted, found_card
            except SlackFailure as failure:
                if not failure.error.startswith("message_not_found"):
                    raise
                log.warning(
                    "card of %s was deleted in Slack; posting a new one",
                    orch_id,
                    extra=_ids(entry),
                )
        posted = await asyncio.to_thread(dest.post, channel, message, card_meta)
        return posted, Card(posted.channel, posted.ts)
