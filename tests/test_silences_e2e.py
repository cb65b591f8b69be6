"""`watcher silence` / `unsilence` end to end: the simulator as KEB, the fake Slack over real
HTTP, the real CLI. While silenced, failure digests and thread replies are held back
(dropped, with the reason in the outbox); the card stays current and says it is silenced; the
final outcome is always sent. `list`, the dashboard and `service.public_url` links too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.test_dashboard import Served, get
from tests.test_notify_e2e import CHANNEL, Setup, make_setup
from watcher.app import Watcher
from watcher.config import load_config
from watcher.faces.web.routes import Dashboard
from watcher.sim import Simulator
from watcher.store.database import Store

PUBLIC = "https://keb-watcher.example.com"


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    sim = Simulator.from_scenario("failures", seed=4)
    s = make_setup(tmp_path, sim, slack_config=None, extra="")
    s.config.write_text(s.config.read_text() + f'\n[service]\npublic_url = "{PUBLIC}/"\n')
    yield s
    s.keb.stop()
    s.slack.stop()


def kinds(s: Setup) -> list[str]:
    return [
        m.metadata["event_payload"]["kind"]
        for m in s.slack.messages(CHANNEL)
        if m.metadata and m.metadata.get("event_type") == "keb_watcher_notification"
    ]


def test_a_silenced_orchestration_gets_its_card_and_outcome_but_no_digests(
    setup: Setup, cli: Cli
) -> None:
    s, cfg = setup, str(setup.config)
    orch = s.sim.orchestration_ids()[0]
    assert cli("track", orch, "-c", cfg).code == 0
    assert cli("poll", "-c", cfg).code == 0  # the baseline: the card
    silenced = cli("silence", orch[:8], "--for", "6h", "--reason", "known quota issue", "-c", cfg)
    assert silenced.code == 0, silenced.err
    assert silenced.out.startswith(f"{orch}: silenced for 6h, until ")
    assert silenced.out.rstrip().endswith(": known quota issue")

    edits = s.slack.messages(CHANNEL)[0].edits
    assert cli("poll", "-c", cfg).code == 0  # KEB did not move: only the card is redrawn
    card = s.slack.messages(CHANNEL)[0]
    assert card.edits == edits + 1
    assert "silenced until" in card.text
    assert kinds(s) == ["tracking_started"]

    listed = cli("list", "-c", cfg, "-o", "json").json()
    assert listed[0]["silence"]["reason"] == "known quota issue"
    text = cli("list", "-c", cfg, env={"COLUMNS": "200"}).out
    assert "~" in text.splitlines()[1]
    assert "[silenced until " in text
    assert "known quota issue" in text

    for _ in range(40):
        s.sim.advance(120)
        assert cli("poll", "-c", cfg).code == 0
        if s.sim.all_finished():
            assert cli("poll", "-c", cfg).code == 0
            break
    assert s.sim.all_finished()
    sent = kinds(s)
    assert "failure_digest" not in sent
    assert sent.count("finished") == 1  # the outcome is always sent
    dropped = cli("outbox", "list", "--status", "dropped", "-o", "json", "-c", cfg).json()
    assert dropped, "failures happened: their digests were held back"
    assert {e["kind"] for e in dropped} <= {"failure_digest", "state_changed", "retried"}
    assert all(e["lastError"].startswith("held back: silenced until ") for e in dropped)
    assert all("(known quota issue)" in e["lastError"] for e in dropped)

    card = s.slack.messages(CHANNEL)[0]
    assert card.edits >= 1
    assert "silenced until" in card.text
    assert "known quota issue" in card.text
    outcome = next(m for m in s.slack.messages(CHANNEL) if m.reply_broadcast)
    link = f"{PUBLIC}/orchestrations/{orch}"
    assert link in outcome.text  # service.public_url: our own dashboard's page
    assert link in json.dumps(card.blocks)


def test_unsilenced_digests_go_out_again(setup: Setup, cli: Cli) -> None:
    s, cfg = setup, str(setup.config)
    orch = s.sim.orchestration_ids()[0]
    assert cli("track", orch, "-c", cfg).code == 0
    assert cli("poll", "-c", cfg).code == 0
    assert cli("silence", orch, "-c", cfg).code == 0
    assert cli("poll", "-c", cfg).code == 0
    assert "silenced until" in s.slack.messages(CHANNEL)[0].text
    lifted = cli("unsilence", orch, "-c", cfg)
    assert (lifted.code, lifted.out) == (0, f"{orch}: unsilenced\n")
    assert cli("poll", "-c", cfg).code == 0
    assert "silenced" not in s.slack.messages(CHANNEL)[0].text  # redrawn without it
    again = cli("unsilence", orch, "-c", cfg)
    assert (again.code, again.out) == (1, f"{orch}: was not silenced\n")
    for _ in range(40):
        s.sim.advance(120)
        assert cli("poll", "-c", cfg).code == 0
        if s.sim.all_finished():
            break
    assert "failure_digest" in kinds(s)
    assert cli("outbox", "list", "--status", "dropped", "-o", "json", "-c", cfg).json() == []
    assert cli("list", "-o", "json", "-c", cfg).json()[0]["silence"] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--for", "0s"], "--for: must be more than 0s"),
        (["--for", "soon"], "--for: bad duration"),
    ],
)
def test_bad_silences_are_one_line_exit_2(
    setup: Setup, cli: Cli, args: list[str], needle: str
) -> None:
    cfg = str(setup.config)
    orch = setup.sim.orchestration_ids()[0]
    assert cli("track", orch, "-c", cfg).code == 0
    result = cli("silence", orch, *args, "-c", cfg)
    assert result.code == 2
    assert needle in result.err
    assert result.err.count("\n") == 1
    unknown = cli("silence", "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11", "-c", cfg)
    assert unknown.code == 2
    assert unknown.err == (
        "watcher: 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11 is not tracked (`watcher track` it first)\n"
    )


def test_a_silence_ends_by_itself(tmp_path: Path) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with Store(tmp_path / "w.db") as store:
        store.track(["a"], None, now)
        store.silence(["a"], now + timedelta(hours=2), "why", "ana", now)
        assert set(store.silences(now + timedelta(minutes=119))) == {"a"}
        assert store.silences(now + timedelta(hours=2)) == {}
        assert store.unsilence(["a"], now + timedelta(hours=3)) == ["a"]  # it had ended


def test_the_dashboard_shows_the_silence(setup: Setup, cli: Cli) -> None:
    s, cfg = setup, str(setup.config)
    orch = s.sim.orchestration_ids()[0]
    assert cli("track", orch, "-c", cfg).code == 0
    assert cli("poll", "-c", cfg).code == 0
    reason = "<b>quota</b> INC-1"
    assert cli("silence", orch, "--reason", reason, "-c", cfg).code == 0
    with Watcher(load_config(s.config, {})) as app:
        dash = Served(Dashboard(app, stale_after=3600.0, token=None))
        try:
            for page in ("/", f"/orchestrations/{orch}"):
                status, _, body = get(dash, page)
                assert status == 200
                assert "silenced until " in body
                assert "&lt;b&gt;quota&lt;/b&gt; INC-1" in body  # the reason is text, escaped
                assert "<b>quota" not in body
        finally:
            dash.close()
