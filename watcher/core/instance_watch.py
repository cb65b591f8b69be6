"""Pure: ``watch --instance``, one instance's current (or next) operation until it ends.

:func:`instance_step` takes what KEB showed of the instance (``op_detail=all``, so every open
operation is listed) and whether the archive lists it as deprovisioned, and returns the next
state and the events to print. Exit codes are those of ``watch`` (docs/contract.md §2.3):
0 succeeded, 1 failed, 4 timeout (the driver's clock), 5 KEB cannot answer (an instance KEB
neither lists nor archived counts as unknown, like an orchestration's 404).

Rules (docs/keb-runtimes-api.md §3.8, §6.3): at the first look, the newest open operation is
followed; with none open, the next operation to appear is. A followed deprovisioning whose
instance vanished and is archived succeeded (KEB never shows that ``succeeded``). A followed
operation no longer listed ended with an outcome KEB no longer shows (``unknown``, exit 1:
nothing proves it succeeded).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from watcher.core.fleet import (
    DEPROVISIONING,
    OUTCOME_NOT_SHOWN,
    FleetOperation,
    FleetRuntime,
    is_ended,
)
from watcher.core.models import SUCCEEDED

NOT_FOUND: Final = "not found"
_EARLIEST: Final = datetime.min.replace(tzinfo=UTC)
EXIT_CODES: Final = {SUCCEEDED: 0, NOT_FOUND: 5}


@dataclass(frozen=True, slots=True)
class InstanceWatch:
    """Where the watch of one instance stands. ``known`` is ``None`` before the first look."""

    instance_id: str
    target: str | None = None
    kind: str = ""
    state: str = ""
    known: frozenset[str] | None = None
    outcome: str | None = None
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def exit_code(self) -> int:
        """0 succeeded, 5 unknown instance, 1 any other end (failed, outcome not shown)."""
        if self.outcome is None:
            raise ValueError("the watch of this instance has not ended")
        return EXIT_CODES.get(self.outcome, 1)


def _event(watch: InstanceWatch, op: FleetOperation | None, event: str) -> dict[str, Any]:
    return {
        "type": event,
        "instance": watch.instance_id,
        "operation": op.operation_id if op else watch.target,
        "kind": op.kind if op else watch.kind,
        "state": op.state if op else watch.state,
        "reason": (op.reason if op and op.state == "failed" else "") or watch.reason,
    }


def instance_step(
    watch: InstanceWatch, runtime: FleetRuntime | None, archived: bool
) -> tuple[InstanceWatch, list[dict[str, Any]]]:
    """The next state of ``watch`` after one look at KEB, and the events to print."""
    if watch.done:
        return watch, []
    if runtime is None:
        if watch.kind == DEPROVISIONING and archived:
            ended = replace(watch, state=SUCCEEDED, outcome=SUCCEEDED, reason="deprovisioned")
            return ended, [_event(ended, None, "ended")]
        if watch.known is None and archived:
            ended = replace(watch, outcome=SUCCEEDED, reason="deprovisioned before the watch")
            return ended, [_event(ended, None, "ended")]
        lost = replace(watch, outcome=NOT_FOUND, reason="KEB lists no such instance")
        return lost, [_event(lost, None, "ended")]
    ops = {op.operation_id: op for op in runtime.operations}
    events: list[dict[str, Any]] = []
    if watch.known is None:
        open_ops = [op for op in runtime.operations if not is_ended(op.state)]
        watch = replace(watch, known=frozenset(ops))
        if not open_ops:
            return watch, [_event(watch, None, "waiting")]
        # Newest by KEB's createdAt (one clock, compared only with each other); undated last.
        newest = max(open_ops, key=lambda op: op.created_at or _EARLIEST)
        watch = replace(watch, target=newest.operation_id, kind=newest.kind, state=newest.state)
        events.append(_event(watch, newest, "following"))
    elif watch.target is None:
        new = [op for op in runtime.operations if op.operation_id not in watch.known]
        if not new:
            return watch, []
        first = new[0]
        watch = replace(watch, target=first.operation_id, kind=first.kind, state=first.state)
        events.append(_event(watch, first, "following"))
    assert watch.target is not None
    op = ops.get(watch.target)
    if op is None:
        ended = replace(watch, state=OUTCOME_NOT_SHOWN, outcome=OUTCOME_NOT_SHOWN)
        ended = replace(ended, reason="ended; KEB no longer shows its outcome")
        return ended, [*events, _event(ended, None, "ended")]
    if op.state != watch.state:
        watch = replace(watch, state=op.state)
        events.append(_event(watch, op, "changed"))
    if is_ended(op.state):
        watch = replace(watch, outcome=op.state, reason=op.reason if op.state == "failed" else "")
        events.append(_event(watch, op, "ended"))
    return watch, events
