"""The dashboard's HTTP routes, served beside ``/healthz``, ``/readyz`` and ``/metrics``.

=========================================  =====================================================
``GET /``                                  every tracked orchestration (``?state=`` filters)
``GET /orchestrations/{id}``               one orchestration (``?state=``, ``?q=`` for operations)
``GET /api/orchestrations``                the JSON of ``watcher list -o json``
``GET /api/orchestrations/{id}``           one item of it, plus ``history``: ``watcher history``
``GET /api/board``                         revision, staleness: what the live pages poll
``GET /login``, ``POST /login``            the form that sets the session cookie
``GET /static/...``                        the stylesheet and the script (no data in them)
=========================================  =====================================================

Read-only: nothing here calls KEB or changes the database. With ``service.dashboard_token``,
everything but ``/static/`` and ``/login`` needs ``Authorization: Bearer <token>`` or the
HttpOnly session cookie that ``/login`` sets (an HMAC of the token, never the token itself);
without it, pages answer 401 with the login form and the API 401 with JSON. Every answer
carries a strict Content-Security-Policy: scripts and styles only from ``/static/``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlsplit

from watcher.app import Watcher
from watcher.config import Secret
from watcher.core.ids import is_uuid
from watcher.core.tracked import Tracked
from watcher.errors import WatcherError
from watcher.faces import reports
from watcher.faces.web import views
from watcher.notify.pages import PageRenderer

log = logging.getLogger("watcher.faces.web")

HERE: Final = Path(__file__).resolve().parent
STATIC: Final = {
    "/static/dashboard.css": ("text/css; charset=utf-8", HERE / "static" / "dashboard.css"),
    "/static/dashboard.js": ("text/javascript; charset=utf-8", HERE / "static" / "dashboard.js"),
}
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
COOKIE: Final = "keb_watcher_session"
HTML: Final = "text/html; charset=utf-8"
JSON: Final = "application/json"

Headers = list[tuple[str, str]]
#: ``(status, headers, body)``: what :class:`watcher.faces.run.health.HealthServer` sends.
Reply = tuple[int, Headers, bytes]


def _safe_headers(content_type: str) -> Headers:
    return [
        ("Content-Type", content_type),
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Cache-Control", "no-store"),
    ]


class Dashboard:
    """The dashboard as one callable: ``(method, target, headers, body)`` -> a reply, or None
    for a path that is not the dashboard's.

    ``stale_after``: seconds without a finished poll cycle (on the app's clock) after which
    the pages say the data is stale. ``token``: ``service.dashboard_token``, if any.
    """

    def __init__(self, app: Watcher, *, stale_after: float, token: Secret | None = None) -> None:
        self.app = app
        self.stale_after = stale_after
        self.pages = PageRenderer(HERE / "templates")
        self._token = token.reveal() if token else None
        self._session = (
            hmac.new(self._token.encode(), b"keb-watcher dashboard", hashlib.sha256).hexdigest()
            if self._token
            else None
        )

    def __call__(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Reply | None:
        url = urlsplit(target)
        path, query = url.path, parse_qs(url.query)
        if path in STATIC and method == "GET":
            content_type, file = STATIC[path]
            return 200, _safe_headers(content_type), file.read_bytes()
        if path == "/favicon.ico":
            return 204, _safe_headers("image/x-icon"), b""
        if path == "/login":
            return self._login(method, query, body)
        if not (path == "/" or path.startswith(("/orchestrations/", "/api/"))):
            return None
        api = path.startswith("/api/")
        if method != "GET":
            return self._text(405, "method not allowed: the dashboard is read-only\n")
        if not self._allowed(headers):
            if api:
                reply = self._json(401, {"error": "unauthorized: give the dashboard token"})
                reply[1].append(("WWW-Authenticate", 'Bearer realm="keb-watcher"'))
                return reply
            return self._page(401, "login.html", {"error": "", "next": target})
        try:
            with self.app.dashboard.reader() as app:
                return self._route(app, path, query)
        except WatcherError as exc:
            log.warning("dashboard: %s: %s", path, exc)
            return self._text(503, f"the dashboard cannot read the database: {exc}\n")

    # -- authentication -------------------------------------------------------------------

    def _allowed(self, headers: Mapping[str, str]) -> bool:
        if self._token is None or self._session is None:
            return True
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self._token.encode()
        ):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no session
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and hmac.compare_digest(
            morsel.value.encode(), self._session.encode()
        )

    def _login(self, method: str, query: dict[str, list[str]], body: bytes) -> Reply:
        if method == "GET":
            return self._page(200, "login.html", {"error": "", "next": _local(query)})
        if method != "POST":
            return self._text(405, "method not allowed\n")
        form = parse_qs(body.decode("utf-8", "replace"))
        given = form.get("token", [""])[0]
        target = _local(form)
        if self._token is None or self._session is None:
            return 303, [("Location", target), *_safe_headers(HTML)], b""
        if not hmac.compare_digest(given.encode(), self._token.encode()):
            return self._page(401, "login.html", {"error": "Wrong token.", "next": target})
        cookie = f"{COOKIE}={self._session}; HttpOnly; SameSite=Strict; Path=/"
        return 303, [("Location", target), ("Set-Cookie", cookie), *_safe_headers(HTML)], b""

    # -- pages and API --------------------------------------------------------------------

    def _route(self, app: Watcher, path: str, query: dict[str, list[str]]) -> Reply:
        if path == "/":
            state = query.get("state", [""])[0]
            return self._page(200, "overview.html", views.overview(app, state, self.stale_after))
        if path == "/api/board":
            revision, last = app.dashboard.pulse()
            return self._json(200, views.pulse(app.clock(), revision, last, self.stale_after))
        if path == "/api/orchestrations":
            window = app.config.poll.retry_window
            return self._json(200, [reports.tracked_json(t, window) for t in app.tracked()])
        api = path.startswith("/api/")
        orch_id = path.removeprefix("/api/orchestrations/" if api else "/orchestrations/")
        item = _find(app, orch_id)
        if item is None:
            if api:
                return self._json(404, {"error": f"{orch_id} is not tracked"})
            return self._text(404, "not tracked here: see the overview at /\n")
        if api:
            history = [reports.transition_json(t) for t in app.history(item.orchestration_id)]
            return self._json(
                200,
                {**reports.tracked_json(item, app.config.poll.retry_window), "history": history},
            )
        states = [s for s in query.get("state", []) if s]
        search = query.get("q", [""])[0].strip()[:200]
        context = views.detail(app, item, states, search, self.stale_after)
        return self._page(200, "detail.html", context)

    def _page(self, status: int, template: str, context: dict[str, Any]) -> Reply:
        html = self.pages.render(template, {"token_required": self._token is not None, **context})
        return status, _safe_headers(HTML), html.encode()

    @staticmethod
    def _json(status: int, value: Any) -> Reply:
        body = json.dumps(value, indent=2, ensure_ascii=False).encode() + b"\n"
        return status, _safe_headers(JSON), body

    @staticmethod
    def _text(status: int, text: str) -> Reply:
        return status, _safe_headers("text/plain; charset=utf-8"), text.encode()


def _find(app: Watcher, orch_id: str) -> Tracked | None:
    if not is_uuid(orch_id):
        return None
    return next((t for t in app.tracked() if t.orchestration_id == orch_id), None)


def _local(values: Mapping[str, list[str]]) -> str:
    """The ``next`` page after logging in: a path on this server, never another site."""
    target = values.get("next", ["/"])[0] or "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return quote(target, safe="/?=&%-._~+")
