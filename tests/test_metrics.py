"""Metrics in the Prometheus text format, readiness, and the HTTP endpoint serving them."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving import serving
from watcher.core.diff import Transition, TransitionKind
from watcher.engine.cycle import CycleReport, PollResult
from watcher.errors import KebTransientError, WatcherError
from watcher.faces.run.health import Readiness, health_routes
from watcher.faces.run.metrics import Metrics
from watcher.faces.run.server import WebServer
from watcher.notify.sender import DeliveryReport
from watcher.store.database import Store
from watcher.store.outbox import Outbox

NOW = datetime(2024, 5, 14, 8, 0, 0, tzinfo=UTC)
FAMILIES = {
    "keb_watcher_poll_cycles",
    "keb_watcher_poll_cycle_duration_seconds",
    "keb_watcher_orchestration_polls",
    "keb_watcher_orchestrations_due",
    "keb_watcher_orchestrations_tracked",
    "keb_watcher_discovered_orchestrations",
    "keb_watcher_keb_requests",
    "keb_watcher_keb_request_duration_seconds",
    "keb_watcher_transitions",
    "keb_watcher_notifications",
    "keb_watcher_slack_errors",
    "keb_watcher_slack_rate_limited",
    "keb_watcher_outbox_notifications",
    "keb_watcher_outbox_oldest_pending_age_seconds",
    "keb_watcher_last_successful_poll_timestamp_seconds",
    "keb_watcher_lease_held",
    "keb_watcher_orchestrations",
    "keb_watcher_orchestrations_finished",
    "keb_watcher_operations_finished",
    "keb_watcher_operation_failures",
    "keb_watcher_alert_after_seconds",
    "keb_watcher_build_info",
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
}


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def transition(kind: TransitionKind, key: str) -> Transition:
    return Transition(kind, "o1", key, NOW)


def test_every_family_is_exposed_and_parses_before_anything_happened() -> None:
    metrics = Metrics()
    text = metrics.exposition().decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert names >= FAMILIES
    values = samples(metrics)
    assert values[("keb_watcher_poll_cycles_total", (("outcome", "success"),))] == 0.0
    assert values[("keb_watcher_outbox_notifications", (("status", "pending"),))] == 0.0
    assert "keb_watcher" not in generate_latest(REGISTRY).decode()  # not the global registry


def test_no_created_series_but_process_and_build_info() -> None:
    metrics = Metrics()
    metrics.cycle(CycleReport(1, NOW, 0.1), 0.1, True, NOW)
    metrics.keb_request("2xx", 0.02)
    text = metrics.exposition().decode()
    assert "_created" not in text
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert {"process_cpu_seconds_total", "process_start_time_seconds"} <= names
    assert samples(metrics)[("keb_watcher_build_info", (("version", version("keb-watcher")),))] == 1
    # The switch is the exposition's own, not prometheus-client's global one.
    assert "_created" in generate_latest(metrics.registry).decode()


def test_finished_states_tracked_states_and_failure_reasons() -> None:
    metrics = Metrics()

    def moved(kind: TransitionKind, to: str, op: str | None = "op") -> Transition:
        return Transition(kind, "o1", f"{kind}:{to}:{op}", NOW, operation_id=op, to_state=to)

    metrics.recorded(
        [
            moved(TransitionKind.OPERATION_COMPLETED, "succeeded", "a"),
            moved(TransitionKind.OPERATION_COMPLETED, "succeeded", "b"),
            moved(TransitionKind.OPERATION_COMPLETED, "failed", "c"),
            moved(TransitionKind.OPERATION_STATE, "in progress", "d"),
            moved(TransitionKind.ORCHESTRATION_STATE, "failed", None),
            moved(TransitionKind.ORCHESTRATION_STATE, "retrying", None),
        ]
    )
    metrics.tracked_states(["failed", "in progress", "in progress", None])
    reasons = [(f"reason {i}", 20 - i) for i in range(12)]
    metrics.failure_reasons([*reasons, ("x" * 300, 1)])
    values = samples(metrics)
    ops = "keb_watcher_operations_finished_total"
    assert values[(ops, (("state", "succeeded"),))] == 2
    assert values[(ops, (("state", "failed"),))] == 1
    assert values[(ops, (("state", "canceled"),))] == 0
    orchs = "keb_watcher_orchestrations_finished_total"
    assert values[(orchs, (("state", "failed"),))] == 1
    assert values[(orchs, (("state", "succeeded"),))] == 0
    assert values[("keb_watcher_orchestrations", (("state", "in progress"),))] == 2
    assert values[("keb_watcher_orchestrations", (("state", "unknown"),))] == 1
    assert values[("keb_watcher_orchestrations", (("state", "pending"),))] == 0
    failures = {
        dict(labels)["reason"]: value
        for (name, labels), value in values.items()
        if name == "keb_watcher_operation_failures"
    }
    assert len(failures) == 11  # the ten most frequent and "other": bounded cardinality
    assert failures["reason 0"] == 20
    assert failures["other"] == 10 + 9 + 1
    # Reasons no longer seen disappear at the next reading.
    metrics.failure_reasons([("quota", 2)])
    values = samples(metrics)
    failures = {
        dict(labels)["reason"]: value
        for (name, labels), value in values.items()
        if name == "keb_watcher_operation_failures"
    }
    assert failures == {"quota": 2}


def test_cycles_requests_transitions_and_deliveries_are_counted() -> None:
    metrics = Metrics()
    report = CycleReport(
        1,
        NOW,
        0.3,
        [PollResult("o1", "cheap"), PollResult("o2", None, error=KebTransientError("KEB down"))],
    )
    metrics.cycle(report, 0.3, True, NOW)
    metrics.cycle(CycleReport(2, NOW, 2.0), 2.0, False, NOW)
    metrics.keb_stats({"requests": 5, "ok": 3, "retried": 1, "error": 1})
    metrics.keb_stats({"requests": 9, "ok": 6, "retried": 2, "error": 1})  # deltas
    metrics.keb_request("2xx", 0.02)
    metrics.keb_request("error", 2.0)
    metrics.recorded(
        [
            transition(TransitionKind.BASELINE, "a"),
            transition(TransitionKind.OPERATION_COMPLETED, "b"),
            transition(TransitionKind.OPERATION_COMPLETED, "c"),
        ]
    )
    metrics.delivered(DeliveryReport(sent=3, retried=1, failed=1))
    values = samples(metrics)
    assert values[("keb_watcher_poll_cycles_total", (("outcome", "success"),))] == 1
    assert values[("keb_watcher_poll_cycles_total", (("outcome", "failure"),))] == 1
    assert values[("keb_watcher_poll_cycle_duration_seconds_count", ())] == 2
    assert values[("keb_watcher_poll_cycle_duration_seconds_sum", ())] == pytest.approx(2.3)
    assert values[("keb_watcher_orchestration_polls_total", (("outcome", "error"),))] == 1
    assert values[("keb_watcher_last_successful_poll_timestamp_seconds", ())] == NOW.timestamp()
    assert values[("keb_watcher_keb_requests_total", (("outcome", "ok"),))] == 6
    assert values[("keb_watcher_keb_requests_total", (("outcome", "retried"),))] == 2
    assert values[("keb_watcher_keb_requests_total", (("outcome", "error"),))] == 1
    latency = ("keb_watcher_keb_request_duration_seconds_count", (("status", "error"),))
    assert values[latency] == 1
    kind = ("keb_watcher_transitions_total", (("kind", "operation_completed"),))
    assert values[kind] == 2
    assert values[("keb_watcher_notifications_total", (("outcome", "sent"),))] == 3
    assert values[("keb_watcher_notifications_total", (("outcome", "failed"),))] == 1


def test_slack_errors_429s_and_the_outbox_are_read_from_the_database(tmp_path: Path) -> None:
    store = Store(tmp_path / "watcher.db")
    metrics = Metrics()

    def attempt(ok: bool, error: str | None = None, retry_after: float | None = None) -> None:
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO attempts (outbox_id, at, method, ok, error, retry_after) "
                "VALUES (1, ?, 'chat.postMessage', ?, ?, ?)",
                (NOW.isoformat(), int(ok), error, retry_after),
            )

    attempt(False, "channel_not_found")  # before the service started: not counted
    metrics.start_attempts_after(Outbox(store))
    attempt(True)
    attempt(False, "ratelimited", 3.0)
    attempt(False, "internal_error")
    attempt(False, "internal_error")
    metrics.read_attempts(Outbox(store))
    metrics.read_attempts(Outbox(store))  # each row once
    with store.transaction() as conn:
        for key, status, age in (("a", "pending", 30), ("b", "pending", 5), ("c", "dead", 99)):
            conn.execute(
                "INSERT INTO outbox (key, kind, priority, payload, status, created_at) "
                "VALUES (?, 'progress', 5, '{}', ?, ?)",
                (key, status, (NOW - timedelta(seconds=age)).isoformat()),
            )
    metrics.read_outbox(Outbox(store), NOW)
    values = samples(metrics)
    post = ("method", "chat.postMessage")
    assert values[("keb_watcher_slack_errors_total", (post, ("reason", "internal_error")))] == 2
    assert values[("keb_watcher_slack_errors_total", (post, ("reason", "ratelimited")))] == 1
    assert ("keb_watcher_slack_errors_total", (post, ("reason", "channel_not_found"))) not in values
    assert values[("keb_watcher_slack_rate_limited_total", (post,))] == 1
    assert values[("keb_watcher_outbox_notifications", (("status", "pending"),))] == 2
    assert values[("keb_watcher_outbox_notifications", (("status", "dead"),))] == 1
    assert values[("keb_watcher_outbox_notifications", (("status", "failed"),))] == 0
    assert values[("keb_watcher_outbox_oldest_pending_age_seconds", ())] == 30
    store.close()


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_readiness_needs_a_recent_successful_poll_and_the_lease() -> None:
    clock = Ticker()
    ready = Readiness(3.0, clock)
    assert ready.check() == (False, "not ready: no successful poll yet (started 0.0s ago)")
    ready.succeeded()
    clock.now += 2.5
    assert ready.check() == (True, "ready: last successful poll 2.5s ago")
    ready.failed("KEB GET /orchestrations/o1: cannot connect to http://keb (refused)")
    clock.now += 1.0
    ok, why = ready.check()
    assert not ok
    assert why == (
        "not ready: last successful poll 3.5s ago (limit 3.0s); "
        "last error: KEB GET /orchestrations/o1: cannot connect to http://keb (refused)"
    )
    ready.succeeded()
    assert ready.check()[0]
    ready.standby("another keb-watcher (host:1) holds the lease until 2024-05-14T08:00:10Z")
    assert ready.check() == (
        False,
        "not ready: another keb-watcher (host:1) holds the lease until 2024-05-14T08:00:10Z",
    )
    clock.now += 600
    assert ready.check()[1].endswith("2024-05-14T08:00:10Z")


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_the_endpoint_serves_health_readiness_and_metrics() -> None:
    metrics, clock = Metrics(), Ticker()
    ready = Readiness(3.0, clock)
    with serving(health_routes(ready, metrics.exposition)) as url:
        assert get(f"{url}/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
        code, _, body = get(f"{url}/readyz")
        assert (code, body) == (503, "not ready: no successful poll yet (started 0.0s ago)\n")
        ready.succeeded()
        assert get(f"{url}/readyz")[0] == 200
        code, kind, body = get(f"{url}/metrics")
        assert code == 200
        assert kind.startswith("text/plain; version=")
        assert {f.name for f in text_string_to_metric_families(body)} >= FAMILIES
        assert get(f"{url}/nope")[0] == 404


def test_a_port_in_use_is_one_clear_error() -> None:
    with serving(health_routes(Readiness(1.0), Metrics().exposition)) as url:
        port = url.rsplit(":", 1)[1]
        message = rf"^service.listen: cannot listen on 127.0.0.1:{port}: "
        with pytest.raises(WatcherError, match=message):
            WebServer(f"127.0.0.1:{port}", health_routes(Readiness(1.0), Metrics().exposition))
