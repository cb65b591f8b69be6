"""Plain-text and JSON renderings of orchestrations, tracked lists and history.

Pure functions from values to strings or JSON-ready dicts; the CLI only prints them. The JSON
shapes are documented in the README and are part of the product contract. Every text line
passes :func:`watcher.core.inert.inert` (KEB text is data: no escape or control characters
reach a terminal); JSON is printed with ``ensure_ascii``, which escapes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from watcher.clock import utcnow
from watcher.core.diff import Transition
from watcher.core.inert import inert
from watcher.core.models import Orchestration
from watcher.core.stuck import Stalled
from watcher.core.tracked import Silence, Tracked
from watcher.core.wording import counts_text, transition_text
from watcher.faces.tables import Column, fit


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def stats_text(stats: Mapping[str, int] | None) -> str:
    """KEB's ``operationStats``; ``failed`` counts runtimes, not operations."""
    if stats is None:
        return "(KEB sent no operationStats)"
    return counts_text(stats)


def orchestration_lines(orch: Orchestration) -> list[str]:
    strategy = [orch.schedule or "no schedule"]
    if orch.uses_maintenance_window:
        strategy.append("maintenance windows")
    if orch.workers:
        strategy.append(f"{orch.workers} workers")
    rows = [
        ("Orchestration", orch.orchestration_id),
        ("Type", orch.type or "-"),
        ("State", orch.state or "-"),
        ("Description", orch.description or "-"),
        ("Created", when(orch.created_at)),
        ("Updated", when(orch.updated_at)),
        ("Strategy", ", ".join(strategy)),
        ("Kubernetes", orch.kubernetes_version or "-"),
        ("Dry run", "yes" if orch.dry_run else "no"),
        ("Operations", stats_text(orch.operation_stats)),
    ]
    return [inert(f"{label:<14}{value}") for label, value in rows]


def tracked_json(
    item: Tracked, retry_window: float = 0.0, silence: Silence | None = None
) -> dict[str, Any]:
    until = item.retries_watched_until(retry_window)
    return {
        "orchestrationID": item.orchestration_id,
        "state": item.state,
        "description": item.description,
        "type": item.type,
        "operations": item.operation_count,
        "counts": dict(item.counts),
        "channel": item.channel,
        "trackedAt": item.tracked_at.isoformat(),
        "finished": item.finished_at is not None,
        "watchingForRetriesUntil": until.isoformat() if until else None,
        "notFound": item.not_found,
        "lastSuccessAt": item.last_success_at.isoformat() if item.last_success_at else None,
        "createdAt": item.created_at.isoformat() if item.created_at else None,
        "lastError": item.last_error,
        "silence": silence.to_json() if silence is not None else None,
        "stuck": stuck_json(item.stuck),
    }


def stuck_json(items: Sequence[Stalled]) -> dict[str, Any] | None:
    """What is stuck (``poll.stuck_after``): ``None``, or the count, the oldest ``since`` and
    each item (``operationId`` ``null`` for the orchestration itself)."""
    if not items:
        return None
    return {
        "count": len(items),
        "since": min(s.since for s in items).isoformat(),
        "items": [
            {
                "operationId": s.operation_id,
                "state": s.state,
                "since": s.since.isoformat(),
                "shootName": s.shoot or None,
                "description": s.description,
            }
            for s in items
        ],
    }


def stuck_detail(items: Sequence[Stalled], limit: int = 3) -> str:
    """``1 stuck: c-0000052 in progress since TIME`` (at most ``limit`` named, then
    "+K more"), or ``nothing stuck any more``."""
    if not items:
        return "nothing stuck any more"
    named = [
        f"{s.shoot or s.operation_id} {s.state} since {when(s.since)}"
        if s.operation_id
        else f"orchestration {s.state} since {when(s.since)}"
        for s in items[:limit]
    ]
    more = f", +{len(items) - limit} more" if len(items) > limit else ""
    return inert(f"{len(items)} stuck: {', '.join(named)}{more}")


def stuck_text(items: Sequence[Stalled]) -> str:
    """``[2 stuck since 2026-...]``, or '' when nothing is."""
    if not items:
        return ""
    return f"[{len(items)} stuck since {when(min(s.since for s in items))}]"


def age_text(seconds: float) -> str:
    """The two largest units, as ``kubectl get`` shows AGE.

    >>> age_text(42), age_text(754), age_text(11_520), age_text(200_000)
    ('42s', '12m34s', '3h12m', '2d7h')
    """
    s = max(int(seconds), 0)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{s}s" if s else f"{minutes}m"
    return f"{s}s"


def tracked_lines(
    items: Sequence[Tracked],
    now: datetime | None = None,
    retry_window: float = 0.0,
    width: int | None = None,
    known: Iterable[str] = (),
    silences: Mapping[str, Silence] | None = None,
) -> list[str]:
    """The ``list`` table: one row per orchestration, fitted to ``width``
    (:func:`watcher.faces.tables.fit`: IDs shortened to prefixes unique among ``known``,
    LAST POLL as an age, then LAST POLL and AGE dropped; OPERATIONS is cut last). AGE is the
    time since KEB created the orchestration (``-`` before a baseline); LAST POLL is the last
    successful check (a failed orchestration waiting for a retry is checked too, and says
    until when)."""
    if not items:
        return ["nothing is tracked; start with: watcher track ORCHESTRATION_ID"]
    states, ages, polls, ago, operations = [], [], [], [], []
    for item in items:
        state = "not found" if item.not_found else (item.state or "(no baseline yet)")
        until = item.retries_watched_until(retry_window)
        if until is not None and until <= (now or utcnow()):
            until = None  # the retry window is over: finished like the others
        if item.finished_at is not None and until is None:
            state += " *"
        if silences and item.orchestration_id in silences:
            state += " ~"
        states.append(state)
        age = "-"
        if now is not None and item.created_at is not None:
            age = age_text((now - item.created_at).total_seconds())
        ages.append(age)
        polls.append(when(item.last_success_at))
        last = item.last_success_at
        ago.append(f"{age_text((now - last).total_seconds())} ago" if now and last else "-")
        ops = counts_text(item.counts) if item.state else "-"
        if until is not None:
            ops += f"  [failed, watching for retries until {when(until)}]"
        if item.stuck:
            ops += f"  {stuck_text(item.stuck)}"
        silence = (silences or {}).get(item.orchestration_id)
        if silence is not None:
            by = f" by {silence.by}" if silence.by else ""
            why = f": {silence.reason}" if silence.reason else ""
            ops += f"  [silenced until {when(silence.until)}{by}{why}]"
        if item.last_error:
            ops += f"  [last poll failed: {item.last_error}]"
        operations.append(ops)
    table = [
        Column("ORCHESTRATION", [i.orchestration_id for i in items], ids=True, short="ID"),
        Column("STATE", states),
        Column("AGE", ages, drop=2),
        Column("LAST POLL", polls, drop=3, compact=ago),
        Column("OPERATIONS", operations),
    ]
    lines = fit(table, width, known)
    if any(item.finished_at for item in items):
        lines.append("* finished: no longer polled (history kept)")
    if silences and any(item.orchestration_id in silences for item in items):
        lines.append("~ silenced: digests and replies held back (`watcher unsilence ID`)")
    return lines


def transition_json(t: Transition) -> dict[str, Any]:
    return {
        "at": t.at.isoformat(),
        "kind": t.kind.value,
        "orchestrationID": t.orchestration_id,
        "operationID": t.operation_id,
        "runtimeID": t.runtime_id or None,
        "shootName": t.shoot_name or None,
        "from": t.from_state,
        "to": t.to_state,
        "via": list(t.via),
        "description": t.description,
        "detail": dict(t.detail),
        "key": t.key,
    }


def transition_line(t: Transition) -> str:
    """One recorded transition as ``history`` prints it: the time, then what happened."""
    return f"{when(t.at)}  {transition_text(t)}"


def history_lines(transitions: Iterable[Transition]) -> list[str]:
    lines = [transition_line(t) for t in transitions]
    return lines or ["no history recorded yet (poll after tracking takes a baseline)"]
