"""Server-side cost of the dashboard: 40 orchestrations x 2,000 operations.

The database is filled through the real store (``core.diff`` + ``Store.commit_diff``): a
baseline of every orchestration with its operations spread over the states (failures with
five different reasons), then a cycle in which 10 % of the operations moved. Then the
dashboard is served as ``watcher run`` serves it (uvicorn on 127.0.0.1, each request on its
own database connection in a worker thread, the page rendered with Jinja2) and asked over
HTTP, ``--repeat`` times each:

* ``/``: the overview, every orchestration with its bar, counts, top failure reasons, ETA;
* ``/orchestrations/{id}``: one orchestration in full (its 2,000 operations filtered to the
  first 200, failures grouped by reason with every shoot, the timeline);
* ``/api/board``: what every open page asks for once a second.

Reported: median and worst wall time per route. Exit 1 when the overview's median is 100 ms
or more. Run: ``python benchmarks/dashboard.py`` (about half a minute, mostly the filling).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from watcher.app import Watcher
from watcher.config import (
    Config,
    KebConfig,
    LinksConfig,
    PollConfig,
    Secret,
    ServiceConfig,
    SlackConfig,
    StorageConfig,
    TemplatesConfig,
)
from watcher.core.diff import Observation, Snapshot, diff
from watcher.core.models import Operation, Orchestration
from watcher.faces.run.server import WebServer, surface
from watcher.faces.web.routes import Dashboard
from watcher.store.database import Store

ORCHESTRATIONS = 40
OPERATIONS = 2000
REASONS = (
    "provisioner client returns failed status: Operation failed: last error: shoot "
    "reconciliation timed out",
    "operation has reached the time limit: 3h0m0s",
    "provisioner client returns failed status: QuotaExceeded: quota exceeded",
    "kubernetes version not supported",
    "gardener: shoot is hibernated",
)
EPOCH = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _state(i: int, shift: int) -> str:
    slot = (i + shift) % 20
    if slot < 9:
        return "succeeded"
    if slot < 11:
        return "failed"
    if slot < 13:
        return "in progress"
    return "pending"


def _orchestration(n: int) -> Orchestration:
    return Orchestration.from_json(
        {
            "orchestrationID": f"{n:08x}-0000-4000-8000-000000000000",
            "type": "upgradeCluster",
            "state": "in progress",
            "description": f"Scheduled {OPERATIONS} operations",
            "createdAt": (EPOCH + timedelta(minutes=n)).isoformat(),
            "updatedAt": (EPOCH + timedelta(minutes=n + 5)).isoformat(),
            "parameters": {},
        }
    )


def _operations(orch_id: str, shift: int) -> dict[str, Operation]:
    out = {}
    for i in range(OPERATIONS):
        state = _state(i, shift)
        op_id = f"{orch_id[:8]}-op-{i:05d}"
        out[op_id] = Operation(
            operation_id=op_id,
            orchestration_id=orch_id,
            runtime_id=f"rt-{orch_id[:8]}-{i:05d}",
            shoot_name=f"c-{i:07x}",
            state=state,
            description=REASONS[i % len(REASONS)] if state == "failed" else "Operation created",
            plan_name="azure",
        )
    return out


def fill(store: Store) -> list[str]:
    ids = []
    for n in range(ORCHESTRATIONS):
        orch = _orchestration(n)
        orch_id = orch.orchestration_id
        ids.append(orch_id)
        store.track([orch_id], None, EPOCH)
        snapshot = Snapshot(orch_id)
        for cycle, shift in enumerate((0, 2)):  # baseline, then 10 % moved on
            now = EPOCH + timedelta(minutes=10 * cycle)
            result = diff(snapshot, Observation(orch, _operations(orch_id, shift)), now)
            store.commit_diff(result, now=now, cycle_id=None, full_sweep=True)
            snapshot = result.snapshot
    cycle_id = store.begin_cycle(EPOCH + timedelta(minutes=19))
    store.finish_cycle(
        cycle_id, EPOCH + timedelta(minutes=20), polled=40, failed=0, requests=40, transitions=0
    )
    return ids


def measure(client: httpx.Client, target: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get(target)
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, target
    return times


@contextmanager
def served(dashboard: Dashboard) -> Iterator[httpx.Client]:
    """The dashboard on uvicorn in an event loop of its own thread; a client for it."""
    server = WebServer("127.0.0.1:0", surface(dashboard.routes(), dashboard.middleware()))
    loop = asyncio.new_event_loop()
    started, stop = threading.Event(), asyncio.Event()

    async def main() -> None:
        await server.start()
        started.set()
        await stop.wait()
        await server.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(10)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="keb-watcher-bench-"))
    config = Config(
        keb=KebConfig(url="https://kyma-env-broker.example.com", token=Secret("t")),
        storage=StorageConfig(path=workdir / "watcher.db"),
        poll=PollConfig(),
        slack=SlackConfig(),
        links=LinksConfig(),
        templates=TemplatesConfig(),
        service=ServiceConfig(),
        source=None,
    )
    started = time.perf_counter()
    with Store(config.storage.path) as store:
        ids = fill(store)
    print(
        f"filled {ORCHESTRATIONS} orchestrations x {OPERATIONS} operations "
        f"in {time.perf_counter() - started:.1f}s"
    )
    now = EPOCH + timedelta(minutes=21)
    app = Watcher(config, clock=lambda: now)
    with app, served(Dashboard(app, stale_after=180)) as client:
        measure(client, "/", 2)  # warm: templates compiled, pages of the file cached
        overview = []
        for target in ("/", f"/orchestrations/{ids[0]}", "/api/board"):
            times = measure(client, target, args.repeat)
            median, worst = statistics.median(times) * 1000, max(times) * 1000
            print(f"{target:<55} median {median:6.1f} ms   worst {worst:6.1f} ms")
            if target == "/":
                overview = times
    median = statistics.median(overview) * 1000
    verdict = "under" if median < 100 else "NOT under"
    print(f"overview: {median:.1f} ms median, {verdict} the 100 ms budget")
    return 0 if median < 100 else 1


if __name__ == "__main__":
    sys.exit(main())
