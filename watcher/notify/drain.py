"""One delivery run of the :class:`~watcher.notify.sender.Sender`: what waits and what the
channel shows, read once and kept current in memory while the plan is carried out."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, assert_never

from watcher.core.kinds import Kind
from watcher.core.tracked import Silence
from watcher.notify.plan import DeliveryPlan, Rules, Send, plan
from watcher.store.outbox import AttemptResult, Entry, Shown

if TYPE_CHECKING:
    from watcher.notify.sender import Sender


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class Drain:
    """One delivery run's state: what waits, what the channel shows, in memory."""

    def __init__(
        self,
        sender: Sender,
        report: DeliveryReport,
        deadline: float,
        sleep: Callable[[float], Awaitable[None]],
        allowed: Callable[[], bool] | None,
        rules: Rules,
    ) -> None:
        self.sender = sender
        self.rules = rules
        self.report = report
        self.deadline = deadline
        self.sleep = sleep
        self._allowed = allowed
        self.touched: set[str] = set()
        self.waiting: dict[int, Entry] = {}
        self.shown: dict[str, Shown] = {}
        #: ``watcher silence``: in force when this drain read the outbox.
        self.silences: dict[str, Silence] = {}

    def allowed(self) -> bool:
        return self._allowed is None or self._allowed()

    def plan(self) -> DeliveryPlan:
        s = self.sender
        now = s.clock()
        down = (s._down_until - now).total_seconds() if s._down_until else 0.0
        decided = plan(
            list(self.waiting.values()),
            self.shown,
            now,
            self.rules,
            s.budget.limits(down),
            self.silences,
        )
        merged = {m.entry.id: m.payload for m in decided.merges}
        held = {h.entry.id: h.until for h in decided.holds}
        s.outbox.settle(
            [(k.entry.id, k.status, k.why) for k in decided.skips],
            list(merged.items()),
            list(held.items()),
        )
        for skip in decided.skips:
            self.waiting.pop(skip.entry.id, None)
            if skip.status == "skipped":
                self.report.skipped += 1
            if skip.entry.orchestration_id:
                self.touched.add(skip.entry.orchestration_id)
        for i, payload in merged.items():
            self.waiting[i] = replace(self.waiting[i], payload=payload)
        for i, until in held.items():
            self.waiting[i] = replace(self.waiting[i], next_attempt_at=until)
        return decided

    async def run(self) -> float | None:
        """Read once, then send what the plan allows until it allows nothing more; seconds
        until something may come due (None: nothing waits on time, or the deadline)."""
        s = self.sender
        self.silences = s.outbox.silences(s.clock())
        self.waiting = {e.id: e for e in s.outbox.waiting()}
        self.shown = dict(s.outbox.shown())
        s._backing_off = s._backing_off or any(
            e.failing_since is not None for e in self.waiting.values()
        )
        while True:
            decided = self.plan()
            if not decided.sends:
                now = s.clock()
                return (decided.next_at - now).total_seconds() if decided.next_at else None
            outcome = await self._execute(decided.sends)
            if outcome is not None:
                return outcome if outcome >= 0 else None

    async def _execute(self, sends: list[Send]) -> float | None:
        """Carry the sends out in order; None to plan again, seconds to wait (-1: stop)."""
        s = self.sender
        begun: Entry | None = None
        for i, send in enumerate(sends):
            now = s.clock()
            if s._down_until is not None and s._down_until > now:
                return (s._down_until - now).total_seconds()
            if not self.allowed():
                return -1.0
            wait = s.budget.wait(send.method, send.channel)
            if wait > 0:
                if wait > self.deadline - time.monotonic():
                    return -1.0
                await self.sleep(wait)
            if begun is None:
                s.outbox.step(None, send.entry, s.clock())
            cards = {orch: shown.card for orch, shown in self.shown.items() if shown.card}
            result = await s.call(send, cards, self.silences.get(send.entry.orchestration_id or ""))
            follow = sends[i + 1] if i + 1 < len(sends) and result.status == "sent" else None
            if follow is not None and (
                s.budget.wait(follow.method, follow.channel) > 0
                or time.monotonic() >= self.deadline
                or not self.allowed()
            ):
                follow = None
            s.outbox.step(result, follow.entry if follow else None, result.at)
            begun = follow.entry if follow else None
            self._settled(result)
            if result.status != "sent":
                return None
            if s._backing_off:
                for released in s._recovered(result.at):
                    if released in self.waiting:
                        self.waiting[released] = replace(
                            self.waiting[released], next_attempt_at=result.at
                        )
                if begun is None:
                    return None  # plan again: what waited out the outage is due now
        return None

    def _settled(self, r: AttemptResult) -> None:
        entry = r.entry
        orch = entry.orchestration_id
        report = self.report
        if r.status == "sent":
            self.waiting.pop(entry.id, None)
            report.sent += 1
            if orch:
                self.touched.add(orch)
                self.shown[orch] = _after_sent(self.shown.get(orch, Shown()), r)
            return
        self.waiting[entry.id] = replace(
            entry,
            status=r.status,
            attempts=entry.attempts + 1,
            next_attempt_at=r.next_attempt_at,
            failing_since=r.failing_since,
            last_error=r.error,
        )
        if r.status == "pending":
            report.retried += 1
            return
        if r.status == "dead":
            self.waiting.pop(entry.id, None)  # given up: it holds nothing back any more
        report.failed += 1
        report.errors.append(f"outbox {entry.id} ({entry.kind}): {r.error}")


def _after_sent(shown: Shown, r: AttemptResult) -> Shown:
    """What the channel shows once ``r`` was sent."""
    kind = Kind(r.entry.kind)
    if r.card is not None:
        shown = replace(shown, card=r.card)
    match kind:
        case Kind.TRACKING_STARTED | Kind.PROGRESS:
            return replace(shown, card_state=max(shown.card_state, r.entry.id))
        case Kind.FINISHED:
            # A run ends with its final summary: the next run's digests start a clock of their own.
            final = max(shown.final, r.entry.id)
            return replace(shown, final=final, last_digest_at=None, reasons=frozenset())
        case Kind.FAILURE_DIGEST:
            reasons = _reasons(r.entry.payload.get("failures", []))
            return replace(shown, last_digest_at=r.at, reasons=shown.reasons | reasons)
        case (
            Kind.STATE_CHANGED
            | Kind.RETRIED
            | Kind.NOT_FOUND
            | Kind.KEB_UNHEALTHY
            | Kind.KEB_RECOVERED
            | Kind.STUCK
            | Kind.UNSTUCK
            | Kind.AFTER_OUTCOME
            | Kind.GIVEN_UP
        ):
            return shown  # what the channel shows of the card, the run and its digests is as it was
        case _:
            assert_never(kind)


def _reasons(groups: Iterable[dict[str, object]]) -> frozenset[str]:
    return frozenset(str(g.get("reason")) for g in groups)
