"""Fleet watch: what one cycle over a selection costs, against a naive poller, side by side.

For selections of 500, 5,000 and 20,000 runtimes (20 with an update in progress), served by
the simulator of current KEB (``watcher sim --api runtimes``'s truth model and handlers) in a
separate process on a manual clock, so that its CPU time is not charged to the pollers:

* **keb-watcher**: one cycle of ``engine/fleet_cycle.py`` ``poll_selections`` (observe,
  diff, policy, commit to a SQLite store), after its baseline;
* **naive**: what a poller that lists the whole selection with ``op_detail=last`` every cycle
  must do at least: every page (``RuntimesClient.listing``), JSON parsed into records; no diff,
  no store.

Cycles measured, each as a pair (the naive poller right after keb-watcher, same world):

* **no change**: nothing moved since the last cycle;
* **1 % started**: 1 % of the fleet started an update since the last cycle;
* **1 % finished**: those updates ended since the last cycle (keb-watcher reads them by
  ``instance_id``: they left the active list).

Reported per size and cycle: KEB requests of each (counted by the client), and wall time
min/median/max over ``--repeat`` pairs with the median of the per-pair ratios.
Run: ``python benchmarks/fleet_cycle.py`` (about two minutes; ``--sizes 500,5000`` for less).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watcher.core.fleet import Selection
from watcher.engine.fleet_cycle import poll_selections
from watcher.keb import StaticToken
from watcher.keb.runtimes import RuntimesClient
from watcher.sim.fleet_server import runtime_token
from watcher.store.database import Store
from watcher.store.selections import SelectionStore

IN_PROGRESS = 20
START = datetime(2026, 8, 21, 12, tzinfo=UTC)


def serve(size: int, port: int) -> None:
    """The simulator process: ``size`` settled runtimes, ``IN_PROGRESS`` long updates."""
    from watcher.sim.fleet import Fleet, populate
    from watcher.sim.fleet_server import FleetServer, FleetSim

    fleet = Fleet(seed=7)
    populate(fleet, size, in_progress=IN_PROGRESS)
    with FleetServer(FleetSim(fleet), port=port):
        print("ready", flush=True)
        while True:
            time.sleep(3600)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def admin(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(f"{url}{path}", data=data, method="POST")
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


async def naive(url: str) -> tuple[int, float]:
    async with RuntimesClient(url, StaticToken(runtime_token())) as client:
        started = time.perf_counter()
        await client.listing(())
        return client.stats.requests, time.perf_counter() - started


async def watcher_cycle(url: str, store: SelectionStore, now: datetime) -> tuple[int, float]:
    async with RuntimesClient(url, StaticToken(runtime_token())) as client:
        started = time.perf_counter()
        reports = await poll_selections(
            store, client, now=now, full_sweep_every=3600.0, notify=True
        )
        assert all(r.ok for r in reports), reports
        return client.stats.requests, time.perf_counter() - started


def measure(size: int, repeat: int) -> dict[str, dict[str, list[float]]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sim = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(size), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    results: dict[str, dict[str, list[float]]] = {}
    try:
        first = sim.stdout.readline().strip() if sim.stdout is not None else ""
        if first != "ready":
            raise SystemExit(f"the simulator did not start (it said {first!r})")
        ids = [r["instanceID"] for r in _all_ids(url)]
        rng = random.Random(size)
        with tempfile.TemporaryDirectory() as tmp:
            store = SelectionStore(Store(Path(tmp) / "bench.db"))
            store.add(Selection("bench"), None, START)
            now = START
            asyncio.run(watcher_cycle(url, store, now))  # the baseline

            def pair(name: str) -> None:
                nonlocal now
                now += timedelta(minutes=1)
                w_requests, w_seconds = asyncio.run(watcher_cycle(url, store, now))
                n_requests, n_seconds = asyncio.run(naive(url))
                row = results.setdefault(name, {})
                for key, value in (
                    ("watcher_requests", w_requests),
                    ("watcher_seconds", w_seconds),
                    ("naive_requests", n_requests),
                    ("naive_seconds", n_seconds),
                ):
                    row.setdefault(key, []).append(float(value))

            for _ in range(repeat):
                pair("no change")
                moved = rng.sample(ids[IN_PROGRESS:], max(1, size // 100))
                for instance_id in moved:
                    admin(url, "/_sim/act", {"action": "update", "instance": instance_id})
                pair("1% started")
                admin(url, "/_sim/advance?seconds=700")  # the 600 s updates end
                pair("1% finished")
    finally:
        sim.terminate()
        sim.wait()
    return results


def _all_ids(url: str) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        async with RuntimesClient(url, StaticToken(runtime_token())) as client:
            listing = await client.listing(())
            return [{"instanceID": i} for i in listing.runtimes]

    return asyncio.run(go())


def report(size: int, results: dict[str, dict[str, list[float]]]) -> None:
    print(f"\n{size:,} runtimes ({IN_PROGRESS} in progress)")
    print(
        f"  {'cycle':<13} {'requests w/n':>13}  {'keb-watcher s min/med/max':>27}  "
        f"{'naive s min/med/max':>21}  {'ratio':>6}"
    )
    for name, row in results.items():
        w, n = row["watcher_seconds"], row["naive_seconds"]
        ratio = statistics.median(a / b for a, b in zip(w, n, strict=True))
        requests = f"{int(max(row['watcher_requests']))}/{int(max(row['naive_requests']))}"
        print(
            f"  {name:<13} {requests:>13}  "
            f"{min(w):>8.3f} {statistics.median(w):>8.3f} {max(w):>8.3f}  "
            f"{min(n):>6.3f} {statistics.median(n):>6.3f} {max(n):>6.3f}  {ratio:>6.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="500,5000,20000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port)
        return
    print("Fleet watch: one cycle of keb-watcher vs a naive full listing (op_detail=last)")
    for size in (int(s) for s in args.sizes.split(",")):
        report(size, measure(size, args.repeat))


if __name__ == "__main__":
    main()
