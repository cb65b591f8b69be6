"""The operator a scenario scripts: cancels and retries at a set time, after a share of the
operations finished, or some time after the orchestration ended (a late retry).

It acts through the same entry points as the HTTP API (:meth:`Manager.cancel`,
:meth:`Manager.retry`), so a scripted retry is indistinguishable from ``kcp orchestration
retry``.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import TYPE_CHECKING

from watcher.sim.api import SimApiError
from watcher.sim.inventory import US_PER_SECOND
from watcher.sim.records import OrchestrationRecord
from watcher.sim.scenarios import ScriptedAction

if TYPE_CHECKING:
    from watcher.sim.manager import Manager


class ScriptedOperator:
    """Fires each orchestration's scripted actions on the manager's virtual clock."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager
        #: Actions not fired or dropped yet: the world is finished only when this is 0.
        self.pending = 0

    def register(self, orch: OrchestrationRecord) -> None:
        manager = self.manager
        for action in orch.profile.actions:
            orch.actions.append(action)
            self.pending += 1
            if action.at is not None:
                at_us = manager.epoch_us + round(action.at * US_PER_SECOND)
                manager.schedule(max(at_us, manager.now_us), partial(self._fire, orch, action))

    def on_progress(self, orch: OrchestrationRecord) -> None:
        for action in list(orch.actions):
            fraction = action.after_done_fraction
            if fraction is not None and orch.finished >= fraction * len(orch.ops):
                self._fire(orch, action)

    def on_terminal(self, orch: OrchestrationRecord) -> None:
        first, orch.was_terminal = not orch.was_terminal, True
        for action in list(orch.actions):
            if action.after_done_fraction is not None:
                self._drop(orch, action)  # the moment it waited for can no longer come
            elif action.after_terminal is not None and first:
                delay = round(action.after_terminal * US_PER_SECOND)
                self.manager.schedule(
                    self.manager.now_us + delay, partial(self._fire, orch, action)
                )

    def _drop(self, orch: OrchestrationRecord, action: ScriptedAction) -> bool:
        for index, pending in enumerate(orch.actions):
            if pending is action:
                del orch.actions[index]
                self.pending -= 1
                return True
        return False

    def _fire(self, orch: OrchestrationRecord, action: ScriptedAction) -> None:
        if not self._drop(orch, action):
            return
        if action.kind == "cancel":
            self.manager.cancel(orch)
        else:
            # Canceled meanwhile: KEB answers 500 and nothing changes.
            with contextlib.suppress(SimApiError):
                self.manager.retry(orch, ())
