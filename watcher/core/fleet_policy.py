"""Pure: a selection's transitions -> notification intents, through the same outbox.

A selection is followed like an orchestration (:class:`~watcher.core.followed.Followed`): one
living card (kinds ``tracking_started`` for the baseline, then ``progress``; the sender keeps
it current with ``chat.update`` and supersedes stale updates) and failure digests in its
thread (kind ``failure_digest``, folded by the digest clock like an orchestration's). Their
outbox rows carry ``fleet:<name>`` where an orchestration's carry its ID, their payloads
``fleet``; the message metadata names the selection under ``fleet``.

Successes are counted on the card, never one message each; a baseline announces nothing but
the card. What is stuck (an operation open for the selection's threshold) is decided by
:mod:`watcher.core.stuck`, as for orchestrations: :func:`stuck_candidates` gives it the open
operations and since when the watcher saw each enter its state.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from watcher.core.failures import ranked
from watcher.core.fleet import FleetOperation, is_ended
from watcher.core.fleet_diff import FleetChange, FleetTransition, RuntimeRecord, failures
from watcher.core.followed import Followed, SourceKind, failure_digest
from watcher.core.intents import Intent
from watcher.core.kinds import Kind, priority
from watcher.core.models import FAILED
from watcher.core.stuck import Stalled


def outbox_id(name: str) -> str:
    """What a selection's outbox rows and card carry where an orchestration's carry its ID."""
    return f"fleet:{name}"


def stuck_candidates(
    records: Mapping[str, RuntimeRecord],
    entered: Mapping[str, datetime],
    baseline: datetime | None,
) -> list[Stalled]:
    """Every open operation of the selection as a candidate for :func:`watcher.core.stuck.stalled`:
    since when the watcher recorded it entering its state (``entered`` by operation ID), else
    since the baseline (KEB's ``createdAt`` is another clock, never compared with ours)."""
    out: list[Stalled] = []
    for record in records.values():
        for op in record.open_operations():
            since = entered.get(op.operation_id) or baseline
            if since is None:
                continue
            out.append(
                Stalled(
                    op.state,
                    since,
                    op.operation_id,
                    record.shoot,
                    op.description,
                    subaccount_id=record.subaccount_id,
                    instance_id=record.instance_id,
                    kind=op.kind,
                )
            )
    return out


def fleet_card(
    name: str,
    records: Mapping[str, RuntimeRecord],
    transitions: Sequence[FleetTransition],
    stuck: Mapping[str, Any] | None = None,
    recent: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The card's payload: runtimes, operations in progress by kind, standing failures by
    reason, what this cycle saw end, what ended in the last 24 hours (``recent``: what the
    store recorded before this cycle, by :func:`ended_counts`; this cycle's are added), and
    what is stuck (:func:`watcher.core.stuck.view`)."""
    in_progress: Counter[str] = Counter()
    failed: list[tuple[str, int]] = []
    for record in records.values():
        for op in record.operations.values():
            if not is_ended(op.state):
                in_progress[op.kind] += 1
        newest = _newest(record)
        if newest is not None and newest.state == FAILED:
            failed.append((newest.reason or newest.description, 1))
    ended = ended_counts((t.change, t.to_state) for t in transitions)
    last_day = ended + Counter(recent or {})
    return {
        "fleet": name,
        "followed": Followed(SourceKind.SELECTION, name).metadata(),
        "runtimes": len(records),
        "in_progress": dict(sorted(in_progress.items())),
        "failures": [{"reason": reason, "count": n} for reason, n in ranked(failed)],
        "this_cycle": dict(sorted(ended.items())),
        "last_24h": dict(sorted(last_day.items())),
        "stuck": dict(stuck) if stuck else None,
    }


#: Changes the card counts as finished, besides operations ending (by their outcome).
COUNTED_CHANGES: Final = frozenset(
    {
        FleetChange.SUSPENDED,
        FleetChange.UNSUSPENDED,
        FleetChange.DEPROVISIONED,
        FleetChange.RUNTIME_APPEARED,
    }
)


def ended_counts(changes: Iterable[tuple[str, str]]) -> Counter[str]:
    """What ended, counted the way the card shows it: an operation by its outcome
    (``unknown`` when KEB no longer shows it), a suspension, unsuspension, deprovisioning or
    new runtime by its change. ``changes``: ``(change, to_state)`` pairs.

    >>> dict(ended_counts([("operation_ended", "failed"), ("suspended", "succeeded"),
    ...                    ("operation_changed", "in progress")]))
    {'failed': 1, 'suspended': 1}
    """
    out: Counter[str] = Counter()
    for change, to_state in changes:
        if change == FleetChange.OPERATION_ENDED:
            out[to_state or "unknown"] += 1
        elif change in COUNTED_CHANGES:
            out[str(change)] += 1
    return out


def _newest(record: RuntimeRecord) -> FleetOperation | None:
    """The newest operation by KEB's ``createdAt`` (one clock: compared only with each other)."""
    dated = [(op.created_at, op) for op in record.operations.values() if op.created_at]
    return max(dated, key=lambda pair: pair[0])[1] if dated else None


def fleet_intents(
    name: str,
    channel: str | None,
    records: Mapping[str, RuntimeRecord],
    transitions: Sequence[FleetTransition],
    *,
    baseline: bool,
    now: datetime,
    stuck: Mapping[str, Any] | None = None,
    recent: Mapping[str, int] | None = None,
) -> list[Intent]:
    """The card (on the baseline, and whenever something was recorded; ``stuck`` is what it
    shows as stuck) and one failure digest for the operations that ended ``failed`` in this
    cycle."""
    key_of = outbox_id(name)
    intents: list[Intent] = []
    failed = failures(transitions)
    if failed:
        digest = {
            "fleet": name,
            "new_failures": len(failed),
            "failures": failure_digest(failed),
            "more_reasons": 0,
        }
        intents.append(
            Intent(
                f"{key_of}:digest:{_cause(t.key for t in transitions)}",
                Kind.FAILURE_DIGEST,
                key_of,
                priority(Kind.FAILURE_DIGEST),
                digest,
                channel,
            )
        )
    if baseline or transitions:
        kind = Kind.TRACKING_STARTED if baseline else Kind.PROGRESS
        cause = "baseline" if baseline else _cause(t.key for t in transitions)
        intents.append(
            Intent(
                f"{key_of}:{kind}:{cause}",
                kind,
                key_of,
                priority(kind),
                fleet_card(name, records, transitions, stuck, recent) | {"at": now.isoformat()},
                channel,
            )
        )
    return intents


def _cause(keys: Any) -> str:
    """A short digest of the transition keys that caused an intent: the same cause, the same
    key, so an intent is enqueued once however often a cycle is repeated."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]
