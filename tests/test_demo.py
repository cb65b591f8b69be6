"""`watcher demo`: the whole product on embedded defaults, as a newcomer runs it."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import Cli


def test_demo_runs_to_the_end_and_shows_what_slack_would_get(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "demo", "--speed", "60", "--interval", "100ms"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Tracking 5 orchestrations" in out
    assert "┌ Slack #kyma-upgrades (new message)" in out  # the cards
    assert "also sent to the channel" in out  # final summaries notify people
    assert re.search(r"❌ \d+ operations? failed · ", out)  # a failure digest
    assert "retrying" in out
    assert "<!date^" not in out  # Slack's time tokens print as their UTC fallback
    assert "canceling" in out
    for outcome in ("succeeded", "failed", "canceled"):
        assert f": {outcome}, operations" in out
    assert "history" in out.splitlines()[-1]
    # A fleet card beside the orchestration cards (a second simulator serves /runtimes),
    # and the fleet's failure digest in its thread.
    assert "fleet demo-fleet" in out
    assert "followed through GET /runtimes" in out
    assert "(reply in the thread of fleet demo-fleet)" in out
    assert re.search(r"❌ \d+ operations? failed · fleet demo-fleet", out)
    assert re.search(r"fleet demo-fleet: \d+ runtimes, \d+ transitions recorded", out)
    [fleet_line] = [line for line in out.splitlines() if "fleet show demo-fleet" in line]
    shown = subprocess.run(
        shlex.split(fleet_line), capture_output=True, text=True, check=False, env=env
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("demo-fleet: ")
    assert "Traceback" not in done.stderr
    # the printed command works as printed (no `watcher` on this PATH: python -m watcher)
    command = shlex.split(out.splitlines()[-1])
    assert command[:3] == [sys.executable, "-m", "watcher"]
    again = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    assert again.returncode == 0, again.stderr
    assert "baseline" in again.stdout
    # The simulator's clock started at the real now: ages are minutes, not years.
    days = {(datetime.now(UTC) - timedelta(days=d)).strftime("%Y-%m-%d") for d in (0, 1)}
    assert any(day in again.stdout for day in days), again.stdout[:300]
    assert "2024-05-14" not in out + again.stdout
    # one stable folder, not one more temporary folder per run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keb-watcher"]
    assert (tmp_path / "keb-watcher" / "demo" / "watcher.db").exists()


def test_sim_on_a_busy_port_is_one_line_exit_2(cli: Cli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("sim", "--port", str(port))
    assert result.code == 2
    assert result.err.startswith(f"watcher: --port {port}: cannot listen on 127.0.0.1: ")
    assert result.err.count("\n") == 1
