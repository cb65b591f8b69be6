"""Real KEB JSON never crashes the models: every sample parses, odd times are tolerated."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from watcher.core.models import (
    MaintenanceWindow,
    Operation,
    OperationDetail,
    Orchestration,
    format_keb_time,
    operation_stats,
    parse_keb_time,
    parse_page,
    parse_time_of_day,
)
from watcher.errors import KebResponseError

#: Real-shaped KEB responses (docs/keb-api.md §10), kept with the tests.
SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> object:
    return json.loads((SAMPLES / name).read_text())


def all_samples(prefix: str) -> list[str]:
    names = sorted(p.name for p in SAMPLES.glob(f"{prefix}-*.json"))
    assert names, f"no samples named {prefix}-* in {SAMPLES}"
    return names


@pytest.mark.parametrize("name", all_samples("get-orchestration"))
def test_every_orchestration_sample_parses(name: str) -> None:
    orch = Orchestration.from_json(sample(name))
    assert orch.orchestration_id
    assert orch.to_json()["orchestrationID"] == orch.orchestration_id
    # Nothing is dropped: every key KEB sent survives a round trip.
    raw = sample(name)
    assert isinstance(raw, dict)
    assert set(raw) <= set(orch.to_json())


@pytest.mark.parametrize("name", all_samples("list-orchestrations"))
def test_every_orchestration_list_sample_parses(name: str) -> None:
    data = sample(name)
    if isinstance(data, dict) and "data" not in data:  # a single legacy item
        Orchestration.from_json(data)
        return
    page = parse_page(data, Orchestration.from_json, "orchestrations")
    assert page.count == len(page.items)
    assert page.total_count >= page.count


@pytest.mark.parametrize("name", all_samples("list-operations"))
def test_every_operation_list_sample_parses(name: str) -> None:
    page = parse_page(sample(name), Operation.from_json, "operations")
    for op in page.items:
        assert op.operation_id
        assert set(op.to_json()) >= {"operationID", "state", "maintenanceWindowBegin"}


@pytest.mark.parametrize("name", all_samples("get-operation"))
def test_every_operation_detail_sample_parses(name: str) -> None:
    detail = OperationDetail.from_json(sample(name))
    assert detail.operation.operation_id
    assert detail.cluster_config is not None or detail.kyma_config is not None


@pytest.mark.parametrize("name", all_samples("mutation"))
def test_mutation_samples_are_json_objects(name: str) -> None:
    assert isinstance(sample(name), dict)


def test_stats_and_states_from_samples() -> None:
    orch = Orchestration.from_json(sample("get-orchestration-01-synth.json"))
    assert orch.operation_stats == {"failed": 2, "in progress": 5, "pending": 100, "succeeded": 13}
    assert orch.workers == 5
    assert orch.uses_maintenance_window
    assert orch.kubernetes_version == "1.28.9"
    assert orch.created_at == datetime(2024, 5, 14, 8, 0, 3, 512345, tzinfo=UTC)
    legacy = Orchestration.from_json(sample("list-orchestrations-04-synth.json"))
    assert legacy.uses_maintenance_window  # schedule "maintenanceWindow"


def test_doc_operation_without_state_is_kept() -> None:
    page = parse_page(sample("list-operations-04-doc.json"), Operation.from_json, "operations")
    op = page.items[0]
    assert op.state == ""
    assert op.window.daily == (time(4, 0), time(8, 0))
    assert op.window.describe() == "daily 04:00-08:00 UTC"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-14T08:00:03.512345Z", datetime(2024, 5, 14, 8, 0, 3, 512345, tzinfo=UTC)),
        ("2024-05-14T08:00:03.512345678Z", datetime(2024, 5, 14, 8, 0, 3, 512345, tzinfo=UTC)),
        ("2024-05-20T12:00:00.5Z", datetime(2024, 5, 20, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2024-05-14T10:00:00+02:00", datetime(2024, 5, 14, 8, 0, tzinfo=UTC)),
        ("0000-01-01T04:00:00Z", None),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        ("yesterday", None),
        (None, None),
        (12, None),
        ("2024-02-30T00:00:00Z", None),
    ],
)
def test_parse_keb_time(raw: object, expected: datetime | None) -> None:
    assert parse_keb_time(raw) == expected


def test_year_zero_windows_crossing_midnight_and_offsets() -> None:
    assert parse_time_of_day("0000-01-01T22:00:00Z") == time(22, 0)
    assert parse_time_of_day("0000-01-01T01:00:00+02:00") == time(23, 0)
    assert parse_time_of_day("2024-01-01T01:00:00Z") is None
    window = MaintenanceWindow("0000-01-01T22:00:00Z", "0000-01-01T02:00:00Z")
    assert window.describe() == "daily 22:00-02:00 UTC"
    assert MaintenanceWindow("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z").describe() == "none"


def test_format_keb_time_matches_go() -> None:
    assert format_keb_time(datetime(2024, 5, 20, 12, 0, 0, 500000, tzinfo=UTC)) == (
        "2024-05-20T12:00:00.5Z"
    )
    assert format_keb_time(datetime(2024, 5, 20, 12, tzinfo=UTC)) == "2024-05-20T12:00:00Z"


def test_unknown_fields_and_states_are_kept() -> None:
    op = Operation.from_json({"operationID": "x", "state": "hibernating", "newField": [1, 2]})
    assert op.state == "hibernating"
    assert op.extra == {"newField": [1, 2]}
    assert op.to_json()["newField"] == [1, 2]


@pytest.mark.parametrize("bad", [[], "x", {"state": "pending"}, {"operationID": ""}])
def test_malformed_operation_is_a_response_error(bad: object) -> None:
    with pytest.raises(KebResponseError):
        Operation.from_json(bad)


def test_operation_stats_deduplicates_failed_per_instance() -> None:
    # KEB: a pending retry does not clear the failure; in progress or succeeded does.
    assert operation_stats([("r1", "failed"), ("r1", "pending")]) == {"failed": 1, "pending": 1}
    assert operation_stats([("r1", "failed"), ("r1", "in progress")]) == {
        "failed": 0,
        "in progress": 1,
    }
    assert operation_stats([("r1", "failed"), ("r1", "failed")]) == {"failed": 1}
    assert operation_stats([]) == {"failed": 0}
