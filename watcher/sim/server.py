"""The simulator over real HTTP: KEB's routes behind an Istio-like gateway, plus ``/_sim/``.

Request path, as in production (docs/keb-api.md §2, §5, §6): injected faults (the network and
proxies) -> the gateway (plain-text 401/403) -> Go's ``http.ServeMux`` (plain-text 404/405) ->
the KEB handler (compact JSON, ``{"error": ...}`` on failure). ``/_sim/`` admin paths skip
faults and the gateway.

HTTP/1.1 keep-alive with exact ``Content-Length`` on every answer; one daemon thread per
connection; no per-request logging.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, TextIO
from urllib.parse import parse_qs, unquote, urlsplit

from watcher.core.models import format_keb_time
from watcher.sim.api import (
    MSG_KYMA_UNSUPPORTED,
    SimApiError,
    decode_body,
    encode_json,
    parse_paging,
)
from watcher.sim.faults import ERROR_500_JSON, HTML_200_LOGIN, HTML_502, INFLATED_TOTAL, Fault
from watcher.sim.serving import Background
from watcher.sim.tokens import BODY_EXPIRED, BODY_RBAC, check_authorization, gateway_reply
from watcher.sim.world import Simulator

JSON: Final = "application/json"
TEXT_GO: Final = "text/plain; charset=utf-8"
TEXT_ENVOY: Final = "text/plain"
HTML: Final = "text/html; charset=utf-8"
FORM: Final = "application/x-www-form-urlencoded"

# Registered KEB routes (KEB 1.15.0, std-lib ServeMux patterns); "*" is one path wildcard.
_ROUTES: Final = (
    ("GET", ("orchestrations",), "list_orchestrations"),
    ("GET", ("orchestrations", "*"), "get_orchestration"),
    ("GET", ("orchestrations", "*", "operations"), "list_operations"),
    ("GET", ("orchestrations", "*", "operations", "*"), "get_operation"),
    ("PUT", ("orchestrations", "*", "cancel"), "cancel"),
    ("POST", ("orchestrations", "*", "retry"), "retry"),
    ("POST", ("upgrade", "cluster"), "upgrade_cluster"),
    ("POST", ("upgrade", "kyma"), "upgrade_kyma"),
)

Reply = tuple[int, str, bytes, dict[str, str]]


def _rewrite_list(reply: Reply, kind: str) -> Reply:
    """A list answer with a claimed ``totalCount`` far above the rows, or no rows at all."""
    status, content_type, payload, headers = reply
    try:
        body = json.loads(payload)
    except ValueError:
        return reply
    if status != 200 or not isinstance(body, dict) or "totalCount" not in body:
        return reply
    if kind == "inflated-total":
        body["totalCount"] = INFLATED_TOTAL
    else:
        body["data"], body["count"] = [], 0
    return status, content_type, json.dumps(body, separators=(",", ":")).encode(), headers


def _json_reply(status: int, value: object) -> Reply:
    return status, JSON, encode_json(value), {}


def _match_route(method: str, segments: Sequence[str]) -> tuple[str, list[str]] | list[str]:
    """``(handler, wildcards)`` for a match, else the methods the path allows (maybe none)."""
    allowed: list[str] = []
    for route_method, pattern, handler in _ROUTES:
        if len(pattern) != len(segments):
            continue
        if not all(p == s or (p == "*" and s) for p, s in zip(pattern, segments, strict=True)):
            continue
        if method == route_method or (method == "HEAD" and route_method == "GET"):
            return handler, [s for p, s in zip(pattern, segments, strict=True) if p == "*"]
        allowed.extend([route_method, "HEAD"] if route_method == "GET" else [route_method])
    return allowed


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # a benchmark opens dozens of connections at once

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        self.api_requests = 0
        self._guard = threading.Lock()
        self._connections: set[socket.socket] = set()
        super().__init__(address, _ApiHandler)

    def count_request(self) -> None:
        with self._guard:
            self.api_requests += 1

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._guard:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._guard:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End idle keep-alive connections, whose threads would otherwise keep serving."""
        with self._guard:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: with Nagle on, the body waits for a delayed ACK
    # (~40 ms per keep-alive request).
    disable_nagle_algorithm = True
    server_version = "istio-envoy"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the terminal of `watcher sim`

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    @property
    def _srv(self) -> _HTTPServer:
        assert isinstance(self.server, _HTTPServer)
        return self.server

    def _handle(self) -> None:
        try:
            self._serve()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # a simulator bug must show, but not kill the connection
            traceback.print_exc(file=sys.stderr)
            self._send(*_json_reply(500, {"error": f"simulator bug: {exc!r}"}))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length")
        return self.rfile.read(int(length)) if length and int(length) > 0 else b""

    def _send(self, status: int, content_type: str, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        # SO_LINGER 0 turns close() into a TCP RST: the client gets no answer at all.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
        self.wfile = io.BytesIO()  # swallow the final flush of the closed stream

    def _serve(self) -> None:
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        body = self._read_body()
        if path == "/_sim" or path.startswith("/_sim/"):
            self._send(*self._admin(path, query, body))
            return
        self._srv.count_request()
        fault = self._srv.sim.faults.take(path)
        if fault is not None and self._answer_fault(fault):
            return
        reply = self._api(path, query, body)
        if fault is not None and fault.kind == "truncated":
            _status, content_type, payload, headers = reply
            reply = (200, content_type, payload[: len(payload) // 2], headers)
        if fault is not None and fault.kind in ("inflated-total", "empty-page"):
            reply = _rewrite_list(reply, fault.kind)
        self._send(*reply)

    def _answer_fault(self, fault: Fault) -> bool:
        """Answer in the fault's place; ``False`` when the real answer should follow."""
        kind = fault.kind
        if kind == "slow":
            time.sleep(fault.delay)
            return False
        if kind in ("truncated", "inflated-total", "empty-page"):
            return False
        if kind == "no-api":
            self._send(404, TEXT_GO, b"404 page not found\n", {"X-Content-Type-Options": "nosniff"})
            return True
        if kind == "deep-json":
            self._send(200, JSON, b"[" * 1000 + b"]" * 1000, {})
            return True
        if kind == "reset":
            self._reset()
        elif kind == "5xx":
            self._send(500, JSON, ERROR_500_JSON.encode(), {})
        elif kind == "502-html":
            self._send(502, HTML, HTML_502.encode(), {})
        elif kind == "html-200":
            self._send(200, HTML, HTML_200_LOGIN.encode(), {})
        elif kind == "reject-token":
            self._send(401, TEXT_ENVOY, BODY_EXPIRED.encode(), {})
        elif kind == "rbac":
            self._send(403, TEXT_ENVOY, BODY_RBAC.encode(), {})
        return True

    def _api(self, path: str, query: dict[str, list[str]], body: bytes) -> Reply:
        segments = [unquote(s) for s in path.split("/")[1:]]
        protected = bool(segments) and segments[0] in ("orchestrations", "upgrade")
        verdict = gateway_reply(
            check_authorization(self.headers.get("Authorization")), protected=protected
        )
        if verdict is not None:
            return verdict[0], TEXT_ENVOY, verdict[1].encode(), {}
        match = _match_route(self.command, segments)
        if isinstance(match, list):
            if match:
                allow = ", ".join(dict.fromkeys(match))
                return 405, TEXT_GO, b"Method Not Allowed\n", {"Allow": allow}
            return 404, TEXT_GO, b"404 page not found\n", {"X-Content-Type-Options": "nosniff"}
        handler, args = match
        try:
            return self._keb(handler, args, query, body)
        except SimApiError as exc:
            return _json_reply(exc.status, {"error": exc.message})

    def _keb(
        self, handler: str, args: list[str], query: dict[str, list[str]], body: bytes
    ) -> Reply:
        sim = self._srv.sim
        if handler == "list_orchestrations":
            page, size = parse_paging(query)
            return _json_reply(200, sim.list_orchestrations(page, size, query.get("state")))
        if handler == "get_orchestration":
            return _json_reply(200, sim.get_orchestration(args[0]))
        if handler == "list_operations":
            page, size = parse_paging(query)  # before the lookup: 400 beats 404 (§2.3)
            return _json_reply(200, sim.list_operations(args[0], page, size, query.get("state")))
        if handler == "get_operation":
            return _json_reply(200, sim.get_operation(args[0], args[1]))
        if handler == "cancel":
            sim.cancel(args[0])
            return _json_reply(200, {"orchestrationID": args[0]})
        if handler == "retry":
            content_type = self.headers.get("Content-Type", "")
            if content_type != FORM:
                raise SimApiError(
                    415, f"invalide content type {content_type} for retrying orchestration"
                )
            # r.Form: body values first, then the URL query's.
            form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
            ids = form.get("operation-id", []) + query.get("operation-id", [])
            return _json_reply(202, sim.retry(args[0], [i for i in ids if i]))
        if handler == "upgrade_cluster":
            orchestration_id = sim.create_upgrade(decode_body(body))
            return _json_reply(202, {"orchestrationID": orchestration_id})
        return _json_reply(400, {"error": MSG_KYMA_UNSUPPORTED})

    def _admin(self, path: str, query: dict[str, list[str]], body: bytes) -> Reply:
        """``/_sim/``: ground truth and controls for tests and users (no auth, no faults)."""
        sim, method = self._srv.sim, self.command
        parts = [unquote(s) for s in path.split("/")[2:]]
        try:
            if parts == ["state"] and method == "GET":
                summary = sim.state_summary()
                summary["requests"] = self._srv.api_requests
                summary["faults"] = sim.faults.active()
                return _json_reply(200, summary)
            if len(parts) == 2 and parts[0] == "truth" and method == "GET":
                return _json_reply(200, [e.to_json() for e in sim.truth(parts[1])])
            if parts == ["advance"] and method == "POST":
                raw = query.get("seconds", ["0"])[0]
                try:
                    changes = sim.advance(float(raw))
                except (ValueError, OverflowError):
                    return _json_reply(
                        400, {"error": f"seconds must be a number >= 0, got {raw!r}"}
                    )
                reply = {
                    "now": format_keb_time(sim.now),
                    "changes": changes,
                    "nextEventIn": sim.next_event_in(),
                }
                return _json_reply(200, reply)
            if parts == ["faults"]:
                return self._admin_faults(method, body)
            if (
                len(parts) == 4
                and parts[0] == "orchestrations"
                and parts[2] == "operations"
                and method == "DELETE"
            ):
                sim.delete_operation(parts[1], parts[3])
                return _json_reply(200, {"deleted": parts[3]})
        except SimApiError as exc:
            return _json_reply(exc.status, {"error": exc.message})
        except ValueError as exc:
            return _json_reply(400, {"error": str(exc)})
        return _json_reply(404, {"error": f"no admin endpoint {method} {path}"})

    def _admin_faults(self, method: str, body: bytes) -> Reply:
        faults = self._srv.sim.faults
        if method == "DELETE":
            faults.clear()
        elif method == "POST":
            spec = json.loads(body or b"{}")
            if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
                raise ValueError('a fault is a JSON object with at least "kind"')
            faults.inject(
                spec["kind"],
                count=spec.get("count", 1),
                probability=spec.get("probability"),
                path_prefix=spec.get("path_prefix"),
                delay=float(spec.get("delay") or 2.0),
            )
        elif method != "GET":
            return _json_reply(405, {"error": f"{method} not allowed on /_sim/faults"})
        return _json_reply(200, {"faults": faults.active()})


class SimServer(Background):
    """Serves a :class:`Simulator` on ``host:port`` (port 0 picks a free one) in a thread.

    >>> # with SimServer(Simulator.from_scenario("small")).start() as server: ...
    """

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self._api = _HTTPServer((host, port), sim)
        super().__init__(self._api)

    @property
    def request_count(self) -> int:
        """KEB API requests answered so far (``/_sim/`` calls are not counted)."""
        return self._api.api_requests

    def close_connections(self) -> None:
        self._api.close_connections()


def serve_forever(
    scenario: str,
    *,
    seed: int,
    speed: float | None,
    host: str,
    port: int,
    out: TextIO,
    faults: Sequence[str] = (),
    races: float = 0.0,
    moves: float = 0.0,
    start: datetime | None = None,
) -> None:
    """Run ``watcher sim``: print how to connect, then serve until Ctrl-C. ``faults`` are
    injected for good at start (``no-api``: a KEB without the orchestration API); ``races``
    is the chance that the world moves between the two queries of one answer (§12.6),
    ``moves`` the chance that it moves before an answer (between two requests); ``start`` is
    where the virtual clock begins (the scenario's epoch when ``None``)."""
    sim = Simulator.from_scenario(
        scenario, seed=seed, speed=speed, races=races, moves=moves, start=start
    )
    for kind in faults:
        sim.faults.inject(kind, count=None, path_prefix="/orchestrations")
    with SimServer(sim, host=host, port=port) as server:
        pace = "manual clock (POST /_sim/advance?seconds=N)" if speed is None else f"{speed:g}x"
        raced = f", races {races:g}" if races else ""
        raced += f", moves {moves:g}" if moves else ""
        print(f"KEB simulator: scenario {scenario!r}, seed {seed}, {pace}{raced}", file=out)
        print(f"URL:   {server.url}", file=out)
        print(f"token: {sim.token}", file=out)
        for orchestration_id in sim.orchestration_ids():
            print(f"orchestration: {orchestration_id}", file=out)
        print(f"export KEB_URL={server.url} KEB_TOKEN={sim.token}", file=out)
        print(f"# virtual clock from {sim.epoch.isoformat()}", file=out)
        server.serve_until_interrupted(out)
