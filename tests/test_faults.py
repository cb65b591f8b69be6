"""Faults from the simulator never produce a traceback: `poll` exits 1 on a failed cycle,
says why in one line per orchestration, and the next cycle recovers with nothing lost."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Cli, Keb
from tests.test_ground_truth import check_against_truth, follow, poll_recording


def poll(keb: Keb, cli: Cli) -> Any:
    return poll_recording(keb, cli)


def assert_one_line_errors(err: str, ids: list[str], expected: str) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert len(lines) == len(ids), err
    for line in lines:
        assert line.startswith("watcher: "), line
        assert expected in line, line


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("5xx", "500 Internal Server Error"),
        ("502-html", "502 Bad Gateway"),
        ("slow", "timed out"),
        ("truncated", "JSON"),
        ("html-200", "HTML"),
        ("reject-token", "401 Unauthorized: Jwt is expired"),
        ("rbac", "403 Forbidden: RBAC: access denied"),
        ("reset", "KEB GET"),
    ],
)
def test_fault_fails_the_cycle_in_one_line_and_the_next_recovers(
    keb_factory: Any, cli: Cli, kind: str, expected: str
) -> None:
    keb = keb_factory("failures")
    ids = keb.sim.orchestration_ids()
    cli("--config", str(keb.config), "track", *ids)
    assert poll(keb, cli).code == 0
    keb.sim.advance(600)
    keb.sim.faults.inject(kind, count=None, delay=3.0)
    failed = poll(keb, cli)
    assert failed.code == 1
    assert_one_line_errors(failed.err, ids, expected)
    assert keb.sim.token not in failed.err + failed.out
    listed = cli("--config", str(keb.config), "list", "-o", "json").json()
    assert all(item["lastError"] for item in listed)
    keb.sim.faults.clear()
    keb.sim.advance(600)
    assert poll(keb, cli).code == 0
    follow(keb, cli, (120.0, 600.0))
    check_against_truth(keb, cli)


def test_transient_errors_are_retried_within_the_cycle(keb_factory: Any, cli: Cli) -> None:
    keb = keb_factory("small")
    keb.config.write_text(keb.config.read_text().replace("retries = 1", "retries = 4"))
    cli("--config", str(keb.config), "track", *keb.sim.orchestration_ids())
    keb.sim.faults.inject("5xx", count=2)
    result = poll(keb, cli)
    assert result.code == 0, result.err
    assert keb.sim.faults.active() == []


def test_keb_down_then_back(keb_factory: Any, cli: Cli) -> None:
    keb = keb_factory("cancel")
    ids = keb.sim.orchestration_ids()
    cli("--config", str(keb.config), "track", *ids)
    assert poll(keb, cli).code == 0
    keb.server.stop()
    keb.sim.advance(900)
    down = poll(keb, cli)
    assert down.code == 1
    assert_one_line_errors(down.err, ids, "cannot connect")
    keb.restart()
    follow(keb, cli, (300.0,))
    check_against_truth(keb, cli)


def test_orchestration_unknown_to_keb_is_reported_once_and_is_not_a_failure(
    keb_factory: Any, cli: Cli
) -> None:
    keb = keb_factory("small")
    ghost = "00000000-0000-4000-8000-000000000000"
    cli("--config", str(keb.config), "track", "--no-check", ghost)
    first = poll(keb, cli)
    assert first.code == 0, first.err
    history = cli("--config", str(keb.config), "history", ghost, "-o", "json").json()
    assert [t["kind"] for t in history] == ["orchestration_not_found"]
    again = poll(keb, cli)
    assert again.code == 0
    assert "nothing to poll" in again.out
    listed = cli("--config", str(keb.config), "list", "-o", "json").json()
    assert listed[0]["notFound"] is True
    assert listed[0]["finished"] is True


def test_without_slack_an_outage_queues_no_alert(keb_factory: Any, cli: Cli) -> None:
    """``poll.alert_after`` applies only where there is somewhere to send the alert: a
    watcher without Slack polls through an outage and leaves the outbox empty."""
    keb: Keb = keb_factory("small")
    cfg = str(keb.config)
    with open(cfg, "a") as f:
        f.write('alert_after = "0s"\n')
    assert cli("--config", cfg, "track", *keb.sim.orchestration_ids()).code == 0
    assert cli("--config", cfg, "poll").code == 0
    keb.server.stop()
    assert cli("--config", cfg, "poll").code == 1
    assert cli("--config", cfg, "poll").code == 1
    assert cli("--config", cfg, "outbox", "list", "-o", "json").json() == []
