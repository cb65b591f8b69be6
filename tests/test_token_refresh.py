"""``deploy/kubernetes/token-refresh/keb-token-refresh.py`` as the sidecar runs it: a real
process against a fake OIDC token endpoint on 127.0.0.1 that issues short-lived JWT-shaped
tokens. The file must always hold a whole token (written beside and renamed over), with mode
0600, and be rewritten before the token in it expires."""

from __future__ import annotations

import base64
import itertools
import json
import os
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

SCRIPT = (
    Path(__file__).resolve().parents[1]
    / "deploy"
    / "kubernetes"
    / "token-refresh"
    / "keb-token-refresh.py"
)
CLIENT_ID, CLIENT_SECRET = "keb-watcher-client", "s3cret-client-value"


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@dataclass
class FakeIdP:
    """A token endpoint: each POST gets a new token valid for ``lifetime`` seconds."""

    lifetime: float = 2.0
    status: int = 200
    answer: dict[str, Any] | None = None
    requests: list[tuple[dict[str, str], str]] = field(default_factory=list)
    issued: dict[str, float] = field(default_factory=dict)  # token -> its exp

    def __post_init__(self) -> None:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                idp.requests.append((form, self.headers.get("Authorization", "")))
                body = idp.reply()
                self.send_response(idp.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/oauth2/token"

    def reply(self) -> bytes:
        if self.status != 200:
            return json.dumps({"error": "invalid_client", "error_description": "bad"}).encode()
        if self.answer is not None:
            return json.dumps(self.answer).encode()
        exp = time.time() + self.lifetime
        claims = {"iss": "https://idp.test", "groups": ["orchestrationsAdmin"], "exp": exp}
        token = f"{b64({'alg': 'RS256'})}.{b64(claims)}.sig{len(self.issued)}"
        self.issued[token] = exp
        return json.dumps(
            {"id_token": token, "access_token": "opaque", "expires_in": 3600}
        ).encode()


@pytest.fixture
def idp() -> Iterator[FakeIdP]:
    fake = FakeIdP()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def environment(idp: FakeIdP, token_file: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "TOKEN_"))}
    env |= {
        "OIDC_TOKEN_URL": idp.url,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "TOKEN_FILE": str(token_file),
    }
    return env | extra


def run_once(idp: FakeIdP, token_file: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--once"],
        env=environment(idp, token_file, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sidecar_writes_atomically_with_mode_0600_and_refreshes_before_expiry(
    idp: FakeIdP, tmp_path: Path
) -> None:
    token_file = tmp_path / "keb-token"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT)],
        env=environment(idp, token_file),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    torn: list[str] = []
    stop = threading.Event()

    def read() -> None:  # a reader racing the writer, as keb-watcher would
        while not stop.is_set():
            try:
                text = token_file.read_text()
            except FileNotFoundError:
                continue
            if text.strip() not in idp.issued or not text.endswith("\n"):
                torn.append(text)
            elif not seen or seen[-1] != text.strip():
                seen.append(text.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while len(seen) < 3:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, f"{len(seen)} tokens seen"
            time.sleep(0.02)
        mode = stat.S_IMODE(token_file.stat().st_mode)
    finally:
        stop.set()
        reader.join()
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert torn == [], "a reader saw a partial or empty file"
    assert mode == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keb-token"], "temporary files left"
    assert seen == list(idp.issued)[: len(seen)]
    # Each token was replaced while it was still valid (half its lifetime, not at expiry).
    for old, new in itertools.pairwise(seen):
        issued_new = idp.issued[new] - idp.lifetime
        assert issued_new < idp.issued[old] - 0.5, "rewritten too late"
    form, authorization = idp.requests[0]
    assert form == {"grant_type": "client_credentials", "scope": "openid"}
    basic = base64.b64decode(authorization.removeprefix("Basic ")).decode()
    assert basic == f"{CLIENT_ID}:{CLIENT_SECRET}"
    assert "wrote a new id_token to" in err
    assert CLIENT_SECRET not in err
    assert not any(token in err for token in idp.issued)


def test_each_write_is_a_new_file_renamed_over_the_old(idp: FakeIdP, tmp_path: Path) -> None:
    token_file = tmp_path / "keb-token"
    assert run_once(idp, token_file).returncode == 0
    first = token_file.stat().st_ino
    held = token_file.open()  # keb-watcher in the middle of reading the old token
    assert run_once(idp, token_file).returncode == 0
    assert token_file.stat().st_ino != first
    assert held.read().strip() == next(iter(idp.issued)), "the old file was changed in place"
    held.close()
    assert token_file.read_text().strip() == list(idp.issued)[1]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_password_grant_and_client_secret_post(idp: FakeIdP, tmp_path: Path) -> None:
    done = run_once(
        idp,
        tmp_path / "keb-token",
        OIDC_GRANT_TYPE="password",
        OIDC_USERNAME="tech-user",
        OIDC_PASSWORD="tech-password",
        OIDC_CLIENT_AUTH="post",
    )
    assert done.returncode == 0, done.stderr
    form, authorization = idp.requests[0]
    assert authorization == ""
    assert form == {
        "grant_type": "password",
        "scope": "openid",
        "username": "tech-user",
        "password": "tech-password",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }


def test_an_error_answer_is_one_line_without_secrets_and_writes_nothing(
    idp: FakeIdP, tmp_path: Path
) -> None:
    idp.status = 401
    done = run_once(idp, tmp_path / "keb-token")
    assert done.returncode == 1
    assert f"{idp.url} answered 401: invalid_client bad" in done.stderr
    assert CLIENT_SECRET not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_answer_without_an_id_token_says_so(idp: FakeIdP, tmp_path: Path) -> None:
    idp.answer = {"access_token": "opaque", "expires_in": 60}
    done = run_once(idp, tmp_path / "keb-token")
    assert done.returncode == 1
    assert "answered without id_token" in done.stderr
    assert "client_credentials grant" in done.stderr
    # An IdP whose access token is the JWT KEB accepts: TOKEN_FIELD chooses it.
    done = run_once(idp, tmp_path / "keb-token", TOKEN_FIELD="access_token")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "keb-token").read_text() == "opaque\n"


def test_missing_configuration_is_exit_2(idp: FakeIdP, tmp_path: Path) -> None:
    env = environment(idp, tmp_path / "keb-token")
    del env["OIDC_TOKEN_URL"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--once"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "OIDC_TOKEN_URL is not set" in done.stderr
