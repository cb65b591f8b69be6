"""``watcher sim --api runtimes``: current KEB over real HTTP, behind an Istio-like gateway.

Routes (docs/keb-runtimes-api.md §1): ``GET /runtimes``, ``GET /events``, ``GET /version``;
``/orchestrations*`` falls through to KEB's catch-all and gets Go's plain-text 404, as on
every KEB since 1.15.1. The gateway answers in plain text (§1.3): 401 ``Jwt is expired`` /
``Jwt verification fails``, 403 ``RBAC: access denied`` when the token's ``groups`` lack
``runtimeAdmin``, ``runtimeOperator`` or ``runtimeViewer`` (``/events``: admin or operator).
KEB's own errors are compact JSON ``{"error": ...}`` (400, 500); ``/events`` errors would be
plain-text 503.

``/_sim/`` (no gateway): ``GET state``, ``GET truth``, ``POST advance?seconds=N`` and
``POST act`` with ``{"action": "provision"|"update"|"suspend"|"unsuspend"|"deprovision"|
"legacy", "instance": ID, "fail": bool, "hang": bool}``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, TextIO
from urllib.parse import parse_qs, urlsplit

from watcher.sim.api import SimApiError, encode_json
from watcher.sim.fleet import Fleet, populate
from watcher.sim.runtimes_api import list_events, list_runtimes
from watcher.sim.serving import Background
from watcher.sim.tokens import (
    BODY_RBAC,
    TokenCheck,
    check_authorization,
    decode_claims,
    gateway_reply,
    make_token,
)

#: The chart's default group names (``values.yaml`` ``oidc.groups``), §1.3.
RUNTIME_GROUPS: Final = ("runtimeAdmin", "runtimeOperator", "runtimeViewer")
EVENTS_GROUPS: Final = ("runtimeAdmin", "runtimeOperator")
KEB_VERSION: Final = "1.35.18"
TEXT_GO: Final = "text/plain; charset=utf-8"
TEXT_ENVOY: Final = "text/plain"
JSON: Final = "application/json"

Reply = tuple[int, str, bytes]


def runtime_token() -> str:
    """A token with ``runtimeViewer`` and ``runtimeOperator``: enough for ``/runtimes`` and
    ``/events``."""
    return make_token(groups=("runtimeViewer", "runtimeOperator"))


def gateway(header: str | None, path: str) -> Reply | None:
    """The plain-text answer Istio gives instead of forwarding, or ``None``."""
    check = check_authorization(header)
    verdict = gateway_reply(check, protected=False)
    if verdict is not None:
        return verdict[0], TEXT_ENVOY, verdict[1].encode()
    if path not in ("/runtimes", "/events", "/version"):
        return None
    if check is TokenCheck.MISSING:
        return 403, TEXT_ENVOY, BODY_RBAC.encode()
    assert header is not None
    groups = decode_claims(header.split(" ", 1)[1].strip()).get("groups")
    held = set(groups) if isinstance(groups, list) else {groups}
    needed = EVENTS_GROUPS if path == "/events" else RUNTIME_GROUPS
    if held.isdisjoint(needed):
        return 403, TEXT_ENVOY, BODY_RBAC.encode()
    return None


class FleetSim:
    """A :class:`Fleet` shared by HTTP threads, with a clock that follows real time at
    ``speed`` virtual seconds per second (``None``: only ``/_sim/advance`` moves it)."""

    def __init__(self, fleet: Fleet, speed: float | None = None) -> None:
        self.fleet = fleet
        self.speed = speed
        self.lock = threading.Lock()
        self.requests = 0
        self._synced = time.monotonic()

    def sync(self) -> None:
        now = time.monotonic()
        if self.speed:
            self.fleet.advance((now - self._synced) * self.speed)
        self._synced = now

    def answer(self, path: str, query: Mapping[str, Sequence[str]]) -> Reply:
        with self.lock:
            self.sync()
            self.requests += 1
            try:
                if path == "/runtimes":
                    return 200, JSON, encode_json(list_runtimes(self.fleet, query))
                if path == "/events":
                    return 200, TEXT_GO, encode_json(list_events(self.fleet, query))
                if path == "/version":
                    return 200, JSON, encode_json({"version": KEB_VERSION})
            except SimApiError as exc:
                return exc.status, JSON, encode_json({"error": exc.message})
        return 404, TEXT_GO, b"404 page not found\n"

    def admin(
        self, method: str, path: str, query: Mapping[str, Sequence[str]], body: bytes
    ) -> Reply:
        with self.lock:
            self.sync()
            fleet = self.fleet
            try:
                if path == "/_sim/state" and method == "GET":
                    return 200, JSON, encode_json(fleet.summary() | {"requests": self.requests})
                if path == "/_sim/truth" and method == "GET":
                    rows = [
                        {
                            "at": t.at,
                            "instance": t.instance_id,
                            "operation": t.operation_id,
                            "type": t.type,
                            "temporary": t.temporary,
                            "state": t.state,
                        }
                        for t in fleet.truth
                    ]
                    return 200, JSON, encode_json(rows)
                if path == "/_sim/advance" and method == "POST":
                    seconds = float(query.get("seconds", ["0"])[0])
                    if not seconds >= 0:
                        raise ValueError(f"seconds must be a number >= 0, got {seconds!r}")
                    return 200, JSON, encode_json({"changes": fleet.advance(seconds)})
                if path == "/_sim/act" and method == "POST":
                    return 200, JSON, encode_json(_act(fleet, json.loads(body or b"{}")))
            except (ValueError, KeyError, TypeError) as exc:
                return 400, JSON, encode_json({"error": str(exc)})
        return 404, JSON, encode_json({"error": f"no admin endpoint {method} {path}"})


def _act(fleet: Fleet, spec: Any) -> dict[str, str]:
    if not isinstance(spec, dict) or not isinstance(spec.get("action"), str):
        raise ValueError('an action is a JSON object with at least "action"')
    action, instance = spec["action"], str(spec.get("instance", ""))
    fail, hang = bool(spec.get("fail")), bool(spec.get("hang"))
    if action == "provision":
        instance = fleet.provision(fail=fail, hang=hang, plan=spec.get("plan"))
        return {"instance": instance}
    if action == "update":
        return {"operation": fleet.update(instance, fail=fail, hang=hang)}
    if action == "suspend":
        return {"operation": fleet.suspend(instance)}
    if action == "unsuspend":
        return {"operation": fleet.unsuspend(instance)}
    if action == "deprovision":
        return {"operation": fleet.deprovision(instance, fail=fail)}
    if action == "legacy":
        return {"operation": fleet.add_legacy(instance)}
    raise ValueError(f"unknown action {action!r}")


class _FleetHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: FleetSim) -> None:
        self.sim = sim
        super().__init__(address, _FleetHandler)


class _FleetHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "istio-envoy"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        assert isinstance(self.server, _FleetHTTPServer)
        sim = self.server.sim
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            if split.path.startswith("/_sim/"):
                reply = sim.admin(self.command, split.path, query, body)
            else:
                denied = gateway(self.headers.get("Authorization"), split.path)
                reply = denied or sim.answer(split.path, query)
        except Exception as exc:  # a simulator bug must show, but not kill the connection
            traceback.print_exc(file=sys.stderr)
            reply = 500, JSON, encode_json({"error": f"simulator bug: {exc!r}"})
        status, content_type, payload = reply
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class FleetServer(Background):
    """Serves a :class:`FleetSim` on ``host:port`` (0: a free port) in a thread."""

    def __init__(self, sim: FleetSim, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        super().__init__(_FleetHTTPServer((host, port), sim))


def demo_fleet(seed: int = 1, size: int = 12) -> Fleet:
    """The fleet ``watcher sim --api runtimes`` starts with: ``size`` settled runtimes, then
    in the first virtual hour a provisioning that fails, an update that fails, an update that
    hangs, a suspension and later an unsuspension, a deprovisioning, and one legacy runtime
    whose ``upgradeKyma`` makes KEB fail every ``op_detail=last`` page it is on (§2.4)."""
    fleet = Fleet(seed)
    populate(fleet, size)
    ids = list(fleet.instances)
    fleet.advance(60)
    fleet.provision(fail=True)
    fleet.update(ids[0], fail=True)
    fleet.update(ids[1], hang=True)
    fleet.update(ids[2])
    fleet.suspend(ids[3])
    fleet.at(1800.0, lambda: fleet.unsuspend(ids[3]))
    fleet.deprovision(ids[4])
    if len(ids) > 5:
        fleet.add_legacy(ids[5])
    return fleet


def serve_fleet_forever(
    *, seed: int, size: int, speed: float | None, host: str, port: int, out: TextIO
) -> None:
    """Run ``watcher sim --api runtimes``: print how to connect, then serve until Ctrl-C."""
    sim = FleetSim(demo_fleet(seed, size), speed)
    token = runtime_token()
    with FleetServer(sim, host, port) as server:
        pace = "manual clock (POST /_sim/advance?seconds=N)" if speed is None else f"{speed:g}x"
        print(f"KEB simulator (runtimes API, KEB {KEB_VERSION}): {size} runtimes, {pace}", file=out)
        print(f"URL:   {server.url}", file=out)
        print(f"token: {token}", file=out)
        print(f"export KEB_URL={server.url} KEB_TOKEN={token}", file=out)
        server.serve_until_interrupted(out)
