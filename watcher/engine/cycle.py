"""One poll cycle over everything tracked.

For each tracked orchestration (a bounded number at a time): load the snapshot head, observe
KEB as cheaply as can be proven correct (:mod:`watcher.engine.observer`), diff
(:mod:`watcher.core.diff`), derive notification intents (a policy), and commit snapshot,
transitions and intents in one transaction (:meth:`watcher.store.database.Store.commit_diff`).
A failure to poll one orchestration is recorded against it and never touches its snapshot,
so the next cycle recovers with nothing lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from watcher.clock import utcnow
from watcher.config import PollConfig
from watcher.core.afterlife import after_outcome_note, ended_before, running
from watcher.core.diff import Diff, NotFound, TransitionKind, diff
from watcher.core.intents import Intent
from watcher.core.kinds import Kind
from watcher.core.models import (
    FAILED,
    IN_PROGRESS,
    Orchestration,
    finished_count,
    is_terminal_orchestration,
)
from watcher.core.policy import Reference, decide, runs_from, summary
from watcher.core.stuck import STALLING_STATES, stalled, stuck_intents
from watcher.core.stuck import view as stuck_view
from watcher.core.tracked import Tracked, due
from watcher.engine.keb_health import OUTAGES, watch_keb_health
from watcher.engine.observer import KebReader, Mode, Observer
from watcher.errors import (
    KebError,
    KebNoOrchestrationApi,
    StoreError,
)
from watcher.keb import RequestStats
from watcher.store.database import Store

log = logging.getLogger("watcher.engine.cycle")

#: Turns what one cycle found for one orchestration into notification intents.
Policy = Callable[[Diff, Tracked, datetime], Sequence[Intent]]
#: Picks the orchestrations a cycle polls from those tracked and unfinished.
Selector = Callable[[Sequence[Tracked]], Sequence[Tracked]]


def due_now(poll: PollConfig, tracked: Sequence[Tracked], now: datetime) -> list[Tracked]:
    """What a cycle at ``now`` polls (:func:`watcher.core.tracked.due`): the one reader of
    ``poll.retry_window``, for the engine and for what ``run`` reports as tracked."""
    return due(tracked, now, poll.retry_window)


def notification_policy(store: Store, *, stuck_after: float, digest_interval: float) -> Policy:
    """:func:`watcher.core.policy.decide`, with the progress reference read from the history
    and, on the card, what is stuck (``poll.stuck_after``; 0: not looked for); plus the
    after-the-outcome note (:mod:`watcher.core.afterlife`, at most one per
    ``digest_interval`` seconds but the last)."""

    def policy(result: Diff, tracked: Tracked, now: datetime) -> Sequence[Intent]:
        orch_id = tracked.orchestration_id
        found = store.reference(orch_id)
        reference = None
        if found is not None:
            at, counts = found
            reference = Reference(at, finished_count(counts))
        states = store.state_transitions(orch_id)
        stalled = store.stuck_of(orch_id) if stuck_after > 0 else ()
        intents = decide(
            result,
            channel=tracked.channel,
            now=now,
            reference=reference,
            run=runs_from(states),
            stuck=stuck_view(stalled, now, stuck_after),
        )
        orch = result.snapshot.orchestration
        outcome = next(
            (t for t in reversed(states) if is_terminal_orchestration(t.to_state or "")), None
        )
        if orch is None or outcome is None or not ended_before(result.transitions, orch.state):
            return intents
        ended = [
            (t.to_state or "", t.description, t.shoot_name, t.operation_id or "")
            for t in result.transitions
            if t.kind is TransitionKind.OPERATION_COMPLETED
        ]
        if not ended:
            return intents
        ended = store.ended_after(orch_id, outcome.key) + ended
        card = next((i.payload for i in intents if i.kind == Kind.PROGRESS), {})
        note = after_outcome_note(
            orch_id,
            result.transitions,
            outcome=outcome,
            since_outcome=Counter(state for state, *_ in ended),
            late_failures=[
                {"description": d, "shoot": shoot, "operation_id": op}
                for state, d, shoot, op in ended
                if state == FAILED
            ],
            still_running=running(result.snapshot.state_counts()),
            last_note=store.last_enqueued(orch_id, Kind.AFTER_OUTCOME),
            now=now,
            interval=digest_interval,
            base=card,
            channel=tracked.channel,
        )
        return [*intents, note] if note is not None else intents

    return policy


#: What can keep one orchestration from being polled and recorded in a cycle.
PollError = KebError | StoreError


@dataclass(frozen=True, slots=True)
class PollResult:
    """What happened to one orchestration in one cycle."""

    orchestration_id: str
    mode: Mode | None
    transitions: int = 0
    rows: int = 0
    #: Why it was not polled or not recorded: KEB's failure (auth, 404, transient, ...) or
    #: the store's (another process recorded the same change first). Faces match on its type
    #: and print :attr:`message`.
    error: PollError | None = None
    reason: str = ""
    state: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def message(self) -> str | None:
        """The error as one line, for a face to print."""
        return None if self.error is None else str(self.error)


@dataclass(frozen=True, slots=True)
class CycleReport:
    cycle_id: int
    started: datetime
    seconds: float
    results: list[PollResult] = field(default_factory=list)

    @property
    def failed(self) -> list[PollResult]:
        return [r for r in self.results if not r.ok]

    @property
    def transitions(self) -> int:
        return sum(r.transitions for r in self.results)

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.results)


class Engine:
    """Polls tracked orchestrations and records what changed.

    ``poll`` gives the settings (``full_sweep_every``, ``concurrency``, ``retry_window``,
    ``stuck_after``, ``alert_after``): their defaults live in :class:`PollConfig` only. The
    KEB alert is raised only with ``alerts`` (there is somewhere to send it)."""

    def __init__(
        self,
        store: Store,
        keb: KebReader,
        poll: PollConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
        policy: Policy | None = None,
        alerts: bool = False,
        keb_url: str = "",
    ) -> None:
        self.store = store
        self.observer = Observer(keb, store)
        self.clock = clock
        self.full_sweep_every = timedelta(seconds=poll.full_sweep_every)
        self.concurrency = poll.concurrency
        self.policy = policy
        self.alert_after = poll.alert_after if alerts else None
        self.keb_url = keb_url
        self.poll = poll
        self.stuck_after = poll.stuck_after

    async def poll_once(self, select: Selector | None = None) -> CycleReport:
        """Exactly one cycle over every tracked, unfinished orchestration (those of them that
        ``select`` returns, when given: `watcher run` polls only the ones due this tick)."""
        started = self.clock()
        t0 = time.perf_counter()
        requests_before = _requests(self.observer.keb)
        cycle_id = self.store.begin_cycle(started)
        chosen = due_now(self.poll, self.store.tracked(), started)
        if select is not None:
            chosen = list(select(chosen))
        gate = asyncio.Semaphore(self.concurrency)

        async def one(tracked: Tracked) -> PollResult:
            async with gate:
                return await self.poll_orchestration(tracked, cycle_id)

        results = list(await asyncio.gather(*(one(t) for t in chosen)))
        self.store.record_checks(
            [r.orchestration_id for r in results if r.ok and r.mode == "unchanged"], self.clock()
        )
        self._watch_keb(results)
        report = CycleReport(cycle_id, started, time.perf_counter() - t0, results)
        self.store.finish_cycle(
            cycle_id,
            self.clock(),
            polled=len(results),
            failed=len(report.failed),
            requests=_requests(self.observer.keb) - requests_before,
            transitions=report.transitions,
        )
        return report

    async def poll_orchestration(self, tracked: Tracked, cycle_id: int | None) -> PollResult:
        orch_id = tracked.orchestration_id
        head = self.store.load_head(orch_id)
        now = self.clock()
        # A failed orchestration waiting for a retry was swept when it ended; until its
        # state moves, the unchanged path (one request) is the whole check.
        waiting = head.orchestration is not None and head.orchestration.state == FAILED
        force_full = tracked.last_full_sweep_at is None or (
            not waiting and now - tracked.last_full_sweep_at >= self.full_sweep_every
        )
        try:
            outcome = await self.observer.observe(
                head,
                force_full=force_full,
                # Swept already but asked to sweep again: the last cycle deferred.
                after_deferral=tracked.last_full_sweep_at is None
                and head.orchestration is not None,
            )
        except KebError as exc:
            message = str(exc)
            log.warning(
                "orchestration %s: poll failed: %s",
                orch_id,
                message,
                extra={"orchestration_id": orch_id},
            )
            self.store.record_failure(orch_id, message, self.clock())
            return PollResult(orch_id, None, error=exc)
        now = self.clock()
        state = head.orchestration.state if head.orchestration else None
        if outcome.mode == "deferred":
            self.store.request_full_sweep(orch_id)
        if outcome.observation is None:
            if cycle_id is None and outcome.mode == "unchanged":
                # `watch` polls one at a time; a cycle records its unchanged checks together.
                self.store.record_checks([orch_id], now)
            if head.orchestration is not None and not head.not_found:
                self._check_stuck(tracked, head.orchestration, head.counts, now)
            return PollResult(orch_id, outcome.mode, reason=outcome.reason, state=state)
        assert outcome.previous is not None
        result = _unique(diff(outcome.previous, outcome.observation, now), self.store)
        intents = list(self.policy(result, tracked, now)) if self.policy else []
        snap = result.snapshot
        terminal = isinstance(outcome.observation, NotFound) or (
            snap.orchestration is not None and is_terminal_orchestration(snap.orchestration.state)
        )
        # Operations that outlive the outcome are followed until they end (PRODUCT.md "After
        # the outcome"): not finished while any runs.
        finished = (
            terminal
            and not intents
            and running(snap.state_counts()) == 0
            and self.store.undelivered_for(orch_id) == 0
        )
        try:
            rows = self.store.commit_diff(
                result,
                now=now,
                cycle_id=cycle_id,
                full_sweep=outcome.mode == "full",
                sweep_next=outcome.sweep_next,
                intents=intents,
                finished=finished,
                reorder=outcome.reorder,
            )
        except StoreError as exc:
            # Typically another process recorded the same change first (its transitions have
            # the same keys): nothing was written; the next cycle diffs against its snapshot.
            log.warning(
                "orchestration %s: not recorded: %s",
                orch_id,
                exc,
                extra={"orchestration_id": orch_id},
            )
            return PollResult(orch_id, outcome.mode, error=exc)
        if snap.orchestration is not None and not snap.not_found:
            ended = any(
                t.kind is TransitionKind.ORCHESTRATION_STATE
                and is_terminal_orchestration(t.to_state or "")
                for t in result.transitions
            )
            self._check_stuck(tracked, snap.orchestration, snap.state_counts(), now, ended=ended)
        log.info(
            "orchestration %s: %s (%s), %d transitions, %d rows",
            orch_id,
            outcome.mode,
            outcome.reason,
            len(result.transitions),
            rows,
            extra={"orchestration_id": orch_id},
        )
        return PollResult(
            orch_id,
            outcome.mode,
            transitions=len(result.transitions),
            rows=rows,
            reason=outcome.reason,
            state=snap.orchestration.state if snap.orchestration else None,
        )

    def _check_stuck(
        self,
        tracked: Tracked,
        orch: Orchestration,
        counts: Mapping[str, int],
        now: datetime,
        *,
        ended: bool = False,
    ) -> None:
        """Stuck is news (:mod:`watcher.core.stuck`): evaluated after every successful poll,
        the unchanged ones included, since stuck is what does *not* change. Costs nothing
        when nothing can be stuck; otherwise one read of what is in progress. Recorded, with
        its notifications, in a transaction of its own after the cycle's commit: a crash in
        between re-evaluates it next cycle from what was committed. ``ended``: the
        orchestration ended in this cycle; its final summary stays the run's last reply (no
        ``unstuck`` after it: the outcome says it)."""
        if self.stuck_after <= 0:
            return
        orch_id = tracked.orchestration_id
        previous = self.store.stuck_of(orch_id)
        if not previous and not counts.get(IN_PROGRESS) and orch.state not in STALLING_STATES:
            return
        current = stalled(self.store.stuck_candidates(orch_id, orch), now, self.stuck_after)
        if [(s.key, s.since) for s in previous] == [(s.key, s.since) for s in current]:
            return
        intents = []
        if self.policy is not None:
            intents = stuck_intents(
                orch_id,
                previous=previous,
                current=current,
                base=summary(orch, counts, now, None),
                card=self.store.last_card(orch_id),
                channel=tracked.channel,
                now=now,
                after=self.stuck_after,
                quiet_unstuck=ended,
            )
        try:
            self.store.record_stuck(orch_id, current, intents, now)
        except StoreError as exc:
            log.warning(
                "orchestration %s: stuck state not recorded: %s",
                orch_id,
                exc,
                extra={"orchestration_id": orch_id},
            )

    def _watch_keb(self, results: Sequence[PollResult]) -> None:
        """The watcher watches itself: one alert when KEB has been unreachable or rejecting
        the token for longer than ``alert_after``, one more when it answers again (the one
        rule, :func:`watcher.engine.keb_health.watch_keb_health`, which selections share). A
        plain-text 404 on every path (no orchestration API) is an outage like any other."""
        if self.alert_after is None:
            return
        watch_keb_health(
            self.store,
            [r.error for r in results],
            now=self.clock(),
            alert_after=self.alert_after,
            url=self.keb_url,
            outages=(*OUTAGES, KebNoOrchestrationApi),
        )


def _unique(result: Diff, store: Store) -> Diff:
    """Give an operation transition that repeats under the same operation ID (a legacy row
    resumed under its old ID fails twice) a key of its own, ``key#N``: it is a new event,
    recorded and notified like the first, never a key collision that stops recording."""
    repeats = store.repeats(result.snapshot.orchestration_id, result.transitions)
    if not repeats:
        return result
    transitions = [
        replace(t, key=f"{t.key}#{repeats[t.key] + 1}") if t.key in repeats else t
        for t in result.transitions
    ]
    return replace(result, transitions=transitions)


@runtime_checkable
class _Counting(Protocol):
    """A KEB reader that counts its HTTP requests (:class:`watcher.keb.KebClient` does)."""

    @property
    def stats(self) -> RequestStats: ...


def _requests(keb: object) -> int:
    return keb.stats.requests if isinstance(keb, _Counting) else 0
