"""The follow loop of ``watcher watch``: poll one orchestration until it is terminal.

Two layers, as in hishel: a pure core decides (:func:`poll_interval`, :func:`reconnect_delay`
and :func:`step`, which turns the outcome of one poll into the next action), and
:func:`follow` does the I/O each action asks for: poll through the engine, read the new
transitions from the store, tell the renderer, sleep. Sleep and clocks are arguments, so tests
drive the loop on the simulator's manual clock.

Exit codes (PRODUCT.md, "Exit codes of watch"): 0 succeeded, 1 failed, 3 canceled, 4
``--timeout`` reached, 5 a KEB error retrying cannot fix (404, 401/403, KEB unreachable for
longer than ``--give-up-after``), 130 interrupted. 2 (usage, configuration) is decided before
the loop starts. An orchestration that is already terminal at the first poll ends the loop
at once with its code.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, Protocol, assert_never

from watcher.core.diff import Transition
from watcher.core.durations import format_duration
from watcher.core.models import (
    CANCELED,
    CANCELING,
    FAILED,
    IN_PROGRESS,
    PENDING,
    RETRYING,
    SUCCEEDED,
    MaintenanceWindow,
    Operation,
    Orchestration,
    is_terminal_operation,
)
from watcher.engine.cycle import Engine, utcnow
from watcher.errors import (
    KebAuthError,
    KebError,
    KebNotFound,
    KebPermanentError,
    KebTransientError,
    StoreError,
    TokenError,
    WatcherError,
)
from watcher.store.database import Store, Tracked

#: While operations run (or KEB is canceling or retrying), changes come every few seconds.
QUICK_INTERVAL: Final = 5.0
#: While everything unfinished is pending: KEB starts operations as workers free up.
PENDING_INTERVAL: Final = 30.0
#: Bounds while every pending operation waits for a maintenance window that opens later.
WINDOW_INTERVAL: Final = (60.0, 300.0)
#: The first reconnect comes after about this long; it doubles per failed attempt.
BACKOFF_BASE: Final = 1.0
DEFAULT_GIVE_UP_AFTER: Final = 600.0

Sleep = Callable[[float], Awaitable[None]]
#: The cancellation message of a watch stopped by SIGTERM (``task.cancel(TERMINATE)``).
TERMINATE: Final = "SIGTERM"


class WatchOutcome(StrEnum):
    """How a watch ended. Values appear in the JSON summary: never rename."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMEOUT = "timeout"
    NOT_FOUND = "not_found"
    AUTH = "auth"
    UNREACHABLE = "unreachable"
    KEB_ERROR = "keb_error"
    INTERRUPTED = "interrupted"
    TERMINATED = "terminated"


EXIT_CODES: Final[Mapping[WatchOutcome, int]] = {
    WatchOutcome.SUCCEEDED: 0,
    WatchOutcome.FAILED: 1,
    WatchOutcome.CANCELED: 3,
    WatchOutcome.TIMEOUT: 4,
    WatchOutcome.NOT_FOUND: 5,
    WatchOutcome.AUTH: 5,
    WatchOutcome.UNREACHABLE: 5,
    WatchOutcome.KEB_ERROR: 5,
    WatchOutcome.INTERRUPTED: 130,
    WatchOutcome.TERMINATED: 143,
}
_TERMINAL: Final = {state: WatchOutcome(state) for state in (SUCCEEDED, FAILED, CANCELED)}


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """The command's options, in seconds. ``interval`` ``None`` means adaptive."""

    interval: float | None = None
    timeout: float | None = None
    give_up_after: float = DEFAULT_GIVE_UP_AFTER


# -- pure decisions ----------------------------------------------------------------------


def window_wait(window: MaintenanceWindow, now: datetime) -> float | None:
    """Seconds until ``window`` opens: ``0.0`` while it is open, ``None`` when unknown.

    A concrete window (dates) that has passed is unknown: KEB will pick another one. A
    year-0 window (times of day only, keb-api.md) repeats daily in UTC.

    >>> from datetime import UTC, datetime
    >>> w = MaintenanceWindow("0000-01-01T22:00:00Z", "0000-01-01T02:00:00Z")
    >>> window_wait(w, datetime(2024, 5, 14, 21, 0, tzinfo=UTC))
    3600.0
    >>> window_wait(w, datetime(2024, 5, 14, 1, 0, tzinfo=UTC))
    0.0
    """
    begin, end = window.begin_at, window.end_at
    if begin is not None:
        if now < begin:
            return (begin - now).total_seconds()
        return 0.0 if end is None or now < end else None
    daily = window.daily
    if daily is None:
        return None
    start, stop = (t.hour * 3600 + t.minute * 60 + t.second for t in daily)
    now = now.astimezone(UTC)
    current = now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1e6
    is_open = start <= current < stop if start < stop else current >= start or current < stop
    return 0.0 if is_open or start == stop else (start - current) % 86400


def idle_pending(state: str | None, counts: Mapping[str, int]) -> bool:
    """Every unfinished operation is pending (or the orchestration itself is)."""
    if state == PENDING:
        return True
    if state != IN_PROGRESS:
        return False
    unfinished = {s for s, n in counts.items() if n and not is_terminal_operation(s)}
    return unfinished == {PENDING}


def poll_interval(
    state: str | None,
    counts: Mapping[str, int],
    pending_windows: Iterable[MaintenanceWindow],
    now: datetime,
) -> float:
    """The adaptive interval: quick while anything moves, slower while everything waits.

    ``pending_windows`` are the maintenance windows of the pending operations; the caller
    needs to load them only when :func:`idle_pending` is true. When every one of them opens
    in the future, the interval is half the time until the first opens, within
    :data:`WINDOW_INTERVAL`.
    """
    if state in (CANCELING, RETRYING) or not idle_pending(state, counts):
        return QUICK_INTERVAL
    waits = [window_wait(w, now) for w in pending_windows]
    if waits and all(w is not None and w > 0 for w in waits):
        soonest = min(w for w in waits if w is not None)
        low, high = WINDOW_INTERVAL
        return min(high, max(low, soonest / 2))
    return PENDING_INTERVAL


def reconnect_delay(attempt: int, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with "equal jitter", capped at ``cap`` (the poll interval).

    >>> [reconnect_delay(n, 5.0, rng=lambda: 1.0) for n in (1, 2, 3, 4, 9)]
    [1.0, 2.0, 4.0, 5.0, 5.0]
    >>> reconnect_delay(3, 5.0, rng=lambda: 0.0)
    2.0
    """
    full = min(cap, BACKOFF_BASE * 2.0 ** min(max(attempt - 1, 0), 30))
    return full / 2 + full / 2 * rng()


@dataclass(frozen=True, slots=True)
class Follow:
    """Where the loop stands; times are seconds on the monotonic clock."""

    started: float
    interval: float = QUICK_INTERVAL
    failing_since: float | None = None
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Observed:
    """An event: a poll succeeded. ``interval`` is the one to use from here."""

    state: str | None
    not_found: bool
    interval: float


@dataclass(frozen=True, slots=True)
class PollFailed:
    """An event: a poll failed with ``error``."""

    error: WatcherError


@dataclass(frozen=True, slots=True)
class Wait:
    """Action: poll again in ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Action: the poll failed transiently; try again in ``seconds``."""

    attempt: int
    seconds: float
    reason: str
    failing_for: float


@dataclass(frozen=True, slots=True)
class Finish:
    """Action: stop with ``outcome``."""

    outcome: WatchOutcome
    reason: str


WatchEvent = Observed | PollFailed
Action = Wait | Reconnect | Finish


def permanent_outcome(error: WatcherError) -> WatchOutcome | None:
    """The outcome of an error retrying cannot fix; ``None`` for transient ones."""
    if isinstance(error, KebAuthError | TokenError):
        return WatchOutcome.AUTH
    if isinstance(error, KebNotFound):
        return WatchOutcome.NOT_FOUND
    if isinstance(error, KebPermanentError):
        return WatchOutcome.KEB_ERROR
    return None


def step(
    follow: Follow,
    event: WatchEvent,
    now: float,
    options: WatchOptions,
    rng: Callable[[], float] = random.random,
) -> tuple[Follow, Action]:
    """The next state and action after one poll at ``now``. Pure."""
    timeout_at = math.inf if options.timeout is None else follow.started + options.timeout
    if isinstance(event, Observed):
        follow = replace(follow, interval=event.interval, failing_since=None, failures=0)
        if event.not_found:
            return follow, Finish(
                WatchOutcome.NOT_FOUND, "KEB does not know this orchestration (404)"
            )
        outcome = _TERMINAL.get(event.state or "")
        if outcome is not None:
            return follow, Finish(outcome, f"orchestration {event.state}")
        if now >= timeout_at:
            return follow, Finish(WatchOutcome.TIMEOUT, _timeout_reason(options, event.state))
        return follow, Wait(min(event.interval, timeout_at - now))
    if isinstance(event, PollFailed):
        reason = " ".join(str(event.error).split())  # one line
        permanent = permanent_outcome(event.error)
        if permanent is not None:
            return follow, Finish(permanent, reason)
        since = now if follow.failing_since is None else follow.failing_since
        follow = replace(follow, failing_since=since, failures=follow.failures + 1)
        give_up_at = since + options.give_up_after
        if now >= min(timeout_at, give_up_at):
            if timeout_at <= give_up_at:
                return follow, Finish(WatchOutcome.TIMEOUT, _timeout_reason(options, None))
            down = format_duration(round(now - since))
            what = "KEB unreachable" if isinstance(event.error, KebError) else "polls failing"
            return follow, Finish(
                WatchOutcome.UNREACHABLE,
                f"{what} for {down} ({follow.failures} attempts): {reason}",
            )
        delay = reconnect_delay(follow.failures, follow.interval, rng)
        delay = min(delay, give_up_at - now, timeout_at - now)
        return follow, Reconnect(follow.failures, delay, reason, now - since)
    assert_never(event)


def _timeout_reason(options: WatchOptions, state: str | None) -> str:
    limit = format_duration(options.timeout or 0.0)
    return f"--timeout {limit} reached" + (f"; orchestration still {state}" if state else "")


def group_failures(operations: Iterable[Operation]) -> tuple[tuple[str, int], ...]:
    """Failed operations grouped by their description (the reason), most frequent first."""
    counter = Counter(op.description or "(no description)" for op in operations)
    return tuple(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def done(counts: Mapping[str, int]) -> int:
    return sum(n for state, n in counts.items() if is_terminal_operation(state))


# -- what the renderers get --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    """What one successful poll showed. ``elapsed`` is seconds since the watch started."""

    orchestration_id: str
    orchestration: Orchestration | None
    counts: Mapping[str, int]
    new: tuple[Transition, ...]
    failures: tuple[tuple[str, int], ...]
    interval: float
    elapsed: float
    at: datetime
    first: bool = False
    #: Failed attempts just before this poll (0: no outage to report).
    recovered_after: int = 0


@dataclass(frozen=True, slots=True)
class Summary:
    """How the watch ended: what ``--notify`` sends and every renderer's last word."""

    orchestration_id: str
    outcome: WatchOutcome
    reason: str
    at: datetime
    elapsed: float
    orchestration: Orchestration | None = None
    initial_state: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    completed: int = 0  #: operations that finished while watched
    failures: tuple[tuple[str, int], ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    @property
    def state(self) -> str | None:
        return self.orchestration.state if self.orchestration else None


class Sink(Protocol):
    """Where the loop reports (:mod:`watcher.faces.watch.live` has the live view, plain and
    JSON lines).
    ``close`` is always called last, also after an error or Ctrl-C."""

    def progress(self, p: Progress) -> None: ...

    def reconnecting(self, orchestration_id: str, r: Reconnect, at: datetime) -> None: ...

    def finish(self, summary: Summary) -> None: ...

    def close(self) -> None: ...


# -- the driver --------------------------------------------------------------------------


def _tracked(store: Store, orch_id: str) -> Tracked:
    for item in store.tracked(include_inactive=True):
        if item.orchestration_id == orch_id:
            return item
    raise AssertionError(f"{orch_id} was tracked at the start of the watch")


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
                windows = [op.window for op in store.operations_in_state(orch_id, PENDING).values()]
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
        )
        self.first = False
        # A 404 for an orchestration never seen leaves no snapshot row: the tracked row says it.
        not_found = head.not_found or _tracked(store, orch_id).not_found
        return progress, Observed(state, not_found, interval)

    def summary(self, outcome: WatchOutcome, reason: str, elapsed: float, at: datetime) -> Summary:
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
    ``sink.finish``). Tracks the ID in ``store`` first. Ctrl-C (cancellation) finishes with
    :attr:`WatchOutcome.INTERRUPTED` and re-raises. A :class:`~watcher.errors.StoreError` while
    polling (another process, e.g. `watcher run`, recorded the same change first) is retried
    like a transient KEB error; the next poll diffs against what that process recorded."""
    store.track([orch_id], None, now())
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
                if result.ok:
                    progress, event = watch.observe(state, clock() - state.started, now())
                    sink.progress(progress)
                else:
                    event = PollFailed(result.exception or KebTransientError(str(result.error)))
            state, action = step(state, event, clock(), options, rng)
            if isinstance(action, Finish):
                summary = watch.summary(
                    action.outcome, action.reason, clock() - state.started, now()
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
