"""The service's HTTP surface against hostile and careless clients, over real sockets.

Health, metrics and the dashboard are served as ``watcher run`` serves them
(:mod:`watcher.faces.run.server`): garbage, aborted, wrong-length and idle clients; the
headers on every status; the metrics token; sessions and login throttling.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.serving import serving
from watcher.config import Secret
from watcher.faces.run.health import Readiness, health_routes
from watcher.faces.run.metrics import Metrics
from watcher.faces.run.server import CSP, MAX_BODY

METRICS_TOKEN = "m3trics-t0ken"


@pytest.fixture
def url() -> Iterator[str]:
    ready = Readiness(60.0)
    ready.succeeded()
    with serving(health_routes(ready, Metrics().exposition), request_timeout=1.0) as base:
        yield base


def raw(url: str, data: bytes, *, wait: float = 2.0) -> bytes:
    """Send ``data`` on a fresh connection; what the server answered before closing or
    ``wait`` seconds."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def headers_of(answer: bytes) -> dict[str, str]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head)}


def assert_safe(headers: dict[str, str] | httpx.Headers, what: object) -> None:
    assert headers["content-security-policy"] == CSP, what
    assert headers["x-content-type-options"] == "nosniff", what
    assert headers["referrer-policy"] == "no-referrer", what
    assert headers["x-frame-options"] == "DENY", what
    assert headers["content-type"], what


def test_every_status_carries_the_headers(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        for method, path, status in (
            ("GET", "/healthz", 200),
            ("GET", "/readyz", 200),
            ("GET", "/metrics", 200),
            ("GET", "/nothing-here", 404),
            ("POST", "/healthz", 405),
            ("DELETE", "/metrics", 405),
            ("BREW", "/healthz", 405),
        ):
            answer = client.request(method, path)
            assert answer.status_code == status, (method, path)
            assert_safe(answer.headers, (method, path))
    too_large = raw(
        url, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
    )
    assert too_large.startswith(b"HTTP/1.1 413 "), too_large[:80]
    assert_safe(headers_of(too_large), 413)
    garbage = raw(url, b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400 "), garbage[:80]
    assert_safe(headers_of(garbage), 400)


def test_hostile_clients_leave_no_traceback_and_no_warning(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for data in (
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",  # wrong Content-Length
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort",  # then gone
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",  # headers beyond the limit
        b"\x00\xff\xfe" * 100,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",  # aborted mid-headers
    ):
        raw(url, data, wait=0.3)
    for _ in range(20):  # aborted at once
        host, port = url.removeprefix("http://").rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.close()  # a reset, mid-answer
    assert httpx.get(url + "/healthz").text == "ok\n"
    time.sleep(1.5)  # past the request timeout of the slow ones
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info]
    assert "Traceback" not in caplog.text


def test_healthz_answers_at_once_with_300_idle_connections(url: str) -> None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with ExitStack() as stack:
        for i in range(300):
            sock = stack.enter_context(socket.create_connection((host, int(port))))
            if i % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # slowloris: never ends
        started = time.monotonic()
        answer = httpx.get(url + "/healthz", timeout=5)
        assert answer.status_code == 200
        assert time.monotonic() - started < 1.0


def test_a_slow_client_is_closed_after_the_request_timeout(url: str) -> None:
    started = time.monotonic()
    answer = raw(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", wait=5.0)
    assert answer == b""  # closed without an answer...
    assert 0.8 < time.monotonic() - started < 3.0  # ...after the 1 s timeout, not never


def test_the_metrics_token_guards_metrics_but_not_health() -> None:
    ready = Readiness(60.0)
    routes = health_routes(ready, Metrics().exposition, Secret(METRICS_TOKEN))
    with serving(routes) as url, httpx.Client(base_url=url) as client:
        for given in (None, "Bearer wrong", f"Basic {METRICS_TOKEN}", "Bearer"):
            headers = {"authorization": given} if given else {}
            answer = client.get("/metrics", headers=headers)
            assert answer.status_code == 401, given
            assert "keb_watcher" not in answer.text
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert_safe(answer.headers, given)
        answer = client.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
        assert answer.status_code == 200
        assert "keb_watcher_poll_cycles" in answer.text
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
