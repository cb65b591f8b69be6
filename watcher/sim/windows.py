"""The window a new operation gets (docs/keb-api.md §3.5), remembered per hour and time: an
orchestration of thousands of runtimes shares a handful of windows."""

from __future__ import annotations

from watcher.sim.inventory import Runtime, next_window
from watcher.sim.records import ZERO_TIME, OrchestrationRecord, format_us

#: Windows remembered before the memo starts again.
MEMO_SIZE = 4096


class OperationWindows:
    """``(begin, end, ready_us)`` of each new operation of an orchestration."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int, int], tuple[str, str, int]] = {}

    def of(self, orch: OrchestrationRecord, runtime: Runtime, now: int) -> tuple[str, str, int]:
        if orch.maintenance_window:
            key = (runtime.window_hour, max(now, orch.schedule_time_us or 0), now)
            found = self._memo.get(key)
            if found is None:
                begin, end = next_window(key[0], key[1])
                found = self._memo[key] = (format_us(begin), format_us(end), max(begin, now))
                if len(self._memo) > MEMO_SIZE:
                    self._memo.clear()
            return found
        if orch.schedule_time_us is None:
            return ZERO_TIME, ZERO_TIME, now
        stamp = format_us(orch.schedule_time_us)
        return stamp, stamp, now
