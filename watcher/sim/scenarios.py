"""Named worlds for the simulator: which orchestrations exist and how they will unfold.

A scenario is data only; :class:`watcher.sim.world.Simulator` plays it. All durations are
virtual seconds. Every scenario orchestration is created at or before the scenario epoch, so
its ID is known as soon as the simulator is constructed; ``start_delay`` staggers when each
one leaves ``pending``.

Timing facts the defaults follow (docs/keb-api.md §9): the provisioner's shoot upgrade takes minutes
to about 30 min; the orchestration manager notices cancels and retries within about a minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final, Literal

#: Where every scenario's virtual clock starts.
EPOCH: Final = datetime(2024, 5, 14, 8, 0, 0, tzinfo=UTC)

#: KEB prefixes provisioner failures with this (``upgrade_cluster_step.go``, docs/keb-api.md §4.3).
PROVISIONER_PREFIX: Final = "provisioner client returns failed status: "
REASON_RECONCILE: Final = (
    PROVISIONER_PREFIX + "Operation failed: last error: shoot reconciliation timed out"
)
REASON_QUOTA: Final = (
    PROVISIONER_PREFIX + 'Operation failed: last error: task "Waiting until shoot worker nodes '
    'have been reconciled" failed: QuotaExceeded: quota exceeded for machine type '
    "Standard_D4_v3 in region westeurope"
)
#: The 3 h status timeout is reported without the provisioner prefix (docs/keb-api.md §4.3).
REASON_TIMEOUT: Final = "operation has reached the time limit: 3h0m0s"
REASON_K8S_VERSION: Final = (
    PROVISIONER_PREFIX + "Operation failed: last error: kubernetes version not supported: "
    "1.28.9 is not in the cloud profile's list of supported versions"
)
ALL_REASONS: Final = (REASON_RECONCILE, REASON_QUOTA, REASON_TIMEOUT, REASON_K8S_VERSION)

ActionKind = Literal["cancel", "retry"]


@dataclass(frozen=True, slots=True)
class ScriptedAction:
    """A cancel or retry the scenario performs by itself, exactly one trigger set.

    * ``at``: virtual seconds after the epoch;
    * ``after_done_fraction``: once this fraction of the orchestration's operations finished
      (dropped if the orchestration ends first);
    * ``after_terminal``: this many seconds after the orchestration first becomes terminal.
    """

    kind: ActionKind
    at: float | None = None
    after_done_fraction: float | None = None
    after_terminal: float | None = None

    def __post_init__(self) -> None:
        triggers = [self.at, self.after_done_fraction, self.after_terminal]
        if sum(t is not None for t in triggers) != 1:
            raise ValueError(f"scripted {self.kind} needs exactly one trigger")


@dataclass(frozen=True, slots=True)
class OrchestrationSpec:
    """How one orchestration behaves: size, pace, outcome and scripted user actions.

    ``failure_rate`` is turned into an exact count (``round(rate * ops)``) of operations chosen
    at random; their descriptions cycle through ``reasons`` so every reason occurs. Retried
    operations fail with ``retry_failure_rate``. ``window_hours`` are the UTC begin hours of
    the targeted runtimes' 4-hour maintenance windows (cycled); ``None`` picks typical ones.
    """

    ops: int
    workers: int
    duration: tuple[float, float] = (120.0, 300.0)
    failure_rate: float = 0.0
    reasons: tuple[str, ...] = (REASON_RECONCILE,)
    retry_failure_rate: float = 0.0
    created: float = 0.0
    start_delay: float = 10.0
    schedule: Literal["now", "immediate"] = "now"
    maintenance_window: bool = False
    window_hours: tuple[int, ...] | None = None
    dry_run: bool = False
    notification: bool = False
    retry_year0_windows: bool = False
    kubernetes_version: str = "1.28.9"
    plans: tuple[str, ...] = ("azure", "aws", "gcp")
    actions: tuple[ScriptedAction, ...] = ()
    #: A legacy ``upgradeKyma`` orchestration: its operations list answers 500 (§12.8).
    legacy_kyma: bool = False
    #: Virtual seconds between the rows a retry inserts. KEB inserts them one at a time and
    #: writes ``", retried K operations"`` only after the last (§12.2); ``0``: one instant.
    row_gap: float = 0.0
    #: While ``canceling``, free workers still pick up operations as they come due and cancel
    #: each on its own (``orchestration <id> was canceled``), one every ``CANCEL_PICKUP``
    #: seconds, before the bulk cancel (§12.5). ``False``: only the bulk cancel.
    cancel_one_by_one: bool = False
    #: Virtual seconds between an operation's end and its worker starting the next pending
    #: one (KEB: a few DB round trips, milliseconds; keb-concurrency.md §2). ``0``: the same
    #: instant, one event; more: a request can land between the two writes of a hand-off.
    handoff: float = 0.0
    #: Fraction of the operations that end straight from ``pending`` when a worker picks
    #: them: ``succeeded`` (preempted by deprovisioning) or, if scripted to fail, ``failed``
    #: (the init step's panic guard); keb-concurrency.md §3.1.
    skip_rate: float = 0.0
    #: Fraction of the failing operations that a legacy KEB (2022) rewrote to ``retrying`` and
    #: KEB 1.15.0 resumes under their *old* ID: failed -> retrying -> pending ("Operation retry
    #: triggered") -> in progress -> failed again (keb-concurrency.md §3.1, ``ResumeOperations``).
    legacy_resume: float = 0.0
    #: The first operation stays ``in progress`` this many virtual seconds (a hanging
    #: upgrade, docs/keb-concurrency.md §4); ``0``: as ``duration`` says.
    hang: float = 0.0
    #: The orchestration ends (``succeeded``/``failed`` by the counts then) while this many
    #: operations are still pending or in progress; they run on and finish afterwards
    #: (docs/keb-concurrency.md §3.4: retried operations queued in the run's last minute).
    outlive: int = 0
    #: ``False``: a retry picks up no operation (none of the retried instances resolves any
    #: more), and the orchestration goes ``retrying -> succeeded`` with its failed rows kept
    #: (docs/keb-concurrency.md §3.2).
    retry_resolves: bool = True
    #: ``False``: a cancel never concludes; the orchestration stays ``canceling`` with its
    #: pending operations ``pending`` for good (docs/keb-concurrency.md §4, table row 20).
    cancel_concludes: bool = True

    def __post_init__(self) -> None:
        if self.created > 0:
            raise ValueError("scenario orchestrations are created at or before the epoch")
        if self.ops < 0 or self.workers < 1:
            raise ValueError("ops must be >= 0 and workers >= 1")
        if not 0.0 <= self.failure_rate <= 1.0 or not self.reasons:
            raise ValueError("failure_rate must be in [0, 1] with at least one reason")
        if self.row_gap < 0 or self.hang < 0 or self.outlive < 0:
            raise ValueError("row_gap, hang and outlive must not be negative")
        if self.handoff < 0 or not 0.0 <= self.skip_rate <= 1.0:
            raise ValueError("handoff must not be negative, skip_rate must be in [0, 1]")
        if not 0.0 <= self.legacy_resume <= 1.0:
            raise ValueError("legacy_resume must be in [0, 1]")


#: The behaviour of orchestrations created through ``POST /upgrade/cluster``.
POSTED_PROFILE: Final = OrchestrationSpec(
    ops=0,
    workers=1,
    duration=(120.0, 300.0),
    failure_rate=0.05,
    reasons=ALL_REASONS,
    start_delay=5.0,
)


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """A named world: its orchestrations (in creation order) plus spare runtimes.

    ``spare_runtimes`` exist in the inventory without being targeted by any scenario
    orchestration, so ``POST /upgrade/cluster`` has something to resolve.
    """

    name: str
    description: str
    orchestrations: tuple[OrchestrationSpec, ...]
    spare_runtimes: int = 24
    epoch: datetime = field(default=EPOCH)
    #: The ``groups`` claim of the token the simulator prints and accepts (``sim.token``).
    #: Without ``orchestrationsAdmin`` its gateway answers 403 ``RBAC: access denied``.
    token_groups: tuple[str, ...] = ("orchestrationsAdmin",)
    #: Orchestrations one KEB pod runs at once (3 in KEB, docs/keb-concurrency.md §0); later
    #: ones wait ``pending`` with no operations, first come first served. ``None``: no limit.
    pod_slots: int | None = None


_SMALL = OrchestrationSpec(
    ops=12, workers=3, duration=(200.0, 340.0), schedule="immediate", created=-1.0
)
_FAILURES = OrchestrationSpec(
    ops=200,
    workers=20,
    duration=(150.0, 330.0),
    failure_rate=0.15,
    reasons=ALL_REASONS,
    created=-1.0,
)
_CANCEL = OrchestrationSpec(
    ops=60,
    workers=3,
    duration=(120.0, 280.0),
    notification=True,
    created=-1.0,
    actions=(ScriptedAction("cancel", after_done_fraction=0.25),),
)
_RETRY = OrchestrationSpec(
    ops=20,
    workers=5,
    duration=(150.0, 300.0),
    failure_rate=0.15,
    reasons=(REASON_RECONCILE, REASON_QUOTA),
    schedule="immediate",
    retry_year0_windows=True,
    window_hours=(22, 4, 2, 0),
    created=-1.0,
    actions=(ScriptedAction("retry", after_terminal=120.0),),
)
_MAINTENANCE = OrchestrationSpec(
    ops=30,
    workers=5,
    duration=(300.0, 900.0),
    maintenance_window=True,
    window_hours=(8, 9, 10, 11, 12),
    created=-1.0,
)
#: Failed, then retried: the three new rows are inserted 40 s apart, and only then does the
#: description say ", retried 3 operations" (§12.2).
_RETRY_ROWS = replace(_RETRY, row_gap=40.0)
#: Retried while still in progress (after 40 % finished, 10 of them failed): the retried
#: operations run in a second worker pool, beyond ``workers`` (§12.10); rows 15 s apart.
_RETRY_RUNNING = OrchestrationSpec(
    ops=50,
    workers=4,
    duration=(120.0, 240.0),
    failure_rate=0.2,
    reasons=(REASON_RECONCILE, REASON_QUOTA),
    schedule="immediate",
    created=-1.0,
    row_gap=15.0,
    actions=(ScriptedAction("retry", after_done_fraction=0.4),),
)
#: Canceled after ~25 % finished; free workers keep canceling operations one by one before
#: the bulk cancel (§12.5).
_CANCELING = replace(_CANCEL, cancel_one_by_one=True)
#: Ends with operations still running: the last 3 outlive the outcome and finish after it.
_OUTLIVED = OrchestrationSpec(
    ops=12,
    workers=3,
    duration=(200.0, 340.0),
    failure_rate=1 / 12,
    schedule="immediate",
    created=-1.0,
    outlive=3,
)
_DRY_RUN = OrchestrationSpec(ops=8, workers=4, duration=(20.0, 60.0), dry_run=True)


#: Workers hand off between two requests: the next pending operation starts 5 ms after the
#: previous one ended; some operations end straight from pending; retried while in progress,
#: so a retried instance's new operation starting moves pending, in progress and the
#: per-instance failed count in one write (keb-concurrency.md §0, §1.1, §2).
_HANDOFFS = OrchestrationSpec(
    ops=40,
    workers=4,
    duration=(60.0, 120.0),
    failure_rate=0.2,
    reasons=(REASON_RECONCILE, REASON_QUOTA),
    schedule="immediate",
    created=-1.0,
    handoff=0.005,
    skip_rate=0.15,
    actions=(ScriptedAction("retry", after_done_fraction=0.4),),
)
#: Failing operations resumed under their old IDs by KEB 1.15.0 (legacy ``retrying`` rows):
#: each goes in progress -> failed twice under one ID.
_LEGACY_RETRYING = OrchestrationSpec(
    ops=6,
    workers=2,
    duration=(60.0, 90.0),
    failure_rate=0.34,
    reasons=(REASON_RECONCILE,),
    schedule="immediate",
    created=-1.0,
    legacy_resume=1.0,
)


def _demo() -> tuple[OrchestrationSpec, ...]:
    return (
        replace(_SMALL, created=-5.0, start_delay=10.0),
        replace(_FAILURES, ops=60, workers=10, created=-4.0, start_delay=30.0),
        replace(_CANCEL, created=-3.0, start_delay=60.0),
        # Retried five minutes after it failed, so that the watcher, polling every simulated
        # minute or two, sees it fail, announces it, and then sees the retry as a new run.
        replace(
            _RETRY,
            created=-2.0,
            start_delay=90.0,
            actions=(ScriptedAction("retry", after_terminal=300.0),),
        ),
        replace(_DRY_RUN, created=-1.0, start_delay=120.0),
    )


def _large() -> tuple[OrchestrationSpec, ...]:
    """Maintenance windows that begin every hour of the day: the operations that start in
    one poll interval are spread over the whole pending list (docs/keb-api.md §12.1)."""
    return tuple(
        OrchestrationSpec(
            ops=2000,
            workers=50,
            duration=(1800.0, 3600.0),
            failure_rate=0.03,
            reasons=ALL_REASONS,
            start_delay=0.0,
            created=-float(40 - i),
            maintenance_window=True,
            window_hours=tuple(range(24)),
        )
        for i in range(40)
    )


SCENARIOS: Final[dict[str, ScenarioSpec]] = {
    spec.name: spec
    for spec in (
        ScenarioSpec(
            "small",
            "1 orchestration, 12 operations, 3 workers, all succeed (~20 virtual min)",
            (_SMALL,),
        ),
        ScenarioSpec(
            "failures",
            "1 orchestration, 200 operations, 20 workers, ~15% fail over 4 reasons",
            (_FAILURES,),
        ),
        ScenarioSpec(
            "cancel",
            "1 orchestration, 60 operations, canceled after ~25% are done",
            (_CANCEL,),
        ),
        ScenarioSpec(
            "retry",
            "1 orchestration, 20 operations, 3 fail, retried 2 min after it fails",
            (_RETRY,),
        ),
        ScenarioSpec(
            "late-retry",
            "1 orchestration, 20 operations, 3 fail, retried 3 hours after it failed",
            (replace(_RETRY, actions=(ScriptedAction("retry", after_terminal=3 * 3600.0),)),),
        ),
        ScenarioSpec(
            "legacy",
            "a legacy upgradeKyma orchestration (operations: 500) beside a small cluster one",
            (
                replace(_SMALL, ops=6, legacy_kyma=True, created=-2.0),
                replace(_SMALL, created=-1.0),
            ),
        ),
        ScenarioSpec(
            "retry-rows",
            "like retry, but the 3 retried rows are inserted 40 s apart before the description",
            (_RETRY_ROWS,),
        ),
        ScenarioSpec(
            "retry-running",
            "50 operations, 4 workers, retried while in progress: a second worker pool",
            (_RETRY_RUNNING,),
        ),
        ScenarioSpec(
            "canceling",
            "like cancel, but operations are canceled one by one as workers pick them up",
            (_CANCELING,),
        ),
        ScenarioSpec(
            "maintenance",
            "1 orchestration, 30 operations waiting for maintenance windows",
            (_MAINTENANCE,),
        ),
        ScenarioSpec(
            "demo",
            "small, failures, cancel, retry and a dry run together (~30 virtual min)",
            _demo(),
        ),
        ScenarioSpec(
            "large",
            "40 orchestrations x 2,000 operations, 50 workers each, all in progress",
            _large(),
            spare_runtimes=0,
        ),
        ScenarioSpec(
            "handoffs",
            "40 operations, 4 workers handing off 5 ms apart, some ending straight from "
            "pending, retried while in progress (use with --moves)",
            (_HANDOFFS,),
        ),
        ScenarioSpec(
            "legacy-retrying",
            "6 operations, 2 fail and are resumed under their old IDs (legacy retrying rows): "
            "in progress -> failed twice under one ID",
            (_LEGACY_RETRYING,),
        ),
        ScenarioSpec(
            "outlived",
            "12 operations, 1 fails; it ends while 3 still run, which finish after it",
            (_OUTLIVED,),
        ),
        ScenarioSpec(
            "retry-unresolved",
            "like retry, but nothing the retry names resolves: retrying -> succeeded, failed > 0",
            (replace(_RETRY, retry_resolves=False),),
        ),
        ScenarioSpec(
            "hanging",
            "60 operations, 3 workers; the first stays in progress for 90 of the ~2 h",
            (replace(_SMALL, ops=60, hang=90 * 60.0),),
        ),
        ScenarioSpec(
            "canceling-forever",
            "like cancel, but the cancel never concludes: canceling for good, pending stay pending",
            (replace(_CANCEL, cancel_concludes=False),),
        ),
        ScenarioSpec(
            "queued",
            "5 small orchestrations, 3 run at once: the last 2 wait pending with no operations",
            tuple(replace(_SMALL, ops=6, workers=2, created=-float(5 - i)) for i in range(5)),
            pod_slots=3,
        ),
        ScenarioSpec(
            "no-group",
            "like small, but the printed token lacks orchestrationsAdmin: every call is a 403",
            (_SMALL,),
            token_groups=("runtimeViewer",),
        ),
    )
}
