"""The decisions of ``watcher watch``: follow one orchestration until it is terminal.

Two layers, as in hishel: this pure core decides (:func:`poll_interval`, :func:`reconnect_delay`
and :func:`step`, which turns the outcome of one poll into the next action), and
:func:`watcher.engine.follow.follow` does the I/O each action asks for.

Exit codes (docs/contract.md §2.3): 0 succeeded, 1 failed, 3 canceled, 4
``--timeout`` reached, 5 a KEB error retrying cannot fix (404, 401/403, KEB unreachable for
longer than ``--give-up-after``), 130 interrupted. 2 (usage, configuration) is decided before
the loop starts. An orchestration that is already terminal at the first poll ends the loop
at once with its code.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Final, Protocol, assert_never

from watcher.core.diff import Transition
from watcher.core.durations import format_duration
from watcher.core.failures import grouped
from watcher.core.models import (
    CANCELED,
    FAILED,
    SUCCEEDED,
    MaintenanceWindow,
    Operation,
    Orchestration,
    finished_count,
)
from watcher.core.pace import WATCH_PACE, poll_every
from watcher.core.stuck import Stalled
from watcher.errors import (
    KebAuthError,
    KebError,
    KebNotFound,
    KebPermanentError,
    TokenError,
    WatcherError,
)

#: While operations run (or KEB is canceling or retrying), changes come every few seconds.
QUICK_INTERVAL: Final = WATCH_PACE.quick
#: While everything unfinished is pending: KEB starts operations as workers free up.
PENDING_INTERVAL: Final = WATCH_PACE.pending
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
#: With several orchestrations: the first of these codes that any of them ended with wins.
_PRECEDENCE: Final = (130, 5, 4, 1, 3)


def combined_exit_code(codes: Iterable[int]) -> int:
    """The exit code of a watch of several orchestrations (docs/contract.md §2.3): 0 only
    when every one succeeded, otherwise the first that applies of 5, 4, 1, 3 (130 when
    interrupted).

    >>> combined_exit_code([0, 0]), combined_exit_code([3, 1, 0]), combined_exit_code([1, 4, 5])
    (0, 1, 5)
    """
    seen = set(codes)
    return next((code for code in _PRECEDENCE if code in seen), 0)


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """The command's options, in seconds. ``interval`` ``None`` means adaptive."""

    interval: float | None = None
    timeout: float | None = None
    give_up_after: float = DEFAULT_GIVE_UP_AFTER


# -- pure decisions ----------------------------------------------------------------------


def poll_interval(
    state: str | None,
    counts: Mapping[str, int],
    pending_windows: Iterable[MaintenanceWindow],
    now: datetime,
) -> float:
    """The adaptive interval of ``watch``: :func:`watcher.core.pace.poll_every` within
    :data:`~watcher.core.pace.WATCH_PACE` (quick while anything moves, slower while everything
    waits)."""
    return poll_every(state, counts, pending_windows, now, WATCH_PACE)


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
    """Action: stop with ``outcome``; ``error`` is the failure that ended the watch, if any."""

    outcome: WatchOutcome
    reason: str
    error: WatcherError | None = None


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
            return follow, Finish(permanent, reason, event.error)
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
                event.error,
            )
        delay = reconnect_delay(follow.failures, follow.interval, rng)
        delay = min(delay, give_up_at - now, timeout_at - now)
        return follow, Reconnect(follow.failures, delay, reason, now - since)
    assert_never(event)


def _timeout_reason(options: WatchOptions, state: str | None) -> str:
    limit = format_duration(options.timeout or 0.0)
    return f"--timeout {limit} reached" + (f"; orchestration still {state}" if state else "")


def group_failures(operations: Iterable[Operation]) -> tuple[tuple[str, int], ...]:
    """Failed operations grouped by their description (the reason), most frequent first:
    :func:`watcher.core.failures.grouped`, reasons and counts only."""
    return tuple(
        (reason, len(ops)) for reason, ops in grouped(operations, lambda op: op.description)
    )


#: Operations finished, from counts by state (one rule: :func:`watcher.core.models.finished_count`).
done = finished_count


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
    #: What is stuck (``poll.stuck_after``) as this poll found it.
    stuck: tuple[Stalled, ...] = ()


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
    #: The failure that ended the watch (exit 5), for a face to match on; ``reason`` says it.
    error: WatcherError | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    @property
    def state(self) -> str | None:
        return self.orchestration.state if self.orchestration else None


@dataclass(frozen=True, slots=True)
class CombinedSummary:
    """How a watch of several orchestrations ended, in one: the process's exit code
    (:func:`combined_exit_code`), the outcome that decided it, and how many ended how."""

    orchestration_ids: tuple[str, ...]
    outcome: WatchOutcome
    outcomes: Mapping[WatchOutcome, int]
    counts: Mapping[str, int]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    @property
    def reason(self) -> str:
        """``3 orchestrations: 1 failed, 1 canceled, 1 succeeded``: the deciding outcome first.

        >>> combine([]).reason
        '0 orchestrations'
        """
        what = ", ".join(f"{n} {o.value.replace('_', ' ')}" for o, n in self.outcomes.items())
        noun = "orchestration" if len(self.orchestration_ids) == 1 else "orchestrations"
        return f"{len(self.orchestration_ids)} {noun}" + (f": {what}" if what else "")


def combine(summaries: Iterable[Summary]) -> CombinedSummary:
    """The :class:`CombinedSummary` of ``summaries``: its exit code is
    :func:`combined_exit_code` of theirs, its outcome the first that gave that code, and
    its outcomes are counted most decisive first (in the order of ``_PRECEDENCE``, then
    succeeded)."""
    items = list(summaries)
    code = combined_exit_code(s.exit_code for s in items)
    outcome = next((s.outcome for s in items if s.exit_code == code), WatchOutcome.SUCCEEDED)
    rank = {c: i for i, c in enumerate((*_PRECEDENCE, 143, 0))}
    tally: dict[WatchOutcome, int] = {}
    for s in sorted(items, key=lambda s: rank.get(s.exit_code, len(rank))):
        tally[s.outcome] = tally.get(s.outcome, 0) + 1
    counts: dict[str, int] = {}
    for s in items:
        for state, n in s.counts.items():
            counts[state] = counts.get(state, 0) + n
    return CombinedSummary(tuple(s.orchestration_id for s in items), outcome, tally, counts)


class Sink(Protocol):
    """Where the loop reports (:mod:`watcher.faces.watch.live` has the live view, plain and
    JSON lines).
    ``close`` is always called last, also after an error or Ctrl-C."""

    def progress(self, p: Progress) -> None: ...

    def reconnecting(self, orchestration_id: str, r: Reconnect, at: datetime) -> None: ...

    def finish(self, summary: Summary) -> None: ...

    def close(self) -> None: ...


# -- the driver --------------------------------------------------------------------------
