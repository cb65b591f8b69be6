"""KebClient: endpoints, paging consistency, error mapping, retries, auth refresh, concurrency.

Most tests drive the client through ``httpx.MockTransport`` with a recording ``sleep``; a few
go over real HTTP to a tiny threaded server on 127.0.0.1 that serves the KEB samples.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.errors import (
    ConfigError,
    KebAuthError,
    KebListChanged,
    KebNotFound,
    KebRequestError,
    KebResponseError,
    KebUnavailable,
    TokenError,
)
from watcher.keb import FileToken, KebClient, RetryPolicy, StaticToken, parse_retry_after
from watcher.keb.messages import describe_body

T = TypeVar("T")

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJncm91cHMiOlsib3JjaGVzdHJhdGlvbnNBZG1pbiJdfQ.c2VjcmV0LXNpZw"
ORCH = "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11"
SAMPLES = Path(__file__).parent / "samples"  # real-shaped KEB responses


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


@dataclass
class Mock:
    """A client over MockTransport, recording requests and backoff delays."""

    handler: Handler
    requests: list[httpx.Request] = field(default_factory=list)
    sleep: RecordingSleep = field(default_factory=RecordingSleep)

    def client(
        self, auth: Any = None, base_url: str = "http://keb.test", **kwargs: Any
    ) -> KebClient:
        async def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            answer = self.handler(request)
            if isinstance(answer, Awaitable):
                answer = await answer
            return answer

        return KebClient(
            base_url,
            auth or StaticToken(TOKEN),
            transport=httpx.MockTransport(record),
            sleep=self.sleep,
            **kwargs,
        )


def op(i: int, state: str = "succeeded") -> dict[str, Any]:
    return {
        "operationID": f"op-{i:04d}",
        "runtimeID": f"rt-{i:04d}",
        "orchestrationID": ORCH,
        "shootName": f"c-{i:04x}",
        "state": state,
        "description": "Operation succeeded",
        "maintenanceWindowBegin": "0001-01-01T00:00:00Z",
        "maintenanceWindowEnd": "0001-01-01T00:00:00Z",
    }


def page_of(items: list[dict[str, Any]], request: httpx.Request, total: int | None = None) -> Any:
    page = int(request.url.params["page"])
    size = int(request.url.params["page_size"])
    data = items[(page - 1) * size : page * size]
    count = len(items) if total is None else total
    return {"data": data, "count": len(data), "totalCount": count}


def json_response(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers=headers)


def text_response(status: int, body: str, content_type: str = "text/plain") -> httpx.Response:
    return httpx.Response(status, content=body.encode(), headers={"Content-Type": content_type})


# -- a tiny KEB over real HTTP ----------------------------------------------------------------


@dataclass
class Canned:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.routes: dict[tuple[str, str], Canned | Callable[[Seen], Canned]] = {}
        self.seen: list[Seen] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StubServer

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        url = urlsplit(self.path)
        seen = Seen(
            self.command,
            url.path,
            url.query,
            dict(self.headers),
            self.rfile.read(length) if length else b"",
        )
        self.server.seen.append(seen)
        route = self.server.routes.get((self.command, url.path))
        if route is None:
            canned = Canned(404, b"404 page not found\n", {"Content-Type": "text/plain"})
        else:
            canned = route(seen) if callable(route) else route
        self.send_response(canned.status)
        headers = {"Content-Type": "application/json", **canned.headers}
        headers.setdefault("Content-Length", str(len(canned.body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(canned.body)
        self.close_connection = canned.close

    do_GET = do_PUT = do_POST = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def keb() -> Iterator[StubServer]:
    server = StubServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def real_client(server: StubServer, **kwargs: Any) -> KebClient:
    kwargs.setdefault("sleep", RecordingSleep())
    return KebClient(server.url, kwargs.pop("auth", StaticToken(TOKEN)), timeout=5, **kwargs)


# -- every sample parses through the client (real HTTP) -----------------------------------------


def _sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


#: mutation-04 is the request body of ``POST /upgrade/cluster``, which the client never sends.
REQUEST_BODY_SAMPLES = {"mutation-04-synth.json"}


def _sample_names() -> list[str]:
    if not SAMPLES.is_dir():
        return []
    return sorted(p.name for p in SAMPLES.glob("*.json") if p.name not in REQUEST_BODY_SAMPLES)


@pytest.mark.parametrize("name", _sample_names())
def test_every_sample_parses_through_the_client(keb: StubServer, name: str) -> None:
    raw = _sample(name)
    body = (SAMPLES / name).read_bytes()

    async def scenario() -> None:
        async with real_client(keb) as client:
            if name.startswith("get-orchestration"):
                oid = raw["orchestrationID"]
                keb.routes["GET", f"/orchestrations/{oid}"] = Canned(200, body)
                orch = await client.get_orchestration(oid)
                assert orch.orchestration_id == oid
                assert orch.state == raw.get("state", "")
                assert orch.operation_stats == raw.get("operationStats")
                assert dict(orch.raw) == raw
            elif name.startswith("get-operation"):
                oid, opid = raw["orchestrationID"], raw["operationID"]
                keb.routes["GET", f"/orchestrations/{oid}/operations/{opid}"] = Canned(200, body)
                detail = await client.get_operation(oid, opid)
                assert detail.operation.operation_id == opid
                assert detail.cluster_config == raw.get("clusterConfig")
                assert detail.kyma_config == raw.get("kymaConfig")
            elif name.startswith(("list-operations", "list-orchestrations")):
                await _check_list_sample(client, keb, name, raw, body)
            elif name.startswith("mutation"):
                oid = raw["orchestrationID"]
                if "retryShoots" in raw:
                    keb.routes["POST", f"/orchestrations/{oid}/retry"] = Canned(202, body)
                    assert await client.retry(oid, ["a"]) == raw
                else:
                    keb.routes["PUT", f"/orchestrations/{oid}/cancel"] = Canned(200, body)
                    assert await client.cancel(oid) is None
            else:
                pytest.fail(f"no client call is mapped to sample {name}")

    run(scenario())


async def _check_list_sample(
    client: KebClient, keb: StubServer, name: str, raw: Any, body: bytes
) -> None:
    operations = name.startswith("list-operations")
    path = f"/orchestrations/{ORCH}/operations" if operations else "/orchestrations"
    key = "operationID" if operations else "orchestrationID"
    if isinstance(raw, dict) and "data" not in raw:  # a single legacy list item
        raw = {"data": [raw], "count": 1, "totalCount": 1}
        body = json.dumps(raw).encode()
    keb.routes["GET", path] = Canned(200, body)
    data = raw if isinstance(raw, list) else raw["data"]
    expected = [item[key] for item in data]
    if operations:
        page = await client.list_operations_page(ORCH)
    else:
        page = await client.list_orchestrations_page()
    attr = "operation_id" if operations else "orchestration_id"
    assert [getattr(item, attr) for item in page.items] == expected
    if isinstance(raw, list) or raw["totalCount"] == len(data):  # a complete list
        if operations:
            ops = await client.list_operations(ORCH)
            assert [o.operation_id for o in ops] == expected
        else:
            orchestrations = await client.list_orchestrations()
            assert [o.orchestration_id for o in orchestrations] == expected
            assert all(o.operation_stats is None for o in orchestrations)


def test_sample_set_is_what_the_mapping_expects() -> None:
    names = {p.name for p in SAMPLES.glob("*.json")}
    assert names >= REQUEST_BODY_SAMPLES
    prefixes = ("get-orchestration", "get-operation", "list-operations", "list-orchestrations")
    assert all(n.startswith((*prefixes, "mutation")) for n in names)


# -- paging -----------------------------------------------------------------------------------


def test_list_operations_fetches_all_pages_in_server_order() -> None:
    items = [op(i) for i in range(250)]
    mock = Mock(lambda request: json_response(200, page_of(items, request)))
    client = mock.client()
    result = run(client.list_operations(ORCH))
    assert [o.operation_id for o in result] == [f"op-{i:04d}" for i in range(250)]
    pages = sorted(int(r.url.params["page"]) for r in mock.requests)
    assert pages == [1, 2, 3]
    assert {r.url.params["page_size"] for r in mock.requests} == {"100"}
    assert {r.url.path for r in mock.requests} == {f"/orchestrations/{ORCH}/operations"}
    assert client.stats.snapshot() == {"requests": 3, "ok": 3, "retried": 0, "error": 0}


def test_list_orchestrations_over_real_http(keb: StubServer) -> None:
    orchestrations = [{"orchestrationID": f"o-{i:03d}", "state": "succeeded"} for i in range(130)]

    def serve(seen: Seen) -> Canned:
        params = dict(p.split("=") for p in seen.query.split("&"))
        page, size = int(params["page"]), int(params["page_size"])
        data = orchestrations[(page - 1) * size : page * size]
        body = {"data": data, "count": len(data), "totalCount": len(orchestrations)}
        return Canned(200, json.dumps(body).encode())

    keb.routes["GET", "/orchestrations"] = serve

    async def scenario() -> list[str]:
        async with real_client(keb) as client:
            return [o.orchestration_id for o in await client.list_orchestrations()]

    assert run(scenario()) == [o["orchestrationID"] for o in orchestrations]
    assert len(keb.seen) == 2


def test_total_count_change_between_pages_fails_the_list_after_one_sweep() -> None:
    """No second sweep: a cycle may cost no more than a full sweep plus one request, so the
    observer defers to the next cycle instead (docs/contract.md §7)."""
    items = [op(i) for i in range(250)]
    first_pages = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal first_pages
        body = page_of(items, request)
        if request.url.params["page"] == "1":
            first_pages += 1
            if first_pages == 1:
                items.append(op(250, "pending"))  # a retry appended an operation mid-sweep
        return json_response(200, body)

    mock = Mock(handler)
    with pytest.raises(KebListChanged, match=r"changed while paging \(totalCount 250 -> 251\)"):
        run(mock.client().list_operations(ORCH))
    assert len(mock.requests) == 3


def test_a_list_that_never_holds_still_costs_one_sweep() -> None:
    items = [op(i) for i in range(2000)]

    def handler(request: httpx.Request) -> httpx.Response:
        body = page_of(items, request)
        del items[0]  # the cleaning step deletes operations while we page
        return json_response(200, body)

    mock = Mock(handler)
    with pytest.raises(KebListChanged) as info:
        run(mock.client().list_operations(ORCH))
    message = str(info.value)
    assert isinstance(info.value, KebResponseError)
    assert f"KEB GET /orchestrations/{ORCH}/operations: " in message
    assert "operation list changed while paging (totalCount " in message
    assert len(mock.requests) <= 20


def test_a_list_longer_than_the_caller_can_afford_is_not_read_on() -> None:
    items = [op(i) for i in range(250)]
    mock = Mock(lambda request: json_response(200, page_of(items, request)))
    with pytest.raises(KebListChanged, match="250 items on 3 pages, more than the 2"):
        run(mock.client().list_operations(ORCH, max_pages=2))
    assert len(mock.requests) == 1
    assert len(run(mock.client().list_operations(ORCH, max_pages=3))) == 250


def test_duplicate_across_pages_is_detected() -> None:
    items = [op(i) for i in range(250)]

    def handler(request: httpx.Request) -> httpx.Response:
        body = page_of(items, request)
        if request.url.params["page"] == "2":  # a row shifted: page 2 repeats page 1's last
            body["data"] = [items[99], *body["data"][:-1]]
        return json_response(200, body)

    mock = Mock(handler)
    with pytest.raises(KebListChanged, match="operation op-0099 on pages 1 and 2"):
        run(mock.client().list_operations(ORCH))
    assert len(mock.requests) == 3


def test_missing_items_are_detected() -> None:
    items = [op(i) for i in range(250)]

    def handler(request: httpx.Request) -> httpx.Response:
        body = page_of(items, request)
        if request.url.params["page"] == "3":
            body["data"] = body["data"][1:]  # a row slid back onto page 2 after we read it
        return json_response(200, body)

    mock = Mock(handler)
    with pytest.raises(KebListChanged, match="249 operations received for totalCount 250"):
        run(mock.client().list_operations(ORCH))
    assert len(mock.requests) == 3


def test_state_filter_is_sent_on_every_page_as_repeated_params() -> None:
    items = [op(i, "failed") for i in range(150)]
    mock = Mock(lambda request: json_response(200, page_of(items, request)))
    run(mock.client().list_operations(ORCH, states=["in progress", "failed"]))
    assert len(mock.requests) == 2
    for request in mock.requests:
        assert request.url.params.get_list("state") == ["in progress", "failed"]
        query = request.url.query.decode()
        assert "state=in+progress" in query or "state=in%20progress" in query
        assert "page_size=100" in query


def test_page_size_is_capped_at_100_and_a_smaller_server_limit_is_adopted() -> None:
    items = [op(i) for i in range(120)]

    def handler(request: httpx.Request) -> httpx.Response:
        if int(request.url.params["page_size"]) > 50:
            error = "while getting query parameters: pageSize is bigger than maxPage(50)"
            return json_response(400, {"error": error})
        return json_response(200, page_of(items, request))

    mock = Mock(handler)
    client = mock.client()
    with pytest.raises(ValueError, match="page_size"):
        run(client.list_operations_page(ORCH, page_size=101))
    assert len(run(client.list_operations(ORCH))) == 120
    assert [r.url.params["page_size"] for r in mock.requests] == ["100", "50", "50", "50"]


def test_a_failing_page_fails_the_listing() -> None:
    items = [op(i) for i in range(250)]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params["page"] == "3":
            return json_response(404, {"error": "while getting orchestration x: dbr: not found"})
        return json_response(200, page_of(items, request))

    with pytest.raises(KebNotFound, match="page=3"):
        run(Mock(handler).client().list_operations(ORCH))


# -- endpoints --------------------------------------------------------------------------------


def test_ids_are_path_escaped_and_dot_segments_rejected() -> None:
    mock = Mock(lambda request: json_response(200, {"orchestrationID": "a/b c"}))
    client = mock.client()
    run(client.get_orchestration("a/b c"))
    assert mock.requests[0].url.raw_path == b"/orchestrations/a%2Fb%20c"
    for bad in ("", ".", ".."):
        with pytest.raises(ValueError, match="invalid KEB ID"):
            run(client.get_orchestration(bad))


def test_get_orchestration_returns_operation_stats_and_sends_headers() -> None:
    body = {"orchestrationID": ORCH, "state": "in progress", "operationStats": {"failed": 2}}
    mock = Mock(lambda request: json_response(200, body))
    orch = run(mock.client(user_agent="keb-watcher/test").get_orchestration(ORCH))
    assert orch.operation_stats == {"failed": 2}
    request = mock.requests[0]
    assert request.method == "GET"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["User-Agent"] == "keb-watcher/test"
    assert request.headers["Accept"] == "application/json"


def test_retry_sends_exact_form_content_type_and_repeated_ids() -> None:
    answer = {"orchestrationID": ORCH, "retryShoots": ["c-1"], "msg": "queued"}
    mock = Mock(lambda request: json_response(202, answer))
    client = mock.client()
    assert run(client.retry(ORCH, ["op-a", "op b"])) == answer
    assert run(client.retry(ORCH)) == answer
    first, second = mock.requests
    assert first.method == "POST"
    assert first.url.path == f"/orchestrations/{ORCH}/retry"
    assert first.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert first.content == b"operation-id=op-a&operation-id=op+b"
    assert second.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert second.content == b""


def test_retry_is_not_resent_when_keb_may_have_acted_on_it() -> None:
    mock = Mock(lambda request: text_response(502, "upstream reset"))
    with pytest.raises(KebUnavailable, match="502 Bad Gateway: upstream reset"):
        run(mock.client().retry(ORCH, ["op-a"]))
    assert len(mock.requests) == 1
    # ...but 503/429 mean the gateway turned it away, so it is resent.
    answers = iter([text_response(503, "no healthy upstream"), json_response(202, {"msg": "ok"})])
    mock = Mock(lambda request: next(answers))
    assert run(mock.client().retry(ORCH)) == {"msg": "ok"}


def test_cancel_is_a_put_without_body() -> None:
    mock = Mock(lambda request: json_response(200, {"orchestrationID": ORCH}))
    assert run(mock.client().cancel(ORCH)) is None
    request = mock.requests[0]
    assert (request.method, request.url.path, request.content) == (
        "PUT",
        f"/orchestrations/{ORCH}/cancel",
        b"",
    )


def test_invalid_base_url_is_a_config_error() -> None:
    for bad in ("keb.example.com", "ftp://keb.example.com", "https://user:pw@keb.example.com"):
        with pytest.raises(ConfigError) as info:
            KebClient(bad, StaticToken(TOKEN))
        assert "pw@" not in str(info.value)


def test_base_url_path_prefix_is_kept() -> None:
    mock = Mock(lambda request: json_response(200, {"orchestrationID": ORCH}))
    run(mock.client(base_url="http://keb.test/broker/").get_orchestration(ORCH))
    assert mock.requests[0].url.path == f"/broker/orchestrations/{ORCH}"


# -- error mapping ----------------------------------------------------------------------------


def test_401_plain_text_from_the_gateway_over_real_http(keb: StubServer) -> None:
    keb.routes["GET", f"/orchestrations/{ORCH}"] = Canned(
        401, b"Jwt is expired", {"Content-Type": "text/plain"}
    )

    async def scenario() -> KebAuthError:
        async with real_client(keb) as client:
            with pytest.raises(KebAuthError) as info:
                await client.get_orchestration(ORCH)
            return info.value

    err = run(scenario())
    assert str(err) == f"KEB GET /orchestrations/{ORCH}: 401 Unauthorized: Jwt is expired"
    assert err.status == 401
    assert TOKEN not in str(err)
    assert len(keb.seen) == 1  # a static token cannot be refreshed: no second try
    assert keb.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_403_rbac_is_an_auth_error_and_not_retried() -> None:
    mock = Mock(lambda request: text_response(403, "RBAC: access denied\n"))
    with pytest.raises(KebAuthError) as info:
        run(mock.client(auth=StaticToken(TOKEN)).list_orchestrations())
    # The contract (PRODUCT.md "The watcher watches itself"): a 403 names the missing group.
    assert str(info.value).endswith(
        ": 403 Forbidden: RBAC: access denied (the token lacks the group orchestrationsAdmin, "
        "which KEB's orchestration API needs: log in as a user of that group, or ask for it)"
    )
    assert info.value.status == 403
    assert len(mock.requests) == 1


def test_token_echoed_by_a_server_is_redacted() -> None:
    mock = Mock(lambda request: text_response(401, f"bad token {TOKEN} (Authorization: {TOKEN})"))
    with pytest.raises(KebAuthError) as info:
        run(mock.client().get_orchestration(ORCH))
    assert TOKEN not in str(info.value)
    assert "***" in str(info.value)


def test_file_token_is_reread_after_401_and_the_second_request_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old-token")
    provider = FileToken(path)
    run(provider.token())  # cached
    before = path.stat()
    with path.open("r+") as fh:  # rewritten in place; stat looks unchanged
        fh.write("new-token")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] != "Bearer new-token":
            return text_response(401, "Jwt is expired")
        return json_response(200, {"orchestrationID": ORCH})

    mock = Mock(handler)
    client = mock.client(auth=provider)
    assert run(client.get_orchestration(ORCH)).orchestration_id == ORCH
    assert [r.headers["Authorization"] for r in mock.requests] == [
        "Bearer old-token",
        "Bearer new-token",
    ]
    assert client.stats.snapshot() == {"requests": 2, "ok": 1, "retried": 1, "error": 0}
    assert mock.sleep.delays == []


def test_still_401_after_refresh_is_an_auth_error(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("stale-token")
    mock = Mock(lambda request: text_response(401, "Jwt verification fails"))
    with pytest.raises(KebAuthError, match="Jwt verification fails"):
        run(mock.client(auth=FileToken(path)).get_orchestration(ORCH))
    assert len(mock.requests) == 2


def test_token_error_is_raised_before_anything_is_sent(tmp_path: Path) -> None:
    mock = Mock(lambda request: json_response(200, {}))
    client = mock.client(auth=FileToken(tmp_path / "missing"))
    with pytest.raises(TokenError, match="missing"):
        run(client.get_orchestration(ORCH))
    assert mock.requests == []
    assert client.stats.requests == 0


def test_404_surfaces_keb_error_text_without_retry() -> None:
    error = (
        f"while getting orchestration {ORCH}: for ID: {ORCH} cannot find operation: dbr: not found"
    )
    mock = Mock(lambda request: json_response(404, {"error": error}))
    with pytest.raises(KebNotFound) as info:
        run(mock.client().get_orchestration(ORCH))
    assert str(info.value) == f"KEB GET /orchestrations/{ORCH}: 404 Not Found: {error}"
    assert isinstance(info.value, LookupError)
    assert len(mock.requests) == 1


def test_other_4xx_is_a_request_error_without_retry() -> None:
    error = "invalide content type application/json for retrying orchestration"
    mock = Mock(lambda request: json_response(415, {"error": error}))
    with pytest.raises(KebRequestError, match=f"415 Unsupported Media Type: {error}$"):
        run(mock.client().retry(ORCH))
    assert len(mock.requests) == 1


def test_500_then_200_succeeds_after_one_backoff() -> None:
    answers = iter(
        [
            json_response(500, {"error": "while listing: connection reset"}),
            json_response(200, {"orchestrationID": ORCH}),
        ]
    )
    mock = Mock(lambda request: next(answers))
    client = mock.client()
    assert run(client.get_orchestration(ORCH)).orchestration_id == ORCH
    assert len(mock.sleep.delays) == 1
    assert 0.25 <= mock.sleep.delays[0] <= 0.5  # base 0.5 with up to 50 % jitter
    assert client.stats.snapshot() == {"requests": 2, "ok": 1, "retried": 1, "error": 0}


@pytest.mark.parametrize("header", ["2", "date"])
def test_429_retry_after_is_honoured(header: str) -> None:
    value = header
    if header == "date":
        value = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    answers = iter(
        [
            text_response(429, "slow down"),
            httpx.Response(429, headers={"Retry-After": value}, content=b"slow down"),
            json_response(200, {"orchestrationID": ORCH}),
        ]
    )
    mock = Mock(lambda request: next(answers))
    run(mock.client().get_orchestration(ORCH))
    assert len(mock.sleep.delays) == 2
    assert mock.sleep.delays[0] <= 0.5
    assert mock.sleep.delays[1] >= (2 if header == "2" else 1.5)


def test_persistent_503_gives_up_after_the_configured_attempts() -> None:
    mock = Mock(lambda request: httpx.Response(503, headers={"Retry-After": "1"}, content=b""))
    client = mock.client(retry=RetryPolicy(attempts=3, base=0.1, cap=1.0))
    with pytest.raises(KebUnavailable) as info:
        run(client.list_orchestrations())
    err = info.value
    assert err.status == 503
    assert err.retry_after == 1.0
    assert "503 Service Unavailable" in str(err)
    assert "gave up after 3 attempts" in str(err)
    assert len(mock.requests) == 3
    assert len(mock.sleep.delays) == 2
    assert all(d >= 1.0 for d in mock.sleep.delays)
    assert client.stats.snapshot() == {"requests": 3, "ok": 0, "retried": 2, "error": 1}


def test_connection_refused_over_real_socket() -> None:
    with socket.socket() as sock:  # find a port with nothing listening on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleep = RecordingSleep()
    client = KebClient(f"http://127.0.0.1:{port}", StaticToken(TOKEN), timeout=5, sleep=sleep)
    with pytest.raises(KebUnavailable) as info:
        run(client.list_orchestrations())
    message = str(info.value)
    assert f"cannot connect to http://127.0.0.1:{port} (connection refused)" in message
    assert message.startswith("KEB GET /orchestrations")
    assert info.value.status is None
    assert len(sleep.delays) == 3
    assert client.stats.requests == 4


def test_body_cut_short_over_real_http_is_retried_then_unavailable(keb: StubServer) -> None:
    keb.routes["GET", f"/orchestrations/{ORCH}"] = Canned(
        200, b'{"orchestrationID":"5a3f', {"Content-Length": "500"}, close=True
    )

    async def scenario() -> KebUnavailable:
        async with real_client(keb, retry=RetryPolicy(attempts=2)) as client:
            with pytest.raises(KebUnavailable) as info:
                await client.get_orchestration(ORCH)
            return info.value

    err = run(scenario())
    assert "connection broken" in str(err)
    assert len(keb.seen) == 2


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            text_response(200, '{"data":[{"operationID":"op-1"', "application/json"),
            "not valid JSON",
        ),
        (
            text_response(200, "<!DOCTYPE html><html><title>Sign in</title></html>", "text/html"),
            "expected JSON, got an HTML page (Sign in)",
        ),
        (text_response(200, "", "application/json"), "expected JSON, got an empty body"),
    ],
)
def test_damaged_2xx_body_is_retried_then_a_response_error(
    response: httpx.Response, expected: str
) -> None:
    mock = Mock(lambda request: response)
    with pytest.raises(KebResponseError) as info:
        run(mock.client(retry=RetryPolicy(attempts=2)).get_orchestration(ORCH))
    assert expected in str(info.value)
    assert str(info.value).startswith(f"KEB GET /orchestrations/{ORCH}: 200 OK: ")
    assert len(mock.requests) == 2


def test_wrong_json_shape_is_a_response_error_without_retry() -> None:
    mock = Mock(lambda request: json_response(200, {"state": "pending"}))
    with pytest.raises(KebResponseError, match=r"unexpected response: .*no orchestrationID"):
        run(mock.client().get_orchestration(ORCH))
    assert len(mock.requests) == 1


def test_html_error_page_is_summarised() -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>\n<h1>nginx</h1></body></html>"
    mock = Mock(lambda request: text_response(502, page, "text/html"))
    with pytest.raises(KebUnavailable) as info:
        run(mock.client(retry=RetryPolicy(attempts=1)).get_orchestration(ORCH))
    assert str(info.value) == (
        f"KEB GET /orchestrations/{ORCH}: 502 Bad Gateway: HTML error page (502 Bad Gateway)"
    )


def test_timeout_is_retried_then_unavailable() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(1)
        return json_response(200, {})

    mock = Mock(slow)
    with pytest.raises(KebUnavailable, match=r"timed out after 0\.05s"):
        run(mock.client(timeout=0.05, retry=RetryPolicy(attempts=2)).get_orchestration(ORCH))
    assert len(mock.requests) == 2


def test_log_lines_never_contain_the_token(caplog: pytest.LogCaptureFixture) -> None:
    answers = iter([text_response(500, f"oops {TOKEN}"), text_response(401, "Jwt is expired")])
    mock = Mock(lambda request: next(answers))
    caplog.set_level(logging.DEBUG, logger="watcher.keb")
    with pytest.raises(KebAuthError):
        run(mock.client().get_orchestration(ORCH))
    assert "retrying in" in caplog.text
    assert f"GET /orchestrations/{ORCH} -> 500" in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            b'{"error":"kyma upgrade not supported"}',
            "application/json",
            "kyma upgrade not supported",
        ),
        (b"  line one  \n line two", "text/plain", "line one"),
        (b"x" * 500, "text/plain", "x" * 197 + "..."),
        (b"<html><body>no title</body></html>", "text/html", "HTML error page"),
        (b'{"message":"not KEB"}', "application/json", '{"message":"not KEB"}'),
        (b"", "", ""),
    ],
)
def test_describe_body(body: bytes, content_type: str, expected: str) -> None:
    assert describe_body(body, content_type) == expected


# -- concurrency ------------------------------------------------------------------------------


def test_concurrency_bound_is_respected_across_the_client() -> None:
    items = [op(i) for i in range(1000)]
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return json_response(200, page_of(items, request))

    mock = Mock(handler)
    client = mock.client(concurrency=3)

    async def scenario() -> None:
        lists = await asyncio.gather(client.list_operations(ORCH), client.list_operations(ORCH))
        assert all(len(result) == 1000 for result in lists)

    run(scenario())
    assert peak == 3
    assert len(mock.requests) == 20


# -- RetryPolicy ------------------------------------------------------------------------------

policies = st.builds(
    RetryPolicy,
    attempts=st.integers(1, 10),
    base=st.floats(0.0, 5.0),
    cap=st.floats(0.0, 60.0),
    jitter=st.floats(0.0, 1.0),
)


@given(policies, st.integers(1, 200), st.integers(1, 200), st.floats(0.0, 0.999))
def test_retry_delay_is_monotone_for_fixed_jitter_and_capped(
    policy: RetryPolicy, a: int, b: int, u: float
) -> None:
    low, high = sorted((a, b))
    d_low = policy.delay(low, rng=lambda: u)
    d_high = policy.delay(high, rng=lambda: u)
    assert d_low <= d_high
    assert 0.0 <= d_high <= policy.cap
    assert d_high >= policy.backoff(high) * (1 - policy.jitter) - 1e-9


@given(policies, st.integers(1, 50), st.floats(0.0, 10_000.0))
def test_retry_delay_honours_retry_after_up_to_the_cap(
    policy: RetryPolicy, attempt: int, retry_after: float
) -> None:
    delay = policy.delay(attempt, retry_after)
    assert delay >= min(retry_after, policy.max_retry_after)
    assert delay <= max(policy.cap, min(retry_after, policy.max_retry_after))


def test_retry_policy_validates_and_parses_retry_after() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)
    now = datetime(2024, 5, 14, 8, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Tue, 14 May 2024 08:00:30 GMT", now) == 30.0
    assert parse_retry_after("Tue, 14 May 2024 07:00:00 GMT", now) == 0.0
    assert parse_retry_after("-1", now) is None
    assert parse_retry_after("tomorrow", now) is None
    assert parse_retry_after(None, now) is None
