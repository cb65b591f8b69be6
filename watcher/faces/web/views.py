"""View models of the dashboard: the plain values its templates show.

Built from what :class:`watcher.app.Watcher` returns, per request, on the request's own
connection (:attr:`~watcher.app.Watcher.dashboard`). Every string that came from KEB (states,
descriptions, shoot names, IDs, types, errors) passes through :func:`shown` on its way to a
page; HTML escaping itself is Jinja2's autoescape (:mod:`watcher.notify.pages`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from watcher.app import Watcher
from watcher.app.dashboard import BoardState
from watcher.core.diff import Transition, TransitionKind
from watcher.core.durations import format_duration
from watcher.core.failures import grouped, ranked
from watcher.core.inert import inert
from watcher.core.models import KNOWN_STATES, RETRYING, Operation, finished_count
from watcher.core.states import finished_first
from watcher.core.tracked import Silence, Tracked
from watcher.core.wording import counts_text, transition_text
from watcher.faces.reports import stuck_detail
from watcher.faces.web.fleet_views import selection_rows

#: Failure reasons a row of the overview lists before "+K more".
TOP_REASONS: Final = 3
#: Operations the detail page lists at once; the filter and search narrow them down.
OPERATION_ROWS: Final = 200
#: The newest transitions of any kind the detail page lists.
RECENT: Final = 50
#: A mark beside each state's name, so that state never rests on colour alone.
MARKS: Final[Mapping[str, str]] = {
    "succeeded": "✓",
    "failed": "✗",
    "in progress": "▶",
    "pending": "○",
    "canceling": "⊘",
    "canceled": "⊘",
    "retrying": "↻",
}


def shown(text: object) -> str:
    """KEB text as a page shows it: the ONE place every KEB string goes through.

    Control, escape, bidi and zero-width characters go (:func:`watcher.core.inert.inert`);
    markup needs nothing more, as autoescape makes ``<script>`` text.
    """
    if text is None:
        return ""
    return inert(str(text))


def state_class(state: str | None) -> str:
    """The CSS class of a state: ``s-in-progress``; ``s-other`` for a state we do not know."""
    if state in KNOWN_STATES:
        return "s-" + str(state).replace(" ", "-")
    return "s-other"


def mark(state: str | None) -> str:
    return MARKS.get(state or "", "•")


def ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    seconds = max(0.0, (now - then).total_seconds())
    return f"{format_duration(round(seconds))} ago"


def duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(max(0, round(seconds)))


def landscape(app: Watcher) -> str:
    """The landscape's label: ``keb.name`` when the configuration has one, else KEB's host."""
    name = app.config.keb.name
    return name if name else (urlsplit(app.config.keb.url).hostname or app.config.keb.url)


@dataclass(frozen=True, slots=True)
class Segment:
    """One state's part of a progress bar, in thousandths of its width."""

    state: str
    count: int
    x: int
    width: int
    css: str


def bar(counts: Mapping[str, int]) -> list[Segment]:
    """The progress bar by operation state: finished states first, then the rest."""
    total = sum(counts.values())
    if not total:
        return []
    states = finished_first(s for s, n in counts.items() if n)
    out, x = [], 0
    for state in states:
        width = round(counts[state] * 1000 / total)
        out.append(Segment(shown(state), counts[state], x, width, state_class(state)))
        x += width
    return out


def _counts_label(counts: Mapping[str, int]) -> str:
    return shown(counts_text(counts)) if counts else "no operations"


def pulse(
    now: datetime, revision: str, last: datetime | None, stale_after: float
) -> dict[str, Any]:
    """What ``/api/board`` answers every second: the data's revision, the last poll, and
    whether the service is late."""
    return {
        "revision": revision,
        "stale": last is not None and (now - last).total_seconds() > stale_after,
        "last_poll": ago(now, last) if last else "no poll yet",
        "last_poll_at": last.isoformat() if last else "",
    }


def board(app: Watcher, state: BoardState, stale_after: float) -> dict[str, Any]:
    """The top of every page: landscape, KEB health, outbox depth, last poll, staleness."""
    now = app.clock()
    return {
        **pulse(now, state.revision, state.last_cycle_at, stale_after),
        "landscape": shown(landscape(app)),
        "keb_ok": state.unhealthy_since is None,
        "keb_since": ago(now, state.unhealthy_since),
        "keb_error": shown(state.keb_error),
        "undelivered": state.undelivered,
        "given_up": state.given_up,
        "stale_after": duration(stale_after),
    }


def silence_text(silence: Silence | None) -> str:
    """``silenced until 2024-05-14T10:00:00+00:00 by ana: quota issue``, or ``""``."""
    if silence is None:
        return ""
    by = f" by {silence.by}" if silence.by else ""
    why = f": {silence.reason}" if silence.reason else ""
    return shown(f"silenced until {silence.until.isoformat(timespec='seconds')}{by}{why}")


def _row(
    app: Watcher,
    item: Tracked,
    now: datetime,
    numbers: Mapping[str, Any] | None = None,
    silence: Silence | None = None,
) -> dict[str, Any]:
    """One orchestration's row; ``numbers`` (its :meth:`progress`) when already read."""
    orch_id = item.orchestration_id
    if numbers is None:
        numbers = app.dashboard.progress(orch_id) or {}
    reasons = ranked(app.dashboard.failure_reasons(orch_id)) if item.counts.get("failed") else []
    counts = dict(item.counts)
    state = "not found" if item.not_found else (item.state or "")
    return {
        "id": shown(orch_id),
        "type": shown(item.type or "-"),
        "state": shown(state) or "waiting for baseline",
        "state_class": state_class(item.state),
        "mark": mark(item.state),
        "description": shown(item.description),
        "bar": bar(counts),
        "bar_label": _counts_label(counts),
        "done": finished_count(counts),
        "total": sum(counts.values()),
        "failed": counts.get("failed", 0),
        "reasons": [(shown(text), n) for text, n in reasons[:TOP_REASONS]],
        "more_reasons": max(0, len(reasons) - TOP_REASONS),
        "elapsed": duration(numbers.get("elapsed_seconds")),
        "eta": duration(numbers.get("eta_seconds")),
        "created": item.created_at.isoformat() if item.created_at else "",
        "tracked": item.tracked_at.isoformat(),
        "last_success": ago(now, item.last_success_at),
        "last_error": shown(item.last_error),
        "finished": item.finished_at is not None,
        "silence": silence_text(silence),
        "stuck": shown(stuck_detail(item.stuck)) if item.stuck else "",
    }


def overview(app: Watcher, state_filter: str, stale_after: float) -> dict[str, Any]:
    """``/``: every tracked orchestration, newest first, optionally one state only."""
    now = app.clock()
    items = app.tracked()
    present = sorted({shown(t.state) for t in items if t.state} - set(KNOWN_STATES))
    silences = app.silences()
    rows = [
        _row(app, t, now, silence=silences.get(t.orchestration_id))
        for t in items
        if not state_filter or t.state == state_filter
    ]
    rows.sort(key=lambda r: (r["created"] or r["tracked"], r["tracked"]), reverse=True)
    return {
        "board": board(app, app.dashboard.board_state(), stale_after),
        "rows": rows,
        "tracked": len(items),
        "states": [*KNOWN_STATES, *present],
        "state_filter": shown(state_filter),
        "selections": selection_rows(app, now),
    }


def _runs(transitions: Iterable[Transition]) -> list[dict[str, Any]]:
    """The orchestration-level timeline, each entry with its run (a retry starts a new one)."""
    out, run = [], 1
    for t in transitions:
        if t.kind is TransitionKind.ORCHESTRATION_STATE and t.to_state == RETRYING:
            run += 1
        out.append({"at": t.at.isoformat(timespec="seconds"), "run": run, **_said(t)})
    return out


def _said(t: Transition) -> dict[str, Any]:
    return {
        "text": shown(transition_text(t)),
        "kind": t.kind.value.replace("_", " "),
        "state_class": state_class(t.to_state),
        "mark": mark(t.to_state),
    }


def _failures(app: Watcher, orch_id: str) -> list[dict[str, Any]]:
    """Failed operations grouped by description, most frequent first, every shoot listed."""
    return [
        {
            "reason": shown(reason),
            "count": len(ops),
            "ops": [
                {
                    "shoot": shown(op.shoot_name or "-"),
                    "runtime": shown(op.runtime_id),
                    "operation": shown(op.operation_id),
                }
                for op in ops
            ],
        }
        for reason, ops in grouped(app.dashboard.failed_operations(orch_id), _description)
    ]


def _description(op: Operation) -> str:
    return op.description


def detail(
    app: Watcher, item: Tracked, states: list[str], search: str, stale_after: float
) -> dict[str, Any]:
    """``/orchestrations/{id}``: the card in full, timeline, operations, failures, commands."""
    now = app.clock()
    orch_id = item.orchestration_id
    reads = app.dashboard
    orch = reads.orchestration(orch_id)
    timeline, recent = reads.timeline(orch_id, RECENT)
    page = reads.find_operations(orch_id, states=states, search=search, limit=OPERATION_ROWS)
    numbers = reads.progress(orch_id) or {}
    silence = app.silences().get(orch_id)
    rate = numbers.get("throughput_per_hour")
    facts = [
        ("Landscape", landscape(app)),
        ("Type", item.type or "-"),
        ("Description", item.description or "-"),
        ("Created", orch.created_at.isoformat() if orch and orch.created_at else "-"),
        ("Updated", orch.updated_at.isoformat() if orch and orch.updated_at else "-"),
        ("Kubernetes", (orch.kubernetes_version if orch else "") or "-"),
        ("Strategy", (orch.schedule if orch else "") or "-"),
        ("Dry run", "yes" if orch and orch.dry_run else "no"),
        ("Elapsed", duration(numbers.get("elapsed_seconds"))),
        ("Throughput", f"{rate:.1f} operations/hour" if rate else "-"),
        ("ETA", duration(numbers.get("eta_seconds"))),
        ("Tracked since", item.tracked_at.isoformat(timespec="seconds")),
        ("Last successful poll", ago(now, item.last_success_at)),
        ("Last poll error", item.last_error or "none"),
        ("Stuck", stuck_detail(item.stuck, limit=10) if item.stuck else "nothing"),
        ("Slack channel", item.channel or "(configured default)"),
        ("Silence", silence_text(silence) or "none"),
    ]
    return {
        "board": board(app, app.dashboard.board_state(), stale_after),
        "row": _row(app, item, now, numbers, silence),
        "facts": [(label, shown(value)) for label, value in facts],
        "timeline": _runs(timeline),
        "recent": [{"at": t.at.isoformat(timespec="seconds"), **_said(t)} for t in recent],
        "operations": [
            {
                "shoot": shown(op.shoot_name or "-"),
                "runtime": shown(op.runtime_id),
                "operation": shown(op.operation_id),
                "state": shown(op.state),
                "state_class": state_class(op.state),
                "mark": mark(op.state),
                "plan": shown(op.plan_name),
                "description": shown(op.description),
            }
            for op in page.operations
        ],
        "matching": page.matching,
        "limit": OPERATION_ROWS,
        "states": list(KNOWN_STATES),
        "state_filter": [shown(s) for s in states],
        "search": shown(search),
        "failures": _failures(app, orch_id),
        "commands": [
            f"kcp orchestration {shown(orch_id)} operations --state failed",
            f"kcp orchestration retry {shown(orch_id)}",
        ],
    }
