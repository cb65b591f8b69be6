"""Tokens stay home: a redirect from Slack's base URL or from KEB to another origin is an error
naming the target, and the token never reaches it (real HTTP on 127.0.0.1, the real CLI)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import Cli, write_config
from tests.test_notify_e2e import CHANNEL, Setup, make_setup, setups
from watcher.errors import SlackFailure
from watcher.notify.blocks import to_message
from watcher.notify.slack import BotSlack, WebhookSlack
from watcher.sim import Simulator

__all__ = ["setups"]


@dataclass
class Seen:
    """What one server received: (method, path, Authorization header or None)."""

    requests: list[tuple[str, str, str | None]] = field(default_factory=list)


def serve(seen: Seen, location: str | None) -> tuple[ThreadingHTTPServer, str]:
    """A server on a free port of 127.0.0.1 that records every request; with ``location``, it
    answers each with a 302 there, else with a JSON ``ok``."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            seen.requests.append((self.command, self.path, self.headers.get("authorization")))
            if location is not None:
                self.send_response(302)
                self.send_header("Location", location + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b'{"ok": true, "channel": "C0ELSE001", "ts": "1.000001"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def elsewhere() -> Iterator[tuple[Seen, str]]:
    seen = Seen()
    server, url = serve(seen, None)
    yield seen, url
    server.shutdown()
    server.server_close()


@pytest.fixture
def redirector(elsewhere: tuple[Seen, str]) -> Iterator[tuple[Seen, str]]:
    seen = Seen()
    server, url = serve(seen, elsewhere[1])
    yield seen, url
    server.shutdown()
    server.server_close()


def test_a_redirect_from_slack_to_another_origin_keeps_the_bot_token(
    redirector: tuple[Seen, str], elsewhere: tuple[Seen, str]
) -> None:
    home, home_url = redirector
    away, away_url = elsewhere
    slack = BotSlack("xoxb-stay-home", home_url + "/api/")
    with pytest.raises(SlackFailure) as failed:
        slack.post(CHANNEL, to_message("hello"), {})
    assert home.requests[0][2] == "Bearer xoxb-stay-home"
    assert away.requests == []  # not followed: the other origin heard nothing
    assert not failed.value.transient
    assert f"redirected to {away_url}/api/chat.postMessage, another host" in str(failed.value)
    assert "xoxb" not in str(failed.value)


def test_a_webhook_redirected_to_another_origin_is_no_delivery(
    redirector: tuple[Seen, str], elsewhere: tuple[Seen, str]
) -> None:
    home, home_url = redirector
    away, away_url = elsewhere
    hook = WebhookSlack(home_url + "/services/T000/B000/secretpath")
    with pytest.raises(SlackFailure) as failed:
        hook.post(None, to_message("hello"), {})
    assert [r[0] for r in home.requests] == ["POST"]
    assert away.requests == []  # whatever answers there is never counted as sent
    assert not failed.value.transient
    assert f"redirected to {away_url}" in str(failed.value)
    assert "secretpath" not in str(failed.value)  # the webhook's path is its credential


def test_poll_with_a_redirecting_slack_sends_nothing_counts_nothing_and_names_the_target(
    tmp_path: Path,
    cli: Cli,
    setups: list[Setup],
    redirector: tuple[Seen, str],
    elsewhere: tuple[Seen, str],
) -> None:
    home, home_url = redirector
    away, away_url = elsewhere
    sim = Simulator.from_scenario("small", seed=2)
    section = (
        '\n[slack]\ntoken = "xoxb-stay-home"\nchannel = "C0KYMA001"\n'
        f'base_url = "{home_url}/api/"\n'
    )
    s = make_setup(tmp_path, sim, slack_config=section)
    setups.append(s)
    cli("--config", str(s.config), "track", *sim.orchestration_ids())
    polled = cli("--config", str(s.config), "poll")
    assert polled.code == 1
    assert "sent" not in polled.out
    assert f"slack.base_url redirected to {away_url}/api/" in polled.err
    assert "waits for a fix" in polled.err
    assert away.requests == []
    assert home.requests
    assert "xoxb-stay-home" not in polled.err + polled.out


def test_a_redirect_from_keb_to_another_origin_keeps_the_keb_token(
    tmp_path: Path, cli: Cli, redirector: tuple[Seen, str], elsewhere: tuple[Seen, str]
) -> None:
    home, home_url = redirector
    away, away_url = elsewhere
    config = write_config(tmp_path / "watcher.toml", home_url, "keb-stay-home")
    result = cli("--config", str(config), "status", "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11")
    assert result.code != 0
    assert f"redirected to {away_url}/orchestrations/" in result.err
    assert home.requests[0][2] == "Bearer keb-stay-home"
    assert away.requests == []
    assert "keb-stay-home" not in result.err + result.out
