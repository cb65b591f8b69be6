"""Retries in the simulated KEB: the request, and the manager's pickup of it.

``POST /orchestrations/{id}/retry`` stores the failed operations to retry (§2.6); within a
minute the orchestration manager picks the list up and inserts one new operation row per
runtime, one row at a time, and writes ``", retried K operations"`` into the description only
after the last row (``internal/orchestration/manager/manager.go``, docs/keb-api.md §12.2). A poll
can land between these writes. A retry of an orchestration that is still in progress starts a
second worker pool, so more than ``workers`` operations can run at once (§12.10).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from watcher.core.models import CANCELED, CANCELING, FAILED, IN_PROGRESS, RETRYING, SUCCEEDED
from watcher.sim.api import SimApiError, select_retry
from watcher.sim.inventory import US_PER_SECOND, year0_window
from watcher.sim.records import OperationRecord, OrchestrationRecord

if TYPE_CHECKING:
    from watcher.sim.manager import Manager

#: The orchestration manager polls every minute (docs/keb-api.md §9): retries are picked up
#: within that.
RETRY_PICKUP_US: Final = 60 * US_PER_SECOND


class RetryFlow:
    """Retry requests and their pickup, on the manager's virtual clock."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager

    def retry(self, orch: OrchestrationRecord, operation_ids: Sequence[str]) -> dict[str, Any]:
        """``POST .../retry`` (§2.6): the ``RetryResponse``; 500 when canceled meanwhile."""
        m = self.manager
        failed = [op for op in orch.ops if op.state == FAILED]
        candidates, invalid, old = select_retry(
            failed, operation_ids, check_newer=orch.state == FAILED, latest=m._latest
        )
        oid = orch.orchestration_id
        response: dict[str, Any] = {
            "orchestrationID": oid,
            "retryShoots": None,
            "oldOperations": old or None,
            "invalidOperations": invalid or None,
            "msg": f"No valid operations to retry for orchestration {oid}",
        }
        if not candidates:
            return response
        if orch.state in (CANCELING, CANCELED):
            raise SimApiError(500, f"orchestration {oid} was canceled right before retrying")
        response["retryShoots"] = [op.runtime.shoot_name for op in candidates]
        response["msg"] = "retry operations are queued for processing"
        orch.retry_ids.extend(op.operation_id for op in candidates)
        if orch.state == FAILED:
            m._set_orch(orch, RETRYING, orch.description + ", retrying", bump=True)
        if orch.state in (RETRYING, IN_PROGRESS) and not orch.pickup_pending:
            orch.pickup_pending = True
            m.schedule(m.now_us + RETRY_PICKUP_US, partial(self._pickup, orch))
        return response

    def _pickup(self, orch: OrchestrationRecord) -> None:
        """New operations, new IDs, same runtimes: rows ``row_gap`` apart, then the
        description (a poll can see the new rows while the orchestration still says
        ``retrying`` or shows the old description)."""
        if orch.state not in (RETRYING, IN_PROGRESS):
            orch.pickup_pending = False
            return
        ids, orch.retry_ids = orch.retry_ids, []
        if orch.state == RETRYING and not orch.profile.retry_resolves:
            # None of the retried instances resolves any more: KEB's manager finds no
            # runtime and the orchestration succeeds, its failed rows kept (keb-concurrency
            # §3.2), so ``operationStats.failed`` > 0 on a succeeded orchestration.
            orch.pickup_pending = False
            self.manager._set_orch(orch, SUCCEEDED, orch.description, bump=True)
            self.manager.operator.on_terminal(orch)
            return
        second = orch.state == IN_PROGRESS  # still running: a second worker pool (§12.10)
        self._insert_rows(orch, list(ids), [], second)

    def _insert_rows(
        self,
        orch: OrchestrationRecord,
        ids: list[str],
        created: list[OperationRecord],
        second: bool,
    ) -> None:
        m = self.manager
        if orch.state not in (RETRYING, IN_PROGRESS):  # canceled while rows were inserted
            orch.pickup_pending = False
            m._maybe_complete(orch)
            return
        profile = orch.profile
        gap = round(profile.row_gap * US_PER_SECOND)
        while ids:
            old = m.ops.get(ids.pop(0))
            if old is None:
                continue  # deleted by the cleaning step meanwhile
            failure = None
            if profile.retry_failure_rate and m._rng.random() < profile.retry_failure_rate:
                failure = profile.reasons[len(created) % len(profile.reasons)]
            window = m._windows.of(orch, old.runtime, m.now_us)
            if profile.retry_year0_windows:
                begin, end = year0_window(old.runtime.window_hour)
                window = (begin, end, window[2])
            op = m._new_operation(orch, old.runtime, failure, window)
            op.second_pool = second
            created.append(op)
            if ids and gap:
                m.schedule(m.now_us + gap, partial(self._insert_rows, orch, ids, created, second))
                return
        orch.pickup_pending = False
        base = orch.description.removesuffix(", retrying")
        m._set_orch(orch, IN_PROGRESS, f"{base}, retried {len(created)} operations", bump=False)
        for op in created:
            m._make_ready(orch, op)
        if orch.retry_ids:  # retried again while the rows were inserted
            orch.pickup_pending = True
            m.schedule(m.now_us + RETRY_PICKUP_US, partial(self._pickup, orch))
        m._dispatch(orch)
        m._maybe_complete(orch)
