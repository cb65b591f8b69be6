"""The I/O driver of ``watcher watch``: poll one orchestration until it is terminal.

The decisions are pure and live in :mod:`watcher.core.watching` (:func:`~watcher.core.watching.step`
turns the outcome of one poll into the next action); :func:`follow` does the I/O each action
asks for: poll through the engine, read the new transitions from the store, tell the sink,
sleep. Sleep and clocks are arguments, so tests drive the loop on the simulator's manual clock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import assert_never

from watcher.clock import utcnow
from watcher.core.models import FAILED, MaintenanceWindow, Orchestration
from watcher.core.pace import idle_pending
from watcher.core.tracked import Tracked
from watcher.core.watching import (
    TERMINATE,
    Finish,
    Follow,
    Observed,
    PollFailed,
    Progress,
    Reconnect,
    Sink,
    Sleep,
    Summary,
    Wait,
    WatchEvent,
    WatchOptions,
    WatchOutcome,
    done,
    group_failures,
    poll_interval,
    step,
)
from watcher.engine.cycle import Engine
from watcher.errors import StoreError, TokenError, WatcherError
from watcher.store.database import Store


def _tracked(store: Store, orch_id: str) -> Tracked:
    found = store.tracked_one(orch_id)
    if found is None:
        raise AssertionError(f"{orch_id} was tracked at the start of the watch")
    return found


class _Watch:
    """The driver's memory between polls (the renderers keep their own)."""

    def __init__(self, orch_id: str, store: Store, options: WatchOptions) -> None:
        self.orch_id = orch_id
        self.store = store
        self.options = options
        # Only what is recorded from now on is new.
        self.last_id = store.last_transition_id()
        self.first = True
        self.initial: str | None = None
        self.done_at_start = 0
        self.orchestration: Orchestration | None = None
        self.counts: Mapping[str, int] = {}
        self.failures: tuple[tuple[str, int], ...] = ()
        self._failed_seen = -1

    def observe(self, follow: Follow, elapsed: float, at: datetime) -> tuple[Progress, Observed]:
        """Read what the successful poll recorded: head, failures, new transitions."""
        store, orch_id = self.store, self.orch_id
        head = store.load_head(orch_id)
        self.orchestration, self.counts = head.orchestration, head.counts
        state = self.orchestration.state if self.orchestration else None
        if self.first:
            self.initial, self.done_at_start = state, done(self.counts)
        if self.counts.get(FAILED, 0) != self._failed_seen:
            self._failed_seen = self.counts.get(FAILED, 0)
            self.failures = group_failures(store.operations_in_state(orch_id, FAILED).values())
        interval = self.options.interval
        if interval is None:
            windows: Sequence[MaintenanceWindow] = ()
            if idle_pending(state, self.counts):
                windows = store.pending_windows(orch_id)
            interval = poll_interval(state, self.counts, windows, at)
        self.last_id, new = store.transitions_after(self.last_id)
        progress = Progress(
            orch_id,
            self.orchestration,
            self.counts,
            tuple(t for t in new if t.orchestration_id == orch_id),
            self.failures,
            interval,
            elapsed,
            at,
            first=self.first,
            recovered_after=follow.failures,
            stuck=store.stuck_of(orch_id),
        )
        self.first = False
        # (For an orchestration never seen, load_head reads not_found from the tracked row.)
        return progress, Observed(state, head.not_found, interval)

    def summary(
        self,
        outcome: WatchOutcome,
        reason: str,
        elapsed: float,
        at: datetime,
        error: WatcherError | None = None,
    ) -> Summary:
        return Summary(
            self.orch_id,
            outcome,
            reason,
            at,
            elapsed,
            self.orchestration,
            self.initial,
            dict(self.counts),
            done(self.counts) - self.done_at_start,
            self.failures,
            error,
        )


async def follow(
    orch_id: str,
    engine: Engine,
    store: Store,
    sink: Sink,
    options: WatchOptions,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float],
    now: Callable[[], datetime] = utcnow,
    rng: Callable[[], float] = random.random,
) -> Summary:
    """Follow ``orch_id`` until :func:`step` says finish; return the summary (also given to
    ``sink.finish``). ``store`` must track the ID already (:meth:`watcher.app.Watcher.follow`
    decides which store: the configured one, or a private one in memory). Ctrl-C
    (cancellation) finishes with
    :attr:`WatchOutcome.INTERRUPTED` and re-raises. A :class:`~watcher.errors.StoreError` while
    polling (another process, e.g. `watcher run`, recorded the same change first) is retried
    like a transient KEB error; the next poll diffs against what that process recorded."""
    watch = _Watch(orch_id, store, options)
    state = Follow(started=clock())
    try:
        while True:
            event: WatchEvent
            try:
                result = await engine.poll_orchestration(_tracked(store, orch_id), cycle_id=None)
            except (TokenError, StoreError) as exc:  # the engine maps KEB errors only
                event = PollFailed(exc)
            else:
                if result.error is None:
                    progress, event = watch.observe(state, clock() - state.started, now())
                    sink.progress(progress)
                else:  # a store conflict is not a KEB outage: the error keeps its type
                    event = PollFailed(result.error)
            state, action = step(state, event, clock(), options, rng)
            if isinstance(action, Finish):
                summary = watch.summary(
                    action.outcome, action.reason, clock() - state.started, now(), action.error
                )
                sink.finish(summary)
                return summary
            if isinstance(action, Reconnect):
                sink.reconnecting(orch_id, action, now())
                await sleep(action.seconds)
            elif isinstance(action, Wait):
                await sleep(action.seconds)
            else:
                assert_never(action)
    except asyncio.CancelledError as exc:
        elapsed = clock() - state.started
        if exc.args == (TERMINATE,):
            outcome, reason = WatchOutcome.TERMINATED, "terminated (SIGTERM)"
        else:
            outcome, reason = WatchOutcome.INTERRUPTED, "interrupted (Ctrl-C)"
        sink.finish(watch.summary(outcome, reason, elapsed, now()))
        raise
