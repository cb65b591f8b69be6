"""The KEB simulator behind ``watcher sim``, ``watcher demo``, the tests and the benchmarks.

It plays KEB 1.8.12-1.15.0 for ``upgradeCluster`` orchestrations (see docs/keb-api.md):

* :class:`Simulator` (``world``): the seeded discrete-event world and its ground truth;
* :class:`SimServer` (``server``): the same over HTTP, behind an Istio-like token gateway;
* :data:`SCENARIOS` (``scenarios``): the named worlds;
* :class:`Faults` (``faults``): injected network and proxy failures;
* :func:`make_token` (``tokens``): unsigned JWTs the gateway accepts or rejects.

>>> sim = Simulator.from_scenario("small", seed=1)
>>> sim.advance(3600) > 0 and sim.all_finished()
True
"""

from watcher.sim.api import SimApiError, SimNotFound
from watcher.sim.faults import FAULT_KINDS, Faults
from watcher.sim.records import TruthEvent
from watcher.sim.scenarios import SCENARIOS, OrchestrationSpec, ScenarioSpec, ScriptedAction
from watcher.sim.server import SimServer, serve_forever
from watcher.sim.tokens import make_token
from watcher.sim.world import Simulator

__all__ = [
    "FAULT_KINDS",
    "SCENARIOS",
    "Faults",
    "OrchestrationSpec",
    "ScenarioSpec",
    "ScriptedAction",
    "SimApiError",
    "SimNotFound",
    "SimServer",
    "Simulator",
    "TruthEvent",
    "make_token",
    "serve_forever",
]
