"""Pure: a selection's transitions -> notification intents, through the same outbox.

A selection is followed like an orchestration (:class:`~watcher.core.followed.Followed`): one
living card (kinds ``tracking_started`` for the baseline, then ``progress``; the sender keeps
it current with ``chat.update`` and supersedes stale updates) and failure digests in its
thread (kind ``failure_digest``, folded by the digest clock like an orchestration's). Their
outbox rows carry ``fleet:<name>`` where an orchestration's carry its ID, their payloads
``fleet``; the message metadata names the selection under ``fleet``.

Successes are counted on the card, never one message each; a baseline announces nothing but
the card.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from watcher.core.failures import ranked
from watcher.core.fleet import FleetOperation, is_ended
from watcher.core.fleet_diff import FleetChange, FleetTransition, RuntimeRecord, failures
from watcher.core.followed import Followed, SourceKind, failure_digest
from watcher.core.intents import Intent
from watcher.core.kinds import Kind, priority
from watcher.core.models import FAILED


def outbox_id(name: str) -> str:
    """What a selection's outbox rows and card carry where an orchestration's carry its ID."""
    return f"fleet:{name}"


def fleet_card(
    name: str, records: Mapping[str, RuntimeRecord], transitions: Sequence[FleetTransition]
) -> dict[str, Any]:
    """The card's payload: runtimes, operations in progress by kind, standing failures by
    reason, and what this cycle saw end."""
    in_progress: Counter[str] = Counter()
    failed: list[tuple[str, int]] = []
    for record in records.values():
        for op in record.operations.values():
            if not is_ended(op.state):
                in_progress[op.kind] += 1
        newest = _newest(record)
        if newest is not None and newest.state == FAILED:
            failed.append((newest.reason or newest.description, 1))
    ended: Counter[str] = Counter()
    for t in transitions:
        if t.change is FleetChange.OPERATION_ENDED:
            ended[t.to_state or "unknown"] += 1
        elif t.change in (
            FleetChange.SUSPENDED,
            FleetChange.UNSUSPENDED,
            FleetChange.DEPROVISIONED,
            FleetChange.RUNTIME_APPEARED,
        ):
            ended[t.change.value] += 1
    return {
        "fleet": name,
        "followed": Followed(SourceKind.SELECTION, name).metadata(),
        "runtimes": len(records),
        "in_progress": dict(sorted(in_progress.items())),
        "failures": [{"reason": reason, "count": n} for reason, n in ranked(failed)],
        "this_cycle": dict(sorted(ended.items())),
    }


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
) -> list[Intent]:
    """The card (on the baseline, and whenever something was recorded) and one failure
    digest for the operations that ended ``failed`` in this cycle."""
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
                fleet_card(name, records, transitions) | {"at": now.isoformat()},
                channel,
            )
        )
    return intents


def _cause(keys: Any) -> str:
    """A short digest of the transition keys that caused an intent: the same cause, the same
    key, so an intent is enqueued once however often a cycle is repeated."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]
