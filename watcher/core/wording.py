"""The words for what was recorded, written once: every face and every message uses these.

Pure: no clock, no I/O. ``history`` adds the time in front; the live view its own short time.
"""

from __future__ import annotations

from collections.abc import Mapping

from watcher.core.diff import Transition, TransitionKind
from watcher.core.inert import inert
from watcher.core.models import FAILED, PENDING
from watcher.core.states import in_keb_order, state_label


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``1 transition``, ``2 transitions``, ``0 notifications``.

    >>> plural(1, "transition"), plural(2, "notification"), plural(3, "reason", "reasons")
    ('1 transition', '2 notifications', '3 reasons')
    """
    return f"{n} {noun if n == 1 else (many or noun + 's')}"


def counts_text(counts: Mapping[str, int]) -> str:
    """``120: 13 succeeded, 2 failed, 5 in progress, 100 pending`` (unknown states kept)."""
    total = sum(counts.values())
    parts = [f"{n} {state_label(state)}" for state, n in in_keb_order(counts) if n]
    return inert(f"{total}: " + ", ".join(parts)) if parts else "0"


def transition_text(t: Transition) -> str:
    """What happened, in words (no time): the one wording of a transition everywhere.
    KEB's text in it is made inert (:func:`watcher.core.inert.inert`)."""
    path = " -> ".join(s for s in t.path if s) if t.path else ""
    if t.kind is TransitionKind.BASELINE:
        counts = t.detail.get("counts", {})
        what = f"baseline: {t.to_state}, operations {counts_text(counts)}"
    elif t.kind is TransitionKind.ORCHESTRATION_NOT_FOUND:
        what = "orchestration not found (404): no longer polled"
    elif t.operation_id is None:
        what = f"orchestration {path or t.to_state}"
        if t.description:
            what += f': "{t.description}"'
    else:
        who = t.shoot_name or t.runtime_id or "-"
        label = {
            TransitionKind.OPERATION_ADDED: "added",
            TransitionKind.OPERATION_RETRY: "retry",
            TransitionKind.OPERATION_VANISHED: "vanished",
        }.get(t.kind, "")
        what = f"{who} {t.operation_id}: {label + ' ' if label else ''}{path}"
        if t.kind is TransitionKind.OPERATION_COMPLETED and (t.from_state, t.to_state) == (
            PENDING,
            FAILED,
        ):
            # KEB can fail an operation that never started (keb-concurrency.md §3.1); from
            # pending to failed between two polls, the watcher cannot tell which it was.
            what += " (never seen in progress: it may have failed before it started)"
        if t.description and t.kind is TransitionKind.OPERATION_COMPLETED:
            what += f' "{t.description}"'
    return inert(what)
