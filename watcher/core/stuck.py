"""Pure decisions: what is stuck, and when that is news (PRODUCT.md "Stuck is news too").

KEB operations carry no timestamps (docs/keb-api.md §2.9), so "since when" is what the watcher
saw: the recorded transition into the current state, else the baseline (never KEB's
``createdAt``: another clock). An operation seen ``in progress`` for ``poll.stuck_after`` or
longer is stuck; so is an orchestration seen ``canceling`` or ``retrying`` that long (a cancel
can last forever, docs/keb-concurrency.md §4) or still ``pending`` that long (up to three
orchestrations run at once per KEB pod; later ones wait with no operations, §0).

News, once per change of what is stuck (:func:`news`): a ``stuck`` alert when something became
stuck that the last evaluation did not hold (naming everything stuck, grouped like failures),
nothing while the same things stay stuck or some of them move on (the card shows the count),
and ``unstuck`` when nothing is stuck any more. Nothing here reads a clock: ``now`` comes in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from watcher.core.intents import Intent
from watcher.core.kinds import Kind, priority
from watcher.core.models import CANCELING, IN_PROGRESS, PENDING, RETRYING

#: Orchestration states that are stuck when they last ``poll.stuck_after``.
STALLING_STATES: Final = frozenset({PENDING, CANCELING, RETRYING})
EXAMPLES: Final = 3
REASONS: Final = 10

News = Literal["stuck", "unstuck"]


@dataclass(frozen=True, slots=True)
class Stalled:
    """One thing seen in the same state since ``since``: an operation (``operation_id``
    set) or the orchestration itself (``operation_id`` ``None``)."""

    state: str
    since: datetime
    operation_id: str | None = None
    shoot: str = ""
    description: str = ""
    #: A selection's runtimes (fleet watch) name their subaccount and instance too, and
    #: what kind of operation it is (the ``/runtimes`` list it came in).
    subaccount_id: str = ""
    instance_id: str = ""
    kind: str = ""

    @property
    def key(self) -> str:
        return f"operation:{self.operation_id}" if self.operation_id else "orchestration"

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since.isoformat(),
            "operation_id": self.operation_id,
            "shoot": self.shoot,
            "description": self.description,
            "subaccount_id": self.subaccount_id,
            "instance_id": self.instance_id,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stalled:
        return cls(
            state=str(data["state"]),
            since=datetime.fromisoformat(str(data["since"])),
            operation_id=data.get("operation_id") or None,
            shoot=str(data.get("shoot") or ""),
            description=str(data.get("description") or ""),
            subaccount_id=str(data.get("subaccount_id") or ""),
            instance_id=str(data.get("instance_id") or ""),
            kind=str(data.get("kind") or ""),
        )


def stalled(candidates: Iterable[Stalled], now: datetime, after: float) -> list[Stalled]:
    """The candidates seen unchanged for ``after`` seconds or longer, oldest first (the
    orchestration before its operations at equal times); none when ``after`` is 0 (off).

    >>> from datetime import UTC, timedelta
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> old = Stalled("in progress", now - timedelta(hours=3), "op-1")
    >>> new = Stalled("in progress", now - timedelta(minutes=5), "op-2")
    >>> [s.operation_id for s in stalled([new, old], now, 7200)]
    ['op-1']
    """
    if after <= 0:
        return []
    found = [c for c in candidates if (now - c.since).total_seconds() >= after]
    return sorted(found, key=lambda s: (s.since, s.operation_id is not None, s.key))


def news(previous: Sequence[Stalled], current: Sequence[Stalled]) -> News | None:
    """``stuck`` when something is stuck that ``previous`` did not hold (or held since another
    time: it moved and got stuck again), ``unstuck`` when nothing is stuck any more after
    something was, else ``None``.

    >>> from datetime import UTC
    >>> a = Stalled("in progress", datetime(2026, 1, 1, tzinfo=UTC), "op-1")
    >>> news([], [a]), news([a], [a]), news([a], [])
    ('stuck', None, 'unstuck')
    """
    before = {s.key: s.since for s in previous}
    if any(before.get(s.key) != s.since for s in current):
        return "stuck"
    if previous and not current:
        return "unstuck"
    return None


def view(items: Sequence[Stalled], now: datetime, after: float) -> dict[str, Any] | None:
    """What the card and the alerts show: counts, the oldest ``since``, the orchestration's
    own stuck state, and the stuck operations grouped by description like failures (most
    first, a few examples each, "+K more"). ``None`` when nothing is stuck."""
    if not items:
        return None
    oldest = min(s.since for s in items)
    orchestration = next((s for s in items if s.operation_id is None), None)
    operations = [s for s in items if s.operation_id is not None]
    groups: dict[str, list[Stalled]] = {}
    for s in operations:
        groups.setdefault(s.description or "(no description)", []).append(s)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return {
        "count": len(items),
        "operations": len(operations),
        "since": oldest.isoformat(),
        "for_seconds": max(0.0, (now - oldest).total_seconds()),
        "after_seconds": after,
        "orchestration": (
            {"state": orchestration.state, "since": orchestration.since.isoformat()}
            if orchestration is not None
            else None
        ),
        "groups": [
            {
                "reason": reason,
                "state": IN_PROGRESS,
                "count": len(members),
                "examples": [
                    {
                        "shoot": s.shoot,
                        "operation_id": s.operation_id or "",
                        "since": s.since.isoformat(),
                        "subaccount_id": s.subaccount_id,
                        "instance_id": s.instance_id,
                        "kind": s.kind,
                    }
                    for s in members[:EXAMPLES]
                ],
                "more": max(0, len(members) - EXAMPLES),
            }
            for reason, members in ordered[:REASONS]
        ],
        "more_reasons": max(0, len(ordered) - REASONS),
    }


def _digest(items: Iterable[Stalled]) -> str:
    parts = sorted(f"{s.key}@{s.since.isoformat()}" for s in items)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def stuck_intents(
    orch_id: str,
    *,
    previous: Sequence[Stalled],
    current: Sequence[Stalled],
    base: Mapping[str, Any],
    card: Mapping[str, Any] | None,
    channel: str | None,
    now: datetime,
    after: float,
    quiet_unstuck: bool = False,
) -> list[Intent]:
    """The notifications for a change of what is stuck: the alert or the all-clear (thread
    replies, :func:`news`) and a card update showing what is stuck now. ``base`` carries what
    every message about the orchestration shows (:func:`watcher.core.policy.summary`);
    ``card`` is the card's last payload (``None``: no card to update). Keys are derived from
    what is stuck and since when, so the same news is never enqueued twice.
    ``quiet_unstuck``: the all-clear goes without a reply (the orchestration's final summary,
    enqueued just before, must stay its run's last reply)."""
    if [(s.key, s.since) for s in previous] == [(s.key, s.since) for s in current]:
        return []
    shown = view(current, now, after)
    intents: list[Intent] = []
    said = news(previous, current)
    if said == "stuck":
        key = f"{orch_id}:stuck:{_digest(current)}"
        payload = {**base, "kind": Kind.STUCK, "key": key, "stuck": shown}
        intents.append(Intent(key, Kind.STUCK, orch_id, priority(Kind.STUCK), payload, channel))
    elif said == "unstuck" and not quiet_unstuck:
        key = f"{orch_id}:unstuck:{_digest(previous)}"
        moved = view(previous, now, after)
        payload = {**base, "kind": Kind.UNSTUCK, "key": key, "stuck": None, "moved": moved}
        intents.append(Intent(key, Kind.UNSTUCK, orch_id, priority(Kind.UNSTUCK), payload, channel))
    if card is not None:
        key = f"{orch_id}:progress:stuck:{_digest(current)}:{_digest(previous)}"
        payload = {
            **card,
            "kind": Kind.PROGRESS,
            "key": key,
            "stuck": shown,
            "now": now.isoformat(),
        }
        intents.append(
            Intent(key, Kind.PROGRESS, orch_id, priority(Kind.PROGRESS), payload, channel)
        )
    return intents
