"""A cycle in which 2,000 operations finish across 20 orchestrations: what it costs to turn
that into notifications, and how many Slack calls it leads to.

Measured, in one process, median of ``--repeat`` runs:

* **diff + policy + enqueue**: load each orchestration's snapshot, diff the new observation,
  decide the intents, and commit snapshot, transitions and intents in one transaction each;
* **render**: render every enqueued intent with the packaged templates into Block Kit;
* **Slack calls**: the sender then delivers the outbox to a fake Slack Web API on 127.0.0.1
  (real HTTP through slack-sdk); every call is counted by method.

Goal (issue 3): under 200 ms for diff + render + enqueue, and a handful of Slack calls.

Then **posts per orchestration** (issue 11): the simulator's 2,000-operation orchestration
with 150 failures over 4 reasons, polled every minute of its own clock until it ends, with
the default ``slack.digest_interval`` (10 minutes), delivered to the fake Slack over real
HTTP: how many posts of each kind, card edits, and the render + enqueue time per cycle.
Run: ``python benchmarks/notify_cycle.py`` (``--skip-run`` for the burst only).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakeslack import FakeSlack
from watcher.config import SlackConfig
from watcher.core.diff import Observation, Snapshot, diff
from watcher.core.models import Operation, Orchestration
from watcher.engine.cycle import notification_policy
from watcher.notify.budget import RateBudget
from watcher.notify.render import Renderer
from watcher.notify.sender import Sender
from watcher.notify.slack import BotSlack
from watcher.store.database import Store
from watcher.store.outbox import Card, Outbox

ORCHESTRATIONS = 20
OPERATIONS = 100  # per orchestration: 2,000 in all
REASONS = (
    "provisioner client returns failed status: Operation failed: last error: shoot "
    "reconciliation timed out",
    "operation has reached the time limit: 3h0m0s",
)
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def orchestration(i: int, state: str) -> Orchestration:
    return Orchestration(
        f"orch-{i:02d}",
        type="upgradeCluster",
        state=state,
        description=f"Scheduled {OPERATIONS} operations",
        created_at=NOW - timedelta(hours=2),
        updated_at=NOW,
        parameters={"strategy": {"parallel": {"workers": OPERATIONS}}},
        operation_stats={},
    )


def operations(i: int, *, done: bool) -> dict[str, Operation]:
    ops = {}
    for n in range(OPERATIONS):
        failed = done and n % 25 == 0  # 4 % fail
        state = ("failed" if failed else "succeeded") if done else "in progress"
        description = REASONS[n % 2] if failed else ("Operation succeeded" if done else "")
        op_id = f"op-{i:02d}-{n:03d}"
        ops[op_id] = Operation(
            op_id,
            runtime_id=f"rt-{i}-{n}",
            shoot_name=f"c-{i:02d}{n:03d}",
            state=state,
            description=description,
        )
    return ops


def prepare(path: Path) -> Store:
    store = Store(path)
    ids = [f"orch-{i:02d}" for i in range(ORCHESTRATIONS)]
    store.track(ids, None, NOW - timedelta(hours=1))
    for i, orch_id in enumerate(ids):
        first = diff(
            Snapshot(orch_id),
            Observation(orchestration(i, "in progress"), operations(i, done=False)),
            NOW,
        )
        store.commit_diff(first, now=NOW - timedelta(hours=1), cycle_id=None, full_sweep=True)
    with store.transaction() as conn:  # the cards were posted long ago
        conn.execute("UPDATE outbox SET status = 'sent'")
    return store


def one_cycle(store: Store) -> tuple[float, float, int]:
    policy = notification_policy(
        store, stuck_after=0.0, digest_interval=SlackConfig().digest_interval
    )
    tracked = {t.orchestration_id: t for t in store.tracked()}
    t0 = time.perf_counter()
    for i in range(ORCHESTRATIONS):
        orch_id = f"orch-{i:02d}"
        prev = store.load_snapshot(store.load_head(orch_id))
        result = diff(prev, Observation(orchestration(i, "failed"), operations(i, done=True)), NOW)
        intents = policy(result, tracked[orch_id], NOW)
        store.commit_diff(result, now=NOW, cycle_id=None, full_sweep=True, intents=intents)
    enqueue = time.perf_counter() - t0
    renderer = Renderer()
    pending = Outbox(store).entries(("pending",))
    t1 = time.perf_counter()
    for entry in pending:
        renderer.render(entry.kind, entry.payload)
    render = time.perf_counter() - t1
    return enqueue, render, len(pending)


async def deliver(store: Store, slack: FakeSlack) -> Counter[str]:
    outbox = Outbox(store)
    for i in range(ORCHESTRATIONS):  # cards exist: updates go to them
        orch_id = f"orch-{i:02d}"
        posted = BotSlack("xoxb-test-token", slack.api_url).post(
            "#kyma-upgrades",
            Renderer().render("tracking_started", {"orchestration": {}}).message,
            {},
        )
        outbox.save_card(orch_id, Card(posted.channel, posted.ts), NOW)
    before = len(slack.calls)
    sender = Sender(
        outbox,
        BotSlack("xoxb-test-token", slack.api_url),
        Renderer(),
        default_channel="#kyma-upgrades",
        budget=RateBudget(post_interval=0.0, updates_per_minute=10**6),
    )
    await sender.deliver(deadline=time.monotonic() + 60)
    return Counter(c.method for c in slack.calls[before:])


def whole_run(tmp: Path) -> None:
    """The 2,000-operation, 150-failure orchestration polled every simulated minute."""
    from tests.conftest import write_config
    from tests.test_notify_e2e import DIGEST
    from watcher.app import Watcher
    from watcher.config.loader import load_config
    from watcher.sim import SimServer, Simulator

    sim = Simulator(DIGEST, seed=3)
    keb = SimServer(sim).start()
    slack = FakeSlack(
        channels={"#kyma-upgrades": "C0KYMA001"}, post_interval=0.0, update_per_minute=10**6
    ).start()
    section = (
        f'\n[slack]\ntoken = "xoxb-test-token"\nchannel = "#kyma-upgrades"\n'
        f'base_url = "{slack.api_url}"\n'
    )
    config = load_config(write_config(tmp / "watcher.toml", keb.url, sim.token, section), {})
    budget = RateBudget(post_interval=0.0, updates_per_minute=10**6)
    renderer = Renderer()
    polls, cycle_ms, seen = 0, [], 0
    statuses = ("pending", "sent", "superseded", "skipped")
    try:
        with Watcher(config, clock=lambda: sim.now, budget=budget) as app:
            app.track(sim.orchestration_ids(), None)
            while True:
                outcome = asyncio.run(app.poll(deadline=30))
                assert not outcome.cycle.failed
                polls += 1
                # render + enqueue of this cycle: the cycle's own time (diff, policy, commit)
                # plus rendering what it queued (delivery, which waits for HTTP, excluded).
                queued = [e for e in app.outbox().entries(statuses) if e.id > seen]
                seen = max([seen, *(e.id for e in queued)])
                t1 = time.perf_counter()
                for entry in queued:
                    renderer.render(entry.kind, entry.payload)
                cycle_ms.append((outcome.cycle.seconds + time.perf_counter() - t1) * 1000)
                if sim.all_finished() and all(
                    t.finished_at for t in app.tracked(include_inactive=True)
                ):
                    break
                sim.advance(60)
            started = sim.epoch
    finally:
        keb.stop()
        slack.stop()
    posts = [c for c in slack.calls if c.method == "chat.postMessage" and c.ok]
    kinds = Counter(c.args["metadata"]["event_payload"]["kind"] for c in posts)
    updates = sum(c.method == "chat.update" and c.ok for c in slack.calls)
    print(
        f"\n1 orchestration, 2,000 operations, 150 failures over 4 reasons, polled every "
        f"minute for {polls} polls ({(sim.now - started).total_seconds() / 60:.0f} simulated "
        f"minutes), slack.digest_interval 10m:"
    )
    print(
        f"posts: {len(posts)} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}); "
        f"card edits: {updates}"
    )
    print(
        f"render + enqueue per cycle: median {statistics.median(cycle_ms):.1f} ms, "
        f"max {max(cycle_ms):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-run", action="store_true", help="only the one-cycle burst")
    args = parser.parse_args()
    enqueues, renders = [], []
    intents = 0
    calls: Counter[str] = Counter()
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            store = prepare(Path(tmp) / "bench.db")
            enqueue, render, intents = one_cycle(store)
            enqueues.append(enqueue)
            renders.append(render)
            if run == 0:
                with FakeSlack(
                    channels={"#kyma-upgrades": "C0KYMA001"},
                    post_interval=0.0,
                    update_per_minute=10**6,
                ) as slack:
                    calls = asyncio.run(deliver(store, slack))
            store.close()
    enqueue, render = statistics.median(enqueues), statistics.median(renders)
    print(
        f"{ORCHESTRATIONS} orchestrations x {OPERATIONS} operations finishing in one cycle "
        f"(median of {args.repeat})"
    )
    print(f"diff + policy + enqueue: {enqueue * 1000:7.1f} ms")
    print(f"render {intents} intents:   {render * 1000:7.1f} ms")
    print(f"total:                   {(enqueue + render) * 1000:7.1f} ms  (goal < 200 ms)")
    by_method = ", ".join(f"{n} {m}" for m, n in sorted(calls.items()))
    print(
        f"Slack calls: {sum(calls.values())} ({by_method}) for 2,000 completions in "
        f"{ORCHESTRATIONS} orchestrations: per orchestration one card edit and one final summary"
    )
    if not args.skip_run:
        with tempfile.TemporaryDirectory() as tmp:
            whole_run(Path(tmp))


if __name__ == "__main__":
    main()
