"""``watcher sim --api runtimes``: the quirks of keb-runtimes-api.md §8, over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from watcher.sim.fleet import Fleet, populate
from watcher.sim.fleet_server import FleetServer, FleetSim, demo_fleet, runtime_token
from watcher.sim.tokens import make_token

TOKEN = runtime_token()


def get(url: str, token: str | None = TOKEN) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def get_json(url: str) -> Any:
    status, _, body = get(url)
    assert status == 200, body
    return json.loads(body)


def post(url: str, spec: dict[str, Any] | None = None) -> Any:
    data = json.dumps(spec or {}).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture
def fleet_server() -> Iterator[tuple[FleetServer, Fleet]]:
    fleet = Fleet(seed=3)
    populate(fleet, 6)
    with FleetServer(FleetSim(fleet)) as server:
        yield server, fleet


def test_pages_are_oldest_first_with_compact_json_and_beyond_the_end_is_empty(
    fleet_server: tuple[FleetServer, Fleet],
) -> None:
    server, fleet = fleet_server
    status, content_type, body = get(f"{server.url}/runtimes?page=1&page_size=4&op_detail=last")
    assert status == 200
    assert content_type == "application/json"
    assert not body.endswith(b"\n")
    assert b": " not in body
    page = json.loads(body)
    assert [r["instanceID"] for r in page["data"]] == list(fleet.instances)[:4]
    assert (page["count"], page["totalCount"]) == (4, 6)
    beyond = get_json(f"{server.url}/runtimes?page=20&page_size=4")
    assert beyond == {"data": [], "count": 0, "totalCount": 6}


def test_errors_have_keb_and_istio_shapes(fleet_server: tuple[FleetServer, Fleet]) -> None:
    server, fleet = fleet_server
    status, content_type, body = get(f"{server.url}/runtimes?page_size=500")
    assert (status, content_type) == (400, "application/json")
    assert (
        body == b'{"error":"while getting query parameters: pageSize is bigger than maxPage(100)"}'
    )
    assert get(f"{server.url}/runtimes", token=None)[::2] == (403, b"RBAC: access denied")
    orchestrations_only = make_token(groups=("orchestrationsAdmin",))
    status, content_type, body = get(f"{server.url}/runtimes", token=orchestrations_only)
    assert (status, content_type, body) == (403, "text/plain", b"RBAC: access denied")
    viewer = make_token(groups=("runtimeViewer",))
    assert get(f"{server.url}/runtimes", token=viewer)[0] == 200
    assert get(f"{server.url}/events?instance_ids=x", token=viewer)[0] == 403  # admin/operator
    assert get(f"{server.url}/runtimes", token="not-a-jwt")[::2] == (401, b"Jwt verification fails")
    status, content_type, body = get(f"{server.url}/orchestrations")
    assert (status, body) == (404, b"404 page not found\n")
    legacy = list(fleet.instances)[2]
    fleet.add_legacy(legacy)
    status, _, body = get(f"{server.url}/runtimes?op_detail=last")
    assert (status, body) == (500, b'{"error":"unsupported operation type: upgradeKyma"}')
    assert get(f"{server.url}/runtimes?op_detail=last&page=2&page_size=3")[0] == 200
    assert get(f"{server.url}/runtimes?instance_id={legacy}&op_detail=all")[0] == 200


def test_state_filter_and_shown_state_disagree_and_unknown_states_filter_nothing(
    fleet_server: tuple[FleetServer, Fleet],
) -> None:
    server, fleet = fleet_server
    ids = list(fleet.instances)
    fleet.update(ids[0], duration=600)
    fleet.suspend(ids[1])
    fleet.advance(1000)  # the suspension is done: ERS inactive, out of the default list
    updating = get_json(f"{server.url}/runtimes?state=updating&op_detail=last")
    assert [r["status"]["state"] for r in updating["data"]] == []
    fleet.update(ids[0], duration=600)
    fleet.update(ids[0], duration=600)  # pending behind the first: last_operation_id waits
    both = get_json(f"{server.url}/runtimes?state=updating&op_detail=all")["data"]
    assert [r["instanceID"] for r in both] == [ids[0]]
    # Under op_detail=all the pending newest update wins step 1 of §3.6: "succeeded".
    assert both[0]["status"]["state"] == "succeeded"
    assert both[0]["status"]["update"]["totalCount"] == 3
    assert len(both[0]["status"]["update"]["data"]) == 2
    default = get_json(f"{server.url}/runtimes?op_detail=last")
    assert ids[1] not in [r["instanceID"] for r in default["data"]]
    typo = get_json(f"{server.url}/runtimes?state=Suspended&op_detail=last")
    assert ids[1] in [r["instanceID"] for r in typo["data"]]
    suspended = get_json(f"{server.url}/runtimes?state=suspended&op_detail=last")["data"]
    assert [(r["instanceID"], r["runtimeID"], r["status"]["state"]) for r in suspended] == [
        (ids[1], "", "suspended")
    ]
    commas = get_json(f"{server.url}/runtimes?instance_id={ids[0]},{ids[2]}")
    assert commas["totalCount"] == 0  # one literal value, never split


def test_updated_at_is_no_heartbeat_and_clocks_differ(
    fleet_server: tuple[FleetServer, Fleet],
) -> None:
    server, fleet = fleet_server
    target = next(iter(fleet.instances))
    fleet.update(target, hang=True)
    url = f"{server.url}/runtimes?instance_id={target}&op_detail=last"
    before = get_json(url)["data"][0]
    post(f"{server.url}/_sim/advance?seconds=10800")
    after = get_json(url)["data"][0]
    op_before, op_after = (
        before["status"]["update"]["data"][0],
        after["status"]["update"]["data"][0],
    )
    assert op_after["state"] == "in progress"
    assert op_after["updatedAt"] == op_before["updatedAt"]
    provisioned = get_json(f"{server.url}/runtimes?instance_id={target}")["data"][0]["status"]
    # The instance's createdAt is Postgres' NOW(), the op's the KEB pod's: they differ.
    assert provisioned["createdAt"] != provisioned["provisioning"]["createdAt"]


def test_lifecycle_deprovisioning_vanishes_and_unsuspension_keeps_the_instance(
    fleet_server: tuple[FleetServer, Fleet],
) -> None:
    server, fleet = fleet_server
    ids = list(fleet.instances)
    old_runtime = fleet.instances[ids[3]].runtime_id
    post(f"{server.url}/_sim/act", {"action": "suspend", "instance": ids[3]})
    post(f"{server.url}/_sim/act", {"action": "deprovision", "instance": ids[4]})
    post(f"{server.url}/_sim/advance?seconds=1000")
    post(f"{server.url}/_sim/act", {"action": "unsuspend", "instance": ids[3]})
    post(f"{server.url}/_sim/advance?seconds=2000")
    listed = {r["instanceID"]: r for r in get_json(f"{server.url}/runtimes?op_detail=all")["data"]}
    assert ids[4] not in listed
    back = listed[ids[3]]
    assert back["runtimeID"] not in ("", old_runtime)
    assert back["status"]["state"] == "succeeded"
    assert back["status"]["unsuspension"]["data"][0]["state"] == "succeeded"
    archived = get_json(f"{server.url}/runtimes?state=deprovisioned&instance_id={ids[4]}")
    assert [r["instanceID"] for r in archived["data"]] == [ids[4]]
    assert archived["data"][0]["status"]["state"] == ""
    events = get_json(f"{server.url}/events?instance_ids={ids[4]}")
    assert events
    assert {e["InstanceID"] for e in events} == {ids[4]}
    assert get(f"{server.url}/events?instance_ids=nobody")[2] == b"null"
    truth = get_json(f"{server.url}/_sim/truth")
    assert {"instance": ids[4], "state": "deprovisioned"}.items() <= truth[-1].items() or any(
        row["instance"] == ids[4] and row["state"] == "deprovisioned" for row in truth
    )


def test_pages_are_no_snapshot(fleet_server: tuple[FleetServer, Fleet]) -> None:
    server, fleet = fleet_server
    fleet.between_queries = lambda: fleet.provision() and None
    page = get_json(f"{server.url}/runtimes?page_size=2")
    assert page["count"] == 2
    assert page["totalCount"] == 7


def test_demo_fleet_moves_through_the_whole_lifecycle() -> None:
    fleet = demo_fleet(seed=1, size=12)
    kinds_before = len(fleet.truth)
    fleet.advance(4 * 3600)
    states = {(t.type, t.temporary, t.state) for t in fleet.truth[kinds_before:]}
    assert ("provision", False, "failed") in states
    assert ("update", False, "failed") in states
    assert ("deprovision", True, "succeeded") in states
    assert ("provision", False, "succeeded") in states  # the unsuspension
    assert ("instance", False, "deprovisioned") in states
    hung = [op for op in fleet.instances[list(fleet.instances)[1]].ops if op.hang]
    assert hung
    assert hung[0].state == "in progress"
