"""The simulated KEB as a library: scenarios, transitions, ground truth, determinism.

Every expectation cites the KEB behaviour it checks (docs/keb-api.md); the HTTP face is covered by
``test_sim_server.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest

from watcher.core.models import (
    CANCELED,
    CANCELING,
    FAILED,
    IN_PROGRESS,
    PENDING,
    RETRYING,
    SUCCEEDED,
    Operation,
    parse_keb_time,
)
from watcher.errors import UsageError
from watcher.sim import (
    SCENARIOS,
    OrchestrationSpec,
    ScenarioSpec,
    ScriptedAction,
    SimApiError,
    SimNotFound,
    Simulator,
    TruthEvent,
    make_token,
)
from watcher.sim.faults import Faults
from watcher.sim.tokens import TokenCheck, check_authorization, decode_claims, gateway_reply

# Allowed operation transitions (docs/keb-api.md §4.3); None = created, "vanished" = cleaned.
OP_TRANSITIONS = {
    None: {PENDING},
    PENDING: {IN_PROGRESS, CANCELED, "vanished"},
    IN_PROGRESS: {IN_PROGRESS, SUCCEEDED, FAILED, "vanished"},
    SUCCEEDED: {"vanished"},
    FAILED: {"vanished"},
    CANCELED: {"vanished"},
}
ORCH_TRANSITIONS = {
    None: {PENDING},
    PENDING: {PENDING, IN_PROGRESS, SUCCEEDED, CANCELING},
    IN_PROGRESS: {IN_PROGRESS, SUCCEEDED, FAILED, CANCELING},
    CANCELING: {CANCELED},
    FAILED: {RETRYING},
    RETRYING: {IN_PROGRESS, CANCELING},
    SUCCEEDED: set(),
    CANCELED: set(),
}
OP_DESCRIPTIONS_IN_PROGRESS = [
    "Operation created",
    "cluster upgrade in progress",
    "Performing post-upgrade tasks",
]


def all_operations(sim: Simulator, orchestration_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        body = sim.list_operations(orchestration_id, page=page, page_size=100)
        out.extend(body["data"])
        if not body["data"]:
            return out
        page += 1


def by_operation(events: Iterable[TruthEvent]) -> dict[str, list[TruthEvent]]:
    out: dict[str, list[TruthEvent]] = {}
    for event in events:
        if event.operation_id is not None:
            out.setdefault(event.operation_id, []).append(event)
    return out


def assert_truth_consistent(sim: Simulator, orchestration_id: str) -> None:
    """Every truth sequence is legal, and replaying it gives exactly what KEB serves."""
    events = sim.truth(orchestration_id)
    times = [e.time for e in events]
    assert times == sorted(times)
    orch_states = [e for e in events if e.operation_id is None]
    previous: str | None = None
    for event in orch_states:
        assert event.from_state == previous
        assert event.to_state in ORCH_TRANSITIONS[previous], event
        previous = event.to_state
    served = sim.get_orchestration(orchestration_id)
    assert previous == served["state"]
    assert orch_states[-1].description == served["description"]

    final: dict[str, TruthEvent] = {}
    for op_id, seq in by_operation(events).items():
        assert seq[0].from_state is None
        assert seq[0].description == "Operation created"
        state: str | None = None
        for event in seq:
            assert event.from_state == state
            assert event.to_state in OP_TRANSITIONS[state], (op_id, event)
            state = event.to_state
        progress = [e.description for e in seq if e.to_state == IN_PROGRESS]
        assert progress == OP_DESCRIPTIONS_IN_PROGRESS[: len(progress)] or progress == [
            "Operation created",
            "cluster upgrade in progress",
        ]
        final[op_id] = seq[-1]
    alive = {k: v for k, v in final.items() if v.to_state != "vanished"}
    listed = all_operations(sim, orchestration_id)
    assert [op["operationID"] for op in listed] == list(alive)  # creation order
    for op in listed:
        assert (op["state"], op["description"]) == (
            alive[op["operationID"]].to_state,
            alive[op["operationID"]].description,
        )
    assert Counter(op["state"] for op in listed) == Counter(e.to_state for e in alive.values())


def max_parallel(events: list[TruthEvent]) -> int:
    running, peak = 0, 0
    for event in events:
        if event.operation_id is None or event.from_state == event.to_state:
            continue
        if event.to_state == IN_PROGRESS:
            running += 1
        elif event.from_state == IN_PROGRESS:
            running -= 1
        peak = max(peak, running)
    return peak


# --- scenarios ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "finals"),
    [
        ("small", [SUCCEEDED]),
        ("failures", [FAILED]),
        ("cancel", [CANCELED]),
        ("retry", [SUCCEEDED]),
        ("maintenance", [SUCCEEDED]),
        ("demo", [SUCCEEDED, FAILED, CANCELED, SUCCEEDED, SUCCEEDED]),
    ],
)
def test_scenario_plays_to_its_end_with_consistent_truth(name: str, finals: list[str]) -> None:
    sim = Simulator.from_scenario(name, seed=3)
    ids = sim.orchestration_ids()
    assert len(ids) == len(finals)  # all scenario orchestrations exist from the start
    assert not sim.all_finished()
    sim.run_until_finished()
    assert sim.all_finished()
    assert sim.next_event_in() is None
    assert [sim.get_orchestration(i)["state"] for i in ids] == finals
    assert [sim.orchestration_state(i) for i in ids] == finals
    for orchestration_id, spec in zip(ids, SCENARIOS[name].orchestrations, strict=True):
        assert_truth_consistent(sim, orchestration_id)
        assert max_parallel(sim.truth(orchestration_id)) <= spec.workers


@pytest.mark.parametrize("name", ["small", "demo"])
def test_demo_like_scenarios_finish_within_45_virtual_minutes(name: str) -> None:
    sim = Simulator.from_scenario(name, seed=1)
    sim.advance(45 * 60)
    assert sim.all_finished()


def test_small_takes_about_twenty_minutes() -> None:
    sim = Simulator.from_scenario("small", seed=1)
    sim.advance(10 * 60)
    assert not sim.all_finished()
    sim.advance(15 * 60)
    assert sim.all_finished()


def test_failures_spread_over_four_reasons_and_fail_the_orchestration() -> None:
    sim = Simulator.from_scenario("failures", seed=2)
    sim.run_until_finished()
    oid = sim.orchestration_ids()[0]
    ops = all_operations(sim, oid)
    failed = [op["description"] for op in ops if op["state"] == FAILED]
    assert len(ops) == 200
    assert len(failed) == 30
    reasons = Counter(failed)
    assert len(reasons) == 4
    assert "operation has reached the time limit: 3h0m0s" in reasons
    prefixed = [r for r in reasons if r.startswith("provisioner client returns failed status: ")]
    assert len(prefixed) == 3
    assert sim.get_orchestration(oid)["operationStats"] == {"failed": 30, "succeeded": 170}


def test_unknown_scenario_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown scenario 'nope'"):
        Simulator.from_scenario("nope")


def test_every_scenario_has_a_one_line_description() -> None:
    assert {"small", "failures", "cancel", "retry", "maintenance", "demo", "large"} <= set(
        SCENARIOS
    )
    for spec in SCENARIOS.values():
        assert spec.description
        assert "\n" not in spec.description


# --- orchestration lifecycle ----------------------------------------------------------------


def test_pending_to_in_progress_keeps_updated_at_and_completion_bumps_it() -> None:
    sim = Simulator.from_scenario("small", seed=1)
    oid = sim.orchestration_ids()[0]
    created = sim.get_orchestration(oid)
    assert (created["state"], created["description"]) == (PENDING, "queued for processing")
    assert created["operationStats"] == {"failed": 0}
    assert "kubernetes" not in created["parameters"]
    sim.advance(15)
    started = sim.get_orchestration(oid)
    assert (started["state"], started["description"]) == (IN_PROGRESS, "Scheduled 12 operations")
    assert started["updatedAt"] == created["updatedAt"] == created["createdAt"]
    assert started["parameters"]["kubernetes"] == {
        "kubernetesVersion": "1.28.9",
        "machineImage": "",
        "machineImageVersion": "",
    }
    sim.run_until_finished()
    done = sim.get_orchestration(oid)
    assert done["state"] == SUCCEEDED
    assert done["updatedAt"] != created["updatedAt"]
    assert sim.truth(oid)[-1].time == parse_keb_time(done["updatedAt"])


def test_operations_walk_through_the_documented_descriptions() -> None:
    sim = Simulator.from_scenario("small", seed=1)
    sim.run_until_finished()
    for seq in by_operation(sim.truth(sim.orchestration_ids()[0])).values():
        assert [(e.to_state, e.description) for e in seq] == [
            (PENDING, "Operation created"),
            (IN_PROGRESS, "Operation created"),
            (IN_PROGRESS, "cluster upgrade in progress"),
            (IN_PROGRESS, "Performing post-upgrade tasks"),
            (SUCCEEDED, "Operation succeeded"),
        ]


def test_workers_bound_parallelism_and_operations_start_in_creation_order() -> None:
    sim = Simulator.from_scenario("small", seed=4)
    sim.run_until_finished()
    events = sim.truth(sim.orchestration_ids()[0])
    assert max_parallel(events) == 3
    created = [e.operation_id for e in events if e.from_state is None and e.operation_id]
    started = [e.operation_id for e in events if e.from_state == PENDING and e.operation_id]
    assert started == created


def test_cancel_flow_keeps_running_operations_and_cancels_pending_ones() -> None:
    sim = Simulator.from_scenario("cancel", seed=5)
    oid = sim.orchestration_ids()[0]
    canceling_seen = None
    while not sim.all_finished():
        sim.advance(20)
        body = sim.get_orchestration(oid)
        if body["state"] == CANCELING and canceling_seen is None:
            canceling_seen = body
    assert canceling_seen is not None
    assert canceling_seen["description"] == "Orchestration was canceled"
    done = sim.get_orchestration(oid)
    assert (done["state"], done["description"]) == (CANCELED, "Orchestration was canceled")
    assert parse_keb_time(done["updatedAt"]) > parse_keb_time(canceling_seen["updatedAt"])  # type: ignore[operator]
    ops = all_operations(sim, oid)
    finished = Counter(op["state"] for op in ops)
    assert finished[SUCCEEDED] >= 15  # canceled once ~25% were done
    assert finished[CANCELED] == 60 - finished[SUCCEEDED]
    assert {op["description"] for op in ops if op["state"] == CANCELED} == {
        "Operation was canceled"
    }
    for seq in by_operation(sim.truth(oid)).values():  # nothing went from in progress to canceled
        assert seq[-1].to_state != CANCELED or seq[-2].to_state == PENDING
    assert_truth_consistent(sim, oid)


def test_cancel_is_idempotent_and_ignored_when_terminal() -> None:
    sim = Simulator.from_scenario("small", seed=1)
    oid = sim.orchestration_ids()[0]
    sim.cancel(oid)  # while still pending: no operations get created
    first = sim.get_orchestration(oid)
    assert first["state"] == CANCELING
    sim.advance(5)
    sim.cancel(oid)
    assert sim.get_orchestration(oid)["updatedAt"] == first["updatedAt"]
    sim.run_until_finished()
    done = sim.get_orchestration(oid)
    assert done["state"] == CANCELED
    assert done["operationStats"] == {"failed": 0}
    sim.cancel(oid)
    assert sim.get_orchestration(oid) == done
    with pytest.raises(SimNotFound, match="while canceling orchestration x: while getting"):
        sim.cancel("x")


def test_retry_flow_appends_new_operations_and_succeeds() -> None:
    sim = Simulator.from_scenario("retry", seed=6)
    oid = sim.orchestration_ids()[0]
    seen: dict[str, dict[str, Any]] = {}
    while not sim.all_finished():
        sim.advance(10)
        body = sim.get_orchestration(oid)
        seen.setdefault(body["state"], body)
    assert seen[FAILED]["description"] == "Scheduled 20 operations"
    assert seen[FAILED]["operationStats"] == {"failed": 3, "succeeded": 17}
    retrying = seen[RETRYING]
    assert retrying["description"] == "Scheduled 20 operations, retrying"
    assert len(retrying["parameters"]["retryoperation"]["retryoperations"]) == 3
    assert retrying["updatedAt"] != seen[FAILED]["updatedAt"]
    done = sim.get_orchestration(oid)
    assert done["state"] == SUCCEEDED
    assert done["description"] == "Scheduled 20 operations, retried 3 operations"
    assert done["parameters"]["retryoperation"] == {}
    ops = all_operations(sim, oid)
    assert len(ops) == 23
    old, new = ops[:20], ops[20:]
    failed_runtimes = [op["runtimeID"] for op in old if op["state"] == FAILED]
    assert [op["runtimeID"] for op in new] == failed_runtimes
    assert all(op["state"] == SUCCEEDED for op in new)
    assert not {op["operationID"] for op in new} & {op["operationID"] for op in old}
    for op in new:  # raw shoot windows of retried operations carry year 0 (§3.5)
        assert op["maintenanceWindowBegin"].startswith("0000-01-01T")
        assert Operation.from_json(op).window.daily is not None
    # Old failed rows stay, but per-instance de-duplication clears them (§3.4).
    assert done["operationStats"] == {"failed": 0, "succeeded": 20}
    assert_truth_consistent(sim, oid)


def test_an_in_progress_retry_runs_in_a_second_worker_pool() -> None:
    spec = ScenarioSpec(
        "t",
        "an early failure while others still wait for the single worker",
        (OrchestrationSpec(ops=6, workers=1, failure_rate=0.2, duration=(100, 100)),),
        spare_runtimes=0,
    )
    sim = Simulator(spec, seed=2)
    oid = sim.orchestration_ids()[0]
    while not any(op["state"] == FAILED for op in all_operations(sim, oid)):
        sim.advance(10)
    failed = next(op for op in all_operations(sim, oid) if op["state"] == FAILED)
    response = sim.retry(oid, [failed["operationID"], "no-such-op"])
    assert response["retryShoots"] == [failed["shootName"]]
    assert response["invalidOperations"] == ["no-such-op"]
    assert response["msg"] == "retry operations are queued for processing"
    sim.advance(59)
    assert sim.get_orchestration(oid)["operationStats"]["failed"] == 1
    sim.advance(2)  # picked up: a second worker pool runs it at once, beyond workers (§12.10)
    ops = all_operations(sim, oid)
    retried = ops[-1]
    assert (retried["runtimeID"], retried["state"]) == (failed["runtimeID"], IN_PROGRESS)
    assert sum(op["state"] == IN_PROGRESS for op in ops) == 2
    stats = sim.get_orchestration(oid)["operationStats"]
    assert stats.get("pending", 0) == sum(op["state"] == PENDING for op in ops)
    assert stats["failed"] == 0  # in progress clears it, the failed row is still listed
    assert sum(op["state"] == FAILED for op in all_operations(sim, oid)) == 1
    sim.run_until_finished()
    assert sim.get_orchestration(oid)["operationStats"] == {"failed": 0, "succeeded": 6}


def test_retry_responses_follow_keb() -> None:
    sim = Simulator.from_scenario("retry", seed=6)
    oid = sim.orchestration_ids()[0]
    nothing = sim.retry(oid, ["no-such-op"])
    assert nothing == {
        "orchestrationID": oid,
        "retryShoots": None,
        "oldOperations": None,
        "invalidOperations": ["no-such-op"],
        "msg": f"No valid operations to retry for orchestration {oid}",
    }
    while sim.get_orchestration(oid)["state"] != FAILED:
        sim.advance(30)
    failed = [op["operationID"] for op in all_operations(sim, oid) if op["state"] == FAILED]
    first = sim.retry(oid, failed[:1])
    assert len(first["retryShoots"]) == 1
    assert first["oldOperations"] is None
    sim.run_until_finished()  # scripted retry of the remaining ones runs as well
    assert sim.get_orchestration(oid)["state"] == SUCCEEDED
    with pytest.raises(SimNotFound, match=f"while retrying orchestration {oid[:4]}x"):
        sim.retry(oid[:4] + "x")


def test_old_operations_are_reported_when_a_newer_one_exists() -> None:
    spec = ScenarioSpec(
        "t",
        "two failures, retry twice",
        (
            OrchestrationSpec(
                ops=2, workers=2, failure_rate=1.0, retry_failure_rate=1.0, duration=(50, 50)
            ),
        ),
        spare_runtimes=0,
    )
    sim = Simulator(spec, seed=1)
    oid = sim.orchestration_ids()[0]
    sim.run_until_finished()
    first_failed = [op["operationID"] for op in all_operations(sim, oid)]
    sim.retry(oid)
    sim.run_until_finished()
    assert sim.get_orchestration(oid)["state"] == FAILED
    response = sim.retry(oid)
    assert response["oldOperations"] == first_failed
    assert len(response["retryShoots"]) == 2
    assert sim.get_orchestration(oid)["description"].endswith(", retried 2 operations, retrying")


def test_retry_on_canceled_orchestration_is_500() -> None:
    spec = ScenarioSpec(
        "t",
        "fails then is canceled while retrying",
        (OrchestrationSpec(ops=2, workers=2, failure_rate=1.0, duration=(50, 50)),),
        spare_runtimes=0,
    )
    sim = Simulator(spec, seed=1)
    oid = sim.orchestration_ids()[0]
    sim.run_until_finished()
    sim.retry(oid)
    sim.cancel(oid)
    with pytest.raises(SimApiError) as err:
        sim.retry(oid)
    assert err.value.status == 500
    assert err.value.message == f"orchestration {oid} was canceled right before retrying"
    sim.run_until_finished()
    assert sim.get_orchestration(oid)["state"] == CANCELED


def test_retry_of_in_progress_orchestration_appends_description_on_pickup() -> None:
    spec = ScenarioSpec(
        "t",
        "an early failure while others still run",
        (OrchestrationSpec(ops=6, workers=1, failure_rate=0.2, duration=(100, 100)),),
        spare_runtimes=0,
    )
    sim = Simulator(spec, seed=2)
    oid = sim.orchestration_ids()[0]
    while not any(op["state"] == FAILED for op in all_operations(sim, oid)):
        sim.advance(10)
    assert sim.get_orchestration(oid)["state"] == IN_PROGRESS
    sim.retry(oid)
    assert sim.get_orchestration(oid)["description"] == "Scheduled 6 operations"
    sim.advance(61)
    assert sim.get_orchestration(oid)["description"] == (
        "Scheduled 6 operations, retried 1 operations"
    )
    sim.run_until_finished()
    assert sim.get_orchestration(oid)["state"] == SUCCEEDED
    assert len(all_operations(sim, oid)) == 7


def test_maintenance_windows_delay_operations() -> None:
    sim = Simulator.from_scenario("maintenance", seed=7)
    oid = sim.orchestration_ids()[0]
    sim.advance(120)
    ops = all_operations(sim, oid)
    states = Counter(op["state"] for op in ops)
    assert states[PENDING] >= 20  # most windows begin in later hours
    begins = {parse_keb_time(op["maintenanceWindowBegin"]) for op in ops}
    assert len(begins) == 5
    assert None not in begins
    assert sim.get_orchestration(oid)["parameters"]["strategy"]["maintenanceWindow"] is True
    sim.run_until_finished()
    window = {op["operationID"]: parse_keb_time(op["maintenanceWindowBegin"]) for op in ops}
    for op_id, seq in by_operation(sim.truth(oid)).items():
        start = next(e.time for e in seq if e.to_state == IN_PROGRESS)
        assert start >= window[op_id]  # type: ignore[operator]
    assert sim.get_orchestration(oid)["state"] == SUCCEEDED


def test_delete_operation_vanishes_from_lists_and_truth() -> None:
    sim = Simulator.from_scenario("small", seed=1)
    oid = sim.orchestration_ids()[0]
    sim.advance(60)
    ops = all_operations(sim, oid)
    running = next(op for op in ops if op["state"] == IN_PROGRESS)
    sim.delete_operation(oid, running["operationID"])
    assert len(all_operations(sim, oid)) == 11
    gone = [e for e in sim.truth(oid) if e.operation_id == running["operationID"]][-1]
    assert (gone.from_state, gone.to_state) == (IN_PROGRESS, "vanished")
    assert Counter(op["state"] for op in all_operations(sim, oid))[IN_PROGRESS] == 3  # freed
    with pytest.raises(SimNotFound, match=r"Operation with id .* not exist"):
        sim.get_operation(oid, running["operationID"])
    with pytest.raises(SimNotFound):
        sim.delete_operation(oid, running["operationID"])
    sim.run_until_finished()
    assert sim.get_orchestration(oid)["state"] == SUCCEEDED
    assert_truth_consistent(sim, oid)


# --- POST /upgrade/cluster ------------------------------------------------------------------

UPGRADE = {
    "targets": {"include": [{"target": "all"}]},
    "strategy": {"type": "parallel", "schedule": "immediate", "parallel": {"workers": 4}},
}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "while validating target: targets.include array must be not empty"),
        (
            {"targets": {"include": []}, "strategy": {"schedule": "now"}},
            "while validating target: targets.include array must be not empty",
        ),
        (
            {
                "targets": {"include": [{"target": "all"}]},
                "strategy": {"schedule": "maintenanceWindow"},
            },
            'found deprecated value: {"strategy":{"schedule": "maintenanceWindow"} is deprecated '
            'use {"strategy":{"MaintenanceWindow": true} instead',
        ),
        (
            {"targets": {"include": [{"target": "all"}]}, "strategy": {}},
            "found deprecated value: the schedule filed does not contain 'imediate'/'now' nor is "
            'a date: parsing time "" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "2006"',
        ),
        (
            {"targets": {"include": [{"target": 5}]}},
            "while decoding request body: json: cannot unmarshal number into Go struct field "
            "RuntimeTarget.targets.include.target of type string",
        ),
        (
            {
                "targets": {"include": [{"target": "all"}]},
                "strategy": {"parallel": {"workers": 1.5}},
            },
            "while decoding request body: json: cannot unmarshal number 1.5 into Go struct field "
            "ParallelStrategySpec.strategy.parallel.workers of type int",
        ),
        (
            [],
            "while decoding request body: json: cannot unmarshal array into Go value of type "
            "orchestration.Parameters",
        ),
    ],
)
def test_upgrade_validation_texts(body: object, message: str) -> None:
    sim = Simulator.from_scenario("small")
    with pytest.raises(SimApiError) as err:
        sim.create_upgrade(body)
    assert (err.value.status, err.value.message) == (400, message)


def test_upgrade_resolves_targets_against_the_inventory() -> None:
    sim = Simulator.from_scenario("small", seed=1)
    sim.run_until_finished()
    scenario_ops = all_operations(sim, sim.orchestration_ids()[0])
    sample = scenario_ops[0]

    def count(include: list[dict[str, str]], exclude: list[dict[str, str]] | None = None) -> int:
        body: dict[str, Any] = {**UPGRADE, "targets": {"include": include}}
        if exclude:
            body["targets"]["exclude"] = exclude
        oid = sim.create_upgrade(body)
        sim.advance(10)
        return int(sim.get_orchestration(oid)["description"].split()[1])

    total = 12 + SCENARIOS["small"].spare_runtimes
    assert count([{"target": "all"}]) == total
    assert count([{"runtimeID": sample["runtimeID"], "planName": "nope"}]) == 1
    assert count([{"shoot": sample["shootName"]}]) == 1
    assert count([{"globalAccount": sample["globalAccountID"][:8]}]) == 12
    assert count([{"globalAccount": sample["globalAccountID"], "planName": "azure"}]) == 4
    assert count([{"target": "all"}], [{"globalAccount": sample["globalAccountID"]}]) == total - 12
    west = count([{"region": "west"}])  # unanchored regex: westeurope and europe-west3
    assert 0 < count([{"region": "^westeurope$"}]) < west < total
    assert count([{"region": "^westeurope$"}, {"region": "west"}]) == west  # de-duplicated
    assert count([{"target": "some"}]) == 0
    assert count([{"globalAccount": "("}]) == 0


def test_upgrade_with_no_match_succeeds_and_dry_run_succeeds_with_its_text() -> None:
    sim = Simulator.from_scenario("small", seed=1)
    empty = sim.create_upgrade({**UPGRADE, "targets": {"include": [{"shoot": "c-none"}]}})
    dry = sim.create_upgrade({**UPGRADE, "dryRun": True, "notification": True})
    stored = sim.get_orchestration(dry)["parameters"]
    assert list(stored) == ["targets", "strategy", "dryRun", "retryoperation", "notification"]
    assert stored["strategy"] == {
        "type": "parallel",
        "schedule": "immediate",
        "ScheduleTime": "0001-01-01T00:00:00Z",
        "parallel": {"workers": 4},
    }
    sim.advance(3600)
    assert sim.get_orchestration(empty)["state"] == SUCCEEDED
    assert sim.get_orchestration(empty)["description"] == "Scheduled 0 operations"
    ops = all_operations(sim, dry)
    assert {(op["state"], op["description"], op["dryRun"]) for op in ops} == {
        (SUCCEEDED, "dry run succeeded", True)
    }
    assert all(op["maintenanceWindowBegin"] == "0001-01-01T00:00:00Z" for op in ops)


def test_future_schedule_waits_and_zero_workers_never_start() -> None:
    sim = Simulator.from_scenario("small", seed=1)
    later = sim.now + timedelta(hours=1)
    scheduled = sim.create_upgrade(
        {
            **UPGRADE,
            "strategy": {
                "type": "parallel",
                "schedule": later.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "parallel": {"workers": 2},
            },
        }
    )
    stuck = sim.create_upgrade({**UPGRADE, "strategy": {"type": "parallel", "schedule": "now"}})
    sim.advance(600)
    waiting = sim.get_orchestration(scheduled)
    assert (waiting["state"], waiting["description"]) == (PENDING, "Scheduled 36 operations")
    assert waiting["parameters"]["strategy"]["ScheduleTime"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert {op["maintenanceWindowBegin"] for op in all_operations(sim, scheduled)} == {
        later.strftime("%Y-%m-%dT%H:%M:%SZ")
    }
    sim.advance(3600)
    assert sim.get_orchestration(scheduled)["state"] in (IN_PROGRESS, SUCCEEDED)
    assert sim.get_orchestration(stuck)["state"] == IN_PROGRESS
    assert {op["state"] for op in all_operations(sim, stuck)} == {PENDING}


# --- determinism, clock, performance ---------------------------------------------------------


def snapshot(sim: Simulator) -> str:
    parts: list[Any] = [sim.list_orchestrations()]
    for oid in sim.orchestration_ids():
        parts.append(sim.get_orchestration(oid))
        ops = all_operations(sim, oid)
        parts.append(ops)
        parts.extend(sim.get_operation(oid, op["operationID"]) for op in ops[:5])
        parts.append([e.to_json() for e in sim.truth(oid)])
    return json.dumps(parts)


def test_same_seed_and_calls_give_identical_worlds() -> None:
    def play(seed: int) -> str:
        sim = Simulator.from_scenario("demo", seed=seed)
        out = [snapshot(sim)]
        for step in (90.0, 400.0, 1234.5, 3600.0):
            sim.advance(step)
            out.append(snapshot(sim))
        return "".join(out)

    assert play(11) == play(11)
    assert play(11) != play(12)


def test_accelerated_clock_runs_without_advance() -> None:
    fake = [100.0]
    sim = Simulator(SCENARIOS["small"], seed=1, speed=60.0, clock=lambda: fake[0])
    start = sim.now
    fake[0] += 10.0  # 10 real seconds = 10 virtual minutes
    assert sim.now - start == timedelta(minutes=10)
    assert sim.get_orchestration(sim.orchestration_ids()[0])["state"] == IN_PROGRESS
    sim.advance(3600)  # jumps the running clock
    assert sim.all_finished()


def test_large_scenario_has_40_orchestrations_of_2000_operations_and_pages() -> None:
    """Its speed is what benchmarks/poll_process.py measures (it starts this scenario); a
    timed assertion here would only measure how busy the machine is."""
    sim = Simulator.from_scenario("large", seed=1)
    ids = sim.orchestration_ids()
    assert len(ids) == 40
    assert {sim.get_orchestration(i)["state"] for i in ids} == {IN_PROGRESS}
    page = sim.list_operations(ids[-1], page=20, page_size=100)
    assert (page["count"], page["totalCount"]) == (100, 2000)
    stats = sim.get_orchestration(ids[0])["operationStats"]
    assert stats == {"failed": 0, "in progress": 50, "pending": 1950}


def test_scripted_action_needs_exactly_one_trigger() -> None:
    with pytest.raises(ValueError, match="exactly one trigger"):
        ScriptedAction("cancel")
    with pytest.raises(ValueError, match="exactly one trigger"):
        ScriptedAction("cancel", at=1.0, after_terminal=2.0)


def test_scripted_action_at_a_time() -> None:
    spec = ScenarioSpec(
        "t",
        "cancel at 08:05",
        (OrchestrationSpec(ops=10, workers=1, actions=(ScriptedAction("cancel", at=300.0),)),),
    )
    sim = Simulator(spec, seed=1)
    oid = sim.orchestration_ids()[0]
    sim.advance(299)
    assert sim.get_orchestration(oid)["state"] == IN_PROGRESS
    sim.advance(2)
    assert sim.get_orchestration(oid)["state"] == CANCELING
    sim.run_until_finished()
    assert sim.get_orchestration(oid)["state"] == CANCELED


def test_advance_counts_operation_state_changes() -> None:
    sim = Simulator.from_scenario("small", seed=1)
    assert sim.advance(0) == 0
    assert sim.advance(15) == 12 + 3  # 12 created, 3 started
    with pytest.raises(ValueError, match="negative"):
        sim.advance(-1)


# --- tokens and fault rules -----------------------------------------------------------------


def test_tokens_and_gateway_verdicts() -> None:
    claims = decode_claims(make_token(login_name="jdoe"))
    assert claims["groups"] == ["orchestrationsAdmin"]
    assert claims["login_name"] == "jdoe"
    past = make_token(exp=parse_keb_time("2020-01-01T00:00:00Z"))
    assert check_authorization(f"Bearer {make_token()}") is TokenCheck.OK
    assert check_authorization(f"Bearer {make_token(exp=None)}") is TokenCheck.OK
    assert check_authorization(f"Bearer {past}") is TokenCheck.EXPIRED
    assert check_authorization(f"Bearer {make_token(groups=['x'])}") is TokenCheck.NO_GROUP
    assert check_authorization("Bearer not-a-jwt") is TokenCheck.INVALID
    assert check_authorization(None) is TokenCheck.MISSING
    assert check_authorization(f"Basic {make_token()}") is TokenCheck.MISSING
    assert gateway_reply(TokenCheck.EXPIRED, protected=False) == (401, "Jwt is expired")
    assert gateway_reply(TokenCheck.MISSING, protected=True) == (403, "RBAC: access denied")
    assert gateway_reply(TokenCheck.MISSING, protected=False) is None


def test_fault_rules_count_down_and_validate() -> None:
    faults = Faults(seed=1)
    faults.inject("5xx", count=2, path_prefix="/orchestrations")
    assert faults.take("/upgrade/cluster") is None
    assert [f.kind if f else None for f in (faults.take("/orchestrations") for _ in range(3))] == [
        "5xx",
        "5xx",
        None,
    ]
    faults.inject("rbac", count=None, probability=0.5)
    fired = sum(faults.take("/x") is not None for _ in range(200))
    assert 60 < fired < 140
    faults.clear()
    assert faults.active() == []
    with pytest.raises(ValueError, match="unknown fault kind 'boom'"):
        faults.inject("boom")
    with pytest.raises(ValueError, match="probability"):
        faults.inject("5xx", probability=2.0)


def test_the_large_scenario_spreads_pickups_by_maintenance_window() -> None:
    """The benchmarks' scenario: pickups all over the pending list (docs/keb-api.md §12.1)."""
    specs = SCENARIOS["large"].orchestrations
    assert all(s.maintenance_window and set(s.window_hours or ()) == set(range(24)) for s in specs)
    sim = Simulator.from_scenario("large", seed=1)
    oid = sim.orchestration_ids()[0]
    sim.advance(3 * 3600)
    states = [op["state"] for op in all_operations(sim, oid)]
    moved = [i for i, state in enumerate(states) if state != PENDING]
    assert moved
    assert len(moved) < max(moved) // 2  # not the head of the list: gaps everywhere
