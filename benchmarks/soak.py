"""Soak test of `watcher run`: do CPU and memory stay flat over a long run?

20 orchestrations for 30 simulated minutes at a 1 s polling interval, under a steady load
(:func:`scenario`). The service runs as its
own process (``python -m watcher run``) against the KEB simulator and a fake Slack Web API,
both served over HTTP from this process; the simulator's clock runs ``--speed`` times faster
than real time (default 10: 30 simulated minutes in 3 real minutes, 180 cycles), so every
real 1 s tick covers 10 simulated seconds of upgrades.

Every ``--sample`` seconds it records the service process's CPU time and RSS (psutil) and a
few of its own metrics (/metrics); it prints the samples, the start and end figures (mean of
the first and last three samples after a warm-up), and least-squares slopes. Then it stops the
service with SIGTERM and reports how long the graceful shutdown took.

Run: ``python benchmarks/soak.py`` (about 3.5 minutes); ``--minutes 30 --speed 1`` for real
time. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakeslack import FakeSlack  # noqa: E402
from watcher.sim import SimServer, Simulator  # noqa: E402
from watcher.sim.scenarios import ALL_REASONS, OrchestrationSpec, ScenarioSpec  # noqa: E402
from watcher.store.database import Store  # noqa: E402

CHANNEL = "C0SOAK001"


def scenario() -> ScenarioSpec:
    """A steady load, so that a trend in CPU or memory means the service, not the work: 20
    orchestrations that all start within the first simulated minute and keep running past
    the end (300 operations, 10 workers, 2 to 10 minutes each, 3 % failures)."""
    return ScenarioSpec(
        "soak",
        "20 orchestrations x 300 operations, running throughout",
        tuple(
            OrchestrationSpec(
                ops=300,
                workers=10,
                duration=(120.0, 600.0),
                failure_rate=0.03,
                reasons=ALL_REASONS,
                created=-float(20 - i),
                start_delay=3.0 * i,
            )
            for i in range(20)
        ),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Sample:
    at: float  # seconds since the service started
    cpu: float  # CPU seconds used by the service so far
    rss_mb: float
    cycles: float
    requests: float
    outbox: float


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + "".join(f",{k}={v}" for k, v in sorted(s.labels.items()))
            out[key] = s.value
    return out


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="simulated minutes")
    parser.add_argument("--speed", type=float, default=10.0, help="simulated s per real s")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds not in the slope")
    args = parser.parse_args()
    real = args.minutes * 60 / args.speed

    tmp = Path(tempfile.mkdtemp(prefix="keb-watcher-soak-"))
    sim = Simulator(scenario(), seed=11, speed=args.speed)
    keb = SimServer(sim).start()
    slack = FakeSlack(channels={"#kyma-upgrades": CHANNEL}, post_interval=0.05).start()
    port = free_port()
    config = tmp / "watcher.toml"
    config.write_text(
        f'[keb]\nurl = "{keb.url}"\ntoken = "{sim.token}"\ntimeout = "5s"\n\n'
        f'[storage]\npath = "{tmp / "watcher.db"}"\n\n'
        '[poll]\ninterval = "1s"\njitter = "0s"\nfull_sweep_every = "30m"\n\n'
        f'[slack]\ntoken = "xoxb-test-token"\nchannel = "#kyma-upgrades"\n'
        f'base_url = "{slack.api_url}"\n\n[service]\nlisten = "127.0.0.1:{port}"\n'
    )
    with Store(tmp / "watcher.db") as store:
        store.track(sim.orchestration_ids(), None, datetime.now(UTC))
    print(
        f"soak: 20 orchestrations, {args.minutes:g} simulated minutes at {args.speed:g}x "
        f"({real:.0f} s real), 1 s interval; data in {tmp}"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "service.log", "w"),  # noqa: SIM115
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    ps = psutil.Process(proc.pid)
    started = time.monotonic()
    samples: list[Sample] = []
    columns = ("t (s)", "sim", "cycles", "KEB req", "outbox", "CPU %", "RSS MB")
    print(" ".join(f"{c:>8}" for c in columns))
    try:
        while (elapsed := time.monotonic() - started) < real:
            time.sleep(min(args.sample, max(0.1, real - elapsed)))
            try:
                metrics = scrape(port)
            except OSError:
                continue  # not listening yet
            times = ps.cpu_times()
            sample = Sample(
                time.monotonic() - started,
                times.user + times.system,
                ps.memory_info().rss / 2**20,
                metrics.get("keb_watcher_poll_cycles_total,outcome=success", 0.0),
                metrics.get("keb_watcher_keb_requests_total,outcome=ok", 0.0),
                metrics.get("keb_watcher_outbox_notifications,status=pending", 0.0),
            )
            prev = samples[-1] if samples else Sample(0.0, 0.0, 0.0, 0, 0, 0)
            cpu_pct = 100 * (sample.cpu - prev.cpu) / (sample.at - prev.at)
            samples.append(sample)
            sim_min = (sim.now - sim.epoch).total_seconds() / 60
            print(
                f"{sample.at:8.1f} {sim_min:6.1f}mn {sample.cycles:8.0f} {sample.requests:8.0f} "
                f"{sample.outbox:8.0f} {cpu_pct:8.1f} {sample.rss_mb:8.1f}",
                flush=True,
            )
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        stop_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
        keb.stop()
        slack.stop()

    steady = [s for s in samples if s.at >= args.warmup]
    pct = [100 * (b.cpu - a.cpu) / (b.at - a.at) for a, b in itertools.pairwise(samples)]
    pct_steady = [p for p, s in zip(pct, samples[1:], strict=True) if s.at >= args.warmup]
    pct_at = [s.at for s in samples[1:] if s.at >= args.warmup]
    first, last = pct_steady[:3], pct_steady[-3:]
    rss = [s.rss_mb for s in steady]
    print()
    print(f"service CPU:  start {statistics.fmean(first):.1f} %, end {statistics.fmean(last):.1f} %"
          f" (mean {statistics.fmean(pct_steady):.1f} %), slope "
          f"{slope(pct_at, pct_steady) * 60:+.2f} %-points/min")  # fmt: skip
    print(f"service RSS:  start {statistics.fmean(rss[:3]):.1f} MB, end "
          f"{statistics.fmean(rss[-3:]):.1f} MB (max {max(rss):.1f}), slope "
          f"{slope([s.at for s in steady], rss) * 60:+.3f} MB/min")  # fmt: skip
    cycles = samples[-1].cycles
    print(f"cycles: {cycles:.0f} in {samples[-1].at:.0f} s; KEB requests {samples[-1].requests:.0f}"
          f" ({samples[-1].requests / max(cycles, 1):.1f} per cycle); "
          f"Slack messages {len(slack.messages(CHANNEL))}")  # fmt: skip
    with Store(tmp / "watcher.db") as store:
        finished = sum(t.finished_at is not None for t in store.tracked())
        transitions = store.last_transition_id()
    size = sum(f.stat().st_size for f in tmp.glob("watcher.db*")) / 2**20
    print(f"finished orchestrations: {finished} of 20; transitions {transitions}; "
          f"database {size:.1f} MB")  # fmt: skip
    print(f"SIGTERM: exit {code} after {stop_s:.1f} s")


if __name__ == "__main__":
    main()
