"""The simulator over real HTTP on 127.0.0.1: exact KEB wire behaviour (docs/keb-api.md §2-§6).

Requests go through httpx, like the watcher's own client; nothing of the project is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from watcher.core.models import (
    CANCELED,
    FAILED,
    IN_PROGRESS,
    RETRYING,
    Operation,
    OperationDetail,
    Orchestration,
    parse_page,
)
from watcher.sim import SimServer, Simulator, make_token

SAMPLES = Path(__file__).parent / "samples"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def sim() -> Simulator:
    return Simulator.from_scenario("failures", seed=1)


@pytest.fixture
def server(sim: Simulator) -> Iterator[SimServer]:
    with SimServer(sim).start() as running:
        yield running


@pytest.fixture
def client(server: SimServer, sim: Simulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {sim.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as c:
        yield c


def error(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    return str(body["error"])


# --- paging -----------------------------------------------------------------------------------

BAD_PAGING = [
    ("page_size=101", "pageSize is bigger than maxPage(100)"),
    ("page_size=0", "pageSize cannot be smaller than 1"),
    ("page_size=-3", "pageSize cannot be smaller than 1"),
    ("page_size=abc", "pageSize has to be an integer"),
    ("page_size=1.5", "pageSize has to be an integer"),
    ("page_size=", "pageSize has to be an integer"),
    ("page_size=10&page_size=10", "pageSize has to be one parameter"),
    ("page=0", "page cannot be smaller than 1"),
    ("page=x", "page has to be an integer"),
    ("page=1&page=2", "page has to be one parameter"),
    ("page=0&page_size=500", "pageSize is bigger than maxPage(100)"),  # page_size first
]


@pytest.mark.parametrize(("query", "message"), BAD_PAGING)
def test_bad_paging_is_400_with_keb_text(client: httpx.Client, query: str, message: str) -> None:
    oid = client.get("/orchestrations").json()["data"][0]["orchestrationID"]
    for path in (
        "/orchestrations",
        f"/orchestrations/{oid}/operations",
        "/orchestrations/x/operations",
    ):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400
        assert error(response) == f"while getting query parameters: {message}"


def test_paging_defaults_pages_and_past_the_end(client: httpx.Client, sim: Simulator) -> None:
    sim.advance(60)
    oid = sim.orchestration_ids()[0]
    first = client.get(f"/orchestrations/{oid}/operations").json()
    assert (first["count"], first["totalCount"]) == (100, 200)
    explicit = client.get(f"/orchestrations/{oid}/operations?page=1&page_size=100").json()
    assert explicit == first
    second = client.get(f"/orchestrations/{oid}/operations?page=2&page_size=100").json()
    small = client.get(f"/orchestrations/{oid}/operations?page=%2B003&page_size=70").json()
    assert (small["count"], small["totalCount"]) == (60, 200)
    past = client.get(f"/orchestrations/{oid}/operations?page=9").json()
    assert past == {"data": [], "count": 0, "totalCount": 200}
    served = [op["operationID"] for op in first["data"] + second["data"]]
    created = [e.operation_id for e in sim.truth(oid) if e.operation_id and e.from_state is None]
    assert served == created  # oldest first
    assert [op["operationID"] for op in small["data"]] == created[140:]


def test_state_filter_is_exact_and_repeatable(client: httpx.Client, sim: Simulator) -> None:
    sim.advance(20 * 60)
    oid = sim.orchestration_ids()[0]
    everything = client.get(f"/orchestrations/{oid}/operations?page_size=100").json()["totalCount"]
    counts = {}
    for literal in ("in+progress", "in%20progress", "succeeded", "failed", "pending"):
        body = client.get(f"/orchestrations/{oid}/operations?state={literal}").json()
        state = literal.replace("+", " ").replace("%20", " ")
        assert {op["state"] for op in body["data"]} <= {state}
        counts[state] = body["totalCount"]
    assert counts["in progress"] == 20
    assert sum(counts.values()) == everything
    both = client.get(f"/orchestrations/{oid}/operations?state=failed&state=succeeded").json()
    assert both["totalCount"] == counts["failed"] + counts["succeeded"]
    for odd in ("inprogress", "IN PROGRESS", ""):
        body = client.get(f"/orchestrations/{oid}/operations", params={"state": odd}).json()
        assert body == {"data": [], "count": 0, "totalCount": 0}
    listed = client.get("/orchestrations?state=in+progress&state=failed").json()
    assert listed["totalCount"] == 1
    assert client.get("/orchestrations?state=succeeded").json() == {
        "data": [],
        "count": 0,
        "totalCount": 0,
    }


def test_orchestrations_are_listed_oldest_first_without_stats() -> None:
    sim = Simulator.from_scenario("demo", seed=2)
    with SimServer(sim).start() as server:
        headers = {"Authorization": f"Bearer {sim.token}"}
        new = httpx.post(
            f"{server.url}/upgrade/cluster",
            headers=headers,
            json={
                "targets": {"include": [{"target": "all"}]},
                "strategy": {"type": "parallel", "schedule": "now", "parallel": {"workers": 1}},
            },
        )
        assert new.status_code == 202
        body = httpx.get(f"{server.url}/orchestrations", headers=headers).json()
        page = httpx.get(f"{server.url}/orchestrations?page=2&page_size=4", headers=headers).json()
    ids = [o["orchestrationID"] for o in body["data"]]
    assert ids == [*sim.orchestration_ids()]
    assert ids[-1] == new.json()["orchestrationID"]
    created = [o["createdAt"] for o in body["data"]]
    assert created == sorted(created, key=lambda c: datetime.fromisoformat(c))
    assert all("operationStats" not in o for o in body["data"])
    assert (page["count"], page["totalCount"]) == (2, 6)
    assert page["data"] == body["data"][4:]


# --- single resources, stats, errors -------------------------------------------------------


def test_operation_stats_only_on_single_get(client: httpx.Client, sim: Simulator) -> None:
    oid = sim.orchestration_ids()[0]
    assert client.get(f"/orchestrations/{oid}").json()["operationStats"] == {"failed": 0}
    sim.run_until_finished()
    single = client.get(f"/orchestrations/{oid}").json()
    assert single["operationStats"] == {"failed": 30, "succeeded": 170}
    assert list(single)[-1] == "operationStats"
    assert "operationStats" not in client.get("/orchestrations").json()["data"][0]


def test_not_found_texts(client: httpx.Client, sim: Simulator) -> None:
    oid = sim.orchestration_ids()[0]
    missing = "0c4357f5-83e0-4b72-9472-49b5cd417c00"
    base = f"for ID: {missing} cannot find operation: dbr: not found"
    cases = [
        (
            client.get(f"/orchestrations/{missing}"),
            f"while getting orchestration {missing}: {base}",
        ),
        (
            client.get(f"/orchestrations/{missing}/operations"),
            f"while getting orchestration {missing}: {base}",
        ),
        (
            client.get(f"/orchestrations/{missing}/operations/x"),
            f"while getting orchestration {missing}: {base}",
        ),
        (
            client.put(f"/orchestrations/{missing}/cancel"),
            f"while canceling orchestration {missing}: while getting orchestration: {base}",
        ),
        (
            client.post(f"/orchestrations/{missing}/retry", headers=FORM),
            f"while retrying orchestration {missing}: {base}",
        ),
        (
            client.get(f"/orchestrations/{oid}/operations/nope"),
            "while getting upgrade operation nope: while getting operation by ID: "
            "Operation with id nope not exist",
        ),
    ]
    for response, message in cases:
        assert response.status_code == 404
        assert error(response) == message


def test_operation_detail_is_not_checked_against_its_orchestration() -> None:
    sim = Simulator.from_scenario("demo", seed=1)
    first, second = sim.orchestration_ids()[:2]
    sim.advance(60)
    op = sim.list_operations(first)["data"][0]
    with SimServer(sim).start() as server:
        response = httpx.get(
            f"{server.url}/orchestrations/{second}/operations/{op['operationID']}",
            headers={"Authorization": f"Bearer {sim.token}"},
        )
    assert response.status_code == 200
    assert response.json()["orchestrationID"] == first


def test_router_404_and_405_are_plain_text(client: httpx.Client, sim: Simulator) -> None:
    oid = sim.orchestration_ids()[0]
    for path in ("/", "/orchestration", "/orchestrations/", f"/orchestrations/{oid}/x/y/z"):
        response = client.get(path)
        assert (response.status_code, response.text) == (404, "404 page not found\n")
        assert response.headers["content-type"].startswith("text/plain")
    for method, path, allow in [
        ("POST", "/orchestrations", "GET, HEAD"),
        ("DELETE", f"/orchestrations/{oid}", "GET, HEAD"),
        ("GET", f"/orchestrations/{oid}/cancel", "PUT"),
        ("PUT", f"/orchestrations/{oid}/retry", "POST"),
        ("GET", "/upgrade/cluster", "POST"),
    ]:
        response = client.request(method, path)
        assert (response.status_code, response.text) == (405, "Method Not Allowed\n")
        assert response.headers["allow"] == allow


@pytest.mark.parametrize(
    ("authorization", "status", "text"),
    [
        (None, 403, "RBAC: access denied"),
        ("Basic dXNlcjpwYXNz", 403, "RBAC: access denied"),
        ("Bearer " + make_token(groups=("runtimeAdmin",)), 403, "RBAC: access denied"),
        ("Bearer not.a.jwt", 401, "Jwt verification fails"),
        ("Bearer abc", 401, "Jwt verification fails"),
        ("Bearer " + make_token(exp=datetime(2021, 1, 1, tzinfo=UTC)), 401, "Jwt is expired"),
    ],
)
def test_gateway_rejects_with_plain_text(
    server: SimServer, authorization: str | None, status: int, text: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [("GET", "/orchestrations"), ("POST", "/upgrade/cluster")]:
        response = httpx.request(method, f"{server.url}{path}", headers=headers)
        assert (response.status_code, response.text) == (status, text)
        assert response.headers["content-type"] == "text/plain"


def test_unprotected_paths_only_reject_bad_tokens(server: SimServer) -> None:
    assert httpx.get(f"{server.url}/healthz").status_code == 404
    bad = httpx.get(f"{server.url}/healthz", headers={"Authorization": "Bearer x"})
    assert (bad.status_code, bad.text) == (401, "Jwt verification fails")


# --- wire format ------------------------------------------------------------------------------


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def assert_key_order(served: Any, reference: Any, path: str = "") -> None:
    """Keys appear in the sample's order; only keys the samples know (``kyma`` is ≤1.8.11)."""
    if isinstance(served, dict):
        assert isinstance(reference, dict), path
        unknown = set(served) - set(reference)
        assert not unknown, f"{path}: keys not in the sample: {unknown}"
        expected = [k for k in reference if k in served]
        assert list(served) == expected, path
        for key, value in served.items():
            if isinstance(value, dict | list) and reference[key]:
                assert_key_order(value, reference[key], f"{path}.{key}")
    elif isinstance(served, list) and served and isinstance(reference, list):
        for item in served:
            assert_key_order(item, reference[0], f"{path}[]")


def merged_orchestration_sample() -> dict[str, Any]:
    """One reference holding every optional key, in Go field order."""
    full: dict[str, Any] = sample("get-orchestration-04-synth.json")  # has notification
    full["parameters"]["targets"]["exclude"] = [{"globalAccount": "x"}]
    params = full["parameters"]
    full["parameters"] = {
        "targets": params["targets"],
        "strategy": params["strategy"],
        "dryRun": True,
        "kubernetes": params["kubernetes"],
        "retryoperation": {"retryoperations": ["a"]},
        "notification": True,
    }
    target_order = ["target", "globalAccount", "subAccount", "region", "runtimeID", "planName"]
    full["parameters"]["targets"]["include"] = [dict.fromkeys(target_order, "x")]
    return full


def test_served_json_parses_and_matches_sample_key_order() -> None:
    sim = Simulator.from_scenario("demo", seed=4)
    with SimServer(sim).start() as server:
        c = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {sim.token}"})
        sim.create_upgrade(
            {
                "targets": {"include": [{"planName": "azure", "region": "west"}]},
                "strategy": {"type": "parallel", "schedule": "now", "parallel": {"workers": 2}},
                "dryRun": True,
            }
        )
        checked_pending_detail = checked_running_detail = False
        for step in range(8):
            listed = c.get("/orchestrations")
            assert listed.headers["content-type"] == "application/json"
            assert not listed.text.endswith("\n")
            assert listed.text == json.dumps(listed.json(), separators=(",", ":"))  # compact
            page = parse_page(listed.json(), Orchestration.from_json, "orchestrations")
            assert page.count == len(page.items) == 6
            assert_key_order(
                listed.json(),
                {"data": [merged_orchestration_sample()], "count": 0, "totalCount": 0},
            )
            for orch in page.items:
                single = c.get(f"/orchestrations/{orch.orchestration_id}").json()
                parsed = Orchestration.from_json(single)
                assert parsed.operation_stats is not None
                assert parsed.type == "upgradeCluster"
                assert_key_order(single, {**merged_orchestration_sample(), "operationStats": {}})
                ops = c.get(f"/orchestrations/{orch.orchestration_id}/operations?page_size=5")
                assert_key_order(ops.json(), sample("list-operations-01-synth.json"))
                items = parse_page(ops.json(), Operation.from_json, "operations").items
                for op in items:
                    assert list(op.to_json()) == list(
                        sample("list-operations-01-synth.json")["data"][0]
                    )
                    detail_raw = c.get(
                        f"/orchestrations/{orch.orchestration_id}/operations/{op.operation_id}"
                    ).json()
                    detail = OperationDetail.from_json(detail_raw)
                    assert detail.kyma_config is None
                    assert detail.cluster_config is not None
                    if op.state == "pending":
                        assert detail_raw == {
                            **op.to_json(),
                            "clusterConfig": sample("get-operation-02-synth.json")["clusterConfig"],
                        }
                        assert list(detail_raw) == list(sample("get-operation-02-synth.json"))
                        checked_pending_detail = True
                    elif op.state == IN_PROGRESS and not op.dry_run:
                        reference = sample("get-operation-01-synth.json")
                        assert list(detail_raw) == list(reference)
                        assert list(detail_raw["clusterConfig"]) == list(reference["clusterConfig"])
                        checked_running_detail = True
            sim.advance(240 * (step + 1))
        c.close()
    assert checked_pending_detail
    assert checked_running_detail


def test_mutations_over_http(client: httpx.Client, sim: Simulator) -> None:
    oid = sim.orchestration_ids()[0]
    wrong = client.post(f"/orchestrations/{oid}/retry", json={"operation-id": "x"})
    assert wrong.status_code == 415
    assert error(wrong) == "invalide content type application/json for retrying orchestration"
    none = client.post(f"/orchestrations/{oid}/retry", content=b"", headers={"Content-Type": ""})
    assert error(none) == "invalide content type  for retrying orchestration"
    sim.run_until_finished()
    assert client.get(f"/orchestrations/{oid}").json()["state"] == FAILED
    failed = client.get(f"/orchestrations/{oid}/operations?state=failed&page_size=3").json()
    ids = [op["operationID"] for op in failed["data"]]
    body = "&".join(f"operation-id={i}" for i in [*ids, "bogus"]) + "&immediate=true"
    retried = client.post(f"/orchestrations/{oid}/retry", content=body, headers=FORM)
    assert retried.status_code == 202
    assert retried.text == json.dumps(
        {
            "orchestrationID": oid,
            "retryShoots": [op["shootName"] for op in failed["data"]],
            "oldOperations": None,
            "invalidOperations": ["bogus"],
            "msg": "retry operations are queued for processing",
        },
        separators=(",", ":"),
    )
    after = client.get(f"/orchestrations/{oid}").json()
    assert (after["state"], after["description"]) == (
        RETRYING,
        "Scheduled 200 operations, retrying",
    )
    assert after["parameters"]["retryoperation"] == {"retryoperations": ids}
    canceled = client.put(f"/orchestrations/{oid}/cancel")
    assert (canceled.status_code, canceled.text) == (
        200,
        json.dumps({"orchestrationID": oid}).replace(" ", ""),
    )
    again = client.post(f"/orchestrations/{oid}/retry", content="", headers=FORM)
    assert again.status_code == 500
    assert error(again) == f"orchestration {oid} was canceled right before retrying"
    assert client.put(f"/orchestrations/{oid}/cancel").status_code == 200
    sim.run_until_finished()
    assert client.get(f"/orchestrations/{oid}").json()["state"] == CANCELED


def test_upgrade_endpoints_over_http(client: httpx.Client, sim: Simulator) -> None:
    broken = client.post(
        "/upgrade/cluster", content=b'{"targets":{"include":[{"target":"all"},}]}}'
    )
    assert broken.status_code == 400
    assert error(broken) == (
        "while decoding request body: invalid character '}' looking for beginning of value"
    )
    assert error(client.post("/upgrade/cluster", content=b"")) == "while decoding request body: EOF"
    assert error(client.post("/upgrade/cluster", content=b'{"targets":')) == (
        "while decoding request body: unexpected EOF"
    )
    empty = client.post("/upgrade/cluster", json={"targets": {"include": []}})
    assert error(empty) == "while validating target: targets.include array must be not empty"
    kyma = client.post("/upgrade/kyma", json={"targets": {"include": [{"target": "all"}]}})
    assert (kyma.status_code, kyma.text) == (400, '{"error":"kyma upgrade not supported"}')
    cli_body = (SAMPLES / "mutation-04-synth.json").read_text()
    created = client.post("/upgrade/cluster", content=cli_body)
    assert created.status_code == 202
    assert list(created.json()) == ["orchestrationID"]
    oid = created.json()["orchestrationID"]
    stored = client.get(f"/orchestrations/{oid}").json()
    assert (stored["state"], stored["description"]) == ("pending", "queued for processing")
    assert stored["parameters"]["strategy"]["ScheduleTime"] == stored["createdAt"]
    assert stored["parameters"]["notification"] is True
    assert oid in sim.orchestration_ids()


# --- faults ---------------------------------------------------------------------------------


def test_each_fault_kind(server: SimServer, client: httpx.Client, sim: Simulator) -> None:
    expected = {
        "5xx": (500, "application/json"),
        "502-html": (502, "text/html; charset=utf-8"),
        "html-200": (200, "text/html; charset=utf-8"),
        "reject-token": (401, "text/plain"),
        "rbac": (403, "text/plain"),
    }
    for kind, (status, content_type) in expected.items():
        sim.faults.inject(kind)
        response = client.get("/orchestrations")
        assert (response.status_code, response.headers["content-type"]) == (status, content_type)
        assert client.get("/orchestrations").status_code == 200  # count=1: used up
    assert client.get("/orchestrations").json()["count"] == 1
    sim.faults.inject("reject-token")
    assert client.get("/orchestrations").text == "Jwt is expired"
    sim.faults.inject("rbac")
    assert client.get("/orchestrations").text == "RBAC: access denied"

    sim.faults.inject("truncated")
    cut = client.get("/orchestrations")
    assert cut.status_code == 200
    assert len(cut.content) == int(cut.headers["content-length"])
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    assert client.get("/orchestrations").text.startswith(cut.text)

    sim.faults.inject("slow", delay=0.3)
    started = time.perf_counter()
    assert client.get("/orchestrations").status_code == 200
    assert time.perf_counter() - started >= 0.3

    sim.faults.inject("reset")
    with pytest.raises(httpx.TransportError):
        client.get("/orchestrations")
    assert client.get("/orchestrations").status_code == 200  # a new connection works


def test_faults_through_admin_api_respect_path_prefix(
    server: SimServer, client: httpx.Client
) -> None:
    admin = httpx.Client(base_url=server.url)
    added = admin.post("/_sim/faults", json={"kind": "5xx", "count": 2, "path_prefix": "/upgrade"})
    assert added.json()["faults"][0]["kind"] == "5xx"
    assert client.get("/orchestrations").status_code == 200
    assert admin.get("/_sim/state").status_code == 200  # admin paths never fault
    assert client.post("/upgrade/cluster", json={}).status_code == 500
    assert admin.delete("/_sim/faults").json() == {"faults": []}
    assert client.post("/upgrade/cluster", json={}).status_code == 400
    bad = admin.post("/_sim/faults", json={"kind": "meteor"})
    assert bad.status_code == 400
    assert "unknown fault kind" in bad.json()["error"]
    admin.close()


# --- admin endpoints, concurrency, clock ---------------------------------------------------


def test_admin_truth_advance_state_and_delete(server: SimServer, sim: Simulator) -> None:
    admin = httpx.Client(base_url=server.url)
    oid = sim.orchestration_ids()[0]
    moved = admin.post("/_sim/advance?seconds=120").json()
    assert moved["changes"] == 220  # 200 created + 20 started
    assert datetime.fromisoformat(moved["now"]) == sim.now
    truth = admin.get(f"/_sim/truth/{oid}").json()
    assert [e.to_json() for e in sim.truth(oid)] == truth
    assert list(truth[0]) == [
        "time",
        "orchestrationID",
        "operationID",
        "runtimeID",
        "from",
        "to",
        "description",
    ]
    op_id = sim.list_operations(oid)["data"][0]["operationID"]
    assert admin.delete(f"/_sim/orchestrations/{oid}/operations/{op_id}").status_code == 200
    state = admin.get("/_sim/state").json()
    assert state["orchestrations"][0]["operations"] == 199
    assert state["requests"] == server.request_count == 0
    assert admin.get("/_sim/truth/nope").status_code == 404
    for bad in ("soon", "-5", "inf"):
        assert admin.post(f"/_sim/advance?seconds={bad}").status_code == 400
    assert admin.get("/_sim/nothing").status_code == 404
    admin.close()


def test_keep_alive_counts_and_concurrent_paging_of_large() -> None:
    sim = Simulator.from_scenario("large", seed=1)
    with SimServer(sim).start() as server:
        headers = {"Authorization": f"Bearer {sim.token}"}
        ids = sim.orchestration_ids()

        def fetch_all(oid: str) -> list[str]:
            with httpx.Client(base_url=server.url, headers=headers) as c:
                out: list[str] = []
                for page in range(1, 21):
                    r = c.get(f"/orchestrations/{oid}/operations?page={page}&page_size=100")
                    assert r.http_version == "HTTP/1.1"
                    out.extend(op["operationID"] for op in r.json()["data"])
                return out

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(fetch_all, ids[:8]))
        assert server.request_count == 160
    for oid, served in zip(ids, results, strict=False):
        assert served == [op["operationID"] for op in sim.list_operations(oid, 1, 100)["data"]] + [
            op["operationID"]
            for page in range(2, 21)
            for op in sim.list_operations(oid, page, 100)["data"]
        ]


def test_accelerated_server_moves_on_its_own() -> None:
    sim = Simulator.from_scenario("small", seed=1, speed=10.0)  # starts ~0.85 s after creation
    with SimServer(sim).start() as server:
        headers = {"Authorization": f"Bearer {sim.token}"}
        oid = sim.orchestration_ids()[0]
        first = httpx.get(f"{server.url}/orchestrations/{oid}", headers=headers).json()
        time.sleep(1.2)
        later = httpx.get(f"{server.url}/orchestrations/{oid}", headers=headers).json()
    assert first["state"] == "pending"
    assert later["state"] == IN_PROGRESS


def test_stop_ends_keep_alive_connections(sim: Simulator) -> None:
    server = SimServer(sim).start()
    c = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {sim.token}"})
    assert c.get("/orchestrations").status_code == 200
    server.stop()
    with pytest.raises(httpx.TransportError):
        c.get("/orchestrations")
    c.close()


def test_watcher_sim_entry_point_prints_connection_lines() -> None:
    code = (
        "import sys; from watcher.sim import serve_forever; "
        "serve_forever('small', seed=1, speed=None, host='127.0.0.1', port=0, out=sys.stdout)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        export = lines[-1].split()
        assert export[0] == "export"
        url = export[1].removeprefix("KEB_URL=")
        token = export[2].removeprefix("KEB_TOKEN=")
        assert lines[1].split() == ["URL:", url]
        assert lines[2].split() == ["token:", token]
        response = httpx.get(f"{url}/orchestrations", headers={"Authorization": f"Bearer {token}"})
        assert response.json()["data"][0]["orchestrationID"] == lines[3].split()[1]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 0
