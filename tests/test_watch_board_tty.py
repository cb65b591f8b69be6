"""`watcher watch A B C` in a real 80-column terminal (issue 12): one row per orchestration
plus totals, every state whole, nothing wider than the terminal, the combined exit code."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.test_watch_tty import ANSI, Terminal, frames
from watcher.core.models import KNOWN_STATES
from watcher.sim import SimServer, Simulator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")


def test_three_orchestrations_fit_80_columns_without_cutting_a_state(tmp_path: Path) -> None:
    sim = Simulator.from_scenario("demo", speed=300.0)
    with SimServer(sim).start() as server:
        small, failures, cancel, _retry, _dry = sim.orchestration_ids()
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env.pop("WATCHER_CONFIG", None)
        env.update(KEB_URL=server.url, KEB_TOKEN=sim.token, TERM="xterm-256color", PYTHONUTF8="1")
        argv = ["-m", "watcher", "watch", small, failures, cancel, "--interval", "0.5s"]
        term = Terminal(argv, env, str(tmp_path), 30, 80)
        try:
            code = term.wait(timeout=60.0)
        finally:
            term.close()
    drawn = frames(term.screen)
    assert len(drawn) >= 3, term.screen[-2000:]
    assert code == 1  # failed beats canceled; not all succeeded
    states = "|".join(re.escape(s) for s in sorted(KNOWN_STATES, key=len, reverse=True))
    seen: set[str] = set()
    for frame in drawn:
        lines = frame.splitlines()
        assert all(len(line) <= 80 for line in lines), frame
        assert "…" not in frame, frame  # wrapped, never cut
        for orch_id in (small, failures, cancel):
            [row] = [line for line in lines if re.match(rf"│\s+{orch_id[:8]} ", line)]
            found = re.match(rf"│\s+{orch_id[:8]}\s+(\(not seen yet\)|{states})\s", row)
            assert found, row  # the state is whole, right after the ID
            seen.add(found.group(1))
        assert any(re.match(r"│\s+all\s+\d of 3 ended", line) for line in lines), frame
    assert {"in progress", "succeeded", "failed", "canceled"} <= seen
    last = ANSI.sub("", drawn[-1])
    assert "3 of 3 ended" in last
    rows = {line.split()[1]: line for line in last.splitlines() if line.startswith("│  ")}
    assert rows[small[:8]].split()[2:] == ["succeeded", "12/12", "100%", "0", "exit", "0", "│"]
    assert rows[failures[:8]].split()[2] == "failed"
    assert rows[failures[:8]].split()[-3:] == ["exit", "1", "│"]
    assert rows[cancel[:8]].split()[2] == "canceled"
    assert rows[cancel[:8]].split()[-3:] == ["exit", "3", "│"]
    # below the board, the combined outcome and the process's exit code
    assert "summary: 3 orchestrations: 1 failed, 1 canceled, 1 succeeded; exit 1" in last
