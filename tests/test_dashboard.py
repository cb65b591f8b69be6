"""The dashboard's routes without a browser: JSON shapes, escaping, headers, the token.

The routes are one callable (:class:`watcher.faces.web.routes.Dashboard`); here it is called
directly on a database that the real engine filled from the simulator.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.conftest import Cli
from watcher.app import Watcher
from watcher.config import Secret
from watcher.faces.demo import demo_config
from watcher.faces.web.routes import CSP, Dashboard
from watcher.sim import SCENARIOS, SimServer, Simulator
from watcher.sim.scenarios import ScenarioSpec

HOSTILE = ('<script>alert("x")</script>', "\x1b[2J\u202eevil <i>it</i>")
SCENARIO = ScenarioSpec(
    "pages",
    "one with hostile failure descriptions",
    (
        replace(
            SCENARIOS["failures"].orchestrations[0],
            ops=20,
            workers=10,
            failure_rate=0.5,
            reasons=HOSTILE,
            created=-2.0,
        ),
        replace(SCENARIOS["small"].orchestrations[0], created=-1.0),
    ),
)


@dataclass
class Filled:
    app: Watcher
    ids: list[str]
    config: Path


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[Filled]:
    sim = Simulator(SCENARIO, seed=5, speed=None)
    with SimServer(sim).start() as server:
        config = demo_config(server.url, sim.token, tmp_path)
        (tmp_path / "watcher.toml").write_text(
            f'[keb]\nurl = "{server.url}"\ntoken = "{sim.token}"\n\n'
            f'[storage]\npath = "{tmp_path / "watcher.db"}"\n'
        )
        app = Watcher(config, clock=lambda: sim.now)

        async def fill() -> None:
            async with app.keb() as keb:
                engine = app.engine(keb)
                for _ in range(4):
                    await engine.poll_once()
                    sim.advance(900)

        app.track(sim.orchestration_ids(), None)
        asyncio.run(fill())
        yield Filled(app, sim.orchestration_ids(), tmp_path / "watcher.toml")
        app.close()


def get(dash: Dashboard, target: str, **headers: str) -> tuple[int, dict[str, str], str]:
    answer = dash("GET", target, headers, b"")
    assert answer is not None, target
    status, pairs, body = answer
    return status, dict(pairs), body.decode()


def test_the_api_has_the_shapes_of_list_and_history(filled: Filled, cli: Cli) -> None:
    dash = Dashboard(filled.app, stale_after=60)
    status, headers, body = get(dash, "/api/orchestrations")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    listed = cli("--config", str(filled.config), "list", "-o", "json").json()
    assert json.loads(body) == listed
    orch_id = filled.ids[0]
    status, _headers, body = get(dash, f"/api/orchestrations/{orch_id}")
    one = json.loads(body)
    history = cli("--config", str(filled.config), "history", orch_id, "-o", "json").json()
    assert one.pop("history") == history
    assert one == next(x for x in listed if x["orchestrationID"] == orch_id)
    assert get(dash, "/api/orchestrations/not-tracked-here")[0] == 404


def test_pages_escape_keb_text_and_carry_a_strict_policy(filled: Filled) -> None:
    dash = Dashboard(filled.app, stale_after=60)
    for target in ("/", f"/orchestrations/{filled.ids[0]}", "/api/board", "/static/dashboard.js"):
        status, headers, body = get(dash, target)
        assert status == 200, target
        assert headers["Content-Security-Policy"] == CSP
        assert "'unsafe-inline'" not in CSP
        assert "script-src 'self'" in CSP
        assert headers["X-Content-Type-Options"] == "nosniff"
        if target.startswith("/orchestrations/"):
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body
            assert "&lt;i&gt;it&lt;/i&gt;" in body
        if "text/html" in headers["Content-Type"]:
            # Scripts only from /static/, none inline, no inline styles or handlers.
            assert re.findall(r"<script[^>]*>", body) == [
                '<script src="/static/dashboard.js" defer>'
            ]
            assert "<i>" not in body
            assert 'alert("x")' not in body
            assert " style=" not in body
            assert " onclick" not in body.lower()


def test_every_keb_string_on_the_pages_goes_through_shown(filled: Filled) -> None:
    """KEB text reaches the pages only through views.shown, which makes it inert: the
    escape sequence and the bidi override are gone, the words stay (as text)."""
    dash = Dashboard(filled.app, stale_after=60)
    for target in ("/", f"/orchestrations/{filled.ids[0]}"):
        body = get(dash, target)[2]
        assert "\x1b" not in body, target
        assert "[2J" not in body, target
        assert "\u202e" not in body, target
        assert "evil &lt;i&gt;it&lt;/i&gt;" in body, target


def test_a_dashboard_token_guards_pages_and_api(filled: Filled) -> None:
    token = "s3cret-token"
    dash = Dashboard(filled.app, stale_after=60, token=Secret(token))
    for target in ("/", f"/orchestrations/{filled.ids[0]}", "/api/orchestrations"):
        status, headers, body = get(dash, target)
        assert status == 401, target
        assert filled.ids[1] not in body
        assert get(dash, target, authorization=f"Bearer {token}")[0] == 200
        assert get(dash, target, authorization="Bearer s3cret-toke")[0] == 401
    assert get(dash, "/static/dashboard.css")[0] == 200  # no data in it
    answer = dash("POST", "/login", {}, f"token={token}&next=//evil.example/".encode())
    assert answer is not None
    status, pairs, _ = answer
    headers = dict(pairs)
    assert status == 303
    assert headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert token not in cookie
    session = cookie.split(";")[0]
    assert get(dash, "/", cookie=session)[0] == 200
    tampered = session[:-1] + ("1" if session.endswith("0") else "0")
    assert get(dash, "/", cookie=tampered)[0] == 401
    wrong = dash("POST", "/login", {}, b"token=nope")
    assert wrong is not None
    assert wrong[0] == 401


def test_the_dashboard_is_read_only_and_says_when_it_is_stale(filled: Filled) -> None:
    dash = Dashboard(filled.app, stale_after=3600)  # the last poll was 900 s ago
    for target in ("/", "/api/orchestrations"):
        answer = dash("POST", target, {}, b"")
        assert answer is not None
        assert answer[0] == 405
    assert dash("GET", "/nothing-here", {}, b"") is None  # the health server's 404
    fresh = get(dash, "/")[2]
    assert re.search(r'id="stale"[^>]*hidden', fresh)
    assert json.loads(get(dash, "/api/board")[2])["stale"] is False
    late = Dashboard(filled.app, stale_after=600)
    assert not re.search(r'id="stale"[^>]*hidden', get(late, "/")[2])
    assert json.loads(get(late, "/api/board")[2])["stale"] is True


def test_the_overview_lists_the_newest_orchestration_first(filled: Filled) -> None:
    """Newest by KEB's createdAt (the second one of the scenario was created an hour after
    the first), whatever order they were tracked in."""
    body = get(Dashboard(filled.app, stale_after=60), "/")[2]
    first, second = filled.ids  # created -2h and -1h
    assert body.index(second) < body.index(first)


def test_the_pulse_answers_the_revision_and_the_last_poll_only(filled: Filled) -> None:
    """What every open page asks each second: no health, no outbox count."""
    status, _headers, body = get(Dashboard(filled.app, stale_after=60), "/api/board")
    assert status == 200
    pulse = json.loads(body)
    assert set(pulse) == {"revision", "stale", "last_poll", "last_poll_at"}
    assert pulse["revision"] == filled.app.dashboard.pulse()[0]
    assert pulse["last_poll_at"]
