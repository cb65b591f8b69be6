"""Templates never break delivery: any error while rendering, or a template over its time
budget, sends the plain message, records the error on the outbox row and lets the queue move on;
`render` and `check-config` say what went wrong in one line, with the template and line."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, write_config
from tests.fakeslack import FakeSlack
from watcher.notify.render import Renderer
from watcher.notify.samples import SAMPLES
from watcher.sim import SimServer, Simulator

CHANNEL = "C0KYMA001"
BROKEN = {
    "division": ("card.j2", "# ok\nline two {{ 1 / 0 }}\n", "card.j2, line 2: ZeroDivisionError"),
    "recursion": (
        "card.j2",
        "{% macro f(x) %}{{ f(x) }}{% endmacro %}\n\n{{ f(1) }}\n",
        "card.j2, line 1: RecursionError",
    ),
    "runaway": (
        "card.j2",
        "x\n\n{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        "card.j2, line 3: TemplateTimeout: took longer than 2s",
    ),
}


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_render_and_check_config_name_the_template_and_line(
    tmp_path: Path, templates: Path, cli: Cli, case: str
) -> None:
    name, body, needle = BROKEN[case]
    (templates / name).write_text(body)
    config = write_config(
        tmp_path / "watcher.toml",
        "http://127.0.0.1:9",
        "keb-token-1234",
        f'\n[templates]\ndir = "{templates}"\n',
    )
    started = time.monotonic()
    rendered = cli("--config", str(config), "render", "progress")
    assert time.monotonic() - started < 10
    assert rendered.code == 1
    assert rendered.out.startswith("keb-watcher progress: orchestration 5a3f")  # the fallback
    (line,) = rendered.err.splitlines()
    assert line.startswith(f"watcher: template {needle}")
    checked = cli("--config", str(config), "check-config")
    assert checked.code == 2
    (same,) = [x for x in checked.err.splitlines() if "card.j2" in x]
    assert same.startswith(f"watcher: template {needle}")


@pytest.fixture
def world(tmp_path: Path, templates: Path) -> Iterator[tuple[Simulator, FakeSlack, Path]]:
    sim = Simulator.from_scenario("small", seed=2)
    keb = SimServer(sim).start()
    slack = FakeSlack(channels={"#kyma-upgrades": CHANNEL}).start()
    extra = (
        f'\n[slack]\ntoken = "xoxb-test-token"\nchannel = "#kyma-upgrades"\n'
        f'base_url = "{slack.api_url}"\ngive_up_after = "1m"\n\n[templates]\ndir = "{templates}"\n'
    )
    config = write_config(tmp_path / "watcher.toml", keb.url, sim.token, extra)
    yield sim, slack, config
    keb.stop()
    slack.stop()


def test_a_failing_template_sends_the_plain_message_and_the_queue_moves_on(
    world: tuple[Simulator, FakeSlack, Path], templates: Path, cli: Cli
) -> None:
    sim, slack, config = world
    (templates / "card.j2").write_text(BROKEN["division"][1])
    cfg = str(config)
    assert cli("--config", cfg, "track", *sim.orchestration_ids()).code == 0
    polled = cli("--config", cfg, "poll")
    assert polled.code == 0, polled.err
    assert "Traceback" not in polled.err
    card = slack.messages(CHANNEL)[0]
    assert card.text.startswith("keb-watcher tracking started: orchestration")
    with sqlite3.connect(config.parent / "watcher.db") as db:
        rows = db.execute(
            "SELECT status, render_error FROM outbox WHERE kind = 'tracking_started'"
        ).fetchall()
    assert [status for status, _ in rows] == ["sent"]
    assert rows[0][1].startswith("template card.j2, line 2: ZeroDivisionError")
    sim.advance(400)
    assert cli("--config", cfg, "poll").code == 0  # later notifications go out as well
    with sqlite3.connect(config.parent / "watcher.db") as db:
        statuses = [row[0] for row in db.execute("SELECT status FROM outbox ORDER BY id")]
    assert statuses.count("sent") >= 2, statuses  # the card's edits too (plain, like it)
    assert not {"pending", "failed", "dead"} & set(statuses), statuses
    assert slack.messages(CHANNEL)[0].edits >= 1


def test_the_time_budget_stops_a_runaway_template(templates: Path) -> None:
    (templates / "card.j2").write_text(
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    )
    renderer = Renderer(templates)
    renderer.budget.seconds = 0.2
    started = time.monotonic()
    rendered = renderer.render("progress", SAMPLES["progress"])
    assert time.monotonic() - started < 2
    assert rendered.error == "template card.j2, line 1: TemplateTimeout: took longer than 0.2s"


def test_under_run_a_failing_template_neither_blocks_nor_loops(
    world: tuple[Simulator, FakeSlack, Path], templates: Path
) -> None:
    sim, slack, config = world
    (templates / "card.j2").write_text(BROKEN["recursion"][1])
    config.chmod(0o600)
    text = config.read_text().replace("[poll]\n", '[poll]\ninterval = "1s"\njitter = "0s"\n')
    config.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    base = [sys.executable, "-m", "watcher", "--config", str(config)]
    subprocess.run([*base, "track", *sim.orchestration_ids()], env=env, check=True)
    proc = subprocess.Popen([*base, "run"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while len(slack.messages(CHANNEL)) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert slack.messages(CHANNEL)[0].text.startswith("keb-watcher tracking started")
    with sqlite3.connect(config.parent / "watcher.db") as db:
        rows = db.execute("SELECT status, attempts, render_error FROM outbox").fetchall()
    assert rows[0][:2] == ("sent", 1)
    assert rows[0][2].startswith("template card.j2, line 1: RecursionError")
