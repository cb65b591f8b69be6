"""The dashboard's routes (Starlette), served beside ``/healthz``, ``/readyz`` and ``/metrics``.

=========================================  =====================================================
``GET /``                                  every tracked orchestration (``?state=`` filters)
``GET /orchestrations/{id}``               one orchestration (``?state=``, ``?q=`` for operations)
``GET /api/orchestrations``                the JSON of ``watcher list -o json``
``GET /api/orchestrations/{id}``           one item of it, plus ``history``: ``watcher history``
``GET /api/board``                         revision, staleness: what the live pages poll
``GET /login``, ``POST /login``            the form that starts a session
``GET /static/...``                        the stylesheet and the script (no data in them)
=========================================  =====================================================

Read-only: nothing here calls KEB or changes the database. With ``service.dashboard_token``,
everything but ``/static/`` and ``/login`` needs ``Authorization: Bearer <token>`` or the
session cookie that ``/login`` sets: Starlette's signed session (``HttpOnly``,
``SameSite=Strict``, ``Secure`` behind an https ``service.public_url``, expiring after
:data:`SESSION_TTL`), signed with a key derived from the token, so that a new token ends every
session. Failed logins and wrong bearer tokens are throttled per client
(:mod:`watcher.faces.web.throttle`) and logged. The security headers of every answer come from
:class:`watcher.faces.run.server.SafeHeaders`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.app import Watcher
from watcher.app.dashboard import PageRenderer
from watcher.config import Secret
from watcher.core.durations import format_duration
from watcher.core.ids import is_uuid
from watcher.core.tracked import Tracked
from watcher.errors import WatcherError
from watcher.faces import reports
from watcher.faces.run.health import bearer_matches
from watcher.faces.web import views
from watcher.faces.web.throttle import LoginThrottle

log = logging.getLogger("watcher.faces.web")

HERE: Final = Path(__file__).resolve().parent
STATIC: Final = {
    "dashboard.css": ("text/css; charset=utf-8", HERE / "static" / "dashboard.css"),
    "dashboard.js": ("text/javascript; charset=utf-8", HERE / "static" / "dashboard.js"),
}
COOKIE: Final = "keb_watcher_session"
#: How long a session lasts (the cookie's Max-Age, and the signature's age limit).
SESSION_TTL: Final = 12 * 3600
HTML: Final = "text/html; charset=utf-8"
JSON: Final = "application/json"


class Dashboard:
    """The dashboard: :meth:`routes` and the :meth:`middleware` they need.

    ``stale_after``: seconds without a finished poll cycle (on the app's clock) after which
    the pages say the data is stale. ``token``: ``service.dashboard_token``, if any;
    ``public_url``: ``service.public_url``, if any (https makes the cookie ``Secure``).
    """

    def __init__(
        self,
        app: Watcher,
        *,
        stale_after: float,
        token: Secret | None = None,
        public_url: str | None = None,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.app = app
        self.stale_after = stale_after
        self.pages = PageRenderer(HERE / "templates")
        self.secure = bool(public_url and public_url.lower().startswith("https:"))
        self.throttle = throttle if throttle is not None else LoginThrottle()
        self._token = token.reveal().encode() if token else None

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self._overview, methods=["GET"]),
            Route("/orchestrations/{orch_id}", self._detail, methods=["GET"]),
            Route("/api/board", self._pulse, methods=["GET"]),
            Route("/api/orchestrations", self._listed, methods=["GET"]),
            Route("/api/orchestrations/{orch_id}", self._one, methods=["GET"]),
            Route("/login", self._login, methods=["GET", "POST"]),
            Route("/static/{name}", self._static, methods=["GET"]),
            Route("/favicon.ico", self._favicon, methods=["GET"]),
        ]

    def middleware(self) -> list[Middleware]:
        """Sessions, when a token guards the dashboard; their key is derived from it."""
        if self._token is None:
            return []
        key = hmac.new(self._token, b"keb-watcher dashboard session", hashlib.sha256)
        return [
            Middleware(
                SessionMiddleware,
                secret_key=key.hexdigest(),
                session_cookie=COOKIE,
                max_age=SESSION_TTL,
                same_site="strict",
                https_only=self.secure,
            )
        ]

    # -- authentication -------------------------------------------------------------------

    def _refused(self, request: Request) -> Response | None:
        """None when ``request`` may read; else the answer: 429 while its client is
        throttled, 401 with the login form (pages) or JSON (``/api/``)."""
        if self._token is None:
            return None
        client = _client(request)
        header = request.headers.get("authorization")
        if header is None and request.session.get("signed_in") is True:
            return None
        wait = self.throttle.wait(client)
        if wait:
            return _throttled(wait)
        if header is not None:
            if bearer_matches(header, self._token):
                return None
            self._failed(client, "a wrong bearer token")
        if request.url.path.startswith("/api/"):
            return _json(
                401,
                {"error": "unauthorized: give the dashboard token"},
                {"www-authenticate": 'Bearer realm="keb-watcher"'},
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return self._page(401, "login.html", {"error": "", "next": _local(target)})

    def _failed(self, client: str, what: str) -> None:
        count = self.throttle.failed(client)
        window = format_duration(round(self.throttle.window))
        log.warning("dashboard: %s from %s (%d in the last %s)", what, client, count, window)

    async def _login(self, request: Request) -> Response:
        if request.method == "GET":
            target = _local(request.query_params.get("next", "/"))
            return self._page(200, "login.html", {"error": "", "next": target})
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        target = _local(form.get("next", ["/"])[0])
        if self._token is None:
            return RedirectResponse(target, 303)
        client = _client(request)
        wait = self.throttle.wait(client)
        if wait:
            return _throttled(wait)
        given = form.get("token", [""])[0].encode()
        if not hmac.compare_digest(given, self._token):
            self._failed(client, "a failed login")
            return self._page(401, "login.html", {"error": "Wrong token.", "next": target})
        self.throttle.succeeded(client)
        request.session.clear()
        request.session["signed_in"] = True
        return RedirectResponse(target, 303)

    # -- pages and API --------------------------------------------------------------------

    async def _overview(self, request: Request) -> Response:
        state = request.query_params.get("state", "")
        return await self._read(
            request,
            lambda app: self._page(
                200, "overview.html", views.overview(app, state, self.stale_after)
            ),
        )

    async def _pulse(self, request: Request) -> Response:
        def answer(app: Watcher) -> Response:
            revision, last = app.dashboard.pulse()
            return _json(200, views.pulse(app.clock(), revision, last, self.stale_after))

        return await self._read(request, answer)

    async def _listed(self, request: Request) -> Response:
        def answer(app: Watcher) -> Response:
            window = app.config.poll.retry_window
            return _json(200, [reports.tracked_json(t, window) for t in app.tracked()])

        return await self._read(request, answer)

    async def _one(self, request: Request) -> Response:
        orch_id = request.path_params["orch_id"]

        def answer(app: Watcher) -> Response:
            item = _find(app, orch_id)
            if item is None:
                return _json(404, {"error": f"{views.shown(orch_id)[:100]} is not tracked"})
            history = [reports.transition_json(t) for t in app.history(item.orchestration_id)]
            one = reports.tracked_json(item, app.config.poll.retry_window)
            return _json(200, {**one, "history": history})

        return await self._read(request, answer)

    async def _detail(self, request: Request) -> Response:
        orch_id = request.path_params["orch_id"]
        states = [s for s in request.query_params.getlist("state") if s]
        search = request.query_params.get("q", "").strip()[:200]

        def answer(app: Watcher) -> Response:
            item = _find(app, orch_id)
            if item is None:
                return PlainTextResponse("not tracked here: see the overview at /\n", 404)
            context = views.detail(app, item, states, search, self.stale_after)
            return self._page(200, "detail.html", context)

        return await self._read(request, answer)

    async def _read(self, request: Request, answer: Any) -> Response:
        """``answer(app)`` on a connection of its own, in a worker thread (SQLite blocks),
        once the request may read."""
        refused = self._refused(request)
        if refused is not None:
            return refused

        def read() -> Response:
            try:
                with self.app.dashboard.reader() as app:
                    response: Response = answer(app)
                    return response
            except WatcherError as exc:
                log.warning("dashboard: %s: %s", request.url.path, exc)
                text = f"the dashboard cannot read the database: {exc}\n"
                return PlainTextResponse(text, 503)

        return await run_in_threadpool(read)

    async def _static(self, request: Request) -> Response:
        found = STATIC.get(request.path_params["name"])
        if found is None:
            return PlainTextResponse("not found\n", 404)
        content_type, file = found
        return Response(file.read_bytes(), media_type=content_type)

    async def _favicon(self, request: Request) -> Response:
        return Response(b"", 204, media_type="image/x-icon")

    def _page(self, status: int, template: str, context: dict[str, Any]) -> Response:
        html = self.pages.render(template, {"token_required": self._token is not None, **context})
        return Response(html.encode(), status, media_type=HTML)


def _json(status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
    """JSON as ``watcher ... -o json`` writes it: every character outside ASCII (control,
    C1, bidi, invisible) is a ``\\uXXXX`` escape, never the raw character."""
    body = json.dumps(value, indent=2, ensure_ascii=True).encode() + b"\n"
    return Response(body, status, headers=headers, media_type=JSON)


def _throttled(wait: float) -> Response:
    seconds = max(1, round(wait))
    return PlainTextResponse(
        f"too many failed logins from this client: try again in {format_duration(seconds)}\n",
        429,
        headers={"retry-after": str(seconds)},
    )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _find(app: Watcher, orch_id: str) -> Tracked | None:
    if not is_uuid(orch_id):
        return None
    return next((t for t in app.tracked() if t.orchestration_id == orch_id), None)


def _local(target: str) -> str:
    """The ``next`` page after logging in: a path on this server, never another site."""
    target = target or "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return quote(target, safe="/?=&%-._~+")
