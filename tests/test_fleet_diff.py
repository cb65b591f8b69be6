"""The pure fleet diff: table-driven calls on values."""

from __future__ import annotations

from datetime import UTC, datetime

from watcher.core.fleet import FleetOperation, FleetRuntime, Selection
from watcher.core.fleet_diff import (
    FleetChange,
    FleetObservation,
    RuntimeRecord,
    failures,
    fleet_diff,
)
from watcher.core.followed import Followed, SourceKind, failure_digest

NOW = datetime(2026, 8, 21, 12, tzinfo=UTC)


def op(op_id: str, kind: str, state: str, reason: str = "") -> FleetOperation:
    return FleetOperation(op_id, kind, state, reason=reason)


def runtime(iid: str, *ops: FleetOperation, runtime_id: str = "r1") -> FleetRuntime:
    return FleetRuntime(iid, runtime_id=runtime_id, shoot="c1", subaccount_id="sa", operations=ops)


def record(iid: str, *ops: FleetOperation, runtime_id: str = "r1") -> RuntimeRecord:
    return RuntimeRecord(iid, runtime_id, "c1", "sa", operations={o.operation_id: o for o in ops})


def changes(prev: dict[str, RuntimeRecord], obs: FleetObservation) -> list[tuple[str, str, str]]:
    result = fleet_diff("sel", prev, obs, NOW)
    return [(t.change.value, t.operation_id, t.to_state) for t in result.transitions]


def test_baseline_records_everything_and_announces_nothing() -> None:
    obs = FleetObservation({"i1": runtime("i1", op("p", "provisioning", "in progress"))})
    result = fleet_diff("sel", {}, obs, NOW, baseline=True)
    assert result.transitions == []
    assert result.records["i1"].operations["p"].state == "in progress"


def test_operations_appear_change_and_end_once() -> None:
    prev = {"i1": record("i1", op("u1", "update", "pending"))}
    obs = FleetObservation(
        {"i1": runtime("i1", op("u1", "update", "in progress"), op("u2", "update", "failed", "q"))}
    )
    assert changes(prev, obs) == [
        ("operation_changed", "u1", "in progress"),
        ("operation_appeared", "u2", "failed"),
        ("operation_ended", "u2", "failed"),
    ]
    result = fleet_diff("sel", prev, obs, NOW)
    assert [f.reason for f in failures(result.transitions)] == ["q"]
    again = fleet_diff("sel", result.records, obs, NOW)
    assert again.transitions == []


def test_states_never_go_backwards() -> None:
    prev = {"i1": record("i1", op("u1", "update", "succeeded"), op("u2", "update", "in progress"))}
    obs = FleetObservation(
        {"i1": runtime("i1", op("u1", "update", "in progress"), op("u2", "update", "pending"))}
    )
    result = fleet_diff("sel", prev, obs, NOW)
    assert result.transitions == []
    assert result.records["i1"].operations["u1"].state == "succeeded"
    assert result.records["i1"].operations["u2"].state == "in progress"


def test_suspension_and_unsuspension_keep_the_instance() -> None:
    prev = {"i1": record("i1", op("s", "suspension", "in progress"))}
    suspended = FleetObservation(
        {"i1": runtime("i1", op("s", "suspension", "succeeded"), runtime_id="")}
    )
    assert changes(prev, suspended) == [
        ("operation_ended", "s", "succeeded"),
        ("suspended", "s", "succeeded"),
    ]
    prev = fleet_diff("sel", prev, suspended, NOW).records
    back = FleetObservation(
        {"i1": runtime("i1", op("un", "unsuspension", "succeeded"), runtime_id="r2")}
    )
    result = fleet_diff("sel", prev, back, NOW)
    assert [t.change for t in result.transitions][-1] is FleetChange.UNSUSPENDED
    assert result.transitions[-1].runtime_id == "r2"
    assert result.records["i1"].runtime_id == "r2"


def test_deprovisioning_is_a_success_only_when_the_archive_says_so() -> None:
    prev = {"i1": record("i1", op("d", "deprovisioning", "in progress"))}
    absent = FleetObservation({}, complete=True)
    result = fleet_diff("sel", prev, absent, NOW)
    assert result.transitions == []  # merely absent: never "vanished"
    assert "i1" in result.records
    confirmed = FleetObservation({}, deprovisioned=frozenset({"i1"}))
    assert changes(prev, confirmed) == [
        ("operation_ended", "d", "succeeded"),
        ("deprovisioned", "", ""),
    ]
    assert "i1" not in fleet_diff("sel", prev, confirmed, NOW).records


def test_an_open_operation_pushed_out_of_the_detailed_lists_ended_unseen() -> None:
    prev = {"i1": record("i1", op("u1", "update", "in progress"))}
    shown = runtime("i1", op("u2", "update", "succeeded"), op("u3", "update", "in progress"))
    not_detailed = FleetObservation({"i1": shown})
    assert ("operation_ended", "u1", "unknown") not in changes(prev, not_detailed)
    detailed = FleetObservation({"i1": shown}, detailed=frozenset({"i1"}))
    assert ("operation_ended", "u1", "unknown") in changes(prev, detailed)


def test_an_unreadable_runtime_is_reported_once() -> None:
    obs = FleetObservation({"i1": runtime("i1")}, unreadable=frozenset({"i1"}))
    first = fleet_diff("sel", {"i1": record("i1")}, obs, NOW)
    assert [t.change for t in first.transitions] == [FleetChange.UNREADABLE]
    assert fleet_diff("sel", first.records, obs, NOW).transitions == []


def test_selection_params_repeat_and_followed_metadata() -> None:
    sel = Selection("eu", accounts=("a", "b"), instances=("i",))
    assert sel.params() == (("account", "a"), ("account", "b"), ("instance_id", "i"))
    assert sel.matches(FleetRuntime("i", global_account_id="b"))
    assert not sel.matches(FleetRuntime("i", global_account_id="c"))
    assert Followed(SourceKind.SELECTION, "eu").metadata() == {"fleet": "eu"}


def test_failure_digest_names_shoot_subaccount_and_instance() -> None:
    prev = {
        "i1": record("i1", op("p", "provisioning", "in progress")),
        "i2": record("i2", op("u", "update", "in progress")),
    }
    obs = FleetObservation(
        {
            "i1": runtime("i1", op("p", "provisioning", "failed", "quota")),
            "i2": runtime("i2", op("u", "update", "failed", "quota")),
        }
    )
    digest = failure_digest(failures(fleet_diff("sel", prev, obs, NOW).transitions))
    assert digest[0]["reason"] == "quota"
    assert digest[0]["count"] == 2
    assert {
        (e["kind"], e["instance_id"], e["shoot"], e["subaccount_id"]) for e in digest[0]["examples"]
    } == {
        ("provisioning", "i1", "c1", "sa"),
        ("update", "i2", "c1", "sa"),
    }


def test_fleet_notifications_render_keb_text_inert() -> None:
    """A selection's card and digest go through the same inert rendering as an
    orchestration's: KEB text makes no mention, link, formatting or new line in Slack."""
    from watcher.core.fleet_policy import fleet_intents
    from watcher.notify.render import Renderer

    hostile = "<!channel> *boom*\n# header <https://evil.example|click>"
    prev = {"i1": record("i1", op("u", "update", "in progress"))}
    obs = FleetObservation({"i1": runtime("i1", op("u", "update", "failed", hostile))})
    result = fleet_diff("sel", prev, obs, NOW)
    intents = fleet_intents(
        "sel", None, result.records, result.transitions, baseline=False, now=NOW
    )
    assert [i.kind for i in intents] == ["failure_digest", "progress"]
    assert {i.orchestration_id for i in intents} == {"fleet:sel"}
    renderer = Renderer()
    for intent in intents:
        rendered = renderer.render(intent.kind, intent.payload)
        assert rendered.error is None
        text = str(rendered.message.blocks) + rendered.message.text
        assert "fleet sel" in text
        assert "<!channel>" not in text
        assert "<https://evil" not in text
        assert "*boom*" not in text
    digest = renderer.render("failure_digest", intents[0].payload).message
    assert "c1" in str(digest.blocks)  # the shoot
    assert "i1" in str(digest.blocks)  # the instance
    assert "sa" in str(digest.blocks)  # the subaccount


def test_fleet_metadata_names_the_selection() -> None:
    from watcher.notify.slack import metadata

    assert metadata("progress", "k", "fleet:eu")["event_payload"] == {
        "fleet": "eu",
        "kind": "progress",
        "key": "k",
    }
    assert metadata("progress", "k", "o-1")["event_payload"]["orchestration_id"] == "o-1"


def test_an_old_ended_operation_first_shown_by_a_detailed_read_is_history() -> None:
    from datetime import timedelta

    old = FleetOperation("u1", "update", "succeeded", created_at=NOW - timedelta(days=3))
    newer = FleetOperation("u2", "update", "in progress", created_at=NOW - timedelta(hours=1))
    prev = {"i1": record("i1", newer)}
    obs = FleetObservation({"i1": runtime("i1", newer, old)}, detailed=frozenset({"i1"}))
    result = fleet_diff("sel", prev, obs, NOW)
    assert result.transitions == []  # recorded, not announced
    assert result.records["i1"].operations["u1"].state == "succeeded"
    fresh = FleetOperation("u3", "update", "failed", created_at=NOW)
    later = FleetObservation({"i1": runtime("i1", newer, fresh)}, detailed=frozenset({"i1"}))
    changes = [t.change for t in fleet_diff("sel", prev, later, NOW).transitions]
    assert changes == [FleetChange.OPERATION_APPEARED, FleetChange.OPERATION_ENDED]
