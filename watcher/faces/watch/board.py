"""The live view of ``watcher watch`` for several orchestrations: one row each, plus totals.

Made for 80 columns: the ID column shows the first 8 characters (the unique prefix every
command accepts), a state is never cut (its column is as wide as the longest state shown),
and what does not fit in the last column wraps instead of being cut. Rendering is pure
(:func:`render_board` takes the rows and the time); :class:`WatchBoard` is the
:class:`watcher.core.watching.Sink` that keeps them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from watcher.core.durations import format_duration
from watcher.core.models import FAILED, is_terminal_operation
from watcher.core.watching import Progress, Reconnect, Summary, done
from watcher.core.wording import plural
from watcher.faces.watch.live import STATE_STYLES, seconds_text

#: The ID column: as many characters as a prefix must have.
SHORT_ID = 8


@dataclass(frozen=True, slots=True)
class BoardRow:
    """One orchestration on the board."""

    orchestration_id: str
    state: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    notice: str | None = None
    summary: Summary | None = None
    stuck: int = 0  #: things stuck (``poll.stuck_after``) as the last poll found them


def _progress(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    finished = done(counts)
    percent = finished * 100 // total if total else 0
    return f"{finished}/{total} {percent}%"


def _note(row: BoardRow) -> Text:
    if row.summary is not None:
        summary = row.summary
        style = "green" if summary.exit_code == 0 else "red"
        said = summary.reason == f"orchestration {summary.state}"  # the STATE column says it
        note = f"exit {summary.exit_code}" + ("" if said else f": {summary.reason}")
        return Text(note, style=style)
    if row.notice:
        return Text(row.notice, style="yellow")
    running = sum(n for s, n in row.counts.items() if not is_terminal_operation(s))
    if row.stuck:
        return Text(f"{running} to go, {row.stuck} stuck", style="yellow")
    return Text(f"{running} to go" if row.counts else "", style="default")


def render_board(
    rows: Sequence[BoardRow], started: float, now: float, width: int
) -> RenderableType:
    """The panel at monotonic time ``now`` for a console ``width`` columns wide. The full ID
    is shown only when there is room for it besides everything else."""
    full_ids = width >= 120
    table = Table(box=None, padding=(0, 1), expand=True, show_edge=False)
    table.add_column("ORCHESTRATION" if full_ids else "ID", no_wrap=True)
    states = [r.state or "(not seen yet)" for r in rows]
    table.add_column("STATE", no_wrap=True, min_width=max(len(s) for s in [*states, "STATE"]))
    table.add_column("DONE", no_wrap=True, justify="right")
    table.add_column("FAILED", no_wrap=True, justify="right")
    table.add_column("", ratio=1, overflow="fold")
    for row, state in zip(rows, states, strict=True):
        table.add_row(
            row.orchestration_id if full_ids else row.orchestration_id[:SHORT_ID],
            Text(state, style=STATE_STYLES.get(state, "")),
            _progress(row.counts),
            str(row.counts.get(FAILED, 0)),
            _note(row),
        )
    totals: dict[str, int] = {}
    for row in rows:
        for state, n in row.counts.items():
            totals[state] = totals.get(state, 0) + n
    ended = sum(1 for r in rows if r.summary is not None)
    table.add_row(
        Text("all", style="bold"),
        Text(f"{ended} of {len(rows)} ended", style="bold"),
        _progress(totals),
        str(totals.get(FAILED, 0)),
        "",
    )
    elapsed = format_duration(round(now - started))
    footer = Text(f"{plural(len(rows), 'orchestration')}, {elapsed} watched", style="grey50")
    return Panel(Group(table, footer), title="watcher watch", title_align="left", expand=True)


class WatchBoard:
    """The live view of several orchestrations. Events arrive on the event loop's thread;
    rich's refresh thread only reads :attr:`rows`, which is replaced as a whole."""

    def __init__(self, console: Console, ids: Sequence[str], clock: Callable[[], float]):
        self.clock = clock
        self.started = clock()
        self.order = list(ids)
        self.rows: dict[str, BoardRow] = {i: BoardRow(i) for i in ids}
        self._console = console
        self._live = Live(
            console=console,
            get_renderable=lambda: render_board(
                [self.rows[i] for i in self.order], self.started, self.clock(), console.width
            ),
            refresh_per_second=1.0,
            transient=False,
            redirect_stderr=True,
        )
        self._live.start(refresh=True)

    def _set(self, orch_id: str, **changes: object) -> None:
        rows = dict(self.rows)
        rows[orch_id] = replace(rows[orch_id], **changes)  # type: ignore[arg-type]
        self.rows = rows
        self._live.refresh()

    def progress(self, p: Progress) -> None:
        state = p.orchestration.state if p.orchestration else None
        self._set(
            p.orchestration_id,
            state=state,
            counts=dict(p.counts),
            notice=None,
            stuck=len(p.stuck),
        )

    def reconnecting(self, orchestration_id: str, r: Reconnect, at: datetime) -> None:
        notice = f"reconnecting (attempt {r.attempt}, next in {seconds_text(r.seconds)})"
        self._set(orchestration_id, notice=notice)

    def finish(self, summary: Summary) -> None:
        self._set(
            summary.orchestration_id,
            summary=summary,
            state=summary.state,
            counts=dict(summary.counts),
        )

    def close(self) -> None:
        self._live.stop()  # leaves the last frame on screen and shows the cursor again
        sys.stdout.flush()
