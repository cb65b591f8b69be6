"""KEB's ``GET /runtimes`` and ``GET /events`` handlers over a :class:`~watcher.sim.fleet.Fleet`.

Pure functions of the fleet and the query, mirroring docs/keb-runtimes-api.md ("§"):

* paging first (400 with KEB's texts, §2.2), oldest first, offset paging, and ``totalCount``
  from a second query after the page (the fleet's ``between_queries`` hook runs between them,
  so a page is no snapshot, §4.2);
* list filters ORed within a name and ANDed across (repeated parameters; ``a,b`` is one
  literal value), ``shoot`` as an anchored regex (§2.2);
* the ``state`` filter tests the operation ``last_operation_id`` names, while the returned
  ``status.state`` is derived from the lists shown (§2.3, §3.6): the two can disagree; unknown
  values filter nothing, and with every value unknown even deprovision-succeeded rows show;
  ``state=deprovisioned`` reads the archive instead (§4.3);
* ``op_detail`` ``all`` (the default) or ``last``; ``update`` shows only the two newest; a
  legacy ``upgradeKyma`` as the last operation fails the whole page with a JSON 500 (§2.4);
* ``/events`` reads one comma-separated ``instance_ids``/``operation_ids`` each, answers
  ``null`` for no rows and everything for no filter (§5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from watcher.core.models import CANCELED, FAILED, IN_PROGRESS, PENDING, SUCCEEDED, format_keb_time
from watcher.sim.api import SimApiError, parse_paging
from watcher.sim.fleet import (
    DEPROVISION,
    PROVISION,
    UPDATE_OP,
    UPGRADE_CLUSTER,
    UPGRADE_KYMA,
    ArchivedInstance,
    Fleet,
    SimFleetOp,
    SimInstance,
)

ZERO_TIME: Final = "0001-01-01T00:00:00Z"
KNOWN_STATES: Final = frozenset(
    {
        "succeeded",
        "failed",
        "error",
        "provisioning",
        "deprovisioning",
        "upgrading",
        "updating",
        "suspended",
        "deprovisioned",
        "deprovisionincomplete",
        "all",
    }
)
_LIST_FILTERS: Final = (
    ("account", "global_account"),
    ("subaccount", "subaccount"),
    ("instance_id", "instance_id"),
    ("runtime_id", "runtime_id"),
    ("region", "region"),
    ("plan", "plan"),
)


def list_runtimes(fleet: Fleet, query: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The ``RuntimesPage`` KEB answers, or :class:`SimApiError` (400, 500)."""
    page, size = parse_paging(query)
    detail = "all"
    for value in query.get("op_detail", []):
        if value in ("all", "last"):
            detail = value
    states = list(query.get("state", []))
    if "deprovisioned" in states:
        return _archived(fleet, query, page, size)
    rows = _matching(fleet, query, states)
    chosen = rows[(page - 1) * size : page * size]
    data = [runtime_dto(fleet, inst, detail) for inst in chosen]
    if fleet.between_queries is not None:
        fleet.between_queries()
    total = len(_matching(fleet, query, states))
    return {"data": data, "count": len(data), "totalCount": total}


def _matching(
    fleet: Fleet, query: Mapping[str, Sequence[str]], states: Sequence[str]
) -> list[SimInstance]:
    shoots = query.get("shoot")
    pattern = None
    if shoots:
        try:
            pattern = re.compile("^(" + "|".join(shoots) + ")$")
        except re.error as exc:
            raise SimApiError(
                500, f"while fetching instances: while fetching instances: pq: invalid regex {exc}"
            ) from None
    known = [s for s in states if s in KNOWN_STATES]
    rows = []
    for inst in fleet.instances.values():
        last = inst.last_op()
        if last is None:
            continue  # the inner join on last_operation_id (§10: '' rows are invisible)
        if any(
            (values := query.get(name)) and getattr(inst, attr) not in values
            for name, attr in _LIST_FILTERS
        ):
            continue
        if pattern is not None and not pattern.match(inst.shoot):
            continue
        if not _state_matches(inst, last, known, bool(states)):
            continue
        rows.append(inst)
    return rows


def _state_matches(inst: SimInstance, o1: SimFleetOp, known: list[str], given: bool) -> bool:
    if not known:
        # No value, or only unknown ones: with none given, hide deprovision-succeeded rows;
        # with only unknown ones, no state condition at all (§2.3, §8).
        return given or not (o1.type == DEPROVISION and o1.state == SUCCEEDED)
    for state in known:
        if state == "all":
            return True
        if state == "suspended" and not inst.active:
            return True
        if _state_condition(state, o1):
            return True
    return False


def _state_condition(state: str, o1: SimFleetOp) -> bool:
    kind, st = o1.type, o1.state
    return {
        "succeeded": st == SUCCEEDED and kind != DEPROVISION,
        "failed": kind in (PROVISION, DEPROVISION) and st == FAILED,
        "error": kind not in (PROVISION, DEPROVISION) and st == FAILED,
        "provisioning": kind == PROVISION and st == IN_PROGRESS,
        "deprovisioning": kind == DEPROVISION and st == IN_PROGRESS,
        "upgrading": kind.startswith("upgrade") and st == IN_PROGRESS,
        "updating": kind == UPDATE_OP and st == IN_PROGRESS,
    }.get(state, False)


def op_dto(fleet: Fleet, op: SimFleetOp) -> dict[str, Any]:
    dto: dict[str, Any] = {
        "state": op.state,
        "description": op.description,
        "createdAt": format_keb_time(fleet.pod_time(op.created_at)),
        "updatedAt": format_keb_time(fleet.pod_time(op.updated_at)),
        "operationID": op.operation_id,
        "finishedStages": ["cluster"] if op.halfway else [],
        "parameters": {},
    }
    if op.state == FAILED:
        dto["error"] = {"reason": op.reason, "component": "infrastructure-manager"}
    return dto


def _data(fleet: Fleet, ops: Sequence[SimFleetOp], total: int | None = None) -> dict[str, Any]:
    return {
        "data": [op_dto(fleet, op) for op in ops],
        "totalCount": len(ops) if total is None else total,
        "count": len(ops),
    }


def runtime_dto(fleet: Fleet, inst: SimInstance, detail: str) -> dict[str, Any]:
    # Newest first; among equal createdAt the later-created op (KEB: microsecond ties are rare).
    newest_first = sorted(inst.ops, key=lambda op: op.created_at)[::-1]
    provisions = [op for op in inst.ops if op.type == PROVISION]
    status: dict[str, Any] = {}
    shown: list[tuple[str, SimFleetOp]] = []
    if detail == "last":
        last = next((op for op in newest_first if op.state not in (PENDING, CANCELED)), None)
        if last is not None:
            if last.type == UPGRADE_KYMA:
                raise SimApiError(500, f"unsupported operation type: {UPGRADE_KYMA}")
            if last.type == PROVISION:
                key = "unsuspension" if len(provisions) > 1 else "provisioning"
            elif last.type == DEPROVISION:
                key = "suspension" if last.temporary else "deprovisioning"
            elif last.type == UPDATE_OP:
                key = "update"
            else:
                key = "upgradingCluster"
            status[key] = op_dto(fleet, last) if key in _SINGLE else _data(fleet, [last])
            shown.append((key, last))
    else:
        if provisions:
            status["provisioning"] = op_dto(fleet, provisions[0])
            shown.append(("provisioning", provisions[0]))
        deprov = [op for op in newest_first if op.type == DEPROVISION and not op.temporary]
        if deprov and deprov[0].state != PENDING:
            status["deprovisioning"] = op_dto(fleet, deprov[0])
            shown.append(("deprovisioning", deprov[0]))
        for key, ops, cap in (
            ("upgradingCluster", [op for op in newest_first if op.type == UPGRADE_CLUSTER], 2),
            ("update", [op for op in newest_first if op.type == UPDATE_OP], 2),
            (
                "suspension",
                [
                    o
                    for o in newest_first
                    if o.type == DEPROVISION and o.temporary and o.state != PENDING
                ],
                None,
            ),
            ("unsuspension", [op for op in newest_first if op.type == PROVISION][:-1], None),
        ):
            if ops:
                kept = ops[:cap] if cap else ops
                status[key] = _data(fleet, kept, len(ops))
                shown.extend((key, op) for op in kept)
    modified = next((op for op in newest_first if op.state not in (PENDING, CANCELED)), None)
    return _identity(inst) | {
        "serviceClassID": "47c9dcbf-ff30-448e-ab36-d3bad66ba281",
        "serviceClassName": "kymaruntime",
        "servicePlanID": f"plan-{inst.plan}",
        "servicePlanName": inst.plan,
        "provider": "AWS",
        "parameters": {},
        "status": {
            "createdAt": format_keb_time(fleet.db_time(inst.created_at)),
            "modifiedAt": format_keb_time(fleet.pod_time(modified.updated_at))
            if modified
            else ZERO_TIME,
            "state": _derived_state(shown, status),
            **status,
        },
        "userID": "operator@example.com",
    }


_SINGLE: Final = frozenset({"provisioning", "deprovisioning"})
_STATES: Final = {
    "provisioning": ("provisioning", "succeeded", "failed"),
    "unsuspension": ("provisioning", "succeeded", "failed"),
    "update": ("updating", "succeeded", "error"),
    "upgradingCluster": ("upgrading", "succeeded", "error"),
    "deprovisioning": ("deprovisioning", "deprovisioned", "failed"),
    "suspension": ("deprovisioning", "suspended", "failed"),
}


def _derived_state(shown: list[tuple[str, SimFleetOp]], status: Mapping[str, Any]) -> str:
    """``adjustRuntimeState`` (§3.6): the newest shown op by ``createdAt`` decides, then the
    suspension override."""
    if not shown:
        return ""
    first: dict[str, SimFleetOp] = {}
    for key, shown_op in shown:
        first.setdefault(key, shown_op)
    candidate: tuple[str, SimFleetOp] | None = None
    if "provisioning" in first:
        candidate = ("provisioning", first["provisioning"])
    if "upgradingCluster" in first:
        candidate = ("upgradingCluster", first["upgradingCluster"])
    for key in ("unsuspension", "suspension", "deprovisioning", "update"):
        newer = first.get(key)
        if newer is not None and (candidate is None or newer.created_at > candidate[1].created_at):
            candidate = (key, newer)
    if candidate is None:
        return ""
    key, op = candidate
    states = _STATES[key]
    mapped = {IN_PROGRESS: states[0], SUCCEEDED: states[1], FAILED: states[2]}.get(
        op.state, "succeeded"
    )
    suspensions = [o for k, o in shown if k == "suspension"]
    unsuspensions = [o for k, o in shown if k == "unsuspension"]
    if suspensions and (
        not unsuspensions or unsuspensions[0].created_at < suspensions[0].created_at
    ):
        newest = suspensions[0]
        return {IN_PROGRESS: "deprovisioning", FAILED: "failed"}.get(newest.state, "suspended")
    return mapped


def _archived(
    fleet: Fleet, query: Mapping[str, Sequence[str]], page: int, size: int
) -> dict[str, Any]:
    """``state=deprovisioned``: archived instances, synthetic entries (§4.3)."""
    wanted = query.get("instance_id")
    entries = [
        entry
        for entry in sorted(fleet.archive.values(), key=lambda e: e.deleted_at, reverse=True)
        if not wanted or entry.instance.instance_id in wanted
    ]
    chosen = entries[(page - 1) * size : page * size]
    data = [_archived_dto(fleet, entry) for entry in chosen]
    return {"data": data, "count": len(data), "totalCount": len(entries)}


def _identity(inst: SimInstance) -> dict[str, Any]:
    """The keys that open every runtime DTO, live or archived, in KEB's order (§3.2)."""
    return {
        "instanceID": inst.instance_id,
        "runtimeID": inst.runtime_id,
        "globalAccountID": inst.global_account,
        "subscriptionGlobalAccountID": "",
        "subAccountID": inst.subaccount,
        "region": inst.region,
        "subAccountRegion": "cf-eu10",
        "shootName": inst.shoot,
    }


def _archived_dto(fleet: Fleet, entry: ArchivedInstance) -> dict[str, Any]:
    inst = entry.instance
    created = format_keb_time(fleet.db_time(inst.created_at))
    deleted = format_keb_time(fleet.pod_time(entry.deleted_at))
    blank: dict[str, Any] = {
        "description": "",
        "operationID": "",
        "finishedStages": None,
        "parameters": {},
    }
    return _identity(inst) | {
        "servicePlanName": inst.plan,
        "parameters": {},
        "status": {
            "createdAt": created,
            "modifiedAt": ZERO_TIME,
            "deletedAt": deleted,
            "state": "",
            "provisioning": {"state": SUCCEEDED, "createdAt": created, "updatedAt": created}
            | blank,
            "deprovisioning": {"state": "", "createdAt": ZERO_TIME, "updatedAt": deleted} | blank,
        },
        "userID": "- deleted -",
        "subscriptionSecretName": "",
    }


def list_events(fleet: Fleet, query: Mapping[str, Sequence[str]]) -> list[dict[str, str]] | None:
    """``GET /events``: one comma-separated value per filter, read with ``Query().Get`` (§5)."""
    instances = [v for v in query.get("instance_ids", [""])[0].split(",") if v]
    operations = [v for v in query.get("operation_ids", [""])[0].split(",") if v]
    rows = [
        {k: v for k, v in event.items() if k != "at"}
        | {"CreatedAt": format_keb_time(fleet.pod_time(float(event["at"])))}
        for event in fleet.events
        if (not instances or event["InstanceID"] in instances)
        and (not operations or event["OperationID"] in operations)
    ]
    return rows or None
