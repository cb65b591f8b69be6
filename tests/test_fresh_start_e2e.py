"""A fresh configuration with no database yet: `watch` needs none, `watch --track` and `run`
create it (a container must not crash-loop before anyone can `track`), everything else that
needs one still exits 2 naming it. Through the real CLI against the simulator."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Keb, Result, write_config
from tests.test_run_e2e import ROOT, Service, free_port
from tests.test_watch import SimTime
from watcher.cli import main
from watcher.faces.watch.command import make_watch_command
from watcher.sim import SimServer, Simulator


def database(keb: Keb) -> Path:
    return keb.config.parent / "watcher.db"


def watch(cli: Cli, monkeypatch: pytest.MonkeyPatch, keb: Keb, *args: str, **env: str) -> Result:
    """`watcher --config <keb's> watch ARGS` on the simulator's clock, with no database made
    beforehand (unlike tests/test_watch.py's fixture)."""
    monkeypatch.setitem(main.commands, "watch", make_watch_command(SimTime(keb).hooks()))
    return cli("--config", str(keb.config), "watch", *args, env=env or None)


def test_watch_with_a_config_file_and_no_database_follows_in_memory_and_creates_nothing(
    keb_factory: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    keb = keb_factory("small")
    orch = keb.sim.orchestration_ids()[0]
    result = watch(cli, monkeypatch, keb, orch)
    assert result.code == 0, result.err
    assert f"summary: {orch}: orchestration succeeded" in result.out
    assert result.err == ""
    assert not database(keb).exists()


def test_watch_of_a_prefix_with_no_database_asks_for_the_full_id(
    keb_factory: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    keb = keb_factory("small")
    orch = keb.sim.orchestration_ids()[0]
    result = watch(cli, monkeypatch, keb, orch[:8])
    assert result.code == 2
    assert result.err.startswith(f"watcher: '{orch[:8]}': give the full orchestration ID")
    assert len(result.err.splitlines()) == 1
    assert not database(keb).exists()


def test_watch_track_on_a_fresh_config_creates_the_database_and_tracks(
    keb_factory: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    keb = keb_factory("small")
    orch = keb.sim.orchestration_ids()[0]
    result = watch(cli, monkeypatch, keb, orch, "--track")
    assert result.code == 0, result.err
    assert stat.S_IMODE(database(keb).stat().st_mode) == 0o600
    listed = cli("--config", str(keb.config), "list", "-o", "json")
    assert listed.code == 0, listed.err
    assert [(t["orchestrationID"], t["state"]) for t in listed.json()] == [(orch, "succeeded")]
    history = cli("--config", str(keb.config), "history", orch, "-o", "json").json()
    assert history[-1]["to"] == "succeeded"


def test_poll_still_refuses_to_start_an_empty_database(keb_factory: Any, cli: Cli) -> None:
    keb = keb_factory("small")
    result = cli("--config", str(keb.config), "poll")
    assert result.code == 2
    assert result.err == (
        f"watcher: {database(keb)}: no database here "
        "(check storage.path; `watcher track ID` creates it)\n"
    )
    assert not database(keb).exists()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[Simulator, Path]]:
    sim = Simulator.from_scenario("small", seed=3, speed=120.0)
    server = SimServer(sim).start()
    config = write_config(tmp_path / "watcher.toml", server.url, sim.token, 'interval = "1s"\n')
    yield sim, config
    server.stop()


@pytest.mark.slow
def test_run_on_a_fresh_deployment_creates_the_database_and_is_ready_for_track(
    fresh: tuple[Simulator, Path], cli: Cli
) -> None:
    sim, base = fresh
    port = free_port()
    config = base.parent / "run.toml"
    config.write_text(
        base.read_text() + f'\n[service]\nlisten = "127.0.0.1:{port}"\nready_after_intervals = 3\n'
    )
    db = base.parent / "watcher.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    service = Service(proc, port)
    try:
        service.wait_for("nothing tracked yet (`watcher track ID` adds one)")
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        deadline = time.monotonic() + 15
        while service.get("/readyz")[0] != 200:
            assert proc.poll() is None, service.log
            assert time.monotonic() < deadline, service.get("/readyz")
            time.sleep(0.2)
        orch = sim.orchestration_ids()[0]
        tracked = cli("--config", str(config), "track", orch)
        assert tracked.code == 0, tracked.err
        deadline = time.monotonic() + 30
        while True:
            listed = cli("--config", str(config), "list", "-o", "json").json()
            if listed[0]["state"] == "succeeded":
                break
            assert time.monotonic() < deadline, service.log
            time.sleep(0.3)
    finally:
        code = service.stop()
    assert code == 0, service.log
    assert "Traceback" not in service.log
