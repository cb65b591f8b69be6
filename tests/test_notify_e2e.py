"""Notifications end to end: the simulator as KEB, a fake Slack Web API over real HTTP, and
the real CLI (`watcher poll` in-process, or as a process killed with SIGKILL)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, write_config
from tests.fakeslack import FakeSlack, Message
from tests.slack_rig import CHANNEL, EVENT, SlackRig
from watcher.sim import SimServer, Simulator
from watcher.sim.scenarios import ALL_REASONS, OrchestrationSpec, ScenarioSpec

DIGEST = ScenarioSpec(
    "digest",
    "2,000 operations, 150 failures over 4 reasons",
    (
        OrchestrationSpec(
            ops=2000,
            workers=200,
            duration=(300.0, 900.0),
            failure_rate=0.075,
            reasons=ALL_REASONS,
            created=-1.0,
        ),
    ),
)


class Setup(SlackRig):
    """One KEB, one Slack channel, one configuration."""


def make_setup(
    tmp_path: Path,
    sim: Simulator,
    *,
    extra: str = "",
    slack_options: dict[str, Any] | None = None,
    slack_config: str | None = None,
) -> Setup:
    keb = SimServer(sim).start()
    slack = FakeSlack(
        channels={"#kyma-upgrades": CHANNEL, "#alerts": "C0ALERT01"}, **(slack_options or {})
    ).start()
    section = (
        slack_config
        if slack_config is not None
        else (
            '\n[slack]\ntoken = "xoxb-test-token"\nchannel = "#kyma-upgrades"\n'
            f'base_url = "{slack.api_url}"\n'
        )
    )
    config = write_config(tmp_path / "watcher.toml", keb.url, sim.token, extra + section)
    return Setup(sim, keb, slack, config)


@pytest.fixture
def setups() -> Iterator[list[Setup]]:
    made: list[Setup] = []
    yield made
    for s in made:
        s.keb.stop()
        s.slack.stop()


def run_to_end(s: Setup, cli: Cli, steps: int, *, max_polls: int = 60) -> list[int]:
    """Poll until the orchestrations ended and everything is delivered; returns exit codes."""
    codes = []
    for _ in range(max_polls):
        result = cli("--config", str(s.config), "poll")
        codes.append(result.code)
        listed = cli("--config", str(s.config), "list", "-o", "json").json()
        if s.sim.all_finished() and all(t["finished"] for t in listed):
            return codes
        s.sim.advance(steps)
    raise AssertionError("did not finish")


def texts(messages: list[Message]) -> str:
    return "\n".join(m.text for m in messages)


def test_two_thousand_operations_and_150_failures_are_a_handful_of_posts(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    s = make_setup(tmp_path, Simulator(DIGEST, seed=3), slack_options={"post_interval": 1.5})
    setups.append(s)
    cli("--config", str(s.config), "track", *s.sim.orchestration_ids())
    codes = run_to_end(s, cli, steps=900)
    assert all(code == 0 for code in codes), codes
    posts = s.posts()
    assert len(posts) <= 12, [c.args.get("text", "")[:60] for c in posts]
    messages = s.slack.messages(CHANNEL)
    for reason in ALL_REASONS:
        assert reason.split(": ")[-1][:40] in texts(messages), reason
    assert s.slack.violations == []
    assert any(c.status == 429 for c in s.slack.calls)  # the fake limited us; we waited
    card = messages[0]
    assert card.thread_ts is None
    assert card.edits >= 2
    assert "failed" in card.text
    final = [m for m in messages if m.reply_broadcast]
    assert len(final) == 1
    assert "KEB upgrade failed" in final[0].text
    assert "150" in texts(messages)
    keys = s.keys()
    assert len(keys) == len(set(keys))
    assert cli("--config", str(s.config), "outbox", "list").out.startswith("outbox: nothing")


def test_killed_at_random_moments_delivers_everything_once(
    tmp_path: Path, setups: list[Setup]
) -> None:
    s = make_setup(
        tmp_path, Simulator.from_scenario("failures", seed=5), slack_options={"post_interval": 0.05}
    )
    setups.append(s)
    # A digest every poll: more posts, so more moments to be killed in the middle of one.
    s.config.write_text(s.config.read_text() + 'digest_interval = "0s"\n')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    base = [sys.executable, "-m", "watcher", "--config", str(s.config)]
    subprocess.run(
        [*base, "track", *s.sim.orchestration_ids()], check=True, env=env, capture_output=True
    )
    rng = random.Random(11)
    kills = 0
    for _ in range(40):
        proc = subprocess.Popen(
            [*base, "poll"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            # From just after start-up (a poll starts in about 0.2 s) to past a whole poll.
            proc.wait(timeout=rng.uniform(0.1, 0.8))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        s.sim.advance(240)
        if s.sim.all_finished() and kills >= 3 and rng.random() < 0.3:
            break
    for _ in range(10):  # then let it finish undisturbed
        done = subprocess.run([*base, "poll"], env=env, capture_output=True, text=True)
        s.sim.advance(240)
        listed = subprocess.run(
            [*base, "list", "-o", "json"], env=env, capture_output=True, text=True
        )
        if s.sim.all_finished() and '"finished": false' not in listed.stdout:
            break
    assert done.returncode == 0, done.stderr
    assert kills >= 3
    keys = s.keys()
    duplicates = {k: n for k, n in Counter(keys).items() if n > 1}
    assert not duplicates, duplicates
    outbox = subprocess.run(
        [*base, "outbox", "list", "--status", "sent", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    sent = {e["key"] for e in json.loads(outbox.stdout) if e["kind"] != "progress"}
    assert sent <= set(keys)  # every logical notification is in the channel, once
    undelivered = subprocess.run(
        [*base, "outbox", "list", "-o", "json"], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(undelivered.stdout) == []
    assert any(k.endswith(":card") for k in keys)
    assert any(":finished:" in k for k in keys)
    assert s.slack.violations == []


def test_slack_errors_and_keb_outages_are_caught_up(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    s = make_setup(
        tmp_path,
        Simulator.from_scenario("small", seed=2),
        extra='alert_after = "0s"\n',
        slack_options={"post_interval": 0.05},
    )
    setups.append(s)
    cfg = str(s.config)
    cli("--config", cfg, "track", *s.sim.orchestration_ids())
    s.slack.fail_next("chat.postMessage", error="internal_error", status=500, count=50)
    down = cli("--config", cfg, "poll")
    assert down.code == 1
    assert "1 notification undelivered" in down.err
    pending = cli("--config", cfg, "outbox", "list", "-o", "json").json()
    assert pending
    assert pending[0]["lastError"].startswith("Slack chat.postMessage: ")
    s.slack.clear_failures()  # Slack is back
    for entry in pending:
        cli("--config", cfg, "outbox", "retry", str(entry["id"]))
    assert cli("--config", cfg, "poll").code == 0
    assert len([m for m in s.slack.messages(CHANNEL) if m.thread_ts is None]) == 1  # the card
    # KEB goes away: one alert, and one more when it is back.
    s.keb.stop()
    assert cli("--config", cfg, "poll").code == 1
    assert cli("--config", cfg, "poll").code == 1
    s.keb = SimServer(s.sim, port=int(s.keb.url.rsplit(":", 1)[1])).start()
    s.sim.advance(300)
    assert cli("--config", cfg, "poll").code == 0
    top = [m.text for m in s.slack.messages(CHANNEL) if m.thread_ts is None]
    assert sum("cannot poll KEB" in t for t in top) == 1
    assert sum("reaches KEB again" in t for t in top) == 1
    run_to_end(s, cli, steps=300)
    assert s.slack.violations == []


def test_permanent_error_is_recorded_and_surfaced(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    s = make_setup(
        tmp_path, Simulator.from_scenario("small"), slack_options={"post_interval": 0.05}
    )
    setups.append(s)
    cfg = str(s.config)
    cli("--config", cfg, "track", *s.sim.orchestration_ids())
    s.slack.fail_next("chat.postMessage", error="channel_not_found", count=1)
    result = cli("--config", cfg, "poll")
    assert result.code == 1
    assert "channel_not_found" in result.err
    [entry] = cli("--config", cfg, "outbox", "list", "-o", "json").json()
    assert entry["status"] == "failed"
    assert "channel_not_found" in entry["lastError"]
    assert "failed" in cli("--config", cfg, "outbox", "list").out
    assert cli("--config", cfg, "outbox", "retry", "--all").code == 0
    assert cli("--config", cfg, "poll").code == 0
    assert len(s.slack.messages(CHANNEL)) == 1


def test_notify_test_prints_slacks_answer_and_a_bad_token_is_one_line(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    s = make_setup(tmp_path, Simulator.from_scenario("small"))
    setups.append(s)
    answer = cli("--config", str(s.config), "notify-test").json()
    assert answer["ok"] is True
    assert answer["channel"] == CHANNEL
    assert answer["message"]["metadata"]["event_type"] == EVENT
    s.config.write_text(s.config.read_text().replace("xoxb-test-token", "xoxb-wrong"))
    bad = cli("--config", str(s.config), "notify-test")
    assert bad.code == 1
    assert bad.err.strip() == "watcher: Slack chat.postMessage: invalid_auth"
    assert "xoxb-wrong" not in bad.err


def test_check_config_online_reaches_slack(tmp_path: Path, cli: Cli, setups: list[Setup]) -> None:
    s = make_setup(tmp_path, Simulator.from_scenario("small"))
    setups.append(s)
    out = cli("--config", str(s.config), "check-config", "--online")
    assert out.code == 0, out.err
    assert "Slack: token accepted" in out.out
    assert f"Slack: channel #kyma-upgrades found ({CHANNEL}), the app is a member" in out.out
    assert "xoxb-test-token" not in out.out


def test_webhook_mode_posts_milestones_only(tmp_path: Path, cli: Cli, setups: list[Setup]) -> None:
    sim = Simulator.from_scenario("failures", seed=4)
    s = make_setup(tmp_path, sim, slack_options={"post_interval": 0.05}, slack_config="")
    setups.append(s)
    s.config.write_text(
        s.config.read_text() + f'\n[slack]\nwebhook_url = "{s.slack.webhook_url}"\n'
    )
    cli("--config", str(s.config), "track", *sim.orchestration_ids())
    run_to_end(s, cli, steps=600)
    methods = Counter(c.method for c in s.slack.calls)
    assert methods["chat.update"] == 0
    assert methods["chat.postMessage"] == 0
    messages = s.slack.messages(CHANNEL)
    assert "KEB upgrade failed" in texts(messages)
    assert all(m.thread_ts is None for m in messages)
    skipped = cli(
        "--config", str(s.config), "outbox", "list", "--status", "skipped", "-o", "json"
    ).json()
    assert skipped
    assert all(e["kind"] == "progress" for e in skipped)


def test_card_map_is_rebuilt_from_the_channel(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    s = make_setup(
        tmp_path, Simulator.from_scenario("small"), slack_options={"post_interval": 0.05}
    )
    setups.append(s)
    cfg = str(s.config)
    ids = s.sim.orchestration_ids()
    cli("--config", cfg, "track", *ids)
    assert cli("--config", cfg, "poll").code == 0
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp_path / "watcher.db") + suffix).unlink(missing_ok=True)  # the database is lost
    cli("--config", cfg, "track", *ids)
    s.sim.advance(400)
    assert cli("--config", cfg, "poll").code == 0
    cards = [m for m in s.slack.messages(CHANNEL) if m.thread_ts is None]
    assert len(cards) == 1, [m.text[:50] for m in cards]
    assert cards[0].edits >= 1


def test_a_broken_template_sends_plain_text_and_records_why(
    tmp_path: Path, cli: Cli, setups: list[Setup]
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "card.j2").write_text("{{ orchestration.nope }}")
    s = make_setup(
        tmp_path, Simulator.from_scenario("small"), extra="", slack_options={"post_interval": 0.05}
    )
    setups.append(s)
    s.config.write_text(s.config.read_text() + f'\n[templates]\ndir = "{templates}"\n')
    cfg = str(s.config)
    cli("--config", cfg, "track", *s.sim.orchestration_ids())
    assert cli("--config", cfg, "poll").code == 0
    [card] = s.slack.messages(CHANNEL)
    assert card.text.startswith("keb-watcher tracking started: orchestration")
    [entry] = cli("--config", cfg, "outbox", "list", "--status", "sent", "-o", "json").json()
    assert "card.j2" in entry["renderError"]
    assert "UndefinedError" in entry["renderError"]
    rendered = cli("--config", cfg, "render", "progress")
    assert rendered.code == 1
    assert "card.j2" in rendered.err
