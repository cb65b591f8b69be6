"""What ``watcher watch`` shows: the live view on a terminal, plain lines, JSON lines.

Three :class:`watcher.core.watching.Sink` implementations over the same events:

* :class:`LiveView`: a rich ``Live`` panel, redrawn on every change and once a second (the
  elapsed time, next poll and throughput move on their own), cut to the terminal's width on
  every redraw so that a resize is followed; its last frame (the outcome) stays on screen.
* :class:`PlainLines`: one line per transition (:func:`watcher.faces.reports.transition_line`) and a
  final summary line, for pipes and CI logs. Reconnect notices go to stderr.
* :class:`JsonLines`: one JSON object per line; the shapes are documented in the README
  ("Watching one orchestration") and are part of the product contract.

Rendering is pure (:func:`render` takes a :class:`Frame` and the time), so it is tested on a
recording console; the live view keeps its state in an immutable frame that the refresh thread
reads and the event loop replaces.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, TextIO

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from watcher.core.diff import Transition, TransitionKind
from watcher.core.durations import format_duration
from watcher.core.inert import inert
from watcher.core.models import Orchestration, is_terminal_operation
from watcher.core.stuck import Stalled
from watcher.core.watching import (
    CombinedSummary,
    Progress,
    Reconnect,
    Summary,
    WatchOutcome,
    done,
)
from watcher.core.wording import counts_text, transition_text
from watcher.faces.reports import (
    stuck_detail,
    stuck_json,
    transition_json,
    transition_line,
    when,
)

RECENT: Final = 8
FAILURE_REASONS: Final = 5
#: Bar order and looks: (state, character, ASCII character, style).
BAR_STATES: Final = (
    ("succeeded", "█", "#", "green"),
    ("failed", "█", "X", "red"),
    ("canceled", "█", "/", "yellow"),
    ("in progress", "▓", "=", "cyan"),
    ("pending", "░", ".", "grey50"),
)
STATE_STYLES: Final = {
    "succeeded": "bold green",
    "failed": "bold red",
    "canceled": "bold yellow",
    "canceling": "yellow",
    "retrying": "magenta",
    "in progress": "cyan",
    "pending": "grey50",
}


def seconds_text(seconds: float) -> str:
    """``1.4s`` below ten seconds, else the compact duration of whole seconds (``2m5s``)."""
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f}s"
    return format_duration(round(seconds))


def throughput(completed: int, elapsed: float) -> float | None:
    """Operations completed per minute over the watch; ``None`` before a few seconds pass."""
    return completed * 60.0 / elapsed if elapsed >= 1.0 else None


def eta(counts: Mapping[str, int], rate: float | None) -> float | None:
    """Seconds until every unfinished operation is done at ``rate`` per minute."""
    left = sum(n for state, n in counts.items() if not is_terminal_operation(state))
    if left == 0:
        return 0.0
    return left * 60.0 / rate if rate else None


def pace_text(counts: Mapping[str, int], rate: float | None) -> str:
    """``12.5 completed/min, ETA ~4m``: throughput over the watch and the time left at it."""
    pace = "-" if rate is None else f"{rate:.1f} completed/min"
    left = eta(counts, rate)
    if not counts:
        return pace
    if left == 0:
        return f"{pace}, every operation finished"
    return f"{pace}, ETA " + ("unknown" if left is None else f"~{seconds_text(left)}")


def allocate(sizes: Sequence[int], width: int) -> list[int]:
    """Split ``width`` cells in proportion to ``sizes`` (largest remainder; sums to width).

    >>> allocate([1, 1, 2], 8), allocate([0, 0], 5), allocate([1, 2], 0)
    ([2, 2, 4], [0, 0], [0, 0])
    """
    total = sum(sizes)
    if total <= 0 or width <= 0:
        return [0] * len(sizes)
    exact = [s * width / total for s in sizes]
    cells = [int(e) for e in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: exact[i] - cells[i], reverse=True)
    for i in by_remainder[: width - sum(cells)]:
        cells[i] += 1
    return cells


class StateBar:
    """A one-line bar of operations by state that fills the width it is given."""

    def __init__(self, counts: Mapping[str, int]) -> None:
        self.counts = counts

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        known = [self.counts.get(state, 0) for state, *_ in BAR_STATES]
        other = sum(self.counts.values()) - sum(known)
        cells = allocate([*known, other], options.max_width)
        bar = Text(no_wrap=True, overflow="crop")
        for (_state, char, plain, style), n in zip(BAR_STATES, cells, strict=False):
            bar.append((plain if options.ascii_only else char) * n, style=style)
        bar.append(("?" if options.ascii_only else "▒") * cells[-1], style="magenta")
        if not bar:
            bar.append("-" * options.max_width, style="grey50")
        yield bar


@dataclass(frozen=True, slots=True)
class Frame:
    """Everything the live view shows, replaced (never changed) on each event."""

    orchestration_id: str
    started: float
    orchestration: Orchestration | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    done_at_start: int | None = None
    recent: tuple[Transition, ...] = ()
    failures: tuple[tuple[str, int], ...] = ()
    interval: float | None = None
    next_poll: float | None = None
    notice: str | None = None
    summary: Summary | None = None
    stuck: tuple[Stalled, ...] = ()


def _counts(counts: Mapping[str, int]) -> Text:
    text = Text(counts_text(counts))
    for state, style in STATE_STYLES.items():
        text.highlight_words([f" {state}"], style=style)
    return text


def _recent_line(t: Transition, narrow: bool = False) -> str:
    """``narrow``: without the operation's UUID (the shoot names the operation), so that
    the states fit in 80 columns."""
    text = transition_text(t)
    if narrow and t.operation_id:
        text = text.replace(f" {t.operation_id}:", ":", 1)
    return f"{t.at:%H:%M:%S}  {text}"


def shorten_reasons(reasons: Sequence[str]) -> list[str]:
    """Reasons with the prefix they all share (up to its last ``": "``) replaced by an
    ellipsis, so that what tells them apart shows.

    >>> shorten_reasons(["provisioner: failed status: quota", "provisioner: failed status: x"])
    ['…quota', '…x']
    >>> shorten_reasons(["quota exceeded"])
    ['quota exceeded']
    """
    if len(reasons) < 2:
        return list(reasons)
    shared = reasons[0]
    for reason in reasons[1:]:
        while not reason.startswith(shared):
            shared = shared[:-1]
    cut = shared.rfind(": ") + 2 if ": " in shared else 0
    return [f"…{r[cut:]}" if cut else r for r in reasons]


def render(frame: Frame, now: float, width: int | None = None) -> RenderableType:
    """The live panel at monotonic time ``now``; below 120 columns (``width``) the recent
    transitions leave out operation UUIDs. Long lines wrap instead of being cut."""
    orch, summary = frame.orchestration, frame.summary
    elapsed = summary.elapsed if summary else now - frame.started
    grid = Table.grid(padding=(0, 2), expand=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    # KEB text goes into Text objects (never parsed as rich markup) and through inert().
    kind = inert(orch.type) if orch else ""
    grid.add_row("Orchestration", Text(f"{inert(frame.orchestration_id)}  {kind}"))
    shown = inert(orch.state) if orch else "(not seen yet)"
    state = Text(shown, style=STATE_STYLES.get(shown, ""))
    if orch and orch.description:
        state.append(f"  {inert(orch.description)}", style="default")
    grid.add_row("State", state)
    watched = f"{format_duration(round(elapsed))} watched"
    if summary is None and frame.next_poll is not None and frame.interval is not None:
        watched += f", next poll in {seconds_text(frame.next_poll - now)}"
        watched += f" (every {seconds_text(frame.interval)})"
    grid.add_row("Elapsed", watched)
    grid.add_row("Operations", _counts(frame.counts))
    total = sum(frame.counts.values())
    bar = Table.grid(padding=(0, 1), expand=True)
    bar.add_column(ratio=1)
    bar.add_column(no_wrap=True)
    bar.add_row(StateBar(frame.counts), f"{done(frame.counts) * 100 // total if total else 0}%")
    grid.add_row("Progress", bar)
    completed = done(frame.counts) - (frame.done_at_start or 0)
    grid.add_row("Throughput", pace_text(frame.counts, throughput(completed, elapsed)))
    if frame.stuck and summary is None:
        grid.add_row("Stuck", Text(stuck_detail(frame.stuck), style="yellow", overflow="fold"))
    if frame.notice and summary is None:
        grid.add_row("KEB", Text(inert(frame.notice), style="yellow"))
    if summary is not None:
        style = "green" if summary.exit_code == 0 else "red"
        grid.add_row(
            "Result",
            Text(f"{inert(summary.reason)} (exit {summary.exit_code})", style=f"bold {style}"),
        )
    parts: list[RenderableType] = [grid]
    if frame.recent:
        parts.append(Text("Latest transitions", style="bold"))
        narrow = width is not None and width < 120
        parts.extend(Text(f"  {_recent_line(t, narrow)}", overflow="fold") for t in frame.recent)
    if frame.failures:
        parts.append(Text("Failures by reason", style="bold"))
        groups = frame.failures[:FAILURE_REASONS]
        for (_, n), reason in zip(groups, shorten_reasons([r for r, _ in groups]), strict=True):
            parts.append(Text(inert(f"  {n} x {reason}"), style="red", overflow="fold"))
        if len(frame.failures) > FAILURE_REASONS:
            parts.append(Text(f"  +{len(frame.failures) - FAILURE_REASONS} more reasons"))
    return Panel(Group(*parts), title="watcher watch", title_align="left", expand=True)


class LiveView:
    """The rich live view. Events arrive on the event loop's thread; rich's refresh thread
    only reads :attr:`frame`, which is replaced as a whole."""

    def __init__(self, console: Console, orchestration_id: str, clock: Callable[[], float]):
        self.clock = clock
        self.frame = Frame(orchestration_id, started=clock())
        self._live = Live(
            console=console,
            get_renderable=lambda: render(self.frame, self.clock(), console.width),
            refresh_per_second=1.0,
            transient=False,
        )
        stderr = sys.stderr
        self._live.start(refresh=True)
        # Log records (--verbose, --debug) written straight to the terminal would tear the
        # view: route them through rich's stderr proxy, which prints them above it.
        self._rerouted = [
            h
            for h in logging.getLogger().handlers
            if isinstance(h, logging.StreamHandler) and h.stream is stderr
        ]
        for handler in self._rerouted:
            handler.setStream(sys.stderr)
        self._stderr = stderr

    def progress(self, p: Progress) -> None:
        f = self.frame
        self.frame = replace(
            f,
            orchestration=p.orchestration,
            counts=dict(p.counts),
            done_at_start=done(p.counts) if f.done_at_start is None else f.done_at_start,
            recent=(f.recent + p.new)[-RECENT:],
            failures=p.failures,
            interval=p.interval,
            next_poll=self.clock() + p.interval,
            notice=None,
            stuck=p.stuck,
        )
        self._live.refresh()

    def reconnecting(self, orchestration_id: str, r: Reconnect, at: datetime) -> None:
        text = f"reconnecting (attempt {r.attempt}, next in {seconds_text(r.seconds)}): {r.reason}"
        self.frame = replace(self.frame, notice=text, next_poll=None)
        self._live.refresh()

    def finish(self, summary: Summary) -> None:
        self.frame = replace(self.frame, summary=summary)
        self._live.refresh()

    def close(self) -> None:
        for handler in self._rerouted:
            handler.setStream(self._stderr)
        self._rerouted = []
        self._live.stop()  # leaves the last frame on screen and shows the cursor again


class _Lines:
    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err

    def _print(self, line: str, *, err: bool = False) -> None:
        stream = self.err if err else self.out
        stream.write(line + "\n")
        stream.flush()

    def close(self) -> None:
        pass


class PlainLines(_Lines):
    """One line per transition and a summary line; the human format without a terminal.
    ``tagged`` (several orchestrations): each transition line starts with ``[ID prefix]``."""

    def __init__(self, out: TextIO, err: TextIO, *, tagged: bool = False) -> None:
        super().__init__(out, err)
        self.tagged = tagged
        self._stuck: dict[str, tuple[Stalled, ...]] = {}

    def _tag(self, orchestration_id: str) -> str:
        return f"[{orchestration_id[:8]}] " if self.tagged else ""

    def progress(self, p: Progress) -> None:
        baseline = any(t.kind is TransitionKind.BASELINE for t in p.new)
        tag = self._tag(p.orchestration_id)
        if p.first and p.orchestration is not None and not baseline:
            state = p.orchestration.state
            counts = counts_text(p.counts)
            self._print(inert(f"{when(p.at)}  {tag}watching: {state}, operations {counts}"))
        for t in p.new:
            self._print(f"{when(t.at)}  {tag}{transition_text(t)}" if tag else transition_line(t))
        if p.recovered_after:
            self._print(f"{when(p.at)}  KEB reachable again", err=True)
        if p.stuck != self._stuck.get(p.orchestration_id, ()):
            self._stuck[p.orchestration_id] = p.stuck
            self._print(f"{when(p.at)}  {tag}{stuck_detail(p.stuck)}")

    def reconnecting(self, orchestration_id: str, r: Reconnect, at: datetime) -> None:
        line = f"reconnecting (attempt {r.attempt}, next in {seconds_text(r.seconds)}): {r.reason}"
        self._print(inert(f"{when(at)}  {self._tag(orchestration_id)}{line}"), err=True)

    def finish(self, summary: Summary) -> None:
        for line in summary_lines(summary):
            self._print(line)


def summary_lines(s: Summary) -> list[str]:
    """The plain summary line, then one line per failure reason."""
    what = s.reason
    if (
        s.outcome not in (WatchOutcome.SUCCEEDED, WatchOutcome.FAILED, WatchOutcome.CANCELED)
        and s.state
    ):
        what += "" if s.state in what else f"; orchestration {s.state}"
    line = (
        f"{when(s.at)}  summary: {s.orchestration_id}: {what}; operations {counts_text(s.counts)}; "
        f"{s.completed} completed in {format_duration(round(s.elapsed))} watched; "
        f"exit {s.exit_code}"
    )
    return [inert(line)] + [inert(f"  {n} x {reason}") for reason, n in s.failures]


def combined_line(c: CombinedSummary, at: datetime | None) -> str:
    """The last line of a watch of several orchestrations: the combined outcome and the
    process's exit code; without the time under the live board (which fits the terminal)."""
    line = f"summary: {c.reason}; exit {c.exit_code}"
    return inert(f"{when(at)}  {line}" if at is not None else line)


def combined_event(c: CombinedSummary, at: datetime) -> dict[str, Any]:
    """The last JSON line of a watch of several orchestrations (docs/output.md §5)."""
    event: dict[str, Any] = _base("summary", at.isoformat(), None, None)
    event.update(
        orchestrationIDs=list(c.orchestration_ids),
        outcome=c.outcome.value,
        exitCode=c.exit_code,
        reason=c.reason,
        outcomes={o.value: n for o, n in c.outcomes.items()},
        operations=sum(c.counts.values()),
        counts=dict(c.counts),
    )
    return event


def _base(kind: str, time: str, orchestration_id: str | None, state: str | None) -> dict[str, Any]:
    return {"type": kind, "time": time, "orchestrationID": orchestration_id, "state": state}


def transition_event(t: Transition, counts: Mapping[str, int]) -> dict[str, Any]:
    event = _base("transition", t.at.isoformat(), t.orchestration_id, None)
    event.update({k: v for k, v in transition_json(t).items() if k != "at"})
    event["counts"] = dict(counts)
    return event


def status_event(p: Progress) -> dict[str, Any]:
    orch = p.orchestration
    event = _base("status", p.at.isoformat(), p.orchestration_id, orch.state if orch else None)
    event.update(
        orchestrationType=orch.type if orch else None,
        description=orch.description if orch else None,
        operations=sum(p.counts.values()),
        counts=dict(p.counts),
        elapsed=round(p.elapsed, 3),
        interval=p.interval,
        stuck=stuck_json(p.stuck),
    )
    return event


def summary_event(s: Summary) -> dict[str, Any]:
    event = _base("summary", s.at.isoformat(), s.orchestration_id, s.state)
    event.update(
        outcome=s.outcome.value,
        exitCode=s.exit_code,
        reason=s.reason,
        description=s.orchestration.description if s.orchestration else None,
        operations=sum(s.counts.values()),
        counts=dict(s.counts),
        completed=s.completed,
        elapsed=round(s.elapsed, 3),
        failures=[{"reason": reason, "count": n} for reason, n in s.failures],
    )
    event["from"], event["to"] = s.initial_state, s.state
    return event


class JsonLines(_Lines):
    """One JSON object per line on stdout, each tagged with its orchestration; see
    docs/output.md for the schema. With several IDs, a ``reconnecting`` line carries the
    state and counts last seen of its own orchestration."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        super().__init__(out, err)
        self._seen: dict[str, tuple[str | None, dict[str, int]]] = {}
        self._stuck: dict[str, tuple[Stalled, ...]] = {}

    def _emit(self, event: Mapping[str, Any]) -> None:
        self._print(json.dumps(event, separators=(",", ":"), default=str))

    def progress(self, p: Progress) -> None:
        state = p.orchestration.state if p.orchestration else None
        self._seen[p.orchestration_id] = (state, dict(p.counts))
        for t in p.new:
            event = transition_event(t, p.counts)
            event["state"] = state
            self._emit(event)
        moved = p.stuck != self._stuck.get(p.orchestration_id, ())
        self._stuck[p.orchestration_id] = p.stuck
        if p.first or p.new or p.recovered_after or moved:
            self._emit(status_event(p))

    def reconnecting(self, orchestration_id: str, r: Reconnect, at: datetime) -> None:
        state, counts = self._seen.get(orchestration_id, (None, {}))
        event = _base("reconnecting", at.isoformat(), orchestration_id, state)
        event.update(
            attempt=r.attempt,
            nextIn=round(r.seconds, 3),
            failingFor=round(r.failing_for, 3),
            reason=r.reason,
            counts=counts,
        )
        self._emit(event)

    def finish(self, summary: Summary) -> None:
        self._emit(summary_event(summary))
