"""`watch` shows stuck operations too (issue 18, point 3): the text lines, the JSON status
lines, on the simulator's ``hanging`` scenario (an operation in progress for 90 minutes)."""

from __future__ import annotations

import json
from typing import Any

from tests.test_watch import SimTime, Watch, orch, watch

__all__ = ["watch"]  # the fixture


def _with_stuck_after(keb: Any, value: str) -> None:
    keb.config.write_text(keb.config.read_text() + f'stuck_after = "{value}"\n')  # in [poll]


def test_watch_prints_what_is_stuck_and_when_it_moves_on(keb_factory: Any, watch: Watch) -> None:
    keb = keb_factory("hanging")
    _with_stuck_after(keb, "1h")
    result = watch(keb, SimTime(keb), orch(keb), "--output", "text", "--interval", "5m")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    stuck = [i for i, line in enumerate(lines) if " 1 stuck: " in line]
    clear = [i for i, line in enumerate(lines) if "nothing stuck any more" in line]
    assert len(stuck) == 1, lines  # printed when it became stuck, not on every poll
    assert len(clear) == 1, lines
    assert stuck[0] < clear[0]
    assert " in progress since 2024-05-14 " in lines[stuck[0]]


def test_watch_json_status_carries_stuck(keb_factory: Any, watch: Watch) -> None:
    keb = keb_factory("hanging")
    _with_stuck_after(keb, "1h")
    result = watch(keb, SimTime(keb), orch(keb), "-o", "json", "--interval", "5m")
    assert result.code == 0, result.err
    events = [json.loads(line) for line in result.out.splitlines()]
    statuses = [e for e in events if e["type"] == "status"]
    stuck = [e["stuck"] for e in statuses if e["stuck"]]
    assert stuck
    assert {s["count"] for s in stuck} == {1}
    assert stuck[0]["items"][0]["state"] == "in progress"
    assert stuck[0]["items"][0]["operationId"]
    assert statuses[-1]["stuck"] is None  # it moved on before the end


def test_the_board_of_several_orchestrations_says_how_many_things_are_stuck() -> None:
    from rich.console import Console

    from watcher.faces.watch.board import BoardRow, render_board

    rows = [
        BoardRow("a" * 36, "in progress", {"in progress": 3, "succeeded": 2}, stuck=2),
        BoardRow("b" * 36, "in progress", {"in progress": 1, "succeeded": 4}),
    ]
    console = Console(width=120, record=True)
    console.print(render_board(rows, 0.0, 10.0, 120))
    lines = console.export_text().splitlines()
    [first] = [line for line in lines if "aaaa" in line]
    [second] = [line for line in lines if "bbbb" in line]
    assert "3 to go, 2 stuck" in first
    assert "stuck" not in second
