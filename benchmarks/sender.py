"""Delivering N pending notifications: time, rows read and write transactions, N side by side.

The outbox holds N pending notifications over N/20 orchestrations whose cards exist: per
orchestration one card edit, 18 state changes and the final summary (nothing to coalesce, so
every one is a Slack call). The real sender delivers them to the fake Slack Web API on
127.0.0.1 (real HTTP through slack-sdk) with no latency and no rate limit. Counted through
the store's connection: rows SQLite handed back, and write transactions.

Goal (issue 19): time linear in N, rows read <= 3·N, at most one write transaction per send,
under 2 s for N = 2,000. Run: ``python benchmarks/sender.py`` (``--repeat 3``).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from watcher.core.intents import Intent
from watcher.core.kinds import Kind, priority
from watcher.notify.budget import RateBudget
from watcher.notify.render import Renderer
from watcher.notify.samples import SAMPLES
from watcher.notify.sender import Sender
from watcher.notify.slack import BotSlack, Posted
from watcher.store.database import Store
from watcher.store.outbox import Card, Outbox

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
PER_ORCHESTRATION = 20
CHANNEL = "C0KYMA001"


class Counting:
    """The store's connection, counting the rows it returns and the transactions begun."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.rows = 0
        self.writes = 0

    def execute(self, sql: str, params: Any = ()) -> Iterator[Any] | Any:
        if sql.startswith("BEGIN"):
            self.writes += 1
        return _Cursor(self, self.conn.execute(sql, params))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


class _Cursor:
    def __init__(self, counter: Counting, cursor: sqlite3.Cursor) -> None:
        self.counter, self.cursor = counter, cursor

    @property
    def description(self) -> Any:
        return self.cursor.description

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount

    def __iter__(self) -> Iterator[Any]:
        for row in self.cursor:
            self.counter.rows += 1
            yield row

    def fetchone(self) -> Any:
        row = self.cursor.fetchone()
        self.counter.rows += row is not None
        return row

    def fetchall(self) -> list[Any]:
        rows = self.cursor.fetchall()
        self.counter.rows += len(rows)
        return rows


#: The fake Slack in a process of its own, so that it does not share the sender's interpreter.
SERVE = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from tests.fakeslack import FakeSlack
with FakeSlack(channels={{"#kyma-upgrades": {CHANNEL!r}}}, post_interval=0.0,
               update_per_minute=10**6) as slack:
    print(slack.api_url, flush=True)
    sys.stdin.read()
"""


def fill(store: Store, n: int, api_url: str) -> None:
    """N notifications pending; the cards they go with are in the channel already."""
    outbox = Outbox(store)
    bot = BotSlack("xoxb-test-token", api_url)
    card = Renderer().render("tracking_started", dict(SAMPLES["tracking_started"])).message
    intents = []
    for o in range(n // PER_ORCHESTRATION):
        orch = f"orch-{o:04d}"
        posted = bot.post(CHANNEL, card, {})
        outbox.save_card(orch, Card(posted.channel, posted.ts), NOW)
        kinds = [Kind.PROGRESS, *[Kind.STATE_CHANGED] * (PER_ORCHESTRATION - 2), Kind.FINISHED]
        for i, kind in enumerate(kinds):
            intents.append(
                Intent(f"{orch}:{kind}:{i}", kind, orch, priority(kind), dict(SAMPLES[kind]), None)
            )
    store.enqueue(intents, NOW)


class Recorder:
    """A destination in memory with no cost at all: what the sender itself costs per send."""

    threads = True
    edits = True

    def __init__(self) -> None:
        self.calls = 0

    def post(self, channel: Any, message: Any, meta: Any, **kwargs: Any) -> Posted:
        self.calls += 1
        return Posted(str(channel), f"1700000001.{self.calls:06d}", {})

    def update(self, channel: str, ts: str, message: Any, meta: Any) -> Posted:
        self.calls += 1
        return Posted(channel, ts, {})

    def find(self, channel: Any, key: str, *, thread_ts: Any = None) -> None:
        return None

    def find_card(self, channel: Any, orchestration_id: str) -> None:
        return None

    def probe(self) -> None:
        return None


def one(n: int, api_url: str, tmp: Path, *, memory: bool) -> tuple[float, int, int, int]:
    store = Store(tmp / f"bench-{n}-{time.monotonic_ns()}.db")
    fill(store, n, api_url)
    counting = Counting(store._conn)
    store._conn = counting  # type: ignore[assignment]
    sender = Sender(
        Outbox(store),
        Recorder() if memory else BotSlack("xoxb-test-token", api_url),
        Renderer(),
        default_channel="#kyma-upgrades",
        budget=RateBudget(post_interval=0.0, updates_per_minute=10**6),
        clock=lambda: NOW,
    )
    started = time.perf_counter()
    report = asyncio.run(sender.deliver(deadline=time.monotonic() + 600))
    seconds = time.perf_counter() - started
    assert report.sent == n, (report, n)
    store._conn = counting.conn
    store.close()
    return seconds, counting.rows, counting.writes, report.sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,1000,2000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    api_url = server.stdout.readline().strip()
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"{'destination':<22} {'N':>5} {'rows read':>9} {'rows/N':>6} {'writes/send':>11} "
            f"{'s min':>6} {'s median':>8} {'s max':>6} {'ms/send':>7}"
        )
        for memory in (False, True):
            label = "in memory (no cost)" if memory else "fake Slack, real HTTP"
            for n in sizes:
                runs = [one(n, api_url, Path(tmp), memory=memory) for _ in range(args.repeat)]
                times = [r[0] for r in runs]
                _, rows, writes, sent = runs[-1]
                median = statistics.median(times)
                print(
                    f"{label:<22} {n:>5} {rows:>9} {rows / n:>6.2f} {writes / sent:>11.3f} "
                    f"{min(times):>6.3f} {median:>8.3f} {max(times):>6.3f} "
                    f"{1000 * median / n:>7.3f}"
                )
    server.communicate("")


if __name__ == "__main__":
    main()
