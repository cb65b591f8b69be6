"""TLS failures name the host and the cause and point to the setting that fixes them: a
hostname mismatch, a protocol error (HTTPS to a plain-HTTP port); `check-config --online` calls
them configuration errors (exit 2), never a silent retry (real TLS on 127.0.0.1)."""

from __future__ import annotations

import http.server
import shutil
import sqlite3
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.fakeslack import FakeSlack
from tests.test_config_tls_e2e import ORCH, TOKEN, Answer404, config


def serve(tls: ssl.SSLContext | None) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer404)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    Answer404.requests = 0
    return server, server.server_address[1]


@pytest.fixture
def plain_http() -> Iterator[str]:
    """A plain-HTTP server, addressed as https: the handshake meets no TLS at all."""
    server, port = serve(None)
    yield f"https://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def other_host(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """HTTPS with a certificate for keb.example.com only, served on 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    cert, key = tmp_path / "other.pem", tmp_path / "other.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=keb.example.com"),
            *("-addext", "subjectAltName=DNS:keb.example.com"),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server, port = serve(context)
    yield f"https://127.0.0.1:{port}", cert
    server.shutdown()
    server.server_close()


def test_a_protocol_error_names_the_host_and_the_cause(
    tmp_path: Path, cli: Cli, plain_http: str
) -> None:
    path = config(tmp_path, url=plain_http)
    result = cli("--config", str(path), "status", ORCH, env={"KEB_TOKEN": TOKEN})
    assert result.code == 1
    assert result.err.startswith(
        f"watcher: KEB GET /orchestrations/{ORCH}: TLS handshake with {plain_http} failed "
        "(protocol error: "
    )
    assert "is keb.url's port serving HTTPS?" in result.err
    assert len(result.err.splitlines()) == 1
    assert Answer404.requests == 0
    checked = cli("--config", str(path), "check-config", "--online", env={"KEB_TOKEN": TOKEN})
    assert checked.code == 2, checked.err
    assert f"TLS handshake with {plain_http} failed (protocol error: " in checked.err
    assert TOKEN not in checked.err + checked.out


def test_a_certificate_for_another_host_is_a_hostname_mismatch(
    tmp_path: Path, cli: Cli, other_host: tuple[str, Path]
) -> None:
    url, cert = other_host
    path = config(tmp_path, keb=f'ca_file = "{cert}"', url=url)  # trusted, but not for this host
    result = cli("--config", str(path), "status", ORCH, env={"KEB_TOKEN": TOKEN})
    assert result.code == 1
    assert result.err.startswith(
        f"watcher: KEB GET /orchestrations/{ORCH}: TLS certificate of {url} is for another host "
        "(IP address mismatch"
    ), result.err
    assert "keb.url must name a host the certificate covers" in result.err
    checked = cli("--config", str(path), "check-config", "--online", env={"KEB_TOKEN": TOKEN})
    assert checked.code == 2
    assert "is for another host" in checked.err
    assert Answer404.requests == 0


def test_for_a_running_watcher_a_tls_failure_is_an_outage_with_its_alert(
    tmp_path: Path, cli: Cli, plain_http: str
) -> None:
    with FakeSlack(channels={"#kyma-upgrades": "C0KYMA001"}, post_interval=0.0) as slack:
        path = config(tmp_path, poll='alert_after = "0s"', url=plain_http)
        path.write_text(
            path.read_text() + f'\n[slack]\ntoken = "xoxb-test-token"\nchannel = "#kyma-upgrades"\n'
            f'base_url = "{slack.api_url}"\n'
        )
        env = {"KEB_TOKEN": TOKEN}
        assert cli("--config", str(path), "track", "--no-check", ORCH, env=env).code == 0
        polled = cli("--config", str(path), "poll", env=env)
        assert polled.code == 1
        assert "protocol error" in polled.err
        with sqlite3.connect(tmp_path / "watcher.db") as db:
            kinds = [row[0] for row in db.execute("SELECT kind FROM outbox")]
        assert "keb_unhealthy" in kinds
        alert = [m for m in slack.messages("C0KYMA001") if "protocol error" in m.text]
        assert alert, [m.text for m in slack.messages("C0KYMA001")]
