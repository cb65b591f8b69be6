"""What ``watcher run`` exposes on ``/metrics``, in the Prometheus text format.

Every metric lives in the service's own :class:`prometheus_client.CollectorRegistry` (never the
global one), so tests and several services in one process do not share counters. Names start
with ``keb_watcher_``; counters get ``_total`` from prometheus-client. The registry also holds
the process collector (``process_*``: CPU, memory, open files, start time) and
``keb_watcher_build_info``.

No ``_created`` series: prometheus-client adds one per counter and histogram (a Unix time that
nobody graphs and that doubles the series count). :meth:`Metrics.exposition` leaves them out
itself instead of calling ``prometheus_client.disable_created_metrics()``, a switch for the
whole process that would change every other registry in it too.

Label values are bounded: states are KEB's seven (and ``unknown``), failure reasons the
:data:`TOP_REASONS` most frequent, cut to :data:`REASON_LENGTH` characters, the rest summed
as ``other``.

Sources: the poll cycle's :class:`~watcher.engine.cycle.CycleReport`; the KEB client's
:class:`~watcher.keb.session.RequestStats` (deltas per cycle) and a timing hook on its HTTP
transport; the transitions, outbox and ``attempts`` tables (read from the event loop after
each cycle and each delivery run, by row ID, so each row is counted once).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from watcher import __version__
from watcher.app.service import CycleReport, DeliveryReport, Outbox
from watcher.clock import utcnow
from watcher.core.diff import Transition, TransitionKind
from watcher.core.failures import ranked
from watcher.core.inert import inert
from watcher.core.models import KNOWN_STATES, TERMINAL_OPERATION_STATES

CYCLE_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
REQUEST_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
KEB_OUTCOMES: Final = ("ok", "retried", "error")
DELIVERY_OUTCOMES: Final = ("sent", "retried", "failed", "skipped")
OUTBOX_STATUSES: Final = ("pending", "failed", "dead")
#: Orchestration states: KEB's, and ``unknown`` before the first poll or for one KEB lost.
ORCHESTRATION_STATES: Final = (*KNOWN_STATES, "unknown")
FINISHED_STATES: Final = tuple(s for s in KNOWN_STATES if s in TERMINAL_OPERATION_STATES)
#: Failure reasons exposed one by one; the others are summed as ``other``.
TOP_REASONS: Final = 10
REASON_LENGTH: Final = 100


class WithoutCreated(Collector):
    """A registry's families without their ``_created`` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


def top_reasons(reasons: Iterable[tuple[str, int]], top: int = TOP_REASONS) -> dict[str, int]:
    """Failed operations per reason, the ``top`` most frequent kept, the rest as ``other``.

    >>> top_reasons([("quota", 1), ("timeout", 5), ("quota", 2), ("", 1)], top=1)
    {'timeout': 5, 'other': 4}
    """
    order = ranked((" ".join(inert(reason).split())[:REASON_LENGTH], n) for reason, n in reasons)
    kept = dict(order[:top])
    rest = sum(count for _, count in order[top:])
    if rest:
        kept["other"] = kept.get("other", 0) + rest
    return kept


class Metrics:
    """The service's metrics and the small amount of bookkeeping that feeds them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.cycles = Counter(
            "keb_watcher_poll_cycles",
            "Poll cycles by outcome (success: KEB answered, or nothing needed asking).",
            ["outcome"],
            registry=r,
        )
        self.cycle_seconds = Histogram(
            "keb_watcher_poll_cycle_duration_seconds",
            "Wall time of one poll cycle, discovery included.",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.polls = Counter(
            "keb_watcher_orchestration_polls",
            "Polls of one orchestration by outcome (ok, error).",
            ["outcome"],
            registry=r,
        )
        self.due = Gauge(
            "keb_watcher_orchestrations_due",
            "Tracked orchestrations polled in the last cycle.",
            registry=r,
        )
        self.tracked = Gauge(
            "keb_watcher_orchestrations_tracked",
            "Tracked orchestrations not finished yet.",
            registry=r,
        )
        self.discovered = Counter(
            "keb_watcher_discovered_orchestrations",
            "Orchestrations that discovery started tracking.",
            registry=r,
        )
        self.keb_requests = Counter(
            "keb_watcher_keb_requests",
            "HTTP requests sent to KEB by outcome (ok; retried: failed, another followed; "
            "error: failed, the call raised).",
            ["outcome"],
            registry=r,
        )
        self.keb_latency = Histogram(
            "keb_watcher_keb_request_duration_seconds",
            "Time to KEB's response headers, by status class (2xx, 4xx, 5xx, error).",
            ["status"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.transitions = Counter(
            "keb_watcher_transitions",
            "Recorded transitions by kind.",
            ["kind"],
            registry=r,
        )
        self.notifications = Counter(
            "keb_watcher_notifications",
            "Notification delivery results by outcome (sent, retried, failed, skipped).",
            ["outcome"],
            registry=r,
        )
        self.slack_errors = Counter(
            "keb_watcher_slack_errors",
            "Failed Slack calls by method and Slack's error code.",
            ["method", "reason"],
            registry=r,
        )
        self.slack_rate_limited = Counter(
            "keb_watcher_slack_rate_limited",
            "Slack 429 answers (Retry-After honoured) by method.",
            ["method"],
            registry=r,
        )
        self.outbox = Gauge(
            "keb_watcher_outbox_notifications",
            "Undelivered notifications in the outbox by status (pending, failed, dead).",
            ["status"],
            registry=r,
        )
        self.outbox_oldest = Gauge(
            "keb_watcher_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending notification (0 when none is pending).",
            registry=r,
        )
        self.last_success = Gauge(
            "keb_watcher_last_successful_poll_timestamp_seconds",
            "Unix time of the end of the last successful poll cycle.",
            registry=r,
        )
        self.lease = Gauge(
            "keb_watcher_lease_held",
            "1 while this process holds the single-instance lease, else 0.",
            registry=r,
        )
        self.by_state = Gauge(
            "keb_watcher_orchestrations",
            "Tracked orchestrations by their last known KEB state (unknown: not seen yet).",
            ["state"],
            registry=r,
        )
        self.orchestrations_finished = Counter(
            "keb_watcher_orchestrations_finished",
            "Tracked orchestrations seen reaching a final state (succeeded, failed, canceled).",
            ["state"],
            registry=r,
        )
        self.operations_finished = Counter(
            "keb_watcher_operations_finished",
            "Operations seen reaching a final state (succeeded, failed, canceled).",
            ["state"],
            registry=r,
        )
        self.failures = Gauge(
            "keb_watcher_operation_failures",
            f"Failed operations of the tracked orchestrations by reason (KEB's description, "
            f"the {TOP_REASONS} most frequent; the rest as other).",
            ["reason"],
            registry=r,
        )
        self.alert_after = Gauge(
            "keb_watcher_alert_after_seconds",
            "[poll] alert_after: how long KEB may be unreachable before it is an alert.",
            registry=r,
        )
        self.build_info = Gauge(
            "keb_watcher_build_info",
            "Always 1; the labels say which keb-watcher this is.",
            ["version"],
            registry=r,
        )
        self.build_info.labels(__version__).set(1)
        ProcessCollector(registry=r)
        for outcome in ("success", "failure"):
            self.cycles.labels(outcome)
        for outcome in ("ok", "error"):
            self.polls.labels(outcome)
        for outcome in KEB_OUTCOMES:
            self.keb_requests.labels(outcome)
        for outcome in DELIVERY_OUTCOMES:
            self.notifications.labels(outcome)
        for kind in TransitionKind:
            self.transitions.labels(kind.value)
        for status in OUTBOX_STATUSES:
            self.outbox.labels(status)
        for state in ORCHESTRATION_STATES:
            self.by_state.labels(state)
        for state in FINISHED_STATES:
            self.orchestrations_finished.labels(state)
            self.operations_finished.labels(state)
        self._keb_seen: dict[str, int] = {}
        self._attempt_id = 0

    def exposition(self) -> bytes:
        return generate_latest(WithoutCreated(self.registry))

    # -- feeding ------------------------------------------------------------------------------

    def keb_request(self, status: str, seconds: float) -> None:
        """The transport hook: one HTTP exchange with KEB."""
        self.keb_latency.labels(status).observe(seconds)

    def keb_stats(self, snapshot: Mapping[str, int]) -> None:
        """Count what :meth:`RequestStats.snapshot` gained since the last call."""
        for outcome in KEB_OUTCOMES:
            now = snapshot.get(outcome, 0)
            gained = now - self._keb_seen.get(outcome, 0)
            if gained > 0:
                self.keb_requests.labels(outcome).inc(gained)
            self._keb_seen[outcome] = now

    def cycle(self, report: CycleReport, seconds: float, success: bool, at: datetime) -> None:
        self.cycles.labels("success" if success else "failure").inc()
        self.cycle_seconds.observe(seconds)
        self.due.set(len(report.results))
        for result in report.results:
            self.polls.labels("ok" if result.ok else "error").inc()
        if success:
            self.last_success.set(at.timestamp())

    def recorded(self, transitions: Sequence[Transition]) -> None:
        for kind, count in Tally(t.kind.value for t in transitions).items():
            self.transitions.labels(kind).inc(count)
        for t in transitions:
            if t.to_state not in FINISHED_STATES:
                continue
            if t.kind is TransitionKind.ORCHESTRATION_STATE:
                self.orchestrations_finished.labels(t.to_state).inc()
            elif t.kind is TransitionKind.OPERATION_COMPLETED:
                self.operations_finished.labels(t.to_state).inc()

    def tracked_states(self, states: Iterable[str | None]) -> None:
        """The last known state of each tracked orchestration."""
        tally = Tally(state if state in KNOWN_STATES else "unknown" for state in states)
        for state in ORCHESTRATION_STATES:
            self.by_state.labels(state).set(tally.get(state, 0))

    def failure_reasons(self, reasons: Iterable[tuple[str, int]]) -> None:
        """Failed operations by reason; reasons no longer seen disappear."""
        self.failures.clear()
        for reason, count in top_reasons(reasons).items():
            self.failures.labels(reason).set(count)

    def delivered(self, report: DeliveryReport) -> None:
        for outcome, count in (
            ("sent", report.sent),
            ("retried", report.retried),
            ("failed", report.failed),
            ("skipped", report.skipped),
        ):
            if count:
                self.notifications.labels(outcome).inc(count)

    # -- read from the database (the event loop's connection) --------------------------------

    def start_attempts_after(self, outbox: Outbox) -> None:
        """Count only Slack attempts made from now on (earlier ones belong to other runs)."""
        self._attempt_id = outbox.last_attempt_id()

    def read_attempts(self, outbox: Outbox) -> None:
        """Slack's errors and 429s from the attempts recorded since the last read."""
        for attempt in outbox.attempts_after(self._attempt_id):
            self._attempt_id = attempt.id
            if attempt.ok:
                continue
            reason = inert(attempt.error or "unknown").split(" ", 1)[0].split(":", 1)[0][:60]
            self.slack_errors.labels(attempt.method, reason).inc()
            if attempt.retry_after is not None or reason in ("ratelimited", "rate_limited"):
                self.slack_rate_limited.labels(attempt.method).inc()

    def read_outbox(self, outbox: Outbox, now: datetime | None = None) -> None:
        """Outbox depth by status and the age of the oldest pending notification."""
        counts, oldest = outbox.depth()
        for status in OUTBOX_STATUSES:
            self.outbox.labels(status).set(counts.get(status, 0))
        if oldest is None:
            self.outbox_oldest.set(0)
        else:
            age = ((now or utcnow()) - oldest).total_seconds()
            self.outbox_oldest.set(max(0.0, age))
