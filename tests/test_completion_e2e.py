"""Shell completion of tracked IDs and state names, as the shell scripts ask for it: the real
`watcher` process with `_WATCHER_COMPLETE` set, reading the configuration in use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli, write_config

IDS = (
    "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11",
    "5a3f1f5e-8dff-4f0c-9b8e-0f5c2e7d9a12",
    "9d7cc285-1a60-45c6-97b4-49d59f40007e",
)


def complete(words: str, cwd: Path, **env: str) -> list[str]:
    """What bash's completion function gets for ``words`` (the last word is completed)."""
    parts = words.split(" ")
    done = subprocess.run(
        [sys.executable, "-m", "watcher"],
        env={
            "PATH": "",
            "_WATCHER_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=60,
    )
    assert done.stderr == ""
    return [line.split(",", 1)[1] for line in done.stdout.split()]


@pytest.fixture
def tracked(tmp_path: Path, cli: Cli) -> Path:
    config = write_config(tmp_path / "watcher.toml", "http://127.0.0.1:9", "${KEB_TOKEN}")
    assert (
        cli("track", "--no-check", *IDS, "-c", str(config), env={"KEB_TOKEN": "k" * 20}).code == 0
    )
    return config


@pytest.mark.parametrize(
    "command",
    [
        "history",
        "untrack",
        "status",
        "watch",
        "silence",
        "unsilence",
        "render finished --orchestration",
    ],
)
def test_tracked_ids_complete_where_a_command_takes_one(
    tracked: Path, tmp_path: Path, command: str
) -> None:
    cfg = str(tracked)
    # The token's ${KEB_TOKEN} is unset here: completion reads the database alone.
    assert complete(f"watcher -c {cfg} {command} 5a3f", tmp_path) == list(IDS[:2])
    assert complete(f"watcher -c {cfg} {command} 5a3f1f5e-8df", tmp_path) == [IDS[1]]
    assert complete(f"watcher -c {cfg} {command} ", tmp_path) == list(IDS)


def test_ids_come_from_the_configuration_in_use(tracked: Path, tmp_path: Path) -> None:
    assert complete("watcher history 9d", tmp_path, WATCHER_CONFIG=str(tracked)) == [IDS[2]]
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    assert complete("watcher history 9d", elsewhere) == []  # no ./watcher.toml: nothing, quietly
    missing = write_config(elsewhere / "watcher.toml", "http://127.0.0.1:9", "t" * 20)
    assert complete(f"watcher -c {missing} history 9d", elsewhere) == []  # no database yet


@pytest.mark.parametrize(
    ("typed", "offered"),
    [
        ("", ["pending", "inprogress", "canceling", "retrying", "succeeded", "failed", "canceled"]),
        ("in", ["inprogress"]),
        ("Fa", ["failed"]),
        ("failed,c", ["failed,canceling", "failed,canceled"]),
        (
            "failed,canceled,",
            [
                "failed,canceled,pending",
                "failed,canceled,inprogress",
                "failed,canceled,canceling",
                "failed,canceled,retrying",
                "failed,canceled,succeeded",
            ],
        ),
    ],
)
def test_state_names_complete_after_state(tmp_path: Path, typed: str, offered: list[str]) -> None:
    for command in ("list", "orchestrations"):
        assert complete(f"watcher {command} --state {typed}", tmp_path) == offered
