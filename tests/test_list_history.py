"""`list` and `history` for daily use (issue 12): state filters, a LAST POLL that moves on
every successful poll, AGE, `history --since/--tail/--follow`."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Cli


def test_list_state_filter_with_kcp_spellings(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("demo")
    keb.sim.advance(100)
    cfg = str(keb.config)
    ids = keb.sim.orchestration_ids()
    cli("track", *ids, "-c", cfg)
    assert cli("poll", "-c", cfg).code == 0
    truth = {i: keb.sim.orchestration_state(i) for i in ids}
    running = cli("list", "--state", "inprogress", "-o", "json", "-c", cfg).json()
    assert {item["orchestrationID"] for item in running} == {
        i for i, s in truth.items() if s == "in progress"
    }
    assert all(item["createdAt"] for item in running)
    either = cli("list", "-s", "pending", "-s", "in progress", "-o", "json", "-c", cfg).json()
    assert {item["orchestrationID"] for item in either} == {
        i for i, s in truth.items() if s in ("pending", "in progress")
    }
    none = cli("list", "--state", "canceled", "-c", cfg)
    assert none.out == "no tracked orchestration is canceled\n"
    assert cli("list", "--state", "done", "-c", cfg).code == 2
    text = cli("list", "-s", "inprogress", "-c", cfg).out.splitlines()
    assert text[0].split() == ["ORCHESTRATION", "STATE", "AGE", "LAST", "POLL", "OPERATIONS"]
    assert len(text) == 1 + len(running)


def test_last_poll_moves_on_every_successful_poll(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("small")
    cfg = str(keb.config)
    orch_id = keb.sim.orchestration_ids()[0]
    cli("track", orch_id, "-c", cfg)
    assert cli("poll", "-c", cfg).code == 0
    [first] = cli("list", "-o", "json", "-c", cfg).json()
    time.sleep(0.01)
    unchanged = cli("poll", "-c", cfg)  # KEB's clock did not move: nothing changed
    assert unchanged.code == 0
    assert "(unchanged" in unchanged.out or ", 0 transitions" in unchanged.out
    [second] = cli("list", "-o", "json", "-c", cfg).json()
    assert second["lastSuccessAt"] > first["lastSuccessAt"]
    # an error of an earlier poll is cleared by the next successful one, changed or not
    keb.sim.faults.inject("5xx", count=10)
    assert cli("poll", "-c", cfg).code == 1
    [failed] = cli("list", "-o", "json", "-c", cfg).json()
    assert failed["lastError"]
    assert failed["lastSuccessAt"] == second["lastSuccessAt"]
    keb.sim.faults.clear()
    assert cli("poll", "-c", cfg).code == 0
    [recovered] = cli("list", "-o", "json", "-c", cfg).json()
    assert recovered["lastError"] is None
    assert recovered["lastSuccessAt"] > second["lastSuccessAt"]
    assert "last poll failed" not in cli("list", "-c", cfg).out


@pytest.fixture
def new_york() -> Iterator[None]:
    """The local zone is not UTC (a time without a zone must still be read as UTC)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.usefixtures("new_york")
def test_history_since_and_tail(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("small")
    cfg = str(keb.config)
    orch_id = keb.sim.orchestration_ids()[0]
    cli("track", orch_id, "-c", cfg)
    cli("poll", "-c", cfg)
    keb.sim.advance(600)
    cli("poll", "-c", cfg)
    everything = cli("history", orch_id, "-o", "json", "-c", cfg).json()
    assert len(everything) >= 3
    assert (
        cli("history", orch_id[:8], "--tail", "2", "-o", "json", "-c", cfg).json()
        == (everything[-2:])
    )
    assert cli("history", orch_id, "--tail", "0", "-o", "json", "-c", cfg).json() == []
    assert cli("history", orch_id, "--since", "1h", "-o", "json", "-c", cfg).json() == everything
    later = datetime.fromisoformat(everything[-1]["at"]) + timedelta(seconds=1)
    nothing = cli("history", orch_id, "--since", later.isoformat(), "-c", cfg)
    assert nothing.out == f"no transitions match (of {len(everything)} transitions recorded)\n"
    second = datetime.fromisoformat(everything[1]["at"])
    naive = second.astimezone(UTC).replace(tzinfo=None).isoformat()  # no zone: UTC
    since = cli("history", orch_id, "--since", naive, "-o", "json", "-c", cfg).json()
    assert since == [t for t in everything if datetime.fromisoformat(t["at"]) >= second]
    assert 0 < len(since) < len(everything)
    combined = cli("history", orch_id, "--since", naive, "--tail", "1", "-o", "json", "-c", cfg)
    assert combined.json() == everything[-1:]
    bad = cli("history", orch_id, "--since", "yesterday", "-c", cfg)
    assert bad.code == 2
    assert "--since: 'yesterday' is neither a duration" in bad.err


def _read_lines(proc: subprocess.Popen[bytes], want: int, timeout: float) -> list[str]:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while buf.count(b"\n") < want and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
    return buf.decode().splitlines()


def test_history_follow_prints_what_poll_records_until_ctrl_c(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("small")
    cfg = str(keb.config)
    orch_id = keb.sim.orchestration_ids()[0]
    cli("track", orch_id, "-c", cfg)
    cli("poll", "-c", cfg)
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "history", orch_id[:8], "-f", "-o", "json", "-c", cfg],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        [baseline] = _read_lines(proc, 1, 20)
        assert '"kind":"baseline"' in baseline
        keb.sim.advance(120)
        assert keb.sim.orchestration_state(orch_id) == "in progress"  # not over: it follows on
        assert cli("poll", "-c", cfg).code == 0
        recorded = cli("history", orch_id, "-o", "json", "-c", cfg).json()
        followed = _read_lines(proc, len(recorded) - 1, 20)

        assert [json.loads(line)["key"] for line in followed] == [t["key"] for t in recorded[1:]]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert b"Traceback" not in err


@pytest.mark.parametrize(("scenario", "final"), [("small", "succeeded"), ("cancel", "canceled")])
def test_history_follow_ends_exit_0_once_the_final_transition_is_printed(
    cli: Cli, keb_factory: Any, scenario: str, final: str
) -> None:
    keb = keb_factory(scenario)
    cfg = str(keb.config)
    orch_id = keb.sim.orchestration_ids()[0]
    cli("track", orch_id, "-c", cfg)
    cli("poll", "-c", cfg)
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "history", orch_id, "--follow", "-c", cfg],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        [first] = _read_lines(proc, 1, 20)  # the baseline: it follows on
        assert proc.poll() is None
        keb.sim.run_until_finished()
        assert cli("poll", "-c", cfg).code == 0
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    recorded = cli("history", orch_id, "-c", cfg).out.splitlines()
    assert [first, *out.decode().splitlines()] == recorded
    kinds = cli("history", orch_id, "-o", "json", "-c", cfg).json()
    assert [t["to"] for t in kinds if t["kind"] == "orchestration_state"][-1] == final


def test_history_follow_of_an_ended_orchestration_prints_it_and_exits_0(
    cli: Cli, keb_factory: Any
) -> None:
    keb = keb_factory("small")
    cfg = str(keb.config)
    orch_id = keb.sim.orchestration_ids()[0]
    cli("track", orch_id, "-c", cfg)
    keb.sim.run_until_finished()
    cli("poll", "-c", cfg)
    followed = cli("history", orch_id[:8], "--follow", "-o", "json", "-c", cfg)
    assert followed.code == 0
    lines = [json.loads(line) for line in followed.out.splitlines()]
    assert lines == cli("history", orch_id, "-o", "json", "-c", cfg).json()
