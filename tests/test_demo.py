"""`watcher demo`: the whole product on embedded defaults, as a newcomer runs it."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_to_the_end_and_shows_what_slack_would_get() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "demo", "--speed", "600", "--interval", "200ms"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Tracking 5 orchestrations" in out
    assert "┌ Slack #kyma-upgrades (new message)" in out  # the cards
    assert "also sent to the channel" in out  # final summaries notify people
    assert "operation failed" in out  # a failure digest
    assert "retrying" in out
    assert "canceling" in out
    for outcome in ("succeeded", "failed", "canceled"):
        assert f": {outcome}, operations" in out
    assert "history" in out.splitlines()[-1]
    assert "Traceback" not in done.stderr
