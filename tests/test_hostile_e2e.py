"""Hostile KEB text through the real pipeline: the simulator fails operations with the hostile
fixtures as their descriptions, the real CLI polls, the fake Slack receives over real HTTP, and
the terminal outputs (list, history, status, watch plain and JSON) are read back."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, write_config
from tests.fakeslack import FakeSlack
from tests.hostile import HOSTILE, assert_inert_in_slack, bad_characters
from tests.test_watch_tty import ANSI, Terminal
from watcher.sim import SimServer, Simulator
from watcher.sim.scenarios import OrchestrationSpec, ScenarioSpec

CHANNEL = "C0KYMA001"
HOSTILE_WORLD = ScenarioSpec(
    "hostile",
    "12 operations, 9 failing with hostile descriptions",
    (
        OrchestrationSpec(
            ops=12,
            workers=12,
            duration=(60.0, 120.0),
            failure_rate=0.75,
            reasons=HOSTILE,
            created=-1.0,
        ),
    ),
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Simulator, FakeSlack, Path]]:
    sim = Simulator(HOSTILE_WORLD, seed=2)
    keb = SimServer(sim).start()
    slack = FakeSlack(channels={"#kyma-upgrades": CHANNEL}).start()
    extra = (
        f'\n[slack]\ntoken = "xoxb-test-token"\nchannel = "#kyma-upgrades"\n'
        f'base_url = "{slack.api_url}"\n'
    )
    config = write_config(tmp_path / "watcher.toml", keb.url, sim.token, extra)
    yield sim, slack, config
    keb.stop()
    slack.stop()


def assert_terminal_safe(output: str) -> None:
    assert "\x1b" not in output
    assert not bad_characters(output.replace("\n", "")), bad_characters(output)


def test_hostile_descriptions_stay_data_in_slack_and_on_the_terminal(
    world: tuple[Simulator, FakeSlack, Path], cli: Cli
) -> None:
    sim, slack, config = world
    orch_id = sim.orchestration_ids()[0]
    assert cli("--config", str(config), "track", orch_id).code == 0
    for _ in range(30):
        result = cli("--config", str(config), "poll")
        assert result.code == 0, result.err
        assert_terminal_safe(result.out + result.err)
        if (
            sim.all_finished()
            and cli("--config", str(config), "list", "-o", "json").json()[0]["finished"]
        ):
            break
        sim.advance(60)
    else:
        raise AssertionError("the orchestration did not finish")

    messages = slack.messages(CHANNEL)
    assert len(messages) >= 3  # the card, a digest, the final summary
    for message in messages:
        assert_inert_in_slack(message.blocks, message.text)
    every = "\n".join(m.text for m in messages)
    assert "∗URGENT∗ rotate credentials" in every  # shown, as data
    assert slack.violations == []

    for args in (("list",), ("history", orch_id), ("status", orch_id)):
        text = cli("--config", str(config), *args)
        assert text.code == 0, text.err
        assert_terminal_safe(text.out + text.err)
        as_json = cli("--config", str(config), *args, "-o", "json")
        assert as_json.code == 0
        assert_terminal_safe(as_json.out)
        json.loads(as_json.out)  # still the same data, escaped by JSON
    history = cli("--config", str(config), "history", orch_id).out
    assert "osc52  osc8 link title  end" in history
    assert "fine # FAKE HEADER from KEB" in history  # one line, not two
    raw = json.dumps(cli("--config", str(config), "history", orch_id, "-o", "json").json())
    assert "\\u001b]52" in raw  # the JSON keeps KEB's text verbatim, escaped

    for output in ("text", "json"):
        watched = cli(
            "--config", str(config), "watch", orch_id, "--output", output, "--interval", "1s"
        )
        assert watched.code == 1, watched.err  # the orchestration failed
        assert_terminal_safe(watched.out + watched.err)
        assert "URGENT" in watched.out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_the_live_view_under_a_pty_shows_hostile_text_inert(tmp_path: Path) -> None:
    sim = Simulator(HOSTILE_WORLD, seed=2, speed=300.0)
    server = SimServer(sim).start()
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(KEB_URL=server.url, KEB_TOKEN=sim.token, TERM="xterm-256color", PYTHONUTF8="1")
    env.pop("WATCHER_CONFIG", None)
    argv = ["-m", "watcher", "watch", sim.orchestration_ids()[0], "--interval", "0.5s"]
    term = Terminal(argv, env, str(tmp_path), rows=40, cols=120)
    try:
        assert term.wait(timeout=60.0) == 1  # the orchestration failed
    finally:
        term.close()
        server.stop()
    screen = term.screen
    assert "Failures by reason" in ANSI.sub("", screen)
    assert "\x1b]" not in screen  # no OSC at all: no clipboard, hyperlink or title
    assert "\x9b" not in screen
    assert "\x9d" not in screen
    for sequence in ("\x1b[2J", "\x1b[H", "\x1b[10A", "\x1b[31mred", "\x07"):
        assert sequence not in screen, repr(sequence)
    assert not bad_characters(ANSI.sub("", screen).replace("\r", "").replace("\n", ""))
