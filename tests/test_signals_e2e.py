"""Signals: `watch` treats SIGTERM (what `timeout`, systemd and Kubernetes send) like Ctrl-C:
the final frame, the summary line, the terminal restored, exit 143. `poll` abandons its cycle
and releases the lease; `run` releases it within 5 s."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.test_watch_tty import ANSI, Terminal, frames
from watcher.sim import SimServer, Simulator

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture
def keb() -> Iterator[tuple[Simulator, SimServer]]:
    sim = Simulator.from_scenario("failures", speed=60.0)
    server = SimServer(sim).start()
    yield sim, server
    server.stop()


def environment(sim: Simulator, server: SimServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(KEB_URL=server.url, KEB_TOKEN=sim.token, PYTHONPATH=str(ROOT), PYTHONUTF8="1")
    env.pop("WATCHER_CONFIG", None)
    return env


def test_sigterm_ends_json_output_with_a_summary_line_and_exit_143(
    keb: tuple[Simulator, SimServer], tmp_path: Path
) -> None:
    sim, server = keb
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "watch", sim.orchestration_ids()[0], "-o", "json"],
        env=environment(sim, server),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())  # watching
    assert first["type"] in ("status", "transition")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    last = json.loads(out.splitlines()[-1])
    assert (last["type"], last["outcome"], last["exitCode"]) == ("summary", "terminated", 143)
    assert err == "watcher: terminated\n"


def test_sigterm_on_a_terminal_leaves_the_final_frame_and_restores_the_cursor(
    keb: tuple[Simulator, SimServer], tmp_path: Path
) -> None:
    sim, server = keb
    env = environment(sim, server)
    env["TERM"] = "xterm-256color"
    argv = ["-m", "watcher", "watch", sim.orchestration_ids()[0], "--interval", "0.5s"]
    term = Terminal(argv, env, str(tmp_path), rows=40, cols=100)
    try:
        drawn: Callable[[str], bool] = lambda screen: len(frames(screen)) >= 2  # noqa: E731
        assert term.read_until(drawn, timeout=15.0), term.screen[-2000:]
        time.sleep(0.2)
        os.kill(term.pid, signal.SIGTERM)
        assert term.wait(timeout=15.0) == 143
    finally:
        term.close()
    tail = term.screen[-3000:]
    assert "\x1b[?25h" in tail  # the cursor is shown again
    assert "terminated (SIGTERM) (exit 143)" in ANSI.sub("", tail)  # the final frame
    assert "Traceback" not in term.screen


def test_run_survives_repeated_sigterm_while_stopping(
    keb: tuple[Simulator, SimServer], tmp_path: Path
) -> None:
    sim, server = keb
    config = write_config(
        tmp_path / "watcher.toml", server.url, sim.token, 'interval = "1s"\njitter = "0s"\n'
    )
    config.chmod(0o600)
    env = environment(sim, server)
    base = [sys.executable, "-m", "watcher", "--config", str(config)]
    subprocess.run([*base, "track", *sim.orchestration_ids()], env=env, check=True)
    proc = subprocess.Popen(
        [*base, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    while "cycle 1:" not in proc.stderr.readline():
        pass
    while proc.poll() is None:  # a supervisor that keeps sending SIGTERM until it is gone
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.002)
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert "stopped; lease released" in err
    assert "Traceback" not in err


def patient_config(tmp_path: Path, server: SimServer, sim: Simulator, poll: str = "") -> Path:
    """A configuration that waits up to a minute for each answer of KEB (one attempt)."""
    config = write_config(tmp_path / "watcher.toml", server.url, sim.token, poll)
    text = config.read_text().replace('timeout = "2s"', 'timeout = "60s"')
    assert 'timeout = "60s"' in text
    config.write_text(text)
    config.chmod(0o600)
    return config


def lease_held(database: Path) -> bool:
    """Whether a row of the lease table names a holder (a release deletes it)."""
    conn = sqlite3.connect(database, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM lease").fetchone()[0] > 0
    finally:
        conn.close()


def test_sigterm_during_poll_abandons_the_cycle_and_releases_the_lease(
    keb: tuple[Simulator, SimServer], tmp_path: Path
) -> None:
    sim, server = keb
    config = patient_config(tmp_path, server, sim)
    env = environment(sim, server)
    base = [sys.executable, "-m", "watcher", "--config", str(config)]
    subprocess.run([*base, "track", *sim.orchestration_ids()], env=env, check=True)
    sim.faults.inject("slow", count=None, delay=30.0)  # every answer of KEB takes 30 s
    proc = subprocess.Popen(
        [*base, "poll"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    while not lease_held(tmp_path / "watcher.db"):  # the cycle has begun
        assert time.monotonic() < deadline, "poll never took the lease"
        time.sleep(0.05)
    time.sleep(0.5)  # inside a request to KEB
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 143, err
    assert err.endswith(
        "watcher: terminated: the cycle in flight was abandoned and the lease released; "
        "the next poll catches up\n"
    )
    assert "Traceback" not in err
    assert not lease_held(tmp_path / "watcher.db")
    sim.faults.clear()
    started = time.monotonic()
    again = subprocess.run([*base, "poll"], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "lease" not in again.stderr
    assert time.monotonic() - started < 15


def test_run_releases_the_lease_within_5_seconds_of_sigterm(
    keb: tuple[Simulator, SimServer], tmp_path: Path
) -> None:
    sim, server = keb
    config = patient_config(tmp_path, server, sim, 'interval = "1s"\njitter = "0s"\n')
    env = environment(sim, server)
    base = [sys.executable, "-m", "watcher", "--config", str(config)]
    subprocess.run([*base, "track", *sim.orchestration_ids()], env=env, check=True)
    sim.faults.inject("slow", count=None, delay=30.0)  # the cycle in flight never ends
    proc = subprocess.Popen(
        [*base, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    while "holding the lease" not in proc.stderr.readline():
        assert proc.poll() is None
    time.sleep(1.0)  # the first cycle waits for KEB
    assert lease_held(tmp_path / "watcher.db")
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    while lease_held(tmp_path / "watcher.db"):
        assert time.monotonic() - signalled < 5.0, "the lease is still held 5 s after SIGTERM"
        time.sleep(0.05)
    err = proc.stderr.read()
    proc.wait(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped; lease released" in err
    assert "Traceback" not in err
