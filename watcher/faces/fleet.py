"""``watcher fleet add|list|show|remove``: follow selections of runtimes on current KEB.

KEB 1.15.1 and later serve no orchestrations; ``GET /runtimes`` shows the fleet's own
operations (provisioning, update, suspension, unsuspension, deprovisioning). A selection is
named filters of ``/runtimes``; ``watcher poll`` and ``watcher run`` follow it beside the
orchestrations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from watcher.core.fleet import (
    ENDED_STATES,
    OPEN_STATES,
    FleetRuntime,
    TrackedSelection,
    selection_filters,
)
from watcher.core.fleet_diff import FleetTransition, RuntimeRecord
from watcher.core.ids import states as loose_states
from watcher.core.inert import inert
from watcher.core.stuck import Stalled
from watcher.core.wording import plural
from watcher.faces.context import OUTPUT, Context, emit_json
from watcher.faces.reports import stuck_json, stuck_text, when

REPEAT = {"multiple": True, "metavar": "ID"}


@click.group(name="fleet")
def fleet_group() -> None:
    """Follow selections of runtimes (KEB 1.15.1 and later: GET /runtimes).

    \b
    Example:
      watcher fleet add eu-prod --plan aws,azure --region eu-central-1
      watcher poll
      watcher fleet show eu-prod
    """


@fleet_group.command(name="add")
@click.argument("name")
@click.option("--account", multiple=True, metavar="ID", help="Global account (repeatable, a,b).")
@click.option("--subaccount", multiple=True, metavar="ID", help="Subaccount (repeatable, a,b).")
@click.option("--plan", multiple=True, metavar="P", help="Plan name, e.g. aws (repeatable).")
@click.option("--region", multiple=True, metavar="R", help="Provider region (repeatable).")
@click.option("--instance", multiple=True, metavar="ID", help="Instance ID (repeatable).")
@click.option("--channel", metavar="CH", help="Slack channel for this selection.")
@click.pass_obj
def add(
    obj: Context,
    name: str,
    account: tuple[str, ...],
    subaccount: tuple[str, ...],
    plan: tuple[str, ...],
    region: tuple[str, ...],
    instance: tuple[str, ...],
    channel: str | None,
) -> None:
    """Follow the runtimes that match the filters (all of them without filters); the next
    poll takes a baseline and announces none of what it finds.

    \b
    Example:
      watcher fleet add trials --plan trial
    """
    with obj.watcher() as app:
        selection = app.fleet.add(
            name,
            accounts=account,
            subaccounts=subaccount,
            plans=plan,
            regions=region,
            instances=instance,
            channel=channel,
        )
    filters = _filters_text(selection_filters(selection)) or "the whole fleet"
    click.echo(f"following {name}: {filters}; the next poll takes a baseline")


@fleet_group.command(name="list")
@OUTPUT
@click.pass_obj
def list_(obj: Context, output: str) -> None:
    """The selections, their filters and when they were last polled.

    \b
    Example:
      watcher fleet list --output json
    """
    with obj.watcher() as app:
        items = app.fleet.selections()
    if output == "json":
        emit_json([_selection_json(t) for t in items])
        return
    if not items:
        click.echo("no selections (add one with `watcher fleet add NAME`)")
    for t in items:
        polled = t.last_success_at.isoformat(timespec="seconds") if t.last_success_at else "never"
        error = f", last error: {inert(t.last_error)}" if t.last_error else ""
        filters = _filters_text(selection_filters(t.selection)) or "whole fleet"
        click.echo(f"{t.name}: {filters}; polled {polled}{error}")


#: The operation states ``fleet show --state`` takes (KEB's, and ``unknown``: an outcome KEB
#: no longer shows), in the order the usage error names them.
FLEET_STATES = tuple(sorted(OPEN_STATES)) + tuple(sorted(ENDED_STATES))


@fleet_group.command(name="show")
@click.argument("name")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="S",
    callback=lambda _ctx, _param, value: loose_states(value, FLEET_STATES),
    help="Only operations in these states, repeated or comma-separated, any case "
    "(e.g. --state inprogress,failed).",
)
@OUTPUT
@click.pass_obj
def show(obj: Context, name: str, states: tuple[str, ...], output: str) -> None:
    """One selection: runtimes with an operation in progress or failed, and recent changes.

    \b
    Example:
      watcher fleet show eu-prod --state failed
    """
    with obj.watcher() as app:
        view = app.fleet.show(name)
    shown = set(states) or {"in progress", "pending", "failed"}
    rows = [
        (record, op)
        for record in view.records.values()
        for op in record.operations.values()
        if op.state in shown
    ]
    if output == "json":
        emit_json(
            {
                **_selection_json(view.tracked),
                "runtimes": len(view.records),
                "operations": [_op_json(record, op) for record, op in rows],
                "history": [_transition_json(t) for t in view.history],
                "stuck": _stuck_json(view.stuck),
            }
        )
        return
    click.echo(f"{name}: {plural(len(view.records), 'runtime')}")
    for record, op in rows:
        reason = f" ({inert(op.reason)})" if op.state == "failed" and op.reason else ""
        click.echo(
            f"  {record.instance_id}  {inert(record.shoot) or '-'}  {op.kind}: "
            f"{inert(op.state)}{reason}"
        )
    if view.stuck:
        click.echo(f"  {stuck_text(view.stuck)}")
        for s in view.stuck:
            click.echo(
                inert(
                    f"  stuck: {s.instance_id}  {s.shoot or '-'}  {s.kind or 'operation'} "
                    f"{s.state} since {when(s.since)}"
                )
            )
    for t in view.history[-20:]:
        click.echo(f"  {transition_line(t)}")


def _stuck_json(items: Sequence[Stalled]) -> dict[str, Any] | None:
    """What is stuck in the selection (:func:`watcher.faces.reports.stuck_json` with the
    runtime named by instance, subaccount and operation type)."""
    shown = stuck_json(items)
    if shown is None:
        return None
    for item, s in zip(shown["items"], items, strict=True):
        item.update({"instanceId": s.instance_id, "subaccountId": s.subaccount_id, "kind": s.kind})
    return shown


@fleet_group.command(name="remove")
@click.argument("name")
@click.pass_obj
def remove(obj: Context, name: str) -> None:
    """Stop following a selection; its recorded history is kept.

    \b
    Example:
      watcher fleet remove trials
    """
    with obj.watcher() as app:
        app.fleet.remove(name)
    click.echo(f"stopped following {name}")


def transition_line(t: FleetTransition) -> str:
    """One recorded fleet change, as ``show`` and ``status --instance`` print it."""
    at = t.at.isoformat(timespec="seconds")
    what = t.change.value.replace("_", " ")
    op = f" {t.kind} {t.operation_id}" if t.operation_id else ""
    moved = f" {t.from_state} -> {t.to_state}" if t.from_state else f" {t.to_state}"
    moved = moved if t.to_state or t.from_state else ""
    return inert(f"{at} {t.instance_id} {what}{op}{moved}")


def runtime_lines(runtime: FleetRuntime) -> list[str]:
    lines = [
        f"instance {runtime.instance_id}",
        f"  runtime ID: {runtime.runtime_id or '-'}  shoot: {runtime.shoot or '-'}",
        f"  subaccount: {runtime.subaccount_id or '-'}  plan: {runtime.plan or '-'}  "
        f"region: {runtime.region or '-'}",
        f"  state: {runtime.state or '-'}",
    ]
    for op in runtime.operations:
        reason = f" ({op.reason})" if op.state == "failed" and op.reason else ""
        created = op.created_at.isoformat(timespec="seconds") if op.created_at else "?"
        lines.append(f"  {op.kind} {op.operation_id}: {op.state}{reason}, created {created}")
    if runtime.update_total > len([o for o in runtime.operations if o.kind == "update"]):
        lines.append(f"  (KEB shows the 2 newest of {runtime.update_total} updates)")
    return [inert(line) for line in lines]


def runtime_json(runtime: FleetRuntime) -> dict[str, Any]:
    return {
        "instance_id": runtime.instance_id,
        "runtime_id": runtime.runtime_id,
        "shoot": runtime.shoot,
        "subaccount_id": runtime.subaccount_id,
        "global_account_id": runtime.global_account_id,
        "plan": runtime.plan,
        "region": runtime.region,
        "state": runtime.state,
        "operations": [
            {
                "operation_id": op.operation_id,
                "kind": op.kind,
                "state": op.state,
                "reason": op.reason,
                "created_at": op.created_at,
                "updated_at": op.updated_at,
            }
            for op in runtime.operations
        ],
    }


def _filters_text(filters: dict[str, list[str]]) -> str:
    return " ".join(f"--{name.replace('_id', '')} {','.join(v)}" for name, v in filters.items())


def _selection_json(t: TrackedSelection) -> dict[str, Any]:
    return {
        "name": t.name,
        "filters": selection_filters(t.selection),
        "channel": t.channel,
        "added_at": t.added_at,
        "baseline_at": t.baseline_at,
        "last_full_sweep_at": t.last_full_sweep_at,
        "last_success_at": t.last_success_at,
        "last_error": t.last_error,
    }


def _op_json(record: RuntimeRecord, op: Any) -> dict[str, Any]:
    return {
        "instance_id": record.instance_id,
        "shoot": record.shoot,
        "subaccount_id": record.subaccount_id,
        "runtime_id": record.runtime_id,
        "operation_id": op.operation_id,
        "kind": op.kind,
        "state": op.state,
        "reason": op.reason,
    }


def _transition_json(t: FleetTransition) -> dict[str, Any]:
    return {
        "at": t.at,
        "change": t.change.value,
        "instance_id": t.instance_id,
        "operation_id": t.operation_id,
        "kind": t.kind,
        "from_state": t.from_state,
        "to_state": t.to_state,
        "description": t.description,
        "shoot": t.shoot,
        "subaccount_id": t.subaccount_id,
        "runtime_id": t.runtime_id,
    }
