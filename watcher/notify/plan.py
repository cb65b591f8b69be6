"""The sender's decisions, pure: what goes now, in which order, what is skipped, what waits.

:func:`plan` takes the notifications still waiting (``pending``, and ``failed`` ones that wait
for a fix), what the channel already shows of each orchestration (:class:`Shown`), the time
and the rate limits as they stand (:class:`Limits`), and returns a :class:`DeliveryPlan`:

* **skips**: card updates older than the newest one (pending or already shown), failure
  digests a final summary absorbs, digests merged into the newest one of their orchestration,
  replies older than a final summary already sent (the final is its run's last reply), card
  updates a webhook cannot make;
* **holds**: failure digests put on their clock (``slack.digest_interval``);
* **sends**: in the order they may go, each with the seconds to wait for the rate budget;
  lower priority values first, but a thread reply never before an earlier reply of its thread
  that still waits, and never before its card;
* **waits**: everything else, with the reason.

:func:`after_failure` decides what a failed attempt leads to: a wait as long as Slack asked
(429, never counted), a backoff capped at :data:`MAX_BACKOFF` until the notification has been
failing for ``give_up_after``, or a wait for a fix (a permanent answer).

Nothing here reads a clock or the database: the driver (:mod:`watcher.notify.sender`) does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from watcher.core.failures import merge_digests
from watcher.core.kinds import CARD_KINDS, REPLY_KINDS, SILENCEABLE, Kind
from watcher.core.tracked import Silence
from watcher.store.outbox import Entry, Shown

DIGEST: Final = Kind.FAILURE_DIGEST
FINAL: Final = Kind.FINISHED
#: The channel notice that notifications were given up (``count`` in its payload).
GIVEN_UP: Final = Kind.GIVEN_UP
#: How many intervals a digest that names no new reason waits (docs/notifications.md §2).
QUIET: Final = 6
#: The longest backoff after a transient error, in seconds.
MAX_BACKOFF: Final = 300.0
POST_METHODS: Final = ("chat.postMessage", "webhook")


@dataclass(frozen=True, slots=True)
class Rules:
    """What the destination can do and how the configuration routes and paces."""

    default_channel: str | None = None
    routes: Mapping[str, str] = field(default_factory=dict)
    #: Channel names to the IDs Slack answered with: one channel is one rate budget.
    ids: Mapping[str, str] = field(default_factory=dict)
    threads: bool = True
    edits: bool = True
    digest_interval: float = 0.0
    post_interval: float = 1.05
    updates_per_minute: int = 48

    def channel_for(self, entry: Entry) -> str | None:
        """``track --channel`` wins, then the route of the kind, then the default channel
        (as its ID once Slack named it)."""
        channel = entry.channel or self.routes.get(entry.kind) or self.default_channel
        return self.ids.get(channel, channel) if channel else channel

    def routed(self, entry: Entry) -> bool:
        return entry.channel is None and entry.kind in self.routes

    def in_thread(self, entry: Entry) -> bool:
        return (
            self.threads
            and entry.kind in REPLY_KINDS
            and entry.orchestration_id is not None
            and not self.routed(entry)
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """The rate budget as it stands, in seconds from now.

    ``paused``: a 429's ``Retry-After`` left per (method, channel; None for non-posts);
    ``posted``: seconds since the last post per channel; ``updates``: seconds since each
    ``chat.update`` of the last minute; ``down``: the destination's backoff left."""

    paused: Mapping[tuple[str, str | None], float] = field(default_factory=dict)
    posted: Mapping[str | None, float] = field(default_factory=dict)
    updates: tuple[float, ...] = ()
    down: float = 0.0


@dataclass(frozen=True, slots=True)
class Send:
    entry: Entry
    method: str
    channel: str | None
    #: Seconds from now before the rate budget allows it.
    after: float


@dataclass(frozen=True, slots=True)
class Skip:
    entry: Entry
    status: str  # superseded, skipped, or dropped (held back by a silence)
    why: str


@dataclass(frozen=True, slots=True)
class Hold:
    """A failure digest on its clock: ``until`` (None: due now, the clock was lifted)."""

    entry: Entry
    until: datetime | None


@dataclass(frozen=True, slots=True)
class Waiting:
    entry: Entry
    why: str


@dataclass(frozen=True, slots=True)
class Merge:
    """Digests of one orchestration folded into the newest: its new payload."""

    entry: Entry
    payload: dict[str, Any]


@dataclass
class DeliveryPlan:
    sends: list[Send] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    waits: list[Waiting] = field(default_factory=list)
    #: When the earliest waiting notification comes due (None: nothing waits on time).
    next_at: datetime | None = None


def plan(
    waiting: Sequence[Entry],
    threads: Mapping[str, Shown],
    now: datetime,
    rules: Rules,
    limits: Limits | None = None,
    silences: Mapping[str, Silence] | None = None,
) -> DeliveryPlan:
    """Decide, for the notifications still waiting, what goes now and in which order.
    ``silences`` (``watcher silence``) by orchestration: their :data:`SILENCEABLE` replies are
    dropped, and a card sent meanwhile says it is silenced."""
    limits = limits or Limits()
    out = DeliveryPlan()
    live = _coalesce(sorted(waiting, key=lambda e: e.id), threads, rules, out, silences or {})
    live = _pace_digests(live, threads, now, rules, out)
    _order(live, threads, now, rules, limits, out)
    return out


# -- coalescing ---------------------------------------------------------------------------


def _coalesce(
    entries: list[Entry],
    threads: Mapping[str, Shown],
    rules: Rules,
    out: DeliveryPlan,
    silences: Mapping[str, Silence],
) -> list[Entry]:
    """Skip what a newer notification makes obsolete; merge digests. ``entries`` by ID."""
    pending = [e for e in entries if e.status == "pending"]
    newest_progress: dict[str | None, int] = {}
    finals: dict[str | None, list[int]] = {}
    digests: dict[str | None, list[Entry]] = {}
    for e in pending:
        if e.kind == Kind.PROGRESS:
            newest_progress[e.orchestration_id] = e.id
        elif e.kind == FINAL:
            finals.setdefault(e.orchestration_id, []).append(e.id)
    gone: set[int] = set()

    def skip(entry: Entry, why: str, status: str = "superseded") -> None:
        out.skips.append(Skip(entry, status, why))
        gone.add(entry.id)

    # A final summary routed to a channel of its own is not in the thread: it ends nothing.
    final_ends_thread = FINAL not in rules.routes
    for e in pending:
        orch = e.orchestration_id
        silence = silences.get(orch or "")
        if silence is not None and e.kind in SILENCEABLE:
            skip(e, silence.held_back(), "dropped")
            continue
        thread = threads.get(orch or "", Shown())
        if e.kind == Kind.PROGRESS:
            if not rules.edits:
                skip(e, "a webhook cannot edit the card", "skipped")
            elif e.id < newest_progress[orch]:
                skip(e, f"a newer card state, outbox {newest_progress[orch]}")
            elif e.id < thread.card_state:
                skip(e, f"the card already shows a newer state, outbox {thread.card_state}")
            continue
        if orch is None:
            continue
        later_final = next((f for f in finals.get(orch, ()) if f > e.id), None)
        if e.kind == DIGEST:
            if later_final is None and thread.final > e.id:
                later_final = thread.final
            if later_final is not None:
                skip(e, f"absorbed into the final summary, outbox {later_final}")
            else:
                digests.setdefault(orch, []).append(e)
        elif final_ends_thread and rules.in_thread(e) and e.id < thread.final:
            skip(e, f"its run's final summary was sent already, outbox {thread.final}")
    for group in digests.values():
        if len(group) < 2:
            continue
        newest, older = group[-1], group[:-1]
        payload = merge_digests([e.payload for e in group])
        out.merges.append(Merge(newest, payload))
        for e in older:
            skip(e, f"merged into outbox {newest.id}")
    notices = [e for e in pending if e.kind == GIVEN_UP]
    if len(notices) > 1:  # one short message, however many were given up
        count = sum(int(e.payload.get("count", 1)) for e in notices)
        out.merges.append(Merge(notices[-1], {**notices[-1].payload, "count": count}))
        for e in notices[:-1]:
            skip(e, f"merged into outbox {notices[-1].id}")
    merged = {m.entry.id: m.payload for m in out.merges}
    return [
        replace(e, payload=merged[e.id]) if e.id in merged else e
        for e in entries
        if e.id not in gone
    ]


# -- the digest clock -----------------------------------------------------------------------


def _pace_digests(
    entries: list[Entry],
    threads: Mapping[str, Shown],
    now: datetime,
    rules: Rules,
    out: DeliveryPlan,
) -> list[Entry]:
    """At most one failure digest per orchestration per interval (docs/notifications.md §2)."""
    interval = timedelta(seconds=max(0.0, rules.digest_interval))
    later_reply: dict[str, int] = {}  # the newest non-digest reply waiting, per orchestration
    for e in entries:
        if e.kind != DIGEST and e.orchestration_id and rules.in_thread(e):
            later_reply[e.orchestration_id] = e.id
    result = []
    for e in entries:
        orch = e.orchestration_id
        if e.kind != DIGEST or e.attempts or orch is None or e.status != "pending":
            result.append(e)
            continue
        release = None
        thread = threads.get(orch, Shown())
        behind = rules.in_thread(e) and later_reply.get(orch, 0) > e.id
        if interval and not behind and thread.last_digest_at is not None:
            news = (
                bool(e.payload.get("more_reasons"))
                or not {str(g.get("reason")) for g in e.payload.get("failures", [])}
                <= thread.reasons
            )
            release = thread.last_digest_at + interval * (1 if news else QUIET)
        wanted = release if release is not None and release > now else None
        held = e.next_attempt_at if e.next_attempt_at and e.next_attempt_at > now else None
        if wanted != held:
            out.holds.append(Hold(e, wanted))
            e = replace(e, next_attempt_at=wanted)
        result.append(e)
    return result


# -- order and the rate budget --------------------------------------------------------------


class _Budget:
    """The rate budget simulated forward: when each call may go, in seconds from now."""

    def __init__(self, rules: Rules, limits: Limits) -> None:
        self.rules = rules
        self.limits = limits
        self.free: dict[str | None, float] = {
            channel: max(0.0, rules.post_interval - ago) for channel, ago in limits.posted.items()
        }
        self.updates: deque[float] = deque(sorted(-ago for ago in limits.updates if ago < 60))

    def take(self, method: str, channel: str | None, earliest: float) -> float:
        key = (method, channel if method in POST_METHODS else None)
        at = max(earliest, self.limits.down, self.limits.paused.get(key, 0.0))
        if method in POST_METHODS:
            at = max(at, self.free.get(channel, 0.0))
            self.free[channel] = at + self.rules.post_interval
        elif method == "chat.update":
            while len(self.updates) >= self.rules.updates_per_minute:
                at = max(at, self.updates.popleft() + 60)
            self.updates.append(at)
        return at


def _order(
    entries: list[Entry],
    threads: Mapping[str, Shown],
    now: datetime,
    rules: Rules,
    limits: Limits,
    out: DeliveryPlan,
) -> None:
    def due(e: Entry) -> bool:
        return e.status == "pending" and (e.next_attempt_at is None or e.next_attempt_at <= now)

    # Per thread, the replies in event order; only a prefix of due ones may go.
    lines: dict[str, list[Entry]] = {}
    cards: dict[str, Entry] = {}  # the first card entry waiting, per orchestration
    for e in entries:
        orch = e.orchestration_id
        if orch and rules.in_thread(e):
            lines.setdefault(orch, []).append(e)
        elif orch and e.kind in CARD_KINDS and rules.edits and orch not in cards:
            cards[orch] = e
    budget = _Budget(rules, limits)
    sent: dict[int, float] = {}  # entry ID -> its ``after``
    why: dict[int, str] = {}
    cursor: dict[str, int] = dict.fromkeys(lines, 0)

    def card_ready(orch: str) -> float | None:
        """When the card exists (seconds from now), or None when it cannot this time."""
        if threads.get(orch, Shown()).card is not None or orch not in cards:
            return 0.0
        card = cards[orch]
        if card.id not in sent and not emit(card):
            return None
        return sent[card.id]

    def emit(e: Entry) -> bool:
        if e.id in sent:
            return True
        if e.id in why:
            return False
        if not due(e):
            why[e.id] = "waits for a fix" if e.status == "failed" else "not due yet"
            return False
        orch = e.orchestration_id
        earliest = 0.0
        method = "webhook" if not rules.edits else "chat.postMessage"
        channel = rules.channel_for(e)
        if orch and e.kind in CARD_KINDS and rules.edits:
            thread = threads.get(orch, Shown())
            if e.kind == "progress" and cards.get(orch) is not e:
                ready = card_ready(orch)
                if ready is None:
                    why[e.id] = f"waits for the card, outbox {cards[orch].id}"
                    return False
                earliest = ready
                method = "chat.update"
            elif thread.card is not None:
                method = "chat.update"
        elif orch and rules.in_thread(e):
            line = lines[orch]
            while line[cursor[orch]].id != e.id:  # the earlier replies of the thread go first
                before = line[cursor[orch]]
                if not emit(before):
                    why[e.id] = f"waits behind outbox {before.id} in its thread"
                    return False
            ready = card_ready(orch)
            if ready is None:
                why[e.id] = f"waits for the card, outbox {cards[orch].id}"
                return False
            earliest = max(ready, sent[line[cursor[orch] - 1].id] if cursor[orch] else 0.0)
            thread = threads.get(orch, Shown())
            if thread.card is not None:
                channel = thread.card.channel_id
            elif orch in cards:
                channel = rules.channel_for(cards[orch])
            cursor[orch] += 1
        after = budget.take(method, channel, earliest)
        sent[e.id] = after
        out.sends.append(Send(e, method, channel, after))
        return True

    for e in sorted(entries, key=lambda e: (e.priority, e.id)):
        emit(e)
    # Stable: a send never goes before one it depends on (its ``after`` is never earlier).
    out.sends.sort(key=lambda s: s.after)
    waiting = [e for e in entries if e.id not in sent]
    out.waits = [Waiting(e, why.get(e.id, "not due yet")) for e in waiting]
    later = [
        e.next_attempt_at
        for e in waiting
        if e.status == "pending" and e.next_attempt_at and e.next_attempt_at > now
    ]
    out.next_at = min(later) if later else None


# -- after a failed attempt -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again at ``at``; ``counts``: the failure runs the give-up clock (not a 429)."""

    at: datetime
    counts: bool


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Transient failures for ``give_up_after``: the notification is dead."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A permanent answer: the notification waits for a fix (``watcher outbox retry``)."""


def after_failure(
    *,
    now: datetime,
    failing_since: datetime | None,
    transient: bool,
    retry_after: float | None,
    give_up_after: float,
    jitter: float,
) -> Retry | GiveUp | Refused:
    """What a failed attempt leads to; ``jitter`` in [0, 1).

    A 429 waits exactly its ``Retry-After`` and never counts. A transient failure backs off
    (doubling, with jitter, at most :data:`MAX_BACKOFF`) until ``give_up_after`` has
    passed since the first one; the last retry is at that moment, and a failure then (or
    later) gives up. A permanent answer waits for a fix."""
    if retry_after is not None:
        return Retry(now + timedelta(seconds=retry_after), counts=False)
    if not transient:
        return Refused()
    since = failing_since or now
    end = since + timedelta(seconds=give_up_after)
    if now >= end:
        return GiveUp()
    # The backoff doubles with the time spent failing (2 s, 2, 4, 8 ... 300 s), so that 429s,
    # which do not count, make no later retry wait longer.
    failing = (now - since).total_seconds()
    delay = min(MAX_BACKOFF, max(2.0, failing) * (0.5 + jitter))
    return Retry(min(now + timedelta(seconds=delay), end), counts=True)
