"""Operation quirks of the simulated KEB that the engine must not assume away.

* Skips (keb-concurrency.md §3.1): a picked operation whose instance is being deprovisioned
  goes ``pending -> succeeded`` ("operation preempted by deprovisioning"), and the init
  step's panic guard takes one ``pending -> failed``; neither is ever ``in progress``.
* Legacy ``retrying`` rows (§3.1, ``ResumeOperations``): rows that KEB of 2022 set to
  ``retrying`` are resumed by KEB 1.15.0 under their *old* IDs, ``retrying -> pending``
  ("Operation retry triggered"), and run again, so one operation ID can go
  ``in progress -> failed`` twice. Modelled as: some failing operations are rewritten to
  ``retrying`` a while after they failed and resumed a while later.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Final

from watcher.core.models import FAILED, PENDING, RETRYING
from watcher.sim.inventory import US_PER_SECOND
from watcher.sim.records import DESC_RETRY_TRIGGERED, OperationRecord, OrchestrationRecord

if TYPE_CHECKING:
    from watcher.sim.manager import Manager

#: A skipped operation holds its worker this long (the init step's round trips).
SKIP_US: Final = 2_000
#: A failed operation becomes ``retrying`` this long after it failed, and is resumed
#: (``pending``) this long after that.
LEGACY_GAP_US: Final = 90 * US_PER_SECOND


def mark_quirks(
    rng: random.Random, ops: Sequence[OperationRecord], skip_rate: float, legacy_resume: float
) -> None:
    """Choose, with the world's RNG, which new operations skip and which are resumed."""
    if skip_rate:
        for op in rng.sample(list(ops), round(skip_rate * len(ops))):
            op.skip = True
    if legacy_resume:
        failing = [op for op in ops if op.failure is not None]
        for op in rng.sample(failing, round(legacy_resume * len(failing))):
            op.resume = True


class LegacyRows:
    """Legacy ``retrying`` rows, resumed under their old IDs, on the manager's clock."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager

    def after_failure(self, orch: OrchestrationRecord, op: OperationRecord) -> None:
        """An operation marked for resumption failed: it is unfinished again (KEB waits for
        ``retrying`` rows) and becomes ``retrying`` a while later."""
        if not op.resume or op.state != FAILED:
            return
        op.resume = False
        orch.unfinished += 1
        m = self.manager
        m.schedule(m.now_us + LEGACY_GAP_US, partial(self._retrying, orch, op))

    def _retrying(self, orch: OrchestrationRecord, op: OperationRecord) -> None:
        m = self.manager
        if self._gone(orch, op):
            return
        m._record_op(orch, op, RETRYING, op.description)
        m.schedule(m.now_us + LEGACY_GAP_US, partial(self._resume, orch, op))

    def _resume(self, orch: OrchestrationRecord, op: OperationRecord) -> None:
        m = self.manager
        if self._gone(orch, op):
            return
        m._record_op(orch, op, PENDING, DESC_RETRY_TRIGGERED)
        heapq.heappush(orch.ready2 if op.second_pool else orch.ready, (op.seq, op))
        m._dispatch(orch)

    def _gone(self, orch: OrchestrationRecord, op: OperationRecord) -> bool:
        """Deleted by the cleaning step meanwhile: no longer waited for."""
        if not op.vanished:
            return False
        orch.unfinished -= 1
        self.manager._maybe_complete(orch)
        return True
