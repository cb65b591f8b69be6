"""The HTTP endpoint of ``watcher run`` (``[service] listen``): health, readiness, metrics.

* ``GET /healthz``: 200 ``ok`` while the process serves at all;
* ``GET /readyz``: 200 when the last successful poll cycle ended within
  ``ready_after_intervals`` x the polling interval, else 503; the body is one line saying why;
* ``GET /metrics``: the Prometheus text format (:mod:`watcher.faces.run.metrics`);
* with ``service.metrics_token``, ``/metrics`` asks for it as a bearer token.

Routes of the ASGI application that :mod:`watcher.faces.run.server` serves in the service's
event loop; the dashboard's pages run in worker threads, so :class:`Readiness` keeps its lock.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.config import Secret
from watcher.core.durations import format_duration


def _ago(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 10 else format_duration(round(seconds))


class Readiness:
    """Whether the service does its job: it holds the lease and polls successfully.

    ``window`` is ``ready_after_intervals`` x the interval, in seconds; times are
    ``time.monotonic()`` values.
    """

    def __init__(
        self,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        probe: Callable[[], str | None] | None = None,
    ) -> None:
        self.window = window
        self.clock = clock
        #: Asked on every check: why the service cannot work at all (its database file is
        #: gone), or None.
        self.probe = probe
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
        broken = self.probe() if self.probe is not None else None
        if broken:
            return False, f"not ready: {broken}"
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


def health_routes(
    readiness: Readiness, metrics: Callable[[], bytes], metrics_token: Secret | None = None
) -> list[BaseRoute]:
    """``/healthz``, ``/readyz`` and ``/metrics``; with ``metrics_token``, ``/metrics`` needs
    ``Authorization: Bearer <token>`` (401 otherwise). All three answer in the event loop."""
    token = metrics_token.reveal().encode() if metrics_token else None

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        ready, why = readiness.check()
        return PlainTextResponse(f"{why}\n", 200 if ready else 503)

    async def exposition(request: Request) -> Response:
        if token is not None and not bearer_matches(request.headers.get("authorization"), token):
            return PlainTextResponse(
                "unauthorized: /metrics needs service.metrics_token as a bearer token\n",
                401,
                headers={"www-authenticate": 'Bearer realm="keb-watcher metrics"'},
            )
        return Response(metrics(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", exposition, methods=["GET"]),
    ]


def bearer_matches(header: str | None, token: bytes) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)
