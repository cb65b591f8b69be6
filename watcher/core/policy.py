"""Pure decisions: what one cycle's transitions mean for the people watching.

:func:`decide` turns the diff of one orchestration into notification intents; it reads no
clock and no database (``now`` and the progress reference come in). Its rules are the product
contract (docs/contract.md §4):

* **Baseline, not a flood**: tracking sends one card; existing operations are not announced.
* **Digests, not spam**: a cycle yields at most one card update and one failure digest per
  orchestration, whatever the number of operations that changed; failures are grouped by
  their description, with counts, a few example shoots and operation IDs, and "+K more".
* **Terminal outcome**: succeeded, failed or canceled gives a final summary (counts,
  duration, failures by reason) that notifies people.
* **Failed is not final**: a retry of a failed orchestration gives a ``retried`` reply, and
  the new outcome its own final summary, with the duration of the new run.
* Every intent has a stable once-per ``key`` derived from the transitions that caused it, so
  the same logical notification is never enqueued twice.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from watcher.core.diff import Diff, Transition, TransitionKind
from watcher.core.failures import failure_groups
from watcher.core.intents import Intent
from watcher.core.kinds import Kind, priority
from watcher.core.models import (
    CANCELED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    RETRYING,
    SUCCEEDED,
    Operation,
    Orchestration,
    finished_count,
    is_terminal_operation,
    is_terminal_orchestration,
)
from watcher.core.standing import (
    counts_standing,
    picked_up,
    requested_retries,
    retries,
    standing_failures,
)

REASONS: Final = 10  # failure reasons listed before "+K more reasons"


@dataclass(frozen=True, slots=True)
class Run:
    """Which run of a retried orchestration this is (1: never retried) and, for a retry, when
    it started (``None``: not seen). A failed orchestration that is retried runs again; the
    duration shown is that run's, not ``updatedAt - createdAt`` (a retry bumps ``updatedAt``,
    docs/keb-api.md §12.3)."""

    number: int = 1
    started: datetime | None = None


def runs_from(transitions: Iterable[Transition], before: Run | None = None) -> Run:
    """The run after ``transitions``: each transition out of ``failed`` starts a new one.

    >>> from datetime import UTC
    >>> t = Transition(TransitionKind.ORCHESTRATION_STATE, "o", "o:rev3:state",
    ...                datetime(2026, 1, 2, tzinfo=UTC), from_state="failed", to_state="retrying",
    ...                detail={"run_started": "2026-01-02T00:00:00+00:00"})
    >>> runs_from([t])
    Run(number=2, started=datetime.datetime(2026, 1, 2, 0, 0, tzinfo=datetime.timezone.utc))
    """
    run = before or Run()
    for t in transitions:
        if t.kind is TransitionKind.ORCHESTRATION_STATE and t.from_state == FAILED:
            started = t.detail.get("run_started")
            run = Run(run.number + 1, datetime.fromisoformat(started) if started else None)
    return run


@dataclass(frozen=True, slots=True)
class Reference:
    """Where progress was measured from: when the watcher first saw the orchestration and
    how many operations were finished then (throughput and ETA come from the difference)."""

    at: datetime
    done: int


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]


def summary(
    orch: Orchestration,
    counts: Mapping[str, int],
    now: datetime,
    reference: Reference | None,
    run: Run | None = None,
) -> dict[str, Any]:
    """The numbers every message about an orchestration shows. ``elapsed_seconds`` is the
    current run's: from the retry for a retried orchestration (``None`` when its start was
    not seen), else from ``createdAt``."""
    total = sum(counts.values())
    done = finished_count(counts)
    started = orch.created_at
    retried = run is not None and run.number > 1
    if retried:
        started = run.started if run is not None else None
    elapsed = (now - started).total_seconds() if started else None
    if is_terminal_orchestration(orch.state) and started and orch.updated_at:
        elapsed = max(0.0, (orch.updated_at - started).total_seconds())
    rate = eta = None
    if reference is not None and done > reference.done:
        seconds = (now - reference.at).total_seconds()
        if seconds > 0:
            rate = (done - reference.done) / seconds * 3600
            eta = (total - done) / rate * 3600 if total > done else 0.0
    return {
        "orchestration": {
            "id": orch.orchestration_id,
            "type": orch.type,
            "state": orch.state,
            "description": orch.description,
            "created_at": started.isoformat() if started else None,
            "kubernetes_version": orch.kubernetes_version,
            "workers": orch.workers,
            "dry_run": orch.dry_run,
        },
        "counts": dict(counts),
        "total": total,
        "done": done,
        "succeeded": counts.get(SUCCEEDED, 0),
        "failed": counts.get(FAILED, 0),
        "canceled": counts.get(CANCELED, 0),
        "progress": done / total
        if total
        else (1.0 if is_terminal_orchestration(orch.state) else 0.0),
        "elapsed_seconds": elapsed,
        "throughput_per_hour": rate,
        "eta_seconds": eta,
        "run": run.number if run is not None else 1,
        "now": now.isoformat(),
    }


def _last_change(transitions: Sequence[Transition]) -> str:
    for t in reversed(transitions):
        if t.kind is TransitionKind.ORCHESTRATION_STATE:
            return f"orchestration {' -> '.join(s for s in t.path if s)}"
    done = Counter(t.to_state for t in transitions if t.kind is TransitionKind.OPERATION_COMPLETED)
    if done:
        return "operations " + ", ".join(f"{n} {s}" for s, n in sorted(done.items()))
    started = sum(1 for t in transitions if t.kind is TransitionKind.OPERATION_STATE)
    if started:
        return f"{started} operations started"
    if not transitions or transitions[-1].kind is TransitionKind.BASELINE:
        return "tracking started"
    return transitions[-1].kind.value.replace("_", " ")


def _failure_items(ops: Iterable[Operation]) -> list[dict[str, str]]:
    return [
        {"description": op.description, "shoot": op.shoot_name, "operation_id": op.operation_id}
        for op in ops
    ]


def _routine(t: Transition) -> bool:
    """``pending -> in progress``: the card shows it; a thread reply would be noise."""
    return (
        t.kind is TransitionKind.ORCHESTRATION_STATE
        and t.from_state == PENDING
        and t.to_state == IN_PROGRESS
        and not t.via
    )


def decide(
    result: Diff,
    *,
    channel: str | None,
    now: datetime,
    reference: Reference | None,
    run: Run | None = None,
    stuck: Mapping[str, Any] | None = None,
) -> list[Intent]:
    """The notification intents for one orchestration's cycle (empty when nothing changed).

    ``stuck`` is what is stuck (:func:`watcher.core.stuck.view`), shown on the card.

    ``run`` is the run before this cycle (:func:`runs_from` over the recorded history). A
    retry of a failed orchestration gives a ``retried`` thread reply, and its outcome a new
    final summary: a second run in the same thread."""
    snap = result.snapshot
    orch = snap.orchestration
    transitions = result.transitions
    orch_id = snap.orchestration_id
    if not transitions:
        return []
    intents: list[Intent] = []

    def add(kind: Kind, key: str, payload: dict[str, Any]) -> None:
        payload.setdefault("kind", kind)
        payload.setdefault("key", key)
        intents.append(Intent(key, kind, orch_id, priority(kind), payload, channel))

    if any(t.kind is TransitionKind.ORCHESTRATION_NOT_FOUND for t in transitions):
        add(Kind.NOT_FOUND, f"{orch_id}:not_found", {"orchestration": {"id": orch_id}})
        return intents
    assert orch is not None
    this_run = runs_from(transitions, run)
    # Failures a retry superseded no longer count, as in KEB's own operationStats (a retry
    # may also have come and gone between two polls, unseen as a state change).
    counts = counts_standing(snap, snap.state_counts())
    base = summary(orch, counts, now, reference, this_run)
    base["last_change"] = _last_change(transitions)
    cause = _digest(t.key for t in transitions)
    # What still stands: a complete snapshot (the baseline, every state change) knows each
    # runtime's newest operation; a partial one only the operations it loaded.
    standing = (
        standing_failures(snap)
        if snap.complete
        else [op for op in snap.operations.values() if op.state == FAILED]
    )
    standing_groups = failure_groups(_failure_items(standing))
    tally = retries(snap) if snap.complete else None
    if tally is not None:
        base["retried"] = tally.to_payload()

    baseline = any(t.kind is TransitionKind.BASELINE for t in transitions)
    # KEB can end an orchestration while operations still run (docs/keb-concurrency.md
    # §3.4): the card says how many, and what they do later is an after-the-outcome note
    # (watcher.core.afterlife), not a failure digest of a run that has ended.
    ended_earlier = is_terminal_orchestration(orch.state) and not any(
        t.kind is TransitionKind.ORCHESTRATION_STATE for t in transitions
    )
    if is_terminal_orchestration(orch.state):
        base["running_after_outcome"] = sum(
            n for state, n in counts.items() if n > 0 and not is_terminal_operation(state)
        )
    card = dict(base)
    card["stuck"] = dict(stuck) if stuck else None
    if baseline or is_terminal_orchestration(orch.state):
        # Tracking an orchestration that already failed (or ended) shows why on the card.
        card.update(
            failures=standing_groups[:REASONS], more_reasons=max(0, len(standing_groups) - REASONS)
        )
    if baseline:
        add(Kind.TRACKING_STARTED, f"{orch_id}:card", card)
    else:
        add(Kind.PROGRESS, f"{orch_id}:progress:{cause}", card)

    failed = [
        {"description": t.description, "shoot": t.shoot_name, "operation_id": t.operation_id or ""}
        for t in transitions
        if t.kind is TransitionKind.OPERATION_COMPLETED and t.to_state == FAILED
    ]
    ends = any(
        t.kind is TransitionKind.ORCHESTRATION_STATE and is_terminal_orchestration(t.to_state or "")
        for t in transitions
    )
    # When it ends, the final summary lists every failure anyway.
    if failed and not ends and not ended_earlier:
        groups = failure_groups(failed)
        add(
            Kind.FAILURE_DIGEST,
            f"{orch_id}:failures:{cause}",
            {
                **base,
                "new_failures": len(failed),
                "failures": groups[:REASONS],
                "more_reasons": max(0, len(groups) - REASONS),
            },
        )

    # A retry that resolved nothing: KEB went retrying -> succeeded without running any
    # operation again (docs/keb-concurrency.md §3.2); its failures stand. Said as such, never
    # as "retried 0" nor as a retry that ran.
    new_operations = any(
        t.kind in (TransitionKind.OPERATION_RETRY, TransitionKind.OPERATION_ADDED)
        for t in transitions
    )
    for t in transitions:
        if t.kind not in (
            TransitionKind.ORCHESTRATION_STATE,
            TransitionKind.ORCHESTRATION_DESCRIPTION,
        ):
            continue
        unresolved = (
            t.kind is TransitionKind.ORCHESTRATION_STATE
            and t.to_state == SUCCEEDED
            and not new_operations
            and (
                (RETRYING in t.path and IN_PROGRESS not in t.path[1:])
                # Ended between two polls: KEB's ", retrying" (cluster_retry.go) was never
                # replaced by ", retried K operations", so the retry picked nothing up.
                or t.description.endswith(", retrying")
            )
        )
        change = {
            "from": t.from_state,
            "to": t.to_state,
            "via": list(t.via),
            "description": t.description,
        }
        retry = t.kind is TransitionKind.ORCHESTRATION_STATE and t.from_state == FAILED
        if retry and not baseline:
            # The IDs KEB stored for pickup, or the retries it picked up since.
            count = requested_retries(snap) + picked_up(snap)
            if not count and tally is not None:
                count = tally.operations
            add(
                Kind.RETRIED,
                f"{orch_id}:retried:{t.key}",
                {
                    **base,
                    "change": change,
                    "retried_operations": None if unresolved else (count or None),
                    "resolved_nothing": unresolved,
                },
            )
        if t.kind is TransitionKind.ORCHESTRATION_STATE and is_terminal_orchestration(
            t.to_state or ""
        ):
            # Only the failures that still stand: a retried operation that succeeded is not
            # a failure of the outcome (its old row stays failed in KEB's list).
            add(
                Kind.FINISHED,
                f"{orch_id}:finished:{t.key}",
                {
                    **base,
                    "change": change,
                    "failures": standing_groups[:REASONS],
                    "more_reasons": max(0, len(standing_groups) - REASONS),
                    "resolved_nothing": unresolved,
                },
            )
        elif not baseline and not retry and not _routine(t):
            add(Kind.STATE_CHANGED, f"{orch_id}:state:{t.key}", {**base, "change": change})
    return intents


def health_intent(
    kind: Kind, *, since: datetime, now: datetime, error: str, url: str, channel: str | None = None
) -> Intent:
    """The watcher's own alert: KEB unreachable/rejecting since ``since``, or recovered."""
    payload = {
        "kind": kind,
        "keb": {"url": url, "since": since.isoformat(), "error": error},
        "duration_seconds": (now - since).total_seconds(),
        "now": now.isoformat(),
    }
    key = f"keb:{kind}:{since.isoformat()}"
    payload["key"] = key
    return Intent(key, kind, None, priority(kind), payload, channel)
