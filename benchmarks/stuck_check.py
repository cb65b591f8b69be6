"""What looking for stuck operations costs a poll in which nothing changed.

``poll.stuck_after`` is evaluated on every successful poll, the unchanged ones included
(stuck is what does not change): one read of ``tracked.stuck`` and, when operations are in
progress, one indexed read of them with the time each entered its state. This measures a
no-change cycle over orchestrations of 2,000 operations with 50 in progress each (the shape
of the ``large`` scenario) with the check off (``stuck_after = 0``) and on (``2h``), the two
alternating in pairs on the same database and the same in-process simulator, so that the
machine's load weighs on both. Reported: min/median/max seconds of each, and the median of
the per-pair ratios (on / off). Run: ``python benchmarks/stuck_check.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from watcher.config import PollConfig
from watcher.engine.cycle import Engine
from watcher.keb import KebClient, StaticToken
from watcher.sim import SCENARIOS, SimServer, Simulator
from watcher.sim.scenarios import ScenarioSpec
from watcher.store.database import Store


def scenario(orchestrations: int) -> ScenarioSpec:
    large = SCENARIOS["large"]
    return replace(large, name="stuck-bench", orchestrations=large.orchestrations[:orchestrations])


async def measure(orchestrations: int, repeat: int) -> dict[str, Any]:
    sim = Simulator(scenario(orchestrations), seed=1)
    sim.advance(3600)  # an hour in: 50 operations in progress in each
    with SimServer(sim).start() as server:
        keb = KebClient(server.url, StaticToken(sim.token), concurrency=8, timeout=60)
        ids = [o.orchestration_id for o in await keb.list_orchestrations()]
        workdir = Path(tempfile.mkdtemp(prefix="keb-watcher-stuck-"))
        store = Store(workdir / "bench.db")
        store.track(ids, None, sim.now)

        def engine(after: float) -> Engine:
            poll = PollConfig(full_sweep_every=1e12, stuck_after=after)
            return Engine(store, keb, poll, clock=lambda: sim.now)

        off, on = engine(0.0), engine(7200.0)
        first = await off.poll_once()  # the baseline
        assert not first.failed
        times: dict[str, list[float]] = {"off": [], "on": []}
        ratios: list[float] = []
        for _ in range(repeat):
            pair = {}
            for key, cycle in (("off", off), ("on", on)):
                t0 = time.perf_counter()
                report = await cycle.poll_once()
                pair[key] = time.perf_counter() - t0
                assert not report.failed
                assert {r.mode for r in report.results} == {"unchanged"}
                times[key].append(pair[key])
            ratios.append(pair["on"] / pair["off"])
        in_progress = sum(t.counts.get("in progress", 0) for t in store.tracked())
        store.close()
        await keb.aclose()
    return {
        "orchestrations": len(ids),
        "in_progress": in_progress,
        **{
            key: {
                "min": min(values),
                "median": statistics.median(values),
                "max": max(values),
            }
            for key, values in times.items()
        },
        "ratio": {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orchestrations", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(measure(args.orchestrations, args.repeat))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"no-change cycle, {results['orchestrations']} orchestrations x 2,000 operations, "
        f"{results['in_progress']} in progress ({args.repeat} pairs)"
    )
    for key in ("off", "on"):
        r = results[key]
        print(
            f"  stuck check {key:>3}: min {r['min'] * 1000:7.1f} ms  "
            f"median {r['median'] * 1000:7.1f} ms  max {r['max'] * 1000:7.1f} ms"
        )
    r = results["ratio"]
    print(f"  on / off: min {r['min']:.2f}x  median {r['median']:.2f}x  max {r['max']:.2f}x")


if __name__ == "__main__":
    main()
