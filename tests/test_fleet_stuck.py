"""Stuck for selections, the pure part: which open operations are candidates and since when,
and that KEB text in a selection's stuck alert is data, never markup."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from watcher.core.fleet import FleetOperation
from watcher.core.fleet_diff import RuntimeRecord
from watcher.core.fleet_policy import fleet_card, stuck_candidates
from watcher.core.stuck import Stalled, stalled, view
from watcher.notify.render import Renderer

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def record(iid: str, *ops: FleetOperation) -> RuntimeRecord:
    return RuntimeRecord(
        iid,
        shoot=f"c-{iid}",
        subaccount_id=f"sa-{iid}",
        operations={op.operation_id: op for op in ops},
    )


def test_open_operations_are_candidates_since_they_entered_else_since_the_baseline() -> None:
    baseline = NOW - timedelta(hours=6)
    records = {
        "i1": record("i1", FleetOperation("u1", "update", "in progress", "Operation created")),
        "i2": record("i2", FleetOperation("p2", "provisioning", "pending")),
        "i3": record("i3", FleetOperation("u3", "update", "succeeded")),
    }
    entered = {"p2": NOW - timedelta(minutes=30)}
    found = stuck_candidates(records, entered, baseline)
    assert [(s.operation_id, s.since) for s in found] == [
        ("u1", baseline),
        ("p2", NOW - timedelta(minutes=30)),
    ]
    u1 = found[0]
    assert (u1.instance_id, u1.subaccount_id, u1.shoot, u1.kind) == (
        "i1",
        "sa-i1",
        "c-i1",
        "update",
    )
    # The selection's threshold: only what lasted it is stuck.
    assert [s.operation_id for s in stalled(found, NOW, 4 * HOUR)] == ["u1"]
    assert stuck_candidates(records, {}, None) == []


def test_a_stalled_record_keeps_instance_subaccount_and_kind_through_json() -> None:
    s = Stalled(
        "in progress", NOW, "op", "c-1", "d", subaccount_id="sa", instance_id="i", kind="update"
    )
    assert Stalled.from_json(json.loads(json.dumps(s.to_json()))) == s
    example = view([s], NOW, HOUR)
    assert example is not None
    assert example["groups"][0]["examples"][0]["instance_id"] == "i"


def test_keb_text_in_a_selections_stuck_alert_and_card_is_data_never_markup() -> None:
    hostile = Stalled(
        "in progress",
        NOW - timedelta(hours=5),
        "op-<!channel>",
        "c-*bold*\x1b[31m",
        "<!here> <https://evil.example|click> *x* \u202e",
        subaccount_id="sa-<!everyone>",
        instance_id="i-`x`<@U1>",
        kind="update",
    )
    shown = view([hostile], NOW, 4 * HOUR)
    renderer = Renderer()
    stuck = renderer.render("stuck", {"fleet": "demo", "stuck": shown})
    card = renderer.render("progress", fleet_card("demo", {}, [], shown) | {"at": NOW.isoformat()})
    unstuck = renderer.render("unstuck", {"fleet": "demo", "stuck": None, "moved": shown})
    for rendered in (stuck, card, unstuck):
        assert rendered.error is None
        text = rendered.message.text + json.dumps(rendered.message.blocks, ensure_ascii=False)
        for bad in ("<!channel>", "<!here>", "<!everyone>", "<@U1>", "<https://evil", "*bold*"):
            assert bad not in text, bad
        assert "\x1b" not in text
        assert "\u202e" not in text
    assert "1 stuck" in card.message.text
    assert "demo" in stuck.message.text


def test_the_card_adds_this_cycles_endings_to_the_last_24_hours() -> None:
    from watcher.core.fleet_diff import FleetChange, FleetTransition
    from watcher.core.fleet_policy import ended_counts

    recent = ended_counts(
        [("operation_ended", "failed"), ("suspended", "succeeded"), ("operation_changed", "x")]
    )
    assert dict(recent) == {"failed": 1, "suspended": 1}
    now_ended = FleetTransition(
        key="k",
        change=FleetChange.OPERATION_ENDED,
        at=NOW,
        instance_id="i",
        operation_id="o",
        kind="update",
        from_state="in progress",
        to_state="failed",
    )
    card = fleet_card("demo", {}, [now_ended], None, recent)
    assert card["this_cycle"] == {"failed": 1}
    assert card["last_24h"] == {"failed": 2, "suspended": 1}
