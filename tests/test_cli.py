"""The command line: help with examples, exit codes, one-line errors, JSON shapes, secrets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from tests.conftest import Cli
from watcher.cli import main
from watcher.store.database import Store

README = Path(__file__).resolve().parents[1] / "README.md"


def commands() -> list[str]:
    return sorted(main.list_commands(click.Context(main)))


@pytest.mark.parametrize("name", commands())
def test_every_command_has_help_with_an_example(cli: Cli, name: str) -> None:
    result = cli(name, "--help")
    assert result.code == 0
    assert "Example" in result.out, f"`watcher {name} --help` shows no example"


@pytest.mark.parametrize("name", commands())
def test_every_command_is_documented_in_the_readme(name: str) -> None:
    assert f"watcher {name}" in README.read_text(), f"README.md does not document {name}"


def test_python_dash_m_is_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "Follow Kyma Environment Broker" in done.stdout


def test_missing_config_file_is_exit_2_in_one_line(cli: Cli, tmp_path: Path) -> None:
    result = cli("--config", str(tmp_path / "nope.toml"), "list")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "nope.toml: cannot read" in result.err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[keb]\nurl = "http://x"\n[poll]\nintervall = "5s"\n', "poll.intervall: unknown key"),
        ('[keb]\nurl = "http://x"\n[poll]\ninterval = "5 minutes"\n', "poll.interval"),
        ('[keb]\nurl = "http://x"\n[poll]\ncron = "61 * * * *"\n', "poll.cron"),
        ('[keb]\ntoken = "x"\n', "keb.url"),
        ('[keb]\nurl = "http://x"\ntoken = "${NOT_SET_ANYWHERE}"\n', "NOT_SET_ANYWHERE"),
        ("[keb\n", "invalid TOML"),
    ],
)
def test_bad_config_is_exit_2_naming_the_key(
    cli: Cli, tmp_path: Path, text: str, needle: str
) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text(text)
    # `list` reads the database alone: an unset KEB token is no error for it (contract §2.2).
    local = () if "${" in text else (("list",),)
    for command in (("poll",), ("check-config",), *local):
        result = cli("--config", str(path), *command)
        assert result.code == 2, (command, result)
        assert needle in result.err
        assert len(result.err.strip().splitlines()) == 1
        assert "Traceback" not in result.err


def test_check_config_hides_secrets(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text('[keb]\nurl = "http://127.0.0.1:9"\ntoken = "${SECRET_TOKEN}"\n')
    result = cli("--config", str(path), "check-config", env={"SECRET_TOKEN": "s3cr3t-value"})
    assert result.code == 0, result.err
    assert "configuration OK" in result.out
    assert "s3cr3t-value" not in result.out + result.err


def test_check_config_online_reaches_keb(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("demo")
    result = cli("--config", str(keb.config), "check-config", "--online")
    assert result.code == 0, result.err
    assert "KEB: reachable, token accepted, 5 orchestrations" in result.out
    keb.sim.faults.inject("rbac", count=None)
    rejected = cli("--config", str(keb.config), "check-config", "--online")
    assert rejected.code == 1
    assert "RBAC: access denied" in rejected.err


def test_usage_errors_are_exit_2(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("small")
    assert cli("--config", str(keb.config), "track", "not/an/id").code == 2
    assert not (keb.config.parent / "watcher.db").exists()  # a bad track creates nothing
    assert cli("--config", str(keb.config), "track", keb.sim.orchestration_ids()[0]).code == 0
    short = cli("--config", str(keb.config), "history", "abc")
    assert short.code == 2
    assert "too short" in short.err
    unknown = cli("--config", str(keb.config), "history", "00000000-0000-4000-8000-000000000000")
    assert unknown.code == 2
    assert "not tracked" in unknown.err
    assert cli("--config", str(keb.config), "list", "--output", "yaml").code == 2
    assert cli("no-such-command").code == 2


def test_status_works_from_environment_alone(
    cli: Cli, keb_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keb = keb_factory("small")
    monkeypatch.chdir(tmp_path)  # no watcher.toml here
    orch_id = keb.sim.orchestration_ids()[0]
    env = {"KEB_URL": keb.server.url, "KEB_TOKEN": keb.sim.token}
    text = cli("status", orch_id, env=env)
    assert text.code == 0, text.err
    assert "State         in progress" in text.out or "State         pending" in text.out
    assert "Operations" in text.out
    data = cli("status", orch_id, "--output", "json", env=env).json()
    assert data["orchestrationID"] == orch_id
    assert "operationStats" in data
    missing = cli("status", "00000000-0000-4000-8000-000000000000", env=env)
    assert missing.code == 1
    assert "404 Not Found" in missing.err
    bad = cli("status", orch_id, env={"KEB_URL": keb.server.url, "KEB_TOKEN": "not-a-jwt"})
    assert bad.code == 1
    assert "401 Unauthorized: Jwt verification fails" in bad.err
    assert "not-a-jwt" not in bad.err
    assert not (tmp_path / "watcher.db").exists()


def test_env_wins_over_the_file_for_status(cli: Cli, keb_factory: Any, tmp_path: Path) -> None:
    keb = keb_factory("small")
    path = tmp_path / "other.toml"
    path.write_text('[keb]\nurl = "http://127.0.0.1:9"\ntoken = "wrong-token"\n')
    orch_id = keb.sim.orchestration_ids()[0]
    env = {"KEB_URL": keb.server.url, "KEB_TOKEN": keb.sim.token}
    assert cli("--config", str(path), "status", orch_id, env=env).code == 0


def test_list_and_history_json_shapes(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("small")
    cfg = str(keb.config)
    Store(keb.config.parent / "watcher.db").close()  # as `track` then `untrack` leave it
    assert "nothing is tracked" in cli("--config", cfg, "list").out
    orch_id = keb.sim.orchestration_ids()[0]
    assert cli("--config", cfg, "track", orch_id, "--channel", "#kyma-upgrades").code == 0
    assert cli("--config", cfg, "poll").code == 0
    keb.sim.advance(400)
    assert cli("--config", cfg, "poll").code == 0
    [item] = cli("--config", cfg, "list", "-o", "json").json()
    assert item["orchestrationID"] == orch_id
    assert item["channel"] == "#kyma-upgrades"
    assert set(item) >= {"state", "counts", "operations", "finished", "lastSuccessAt", "lastError"}
    history = cli("--config", cfg, "history", orch_id, "-o", "json").json()
    assert history[0]["kind"] == "baseline"
    for t in history:
        assert set(t) == {
            "at",
            "kind",
            "orchestrationID",
            "operationID",
            "runtimeID",
            "shootName",
            "from",
            "to",
            "via",
            "description",
            "detail",
            "key",
        }
    assert len({t["key"] for t in history}) == len(history)
    text = cli("--config", cfg, "history", orch_id).out.splitlines()
    assert len(text) == len(history)
    assert "baseline" in text[0]


def test_untrack_keeps_history(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("small")
    cfg = str(keb.config)
    orch_id = keb.sim.orchestration_ids()[0]
    cli("--config", cfg, "track", orch_id)
    cli("--config", cfg, "poll")
    assert cli("--config", cfg, "untrack", orch_id).code == 0
    assert cli("--config", cfg, "list", "-o", "json").json() == []
    assert cli("--config", cfg, "history", orch_id, "-o", "json").json()[0]["kind"] == "baseline"
    assert cli("--config", cfg, "untrack", "00000000-0000-4000-8000-000000000000").code == 1


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "--debug", "--config", str(tmp_path / "x.toml"), "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" in done.stderr


def test_json_output_is_valid_json(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("small")
    Store(keb.config.parent / "watcher.db").close()
    out = cli("--config", str(keb.config), "list", "--output", "json").out
    assert json.loads(out) == []


def test_each_cycle_records_how_many_keb_requests_it_made(cli: Cli, keb_factory: Any) -> None:
    import sqlite3

    keb = keb_factory("small")
    cfg = str(keb.config)
    cli("--config", cfg, "track", *keb.sim.orchestration_ids())
    assert cli("--config", cfg, "poll").code == 0  # the baseline: a full sweep
    assert cli("--config", cfg, "poll").code == 0  # nothing changed: one GET
    conn = sqlite3.connect(keb.config.parent / "watcher.db")
    counts = [row[0] for row in conn.execute("SELECT requests FROM cycles ORDER BY id")]
    assert counts[0] >= 3
    assert counts[1] == 1


GLOBAL_OPTIONS = {"-c", "--config", "--debug", "-v", "--verbose", "--log-format", "-h", "--help"}


def readme_command_table() -> dict[str, str]:
    """``watcher NAME ...`` usage of each row of the README's command table, by NAME."""
    text = README.read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("| `watcher "):
            usage = line.split("`")[1].replace("\\|", "|")
            rows[usage.split()[1]] = usage
    return rows


def test_readme_command_table_has_one_row_per_command() -> None:
    assert sorted(readme_command_table()) == commands()


@pytest.mark.parametrize("name", commands())
def test_readme_command_table_agrees_with_help(name: str) -> None:
    """Every option a row shows is one of the command's (as --help lists it), and every
    list of choices it shows (``-o text|json``) is the option's choices."""
    usage = readme_command_table()[name]
    command = main.get_command(click.Context(main), name)
    assert command is not None
    # A group (``fleet``) shows its subcommands' options and arguments in one row.
    params = list(command.params)
    if isinstance(command, click.Group):
        params += [p for sub in command.commands.values() for p in sub.params]
    options: dict[str, click.Option] = {}
    for param in params:
        if isinstance(param, click.Option):
            for flag in (*param.opts, *param.secondary_opts):
                options[flag] = param
    shown = re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)(?: ([a-z]+(?:\|[a-z]+)+))?", usage)
    for flag, choices in shown:
        assert flag in options, f"README shows {flag}, which `watcher {name}` does not have"
        kind = options[flag].type
        if choices:
            assert isinstance(kind, click.Choice), f"{name} {flag}: no choices in --help"
            assert set(choices.split("|")) == set(map(str, kind.choices)), usage
    arguments = [p for p in params if isinstance(p, click.Argument)]
    rest = re.sub(r"\[-[^\]]*\](\.\.\.)?", " ", " ".join(usage.split()[2:]))
    rest = re.sub(r"--?[a-z][a-z-]*( (?:[A-Z]+|[a-z]+(?:\|[a-z]+)+))?", " ", rest)
    assert bool(arguments) == bool(rest.split()), (
        f"README's row for {name}: positional arguments differ from --help ({rest.strip()!r})"
    )


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("track", "--no-check"),
        ("silence", "--for"),
        ("silence", "--reason"),
        ("list", "--state"),
        ("orchestrations", "--state"),
        ("history", "--follow"),
    ],
)
def test_options_added_in_issue_21_show_an_example_in_help(name: str, flag: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    [option] = [p for p in command.params if isinstance(p, click.Option) and flag in p.opts]
    assert option.help is not None
    assert re.search(r"\b(e\.g\.|Example:)", option.help), option.help
    assert flag in option.help or "watcher " in option.help, option.help
