"""A command checks only the configuration it uses (docs/contract.md §2.2): `list`,
`history`, `outbox`, `render` and `untrack` read the database and templates alone, so they work
with the KEB and Slack `${VAR}`s unset; the commands that need a secret still fail with one
line naming it. Through the real CLI, against the simulator and the fake Slack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.fakeslack import FakeSlack
from watcher.app.factories import destination, keb_client
from watcher.config import load_config
from watcher.errors import ConfigError
from watcher.sim import SimServer, Simulator

SECRETS = ("KEB_TOKEN", "SLACK_BOT_TOKEN", "DASHBOARD_TOKEN")


@pytest.fixture
def recorded(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, str]]:
    """A config whose secrets are all `${VAR}`s, and a database that recorded one finished
    orchestration (its notifications sent) while they were set. Then they are unset."""
    sim = Simulator.from_scenario("small", seed=2)
    keb = SimServer(sim).start()
    slack = FakeSlack(post_interval=0.0).start()
    config = tmp_path / "watcher.toml"
    config.write_text(
        f'[keb]\nurl = "{keb.url}"\ntoken = "${{KEB_TOKEN}}"\nname = "prod-eu"\nretries = 1\n\n'
        f'[storage]\npath = "{tmp_path / "watcher.db"}"\n\n'
        f'[slack]\ntoken = "${{SLACK_BOT_TOKEN}}"\nchannel = "#kyma-upgrades"\n'
        f'base_url = "{slack.api_url}"\n\n'
        '[service]\ndashboard_token = "${DASHBOARD_TOKEN}"\n'
    )
    config.chmod(0o600)
    orch = sim.orchestration_ids()[0]
    env = {"KEB_TOKEN": sim.token, "SLACK_BOT_TOKEN": slack.token, "DASHBOARD_TOKEN": "d" * 20}
    assert cli("--config", str(config), "track", orch, env=env).code == 0
    sim.run_until_finished()
    polled = cli("--config", str(config), "poll", env=env)
    assert polled.code == 0, polled.err
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    yield config, orch
    keb.stop()
    slack.stop()


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["list", "--output", "json"],
        ["history", "{orch}"],
        ["history", "{prefix}", "--output", "json"],
        ["outbox", "list"],
        ["outbox", "retry", "999"],
        ["render", "finished", "--orchestration", "{orch}"],
        ["render", "failure_digest"],
        ["untrack", "{prefix}"],
    ],
)
def test_database_commands_work_with_every_secret_unset(
    recorded: tuple[Path, str], cli: Cli, args: list[str]
) -> None:
    config, orch = recorded
    argv = [a.format(orch=orch, prefix=orch[:8]) for a in args]
    result = cli("--config", str(config), *argv)
    assert result.code == 0, result.err
    assert result.err == ""
    assert result.out.strip()


def test_what_they_print_is_what_the_database_holds(recorded: tuple[Path, str], cli: Cli) -> None:
    config, orch = recorded
    listed = cli("--config", str(config), "list", "--output", "json").json()
    assert [(t["orchestrationID"], t["state"]) for t in listed] == [(orch, "succeeded")]
    history = cli("--config", str(config), "history", orch, "--output", "json").json()
    assert history[-1]["to"] == "succeeded"
    rendered = cli("--config", str(config), "render", "finished", "--orchestration", orch)
    assert "prod-eu" in rendered.out  # keb.name is still read


@pytest.mark.parametrize(
    ("args", "variable", "key"),
    [
        (["poll"], "KEB_TOKEN", "keb.token"),
        (["status", "{orch}"], "KEB_TOKEN", "keb.token"),
        (["orchestrations"], "KEB_TOKEN", "keb.token"),
        (["check-config"], "KEB_TOKEN", "keb.token"),
        (["notify-test"], "KEB_TOKEN", "keb.token"),
        (["track", "{orch}"], "KEB_TOKEN", "keb.token"),
    ],
)
def test_commands_that_need_a_secret_fail_with_one_line_naming_it(
    recorded: tuple[Path, str], cli: Cli, args: list[str], variable: str, key: str
) -> None:
    config, orch = recorded
    result = cli("--config", str(config), *[a.format(orch=orch) for a in args])
    assert result.code == 2
    assert result.err == (
        f"watcher: {config}: {key}: ${{{variable}}} names an unset environment variable\n"
    )


def test_notify_test_with_only_the_slack_token_unset_names_it(
    recorded: tuple[Path, str], cli: Cli
) -> None:
    config, _ = recorded
    result = cli("--config", str(config), "notify-test", env={"KEB_TOKEN": "k" * 20})
    assert result.code == 2
    assert result.err == (
        f"watcher: {config}: slack.token: ${{SLACK_BOT_TOKEN}} names an unset environment "
        "variable\n"
    )


def test_a_local_load_keeps_the_error_and_raises_it_when_the_section_is_used(
    tmp_path: Path,
) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text(
        '[keb]\nurl = "${KEB_URL}"\ntoken = "${KEB_TOKEN}"\nname = "prod"\n\n'
        '[slack]\nwebhook_url = "${HOOK}"\n'
    )
    config = load_config(path, {}, local=True)
    assert config.keb.token is None
    assert config.slack.webhook_url is None
    assert config.keb.name == "prod"
    with pytest.raises(ConfigError, match=r"keb\.url: \$\{KEB_URL\} names an unset"):
        config.require("keb")
    with pytest.raises(ConfigError, match=r"slack\.webhook_url: \$\{HOOK\} names an unset"):
        config.require("slack")
    config.require("storage")  # nothing unset there
    with pytest.raises(ConfigError, match=r"keb\.url: \$\{KEB_URL\} names an unset"):
        keb_client(config)  # what would reach KEB or Slack asks first
    with pytest.raises(ConfigError, match=r"slack\.webhook_url: \$\{HOOK\} names an unset"):
        destination(config)
    with pytest.raises(ConfigError, match=r"keb\.url: \$\{KEB_URL\} names an unset"):
        load_config(path, {})  # every other command: an error at once, as before


def test_a_local_load_still_refuses_what_no_command_could_use(tmp_path: Path) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text('[keb]\nurl = "http://k"\nname = "${LANDSCAPE}"\n')
    with pytest.raises(ConfigError, match=r"keb\.name: \$\{LANDSCAPE\} names an unset"):
        load_config(path, {}, local=True)  # the label is rendered
    path.write_text('[keb]\nurl = "http://k"\n\n[storage]\npath = "${DATA}/watcher.db"\n')
    with pytest.raises(ConfigError, match=r"storage\.path: \$\{DATA\} names an unset"):
        load_config(path, {}, local=True)
