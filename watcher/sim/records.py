"""The simulator's mutable rows and their exact KEB JSON shapes.

Key order, ``omitempty`` behaviour and null handling follow the Go structs of
``common/orchestration/dto.go`` as marshalled in docs/keb-api.md §3 and the ``synth`` samples in
the samples in ``tests/samples``, for KEB 1.8.12-1.15.0 (no ``parameters.kyma``). Times are virtual
microseconds since the Unix epoch and are rendered with :func:`watcher.core.models.format_keb_time`
(microsecond precision, like Postgres ``TIMESTAMPTZ``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from watcher.core.models import PENDING, format_keb_time, operation_stats
from watcher.sim.inventory import Runtime
from watcher.sim.scenarios import OrchestrationSpec, ScriptedAction

#: Go's zero ``time.Time``: ScheduleTime of ``immediate`` and its operations' windows.
ZERO_TIME: Final = "0001-01-01T00:00:00Z"
#: The pseudo state of a truth event for a row the cleaning step deleted.
VANISHED: Final = "vanished"
UPGRADE_CLUSTER: Final = "upgradeCluster"
#: Legacy Kyma upgrades: KEB 1.8.9 and later refuse to list their operations (§12.8).
UPGRADE_KYMA: Final = "upgradeKyma"

DESC_QUEUED: Final = "queued for processing"
DESC_OP_CREATED: Final = "Operation created"
DESC_UPGRADING: Final = "cluster upgrade in progress"
DESC_POST_UPGRADE: Final = "Performing post-upgrade tasks"
DESC_SUCCEEDED: Final = "Operation succeeded"
DESC_DRY_RUN: Final = "dry run succeeded"
DESC_OP_CANCELED: Final = "Operation was canceled"
DESC_ORCH_CANCELED: Final = "Orchestration was canceled"
#: A worker picked a pending operation whose instance is being deprovisioned (§3.1).
DESC_PREEMPTED: Final = "operation preempted by deprovisioning operation"
#: What KEB 1.15.0 writes when it resumes a legacy ``retrying`` row (``ResumeOperations``).
DESC_RETRY_TRIGGERED: Final = "Operation retry triggered"

_UNIX: Final = datetime(1970, 1, 1, tzinfo=UTC)

# (time_us, operation_id or None, runtime_id, from_state or None, to_state, description)
TruthRow = tuple[int, str | None, str, str | None, str, str]


def to_us(value: datetime) -> int:
    """Exact microseconds since the Unix epoch (no float rounding)."""
    delta = value - _UNIX
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return _UNIX + timedelta(microseconds=us)


def format_us(us: int) -> str:
    return format_keb_time(from_us(us))


@dataclass(frozen=True, slots=True)
class TruthEvent:
    """One change the simulator made: the ground truth a watcher's observations are judged by.

    ``operation_id`` is ``None`` for orchestration-level events (then ``runtime_id`` is ``""``).
    ``from_state`` is ``None`` when the row was created; ``to_state`` is ``"vanished"`` when
    the cleaning step deleted it. ``from_state == to_state`` marks a description-only change.
    """

    time: datetime
    orchestration_id: str
    operation_id: str | None
    runtime_id: str
    from_state: str | None
    to_state: str
    description: str

    def to_json(self) -> dict[str, Any]:
        return {
            "time": format_keb_time(self.time),
            "orchestrationID": self.orchestration_id,
            "operationID": self.operation_id,
            "runtimeID": self.runtime_id,
            "from": self.from_state,
            "to": self.to_state,
            "description": self.description,
        }


def zero_cluster_config() -> dict[str, Any]:
    """``clusterConfig`` when no runtime state exists yet (docs/keb-api.md §10.4, second sample)."""
    return {
        "name": "",
        "kubernetesVersion": "",
        "provider": "",
        "targetSecret": "",
        "region": "",
        "machineType": "",
        "workerCidr": "",
        "autoScalerMin": 0,
        "autoScalerMax": 0,
        "maxSurge": 0,
        "maxUnavailable": 0,
        "providerSpecificConfig": None,
    }


def upgraded_cluster_config(kubernetes_version: str, machine_type: str) -> dict[str, Any]:
    """The subset KEB stores after an upgrade (``gardenerUpgradeInputToConfigInput``, §3.6)."""
    return {
        "name": "",
        "kubernetesVersion": kubernetes_version,
        "provider": "",
        "targetSecret": "",
        "region": "",
        "machineType": machine_type,
        "machineImage": "gardenlinux",
        "machineImageVersion": "1312.3.0",
        "workerCidr": "",
        "autoScalerMin": 3,
        "autoScalerMax": 20,
        "maxSurge": 3,
        "maxUnavailable": 0,
        "enableKubernetesVersionAutoUpdate": True,
        "enableMachineImageVersionAutoUpdate": False,
        "providerSpecificConfig": None,
        "oidcConfig": {
            "clientID": "9bd05ed7-a930-44e6-8c79-e6defeb7dec9",
            "groupsClaim": "groups",
            "issuerURL": "https://kymatest.accounts400.ondemand.com",
            "signingAlgs": ["RS256"],
            "usernameClaim": "sub",
            "usernamePrefix": "-",
        },
        "shootNetworkingFilterDisabled": False,
    }


@dataclass(slots=True, eq=False)
class OperationRecord:
    """One ``upgradeCluster`` operation row. ``failure`` is its scripted final description."""

    operation_id: str
    orchestration_id: str
    runtime: Runtime
    seq: int
    created_us: int
    window_begin: str
    window_end: str
    dry_run: bool
    duration_us: int
    failure: str | None
    #: When the operation may start: now, or its maintenance window's begin.
    ready_us: int
    state: str = PENDING
    description: str = DESC_OP_CREATED
    #: Set once KEB would have stored a runtime state (the upgrade started).
    kubernetes_version: str | None = None
    vanished: bool = False
    #: Retried while its orchestration was in progress: run by the second worker pool.
    second_pool: bool = False
    #: Ends straight from ``pending`` when picked (preempted, or the init step's panic guard).
    skip: bool = False
    #: Once failed, a legacy KEB rewrites it to ``retrying`` and it is resumed under this ID.
    resume: bool = False

    def to_json(self) -> dict[str, Any]:
        """``OperationResponse``: no omitempty, no timestamps (docs/keb-api.md §3.5)."""
        rt = self.runtime
        return {
            "operationID": self.operation_id,
            "runtimeID": rt.runtime_id,
            "globalAccountID": rt.global_account_id,
            "subAccountID": rt.sub_account_id,
            "orchestrationID": self.orchestration_id,
            "servicePlanID": rt.plan.plan_id,
            "servicePlanName": rt.plan.name,
            "dryRun": self.dry_run,
            "shootName": rt.shoot_name,
            "maintenanceWindowBegin": self.window_begin,
            "maintenanceWindowEnd": self.window_end,
            "state": self.state,
            "description": self.description,
        }

    def detail_json(self) -> dict[str, Any]:
        """``OperationDetailResponse`` of a cluster upgrade: ``clusterConfig`` always present."""
        out = self.to_json()
        if self.kubernetes_version is None:
            out["clusterConfig"] = zero_cluster_config()
        else:
            out["clusterConfig"] = upgraded_cluster_config(
                self.kubernetes_version, self.runtime.plan.machine_type
            )
        return out


@dataclass(slots=True, eq=False)
class OrchestrationRecord:
    """One ``upgradeCluster`` orchestration with its operations in creation order.

    ``ready`` is a heap of ``(seq, operation)`` that may start now (window reached), ``ready2``
    the same for the second worker pool (in-progress retries, §12.10); ``running`` counts
    operations in progress (``running2`` those of the second pool among them); ``unfinished``
    counts operations in ``pending``/``in progress``.
    """

    orchestration_id: str
    profile: OrchestrationSpec
    created_us: int
    include: list[dict[str, str]]
    exclude: list[dict[str, str]]
    strategy_type: str
    schedule: str
    schedule_time_us: int | None
    maintenance_window: bool
    workers: int
    dry_run: bool
    notification: bool
    kubernetes: dict[str, str] | None
    updated_us: int = 0
    state: str = PENDING
    description: str = DESC_QUEUED
    retry_ids: list[str] = field(default_factory=list)
    ops: list[OperationRecord] = field(default_factory=list)
    ready: list[tuple[int, OperationRecord]] = field(default_factory=list)
    ready2: list[tuple[int, OperationRecord]] = field(default_factory=list)
    running: int = 0
    running2: int = 0
    #: A free worker is busy canceling one picked-up operation (``canceling``, §12.5).
    cancel_busy: bool = False
    unfinished: int = 0
    finished: int = 0
    pickup_pending: bool = False
    finalize_pending: bool = False
    was_terminal: bool = False
    actions: list[ScriptedAction] = field(default_factory=list)
    truth: list[TruthRow] = field(default_factory=list)

    def stats(self) -> dict[str, int]:
        """``operationStats`` with Postgres semantics (docs/keb-api.md §3.4)."""
        return operation_stats((op.runtime.runtime_id, op.state) for op in self.ops)

    def parameters_json(self) -> dict[str, Any]:
        """``Parameters`` in Go field order; ``kubernetes`` once KEB wrote it (§3.2)."""
        targets: dict[str, Any] = {"include": [dict(t) for t in self.include]}
        if self.exclude:
            targets["exclude"] = [dict(t) for t in self.exclude]
        strategy: dict[str, Any] = {"type": self.strategy_type}
        if self.schedule:
            strategy["schedule"] = self.schedule
        strategy["ScheduleTime"] = (
            ZERO_TIME if self.schedule_time_us is None else format_us(self.schedule_time_us)
        )
        if self.maintenance_window:
            strategy["maintenanceWindow"] = True
        strategy["parallel"] = {"workers": self.workers}
        params: dict[str, Any] = {"targets": targets, "strategy": strategy}
        if self.dry_run:
            params["dryRun"] = True
        if self.kubernetes is not None:
            params["kubernetes"] = dict(self.kubernetes)
        params["retryoperation"] = (
            {"retryoperations": list(self.retry_ids)} if self.retry_ids else {}
        )
        if self.notification:
            params["notification"] = True
        return params

    def to_json(self, *, with_stats: bool) -> dict[str, Any]:
        """``StatusResponse``; ``operationStats`` only for the single GET (§2.1, §2.2)."""
        out: dict[str, Any] = {
            "orchestrationID": self.orchestration_id,
            "type": UPGRADE_KYMA if self.profile.legacy_kyma else UPGRADE_CLUSTER,
            "state": self.state,
            "description": self.description,
            "createdAt": format_us(self.created_us),
            "updatedAt": format_us(self.updated_us),
            "parameters": self.parameters_json(),
        }
        if with_stats:
            out["operationStats"] = self.stats()
        return out
