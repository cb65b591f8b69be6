"""Fleet watch end to end: the real CLI, the simulator of current KEB and the fake Slack, all
over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Result
from tests.fakeslack import FakeSlack
from watcher.cli import main
from watcher.faces.watch.command import WatchHooks, make_watch_command
from watcher.sim.fleet import Fleet
from watcher.sim.fleet_server import FleetServer, FleetSim, demo_fleet, runtime_token
from watcher.sim.tokens import make_token

CHANNEL = "C0KYMA001"


@dataclass
class FleetRig:
    fleet: Fleet
    server: FleetServer
    slack: FakeSlack
    config: Path

    @property
    def ids(self) -> list[str]:
        return self.demo_ids

    demo_ids: list[str]

    def ours(self) -> list[Any]:
        return [
            m
            for m in self.slack.messages(CHANNEL)
            if m.metadata and m.metadata.get("event_type") == "keb_watcher_notification"
        ]


def write(path: Path, url: str, token: str, slack: FakeSlack | None) -> Path:
    text = (
        f'[keb]\nurl = "{url}"\ntoken = "{token}"\ntimeout = "5s"\nretries = 1\n\n'
        f'[storage]\npath = "{path.parent / "watcher.db"}"\n\n'
        '[poll]\nfull_sweep_every = "1h"\n'
    )
    if slack is not None:
        text += (
            f'\n[slack]\ntoken = "xoxb-test-token"\nchannel = "#kyma-upgrades"\n'
            f'base_url = "{slack.api_url}"\n'
        )
    path.write_text(text)
    return path


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[FleetRig]:
    fleet = demo_fleet(seed=1, size=12)
    ids = list(fleet.instances)
    with (
        FleetServer(FleetSim(fleet)) as server,
        FakeSlack(channels={"#kyma-upgrades": CHANNEL}, post_interval=0.0) as slack,
    ):
        config = write(tmp_path / "watcher.toml", server.url, runtime_token(), slack)
        yield FleetRig(fleet, server, slack, config, ids)


def test_a_selection_baselines_without_a_flood_then_reports_what_happened(
    cli: Cli, rig: FleetRig
) -> None:
    cfg = str(rig.config)
    # `fleet add` creates the database, like `track`.
    added = cli("--config", cfg, "fleet", "add", "demo")
    assert added.code == 0, added.err
    first = cli("--config", cfg, "poll")
    assert first.code == 0, first.err
    assert "fleet demo: 13 runtimes, 1 transition (baseline" in first.out
    assert "makes KEB fail every page it is on" in first.err  # the legacy runtime, once
    cards = rig.ours()
    assert len(cards) == 1  # one card, nothing announced one by one
    assert cards[0].metadata["event_payload"]["fleet"] == "demo"
    assert "orchestration_id" not in cards[0].metadata["event_payload"]

    rig.fleet.advance(3 * 3600)  # the failures, the suspension, the deprovisioning happen
    second = cli("--config", cfg, "poll")
    assert second.code == 0, second.err
    assert "makes KEB fail" not in second.err  # reported once
    messages = rig.ours()
    digests = [m for m in messages if "failed" in m.text and m.thread_ts]
    assert len(digests) == 1  # a failed provisioning and a failed update in one digest
    text = digests[0].text + json.dumps(digests[0].blocks)
    failed_update = rig.fleet.instances[rig.demo_ids[0]]
    assert failed_update.shoot in text
    assert failed_update.subaccount in text
    assert failed_update.instance_id in text
    assert "provisioning" in text
    assert "update" in text
    assert {m.metadata["event_payload"]["fleet"] for m in messages} == {"demo"}

    shown = cli("--config", cfg, "fleet", "show", "demo", "--output", "json")
    assert shown.code == 0, shown.err
    view = shown.json()
    changes = {(h["change"], h["instance_id"], h["to_state"]) for h in view["history"]}
    deprovisioned = rig.demo_ids[4]
    assert ("deprovisioned", deprovisioned, "") in changes
    assert ("operation_ended", deprovisioned, "succeeded") in changes
    assert not any(h["change"] == "vanished" for h in view["history"])
    suspended = rig.demo_ids[3]
    assert ("suspended", suspended, "succeeded") in changes
    hung = rig.demo_ids[1]
    assert any(
        o["instance_id"] == hung and o["kind"] == "update" and o["state"] == "in progress"
        for o in view["operations"]
    )
    listed = cli("--config", cfg, "fleet", "list", "--output", "json").json()
    assert [s["name"] for s in listed] == ["demo"]
    assert listed[0]["baseline_at"] is not None


def test_unsuspension_keeps_the_instance_and_gets_a_new_runtime_id(cli: Cli, rig: FleetRig) -> None:
    cfg = str(rig.config)
    suspended = rig.demo_ids[3]
    old_runtime = rig.fleet.instances[suspended].runtime_id
    assert cli("--config", cfg, "fleet", "add", "demo", "--instance", suspended).code == 0
    assert cli("--config", cfg, "poll").code == 0
    for step in (1200, 800, 3 * 3600):  # suspended; unsuspending (from 1800 s); unsuspended
        rig.fleet.advance(step)
        assert cli("--config", cfg, "poll").code == 0
    history = cli("--config", cfg, "fleet", "show", "demo", "-o", "json").json()["history"]
    unsuspended = [h for h in history if h["change"] == "unsuspended"]
    assert len(unsuspended) == 1
    assert unsuspended[0]["instance_id"] == suspended
    assert unsuspended[0]["runtime_id"] not in ("", old_runtime)
    status = cli("--config", cfg, "status", "--instance", suspended, "-o", "json")
    assert status.code == 0, status.err
    now = status.json()
    assert now["instance_id"] == suspended
    assert now["runtime_id"] == unsuspended[0]["runtime_id"]
    kinds = [op["kind"] for op in now["operations"]]
    assert "suspension" in kinds
    assert "unsuspension" in kinds
    text = cli("--config", cfg, "status", "--instance", suspended)
    assert f"instance {suspended}" in text.out


def test_status_of_a_deprovisioned_and_of_an_unknown_instance(cli: Cli, rig: FleetRig) -> None:
    gone = rig.demo_ids[4]
    rig.fleet.advance(3 * 3600)
    env = {"KEB_URL": rig.server.url, "KEB_TOKEN": runtime_token()}
    answer = cli("status", "--instance", gone, env=env)
    assert answer.code == 0, answer.err
    assert "deprovisioned" in answer.out
    unknown = cli("status", "--instance", str(uuid.uuid4()), env=env)
    assert unknown.code == 1
    assert "no runtime with instance ID" in unknown.err
    both = cli("status", "abc", "--instance", gone, env=env)
    assert both.code == 2


def test_told_where_to_go_against_a_keb_without_orchestrations(
    cli: Cli, rig: FleetRig, tmp_path: Path
) -> None:
    cfg = str(rig.config)
    orchestration = str(uuid.uuid4())
    tracked = cli("--config", cfg, "track", orchestration)
    assert tracked.code != 0
    assert "watcher fleet add NAME" in tracked.err
    assert cli("--config", cfg, "track", "--no-check", orchestration).code == 0
    polled = cli("--config", cfg, "poll")
    assert polled.code == 1
    assert "serves the runtimes API (GET /runtimes)" in polled.err
    assert "watcher fleet add NAME" in polled.err
    env = {"KEB_URL": rig.server.url, "KEB_TOKEN": runtime_token()}
    watched = cli("watch", orchestration, "--output", "json", env=env)
    assert watched.code == 5
    assert "watcher fleet add NAME" in watched.err
    checked = cli("--config", cfg, "check-config", "--online")
    assert checked.code == 0, checked.err
    assert "serves the runtimes API (GET /runtimes, 13 runtimes)" in checked.out


def test_a_403_names_the_runtime_groups(cli: Cli, rig: FleetRig, tmp_path: Path) -> None:
    token = make_token(groups=("orchestrationsAdmin",))
    cfg = str(write(tmp_path / "denied.toml", rig.server.url, token, None))
    assert cli("--config", cfg, "fleet", "add", "all").code == 0
    polled = cli("--config", cfg, "poll")
    assert polled.code == 1
    assert "RBAC: access denied" in polled.err
    assert "runtimeAdmin or runtimeOperator or runtimeViewer" in polled.err
    assert token not in polled.err + polled.out
    listed = cli("--config", cfg, "fleet", "list")
    assert "last error" in listed.out


def test_bad_input_is_one_line_and_loses_nothing(cli: Cli, rig: FleetRig) -> None:
    cfg = str(rig.config)
    assert cli("--config", cfg, "fleet", "add", "demo", "--plan", "aws,azure").code == 0
    again = cli("--config", cfg, "fleet", "add", "demo")
    assert again.code == 2
    assert again.err.count("\n") == 1
    assert "exists already" in again.err
    bad = cli("--config", cfg, "fleet", "add", "no spaces")
    assert bad.code == 2
    assert "selection name" in bad.err
    missing = cli("--config", cfg, "fleet", "remove", "nope")
    assert missing.code == 2
    listed = cli("--config", cfg, "fleet", "list", "-o", "json").json()
    assert listed[0]["filters"] == {"plan": ["aws", "azure"]}
    assert cli("--config", cfg, "fleet", "remove", "demo").code == 0
    assert cli("--config", cfg, "fleet", "list", "-o", "json").json() == []


@pytest.fixture
def watch_instances(
    cli: Cli, rig: FleetRig, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """`watcher watch --instance ...` whose sleep advances the simulated fleet."""
    clock = {"now": 0.0}

    async def sleep(seconds: float) -> None:
        clock["now"] += seconds
        rig.fleet.advance(seconds)

    hooks = WatchHooks(sleep=sleep, clock=lambda: clock["now"], terminal=lambda: False)
    monkeypatch.setitem(main.commands, "watch", make_watch_command(hooks))
    env = {"KEB_URL": rig.server.url, "KEB_TOKEN": runtime_token()}

    def run(*args: str, token: str | None = None) -> Result:
        return cli("watch", *args, env=env | ({"KEB_TOKEN": token} if token else {}))

    return run


def test_watch_instance_exit_codes(watch_instances: Callable[..., Result], rig: FleetRig) -> None:
    failing, hung, succeeding, _suspending, gone = rig.demo_ids[:5]
    # Two updates run from 60 s to 660 s, one of them fails: followed together, exit 1.
    both = watch_instances(
        "--instance", f"{succeeding},{failing}", "--interval", "60s", "-o", "json"
    )
    assert both.code == 1, both.err
    events = [json.loads(line) for line in both.out.splitlines()]
    assert {(e["instance"], e["kind"]) for e in events if e["type"] == "following"} == {
        (succeeding, "update"),
        (failing, "update"),
    }
    assert events[-1] == {
        "type": "summary",
        "exitCode": 1,
        "outcomes": {succeeding: "succeeded", failing: "failed"},
    }
    failed = [e for e in events if e["type"] == "ended" and e["instance"] == failing]
    assert failed[0]["reason"]
    # The deprovisioning (until 960 s) is never shown succeeded: the archive says so, exit 0.
    deprovisioned = watch_instances("--instance", gone, "--interval", "60s")
    assert deprovisioned.code == 0, deprovisioned.out + deprovisioned.err
    assert "deprovisioning" in deprovisioned.out
    timed_out = watch_instances("--instance", hung, "--interval", "60s", "--timeout", "10m")
    assert timed_out.code == 4
    assert "--timeout reached" in timed_out.out
    unknown = watch_instances("--instance", str(uuid.uuid4()), "--interval", "60s")
    assert unknown.code == 5
    denied = watch_instances("--instance", hung, token=make_token(groups=("orchestrationsAdmin",)))
    assert denied.code == 5
    assert "runtimeViewer" in denied.out + denied.err
    mixed = watch_instances("--instance", hung, "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11")
    assert mixed.code == 2


def test_watch_instance_waits_for_the_next_operation(
    watch_instances: Callable[..., Result], rig: FleetRig
) -> None:
    quiet = rig.demo_ids[7]
    rig.fleet.at(rig.fleet.now + 600, lambda: rig.fleet.update(quiet))
    result = watch_instances("--instance", quiet, "--interval", "120s", "-o", "json")
    assert result.code == 0, result.err
    types = [json.loads(line)["type"] for line in result.out.splitlines()]
    assert types[0] == "waiting"
    assert "following" in types
    assert types[-2:] == ["ended", "summary"]


def test_run_follows_selections_in_its_cycle(cli: Cli, rig: FleetRig, tmp_path: Path) -> None:
    """`watcher run` (a real process) polls the selection beside the orchestrations: the
    card at the baseline, then the digest once the fleet moved."""
    port = free_port()
    config = tmp_path / "run.toml"
    config.write_text(
        rig.config.read_text().replace("[poll]\n", '[poll]\ninterval = "1s"\njitter = "0s"\n')
        + f'\n[service]\nlisten = "127.0.0.1:{port}"\n'
    )
    assert cli("--config", str(config), "fleet", "add", "demo").code == 0
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        wait_until(lambda: len(rig.ours()) >= 1)
        rig.fleet.advance(3 * 3600)
        wait_until(lambda: any(m.thread_ts and "failed" in m.text for m in rig.ours()))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert {m.metadata["event_payload"]["fleet"] for m in rig.ours()} == {"demo"}
    history = cli("--config", str(config), "fleet", "show", "demo", "-o", "json").json()
    assert any(h["change"] == "deprovisioned" for h in history["history"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
