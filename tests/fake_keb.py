"""A small, fast, in-process model of one KEB orchestration for property tests.

It follows KEB's rules (docs/keb-api.md §3.4, §4, §12): operations move forward only, lists are
oldest first and filtered by exact state, ``operationStats`` has per-instance ``failed``, retries
append new operations (rows one at a time, before the description says so; also while the
orchestration is still in progress, beyond ``workers``), pending operations start anywhere in the
list when ``spread`` (maintenance windows), ``canceling`` cancels them one by one before the bulk,
the cleaning step can delete rows. It records the ground truth of every state an operation and
the orchestration passed through. Between any two requests, and between the two queries KEB
runs for one response (a page and its ``totalCount``, an orchestration and its stats), it can
apply more world steps (``interleave``), which is how races are made.

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
from watcher.errors import KebListChanged, KebNotFound

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
    spread: bool = False
    requests: int = 0
    #: Runtimes whose retry rows are still to be inserted (one per step), then the
    #: description changes: KEB's write order (§12.2).
    staged: list[str] = field(default_factory=list)
    staged_total: int = 0
    #: Operations created by a retry (for runtimes whose operation failed).
    retry_ops: set[str] = field(default_factory=set)
    #: Runtimes deprovisioned (their operations deleted by the cleaning step).
    gone: set[str] = field(default_factory=set)
    interleave: Callable[[], None] | None = None
    #: KEB's workers as they are (keb-concurrency.md §0, §3.1): one step can be a hand-off
    #: (an operation ends and the worker starts the next pending one in the same step), and
    #: operations can end straight from ``pending`` (preempted, or the panic guard).
    handoffs: bool = False
    #: The state filter of every whole-list read (``list_operations``), in order.
    lists: list[tuple[str, ...]] = field(default_factory=list)
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

    def marks(self) -> tuple[int, dict[str, int]]:
        """How far each truth has got: taken around the baseline poll, they bound which truth
        position the baseline saw."""
        return len(self.orch_truth), {op_id: len(t) for op_id, t in self.truth.items()}

    def _retryable(self) -> list[str]:
        live = self._live()
        failed = {op.runtime for op in live if op.state == FAILED}
        cleared = {op.runtime for op in live if op.state in (SUCCEEDED, IN_PROGRESS, PENDING)}
        return sorted(failed - cleared - self.gone)

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
            self.staged = self._retryable()
            self.staged_total = len(self.staged)
            return
        if self.staged:
            self.retry_ops.add(self._new_op(self.staged.pop(0)).op_id)
            return
        if self.state == RETRYING:
            base = self.description.removesuffix(", retrying")
            self._set_orch(IN_PROGRESS, f"{base}, retried {self.staged_total} operations")
            return
        if self.staged_total and self.state == IN_PROGRESS and "retried" not in self.description:
            self.description += f", retried {self.staged_total} operations"
            self.staged_total = 0
            return
        if self.state not in (IN_PROGRESS, CANCELING):
            return
        pending = [op for op in live if op.state == PENDING]
        running = [op for op in live if op.state == IN_PROGRESS]
        if self.handoffs and self.state == IN_PROGRESS and self._worker_quirk(pending, running):
            self._maybe_end()
            return
        roll = rng.random()
        if self.state == CANCELING and pending and roll < 0.6:
            # Workers still pick up operations that come due and cancel each (§12.5).
            self._move(rng.choice(pending), CANCELED, f"orchestration {self.orch_id} was canceled")
        elif self.state == CANCELING and pending:
            for op in pending:
                self._move(op, CANCELED, "Operation was canceled")
        elif roll < 0.01 and self.state == IN_PROGRESS:
            self._set_orch(CANCELING, "Orchestration was canceled")
        elif roll < 0.03 and live:
            # The cleaning step deletes every operation of a deprovisioned instance (§2.10);
            # a deprovisioned runtime is not retried.
            runtime = rng.choice(live).runtime
            doomed = [op for op in live if op.runtime == runtime]
            if all(op.state != IN_PROGRESS for op in doomed):
                for op in doomed:
                    op.vanished = True
                    self.truth[op.op_id].append("vanished")
                self.gone.add(runtime)
                self.staged = [r for r in self.staged if r != runtime]
        elif roll < 0.035 and self.state == IN_PROGRESS and not self.retried and self._retryable():
            # A retry while still in progress: new rows first, the description later (§12.2).
            self.retried = True
            self.staged = self._retryable()
            self.staged_total = len(self.staged)
        elif roll < 0.5 and pending and (len(running) < self.workers or self.staged_total):
            spread = self.spread or rng.random() >= 0.85
            op = rng.choice(pending) if spread else pending[0]
            self._move(op, IN_PROGRESS, "Operation created")
        elif roll < 0.55 and running:
            rng.choice(running).description = "Performing post-upgrade tasks"
        elif running:
            op = rng.choice(running)
            if rng.random() < 0.2:
                self._move(op, FAILED, rng.choice(REASONS))
            else:
                self._move(op, SUCCEEDED, "Operation succeeded")
        self._maybe_end()

    def _worker_quirk(self, pending: list[_Op], running: list[_Op]) -> bool:
        """A hand-off or a skip, sometimes (``handoffs``); ``True`` when one happened."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.25 and running and pending:
            return self.hand_off()
        if roll < 0.32 and pending:
            return self.skip()
        return False

    def skip(self) -> bool:
        """A pending operation ends without ever being in progress: preempted by
        deprovisioning (``succeeded``) or the init step's panic guard (``failed``)."""
        pending = [op for op in self._live() if op.state == PENDING]
        if self.state != IN_PROGRESS or not pending:
            return False
        op = self.rng.choice(pending)
        if self.rng.random() < 0.3:
            self._move(op, FAILED, "panic: init step")
        else:
            self._move(op, SUCCEEDED, "operation preempted by deprovisioning operation")
        self._maybe_end()
        return True

    def hand_off(self) -> bool:
        """A worker hand-off: an operation in progress ends and its worker starts a pending
        one, both before the next request (keb-concurrency.md §0.2); ``False`` when there
        is nothing to hand off (no running or no pending operation)."""
        if self.state != IN_PROGRESS:
            return False
        rng, live = self.rng, self._live()
        running = [op for op in live if op.state == IN_PROGRESS]
        pending = [op for op in live if op.state == PENDING]
        if not running or not pending:
            return False
        done = rng.choice(running)
        if rng.random() < 0.3:
            self._move(done, FAILED, rng.choice(REASONS))
        else:
            self._move(done, SUCCEEDED, "Operation succeeded")
        self._move(rng.choice(pending), IN_PROGRESS, "Operation created")
        self._maybe_end()
        return True

    def _maybe_end(self) -> None:
        live = self._live()
        if not self.staged and not any(op.state in (PENDING, IN_PROGRESS) for op in live):
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
        state, description = self.state, self.description
        if self.interleave is not None:  # the row and its stats are two queries (§12.6)
            self.interleave()
        stats = operation_stats((op.runtime, op.state) for op in self._live())
        return Orchestration(
            self.orch_id,
            type="upgradeCluster",
            state=state,
            description=description,
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
        chunk = [self._op(op) for op in items[(page - 1) * page_size : page * page_size]]
        if self.interleave is not None:  # the page and its totalCount are two queries (§12.6)
            self.interleave()
        return Page(chunk, len(chunk), len(self._filtered(states)))

    async def list_operations(
        self,
        orchestration_id: str,
        states: Sequence[str] = (),
        *,
        max_pages: int | None = None,
    ) -> list[Operation]:
        """All pages, with the same consistency check as the real client, read once."""
        self.lists.append(tuple(states))
        first = await self.list_operations_page(orchestration_id, states=states)
        items = list(first.items)
        total = first.total_count
        last = max(1, -(-total // 100))
        if max_pages is not None and last > max_pages:
            raise KebListChanged(f"fake KEB: {total} items, more than {max_pages} pages")
        ok = True
        for page in range(2, last + 1):
            nxt = await self.list_operations_page(orchestration_id, page=page, states=states)
            ok = ok and nxt.total_count == total
            items.extend(nxt.items)
            if len(nxt.items) < 100:
                break
        ids = [op.operation_id for op in items]
        if ok and len(set(ids)) == len(ids) == total:
            return items
        raise KebListChanged("fake KEB: the list changed while paging")

    async def get_operation(self, orchestration_id: str, operation_id: str) -> OperationDetail:
        self._request(orchestration_id)
        for op in self._live():
            if op.op_id == operation_id:
                return OperationDetail(self._op(op))
        raise KebNotFound(f"operation {operation_id} not found", status=404)
