"""Orchestrations and operations as KEB serves them, parsed tolerantly.

KEB facts this module relies on (see docs/keb-api.md):

* States are plain strings; ``"in progress"`` has a space. Unknown states are kept verbatim.
* Times are RFC 3339 with up to nine fractional digits (Go ``time.Time``); the Go zero time is
  ``0001-01-01T00:00:00Z``. Maintenance windows parsed from a shoot's ``HHMMSS+ZZZZ`` carry
  **year 0** (``0000-01-01T04:00:00Z``), which ``datetime.fromisoformat`` rejects.
* ``operationStats`` is only on the single GET; its ``failed`` count is de-duplicated per
  instance (see :func:`operation_stats`).
* Unknown fields are kept in ``extra`` (operations) or ``raw`` (orchestrations) and never dropped.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

from watcher.errors import KebResponseError

PENDING: Final = "pending"
IN_PROGRESS: Final = "in progress"
CANCELING: Final = "canceling"
RETRYING: Final = "retrying"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELED: Final = "canceled"

#: Orchestration states KEB treats as finished (``Orchestration.IsFinished``). ``failed`` can be
#: retried, which moves the orchestration back to ``retrying``.
TERMINAL_ORCHESTRATION_STATES: Final = frozenset({SUCCEEDED, FAILED, CANCELED})
#: Operation states that never change again (only the cleaning step may delete such rows).
TERMINAL_OPERATION_STATES: Final = frozenset({SUCCEEDED, FAILED, CANCELED})
#: The states KEB reports in ``operationStats`` and accepts in the ``state`` filter.
KNOWN_STATES: Final = (PENDING, IN_PROGRESS, CANCELING, RETRYING, SUCCEEDED, FAILED, CANCELED)
#: KEB's largest page (``MaxPaginationPage``, default 100); a larger ``page_size`` is a 400.
MAX_PAGE_SIZE: Final = 100

_EMPTY: Mapping[str, Any] = MappingProxyType({})

_TIME_RE = re.compile(
    r"^(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt ]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})"
    r"(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<tz>[Zz]|[+-]\d{2}:?\d{2})?$"
)


def _match_time(raw: str) -> tuple[re.Match[str], timedelta] | None:
    m = _TIME_RE.match(raw.strip())
    if m is None:
        return None
    tz = m.group("tz")
    offset = timedelta(0)
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return m, offset


def parse_keb_time(raw: object) -> datetime | None:
    """Parse a KEB timestamp into an aware UTC datetime, or ``None`` when it carries no date.

    ``None`` is returned for a missing value, the Go zero time (year 1), a year-0 maintenance
    window and anything unparseable: a timestamp we cannot read must never crash a poll.
    Fractional seconds beyond microseconds are truncated.

    >>> parse_keb_time("2024-05-14T08:00:03.512345678Z").isoformat()
    '2024-05-14T08:00:03.512345+00:00'
    >>> parse_keb_time("0000-01-01T04:00:00Z") is None
    True
    >>> parse_keb_time("0001-01-01T00:00:00Z") is None
    True
    """
    if not isinstance(raw, str):
        return None
    found = _match_time(raw)
    if found is None:
        return None
    m, offset = found
    year = int(m.group("year"))
    if year <= 1:
        return None
    frac = (m.group("frac") or "0")[:6].ljust(6, "0")
    try:
        local = datetime(
            year,
            int(m.group("month")),
            int(m.group("day")),
            int(m.group("hour")),
            int(m.group("minute")),
            int(m.group("second")),
            int(frac),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    return local - offset


def parse_time_of_day(raw: object) -> time | None:
    """The UTC time of day of a year-0 window value (``0000-01-01T22:00:00Z`` -> 22:00).

    KEB emits year 0 when it parsed a shoot's ``HHMMSS+ZZZZ`` window: only the time of day
    means something. Returns ``None`` for anything else.
    """
    if not isinstance(raw, str):
        return None
    found = _match_time(raw)
    if found is None or int(found[0].group("year")) != 0:
        return None
    m, offset = found
    minutes = int(m.group("hour")) * 60 + int(m.group("minute")) - offset // timedelta(minutes=1)
    minutes %= 24 * 60
    return time(minutes // 60, minutes % 60, int(m.group("second")) % 60)


def format_keb_time(value: datetime) -> str:
    """Serialise like Go's ``time.Time`` JSON: RFC 3339, trailing fractional zeros dropped."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += "." + f"{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def is_terminal_orchestration(state: str) -> bool:
    return state in TERMINAL_ORCHESTRATION_STATES


def is_terminal_operation(state: str) -> bool:
    return state in TERMINAL_OPERATION_STATES


def finished_count(counts: Mapping[str, int]) -> int:
    """Operations that have finished (succeeded, failed or canceled), from counts by state.

    >>> finished_count({"succeeded": 3, "failed": 1, "pending": 5, "in progress": 2})
    4
    """
    return sum(n for state, n in counts.items() if state in TERMINAL_OPERATION_STATES)


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _require_object(obj: object, what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise KebResponseError(f"expected a JSON object for {what}, got {type(obj).__name__}")
    return obj


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """An operation's maintenance window exactly as KEB sent it, with readable views.

    ``begin``/``end`` are the raw strings. A concrete window has dates (``begin_at``); a
    year-0 window only has times of day (``daily``); ``immediate`` orchestrations send the Go
    zero time for both, which means "no window".
    """

    begin: str = ""
    end: str = ""

    @property
    def begin_at(self) -> datetime | None:
        return parse_keb_time(self.begin)

    @property
    def end_at(self) -> datetime | None:
        return parse_keb_time(self.end)

    @property
    def daily(self) -> tuple[time, time] | None:
        start, stop = parse_time_of_day(self.begin), parse_time_of_day(self.end)
        if start is None or stop is None:
            return None
        return start, stop

    def describe(self) -> str:
        """A short human form: ``2024-05-15 02:00-06:00 UTC``, ``daily 22:00-02:00 UTC``."""
        begin, end = self.begin_at, self.end_at
        if begin is not None and end is not None:
            return f"{begin:%Y-%m-%d %H:%M}-{end:%H:%M} UTC"
        daily = self.daily
        if daily is not None:
            return f"daily {daily[0]:%H:%M}-{daily[1]:%H:%M} UTC"
        return "none"


_OPERATION_KEYS: Final = frozenset(
    {
        "operationID",
        "runtimeID",
        "globalAccountID",
        "subAccountID",
        "orchestrationID",
        "servicePlanID",
        "servicePlanName",
        "dryRun",
        "shootName",
        "maintenanceWindowBegin",
        "maintenanceWindowEnd",
        "state",
        "description",
    }
)


_STRING_KEYS: Final = (
    "orchestrationID",
    "runtimeID",
    "shootName",
    "state",
    "description",
    "servicePlanName",
    "servicePlanID",
    "globalAccountID",
    "subAccountID",
    "maintenanceWindowBegin",
    "maintenanceWindowEnd",
)
_OPERATION_STRINGS: Final = operator.itemgetter(*_STRING_KEYS)


@dataclass(frozen=True, slots=True)
class Operation:
    """One item of ``GET /orchestrations/{id}/operations`` (``OperationResponse``).

    KEB sends no timestamps for operations, so change can only be seen by comparing
    ``state`` and ``description`` between observations. Fields KEB added later (or that we do
    not model) are kept in ``extra``.
    """

    operation_id: str
    orchestration_id: str = ""
    runtime_id: str = ""
    shoot_name: str = ""
    state: str = ""
    description: str = ""
    plan_name: str = ""
    plan_id: str = ""
    global_account_id: str = ""
    sub_account_id: str = ""
    dry_run: bool = False
    window: MaintenanceWindow = field(default_factory=MaintenanceWindow)
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def from_json(cls, obj: object) -> Operation:
        data = _require_object(obj, "an operation")
        op_id = data.get("operationID")
        if not isinstance(op_id, str) or not op_id:
            raise KebResponseError("operation object has no operationID")
        unknown = data.keys() - _OPERATION_KEYS
        extra = {k: data[k] for k in unknown} if unknown else None
        try:
            # The common case, tens of thousands of times per sweep: every field present and
            # a string, as KEB's Go structs always serialise them.
            values = _OPERATION_STRINGS(data)
            if not all(type(v) is str for v in values):
                raise KeyError
        except KeyError:
            values = tuple(_str(data, key) for key in _STRING_KEYS)
        (orch_id, runtime, shoot, state, desc, plan, plan_id, ga, sa, begin, end) = values
        return cls(
            operation_id=op_id,
            orchestration_id=orch_id,
            runtime_id=runtime,
            shoot_name=shoot,
            state=state,
            description=desc,
            plan_name=plan,
            plan_id=plan_id,
            global_account_id=ga,
            sub_account_id=sa,
            dry_run=bool(data.get("dryRun", False)),
            window=MaintenanceWindow(begin, end),
            extra=MappingProxyType(extra) if extra else _EMPTY,
        )

    def to_json(self) -> dict[str, Any]:
        """The ``OperationResponse`` shape again, unknown fields included."""
        out: dict[str, Any] = {
            "operationID": self.operation_id,
            "runtimeID": self.runtime_id,
            "globalAccountID": self.global_account_id,
            "subAccountID": self.sub_account_id,
            "orchestrationID": self.orchestration_id,
            "servicePlanID": self.plan_id,
            "servicePlanName": self.plan_name,
            "dryRun": self.dry_run,
            "shootName": self.shoot_name,
            "maintenanceWindowBegin": self.window.begin,
            "maintenanceWindowEnd": self.window.end,
            "state": self.state,
            "description": self.description,
        }
        out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True)
class OperationDetail:
    """``GET .../operations/{id}``: the operation plus ``clusterConfig`` or ``kymaConfig``."""

    operation: Operation
    cluster_config: Mapping[str, Any] | None = None
    kyma_config: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, obj: object) -> OperationDetail:
        data = dict(_require_object(obj, "an operation detail"))
        cluster = data.pop("clusterConfig", None)
        kyma = data.pop("kymaConfig", None)
        return cls(
            operation=Operation.from_json(data),
            cluster_config=cluster if isinstance(cluster, Mapping) else None,
            kyma_config=kyma if isinstance(kyma, Mapping) else None,
        )


@dataclass(frozen=True, slots=True)
class Orchestration:
    """A ``StatusResponse``: one orchestration, with ``operationStats`` when KEB sent it.

    ``raw`` is the whole JSON object as received, so nothing KEB sends is lost.
    """

    orchestration_id: str
    type: str = ""
    state: str = ""
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    parameters: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    operation_stats: Mapping[str, int] | None = None
    raw: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def from_json(cls, obj: object) -> Orchestration:
        data = _require_object(obj, "an orchestration")
        orch_id = data.get("orchestrationID")
        if not isinstance(orch_id, str) or not orch_id:
            raise KebResponseError("orchestration object has no orchestrationID")
        params = data.get("parameters")
        stats_raw = data.get("operationStats")
        stats: dict[str, int] | None = None
        if isinstance(stats_raw, Mapping):
            stats = {str(k): int(v) for k, v in stats_raw.items() if isinstance(v, int | float)}
        return cls(
            orchestration_id=orch_id,
            type=_str(data, "type"),
            state=_str(data, "state"),
            description=_str(data, "description"),
            created_at=parse_keb_time(data.get("createdAt")),
            updated_at=parse_keb_time(data.get("updatedAt")),
            parameters=params if isinstance(params, Mapping) else _EMPTY,
            operation_stats=stats,
            raw=data,
        )

    @property
    def terminal(self) -> bool:
        return is_terminal_orchestration(self.state)

    def to_json(self) -> dict[str, Any]:
        """The ``StatusResponse`` shape: ``raw`` with the modelled fields laid over it."""
        out = dict(self.raw)
        out["orchestrationID"] = self.orchestration_id
        out["type"] = self.type
        out["state"] = self.state
        out["description"] = self.description
        for key, value in (("createdAt", self.created_at), ("updatedAt", self.updated_at)):
            if key not in out and value is not None:
                out[key] = format_keb_time(value)
        out["parameters"] = dict(self.parameters)
        if self.operation_stats is not None:
            out["operationStats"] = dict(self.operation_stats)
        return out

    def _strategy(self) -> Mapping[str, Any]:
        strategy = self.parameters.get("strategy")
        return strategy if isinstance(strategy, Mapping) else _EMPTY

    @property
    def workers(self) -> int | None:
        """``parameters.strategy.parallel.workers``: the bound on operations in progress."""
        parallel = self._strategy().get("parallel")
        if isinstance(parallel, Mapping):
            workers = parallel.get("workers")
            if isinstance(workers, int) and workers > 0:
                return workers
        return None

    @property
    def schedule(self) -> str:
        value = self._strategy().get("schedule")
        return value if isinstance(value, str) else ""

    @property
    def uses_maintenance_window(self) -> bool:
        return bool(self._strategy().get("maintenanceWindow")) or self.schedule == (
            "maintenanceWindow"
        )

    @property
    def dry_run(self) -> bool:
        return bool(self.parameters.get("dryRun", False))

    @property
    def kubernetes_version(self) -> str:
        kube = self.parameters.get("kubernetes")
        if isinstance(kube, Mapping):
            version = kube.get("kubernetesVersion")
            if isinstance(version, str):
                return version
        return ""


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a KEB list: ``count`` items here, ``total_count`` matching in all."""

    items: list[T]
    count: int
    total_count: int


def parse_page(obj: object, parse_item: Any, what: str) -> Page[Any]:
    """Parse ``{"data": [...], "count": n, "totalCount": m}``.

    KEB always sends this envelope; its stale documentation shows a bare array, which is
    accepted as a single complete page so that a proxy serving the documented shape works.
    """
    if isinstance(obj, list):
        items = [parse_item(item) for item in obj]
        return Page(items, len(items), len(items))
    data = _require_object(obj, what)
    raw_items = data.get("data")
    if raw_items is None:
        raw_items = []
    if not isinstance(raw_items, list):
        raise KebResponseError(f"{what}: 'data' is not a list")
    items = [parse_item(item) for item in raw_items]
    count = data.get("count", len(items))
    total = data.get("totalCount", len(items))
    if not isinstance(count, int) or not isinstance(total, int):
        raise KebResponseError(f"{what}: 'count'/'totalCount' are not integers")
    return Page(items, count, total)


def operation_stats(operations: Iterable[tuple[str, str]]) -> dict[str, int]:
    """KEB's ``operationStats`` for ``(runtime_id, state)`` pairs, with Postgres semantics.

    Every state is a plain count except ``failed``: the number of instances (one per runtime)
    with at least one failed operation and no ``succeeded``, ``retrying`` or ``in progress``
    one. Keys exist only for states that occur, plus ``failed``, which is always present.
    (KEB ``GetOperationStatsForOrchestration``, ``calFailedStatusForOrchestration``.)

    >>> operation_stats([("r1", "failed"), ("r1", "pending"), ("r2", "succeeded")])
    {'failed': 1, 'pending': 1, 'succeeded': 1}
    """
    counts: dict[str, int] = {}
    failed_runtimes: set[str] = set()
    cleared: set[str] = set()
    for runtime, state in operations:
        if state == FAILED:
            failed_runtimes.add(runtime)
            continue
        counts[state] = counts.get(state, 0) + 1
        if state in (SUCCEEDED, RETRYING, IN_PROGRESS):
            cleared.add(runtime)
    counts[FAILED] = len(failed_runtimes - cleared)
    return dict(sorted(counts.items()))
