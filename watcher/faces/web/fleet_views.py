"""The dashboard's view of the selections of runtimes (fleet watch): one row each on the
overview, with what its Slack card shows (runtimes, operations in progress by type, failures
by reason, what is stuck) and how its last poll went. Every KEB text is made inert here (as
:func:`watcher.faces.web.views.shown` does) and escaped by the templates' autoescape."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from watcher.app import Watcher
from watcher.core.durations import format_duration
from watcher.core.fleet_policy import fleet_card
from watcher.core.inert import inert
from watcher.faces.reports import stuck_detail

#: Failure reasons shown per selection (then "+K more reasons").
REASONS = 3


def selection_rows(app: Watcher, now: datetime) -> list[dict[str, Any]]:
    """One row per followed selection, in the order they were added (none: no database yet
    or nothing followed)."""
    if not app.has_database():
        return []
    rows = []
    for tracked in app.fleet.selections():
        view = app.fleet.show(tracked.name)
        card = fleet_card(tracked.name, view.records, [])
        failures = card["failures"]
        rows.append(
            {
                "name": inert(tracked.name),
                "runtimes": card["runtimes"],
                "in_progress": sorted(card["in_progress"].items()),
                "in_progress_total": sum(card["in_progress"].values()),
                "reasons": [(inert(f["reason"]), f["count"]) for f in failures[:REASONS]],
                "more_reasons": max(0, len(failures) - REASONS),
                "failed": sum(f["count"] for f in failures),
                "stuck": inert(stuck_detail(view.stuck)) if view.stuck else "",
                "stuck_count": len(view.stuck),
                "last_success": _ago(now, tracked.last_success_at),
                "last_error": inert(tracked.last_error or ""),
            }
        )
    return rows


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    return f"{format_duration(round(max(0.0, (now - then).total_seconds())))} ago"
