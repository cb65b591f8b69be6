"""`watcher run` as a real process: the simulator (accelerated clock) as KEB, a fake Slack,
signals, a crash, two instances on one database, KEB going away, /readyz and /metrics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Cli, Keb, write_config
from tests.fakeslack import FakeSlack
from tests.slack_rig import CHANNEL, SlackRig
from tests.test_ground_truth import check_against_truth
from tests.test_metrics import FAMILIES
from tests.test_monitoring import monitoring_metric_names
from watcher.core.models import KNOWN_STATES
from watcher.sim import SCENARIOS, SimServer, Simulator
from watcher.sim.scenarios import ScenarioSpec
from watcher.store.database import Store
from watcher.store.outbox import Outbox

#: Each orchestration has its own channel, so that Slack's one post per second per channel
#: does not make the tests wait.
CHANNELS = {f"#kyma-{i}": f"C0KYMA01{i}" for i in range(3)}
ROOT = Path(__file__).resolve().parents[1]
#: Three orchestrations (12 operations that succeed, 60 with failures, 60 canceled) that are
#: all over after about 26 virtual minutes: a few real seconds at SPEED.
E2E = ScenarioSpec(
    "e2e",
    "small, failures and cancel together",
    (
        replace(SCENARIOS["small"].orchestrations[0], created=-3.0),
        replace(
            SCENARIOS["failures"].orchestrations[0],
            ops=60,
            workers=10,
            created=-2.0,
            start_delay=20.0,
        ),
        replace(SCENARIOS["cancel"].orchestrations[0], created=-1.0, start_delay=30.0),
    ),
)
SPEED = 360.0
STATES = (*KNOWN_STATES, "unknown")

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    """One `watcher run` process; its stderr is collected line by line."""

    proc: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None and not any(text in x for x in self.lines):
                time.sleep(0.2)  # let the reader drain
                if not any(text in x for x in self.lines):
                    break
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} in:\n{self.log}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            url = f"http://127.0.0.1:{self.port}{path}"
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except urllib.error.URLError as err:  # not listening yet
            return 0, str(err.reason)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@dataclass
class Setup(SlackRig):
    services: list[Service] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.config.parent / "watcher.db"

    def start(self) -> Service:
        port = free_port()
        config = self.config.parent / f"run-{port}.toml"
        config.write_text(
            self.config.read_text() + f'\n[service]\nlisten = "127.0.0.1:{port}"\n'
            "ready_after_intervals = 2\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(config), "run"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        service = Service(proc, port)
        self.services.append(service)
        return service

    def channels(self) -> tuple[str, ...]:
        return (CHANNEL, *CHANNELS.values())

    def all_done(self) -> bool:
        """KEB is done, and every orchestration is finished (outcome delivered)."""
        if not self.sim.all_finished():
            return False
        with Store(self.db) as store:
            return all(t.finished_at is not None for t in store.tracked())

    def wait_done(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.all_done():
            assert time.monotonic() < deadline, "\n\n".join(s.log for s in self.services)
            time.sleep(0.2)

    def check(self, cli: Cli) -> None:
        """What was recorded matches what KEB did; Slack got everything once, politely."""
        check_against_truth(Keb(self.sim, self.keb, self.config), cli)
        keys = self.keys()
        duplicates = {k: n for k, n in Counter(keys).items() if n > 1}
        assert not duplicates, duplicates
        assert sum(":finished:" in k for k in keys) == len(self.sim.orchestration_ids())
        assert self.slack.violations == []
        with Store(self.db) as store:
            assert Outbox(store).entries(("pending", "failed", "dead")) == []
            unfinished = store.conn.execute(
                "SELECT COUNT(*) FROM cycles WHERE finished_at IS NULL"
            ).fetchone()[0]
            assert unfinished <= 1  # only a cycle cut short by SIGKILL
            assert store.conn.execute("SELECT COUNT(*) FROM lease").fetchone()[0] == 0


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Callable[..., Setup]]:
    made: list[Setup] = []

    def make(speed: float = SPEED) -> Setup:
        sim = Simulator(E2E, seed=7, speed=speed)
        keb = SimServer(sim).start()
        slack = FakeSlack(
            channels={"#kyma-upgrades": CHANNEL, **CHANNELS}, post_interval=0.05
        ).start()
        extra = (
            'interval = "1s"\njitter = "0s"\n\n[slack]\ntoken = "xoxb-test-token"\n'
            f'channel = "#kyma-upgrades"\nbase_url = "{slack.api_url}"\n'
        )
        config = write_config(tmp_path / "watcher.toml", keb.url, sim.token, extra)
        with Store(tmp_path / "watcher.db") as store:
            for orch_id, channel in zip(sim.orchestration_ids(), CHANNELS, strict=True):
                store.track([orch_id], channel, datetime.now(UTC))
        made.append(Setup(sim, keb, slack, config))
        return made[-1]

    yield make
    for s in made:
        for service in s.services:
            if service.proc.poll() is None:
                service.proc.kill()
                service.proc.wait()
        s.keb.stop()
        s.slack.stop()


def test_sigterm_in_the_middle_of_a_cycle_exits_0_and_loses_nothing(
    setup: Callable[..., Setup], cli: Cli
) -> None:
    s = setup()
    service = s.start()
    service.wait_for("cycle 2:")
    # The next request to KEB is held for 1.5 s: SIGTERM arrives while a cycle waits for it
    # (and it finishes within the 2 s grace).
    s.sim.faults.inject("slow", count=1, delay=1.5, path_prefix="/orchestrations")
    deadline = time.monotonic() + 10
    while s.sim.faults.active():
        assert time.monotonic() < deadline, service.log
        time.sleep(0.01)
    started = time.monotonic()
    assert service.stop(signal.SIGTERM) == 0, service.log
    assert time.monotonic() - started >= 1.0  # it waited for the cycle
    service.wait_for("SIGTERM received: stopping")
    service.wait_for("waiting up to 2s for the cycle in flight")
    service.wait_for("stopped; lease released")
    assert "stopping without finishing" not in service.log
    assert "Traceback" not in service.log
    with Store(s.db) as store:
        last = store.conn.execute(
            "SELECT finished_at FROM cycles ORDER BY id DESC LIMIT 1"
        ).fetchone()
        assert last[0] is not None  # the cycle in flight was finished, not cut
        assert Outbox(store).entries(("pending",)) == []  # flushed before exiting
    # A later `watcher poll` (no lease left behind) finishes the job, as if nothing happened.
    for _ in range(20):
        assert cli("--config", str(s.config), "poll").code == 0
        if s.all_done():
            break
        s.sim.advance(300)
    s.check(cli)


def test_kill_9_and_restart_picks_up_where_it_was(setup: Callable[..., Setup], cli: Cli) -> None:
    s = setup()
    first = s.start()
    first.wait_for("cycle 3:")
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    posted = len(s.messages())
    assert posted >= 1
    second = s.start()
    # Same host, and the holder's process is gone: no need to wait for the lease to expire.
    second.wait_for(f"took over the lease of keb-watcher {socket.gethostname()}:{first.proc.pid}")
    s.wait_done()
    assert second.stop(signal.SIGTERM) == 0, second.log
    assert "baseline" not in second.log  # resumed from the snapshot, no new baseline
    s.check(cli)


def test_two_services_on_one_database_send_nothing_twice(
    setup: Callable[..., Setup], cli: Cli
) -> None:
    s = setup(speed=180.0)  # KEB still has work when the second one takes over
    first = s.start()
    first.wait_for("holding the lease")
    second = s.start()
    line = second.wait_for("holds the lease until")
    assert f"another keb-watcher ({socket.gethostname()}:{first.proc.pid}) holds" in line
    assert "waiting until it is released or expires" in line
    status, body = second.get("/readyz")
    assert status == 503
    assert body.startswith(f"not ready: another keb-watcher ({socket.gethostname()}:")
    time.sleep(1.0)
    assert sum("holds the lease until" in x for x in second.lines) == 1  # said once
    # The first one freezes (alive, so its lease must expire first), then dies.
    first.proc.send_signal(signal.SIGSTOP)
    frozen = time.monotonic()
    second.wait_for("took over the lease", timeout=15)
    assert time.monotonic() - frozen >= 2.0  # not before the lease expired
    first.proc.send_signal(signal.SIGCONT)
    first.wait_for("lost the lease", timeout=10)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    s.wait_done()
    assert second.stop(signal.SIGTERM) == 0, second.log
    s.check(cli)


def test_readyz_turns_unready_when_keb_is_down_and_ready_again_after(
    setup: Callable[..., Setup],
) -> None:
    s = setup(speed=30.0)
    service = s.start()

    def wait_ready(expected: int) -> str:
        deadline = time.monotonic() + 15
        while True:
            status, body = service.get("/readyz")
            if status == expected:
                return body
            assert time.monotonic() < deadline, f"{status} {body}\n{service.log}"
            time.sleep(0.1)

    assert wait_ready(200).startswith("ready: last successful poll")
    port = int(s.keb.url.rsplit(":", 1)[1])
    s.keb.stop()
    body = wait_ready(503)
    assert body.startswith("not ready: last successful poll ")
    assert "(limit 2.0s); last error: KEB GET /orchestrations/" in body
    assert body.count("\n") == 1
    assert service.get("/healthz") == (200, "ok\n")
    s.keb = SimServer(s.sim, port=port).start()
    assert wait_ready(200).startswith("ready: ")
    assert service.stop() == 0, service.log


def test_metrics_parse_and_poll_refuses_while_run_holds_the_lease(
    setup: Callable[..., Setup], cli: Cli
) -> None:
    s = setup()
    s.slack.fail_next("chat.postMessage", error="ratelimited", count=1)  # one 429
    service = s.start()
    service.wait_for("holding the lease")
    refused = cli("--config", str(s.config), "poll")
    assert refused.code == 1
    [line] = refused.err.splitlines()
    assert line.startswith(
        f"watcher: another keb-watcher ({socket.gethostname()}:{service.proc.pid}) "
        "holds the lease until "
    )
    assert line.endswith("; not polling")
    deadline = time.monotonic() + 20
    while len(s.messages()) < 6:
        assert time.monotonic() < deadline, service.log
        time.sleep(0.1)
    time.sleep(1.5)  # one more delivery run and cycle update the gauges
    status, text = service.get("/metrics")
    assert status == 200
    families = list(text_string_to_metric_families(text))
    assert {f.name for f in families} >= FAMILIES

    def value(name: str, **labels: str) -> float:
        found = [
            x.value for f in families for x in f.samples if (x.name, x.labels) == (name, labels)
        ]
        assert found, (name, labels)
        return found[0]

    assert value("keb_watcher_poll_cycles_total", outcome="success") >= 3
    assert value("keb_watcher_poll_cycle_duration_seconds_count") >= 3
    assert value("keb_watcher_keb_requests_total", outcome="ok") > 0
    assert value("keb_watcher_keb_request_duration_seconds_count", status="2xx") > 0
    assert value("keb_watcher_transitions_total", kind="baseline") == 3
    assert value("keb_watcher_transitions_total", kind="operation_completed") > 0
    assert value("keb_watcher_notifications_total", outcome="sent") >= 4
    assert value("keb_watcher_slack_rate_limited_total", method="chat.postMessage") == 1
    assert value("keb_watcher_slack_errors_total", method="chat.postMessage", reason="ratelimited")
    with Store(s.db) as store:
        pending = len(Outbox(store).entries(("pending",)))
    assert value("keb_watcher_outbox_notifications", status="pending") >= pending - 3
    assert value("keb_watcher_outbox_notifications", status="dead") == 0
    assert value("keb_watcher_outbox_oldest_pending_age_seconds") < 30
    assert value("keb_watcher_last_successful_poll_timestamp_seconds") > time.time() - 10
    assert value("keb_watcher_lease_held") == 1
    # Graphable: no _created series, the process collector, the version, the new gauges.
    assert "_created" not in text
    assert value("keb_watcher_build_info", version=version("keb-watcher")) == 1
    assert value("process_start_time_seconds") > 0
    assert value("process_resident_memory_bytes") > 0
    assert value("keb_watcher_alert_after_seconds") == 600
    assert sum(value("keb_watcher_orchestrations", state=state) for state in STATES) == 3
    assert value("keb_watcher_operations_finished_total", state="succeeded") > 0
    used = monitoring_metric_names()
    exposed = {x.name for f in families for x in f.samples}
    assert used - exposed == set(), "queried by the alerts or the dashboard, never exposed"
    assert service.stop() == 0, service.log
    assert len(s.keys()) == len(set(s.keys()))
