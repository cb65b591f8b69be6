"""The orchestration manager of the simulated KEB: every state change, driven by events.

This is the pure core behind :class:`watcher.sim.world.Simulator`: no locks, no wall clock.
Virtual time is integer microseconds since the Unix epoch (``now_us``); events sit in a heap
ordered by ``(time, sequence)`` so that the same seed and the same calls replay identically.

Behaviour follows docs/keb-api.md §4.3 (transitions and description strings), §4.5 (``updatedAt``
only moves on creation, cancel, retry request and completion), §2.5/§2.6 (cancel and retry)
and §3.4 (``operationStats``; an orchestration fails iff its de-duplicated ``failed`` > 0).

Deliberate simplifications: KEB's limit of three orchestrations processed at once (§9) is
modelled only where a scenario sets ``pod_slots`` (the ``large`` scenario needs 40 in
progress), and only for first starts; the manager's one-minute poll is modelled only for
retry pickup and for concluding a cancel.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final

from watcher.core.models import (
    CANCELED,
    CANCELING,
    FAILED,
    IN_PROGRESS,
    PENDING,
    SUCCEEDED,
    TERMINAL_ORCHESTRATION_STATES,
)
from watcher.sim.api import (
    UpgradeRequest,
    operation_not_found,
    orchestration_not_found,
)
from watcher.sim.inventory import (
    US_PER_SECOND,
    Inventory,
    Runtime,
    new_uuid,
)
from watcher.sim.legacy import SKIP_US, LegacyRows, mark_quirks
from watcher.sim.operator import ScriptedOperator
from watcher.sim.records import (
    DESC_DRY_RUN,
    DESC_OP_CANCELED,
    DESC_OP_CREATED,
    DESC_ORCH_CANCELED,
    DESC_POST_UPGRADE,
    DESC_PREEMPTED,
    DESC_QUEUED,
    DESC_SUCCEEDED,
    DESC_UPGRADING,
    VANISHED,
    OperationRecord,
    OrchestrationRecord,
    to_us,
)
from watcher.sim.retries import RetryFlow
from watcher.sim.scenarios import (
    POSTED_PROFILE,
    PROVISIONER_PREFIX,
    OrchestrationSpec,
    ScenarioSpec,
)
from watcher.sim.windows import OperationWindows

#: The orchestration manager polls every minute (docs/keb-api.md §9): a cancel is concluded
#: within that (retries: :mod:`watcher.sim.retries`).
CANCEL_CONCLUDE_US: Final = 30 * US_PER_SECOND
#: ``waitForStart`` polls every 5 minutes until ``ScheduleTime``.
SCHEDULE_POLL_US: Final = 300 * US_PER_SECOND
#: While canceling, a free worker picks up the next operation that came due and cancels it
#: on its own this long after (``cancel_one_by_one``, docs/keb-api.md §12.5).
CANCEL_PICKUP_US: Final = 30 * US_PER_SECOND

ScheduledEvent = tuple[int, int, Callable[[], None]]


class Manager:
    """The world's state and its transitions. Callers serialise access (one lock)."""

    def __init__(self, scenario: ScenarioSpec, seed: int) -> None:
        self._rng = random.Random(seed)
        self.events: list[ScheduledEvent] = []
        self._event_seq = itertools.count()
        self._op_seq = itertools.count()
        self.epoch_us = to_us(scenario.epoch)
        self.orchs: dict[str, OrchestrationRecord] = {}
        self.ops: dict[str, OperationRecord] = {}
        self._latest: dict[str, OperationRecord] = {}  # newest operation per runtime
        self._inventory = Inventory()
        #: Formatted maintenance windows by (hour, from, now): 80,000 operations share 24.
        self._windows = OperationWindows()
        #: Scripted actions not yet fired or dropped.
        #: The scenario's scripted operator (cancels and retries at set moments).
        self.operator = ScriptedOperator(self)
        #: Retry requests and their pickup (rows first, then the description).
        self.retries = RetryFlow(self)
        #: Skips and legacy ``retrying`` rows resumed under their old IDs.
        self.legacy = LegacyRows(self)
        #: Operation truth events that changed the state (creation and vanishing included).
        self.op_changes = 0
        #: KEB pod slots (``pod_slots``): orchestrations holding one, and those waiting.
        self._slots, self._busy, self._queued = scenario.pod_slots, set[str](), list[Any]()
        accounts = [
            self._inventory.add_group(
                self._rng, spec.ops, plans=spec.plans, window_hours=spec.window_hours
            )
            for spec in scenario.orchestrations
        ]
        if scenario.spare_runtimes:
            self._inventory.add_group(self._rng, scenario.spare_runtimes)
        for spec, account in zip(scenario.orchestrations, accounts, strict=True):
            # Sub-second jitter so that timestamps look like real ones (``...:03.512345Z``).
            created = self.epoch_us + round(spec.created * US_PER_SECOND)
            created -= self._rng.randrange(US_PER_SECOND // 2)
            self.schedule(created, partial(self._create_scripted, spec, account))
        # Scenario history before the epoch (creations, immediate starts) is played now.
        self.now_us = min((event[0] for event in self.events), default=self.epoch_us)
        self.run_until(self.epoch_us)

    def schedule(self, at_us: int, action: Callable[[], None]) -> None:
        """Run ``action`` at virtual time ``at_us`` (in order of scheduling at equal times)."""
        heapq.heappush(self.events, (at_us, next(self._event_seq), action))

    def run_until(self, target_us: int) -> None:
        """Process every event due at or before ``target_us`` in order; then now = target."""
        events = self.events
        while events and events[0][0] <= target_us:
            at_us, _, action = heapq.heappop(events)
            if at_us > self.now_us:
                self.now_us = at_us
            action()
        if target_us > self.now_us:
            self.now_us = target_us

    def get(self, orchestration_id: str, action: str = "get") -> OrchestrationRecord:
        orch = self.orchs.get(orchestration_id)
        if orch is None:
            raise orchestration_not_found(orchestration_id, action=action)
        return orch

    def create_posted(self, request: UpgradeRequest) -> OrchestrationRecord:
        """Store a validated ``POST /upgrade/cluster`` as ``pending`` and queue it (§2.7)."""
        now = self.now_us
        orch = OrchestrationRecord(
            orchestration_id=new_uuid(self._rng),
            profile=POSTED_PROFILE,
            created_us=now,
            include=list(request.include),
            exclude=list(request.exclude),
            strategy_type=request.strategy_type,
            schedule=request.schedule,
            schedule_time_us=now if request.schedule == "now" else request.schedule_time_us,
            maintenance_window=request.maintenance_window,
            workers=request.workers,
            dry_run=request.dry_run,
            notification=request.notification,
            kubernetes=request.kubernetes,
            updated_us=now,
        )
        self._register(orch)
        delay = round(POSTED_PROFILE.start_delay * US_PER_SECOND)
        self.schedule(now + delay, partial(self._start, orch))
        return orch

    def delete_operation(self, orchestration_id: str, operation_id: str) -> None:
        """KEB's cleaning step: the operation row disappears from every list (§2.10)."""
        orch = self.get(orchestration_id)
        op = self.ops.get(operation_id)
        if op is None or op.orchestration_id != orchestration_id:
            raise operation_not_found(operation_id)
        orch.ops.remove(op)
        del self.ops[operation_id]
        op.vanished = True
        if op.state == IN_PROGRESS:
            orch.running -= 1
            orch.running2 -= op.second_pool
        if op.state in (PENDING, IN_PROGRESS):
            orch.unfinished -= 1
        self._record_op(orch, op, VANISHED, op.description)
        runtime_id = op.runtime.runtime_id
        if self._latest.get(runtime_id) is op:
            rest = [x for x in self.ops.values() if x.runtime.runtime_id == runtime_id]
            if rest:
                self._latest[runtime_id] = max(rest, key=lambda x: x.seq)
            else:
                del self._latest[runtime_id]
        self._dispatch(orch)
        self._maybe_complete(orch)

    def _record_op(
        self, orch: OrchestrationRecord, op: OperationRecord, state: str, desc: str
    ) -> None:
        old = op.state
        op.state, op.description = state, desc
        orch.truth.append((self.now_us, op.operation_id, op.runtime.runtime_id, old, state, desc))
        if old != state:
            self.op_changes += 1

    def _set_orch(self, orch: OrchestrationRecord, state: str, desc: str, *, bump: bool) -> None:
        old = orch.state
        orch.state, orch.description = state, desc
        if bump:
            orch.updated_us = self.now_us
        orch.truth.append((self.now_us, None, "", old, state, desc))
        if state in TERMINAL_ORCHESTRATION_STATES and orch.orchestration_id in self._busy:
            self._busy.discard(orch.orchestration_id)
            if self._queued:  # the next waiting one takes the slot
                self.schedule(self.now_us, partial(self._start, self._queued.pop(0)))

    def _register(self, orch: OrchestrationRecord) -> None:
        self.orchs[orch.orchestration_id] = orch
        orch.truth.append((self.now_us, None, "", None, PENDING, DESC_QUEUED))
        self.operator.register(orch)

    def _create_scripted(self, spec: OrchestrationSpec, account: str) -> None:
        now = self.now_us
        orch = OrchestrationRecord(
            orchestration_id=new_uuid(self._rng),
            profile=spec,
            created_us=now,
            include=[{"globalAccount": account}],
            exclude=[],
            strategy_type="parallel",
            schedule=spec.schedule,
            # ``now`` stores the handler's clock reading, taken just before createdAt.
            schedule_time_us=now - self._rng.randrange(50, 400) if spec.schedule == "now" else None,
            maintenance_window=spec.maintenance_window,
            workers=spec.workers,
            dry_run=spec.dry_run,
            notification=spec.notification,
            kubernetes=None,
            updated_us=now,
        )
        self._register(orch)
        self.schedule(now + round(spec.start_delay * US_PER_SECOND), partial(self._start, orch))

    def _new_operation(
        self,
        orch: OrchestrationRecord,
        runtime: Runtime,
        failure: str | None,
        window: tuple[str, str, int],
    ) -> OperationRecord:
        low, high = orch.profile.duration
        last = orch.ops[-1].created_us if orch.ops else 0
        op = OperationRecord(
            operation_id=new_uuid(self._rng),
            orchestration_id=orch.orchestration_id,
            runtime=runtime,
            seq=next(self._op_seq),
            created_us=max(self.now_us, last + 1),  # createdAt strictly increasing
            window_begin=window[0],
            window_end=window[1],
            dry_run=orch.dry_run,
            duration_us=round(self._rng.uniform(low, high) * US_PER_SECOND),
            failure=None if orch.dry_run else failure,
            ready_us=window[2],
        )
        orch.ops.append(op)
        self.ops[op.operation_id] = op
        self._latest[runtime.runtime_id] = op
        orch.unfinished += 1
        orch.truth.append(
            (self.now_us, op.operation_id, runtime.runtime_id, None, PENDING, DESC_OP_CREATED)
        )
        self.op_changes += 1
        return op

    def _start(self, orch: OrchestrationRecord) -> None:
        """The manager picks the orchestration up: resolve targets, create operations."""
        if orch.state != PENDING:
            return  # canceled while queued
        if self._slots is not None and orch.orchestration_id not in self._busy:
            if len(self._busy) >= self._slots:
                self._queued.append(orch)  # waits pending, no operations (§0)
                return
            self._busy.add(orch.orchestration_id)
        profile = orch.profile
        runtimes = self._inventory.resolve(orch.include, orch.exclude)
        if orch.kubernetes is None or not orch.kubernetes["kubernetesVersion"]:
            orch.kubernetes = {
                "kubernetesVersion": profile.kubernetes_version,
                "machineImage": (orch.kubernetes or {}).get("machineImage", ""),
                "machineImageVersion": (orch.kubernetes or {}).get("machineImageVersion", ""),
            }
        count = len(runtimes)
        failing = self._rng.sample(range(count), round(profile.failure_rate * count))
        reasons = {
            index: profile.reasons[n % len(profile.reasons)] for n, index in enumerate(failing)
        }
        # Without maintenance windows every operation gets the same window: format it once.
        shared = (
            None
            if orch.maintenance_window or not runtimes
            else self._windows.of(orch, runtimes[0], self.now_us)
        )
        for index, runtime in enumerate(runtimes):
            window = shared or self._windows.of(orch, runtime, self.now_us)
            self._new_operation(orch, runtime, reasons.get(index), window)
        if profile.skip_rate or profile.legacy_resume:
            mark_quirks(self._rng, orch.ops, profile.skip_rate, profile.legacy_resume)
        if profile.hang and orch.ops:
            orch.ops[0].duration_us = round(profile.hang * US_PER_SECOND)
        description = f"Scheduled {count} operations"
        start_at = orch.schedule_time_us
        if start_at is not None and start_at > self.now_us:
            self._set_orch(orch, PENDING, description, bump=False)
            polls = -(-(start_at - self.now_us) // SCHEDULE_POLL_US)
            self.schedule(self.now_us + polls * SCHEDULE_POLL_US, partial(self._begin, orch))
        else:
            orch.description = description
            self._begin(orch)

    def _begin(self, orch: OrchestrationRecord) -> None:
        if orch.state != PENDING:
            return
        if not orch.ops:  # nothing matched the targets: straight to succeeded (§4.3)
            self._set_orch(orch, SUCCEEDED, orch.description, bump=True)
            self.operator.on_terminal(orch)
            return
        # pending -> in progress does not touch updatedAt (docs/keb-api.md §4.5).
        self._set_orch(orch, IN_PROGRESS, orch.description, bump=False)
        # One event per distinct window start, not per operation (80,000 in "large").
        later: dict[int, list[OperationRecord]] = {}
        for op in orch.ops:
            if op.ready_us <= self.now_us:
                heapq.heappush(_heap(orch, op), (op.seq, op))
            else:
                later.setdefault(op.ready_us, []).append(op)
        for ready_us, ops in later.items():
            self.schedule(ready_us, partial(self._on_ready_all, orch, ops))
        self._dispatch(orch)
        self._maybe_complete(orch)

    def _make_ready(self, orch: OrchestrationRecord, op: OperationRecord) -> None:
        if op.ready_us <= self.now_us:
            heapq.heappush(_heap(orch, op), (op.seq, op))
        else:
            self.schedule(op.ready_us, partial(self._on_ready, orch, op))

    def _on_ready(self, orch: OrchestrationRecord, op: OperationRecord) -> None:
        if not op.vanished and op.state == PENDING:
            heapq.heappush(_heap(orch, op), (op.seq, op))
            self._dispatch(orch)

    def _on_ready_all(self, orch: OrchestrationRecord, ops: list[OperationRecord]) -> None:
        for op in ops:
            if not op.vanished and op.state == PENDING:
                heapq.heappush(_heap(orch, op), (op.seq, op))
        self._dispatch(orch)

    def _dispatch(self, orch: OrchestrationRecord) -> None:
        """Start ready operations in creation order while workers are free.

        Only the ``parallel`` strategy exists; any other type, or ``workers <= 0``, never
        starts an operation, exactly as KEB (§2.7). Operations retried while the orchestration
        was in progress have a second pool of ``workers`` of their own, so more than
        ``workers`` can be in progress at once (docs/keb-api.md §12.10).
        """
        if orch.state == CANCELING and orch.profile.cancel_one_by_one:
            self._cancel_pickup(orch)
            return
        # Operations that outlive their orchestration's outcome run on (§3.4).
        outliving = orch.profile.outlive and orch.state in TERMINAL_ORCHESTRATION_STATES
        if (orch.state != IN_PROGRESS and not outliving) or orch.strategy_type != "parallel":
            return
        if orch.profile.legacy_kyma:
            return  # KEB 1.8.9 and later no longer process upgradeKyma (docs/keb-api.md §12.8)
        while orch.running - orch.running2 < orch.workers and orch.ready:
            _, op = heapq.heappop(orch.ready)
            if not op.vanished and op.state == PENDING:
                self._start_op(orch, op)
        while orch.running2 < orch.workers and orch.ready2:
            _, op = heapq.heappop(orch.ready2)
            if not op.vanished and op.state == PENDING:
                orch.running2 += 1
                self._start_op(orch, op)

    def _start_op(self, orch: OrchestrationRecord, op: OperationRecord) -> None:
        orch.running += 1
        if op.skip:  # ends straight from pending, never in progress (legacy.py)
            self.schedule(self.now_us + SKIP_US, partial(self._finish, orch, op))
            return
        # The description stays "Operation created" until the provisioner call.
        self._record_op(orch, op, IN_PROGRESS, DESC_OP_CREATED)
        if op.dry_run:
            self.schedule(self.now_us + op.duration_us, partial(self._finish, orch, op))
            return
        op.kubernetes_version = (orch.kubernetes or {}).get("kubernetesVersion", "")
        lead = max(US_PER_SECOND, op.duration_us // 20)
        self.schedule(self.now_us + lead, partial(self._upgrading, orch, op))

    def _cancel_pickup(self, orch: OrchestrationRecord) -> None:
        """``canceling``: a free worker takes the next operation that came due; its
        initialisation step sees the cancel and cancels that operation alone (§12.5)."""
        if orch.cancel_busy or orch.running >= orch.workers:
            return
        for heap in (orch.ready, orch.ready2):
            while heap:
                _, op = heapq.heappop(heap)
                if not op.vanished and op.state == PENDING:
                    orch.cancel_busy = True
                    self.schedule(
                        self.now_us + CANCEL_PICKUP_US, partial(self._cancel_one, orch, op)
                    )
                    return

    def _cancel_one(self, orch: OrchestrationRecord, op: OperationRecord) -> None:
        orch.cancel_busy = False
        if orch.state == CANCELING and op.state == PENDING and not op.vanished:
            desc = f"orchestration {orch.orchestration_id} was canceled"
            self._record_op(orch, op, CANCELED, desc)
            orch.unfinished -= 1
        self._dispatch(orch)

    def _upgrading(self, orch: OrchestrationRecord, op: OperationRecord) -> None:
        if op.vanished:
            return
        self._record_op(orch, op, IN_PROGRESS, DESC_UPGRADING)
        rest = op.duration_us - max(US_PER_SECOND, op.duration_us // 20)
        if op.failure is not None and not op.failure.startswith(PROVISIONER_PREFIX):
            # A timeout fires while the upgrade is still running: no post-upgrade stage.
            self.schedule(self.now_us + max(1, rest), partial(self._finish, orch, op))
        else:
            upgrade = max(1, rest * 5 // 6)
            self.schedule(
                self.now_us + upgrade, partial(self._post_upgrade, orch, op, rest - upgrade)
            )

    def _post_upgrade(self, orch: OrchestrationRecord, op: OperationRecord, rest: int) -> None:
        if op.vanished:
            return
        self._record_op(orch, op, IN_PROGRESS, DESC_POST_UPGRADE)
        self.schedule(self.now_us + max(1, rest), partial(self._finish, orch, op))

    def _finish(self, orch: OrchestrationRecord, op: OperationRecord) -> None:
        if op.vanished:
            return
        if op.failure is not None:
            self._record_op(orch, op, FAILED, op.failure)
        elif op.skip:
            self._record_op(orch, op, SUCCEEDED, DESC_PREEMPTED)
        else:
            self._record_op(orch, op, SUCCEEDED, DESC_DRY_RUN if op.dry_run else DESC_SUCCEEDED)
        orch.running -= 1
        orch.running2 -= op.second_pool
        orch.unfinished -= 1
        orch.finished += 1
        self.legacy.after_failure(orch, op)
        self.operator.on_progress(orch)
        if orch.profile.handoff:  # the worker takes the next operation a moment later
            handoff = round(orch.profile.handoff * US_PER_SECOND)
            self.schedule(self.now_us + handoff, partial(self._dispatch, orch))
        else:
            self._dispatch(orch)
        self._maybe_complete(orch)

    def _maybe_complete(self, orch: OrchestrationRecord) -> None:
        if orch.state == IN_PROGRESS:
            if orch.unfinished <= orch.profile.outlive and not orch.pickup_pending:
                # failed iff the de-duplicated per-instance count says so (§3.4).
                final = FAILED if orch.stats()[FAILED] > 0 else SUCCEEDED
                self._set_orch(orch, final, orch.description, bump=True)
                self.operator.on_terminal(orch)
        elif (
            orch.state == CANCELING
            and orch.running == 0
            and not orch.finalize_pending
            and orch.profile.cancel_concludes
        ):
            orch.finalize_pending = True
            self.schedule(self.now_us + CANCEL_CONCLUDE_US, partial(self._conclude_cancel, orch))

    def _conclude_cancel(self, orch: OrchestrationRecord) -> None:
        orch.finalize_pending = False
        if orch.state != CANCELING or orch.running:
            return
        for op in orch.ops:
            if op.state == PENDING:
                self._record_op(orch, op, CANCELED, DESC_OP_CANCELED)
                orch.unfinished -= 1
        orch.ready.clear()
        orch.ready2.clear()
        self._set_orch(orch, CANCELED, orch.description, bump=True)
        self.operator.on_terminal(orch)

    def cancel(self, orch: OrchestrationRecord) -> None:
        """``PUT .../cancel``: no change when terminal or already canceling (§2.5)."""
        if orch.state in TERMINAL_ORCHESTRATION_STATES or orch.state == CANCELING:
            return
        self._set_orch(orch, CANCELING, DESC_ORCH_CANCELED, bump=True)
        self._dispatch(orch)
        self._maybe_complete(orch)

    def retry(self, orch: OrchestrationRecord, operation_ids: Sequence[str]) -> dict[str, Any]:
        """``POST .../retry`` (§2.6): the ``RetryResponse``; 500 when canceled meanwhile."""
        return self.retries.retry(orch, operation_ids)


def _heap(orch: OrchestrationRecord, op: OperationRecord) -> list[tuple[int, OperationRecord]]:
    """The ready heap of the worker pool that runs ``op``."""
    return orch.ready2 if op.second_pool else orch.ready
