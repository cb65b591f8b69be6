"""The simulated fleet of current KEB: instances, their operations, and the ground truth.

This is the truth model behind ``watcher sim --api runtimes`` (docs/keb-runtimes-api.md,
"§" below). Each :class:`SimInstance` holds its operations in creation order with the facts
KEB stores: type, ``temporary`` (a suspension is a temporary deprovision), state, the KEB pod's
``createdAt``/``updatedAt``, and ``last_operation_id``, which the ``state`` filter reads
(§2.3). The world moves only through :meth:`Fleet.advance` and the actions, so a test can move
runtimes between any two requests.

Lifecycles (§3.8, §6.3):

* provisioning starts ``in progress`` at once; ``runtimeID`` is ``""`` until a quarter of the
  way through (step ``Generate_Runtime_ID``);
* update, suspension, unsuspension and deprovisioning start ``pending`` and go ``in progress``
  (switching ``last_operation_id``) once no other operation of the instance is open;
* ``updatedAt`` moves at stage boundaries only (start, half-way, end), never as a heartbeat; a
  hung operation keeps its ``updatedAt`` for ever;
* a suspension that succeeds clears ``runtimeID`` and the ERS ``active`` flag; an unsuspension
  sets ``active`` and, when it succeeds, a new ``runtimeID``;
* a deprovisioning that succeeds deletes the instance with all its operations and writes an
  archive entry: its ``succeeded`` is never shown.

Three clocks: operation times come from the KEB pod (``pod_skew``), the instance's
``createdAt`` from Postgres (``db_skew``); the poller has its own.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from watcher.core.models import FAILED, IN_PROGRESS, PENDING, SUCCEEDED

PROVISION: Final = "provision"
DEPROVISION: Final = "deprovision"
UPDATE_OP: Final = "update"
UPGRADE_KYMA: Final = "upgradeKyma"
UPGRADE_CLUSTER: Final = "upgradeCluster"

PLANS: Final = ("aws", "azure", "gcp", "trial")
REGIONS: Final = {"aws": "eu-central-1", "azure": "westeurope", "gcp": "europe-west3"}
FAILURES: Final = (
    "Runtime resource in Failed state",
    "operation has reached the time limit: 3h0m0s",
    "quota exceeded for machine type",
)
#: How long operations take by type, in virtual seconds (provisioning: about 25 minutes).
DURATIONS: Final = {PROVISION: 1500.0, DEPROVISION: 900.0, UPDATE_OP: 600.0}
EPOCH: Final = datetime(2026, 8, 21, 8, 0, tzinfo=UTC)


@dataclass(slots=True)
class SimFleetOp:
    operation_id: str
    type: str
    state: str
    created_at: float
    updated_at: float
    duration: float
    temporary: bool = False
    fail: bool = False
    hang: bool = False
    description: str = "Operation created"
    reason: str = ""
    started_at: float | None = None
    halfway: bool = False

    @property
    def open(self) -> bool:
        return self.state in (PENDING, IN_PROGRESS)


@dataclass(slots=True)
class SimInstance:
    instance_id: str
    runtime_id: str
    global_account: str
    subaccount: str
    plan: str
    region: str
    shoot: str
    created_at: float
    ops: list[SimFleetOp] = field(default_factory=list)
    last_operation_id: str = ""
    active: bool = True

    def op(self, operation_id: str) -> SimFleetOp | None:
        return next((op for op in self.ops if op.operation_id == operation_id), None)

    def last_op(self) -> SimFleetOp | None:
        """The operation ``last_operation_id`` names: what the ``state`` filter tests."""
        return self.op(self.last_operation_id)


@dataclass(frozen=True, slots=True)
class FleetTruth:
    """One thing that really happened: an operation reaching ``state`` at virtual ``at``
    (``instance`` events: ``deprovisioned`` when the instance is deleted)."""

    at: float
    instance_id: str
    operation_id: str
    type: str
    temporary: bool
    state: str


@dataclass(frozen=True, slots=True)
class ArchivedInstance:
    instance: SimInstance
    deleted_at: float


class Fleet:
    """The world: instances oldest first (KEB orders by ``created_at``, §4.1)."""

    def __init__(self, seed: int = 1, *, pod_skew: float = 1.5, db_skew: float = -2.0) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.pod_skew = pod_skew
        self.db_skew = db_skew
        self.instances: dict[str, SimInstance] = {}
        self.archive: dict[str, ArchivedInstance] = {}
        self.events: list[dict[str, str]] = []
        self.truth: list[FleetTruth] = []
        self._running: dict[str, None] = {}  # instances with an operation in progress, in order
        self._scheduled: list[tuple[float, Callable[[], object]]] = []
        #: Called between the page query and the count query of one answer (§4.2): a test
        #: moves the world there.
        self.between_queries: Callable[[], None] | None = None

    # -- clocks -------------------------------------------------------------------------

    def pod_time(self, at: float) -> datetime:
        return EPOCH + timedelta(seconds=at + self.pod_skew)

    def db_time(self, at: float) -> datetime:
        return EPOCH + timedelta(seconds=at + self.db_skew)

    # -- actions ------------------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def provision(
        self,
        *,
        plan: str | None = None,
        account: str = "ga-1",
        subaccount: str | None = None,
        fail: bool = False,
        hang: bool = False,
        duration: float | None = None,
        done: bool = False,
    ) -> str:
        """A new instance, provisioning at once; ``done`` makes it an old, finished one."""
        plan = plan or self.rng.choice(PLANS)
        inst = SimInstance(
            instance_id=self._uuid(),
            runtime_id="",
            global_account=account,
            subaccount=subaccount or self._uuid(),
            plan=plan,
            region=REGIONS.get(plan, "eu-central-1"),
            shoot="c" + f"{self.rng.getrandbits(24):06x}",
            created_at=self.now,
        )
        self.instances[inst.instance_id] = inst
        op = self._new_op(inst, PROVISION, fail=fail, hang=hang, duration=duration)
        if done:
            op.state, op.description, op.started_at = SUCCEEDED, "Processing finished", self.now
            inst.runtime_id = self._uuid()
            inst.last_operation_id = op.operation_id
            self._record(inst, op)
        else:
            self._start(inst, op)
        return inst.instance_id

    def update(
        self, instance_id: str, *, fail: bool = False, hang: bool = False, duration: float = 0
    ) -> str:
        return self._queue(instance_id, UPDATE_OP, fail=fail, hang=hang, duration=duration)

    def suspend(self, instance_id: str) -> str:
        return self._queue(instance_id, DEPROVISION, temporary=True)

    def unsuspend(self, instance_id: str) -> str:
        return self._queue(instance_id, PROVISION)

    def deprovision(self, instance_id: str, *, fail: bool = False) -> str:
        return self._queue(instance_id, DEPROVISION, fail=fail)

    def add_legacy(self, instance_id: str) -> str:
        """A legacy ``upgradeKyma`` as the newest operation: ``op_detail=last`` fails (§2.4)."""
        inst = self.instances[instance_id]
        op = self._new_op(inst, UPGRADE_KYMA)
        op.state, op.description = SUCCEEDED, "Processing finished"
        return op.operation_id

    def hide(self, instance_id: str) -> None:
        """Make KEB lose sight of an instance that still exists: ``/runtimes`` inner-joins the
        operation ``last_operation_id`` names, so a row with ``''`` (not backfilled before
        2025-02, §10) is in no answer, not even the archive's. A poller must not call it
        deprovisioned."""
        self.instances[instance_id].last_operation_id = ""

    def _queue(
        self,
        instance_id: str,
        op_type: str,
        *,
        temporary: bool = False,
        fail: bool = False,
        hang: bool = False,
        duration: float = 0,
    ) -> str:
        inst = self.instances.get(instance_id)
        if inst is None:
            raise KeyError(f"no instance {instance_id}")
        op = self._new_op(inst, op_type, fail=fail, hang=hang, duration=duration or None)
        op.temporary = temporary
        self._start_next(inst)
        return op.operation_id

    def _new_op(
        self,
        inst: SimInstance,
        op_type: str,
        *,
        fail: bool = False,
        hang: bool = False,
        duration: float | None = None,
    ) -> SimFleetOp:
        op = SimFleetOp(
            operation_id=self._uuid(),
            type=op_type,
            state=PENDING,
            created_at=self.now,
            updated_at=self.now,
            duration=duration or DURATIONS.get(op_type, 600.0),
            fail=fail,
            hang=hang,
        )
        inst.ops.append(op)
        return op

    # -- time ---------------------------------------------------------------------------

    def at(self, when: float, action: Callable[[], object]) -> None:
        """Run ``action`` once the clock reaches virtual second ``when`` (a scripted move)."""
        self._scheduled.append((when, action))
        self._scheduled.sort(key=lambda item: item[0])

    def advance(self, seconds: float) -> int:
        """Move the clock ``seconds`` ahead, running every stage boundary on the way in order.
        Returns how many operations changed."""
        target = self.now + max(0.0, seconds)
        changes = 0
        while True:
            if self._scheduled and self._scheduled[0][0] <= target:
                due_at = self._scheduled[0][0]
                boundary = self._next_boundary()
                if boundary is None or boundary[0] > due_at:
                    self.now = max(self.now, due_at)
                    self._scheduled.pop(0)[1]()
                    changes += 1
                    continue
            due = self._next_boundary()
            if due is None or due[0] > target:
                break
            self.now = max(self.now, due[0])
            self._boundary(due[1], due[2])
            changes += 1
        self.now = target
        return changes

    def _next_boundary(self) -> tuple[float, SimInstance, SimFleetOp] | None:
        best: tuple[float, SimInstance, SimFleetOp] | None = None
        for instance_id in self._running:
            inst = self.instances[instance_id]
            for op in inst.ops:
                if op.state != IN_PROGRESS or op.hang or op.started_at is None:
                    continue
                at = op.started_at + op.duration * (1.0 if op.halfway else 0.5)
                if best is None or at < best[0]:
                    best = (at, inst, op)
        return best

    def _boundary(self, inst: SimInstance, op: SimFleetOp) -> None:
        op.updated_at = self.now
        if not op.halfway:
            op.halfway = True
            if op.type == PROVISION and not inst.runtime_id:
                inst.runtime_id = self._uuid()  # Generate_Runtime_ID, or a new one on unsuspension
            self._event(inst, op, "info", "processing step: Check_Runtime_Resource")
            return
        if op.fail:
            op.state, op.reason = FAILED, self.rng.choice(FAILURES)
            op.description = op.reason
            self._event(inst, op, "error", f"operation failed: {op.reason}")
        else:
            op.state, op.description = SUCCEEDED, "Processing finished"
        self._record(inst, op)
        if op.state == SUCCEEDED and op.type == DEPROVISION:
            if op.temporary:
                inst.runtime_id, inst.active = "", False
            else:
                # Remove_Instance, Archiving, Clean: the instance and all its ops are gone.
                del self.instances[inst.instance_id]
                self._running.pop(inst.instance_id, None)
                self.archive[inst.instance_id] = ArchivedInstance(inst, self.now)
                self.truth.append(
                    FleetTruth(self.now, inst.instance_id, "", "instance", False, "deprovisioned")
                )
                return
        self._start_next(inst)

    def _start_next(self, inst: SimInstance) -> None:
        if any(op.state == IN_PROGRESS for op in inst.ops):
            return
        self._running.pop(inst.instance_id, None)
        nxt = next((op for op in inst.ops if op.state == PENDING), None)
        if nxt is not None:
            self._start(inst, nxt)

    def _start(self, inst: SimInstance, op: SimFleetOp) -> None:
        op.state, op.started_at, op.updated_at = IN_PROGRESS, self.now, self.now
        inst.last_operation_id = op.operation_id
        self._running[inst.instance_id] = None
        if op.type == PROVISION and len([o for o in inst.ops if o.type == PROVISION]) > 1:
            inst.active = True
            inst.runtime_id = ""  # a new one comes with the provisioning steps
        self._event(inst, op, "info", "processing step: Initialisation")
        self._record(inst, op)

    def _record(self, inst: SimInstance, op: SimFleetOp) -> None:
        self.truth.append(
            FleetTruth(self.now, inst.instance_id, op.operation_id, op.type, op.temporary, op.state)
        )

    def _event(self, inst: SimInstance, op: SimFleetOp, level: str, message: str) -> None:
        self.events.append(
            {
                "ID": self._uuid(),
                "Level": level,
                "InstanceID": inst.instance_id,
                "OperationID": op.operation_id,
                "Message": message,
                "at": str(self.now),
            }
        )

    # -- reading ------------------------------------------------------------------------

    def open_instances(self) -> Iterator[SimInstance]:
        return (inst for inst in self.instances.values() if any(op.open for op in inst.ops))

    def summary(self) -> dict[str, object]:
        states: dict[str, int] = {}
        for inst in self.instances.values():
            last = inst.last_op()
            key = f"{last.type}/{last.state}" if last else "none"
            states[key] = states.get(key, 0) + 1
        return {
            "now": self.pod_time(self.now).isoformat(),
            "instances": len(self.instances),
            "archived": len(self.archive),
            "lastOperations": states,
        }


def populate(fleet: Fleet, size: int, *, in_progress: int = 0, plan: str | None = None) -> None:
    """``size`` finished runtimes, ``in_progress`` of them with an update that takes hours."""
    ids = [fleet.provision(done=True, plan=plan) for _ in range(size)]
    for instance_id in ids[:in_progress]:
        fleet.update(instance_id, duration=6 * 3600.0)


def churn(fleet: Fleet, rng: random.Random, moves: int = 1) -> None:
    """Move the world at random: start operations, let time pass (the property test's KEB)."""
    for _ in range(moves):
        ids = list(fleet.instances)
        roll = rng.random()
        if roll < 0.15 or not ids:
            fleet.provision(fail=rng.random() < 0.3, duration=rng.uniform(30, 900))
            continue
        inst = fleet.instances[rng.choice(ids)]
        if any(op.open for op in inst.ops) and roll < 0.8:
            fleet.advance(rng.uniform(10, 600))
        elif roll < 0.45:
            fleet.update(inst.instance_id, fail=rng.random() < 0.3, duration=rng.uniform(30, 600))
        elif roll < 0.55 and inst.active:
            fleet.suspend(inst.instance_id)
        elif roll < 0.65 and not inst.active:
            fleet.unsuspend(inst.instance_id)
        elif roll < 0.72:
            fleet.deprovision(inst.instance_id, fail=rng.random() < 0.2)
        else:
            fleet.advance(rng.uniform(10, 900))
