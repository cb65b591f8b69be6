"""The service's HTTP surface on a real socket, for tests: :class:`WebServer` in an event
loop of its own thread (as in ``watcher run``, where it shares the service's loop)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from watcher.faces.run.server import REQUEST_TIMEOUT, WebServer, surface


@contextmanager
def serving(
    routes: Sequence[BaseRoute],
    middleware: Sequence[Middleware] = (),
    listen: str = "127.0.0.1:0",
    request_timeout: float = REQUEST_TIMEOUT,
) -> Iterator[str]:
    """Serve ``routes`` on ``listen``; yields the base URL (``http://127.0.0.1:PORT``)."""
    server = WebServer(listen, surface(routes, middleware), request_timeout=request_timeout)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        await server.start()
        started.set()
        await stop.wait()
        await server.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert started.wait(10), "the server did not start"
        yield server.url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
