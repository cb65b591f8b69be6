"""Conventions operators expect from a command line (issue 12): global options after the
command, unique ID prefixes, full UUIDs for `track`, accurate words, `completion`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, write_config
from watcher.core.wording import plural

A1 = "4ab15fee-0000-4000-8000-000000000001"
A2 = "4ab15fee-0000-4000-8000-000000000002"
B1 = "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11"


@pytest.fixture
def cfg(tmp_path: Path) -> str:
    """A configuration whose KEB is never reached by these tests."""
    return str(write_config(tmp_path / "watcher.toml", "http://127.0.0.1:9", "not-a-real-token"))


@pytest.mark.parametrize(
    "argv",
    [
        ("list", "--config", "{cfg}"),
        ("list", "-c", "{cfg}", "--output", "json"),
        ("list", "--output", "json", "--config={cfg}"),
        ("outbox", "list", "--config", "{cfg}"),
        ("history", A1, "--config", "{cfg}", "--verbose"),
        ("--debug", "untrack", A1, "-c", "{cfg}"),
        ("untrack", "--log-format", "json", A1, "-c", "{cfg}", "-v"),
    ],
)
def test_global_options_work_after_the_command(cli: Cli, cfg: str, argv: tuple[str, ...]) -> None:
    assert cli("--config", cfg, "track", "--no-check", A1).code == 0
    result = cli(*(a.format(cfg=cfg) for a in argv))
    assert result.code == 0, result.err
    assert "No such option" not in result.err


def test_a_config_after_the_command_is_the_one_used(cli: Cli, tmp_path: Path, cfg: str) -> None:
    """Not just accepted: the file given after the command is read (a missing one is exit 2
    naming it, whatever came before the command)."""
    missing = tmp_path / "missing.toml"
    result = cli("--config", cfg, "list", "--config", str(missing))
    assert result.code == 2
    assert "missing.toml: cannot read" in result.err
    for argv in (
        ("poll", "--config", str(missing)),
        ("outbox", "drop", "--all", "-c", str(missing)),
    ):
        result = cli(*argv)
        assert result.code == 2, argv
        assert "missing.toml" in result.err


def test_log_format_and_debug_after_the_command_configure_logging(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "watcher.toml", "http://127.0.0.1:9", "not-a-real-token")
    base = [sys.executable, "-m", "watcher"]
    subprocess.run(
        [*base, "track", "--no-check", A1, "-c", str(cfg)], check=True, capture_output=True
    )
    done = subprocess.run(
        [*base, "poll", "-c", str(cfg), "--log-format", "json", "--debug"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1  # nothing listens on port 9
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(entry["level"] == "DEBUG" for entry in logged), done.stderr


def test_track_accepts_only_full_uuids(cli: Cli, cfg: str, tmp_path: Path) -> None:
    for bad in ("not-a-uuid", "4ab15fee", A1 + "0", "orch-1", A1.replace("-", "")):
        result = cli("track", bad, "--config", cfg)
        assert result.code == 2, bad
        assert result.err.count("\n") == 1
        assert "is not an orchestration ID" in result.err
    assert not (tmp_path / "watcher.db").exists()  # refused before anything was written
    assert cli("track", "--no-check", A1.upper(), "--config", cfg).out == f"{A1}: tracking\n"


def test_unique_prefixes_name_tracked_orchestrations(cli: Cli, cfg: str) -> None:
    assert cli("track", "--no-check", A1, A2, B1, "-c", cfg).code == 0
    # unique: history, untrack, render --orchestration all accept 8+ characters
    assert cli("history", "5a3f1f5e", "-c", cfg).code == 0
    assert cli("history", "5A3F1F5E-8D2B", "-c", cfg).code == 0
    render = cli("render", "finished", "--orchestration", "5a3f1f5e", "-c", cfg)
    assert render.code == 2
    assert f"{B1} has no snapshot yet" in render.err  # resolved to the full ID
    # ambiguous, unknown, too short: exit 2, one line naming the problem
    cases = {
        "4ab15fee": "is ambiguous: it starts 2 IDs",
        "4ab15fee-0000-4000-8000-00000000000": "is ambiguous",
        "deadbeef": "matches no orchestration keb-watcher knows",
        "5a3f1f5": "too short: give at least 8 characters",
        "5a3f/1f5e": "is not an orchestration ID or the prefix of one",
    }
    for prefix, words in cases.items():
        for argv in (("history", prefix), ("untrack", prefix), ("status", prefix)):
            result = cli(*argv, "-c", cfg)
            assert result.code == 2, (argv, result)
            assert words in result.err, (argv, result.err)
            assert result.err.count("\n") == 1
    assert A1 in cli("history", "4ab15fee", "-c", cfg).err  # the candidates are named
    unique = cli("untrack", "4ab15fee-0000-4000-8000-000000000002", "-c", cfg)
    assert unique.out == f"{A2}: untracked\n"
    assert cli("untrack", "5a3f1f5e", "-c", cfg).out == f"{B1}: untracked\n"


def test_untrack_of_an_untracked_id_says_so(cli: Cli, cfg: str) -> None:
    assert cli("track", "--no-check", A1, "-c", cfg).code == 0
    assert cli("untrack", A1, "-c", cfg).out == f"{A1}: untracked\n"
    again = cli("untrack", "4ab15fee", "-c", cfg)  # still known (history kept): resolves
    assert again.code == 1
    assert again.out == f"{A1}: was not tracked\n"
    never = cli("untrack", B1, "-c", cfg)
    assert never.code == 1
    assert never.out == f"{B1}: was not tracked\n"


def test_a_prefix_without_a_config_file_asks_for_the_full_id(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"KEB_URL": "http://127.0.0.1:9", "KEB_TOKEN": "not-a-real-token"}
    result = cli("status", "5a3f1f5e", env=env)
    assert result.code == 2
    assert "give the full orchestration ID" in result.err
    assert not (tmp_path / "watcher.db").exists()


def test_status_takes_the_prefix_of_a_tracked_orchestration(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("small")
    orch_id = keb.sim.orchestration_ids()[0]
    assert cli("track", orch_id, "-c", str(keb.config)).code == 0
    result = cli("status", orch_id[:8], "-o", "json", "-c", str(keb.config))
    assert result.code == 0, result.err
    assert result.json()["orchestrationID"] == orch_id


def test_poll_counts_in_correct_plurals(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("small")
    cfg = str(keb.config)
    cli("track", *keb.sim.orchestration_ids(), "-c", cfg)
    first = cli("poll", "-c", cfg)
    assert first.code == 0
    assert ", 1 transition (full: baseline)" in first.out
    assert "1 transitions" not in first.out
    assert plural(1, "notification") == "1 notification"
    assert plural(0, "notification") == "0 notifications"


def test_list_columns_stay_aligned_before_a_baseline(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("small")
    cfg = str(keb.config)
    orch_id = keb.sim.orchestration_ids()[0]
    cli("track", "--no-check", orch_id, B1, "-c", cfg)
    cli("poll", "-c", cfg)  # B1 is unknown to KEB: "not found"; orch_id has a baseline
    cli("track", "--no-check", A1, "-c", cfg)  # no baseline yet
    lines = cli("list", "-c", cfg).out.splitlines()
    header = lines[0]
    starts = [header.index(name) for name in ("STATE", "AGE", "LAST POLL", "OPERATIONS")]
    rows = {line.split()[0]: line for line in lines[1:4]}
    assert rows[A1][starts[0] :].startswith("(no baseline yet)")
    for line in rows.values():
        for start in starts:
            assert line[start - 2 : start] == "  ", (line, start)  # a gap before every column
            assert line[start] != " ", (line, start)
    assert rows[orch_id][starts[0] :].startswith("in progress") or rows[orch_id][
        starts[0] :
    ].startswith("pending")


def test_completion_scripts(cli: Cli) -> None:
    bash = cli("completion", "bash")
    assert bash.code == 0
    assert "_WATCHER_COMPLETE=bash_complete" in bash.out
    assert "complete -o nosort -F _watcher_completion watcher" in bash.out
    assert cli("completion", "zsh").out.startswith("#compdef watcher")
    assert "complete --no-files --command watcher" in cli("completion", "fish").out
    assert cli("completion", "tcsh").code == 2


def test_completion_answers_from_the_real_command_line(tmp_path: Path) -> None:
    """What the bash script runs when Tab is pressed: commands, then a command's options."""
    env = {"PATH": "", "_WATCHER_COMPLETE": "bash_complete", "COMP_CWORD": "1"}
    words = subprocess.run(
        [sys.executable, "-m", "watcher"],
        env={**env, "COMP_WORDS": "watcher orch"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert words.stdout.split() == ["plain,orchestrations"]
    options = subprocess.run(
        [sys.executable, "-m", "watcher"],
        env={**env, "COMP_WORDS": "watcher history --t", "COMP_CWORD": "2"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert options.stdout.split() == ["plain,--tail"]
