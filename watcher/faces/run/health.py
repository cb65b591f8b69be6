"""The HTTP endpoint of ``watcher run`` (``[service] listen``): health, readiness, metrics.

* ``GET /healthz``: 200 ``ok`` while the process serves at all;
* ``GET /readyz``: 200 when the last successful poll cycle ended within
  ``ready_after_intervals`` x the polling interval, else 503; the body is one line saying why;
* ``GET /metrics``: the Prometheus text format (:mod:`watcher.faces.run.metrics`);
* anything else goes to the dashboard (:mod:`watcher.faces.web.routes`) when one is given.

Served by the standard library's ``ThreadingHTTPServer`` in a daemon thread, so a scrape never
waits for the event loop and a busy loop cannot make the service look dead. The state the
threads read (:class:`Readiness`) is guarded by a lock.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from watcher.core.durations import format_duration
from watcher.errors import WatcherError


def _ago(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 10 else format_duration(round(seconds))


class Readiness:
    """Whether the service does its job: it holds the lease and polls successfully.

    ``window`` is ``ready_after_intervals`` x the interval, in seconds; times are
    ``time.monotonic()`` values.
    """

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._standby: str | None = None

    def succeeded(self) -> None:
        with self._lock:
            self._last_success = self.clock()
            self._last_error = None

    def failed(self, error: str) -> None:
        with self._lock:
            self._last_error = error

    def standby(self, reason: str | None) -> None:
        """Not polling because of ``reason`` (e.g. another instance holds the lease)."""
        with self._lock:
            self._standby = reason

    def check(self) -> tuple[bool, str]:
        """``(ready, one line saying why)``."""
        with self._lock:
            now = self.clock()
            if self._standby is not None:
                return False, f"not ready: {self._standby}"
            error = f"; last error: {self._last_error}" if self._last_error else ""
            if self._last_success is None:
                since = _ago(now - self._started)
                return False, f"not ready: no successful poll yet (started {since} ago){error}"
            age = now - self._last_success
            ago = _ago(age)
            if age > self.window:
                limit = _ago(self.window)
                return False, f"not ready: last successful poll {ago} ago (limit {limit}){error}"
            return True, f"ready: last successful poll {ago} ago"


#: The dashboard: ``(method, target, headers, body)`` -> ``(status, headers, body)``, or None
#: when the path is not one of its own.
Pages = Callable[
    [str, str, Mapping[str, str], bytes], tuple[int, list[tuple[str, str]], bytes] | None
]
#: The largest request body read (the dashboard's login form).
MAX_BODY = 4096


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    readiness: Readiness
    metrics: Callable[[], bytes]
    pages: Pages | None


class _HealthHandler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown the service's own log."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._reply(200, "text/plain; charset=utf-8", b"ok\n")
        elif path == "/readyz":
            ready, why = self.server.readiness.check()
            self._reply(200 if ready else 503, "text/plain; charset=utf-8", f"{why}\n".encode())
        elif path == "/metrics":
            self._reply(200, CONTENT_TYPE_LATEST, self.server.metrics())
        else:
            self._to_pages("GET", b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY:
            self._reply(413, "text/plain; charset=utf-8", b"request body too large\n")
            return
        self._to_pages("POST", self.rfile.read(length))

    def _to_pages(self, method: str, body: bytes) -> None:
        pages = self.server.pages
        headers = {key.lower(): value for key, value in self.headers.items()}
        answer = pages(method, self.path, headers, body) if pages is not None else None
        if answer is None:
            body = b"not found: try /healthz, /readyz or /metrics\n"
            self._reply(404, "text/plain; charset=utf-8", body)
            return
        status, extra, content = answer
        self._reply(status, "", content, extra)

    def _reply(
        self, status: int, content_type: str, body: bytes, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _address(listen: str) -> tuple[str, int, socket.AddressFamily]:
    """``host:port`` or ``[v6]:port`` (as ``[service] listen`` validated it)."""
    host, _, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1], int(port), socket.AF_INET6
    return host, int(port), socket.AF_INET


class HealthServer:
    """Serves the three endpoints (and the dashboard's ``pages``) on ``listen`` from a daemon
    thread."""

    def __init__(
        self,
        listen: str,
        readiness: Readiness,
        metrics: Callable[[], bytes],
        pages: Pages | None = None,
    ) -> None:
        host, port, family = _address(listen)
        server_class = type("_Bound", (_Server,), {"address_family": family})
        try:
            self._httpd: _Server = server_class((host, port), _HealthHandler)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise WatcherError(f"service.listen: cannot listen on {listen}: {reason}") from None
        self._httpd.readiness = readiness
        self._httpd.metrics = metrics
        self._httpd.pages = pages
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        shown = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"

    def start(self) -> HealthServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="keb-watcher health",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
