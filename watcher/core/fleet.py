"""The fleet as ``GET /runtimes`` shows it: runtimes keyed by instance ID, and their operations.

KEB 1.15.1 and later serve no orchestrations; what operators still follow through KEB are the
fleet's own operations (docs/keb-runtimes-api.md §6.3). Facts this module relies on:

* the only stable key of a runtime is ``instanceID``: ``runtimeID`` is ``""`` early in
  provisioning and after a suspension, and changes on unsuspension (§8);
* an operation's type is never sent: it is the ``status`` list it appears in (§3.4), so
  :attr:`FleetOperation.kind` is that list's name;
* an operation's identity is ``operationID``; archived synthetic entries carry ``""``, and
  those are no operations we can follow (§4.3);
* ``status.state`` is derived and may be ``""``; it is kept for display, never diffed (§3.6).

Parsing is tolerant like :mod:`watcher.core.models`: unknown fields are ignored, unknown
states are kept verbatim, a timestamp we cannot read is ``None``. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from watcher.core.models import (
    FAILED,
    IN_PROGRESS,
    PENDING,
    SUCCEEDED,
    Page,
    parse_keb_time,
    parse_page,
)
from watcher.errors import KebResponseError

#: The ``status`` lists of a runtime, in the order KEB's DTO declares them (§3.3). Each is
#: the kind of the operations it holds.
PROVISIONING: Final = "provisioning"
DEPROVISIONING: Final = "deprovisioning"
UPGRADING_CLUSTER: Final = "upgradingCluster"
UPDATE: Final = "update"
SUSPENSION: Final = "suspension"
UNSUSPENSION: Final = "unsuspension"
OPERATION_KINDS: Final = (
    PROVISIONING,
    DEPROVISIONING,
    UPGRADING_CLUSTER,
    UPDATE,
    SUSPENSION,
    UNSUSPENSION,
)
#: Lists that hold one operation object rather than ``{"data": [...]}``.
_SINGLE: Final = frozenset({PROVISIONING, DEPROVISIONING})

#: The state recorded for an operation that ended while KEB no longer shows its outcome (an
#: update pushed out of the two-item list, §3.5). KEB itself never sends it.
OUTCOME_NOT_SHOWN: Final = "unknown"
#: Operation states that end an operation (§3.8: no code moves them back to ``in progress``).
#: ``canceled`` only exists in legacy rows.
ENDED_STATES: Final = frozenset({SUCCEEDED, FAILED, "canceled", OUTCOME_NOT_SHOWN})
#: Operation states that are not over yet.
OPEN_STATES: Final = frozenset({PENDING, IN_PROGRESS, "retrying", "canceling"})

#: The values of the ``state`` filter that select runtimes whose last operation runs (§2.3).
ACTIVE_FILTER: Final = ("provisioning", "deprovisioning", "updating", "upgrading")


def is_ended(state: str) -> bool:
    return state in ENDED_STATES


@dataclass(frozen=True, slots=True)
class FleetOperation:
    """One operation of a runtime as KEB showed it: the raw facts, never the derived state.

    ``reason`` is the ``error.reason`` of a failed operation, else its description."""

    operation_id: str
    kind: str
    state: str
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    reason: str = ""

    @classmethod
    def from_json(cls, obj: object, kind: str) -> FleetOperation:
        if not isinstance(obj, Mapping):
            raise KebResponseError(f"runtime {kind} operation: expected an object")
        error = obj.get("error")
        reason = ""
        if isinstance(error, Mapping):
            reason = _text(error, "reason") or _text(error, "message")
        description = _text(obj, "description")
        return cls(
            operation_id=_text(obj, "operationID"),
            kind=kind,
            state=_text(obj, "state"),
            description=description,
            created_at=parse_keb_time(obj.get("createdAt")),
            updated_at=parse_keb_time(obj.get("updatedAt")),
            reason=reason or description,
        )


@dataclass(frozen=True, slots=True)
class FleetRuntime:
    """One runtime (an instance) of a ``/runtimes`` answer.

    ``operations`` are the ones this answer showed (with ``op_detail=last`` at most one), in
    the order of :data:`OPERATION_KINDS` then newest first; operations without an ID are left
    out. ``update_total`` is the update list's ``totalCount`` (KEB shows only 2, §3.5)."""

    instance_id: str
    runtime_id: str = ""
    global_account_id: str = ""
    subaccount_id: str = ""
    region: str = ""
    plan: str = ""
    shoot: str = ""
    state: str = ""
    created_at: datetime | None = None
    modified_at: datetime | None = None
    operations: tuple[FleetOperation, ...] = ()
    update_total: int = 0

    @classmethod
    def from_json(cls, obj: object) -> FleetRuntime:
        if not isinstance(obj, Mapping):
            raise KebResponseError("runtime: expected an object")
        instance_id = _text(obj, "instanceID")
        if not instance_id:
            raise KebResponseError("runtime without instanceID")
        status = obj.get("status")
        status = status if isinstance(status, Mapping) else {}
        operations: list[FleetOperation] = []
        update_total = 0
        for kind in OPERATION_KINDS:
            raw = status.get(kind)
            if raw is None:
                continue
            if kind in _SINGLE:
                items: list[object] = [raw]
            else:
                if not isinstance(raw, Mapping):
                    raise KebResponseError(f"runtime {instance_id}: status.{kind} is no object")
                data = raw.get("data")
                items = list(data) if isinstance(data, list) else []
                if kind == UPDATE:
                    total = raw.get("totalCount")
                    update_total = total if isinstance(total, int) else len(items)
            for item in items:
                op = FleetOperation.from_json(item, kind)
                if op.operation_id:
                    operations.append(op)
        return cls(
            instance_id=instance_id,
            runtime_id=_text(obj, "runtimeID"),
            global_account_id=_text(obj, "globalAccountID"),
            subaccount_id=_text(obj, "subAccountID"),
            region=_text(obj, "region"),
            plan=_text(obj, "servicePlanName"),
            shoot=_text(obj, "shootName"),
            state=_text(status, "state"),
            created_at=parse_keb_time(status.get("createdAt")),
            modified_at=parse_keb_time(status.get("modifiedAt")),
            operations=tuple(operations),
            update_total=update_total,
        )

    def open_operations(self) -> tuple[FleetOperation, ...]:
        return tuple(op for op in self.operations if op.state in OPEN_STATES)


def parse_runtimes_page(obj: object) -> Page[FleetRuntime]:
    """``{"data": [...], "count", "totalCount"}`` of ``GET /runtimes`` (§3.1)."""
    return parse_page(obj, FleetRuntime.from_json, "runtime list")


@dataclass(frozen=True, slots=True)
class Selection:
    """A named selection of runtimes: the filters of ``/runtimes`` (§2.2), each ORed within
    and ANDed across, as KEB applies them. Empty filters select the whole fleet.

    >>> Selection("eu", plans=("aws",), regions=("eu-central-1", "eu-west-1")).params()
    (('plan', 'aws'), ('region', 'eu-central-1'), ('region', 'eu-west-1'))
    """

    name: str
    accounts: tuple[str, ...] = ()
    subaccounts: tuple[str, ...] = ()
    plans: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    instances: tuple[str, ...] = ()

    def params(self) -> tuple[tuple[str, str], ...]:
        """The filters as repeated query parameters (KEB never splits commas, §2.1)."""
        pairs: list[tuple[str, str]] = []
        for name, values in (
            ("account", self.accounts),
            ("subaccount", self.subaccounts),
            ("plan", self.plans),
            ("region", self.regions),
            ("instance_id", self.instances),
        ):
            pairs.extend((name, value) for value in values)
        return tuple(pairs)

    def matches(self, runtime: FleetRuntime) -> bool:
        """Whether ``runtime`` is in this selection, by the fields KEB filters on."""
        for values, value in (
            (self.accounts, runtime.global_account_id),
            (self.subaccounts, runtime.subaccount_id),
            (self.plans, runtime.plan),
            (self.regions, runtime.region),
            (self.instances, runtime.instance_id),
        ):
            if values and value not in values:
                return False
        return True


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class TrackedSelection:
    """A selection the user follows (``watcher fleet add``), as the poller last knew it."""

    selection: Selection
    channel: str | None
    added_at: datetime
    baseline_at: datetime | None = None
    last_full_sweep_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None

    @property
    def name(self) -> str:
        return self.selection.name


def selection_filters(selection: Selection) -> dict[str, list[str]]:
    """The filters as a JSON-ready mapping (empty ones left out)."""
    filters = {
        "account": selection.accounts,
        "subaccount": selection.subaccounts,
        "plan": selection.plans,
        "region": selection.regions,
        "instance_id": selection.instances,
    }
    return {name: list(values) for name, values in filters.items() if values}


def selection_from_filters(name: str, filters: Mapping[str, Any]) -> Selection:
    def values(key: str) -> tuple[str, ...]:
        raw = filters.get(key) or []
        return tuple(str(v) for v in raw)

    return Selection(
        name,
        accounts=values("account"),
        subaccounts=values("subaccount"),
        plans=values("plan"),
        regions=values("region"),
        instances=values("instance_id"),
    )
