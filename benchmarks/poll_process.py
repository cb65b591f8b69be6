"""What cron sees: ``watcher poll`` as a whole process against a naive whole-process poller.

Run through ``python benchmarks/poll_cycle.py`` (see its docstring). Each ``watcher poll`` is
paired with a naive poll taken right before it, and the ratio is computed per pair, so that
the machine's load weighs on both sides alike; all three cycles (first, no change, after 2 %
moved) are reported side by side from one run, each ratio as min / median / max of its pairs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from poll_cycle import advance_until_changed, free_port, start_sim

from watcher.sim import make_token

SERVICE_TIME = 0.008  # seconds KEB takes per request
TOTAL_OPS = 40 * 2000
#: Issue 18's cost limit, closing reads of the sound proof included.
GOALS = {"first": "<= 2.0x", "no_change": "<= 0.2x", "two_percent": "<= 0.35x"}
RSS_GOAL_MB = 80

#: The naive poller: every page of every orchestration over 8 keep-alive connections, JSON
#: parsed, nothing kept; a process of its own, like `watcher poll`.
NAIVE = r"""
import asyncio, json, sys
import httpx

async def main(url, token, ids):
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:
        async def page(orch_id, n):
            r = await c.get(f"/orchestrations/{orch_id}/operations",
                            params={"page": n, "page_size": 100})
            return json.loads(r.content)
        async def one(orch_id):
            first = await page(orch_id, 1)
            pages = -(-first["totalCount"] // 100)
            rest = await asyncio.gather(*(page(orch_id, n) for n in range(2, pages + 1)))
            return len(first["data"]) + sum(len(p["data"]) for p in rest)
        counts = await asyncio.gather(*(one(i) for i in ids))
    assert sum(counts) >= 40 * 2000 * 0.99, counts

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3].split(",")))
"""


def run_process(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit status of one whole process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 and proc.stderr is not None:
        sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:])
    return seconds, usage.ru_maxrss / 1024, proc.returncode


def sim_requests(url: str) -> int:
    return int(httpx.get(f"{url}/_sim/state", timeout=30).json()["requests"])


def import_time(env: dict[str, str]) -> float:
    """Cumulative microseconds of ``import watcher.cli`` (``python -X importtime``), in s."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import watcher.cli"],
        env=env, capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    for line in reversed(out.splitlines()):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == "watcher.cli":
            return int(parts[1]) / 1e6
    return float("nan")


def help_time(env: dict[str, str], runs: int = 5) -> float:
    """Median wall seconds of ``watcher --help`` as a whole process (start-up alone)."""
    args = [sys.executable, "-m", "watcher", "--help"]
    return statistics.median(run_process(args, env)[0] for _ in range(runs))


def measure(repeat: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sim = start_sim(port)
    token = make_token()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    # As installed: pip byte-compiles a package when it installs it. A checkout run with
    # PYTHONDONTWRITEBYTECODE would recompile every module of `watcher` in every process
    # (about 0.15 s, more under load), which no user's `watcher poll` pays.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(root / "watcher")], env=env, check=True
    )
    try:
        httpx.post(
            f"{url}/_sim/faults",
            json={"kind": "slow", "count": None, "delay": SERVICE_TIME,
                  "path_prefix": "/orchestrations"},
            timeout=30,
        ).raise_for_status()  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        listed = httpx.get(f"{url}/orchestrations", headers=headers, timeout=60).json()
        ids = [o["orchestrationID"] for o in listed["data"]]
        work = Path(tempfile.mkdtemp(prefix="keb-watcher-poll-"))
        config = work / "watcher.toml"
        config.write_text(
            f'[keb]\nurl = "{url}"\ntoken = "{token}"\ntimeout = "60s"\n\n'
            f'[storage]\npath = "{work / "watcher.db"}"\n\n[poll]\nfull_sweep_every = "1d"\n'
        )
        watcher = [sys.executable, "-m", "watcher", "--config", str(config)]
        subprocess.run([*watcher, "track", *ids], env=env, check=True, capture_output=True)
        naive = [sys.executable, "-c", NAIVE, url, token, ",".join(ids)]
        out: dict[str, Any] = {"orchestrations": len(ids), "cycles": {}}

        def pair(key: str) -> None:
            before = sim_requests(url)
            base_s, base_rss, code = run_process(naive, env)
            assert code == 0, "the naive poller failed"
            middle = sim_requests(url)
            seconds, rss, code = run_process([*watcher, "poll"], env)
            assert code == 0, f"watcher poll exited {code}"
            entry = out["cycles"].setdefault(key, {"pairs": []})
            entry["pairs"].append(
                {
                    "naive_seconds": base_s,
                    "naive_requests": middle - before,
                    "naive_rss_mb": base_rss,
                    "seconds": seconds,
                    "requests": sim_requests(url) - middle,
                    "rss_mb": rss,
                    "ratio": seconds / base_s,
                }
            )

        pair("first")
        for _ in range(repeat):
            pair("no_change")
        for _ in range(repeat):
            advance_until_changed(url, 0.02, TOTAL_OPS)
            pair("two_percent")
        for entry in out["cycles"].values():
            pairs = entry["pairs"]
            entry["ratio"] = statistics.median(p["ratio"] for p in pairs)
            entry["ratio_min"] = min(p["ratio"] for p in pairs)
            entry["ratio_max"] = max(p["ratio"] for p in pairs)
            entry["seconds"] = statistics.median(p["seconds"] for p in pairs)
            entry["naive_seconds"] = statistics.median(p["naive_seconds"] for p in pairs)
            entry["requests"] = max(p["requests"] for p in pairs)
            entry["naive_requests"] = max(p["naive_requests"] for p in pairs)
            entry["rss_mb"] = max(p["rss_mb"] for p in pairs)
        out["import_watcher_cli_seconds"] = import_time(env)
        out["help_seconds"] = help_time(env)
        return out
    finally:
        sim.terminate()
        sim.wait(timeout=10)


def report(repeat: int, *, as_json: bool = False) -> None:
    results = measure(repeat)
    if as_json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"whole process, {results['orchestrations']} orchestrations x 2,000 operations, "
        f"{SERVICE_TIME * 1000:.0f} ms per request, spread pickups, CPUs: {os.cpu_count()}"
    )
    print(
        f"{'cycle':<12}{'seconds':>9}{'naive s':>9}{'ratio min/median/max':>23}{'goal':>9}"
        f"{'requests':>10}{'naive req':>11}{'RSS MB':>8}{'naive MB':>10}"
    )
    for key, label in (("first", "first"), ("no_change", "no change"), ("two_percent", "2 %")):
        r = results["cycles"][key]
        naive_rss = max(p["naive_rss_mb"] for p in r["pairs"])
        ratios = f"{r['ratio_min']:.2f} / {r['ratio']:.2f} / {r['ratio_max']:.2f}"
        print(
            f"{label:<12}{r['seconds']:>9.3f}{r['naive_seconds']:>9.3f}{ratios:>23}"
            f"{GOALS[key]:>9}{r['requests']:>10}{r['naive_requests']:>11}{r['rss_mb']:>8.0f}"
            f"{naive_rss:>10.0f}"
        )
    rss = max(r["rss_mb"] for r in results["cycles"].values())
    print(f"peak RSS of watcher poll: {rss:.0f} MB (goal <= {RSS_GOAL_MB} MB)")
    print(f"import watcher.cli: {results['import_watcher_cli_seconds']:.3f} s (-X importtime)")
    print(f"watcher --help:     {results['help_seconds']:.3f} s (whole process, median of 5)")
