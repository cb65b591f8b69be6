"""Poll-cycle cost against the simulator: 40 orchestrations x 2,000 operations.

Two views, each measured side by side in one run (these machines are shared and noisy):

**What cron sees** (the default): ``watcher poll`` as a whole process, paired with a naive
whole-process poller that reads every page of every orchestration over 8 keep-alive
connections. The simulator serves each request in 8 ms (a ``slow`` fault on every
``/orchestrations`` path) and picks operations up by maintenance window, spread over the
pending list (scenario ``large``). Reported per cycle: wall time, the ratio to the naive
poller's, KEB requests (counted by the simulator), peak RSS of the process; and the import
time of ``watcher.cli``.

**In process** (``--in-process``, the cost inside ``watcher run``):

* **baseline**: what a naive poller must do at least: every operation page of every
  orchestration fetched (page 1 first for ``totalCount``, the rest concurrently, with the same
  concurrency as keb-watcher) and JSON-parsed; no models, no diff, no store;
* **first cycle**: keb-watcher's baseline poll into an empty database;
* **no-change cycle**: the next poll with nothing changed in KEB;
* **2 % cycle**: a poll after 2 % of the operations changed state.

Each measured cycle is paired with a baseline run right before it; the reported ratio is the
median of the per-pair ratios (and their range), so that load on the machine weighs on both.

The simulator runs in a separate process (manual clock, advanced through ``/_sim/advance``)
so that its CPU time and memory are not charged to the watcher. Reported: median wall time
of ``--repeat`` runs, ratio to the baseline, HTTP requests, rows written, peak RSS of this
process. Run: ``python benchmarks/poll_cycle.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from watcher.config import PollConfig
from watcher.engine.cycle import Engine
from watcher.keb import KebClient, StaticToken
from watcher.sim import make_token
from watcher.store.database import Store

CONCURRENCY = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_sim(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "watcher",
            "sim",
            "--scenario",
            "large",
            "--speed",
            "0",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sim/state", timeout=1).raise_for_status()
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"simulator exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                ) from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("simulator did not start within 60 s")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def baseline(url: str, token: str, ids: list[str]) -> tuple[float, int]:
    """Every page of every orchestration, fetched concurrently and parsed; nothing kept."""
    gate = asyncio.Semaphore(CONCURRENCY)
    requests = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:

        async def page(orch_id: str, n: int) -> dict[str, Any]:
            nonlocal requests
            async with gate:
                requests += 1
                resp = await client.get(
                    f"/orchestrations/{orch_id}/operations", params={"page": n, "page_size": 100}
                )
                data: dict[str, Any] = json.loads(resp.content)
                return data

        async def orchestration(orch_id: str) -> int:
            first = await page(orch_id, 1)
            pages = -(-first["totalCount"] // 100)
            rest = await asyncio.gather(*(page(orch_id, n) for n in range(2, pages + 1)))
            return len(first["data"]) + sum(len(p["data"]) for p in rest)

        t0 = time.perf_counter()
        counts = await asyncio.gather(*(orchestration(i) for i in ids))
        elapsed = time.perf_counter() - t0
    assert sum(counts) >= 40 * 2000 * 0.99, counts
    return elapsed, requests


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = await fn()
    return time.perf_counter() - t0, value


def advance_until_changed(url: str, fraction: float, total: int) -> int:
    """Advance the simulator's clock in small steps until ``fraction`` of ops changed state."""
    changed = 0
    while changed < fraction * total:
        resp = httpx.post(f"{url}/_sim/advance", params={"seconds": 5}, timeout=60)
        resp.raise_for_status()
        changed += int(resp.json()["changes"])
    return changed


async def run(repeat: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_sim(port)
    token = make_token()
    try:
        keb = KebClient(url, StaticToken(token), concurrency=CONCURRENCY, timeout=60)
        ids = [o.orchestration_id for o in await keb.list_orchestrations()]
        total_ops = 40 * 2000
        results: dict[str, Any] = {"orchestrations": len(ids)}

        # Every measurement is paired with a baseline taken right before it, and the ratio is
        # computed per pair: the machine's load then weighs on both sides alike.
        base_times: list[float] = []
        base_requests = 0
        ratios: dict[str, list[float]] = {"first": [], "no_change": [], "two_percent": []}
        times: dict[str, list[float]] = {"first": [], "no_change": [], "two_percent": []}

        async def paired(key: str, cycle: Engine) -> Any:
            nonlocal base_requests
            base_seconds, base_requests = await baseline(url, token, ids)
            base_times.append(base_seconds)
            before = keb.stats.requests
            seconds, report = await timed(cycle.poll_once)
            assert not report.failed, report.failed[:1]
            times[key].append(seconds)
            ratios[key].append(seconds / base_seconds)
            results[key] = {"requests": keb.stats.requests - before, "rows": report.rows}
            return report

        workdir = Path(tempfile.mkdtemp(prefix="keb-watcher-bench-"))
        engine: Engine | None = None
        store: Store | None = None
        for i in range(repeat):
            if store is not None:
                store.close()
            store = Store(workdir / f"bench-{i}.db")
            store.track(ids, None, _now())
            engine = Engine(
                store, keb, PollConfig(concurrency=8, full_sweep_every=10**9, stuck_after=0.0)
            )
            await paired("first", engine)
        assert engine is not None
        assert store is not None
        for _ in range(repeat):
            await paired("no_change", engine)
        changed = 0
        for _ in range(repeat):
            changed = advance_until_changed(url, 0.02, total_ops)
            report = await paired("two_percent", engine)
            modes: dict[str, int] = {}
            for r in report.results:
                modes[r.mode or "error"] = modes.get(r.mode or "error", 0) + 1
            results["two_percent"].update(
                changed_operations=changed, transitions=report.transitions, modes=modes
            )
        results["baseline"] = {"seconds": statistics.median(base_times), "requests": base_requests}
        for key in ratios:
            results[key]["seconds"] = statistics.median(times[key])
            results[key]["ratio"] = statistics.median(ratios[key])
            results[key]["ratio_range"] = (min(ratios[key]), max(ratios[key]))
        await keb.aclose()
        store.close()
        results["peak_rss_mb"] = peak_rss_mb()
        return results
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--in-process", action="store_true", help="measure `run`'s engine cycle")
    args = parser.parse_args()
    if not args.in_process:
        from poll_process import report  # beside this file

        report(args.repeat, as_json=args.json)
        return
    results = asyncio.run(run(args.repeat))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    goals = {"first": "<= 3x", "no_change": "<= 0.1x", "two_percent": "<= 0.35x"}
    base = results["baseline"]
    print(
        f"{results['orchestrations']} orchestrations x 2,000 operations, "
        f"median of {args.repeat}, CPUs: {os.cpu_count()}"
    )
    print(
        f"{'cycle':<14}{'seconds':>9}{'ratio':>8}{'goal':>9}{'requests':>10}{'rows':>8}"
        "   ratio range"
    )
    print(f"{'baseline':<14}{base['seconds']:>9.3f}{1:>8.2f}{'':>9}{base['requests']:>10}{'-':>8}")
    for key, label in (
        ("first", "first"),
        ("no_change", "no change"),
        ("two_percent", "2 % change"),
    ):
        r = results[key]
        low, high = r["ratio_range"]
        print(
            f"{label:<14}{r['seconds']:>9.3f}{r['ratio']:>8.3f}{goals[key]:>9}"
            f"{r['requests']:>10}{r['rows']:>8}   {low:.3f}-{high:.3f}"
        )
    tp = results["two_percent"]
    print(
        f"2 % cycle: {tp['changed_operations']} operations changed, {tp['transitions']} "
        f"transitions, modes {tp['modes']}"
    )
    print(f"peak RSS: {results['peak_rss_mb']:.0f} MB (goal <= 150 MB)")


if __name__ == "__main__":
    main()
