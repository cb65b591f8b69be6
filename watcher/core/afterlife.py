"""Pure decisions: life after the outcome (PRODUCT.md "After the outcome").

KEB can end an orchestration (``failed``, ``canceled``, even ``succeeded``) while operations
still run or wait: retried operations queued in the run's last minute run after the outcome,
and a failure during start leaves pending operations behind (docs/keb-concurrency.md §3.4).
The watcher follows such operations until they end (:func:`running` decides whether an ended
orchestration is finished), records what they do, shows it on the card, and notes it in the
thread as happening after the outcome: at most once per ``slack.digest_interval``, and always
when the last of them has ended, so nothing goes unsaid. The final summary is never repeated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from watcher.core.diff import Transition, TransitionKind
from watcher.core.failures import failure_groups
from watcher.core.intents import Intent
from watcher.core.kinds import Kind, priority
from watcher.core.models import FAILED, is_terminal_operation, is_terminal_orchestration
from watcher.core.policy import REASONS


def running(counts: Mapping[str, int]) -> int:
    """Operations not ended yet (pending, in progress, a legacy retrying row).

    >>> running({"succeeded": 3, "in progress": 2, "pending": 1, "failed": 1})
    3
    """
    return sum(n for state, n in counts.items() if n > 0 and not is_terminal_operation(state))


def ended_before(transitions: Sequence[Transition], state: str | None) -> bool:
    """Was the orchestration already ended before this cycle? (It is ended now and this
    cycle recorded no change of its state.)"""
    return (
        state is not None
        and is_terminal_orchestration(state)
        and not any(t.kind is TransitionKind.ORCHESTRATION_STATE for t in transitions)
    )


def after_outcome_note(
    orch_id: str,
    transitions: Sequence[Transition],
    *,
    outcome: Transition,
    since_outcome: Mapping[str, int],
    late_failures: Sequence[Mapping[str, str]],
    still_running: int,
    last_note: datetime | None,
    now: datetime,
    interval: float,
    base: Mapping[str, Any],
    channel: str | None,
) -> Intent | None:
    """The thread note for operations that ended after ``outcome`` (the orchestration's
    transition to its terminal state), or ``None``.

    ``since_outcome`` counts every operation end recorded after the outcome, this cycle's
    included; ``late_failures`` are those of them that failed (description, shoot, operation
    ID). A note goes when this cycle recorded an operation ending and either no note went out
    for ``interval`` seconds or nothing is running any more (the last word is never held)."""
    ended = [t for t in transitions if t.kind is TransitionKind.OPERATION_COMPLETED]
    if not ended:
        return None
    due = last_note is None or (now - last_note).total_seconds() >= interval
    if not due and still_running:
        return None
    groups = failure_groups(late_failures)
    key = (
        f"{orch_id}:after:{outcome.key}:"
        + hashlib.sha256("\n".join(sorted(t.key for t in ended)).encode()).hexdigest()[:16]
    )
    payload = {
        **base,
        "kind": Kind.AFTER_OUTCOME,
        "key": key,
        "after": {
            "outcome": outcome.to_state,
            "outcome_at": outcome.at.isoformat(),
            "ended": sum(since_outcome.values()),
            "counts": dict(sorted(since_outcome.items())),
            "failed": since_outcome.get(FAILED, 0),
            "running": still_running,
            "failures": groups[:REASONS],
            "more_reasons": max(0, len(groups) - REASONS),
        },
    }
    return Intent(key, Kind.AFTER_OUTCOME, orch_id, priority(Kind.AFTER_OUTCOME), payload, channel)
