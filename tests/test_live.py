"""The renderers of `watcher watch`: the live panel on a recording console (widths, bar,
throughput, outcome, cursor), and the plain and JSON line sinks on made-up events."""

from __future__ import annotations

import io
import json
import logging
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from watcher.core.diff import Transition, TransitionKind
from watcher.core.models import Orchestration
from watcher.core.watching import Progress, Reconnect, Summary, WatchOutcome
from watcher.faces.watch.live import (
    Frame,
    JsonLines,
    LiveView,
    PlainLines,
    StateBar,
    allocate,
    eta,
    pace_text,
    render,
    seconds_text,
    throughput,
)

AT = datetime(2024, 5, 14, 8, 0, tzinfo=UTC)
ORCH_ID = "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11"
ORCH = Orchestration(
    ORCH_ID, type="upgradeCluster", state="in progress", description="Scheduled 200"
)
COUNTS = {"succeeded": 100, "failed": 20, "canceled": 0, "in progress": 20, "pending": 60}
REASON = "provisioner client returns failed status: Operation failed: last error: quota exceeded"


def op_done(n: int, state: str = "succeeded", description: str = "") -> Transition:
    return Transition(
        TransitionKind.OPERATION_COMPLETED,
        ORCH_ID,
        f"k{n}",
        AT + timedelta(seconds=n),
        operation_id=f"op-{n}",
        shoot_name=f"c-{n:07d}",
        from_state="in progress",
        to_state=state,
        description=description,
    )


def frame(**changes: object) -> Frame:
    base = Frame(
        ORCH_ID,
        started=0.0,
        orchestration=ORCH,
        counts=COUNTS,
        done_at_start=60,
        recent=tuple(op_done(n) for n in range(12))[-8:],
        failures=((REASON, 12), ("operation has reached the time limit: 3h0m0s", 8)),
        interval=5.0,
        next_poll=602.0,
    )
    return replace(base, **changes)


def screen(renderable: object, width: int) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [40, 80, 160])
def test_live_panel_fits_the_width_and_shows_everything(width: int) -> None:
    lines = screen(render(frame(), 600.0), width)
    assert all(len(line) <= width for line in lines)
    text = "\n".join(lines)
    for needle in ("Orchestration", "State", "Progress", "Latest transitions", "Failures by"):
        assert needle in text
    if width >= 80:
        assert ORCH_ID in text
        assert "in progress  Scheduled 200" in text
        assert "200: 60 pending, 20 in progress, 100 succeeded, 20 failed" in text
        assert "10m watched, next poll in 2.0s (every 5.0s)" in text
        # 60 done during 10 minutes: 6/min; 80 left: ~13m
        assert "6.0 completed/min, ETA ~13m20s" in text
        assert "60%" in text
        assert "12 x provisioner client returns" in text
        assert "c-0000011 op-11: in progress -> succeeded" in text
        assert "c-0000003 op-3" not in text  # only the latest 8


def test_final_frame_shows_the_outcome_and_stops_counting() -> None:
    summary = Summary(ORCH_ID, WatchOutcome.FAILED, "orchestration failed", AT, 1800.0, ORCH)
    text = "\n".join(screen(render(frame(summary=summary), 99999.0), 100))
    assert "Result" in text
    assert "orchestration failed (exit 1)" in text
    assert "30m watched" in text  # the watch's length, not the clock's
    assert "next poll" not in text


def test_reconnecting_notice_is_shown_until_the_next_poll() -> None:
    notice = "reconnecting (attempt 3, next in 4.0s): KEB GET /x: 502 Bad Gateway"
    assert "reconnecting (attempt 3" in "\n".join(screen(render(frame(notice=notice), 0), 120))
    assert "reconnecting" not in "\n".join(screen(render(frame(), 0), 120))


def test_bar_fills_the_width_in_proportion() -> None:
    assert allocate([100, 20, 0, 20, 60], 50) == [25, 5, 0, 5, 15]
    assert sum(allocate([1, 1, 1], 10)) == 10
    [line] = screen(StateBar({"succeeded": 1, "pending": 3}), 20)
    assert line == "█████░░░░░░░░░░░░░░░"
    [empty] = screen(StateBar({}), 8)
    assert empty == "--------"
    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    console = Console(width=10, file=ascii_out, record=True, color_system=None)
    console.print(StateBar({"succeeded": 2, "failed": 1, "in progress": 1, "pending": 1}))
    assert console.export_text() == "####XX==..\n"  # a terminal without UTF-8


def test_pace_and_eta() -> None:
    assert throughput(30, 600.0) == 3.0
    assert throughput(5, 0.5) is None
    assert eta({"pending": 6, "succeeded": 3}, 3.0) == 120.0
    assert eta({"pending": 6}, None) is None
    assert eta({"succeeded": 3}, None) == 0.0
    assert pace_text({}, None) == "-"
    assert pace_text({"succeeded": 3}, 1.0) == "1.0 completed/min, every operation finished"
    assert pace_text({"pending": 3}, 0.0) == "0.0 completed/min, ETA unknown"
    assert [seconds_text(s) for s in (0.75, 9.95, 10, 125)] == ["0.8s", "9.9s", "10s", "2m5s"]


def test_live_view_redraws_on_events_and_restores_the_cursor() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system="standard")
    now = [0.0]
    view = LiveView(console, ORCH_ID, lambda: now[0])
    now[0] = 5.0
    view.progress(Progress(ORCH_ID, ORCH, COUNTS, (op_done(1),), (), 5.0, 5.0, AT, first=True))
    view.reconnecting(ORCH_ID, Reconnect(2, 1.5, "KEB GET /x: connection refused", 3.0), AT)
    view.finish(Summary(ORCH_ID, WatchOutcome.INTERRUPTED, "interrupted (Ctrl-C)", AT, 9.0, ORCH))
    view.close()
    raw = out.getvalue()
    assert raw.startswith("\x1b[?25l")  # cursor hidden while live
    assert raw.rstrip().endswith("\x1b[?25h")  # and shown again at the end
    assert "(not seen yet)" in raw  # the first frame, before any poll
    assert "c-0000001: in progress -> succeeded" in raw  # below 120 columns: no operation ID
    assert "reconnecting (attempt 2, next in 1.5s)" in raw
    assert "interrupted (Ctrl-C) (exit 130)" in raw


def test_log_records_go_above_the_live_view_not_through_it() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    original = sys.stderr
    handler = logging.StreamHandler(original)
    logging.getLogger().addHandler(handler)
    try:
        view = LiveView(console, ORCH_ID, lambda: 0.0)
        assert handler.stream is sys.stderr
        assert sys.stderr is not original  # rich's proxy: prints above the live region
        view.close()
        assert handler.stream is original
        assert sys.stderr is original
    finally:
        logging.getLogger().removeHandler(handler)


def progress(new: tuple[Transition, ...] = (), **changes: object) -> Progress:
    base = {
        "orchestration_id": ORCH_ID,
        "orchestration": ORCH,
        "counts": {"succeeded": 2, "in progress": 1},
        "new": new,
        "failures": (),
        "interval": 5.0,
        "elapsed": 12.5,
        "at": AT,
    }
    return replace(Progress(**base), **changes)


def summary(outcome: WatchOutcome, reason: str, **changes: object) -> Summary:
    base = {
        "orchestration_id": ORCH_ID,
        "outcome": outcome,
        "reason": reason,
        "at": AT,
        "elapsed": 125.0,
        "orchestration": ORCH,
        "initial_state": "pending",
        "counts": {"succeeded": 2, "failed": 1},
        "completed": 3,
        "failures": ((REASON, 1),),
    }
    return replace(Summary(**base), **changes)


def test_plain_lines() -> None:
    out, err = io.StringIO(), io.StringIO()
    sink = PlainLines(out, err)
    sink.progress(progress(first=True))
    sink.progress(progress((op_done(1), op_done(2, "failed", REASON))))
    sink.reconnecting(ORCH_ID, Reconnect(1, 0.8, "KEB GET /x: 502 Bad Gateway", 0.0), AT)
    sink.progress(progress(recovered_after=1))
    sink.finish(summary(WatchOutcome.FAILED, "orchestration failed"))
    assert out.getvalue() == (
        "2024-05-14 08:00:00 UTC  watching: in progress, operations 3: 1 in progress, 2 succeeded\n"
        "2024-05-14 08:00:01 UTC  c-0000001 op-1: in progress -> succeeded\n"
        f'2024-05-14 08:00:02 UTC  c-0000002 op-2: in progress -> failed "{REASON}"\n'
        f"2024-05-14 08:00:00 UTC  summary: {ORCH_ID}: orchestration failed; "
        "operations 3: 2 succeeded, 1 failed; 3 completed in 2m5s watched; exit 1\n"
        f"  1 x {REASON}\n"
    )
    assert err.getvalue() == (
        "2024-05-14 08:00:00 UTC  reconnecting (attempt 1, next in 0.8s): "
        "KEB GET /x: 502 Bad Gateway\n"
        "2024-05-14 08:00:00 UTC  KEB reachable again\n"
    )


def test_plain_summary_of_a_watch_error_names_the_last_known_state() -> None:
    out = io.StringIO()
    PlainLines(out, io.StringIO()).finish(
        summary(WatchOutcome.AUTH, "KEB GET /x: 401 Unauthorized")
    )
    assert "summary: " + ORCH_ID + ": KEB GET /x: 401 Unauthorized; orchestration in progress;" in (
        out.getvalue()
    )


def test_json_lines_schema() -> None:
    out = io.StringIO()
    sink = JsonLines(out, io.StringIO())
    sink.progress(progress(first=True))
    sink.progress(progress())  # nothing new: no line
    sink.progress(progress((op_done(1),)))
    sink.reconnecting(ORCH_ID, Reconnect(1, 0.8, "KEB GET /x: 502 Bad Gateway", 0.0), AT)
    sink.finish(summary(WatchOutcome.CANCELED, "orchestration canceled"))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["type"] for e in events] == [
        "status",
        "transition",
        "status",
        "reconnecting",
        "summary",
    ]
    for e in events:
        assert e["time"] == "2024-05-14T08:00:00+00:00" or e["type"] == "transition"
        assert e["orchestrationID"] == ORCH_ID
        assert e["state"] == "in progress"
        assert e["counts"]
    status, transition, _, reconnecting, final = events
    assert status["orchestrationType"] == "upgradeCluster"
    assert status["interval"] == 5.0
    assert transition["kind"] == "operation_completed"
    assert (transition["from"], transition["to"]) == ("in progress", "succeeded")
    assert transition["time"] == "2024-05-14T08:00:01+00:00"
    assert reconnecting["attempt"] == 1
    assert reconnecting["nextIn"] == 0.8
    assert reconnecting["reason"] == "KEB GET /x: 502 Bad Gateway"
    assert final["outcome"] == "canceled"
    assert final["exitCode"] == 3
    assert (final["from"], final["to"]) == ("pending", "in progress")
    assert final["failures"] == [{"reason": REASON, "count": 1}]
    assert final["elapsed"] == 125.0


def test_at_80_columns_states_and_reasons_are_whole() -> None:
    """Issue 12: no `pending -> in p…`, no reason cut right after its shared prefix."""
    quota = (
        "provisioner client returns failed status: Operation failed: last error: quota exceeded "
        "for machine type n2-standard-8 in region europe-west3 of project kyma-prod-1234"
    )
    limit = "provisioner client returns failed status: operation has reached the time limit: 3h"
    started = replace(op_done(3, "in progress"), from_state="pending", to_state="in progress")
    shown = frame(failures=((quota, 12), (limit, 8)), recent=(op_done(1), started))
    lines = screen(render(shown, 600.0, 80), 80)
    text = "\n".join(lines)
    assert all(len(line) <= 80 for line in lines)
    assert "…" not in text.replace("…Operation failed", "").replace("…operation has", "")
    assert "12 x …Operation failed: last error: quota exceeded" in text
    assert "kyma-prod-1234" in text  # too long for one line: wrapped, not cut
    assert "8 x …operation has reached the time limit: 3h" in text
    assert "c-0000003: pending -> in progress" in text  # no operation UUID, no cut state
    wide = "\n".join(screen(render(shown, 600.0, 160), 160))
    assert "c-0000003 op-3: pending -> in progress" in wide  # room for the UUID at 160


def test_json_lines_reconnecting_carries_its_own_orchestrations_state() -> None:
    """With several IDs, a reconnect line shows what was last seen of that orchestration,
    not of the one reported just before it."""
    other = "4ab15fee-890d-4238-bdfb-bb5a590433bd"
    out = io.StringIO()
    sink = JsonLines(out, io.StringIO())
    sink.progress(progress(first=True))
    sink.progress(
        progress(
            first=True,
            orchestration_id=other,
            orchestration=replace(ORCH, orchestration_id=other, state="pending"),
            counts={"pending": 7},
        )
    )
    sink.reconnecting(ORCH_ID, Reconnect(1, 0.8, "KEB GET /x: 502 Bad Gateway", 0.0), AT)
    sink.reconnecting("c917aaaa-0000-4000-8000-000000000000", Reconnect(1, 0.8, "x", 0.0), AT)
    *_, mine, unseen = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (mine["orchestrationID"], mine["state"]) == (ORCH_ID, "in progress")
    assert mine["counts"] == {"succeeded": 2, "in progress": 1}
    assert (unseen["state"], unseen["counts"]) == (None, {})
