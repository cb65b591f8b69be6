"""A timing hook on the HTTP transport under :class:`~watcher.keb.KebClient`, for metrics.

httpx's one seam per I/O dependency is the transport (``AsyncBaseTransport``): wrapping it
sees every HTTP exchange, retries included, without the client knowing. Kept in this package
because it is the only one that imports httpx.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from watcher.keb._httpx import httpx

#: Called once per exchange: the status class (``2xx``, ``4xx``, ``5xx``...) or ``error``
#: (no response: connection refused, timeout, cancelled), and the seconds to the headers.
ExchangeHook = Callable[[str, float], None]


class TimedTransport(httpx.AsyncBaseTransport):
    """Forwards to ``inner`` and reports each exchange to ``observe``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, observe: ExchangeHook) -> None:
        self._inner = inner
        self._observe = observe

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.monotonic()
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            self._observe("error", time.monotonic() - started)
            raise
        self._observe(f"{response.status_code // 100}xx", time.monotonic() - started)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def timed_transport(observe: ExchangeHook, concurrency: int) -> httpx.AsyncBaseTransport:
    """The transport httpx would build itself (connection pool of ``concurrency``), timed.

    httpx ignores ``limits`` when given a transport, so the pool size is set here.
    """
    inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=concurrency))
    return TimedTransport(inner, observe)
