"""Secrets never leak: each leak found in review, end to end through the real CLI, checked in
stderr, logs (text and JSON), the database file's bytes, Slack messages and check-config."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import Cli, write_config
from tests.fakeslack import FakeSlack
from watcher.core.intents import Intent
from watcher.keb.messages import describe_body
from watcher.notify.slack import SlackFailure
from watcher.redact import Redactor, remember
from watcher.store.database import Store
from watcher.store.outbox import AttemptResult, Outbox

ORCH = "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11"
CHANNEL = "C0KYMA001"
SLACK_TOKEN = "xoxb-1234567890-0987654321-SLACKSECRETSLACKSECRET"
ROOT = Path(__file__).resolve().parents[1]


def long_jwt() -> str:
    """A JWT of about 1,000 characters (a token with many group claims)."""

    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"sub": "ops@example.com", "groups": [f"group-{i:03d}" for i in range(50)]}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{'S' * 86}"


def chunks(secret: str, size: int = 12) -> list[str]:
    """Every piece of ``secret`` long enough to be a leak."""
    return [secret[i : i + size] for i in range(0, len(secret) - size + 1, size // 2)]


def assert_absent(secret: str, *places: str | bytes) -> None:
    for place in places:
        text = place.decode("utf-8", "replace") if isinstance(place, bytes) else place
        leaked = [c for c in chunks(secret) if c in text]
        assert not leaked, f"{len(leaked)} pieces of the secret, e.g. {leaked[0]!r}"


def database_bytes(folder: Path) -> bytes:
    """The database file and its WAL: what a backup or a stolen volume would hold."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob("watcher.db*")))


class EchoingGateway(BaseHTTPRequestHandler):
    """A gateway that answers 401 and echoes the request's Authorization header."""

    def do_GET(self) -> None:
        body = f"Jwt verification fails: {self.headers.get('Authorization')}".encode()
        self.send_response(401)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingGateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(channels={"#kyma-upgrades": CHANNEL}, token=SLACK_TOKEN).start()
    yield fake
    fake.stop()


def slack_section(slack: FakeSlack) -> str:
    return (
        f'alert_after = "0s"\n\n[slack]\ntoken = "{SLACK_TOKEN}"\nchannel = "#kyma-upgrades"\n'
        f'base_url = "{slack.api_url}"\n'
    )


def watcher(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("WATCHER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args], env=env, capture_output=True, text=True
    )


def test_a_401_echoing_a_long_jwt_leaks_no_piece_of_it(
    tmp_path: Path, gateway: str, slack: FakeSlack
) -> None:
    token = long_jwt()
    config = str(write_config(tmp_path / "watcher.toml", gateway, token, slack_section(slack)))
    assert watcher("--config", config, "track", "--no-check", ORCH).returncode == 0
    runs = [
        watcher("--config", config, "-v", "--log-format", fmt, "poll") for fmt in ("text", "json")
    ]
    for run in runs:
        assert run.returncode == 1
        assert "401" in run.stderr  # still says what went wrong
    listed = watcher("--config", config, "list")
    outbox = watcher("--config", config, "outbox", "list", "-o", "json")
    alerts = [m.text for m in slack.messages(CHANNEL)]
    assert any("cannot poll KEB" in text for text in alerts), (runs[1].stderr, outbox.stdout)
    sent = json.dumps([c.args for c in slack.calls])
    assert "Bearer ***" in listed.stdout + sent  # the echo is there, masked
    assert_absent(
        token,
        *(r.stderr + r.stdout for r in runs),
        listed.stdout,
        outbox.stdout,
        sent,
        database_bytes(tmp_path),
    )


def test_a_slack_error_echoing_the_authorization_header_leaks_nowhere(
    tmp_path: Path, cli: Cli, slack: FakeSlack
) -> None:
    unknown = "xoxp-5555555555-6666666666-UNKNOWNUSERTOKEN"
    echo = {"response_metadata": {"messages": [f"[ERROR] Authorization: Bearer {SLACK_TOKEN}"]}}
    echo["response_metadata"]["messages"].append(f"also saw {unknown}")
    config = write_config(tmp_path / "watcher.toml", "http://127.0.0.1:9", "keb-token-1234")
    config.write_text(config.read_text() + slack_section(slack))
    assert cli("--config", str(config), "track", "--no-check", ORCH).code == 0
    slack.fail_next("chat.postMessage", "invalid_auth", extra=echo, count=20)
    result = cli("--config", str(config), "notify-test")
    polled = cli("--config", str(config), "poll")
    outbox = cli("--config", str(config), "outbox", "list")
    for secret in (SLACK_TOKEN, unknown):
        assert_absent(
            secret,
            result.out + result.err,
            polled.out + polled.err,
            outbox.out,
            database_bytes(tmp_path),
        )
    assert "invalid_auth" in result.err + result.out


def test_check_config_shows_the_token_commands_program_only(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "watcher.toml"
    config.write_text(
        '[keb]\nurl = "https://keb.example.com"\n'
        'token_command = "kubectl oidc-login get-token --oidc-client-secret=hunter2hunter2"\n'
    )
    result = cli("--config", str(config), "check-config")
    assert result.code == 0, result.err
    (line,) = [x for x in result.out.splitlines() if x.startswith("keb.token_command")]
    assert line.split("=", 1)[1].split("  (")[0].strip() == "kubectl (arguments hidden)"
    assert "hunter2" not in result.out + result.err


def test_a_failing_token_commands_stderr_is_redacted(tmp_path: Path, cli: Cli) -> None:
    secret = "S3cretClientValue"
    command = f"sh -c 'echo \"login failed for client secret $0\" >&2; exit 3' {secret}"
    config = tmp_path / "watcher.toml"
    config.write_text(f'[keb]\nurl = "http://127.0.0.1:9"\ntoken_command = """{command}"""\n')
    result = cli("--config", str(config), "status", ORCH)
    assert result.code == 1
    assert result.err.startswith("watcher: token command sh exited with status 3: login failed")
    assert secret not in result.out + result.err


@pytest.mark.parametrize("key", ["keb.token", "slack.token"])
def test_a_secret_shorter_than_8_characters_is_refused(tmp_path: Path, cli: Cli, key: str) -> None:
    section = key.split(".")[0]
    config = write_config(tmp_path / "watcher.toml", "http://127.0.0.1:9", "keb-token-1234")
    text = config.read_text()
    if section == "slack":
        text += '\n[slack]\ntoken = "xoxb-1"\nchannel = "#a"\n'
    else:
        text = text.replace('token = "keb-token-1234"', 'token = "abc"')
    config.write_text(text)
    result = cli("--config", str(config), "check-config")
    assert result.code == 2
    assert result.err == (
        f"watcher: {config}: {key}: too short (6 characters; a real token has at least 8)\n"
        if section == "slack"
        else f"watcher: {config}: {key}: too short (3 characters; a real token has at least 8)\n"
    )


def test_the_redactor_masks_before_it_cuts() -> None:
    redactor = Redactor()
    token = long_jwt()
    redactor.add(token)
    cut = redactor.cut(f"401: {token}{token}", 500)
    assert cut == "401: ******"
    unknown = Redactor().cut(f"401: Jwt is expired {token}", 100)  # never told the token
    assert_absent(token, unknown)
    assert Redactor().redact("Authorization: Bearer abc.def.ghi") == "Authorization: Bearer ***"
    assert Redactor().redact("https://user:pa55word@host/x") == "https://***@host/x"


# -- each layer on its own (the end-to-end tests above pass through several of them) ------


OPAQUE = "opaque-" + "0123456789abcdef" * 50  # no Bearer, no JWT shape: only a known secret


def test_an_error_body_is_redacted_before_it_is_cut() -> None:
    remember(OPAQUE)
    line = describe_body(json.dumps({"error": f"token {OPAQUE} rejected"}).encode())
    assert line.startswith("token *** rejected")
    plain = describe_body(f"invalid token {OPAQUE} {OPAQUE}".encode())
    assert_absent(OPAQUE, line, plain)


def test_a_slack_failure_never_carries_a_token() -> None:
    failure = SlackFailure(
        "chat.postMessage", f"invalid_auth (Authorization: Bearer {OPAQUE})", transient=False
    )
    assert_absent(OPAQUE, str(failure), failure.error)
    assert "xoxb-" not in str(SlackFailure("auth.test", f"echo {SLACK_TOKEN}", transient=False))


def test_what_the_store_writes_is_redacted(tmp_path: Path) -> None:
    remember(OPAQUE)
    store = Store(tmp_path / "watcher.db")
    now = datetime(2024, 5, 14, tzinfo=UTC)
    store.track([ORCH], None, now)
    store.record_failure(ORCH, f"401: {OPAQUE}", now)
    store.set_health(now, f"401: {OPAQUE}", False)
    store.enqueue([Intent("k1", "keb_unhealthy", None, 0, {"keb": {"error": OPAQUE}})], now)
    outbox = Outbox(store)
    (entry,) = outbox.entries()
    outbox.step(None, entry, now)
    failed = AttemptResult(
        entry,
        now,
        "chat.postMessage",
        "failed",
        answer=f"echo {OPAQUE}",
        error=f"Slack: echo {OPAQUE}",
        render_error=f"template: {OPAQUE}",
    )
    outbox.step(failed, None, now)
    store.close()
    assert_absent(OPAQUE, database_bytes(tmp_path))
