"""Configuration that cannot surprise later, end to end: a cron expression that never fires, a
missing CA bundle and a URL with credentials are exit 2 naming the key; a certificate KEB's
client does not trust is reported as such (reason, host), once, not retried; `keb.ca_file`
makes it trusted."""

from __future__ import annotations

import http.server
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli

ORCH = "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11"
TOKEN = "keb-token-1234"


def config(tmp_path: Path, keb: str = "", poll: str = "", url: str = "https://127.0.0.1:9") -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'[keb]\nurl = "{url}"\ntoken = "${{KEB_TOKEN}}"\nretries = 4\n{keb}\n'
        f'[storage]\npath = "{tmp_path / "watcher.db"}"\n\n[poll]\n{poll}\n'
    )
    return path


@pytest.mark.parametrize(
    ("keb", "poll", "url", "message"),
    [
        (
            "",
            'cron = "0 0 31 2 *"',
            "https://127.0.0.1:9",
            "poll.cron: cron expression '0 0 31 2 *' never fires (no future date matches)",
        ),
        (
            'ca_file = "no-such-ca.pem"',
            "",
            "https://127.0.0.1:9",
            "keb.ca_file: {tmp}/no-such-ca.pem: no such file",
        ),
        (
            "",
            "",
            "https://ops:pa55word@keb.example.com",
            "keb.url: must not contain credentials (user:password@); use a token setting instead",
        ),
    ],
    ids=["cron-never-fires", "ca-file-missing", "url-with-credentials"],
)
def test_surprises_are_configuration_errors(
    tmp_path: Path, cli: Cli, keb: str, poll: str, url: str, message: str
) -> None:
    path = config(tmp_path, keb, poll, url)
    result = cli("--config", str(path), "check-config", env={"KEB_TOKEN": TOKEN})
    assert result.code == 2
    assert result.err == f"watcher: {path}: {message.format(tmp=tmp_path)}\n"
    assert "pa55word" not in result.err


class Answer404(http.server.BaseHTTPRequestHandler):
    requests = 0

    def do_GET(self) -> None:
        Answer404.requests += 1
        body = json.dumps({"error": "orchestration not found"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tls_keb(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A KEB stand-in over HTTPS with a self-signed certificate; yields its URL and the cert."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    cert, key = tmp_path / "keb.pem", tmp_path / "keb.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer404)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Answer404.requests = 0
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()


def test_an_untrusted_certificate_is_reported_as_such_and_not_retried(
    tmp_path: Path, cli: Cli, tls_keb: tuple[str, Path]
) -> None:
    url, cert = tls_keb
    path = config(tmp_path, url=url)
    result = cli("--config", str(path), "status", ORCH, env={"KEB_TOKEN": TOKEN})
    assert result.code == 1
    assert result.err == (
        f"watcher: KEB GET /orchestrations/{ORCH}: TLS certificate of {url} not trusted "
        "(self-signed certificate); set keb.ca_file\n"
    )
    assert Answer404.requests == 0  # the handshake failed: nothing was sent, nothing retried

    trusted = config(tmp_path, keb=f'ca_file = "{cert}"', url=url)
    result = cli("--config", str(trusted), "status", ORCH, env={"KEB_TOKEN": TOKEN})
    assert result.code == 1
    assert result.err == (  # KEB's answer came through: the certificate is trusted now
        f"watcher: KEB GET /orchestrations/{ORCH}: 404 Not Found: orchestration not found\n"
    )
    assert Answer404.requests == 1
