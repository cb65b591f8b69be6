"""The simulated KEB as one thread-safe object: clock, ground truth and KEB's API as calls.

:class:`Simulator` wraps the event-driven :class:`~watcher.sim.manager.Manager` with

* a clock: with ``speed=None`` virtual time moves only through :meth:`Simulator.advance`; with
  ``speed=60.0`` it runs 60x real time from construction and every public call first catches
  the world up to virtual now;
* one re-entrant lock, because the HTTP threads and the caller's thread share the world;
* KEB's read and write API as methods returning the exact JSON objects KEB serves (docs/keb-api.md
  §2.1-§2.7) and raising :class:`~watcher.sim.api.SimApiError` with KEB's status and text;
* the ground truth (:meth:`Simulator.truth`) that a watcher's observations are judged by;
* with ``races``, KEB's two queries per answer (docs/keb-api.md §12.6): a list page and the
  ``COUNT(*)`` behind its ``totalCount``, an orchestration row and its ``operationStats``, are
  read at different moments, and the world's next events (due within :data:`RACE_HORIZON`
  virtual seconds) can happen in between; whether they do is drawn from an RNG seeded with
  the seed, so a run with the same requests in the same order replays identically;
* with ``moves``, KEB's workers between two *requests* (keb-concurrency.md §0, §9 rows 1-3):
  before each orchestration GET, operations page and operation GET, the world's next events
  may happen, so a poller's GET and its lists, and two pages of one list, see different
  moments (a worker hand-off between them is the steady state of a backlog).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from watcher.core.models import MAX_PAGE_SIZE, TERMINAL_ORCHESTRATION_STATES
from watcher.errors import UsageError
from watcher.sim.api import SimApiError, operation_not_found, validate_upgrade
from watcher.sim.faults import Faults
from watcher.sim.inventory import US_PER_SECOND
from watcher.sim.manager import Manager
from watcher.sim.records import UPGRADE_KYMA, TruthEvent, format_us, from_us
from watcher.sim.scenarios import SCENARIOS, ScenarioSpec
from watcher.sim.tokens import make_token

#: How far ahead (virtual seconds) a race between two queries may take the world.
RACE_HORIZON: Final = 30.0


class Simulator:
    """A KEB 1.8.12-1.15.0 orchestration backend in memory, playing a scenario.

    Same scenario, seed and sequence of calls (in manual-clock mode) give the same world, IDs
    included: every random choice comes from one ``random.Random(seed)``.
    """

    def __init__(
        self,
        scenario: ScenarioSpec,
        *,
        seed: int = 1,
        speed: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        races: float = 0.0,
        moves: float = 0.0,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive or None, got {speed!r}")
        if not 0.0 <= races <= 1.0:
            raise ValueError(f"races must be a probability in [0, 1], got {races!r}")
        if not 0.0 <= moves <= 1.0:
            raise ValueError(f"moves must be a probability in [0, 1], got {moves!r}")
        self.scenario = scenario
        self.seed = seed
        self.speed = speed
        self.faults = Faults(seed)
        #: The probability that the world moves on between the two queries of one answer.
        self.races = races
        # Its own RNG: races must not perturb the world's seeded sequence.
        self._race_rng = random.Random(f"races-{seed}")
        #: The probability that the world moves on before KEB answers a request.
        self.moves = moves
        self._move_rng = random.Random(f"moves-{seed}")
        #: The token the simulator prints: far-future exp, the scenario's groups (by default
        #: ``orchestrationsAdmin``, which its gateway requires).
        self.token = make_token(groups=scenario.token_groups)
        self._lock = threading.RLock()
        self._engine = Manager(scenario, seed)
        self._clock = clock
        self._jump_us = 0
        self._wall_start = clock()

    @classmethod
    def from_scenario(
        cls,
        name: str,
        *,
        seed: int = 1,
        speed: float | None = None,
        races: float = 0.0,
        moves: float = 0.0,
        start: datetime | None = None,
    ) -> Simulator:
        """A simulator playing ``SCENARIOS[name]``; :class:`UsageError` for an unknown name.

        ``start`` moves the scenario's virtual clock to begin there (``watcher sim`` and
        ``watcher demo`` pass the real current time, so that ages read as believable);
        without it the scenario's fixed epoch keeps tests deterministic. Same seed, same
        world: only the times shift."""
        spec = SCENARIOS.get(name)
        if spec is None:
            raise UsageError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
        if start is not None:
            spec = replace(spec, epoch=start.astimezone(UTC).replace(microsecond=0))
        return cls(spec, seed=seed, speed=speed, races=races, moves=moves)

    # --- clock ----------------------------------------------------------------------------

    def _sync(self) -> None:
        if self.speed is not None:
            elapsed = self._clock() - self._wall_start
            offset = self._jump_us + int(elapsed * self.speed * US_PER_SECOND)
            self._engine.run_until(self._engine.epoch_us + offset)

    def _between_queries(self) -> bool:
        """Between KEB's two queries for one answer: maybe the world's next events happen
        (those due within :data:`RACE_HORIZON`); ``True`` when something did."""
        if not self.races or self._race_rng.random() >= self.races:
            return False
        return self._next_events()

    def _between_requests(self) -> bool:
        """Before KEB answers a request: maybe the world's next events happen (workers do
        not wait for pollers); ``True`` when something did."""
        if not self.moves or self._move_rng.random() >= self.moves:
            return False
        return self._next_events()

    def _next_events(self) -> bool:
        engine = self._engine
        if not engine.events:
            return False
        due = engine.events[0][0]
        if due > engine.now_us + round(RACE_HORIZON * US_PER_SECOND):
            return False
        engine.run_until(due)
        return True

    @property
    def now(self) -> datetime:
        """Current virtual time (aware UTC)."""
        with self._lock:
            self._sync()
            return from_us(self._engine.now_us)

    @property
    def epoch(self) -> datetime:
        """Where the virtual clock started."""
        return self.scenario.epoch

    def advance(self, seconds: float) -> int:
        """Move virtual time forward and process due events; returns operation state changes.

        Counted are operation truth events whose state differs from the previous one (creation
        and vanishing included, description-only changes not). With a ``speed``, this jumps the
        running clock ahead.
        """
        if seconds < 0:
            raise ValueError(f"cannot advance by a negative duration: {seconds}")
        with self._lock:
            engine = self._engine
            before = engine.op_changes
            delta = round(seconds * US_PER_SECOND)
            if self.speed is None:
                engine.run_until(engine.now_us + delta)
            else:
                self._jump_us += delta
                self._sync()
            return engine.op_changes - before

    def next_event_in(self) -> float | None:
        """Virtual seconds until the next scheduled event, ``None`` when nothing is scheduled."""
        with self._lock:
            self._sync()
            events = self._engine.events
            if not events:
                return None
            return max(0.0, (events[0][0] - self._engine.now_us) / US_PER_SECOND)

    def run_until_finished(self, limit: float = 30 * 86_400.0) -> int:
        """Jump from event to event until :meth:`all_finished` or ``limit`` virtual seconds.

        Returns the operation state changes, like :meth:`advance`.
        """
        changes = 0
        with self._lock:
            engine = self._engine
            deadline = engine.now_us + round(limit * US_PER_SECOND)
            while engine.events and not self.all_finished():
                due = engine.events[0][0]
                if due > deadline:
                    break
                changes += self.advance(max(0, due - engine.now_us) / US_PER_SECOND)
        return changes

    # --- ground truth -----------------------------------------------------------------------

    def orchestration_ids(self) -> list[str]:
        """IDs of all orchestrations, oldest first (KEB's list order)."""
        with self._lock:
            self._sync()
            return list(self._engine.orchs)

    def orchestration_state(self, orchestration_id: str) -> str:
        """The orchestration's state right now (``SimNotFound`` for an unknown ID)."""
        with self._lock:
            self._sync()
            return self._engine.get(orchestration_id).state

    def truth(self, orchestration_id: str) -> list[TruthEvent]:
        """Every change of the orchestration and of its operations, in the order it happened.

        Unknown IDs raise :class:`~watcher.sim.api.SimNotFound` (a ``LookupError``).
        """
        with self._lock:
            self._sync()
            rows = self._engine.get(orchestration_id).truth
            return [
                TruthEvent(from_us(t), orchestration_id, op_id, runtime, old, new, desc)
                for t, op_id, runtime, old, new, desc in rows
            ]

    def all_finished(self) -> bool:
        """Every orchestration terminal (but legacy ``upgradeKyma`` ones, which KEB no longer
        processes) and no scripted cancel or retry still to come."""
        with self._lock:
            self._sync()
            return self._engine.operator.pending == 0 and all(
                o.state in TERMINAL_ORCHESTRATION_STATES or o.profile.legacy_kyma
                for o in self._engine.orchs.values()
            )

    def state_summary(self) -> dict[str, Any]:
        """What ``GET /_sim/state`` shows: clock, and state and counts per orchestration."""
        with self._lock:
            self._sync()
            return {
                "scenario": self.scenario.name,
                "seed": self.seed,
                "speed": self.speed,
                "now": format_us(self._engine.now_us),
                "allFinished": self.all_finished(),
                "nextEventIn": self.next_event_in(),
                "orchestrations": [
                    {
                        "orchestrationID": o.orchestration_id,
                        "state": o.state,
                        "description": o.description,
                        "operations": len(o.ops),
                        "operationStats": o.stats(),
                    }
                    for o in self._engine.orchs.values()
                ],
            }

    # --- KEB read API -----------------------------------------------------------------------

    def list_orchestrations(
        self, page: int = 1, page_size: int = MAX_PAGE_SIZE, states: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """``StatusResponseList``: oldest first, exact-literal state filter (§2.1)."""
        with self._lock:
            self._sync()
            items = list(self._engine.orchs.values())
            if states:
                wanted = set(states)
                items = [o for o in items if o.state in wanted]
            start = (page - 1) * page_size
            data = [o.to_json(with_stats=False) for o in items[start : start + page_size]]
            if self._between_queries():  # the COUNT(*) is a query of its own (§12.6)
                everything = self._engine.orchs.values()
                items = [o for o in everything if not states or o.state in states]
            return {"data": data, "count": len(data), "totalCount": len(items)}

    def get_orchestration(self, orchestration_id: str) -> dict[str, Any]:
        """``StatusResponse`` with ``operationStats`` (§2.2)."""
        with self._lock:
            self._sync()
            self._between_requests()
            orch = self._engine.get(orchestration_id)
            out = orch.to_json(with_stats=False)
            self._between_queries()  # the stats are a query of their own (§12.6)
            out["operationStats"] = orch.stats()
            return out

    def list_operations(
        self,
        orchestration_id: str,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        states: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """``OperationResponseList`` in creation order (§2.3); O(page) without a filter."""
        with self._lock:
            self._sync()
            self._between_requests()
            orch = self._engine.get(orchestration_id)
            if orch.profile.legacy_kyma:
                raise SimApiError(500, f"unsupported orchestration type: {UPGRADE_KYMA}")
            ops = orch.ops
            if states:
                wanted = set(states)
                ops = [op for op in ops if op.state in wanted]
            start = (page - 1) * page_size
            data = [op.to_json() for op in ops[start : start + page_size]]
            if self._between_queries():  # the COUNT(*) is a query of its own (§12.6)
                ops = [op for op in orch.ops if not states or op.state in states]
            return {"data": data, "count": len(data), "totalCount": len(ops)}

    def get_operation(self, orchestration_id: str, operation_id: str) -> dict[str, Any]:
        """``OperationDetailResponse``; like KEB, the operation may belong to another one."""
        with self._lock:
            self._sync()
            self._between_requests()
            self._engine.get(orchestration_id)
            op = self._engine.ops.get(operation_id)
            if op is None:
                raise operation_not_found(operation_id)
            return op.detail_json()

    # --- KEB mutations ----------------------------------------------------------------------

    def create_upgrade(self, params: Mapping[str, Any] | object) -> str:
        """``POST /upgrade/cluster``: validate (400 as :class:`SimApiError`), store, queue."""
        request = validate_upgrade(params)
        with self._lock:
            self._sync()
            return self._engine.create_posted(request).orchestration_id

    def cancel(self, orchestration_id: str) -> None:
        """``PUT .../cancel``: no change (still success) when terminal or already canceling."""
        with self._lock:
            self._sync()
            self._engine.cancel(self._engine.get(orchestration_id, "cancel"))

    def retry(self, orchestration_id: str, operation_ids: Sequence[str] = ()) -> dict[str, Any]:
        """``POST .../retry``: the ``RetryResponse`` object (§2.6); 500 if canceled."""
        with self._lock:
            self._sync()
            orch = self._engine.get(orchestration_id, "retry")
            return self._engine.retry(orch, operation_ids)

    def delete_operation(self, orchestration_id: str, operation_id: str) -> None:
        """KEB's cleaning step: the operation row disappears from every list (§2.10)."""
        with self._lock:
            self._sync()
            self._engine.delete_operation(orchestration_id, operation_id)
