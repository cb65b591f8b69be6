"""When a notification may go: replies in event order, failure digests on a clock.

The product contract (docs/contract.md §7, docs/notifications.md §4):

* **Thread order.** Replies in an orchestration's thread appear in the order of their events.
  The outbox ID is that order (intents are enqueued as the poll cycle records them), so a
  thread reply waits while an earlier reply of the same thread is still pending, whatever
  their priorities: a digest in backoff holds back the final summary behind it.
* **Digests on a clock.** At most one failure digest per orchestration per
  ``slack.digest_interval``: a digest that comes sooner than that after the run's last one
  is held (``next_attempt_at``) and merged with the digests that follow it. Two things end the
  wait early: a final summary absorbs it (the summary lists every failure), and a later reply
  of the same thread (a state change) releases it, so that the thread stays in event order.
  A run ends with its final summary; a retry's digests start a clock of their own.
* **News, not repetition.** A digest whose reasons were all named by an earlier digest of the
  run says nothing new but a count the card already shows: it waits ``QUIET`` intervals
  (an hour by default) instead of one, merging what follows; a digest with a reason not named
  yet keeps the one-interval clock. So a calm thread gets a reply per new reason, and a long
  upgrade that keeps failing the same way still gets one an hour.

Nothing here reads the clock: ``now`` comes from the sender.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Final

from watcher.store.outbox import Entry, Outbox

#: Kinds that are replies in the card's thread (bot token mode).
REPLY_KINDS: Final = frozenset(
    {
        "failure_digest",
        "state_changed",
        "retried",
        "finished",
        "not_found",
        "stuck",
        "unstuck",
        "after_outcome",
    }
)
DIGEST: Final = "failure_digest"
#: How many intervals a digest that names no new reason waits (see the module docstring).
QUIET: Final = 6


class Pacing:
    """Thread order and the digest clock, over the outbox's pending notifications.

    ``routed`` tells whether an entry goes to a channel of its own (a top-level post there,
    outside the card's thread); ``threads`` is False for destinations without threads.
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        digest_interval: float,
        threads: bool,
        routed: Callable[[Entry], bool],
    ) -> None:
        self.outbox = outbox
        self.interval = timedelta(seconds=max(0.0, digest_interval))
        self.threads = threads
        self.routed = routed

    def _in_thread(self, entry: Entry) -> bool:
        return (
            self.threads
            and entry.kind in REPLY_KINDS
            and entry.orchestration_id is not None
            and not self.routed(entry)
        )

    def prepare(self, now: datetime) -> list[Entry]:
        """Absorb digests into final summaries and put the rest on their clock; returns the
        pending notifications as they then stand."""
        self.outbox.absorb_digests()
        pending = self.outbox.entries(("pending",))
        changed = False
        for entry in pending:
            if entry.kind != DIGEST or entry.attempts or entry.orchestration_id is None:
                continue  # an attempted digest keeps its place: it may be in Slack already
            release = self.release_at(entry, pending)
            wanted = release if release is not None and release > now else None
            held = entry.next_attempt_at is not None and entry.next_attempt_at > now
            if wanted != (entry.next_attempt_at if held else None):
                self.outbox.schedule(entry, wanted)
                changed = True
        return self.outbox.entries(("pending",)) if changed else pending

    def release_at(self, digest: Entry, pending: Sequence[Entry]) -> datetime | None:
        """When ``digest`` may go: one interval after its run's last digest; None for now."""
        if not self.interval or digest.orchestration_id is None:
            return None
        if self._in_thread(digest) and any(
            other.id > digest.id
            and other.kind != DIGEST
            and other.orchestration_id == digest.orchestration_id
            and self._in_thread(other)
            for other in pending
        ):
            return None  # a later reply must not overtake it, nor wait for the clock
        last = self.outbox.last_digest_sent(digest.orchestration_id)
        if last is None:
            return None
        return last + self.interval * (1 if self._news(digest) else QUIET)

    def _news(self, digest: Entry) -> bool:
        """Does the digest name a reason no digest of its run has named yet?"""
        if digest.payload.get("more_reasons"):
            return True  # reasons beyond those listed: possibly new ones
        reasons = {str(g.get("reason")) for g in digest.payload.get("failures", [])}
        return not reasons <= self.outbox.reported_reasons(digest.orchestration_id or "")

    def waits_for_earlier(self, entry: Entry, pending: Sequence[Entry]) -> bool:
        """A thread reply never overtakes an earlier reply of the same thread still pending."""
        if not self._in_thread(entry):
            return False
        return any(
            other.id < entry.id
            and other.orchestration_id == entry.orchestration_id
            and self._in_thread(other)
            for other in pending
        )
