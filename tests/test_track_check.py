"""`track` asks KEB whether each ID exists (a typo is an error now, `--no-check` skips the
question), and one-shot commands show the user one line, their retry warnings only with
`--debug`. Through the real CLI against the simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, write_config

ROOT = Path(__file__).resolve().parents[1]
TYPO = "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11"


def database(config: Path) -> Path:
    return config.parent / "watcher.db"


def test_track_of_an_id_keb_does_not_know_is_an_error_and_creates_nothing(
    cli: Cli, keb_factory: Any
) -> None:
    keb = keb_factory("small")
    known = keb.sim.orchestration_ids()[0]
    result = cli("--config", str(keb.config), "track", known, TYPO)
    assert result.code == 1
    assert result.out == ""
    assert result.err == (
        f"watcher: {TYPO}: KEB knows no such orchestration "
        "(`watcher orchestrations` lists the IDs it knows)\n"
        "watcher: nothing tracked\n"
    )
    assert not database(keb.config).exists()


def test_track_of_known_ids_tracks_them(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("demo")
    ids = keb.sim.orchestration_ids()[:2]
    result = cli("--config", str(keb.config), "track", *ids)
    assert result.code == 0, result.err
    assert result.out == "".join(f"{i}: tracking\n" for i in ids)
    listed = cli("--config", str(keb.config), "list", "-o", "json").json()
    assert sorted(t["orchestrationID"] for t in listed) == sorted(ids)


def test_track_no_check_tracks_without_asking_keb(cli: Cli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "watcher.toml", "http://127.0.0.1:9", "keb-token-1234")
    asked = cli("--config", str(config), "track", TYPO)
    assert asked.code == 1
    assert asked.err.count("\n") == 1
    assert asked.err.startswith("watcher: KEB GET /orchestrations/")
    assert "cannot connect to http://127.0.0.1:9" in asked.err
    assert asked.err.endswith("(`--no-check` tracks without asking KEB)\n")
    assert not database(config).exists()
    skipped = cli("--config", str(config), "track", "--no-check", TYPO)
    assert skipped.code == 0, skipped.err
    assert skipped.out == f"{TYPO}: tracking\n"


@pytest.mark.parametrize("command", [["status", TYPO], ["orchestrations"], ["track", TYPO]])
def test_a_one_shot_command_against_a_wrong_url_prints_one_line(
    cli: Cli, tmp_path: Path, command: list[str]
) -> None:
    config = write_config(tmp_path / "watcher.toml", "http://127.0.0.1:9", "keb-token-1234")
    config.write_text(config.read_text().replace("retries = 1", "retries = 3"))
    result = cli("--config", str(config), *command)
    assert result.code == 1
    assert result.err.count("\n") == 1, result.err
    assert "(gave up after 3 attempts)" in result.err
    config.chmod(0o600)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    debug = subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(config), *command, "--debug"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert debug.returncode == 1
    assert debug.stderr.count("; retrying in ") == 2, debug.stderr
