"""The dashboard's routes without a browser: JSON shapes, escaping, headers, the token.

The routes (:class:`watcher.faces.web.routes.Dashboard`) are served over a real socket, as
``watcher run`` serves them, on a database that the real engine filled from the simulator.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import itsdangerous
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Cli
from tests.serving import serving
from watcher.app import Watcher
from watcher.config import Secret
from watcher.faces.demo import demo_config
from watcher.faces.run.health import Readiness, health_routes
from watcher.faces.run.metrics import Metrics
from watcher.faces.run.server import CSP
from watcher.faces.web.routes import SESSION_TTL, Dashboard
from watcher.faces.web.throttle import LIMIT, WINDOW
from watcher.sim import SCENARIOS, SimServer, Simulator
from watcher.sim.scenarios import ScenarioSpec

HOSTILE = (
    '<script>alert("x")</script>',
    "\x1b[2J\u202eevil <i>it</i>",
    "zw\u200bsp wj\u2060 cgj\u034f tag\U000e0041\U000e007f c1\x9b31m "
    "osc\x1b]8;;https://evil.example\x07link vs\ufe0f nc\ufdd0 end",
)
#: What no page, no /api/ answer and no /metrics label may carry raw.
RAW = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u034f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\ufe00-\ufe0f\ufdd0-\ufdef\ufeff\U000e0000-\U000e0fff]"
)
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


class Served:
    """A dashboard on a real socket, asked with httpx (no redirects followed)."""

    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash
        self._serving = serving(dash.routes(), dash.middleware())
        self.client = httpx.Client(base_url=self._serving.__enter__(), timeout=10)

    def close(self) -> None:
        self.client.close()
        self._serving.__exit__(None, None, None)

    def __call__(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        answer = self.client.request(method, target, headers=headers, content=body)
        return answer.status_code, list(answer.headers.items()), answer.content


@pytest.fixture
def served() -> Iterator[Callable[[Dashboard], Served]]:
    opened: list[Served] = []

    def serve(dash: Dashboard) -> Served:
        opened.append(Served(dash))
        return opened[-1]

    yield serve
    for one in opened:
        one.close()


def get(dash: Served, target: str, **headers: str) -> tuple[int, dict[str, str], str]:
    status, pairs, body = dash("GET", target, headers, b"")
    return status, {name.title(): value for name, value in pairs}, body.decode()


def test_the_api_has_the_shapes_of_list_and_history(
    filled: Filled, cli: Cli, served: Callable[[Dashboard], Served]
) -> None:
    dash = served(Dashboard(filled.app, stale_after=60))
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


def test_pages_escape_keb_text_and_carry_a_strict_policy(
    filled: Filled, served: Callable[[Dashboard], Served]
) -> None:
    dash = served(Dashboard(filled.app, stale_after=60))
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


def test_every_keb_string_on_the_pages_goes_through_shown(
    filled: Filled, served: Callable[[Dashboard], Served]
) -> None:
    """KEB text reaches the pages only through views.shown, which makes it inert: the
    escape sequence and the bidi override are gone, the words stay (as text)."""
    dash = served(Dashboard(filled.app, stale_after=60))
    for target in ("/", f"/orchestrations/{filled.ids[0]}"):
        body = get(dash, target)[2]
        assert "\x1b" not in body, target
        assert "[2J" not in body, target
        assert "\u202e" not in body, target
        assert "evil &lt;i&gt;it&lt;/i&gt;" in body, target


def test_a_dashboard_token_guards_pages_and_api(
    filled: Filled, served: Callable[[Dashboard], Served]
) -> None:
    token = "s3cret-token"
    dash = served(Dashboard(filled.app, stale_after=60, token=Secret(token)))
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
    headers = {name.title(): value for name, value in pairs}
    assert status == 303
    assert headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    flags = [flag.strip().lower() for flag in cookie.split(";")[1:]]  # case-insensitive
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "secure" not in flags  # no https public_url
    assert token not in cookie
    session = cookie.split(";")[0]
    assert get(dash, "/", cookie=session)[0] == 200
    tampered = session[:-1] + ("1" if session.endswith("0") else "0")
    assert get(dash, "/", cookie=tampered)[0] == 401
    wrong = dash("POST", "/login", {}, b"token=nope")
    assert wrong is not None
    assert wrong[0] == 401


def test_the_dashboard_is_read_only_and_says_when_it_is_stale(
    filled: Filled, served: Callable[[Dashboard], Served]
) -> None:
    dash = served(Dashboard(filled.app, stale_after=3600))  # the last poll was 900 s ago
    for target in ("/", "/api/orchestrations"):
        answer = dash("POST", target, {}, b"")
        assert answer is not None
        assert answer[0] == 405
    assert dash("GET", "/nothing-here", {}, b"")[0] == 404
    fresh = get(dash, "/")[2]
    assert re.search(r'id="stale"[^>]*hidden', fresh)
    assert json.loads(get(dash, "/api/board")[2])["stale"] is False
    late = served(Dashboard(filled.app, stale_after=600))
    assert not re.search(r'id="stale"[^>]*hidden', get(late, "/")[2])
    assert json.loads(get(late, "/api/board")[2])["stale"] is True


def test_the_overview_lists_the_newest_orchestration_first(
    filled: Filled, served: Callable[[Dashboard], Served]
) -> None:
    """Newest by KEB's createdAt (the second one of the scenario was created an hour after
    the first), whatever order they were tracked in."""
    body = get(served(Dashboard(filled.app, stale_after=60)), "/")[2]
    first, second = filled.ids  # created -2h and -1h
    assert body.index(second) < body.index(first)


def test_the_pulse_answers_the_revision_and_the_last_poll_only(
    filled: Filled, served: Callable[[Dashboard], Served]
) -> None:
    """What every open page asks each second: no health, no outbox count."""
    status, _headers, body = get(served(Dashboard(filled.app, stale_after=60)), "/api/board")
    assert status == 200
    pulse = json.loads(body)
    assert set(pulse) == {"revision", "stale", "last_poll", "last_poll_at"}
    assert pulse["revision"] == filled.app.dashboard.pulse()[0]
    assert pulse["last_poll_at"]


def login(dash: Served, token: str) -> tuple[int, dict[str, str]]:
    status, pairs, _ = dash(
        "POST",
        "/login",
        {"content-type": "application/x-www-form-urlencoded"},
        f"token={token}".encode(),
    )
    return status, {name.title(): value for name, value in pairs}


def test_sessions_are_secure_behind_https_expire_and_end_with_a_new_token(
    filled: Filled, served: Callable[[Dashboard], Served]
) -> None:
    public = "https://watcher.example.com"
    dash = served(Dashboard(filled.app, stale_after=60, token=Secret("one"), public_url=public))
    status, headers = login(dash, "one")
    assert status == 303
    cookie = headers["Set-Cookie"]
    flags = [flag.strip().lower() for flag in cookie.split(";")[1:]]
    assert "secure" in flags
    assert f"max-age={SESSION_TTL}" in flags
    assert 0 < SESSION_TTL <= 24 * 3600
    session = cookie.split(";")[0]
    assert get(dash, "/api/board", cookie=session)[0] == 200
    # The same database, a new token: the old session is worth nothing.
    rotated = served(Dashboard(filled.app, stale_after=60, token=Secret("two")))
    assert get(rotated, "/api/board", cookie=session)[0] == 401
    plain = served(Dashboard(filled.app, stale_after=60, token=Secret("one")))
    assert get(plain, "/api/board", cookie=session)[0] == 200  # the same token: still valid


def test_sessions_expire(
    filled: Filled, served: Callable[[Dashboard], Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signature's age is checked on the server, whatever the browser keeps."""
    dash = served(Dashboard(filled.app, stale_after=60, token=Secret("one")))
    session = login(dash, "one")[1]["Set-Cookie"].split(";")[0]
    assert get(dash, "/api/board", cookie=session)[0] == 200
    later = int(time.time()) + SESSION_TTL + 60
    monkeypatch.setattr(itsdangerous.TimestampSigner, "get_timestamp", lambda self: later)
    assert get(dash, "/api/board", cookie=session)[0] == 401


def test_failed_logins_are_throttled_per_client_and_logged(
    filled: Filled, served: Callable[[Dashboard], Served], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="watcher.faces.web")
    dash = served(Dashboard(filled.app, stale_after=60, token=Secret("right")))
    for i in range(LIMIT):
        if i % 2:
            assert login(dash, f"guess-{i}")[0] == 401
        else:
            assert get(dash, "/api/board", authorization=f"Bearer guess-{i}")[0] == 401
    status, headers = login(dash, "right")  # even the right token waits now
    assert status == 429
    assert 0 < int(headers["Retry-After"]) <= WINDOW
    assert "Set-Cookie" not in headers
    assert get(dash, "/api/board", authorization="Bearer right")[0] == 429
    failures = [r.getMessage() for r in caplog.records if "127.0.0.1" in r.getMessage()]
    assert len(failures) == LIMIT
    assert failures[-1].endswith(f"({LIMIT} in the last 5m)")
    assert "guess" not in caplog.text  # what was tried is never logged


def test_hostile_text_is_inert_in_the_api_and_in_metrics_labels(
    filled: Filled, served: Callable[[Dashboard], Served]
) -> None:
    dash = served(Dashboard(filled.app, stale_after=60))
    hostile = filled.ids[0]
    for target in (f"/api/orchestrations/{hostile}", "/api/orchestrations", "/"):
        status, _headers, body = get(dash, target)
        assert status == 200
        assert not RAW.findall(body), (target, sorted(set(RAW.findall(body))))
    body = get(dash, f"/api/orchestrations/{hostile}")[2]
    assert "\\u202eevil <i>it</i>" in body  # escaped on the wire, kept as data
    assert "\u202eevil <i>it</i>" in json.dumps(json.loads(body), ensure_ascii=False)
    metrics = Metrics()
    store = filled.app.store
    metrics.failure_reasons(
        pair for t in store.tracked() for pair in store.failure_reasons(t.orchestration_id)
    )
    routes = health_routes(Readiness(60.0), metrics.exposition)
    with serving(routes) as url:
        scraped = httpx.get(url + "/metrics").text
    labels = [
        s.labels["reason"]
        for family in text_string_to_metric_families(scraped)
        for s in family.samples
        if "reason" in s.labels
    ]
    assert any("evil <i>it</i>" in label for label in labels), labels
    assert "zwsp wj cgj tag c1 osclink vs nc end" in labels
    for label in labels:
        assert not RAW.findall(label), label
    assert not RAW.findall(scraped)
