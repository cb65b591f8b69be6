"""The HTTP server of ``watcher run`` (``[service] listen``): an ASGI application on uvicorn.

uvicorn serves inside the service's own event loop: a connection is a protocol object and a
request a task, never a thread, so idle clients cost a few kilobytes each. What uvicorn leaves
open, :class:`_GuardedH11` bounds:

* a connection must deliver a whole request (headers and body) within
  :data:`REQUEST_TIMEOUT` of opening or of its previous answer, else it is closed: an idle or
  trickling client (slowloris) holds a slot for seconds, not forever;
* at most :data:`MAX_CONNECTIONS` are open; past that a new one closes the oldest connection
  that is waiting for a request (or itself, when every one is busy);
* headers are limited to :data:`MAX_HEADERS` bytes (h11), bodies to :data:`MAX_BODY` (413);
* a malformed request gets uvicorn's 400 with our headers, and uvicorn's own log lines become
  debug lines (:class:`_Quiet`): a hostile client never writes a traceback or a warning.

:func:`surface` puts :mod:`watcher.faces.run.health` and the dashboard
(:mod:`watcher.faces.web.routes`) behind one middleware that adds the headers of PRODUCT.md
"The service's HTTP surface" to every answer, errors and redirects included.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Iterator, Sequence
from typing import Any, Final, cast

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from watcher.errors import WatcherError

log = logging.getLogger("watcher.faces.run.server")

#: Seconds a connection has to send one whole request.
REQUEST_TIMEOUT: Final = 10.0
#: Seconds an idle keep-alive connection stays open after an answer.
KEEP_ALIVE: Final = 5
#: Open connections at most.
MAX_CONNECTIONS: Final = 1000
#: Bytes of request line and headers at most.
MAX_HEADERS: Final = 16 * 1024
#: Bytes of request body at most (the dashboard's login form is the only body).
MAX_BODY: Final = 4096

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: The headers of every answer (PRODUCT.md "The service's HTTP surface").
SAFE_HEADERS: Final = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
)
TEXT: Final = "text/plain; charset=utf-8"


class SafeHeaders:
    """ASGI middleware: every answer carries :data:`SAFE_HEADERS` and a Content-Type."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_safe_headers(message.get("headers", []))
            await send(message)

        await self.app(scope, receive, sending)


def with_safe_headers(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out = list(headers)
    present = {name.lower() for name, _ in out}
    for name, value in (*SAFE_HEADERS, ("content-type", TEXT)):
        if name.encode() not in present:
            out.append((name.encode(), value.encode()))
    return out


class BoundedBody:
    """ASGI middleware: a body is read whole, up to :data:`MAX_BODY` bytes, before the
    application sees the request; larger is 413, a client gone mid-body is nothing at all."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > MAX_BODY:
            await _too_large(scope, receive, send)
            return
        body = bytearray()
        more = int(declared) > 0 or b"transfer-encoding" in dict(scope["headers"])
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                log.debug("%s %s: the client left mid-request", scope["method"], scope["path"])
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                await _too_large(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    answer = PlainTextResponse(
        f"request body too large or unreadable (at most {MAX_BODY} bytes)\n",
        413,
        headers={"connection": "close"},
    )
    await answer(scope, receive, send)


async def _not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("not found: try /healthz, /readyz or /metrics\n", 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(f"method not allowed: {request.method[:20]}\n", 405)


def surface(routes: Sequence[BaseRoute], middleware: Sequence[Middleware] = ()) -> Starlette:
    """The ASGI application: ``routes`` (health first, then the dashboard's) behind the
    headers and the body limit; ``middleware`` (the dashboard's sessions) inside them."""
    return Starlette(
        routes=list(routes),
        middleware=[Middleware(SafeHeaders), Middleware(BoundedBody), *middleware],
        exception_handlers={404: _not_found, 405: _not_allowed},
    )


class _Quiet(logging.Filter):
    """uvicorn's lines below ERROR (a malformed request, a client gone, start and stop) are
    debug lines of ours: hostile clients must not fill the service's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return log.isEnabledFor(logging.DEBUG)


_QUIET: Final = _Quiet()


class _GuardedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline per request and a bound on connections."""

    _deadline: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, request_timeout: float = REQUEST_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout = request_timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if len(self.connections) > MAX_CONNECTIONS:
            idle = [c for c in self.connections if isinstance(c, _GuardedH11) and c._idle()]
            victim = min(idle, key=lambda c: c._since) if idle else self
            log.debug("%d connections open: closing one", len(self.connections))
            victim.transport.close()
        self._arm()

    def _idle(self) -> bool:
        waiting = self.cycle is None or self.cycle.response_complete
        return waiting and self.conn.their_state is h11.IDLE

    def _arm(self) -> None:
        self._since = self.loop.time()
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        if self.conn.their_state is not h11.DONE and not self.transport.is_closing():
            log.debug("closing a connection with no whole request in %gs", self.request_timeout)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.DONE:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()
            if self.conn.their_state is h11.DONE:  # a pipelined request, already whole
                self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a malformed request, with our headers."""
        self._disarm()
        body = b"bad request\n"
        headers = with_safe_headers([(b"connection", b"close")])
        try:
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\n"
                + b"".join(name + b": " + value + b"\r\n" for name, value in headers)
                + b"content-length: %d\r\n\r\n" % len(body)
                + body
            )
        finally:
            self.transport.close()


def _bind(listen: str) -> socket.socket:
    """``host:port`` or ``[v6]:port`` (as ``[service] listen`` validated it), bound now so
    that a port in use is one clear error before anything starts."""
    host, _, port = listen.rpartition(":")
    family = socket.AF_INET
    if host.startswith("[") and host.endswith("]"):
        host, family = host[1:-1], socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: an answer's head and body leave at once, not after
        # the client's delayed ACK (40 ms per keep-alive request otherwise).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, int(port)))
        sock.listen(256)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise WatcherError(f"service.listen: cannot listen on {listen}: {reason}") from None
    sock.setblocking(False)
    return sock


class _InLoop(uvicorn.Server):
    """uvicorn's server without its signal handlers: the service owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """``app`` served on ``listen`` by uvicorn, in the running event loop.

    The socket is bound at construction (:class:`~watcher.errors.WatcherError` naming
    ``service.listen`` when it cannot be); :meth:`start` and :meth:`stop` run in the loop.
    """

    def __init__(
        self, listen: str, app: ASGIApp, *, request_timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self._socket = _bind(listen)
        protocol = functools.partial(_GuardedH11, request_timeout=request_timeout)
        self._config = uvicorn.Config(
            app,
            http=cast(type[asyncio.Protocol], protocol),
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,  # the client is the peer: X-Forwarded-For is not trusted
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE,
            timeout_graceful_shutdown=2,
            h11_max_incomplete_event_size=MAX_HEADERS,
        )
        self._server: uvicorn.Server | None = None
        self._main: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    async def start(self) -> WebServer:
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
            logging.getLogger(name).addFilter(_QUIET)  # a set: adding twice is once
        server = self._server = _InLoop(self._config)
        self._main = asyncio.create_task(server.serve([self._socket]), name="keb-watcher http")
        while not server.started and not self._main.done():  # noqa: ASYNC110 (a flag, no event)
            await asyncio.sleep(0.01)
        if self._main.done():
            self._main.result()  # its error, if any
        return self

    async def stop(self) -> None:
        if self._server is not None and self._main is not None:
            self._server.should_exit = True
            await self._main
            self._server = self._main = None
        self._socket.close()

    async def __aenter__(self) -> WebServer:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
