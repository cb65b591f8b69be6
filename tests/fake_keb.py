"""A small, fast, in-process model of one KEB orchestration for property tests.

It follows KEB's rules (docs/keb-api.md §3.4, §4): operations move forward only, lists are oldest
first and filtered by exact state, ``operationStats`` has per-instance ``failed``, retries append
new operations, cancel cancels pending ones, the cleaning step can delete rows. It records the
ground truth of every state an operation and the orchestration passed through. Between any two
requests it can apply more world steps (``interleave``), which is how paging races are made.

This is a test double of KEB, the external system; the real-HTTP simulator (``watcher.sim``) is
used by the end-to-end tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from watcher.core.models import (
    CANCELED,
    CANCELING,
    FAILED,
    IN_PROGRESS,
    PENDING,
    RETRYING,
    SUCCEEDED,
    Operation,
    OperationDetail,
    Orchestration,
    Page,
    operation_stats,
)
from watcher.errors import KebNotFound

REASONS = (
    "provisioner client returns failed status: shoot reconciliation timed out",
    "provisioner client returns failed status: quota exceeded",
    "operation has reached the time limit: 3h0m0s",
)


@dataclass
class _Op:
    op_id: str
    runtime: str
    state: str = PENDING
    description: str = "Operation created"
    vanished: bool = False


@dataclass
class FakeKeb:
    rng: random.Random
    size: int
    workers: int
    orch_id: str = "orch-1"
    state: str = PENDING
    description: str = "queued for processing"
    ops: list[_Op] = field(default_factory=list)
    truth: dict[str, list[str]] = field(default_factory=dict)
    orch_truth: list[str] = field(default_factory=lambda: [PENDING])
    retried: bool = False
    requests: int = 0
    interleave: Callable[[], None] | None = None
    _counter: int = 0

    # -- the world ------------------------------------------------------------------------

    def _new_op(self, runtime: str) -> _Op:
        self._counter += 1
        op = _Op(f"op-{self._counter:05d}", runtime)
        self.ops.append(op)
        self.truth[op.op_id] = [PENDING]
        return op

    def _move(self, op: _Op, state: str, description: str) -> None:
        op.state, op.description = state, description
        self.truth[op.op_id].append(state)

    def _set_orch(self, state: str, description: str | None = None) -> None:
        if state != self.state:
            self.orch_truth.append(state)
        self.state = state
        if description is not None:
            self.description = description

    def _live(self) -> list[_Op]:
        return [op for op in self.ops if not op.vanished]

    @property
    def finished(self) -> bool:
        return self.state in (SUCCEEDED, CANCELED) or (self.state == FAILED and self.retried)

    def step(self) -> None:
        """Apply one random KEB event."""
        rng = self.rng
        live = self._live()
        if self.state == PENDING:
            for i in range(self.size):
                self._new_op(f"rt-{i:04d}")
            self._set_orch(IN_PROGRESS, f"Scheduled {self.size} operations")
            if self.size == 0:
                self._set_orch(SUCCEEDED)
            return
        if self.state == FAILED and not self.retried:
            self.retried = True
            self._set_orch(RETRYING, self.description + ", retrying")
            return
        if self.state == RETRYING:
            failed = {op.runtime for op in live if op.state == FAILED}
            cleared = {op.runtime for op in live if op.state in (SUCCEEDED, IN_PROGRESS)}
            runtimes = sorted(failed - cleared)
            for runtime in runtimes:
                self._new_op(runtime)
            base = self.description.removesuffix(", retrying")
            self._set_orch(IN_PROGRESS, f"{base}, retried {len(runtimes)} operations")
            return
        if self.state not in (IN_PROGRESS, CANCELING):
            return
        pending = [op for op in live if op.state == PENDING]
        running = [op for op in live if op.state == IN_PROGRESS]
        roll = rng.random()
        if self.state == CANCELING and pending:
            for op in pending:
                self._move(op, CANCELED, "Operation was canceled")
        elif roll < 0.01 and self.state == IN_PROGRESS:
            self._set_orch(CANCELING, "Orchestration was canceled")
        elif roll < 0.03 and live:
            victim = rng.choice(live)
            if victim.state != IN_PROGRESS:
                victim.vanished = True
                self.truth[victim.op_id].append("vanished")
        elif roll < 0.5 and pending and len(running) < self.workers:
            op = pending[0] if rng.random() < 0.85 else rng.choice(pending)
            self._move(op, IN_PROGRESS, "Operation created")
        elif roll < 0.55 and running:
            rng.choice(running).description = "Performing post-upgrade tasks"
        elif running:
            op = rng.choice(running)
            if rng.random() < 0.2:
                self._move(op, FAILED, rng.choice(REASONS))
            else:
                self._move(op, SUCCEEDED, "Operation succeeded")
        live = self._live()
        if not any(op.state in (PENDING, IN_PROGRESS) for op in live):
            if self.state == CANCELING:
                self._set_orch(CANCELED)
            else:
                stats = operation_stats((op.runtime, op.state) for op in live)
                self._set_orch(FAILED if stats[FAILED] else SUCCEEDED)

    # -- the API (KebReader) --------------------------------------------------------------

    def _request(self, orch_id: str) -> None:
        self.requests += 1
        if self.interleave is not None:
            self.interleave()
        if orch_id != self.orch_id:
            raise KebNotFound(f"KEB GET /orchestrations/{orch_id}: 404 Not Found", status=404)

    def _op(self, op: _Op) -> Operation:
        return Operation(
            op.op_id,
            orchestration_id=self.orch_id,
            runtime_id=op.runtime,
            shoot_name=f"c-{op.runtime[3:]}",
            state=op.state,
            description=op.description,
        )

    async def get_orchestration(self, orchestration_id: str) -> Orchestration:
        self._request(orchestration_id)
        stats = operation_stats((op.runtime, op.state) for op in self._live())
        return Orchestration(
            self.orch_id,
            type="upgradeCluster",
            state=self.state,
            description=self.description,
            parameters={"strategy": {"parallel": {"workers": self.workers}}},
            operation_stats=stats,
        )

    def _filtered(self, states: Sequence[str]) -> list[_Op]:
        return [op for op in self._live() if not states or op.state in states]

    async def list_operations_page(
        self,
        orchestration_id: str,
        *,
        page: int = 1,
        page_size: int = 100,
        states: Sequence[str] = (),
    ) -> Page[Operation]:
        self._request(orchestration_id)
        items = self._filtered(states)
        chunk = items[(page - 1) * page_size : page * page_size]
        return Page([self._op(op) for op in chunk], len(chunk), len(items))

    async def list_operations(
        self, orchestration_id: str, states: Sequence[str] = ()
    ) -> list[Operation]:
        """All pages, with the same consistency check as the real client."""
        for _ in range(5):
            first = await self.list_operations_page(orchestration_id, states=states)
            items = list(first.items)
            total = first.total_count
            ok = True
            page = 2
            while len(items) < total and page <= total // 100 + 2:
                nxt = await self.list_operations_page(orchestration_id, page=page, states=states)
                ok = ok and nxt.total_count == total
                items.extend(nxt.items)
                page += 1
            ids = [op.operation_id for op in items]
            if ok and len(set(ids)) == len(ids) == total:
                return items
        raise AssertionError("fake KEB list kept changing")

    async def get_operation(self, orchestration_id: str, operation_id: str) -> OperationDetail:
        self._request(orchestration_id)
        for op in self._live():
            if op.op_id == operation_id:
                return OperationDetail(self._op(op))
        raise KebNotFound(f"operation {operation_id} not found", status=404)
