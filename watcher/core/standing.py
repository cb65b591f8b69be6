"""What still stands after retries: the failures, counts and retry tally a message shows.

KEB facts relied on (docs/keb-api.md §2.6, §4): a retry never revives a failed operation; it
appends a new operation for the same runtime, and the old one stays ``failed``. KEB's own
``operationStats`` therefore counts ``failed`` per runtime (a runtime with a failed operation
and no succeeded, retrying or in-progress one), and an orchestration whose retries all
succeeded ends ``succeeded`` although the old failed rows are still listed. A message that
listed those rows under "Failures by reason" would report failures that no longer stand.

A *complete* snapshot lists every operation in KEB order (oldest first), so the newest
operation of a runtime is its last one. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise

from watcher.core.diff import Snapshot
from watcher.core.models import (
    FAILED,
    SUCCEEDED,
    Operation,
    is_terminal_operation,
    operation_stats,
)

#: ``parameters.retryoperation.retryoperations``: the IDs a retry request stored, until KEB
#: picks them up (docs/keb-api.md §2.6).
_RETRY_PARAM = "retryoperation"
_RETRY_IDS = "retryoperations"


def _runtime(op: Operation) -> str:
    return op.runtime_id or f"operation:{op.operation_id}"


def _chains(operations: Iterable[Operation]) -> dict[str, list[Operation]]:
    chains: dict[str, list[Operation]] = {}
    for op in operations:
        chains.setdefault(_runtime(op), []).append(op)
    return chains


def standing_failures(snap: Snapshot) -> list[Operation]:
    """The failed operations that are their runtime's newest operation, in KEB order.

    >>> from watcher.core.models import Operation as Op
    >>> snap = Snapshot("o", operations={
    ...     "a": Op("a", runtime_id="r1", state="failed"),
    ...     "b": Op("b", runtime_id="r2", state="failed"),
    ...     "c": Op("c", runtime_id="r1", state="succeeded")})
    >>> [op.operation_id for op in standing_failures(snap)]
    ['b']
    """
    latest = {runtime: chain[-1] for runtime, chain in _chains(snap.operations.values()).items()}
    return [
        op for op in snap.operations.values() if op.state == FAILED and latest[_runtime(op)] is op
    ]


@dataclass(frozen=True, slots=True)
class Retries:
    """The operations that retried a failed one (over every run so far): how many, and how
    many of them succeeded, failed again (and are still their runtime's newest) or run."""

    operations: int
    succeeded: int
    failed: int
    running: int

    def to_payload(self) -> dict[str, int]:
        return {
            "operations": self.operations,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "running": self.running,
        }


def retries(snap: Snapshot) -> Retries | None:
    """The retry tally of a complete snapshot; ``None`` when nothing was retried.

    >>> from watcher.core.models import Operation as Op
    >>> snap = Snapshot("o", operations={
    ...     "a": Op("a", runtime_id="r1", state="failed"),
    ...     "b": Op("b", runtime_id="r1", state="succeeded")})
    >>> retries(snap)
    Retries(operations=1, succeeded=1, failed=0, running=0)
    """
    tally = [0, 0, 0, 0]
    for chain in _chains(snap.operations.values()).values():
        for before, op in pairwise(chain):
            if before.state != FAILED:
                continue
            tally[0] += 1
            if op.state == SUCCEEDED:
                tally[1] += 1
            elif op.state == FAILED and op is chain[-1]:
                tally[2] += 1
            elif not is_terminal_operation(op.state):
                tally[3] += 1
    return Retries(*tally) if tally[0] else None


def requested_retries(snap: Snapshot) -> int:
    """How many operations a retry request queued that KEB has not picked up yet."""
    orch = snap.orchestration
    if orch is None:
        return 0
    param = orch.parameters.get(_RETRY_PARAM)
    ids = param.get(_RETRY_IDS) if isinstance(param, Mapping) else None
    return len(ids) if isinstance(ids, list) else 0


def picked_up(snap: Snapshot) -> int:
    """Retry operations picked up and not finished yet: the retry that is running now."""
    count = 0
    for chain in _chains(snap.operations.values()).values():
        newest = chain[-1]
        if len(chain) > 1 and chain[-2].state == FAILED and not is_terminal_operation(newest.state):
            count += 1
    return count


def counts_standing(snap: Snapshot, counts: Mapping[str, int]) -> dict[str, int]:
    """``counts`` (operations by state) with failures a retry superseded taken out, as KEB's
    ``operationStats`` counts them: ``failed`` is the runtimes whose failure still stands.

    >>> from watcher.core.models import Operation as Op
    >>> snap = Snapshot("o", operations={
    ...     "a": Op("a", runtime_id="r1", state="failed"),
    ...     "b": Op("b", runtime_id="r1", state="succeeded")})
    >>> counts_standing(snap, {"failed": 1, "succeeded": 1})
    {'failed': 0, 'succeeded': 1}
    """
    out = dict(counts)
    if snap.complete:
        pairs = ((_runtime(op), op.state) for op in snap.operations.values())
        out[FAILED] = operation_stats(pairs)[FAILED]
    else:
        stats = (snap.orchestration.operation_stats if snap.orchestration else None) or (
            snap.expected_stats
        )
        if stats is None or FAILED not in stats:
            return out
        out[FAILED] = min(out.get(FAILED, 0), stats[FAILED])
    return out
