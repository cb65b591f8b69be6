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

from watcher.core.diff import Transition, TransitionKind
from watcher.core.inert import inert
from watcher.core.models import KNOWN_STATES, Orchestration
from watcher.store.database import Tracked

_STATE_ORDER = {state: i for i, state in enumerate(KNOWN_STATES)}


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def counts_text(counts: Mapping[str, int]) -> str:
    """``120: 13 succeeded, 2 failed, 5 in progress, 100 pending`` (unknown states kept)."""
    total = sum(counts.values())
    parts = [
        f"{n} {state or '(no state)'}"
        for state, n in sorted(counts.items(), key=lambda kv: (_STATE_ORDER.get(kv[0], 99), kv[0]))
        if n
    ]
    return inert(f"{total}: " + ", ".join(parts)) if parts else "0"


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


def tracked_json(item: Tracked) -> dict[str, Any]:
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
        "notFound": item.not_found,
        "lastSuccessAt": item.last_success_at.isoformat() if item.last_success_at else None,
        "lastError": item.last_error,
    }


def tracked_lines(items: Sequence[Tracked]) -> list[str]:
    if not items:
        return ["nothing is tracked; start with: watcher track ORCHESTRATION_ID"]
    lines = [f"{'ORCHESTRATION':<38}{'STATE':<13}{'LAST POLL':<25}OPERATIONS"]
    for item in items:
        state = "not found" if item.not_found else (item.state or "(no baseline yet)")
        if item.finished_at is not None:
            state += " *"
        line = f"{item.orchestration_id:<38}{state:<13}{when(item.last_success_at):<25}"
        line += counts_text(item.counts) if item.state else "-"
        if item.last_error:
            line += f"  [last poll failed: {item.last_error}]"
        lines.append(inert(line))
    if any(item.finished_at for item in items):
        lines.append("* finished: no longer polled (history kept)")
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
        if t.description and t.kind is TransitionKind.OPERATION_COMPLETED:
            what += f' "{t.description}"'
    return inert(f"{when(t.at)}  {what}")


def history_lines(transitions: Iterable[Transition]) -> list[str]:
    lines = [transition_line(t) for t in transitions]
    return lines or ["no history recorded yet (poll after tracking takes a baseline)"]
