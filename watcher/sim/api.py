"""KEB's request parsing and error texts, as pure functions.

Everything here mirrors the Go code cited in docs/keb-api.md: paging (§2.9,
``common/pagination/pagination.go``), the ``POST /upgrade/cluster`` body (§2.7, decoded like
``encoding/json`` into ``orchestration.Parameters``, then validated in KEB's order), the
operations a retry request may retry (§2.6, ``cluster_retry.go``) and the 404 texts of the
Postgres driver (§5). Errors are :class:`SimApiError` carrying the HTTP status
and the exact ``{"error": ...}`` message.

Deviation: ``encoding/json`` syntax-error texts are reproduced for the common cases (unexpected
end, bad character where a value or an object key was expected); rarer ones are approximations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from watcher.core.models import CANCELED, CANCELING, MAX_PAGE_SIZE
from watcher.sim.inventory import TARGET_KEYS
from watcher.sim.records import OperationRecord, to_us

_INT64_MAX: Final = 2**63 - 1
_RFC3339_LAYOUT: Final = "2006-01-02T15:04:05Z07:00"
_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})"
)
_ATOI: Final = re.compile(r"[+-]?[0-9]+")

MSG_INCLUDE_EMPTY: Final = "while validating target: targets.include array must be not empty"
MSG_SCHEDULE_DEPRECATED: Final = (
    'found deprecated value: {"strategy":{"schedule": "maintenanceWindow"} is deprecated use '
    '{"strategy":{"MaintenanceWindow": true} instead'
)
MSG_KYMA_UNSUPPORTED: Final = "kyma upgrade not supported"


class SimApiError(Exception):
    """A KEB handler error: ``status`` and the text KEB puts in ``{"error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SimNotFound(SimApiError, LookupError):
    """404: KEB does not know the orchestration or operation."""

    def __init__(self, message: str) -> None:
        super().__init__(404, message)


def orchestration_not_found(orchestration_id: str, *, action: str = "get") -> SimNotFound:
    """The Postgres driver's not-found text, wrapped as each handler wraps it (§5)."""
    inner = f"for ID: {orchestration_id} cannot find operation: dbr: not found"
    if action == "cancel":
        return SimNotFound(
            f"while canceling orchestration {orchestration_id}: while getting orchestration: "
            + inner
        )
    if action == "retry":
        return SimNotFound(f"while retrying orchestration {orchestration_id}: {inner}")
    return SimNotFound(f"while getting orchestration {orchestration_id}: {inner}")


def operation_not_found(operation_id: str) -> SimNotFound:
    return SimNotFound(
        f"while getting upgrade operation {operation_id}: while getting operation by ID: "
        f"Operation with id {operation_id} not exist"
    )


def encode_json(value: object) -> bytes:
    """Compact JSON like Go's ``json.Marshal``: no newline, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = (
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return text.encode("utf-8")


def go_atoi(text: str) -> int | None:
    """``strconv.Atoi``: optional sign and ASCII digits, int64 range; ``None`` otherwise."""
    if not _ATOI.fullmatch(text):
        return None
    value = int(text)
    return value if -_INT64_MAX - 1 <= value <= _INT64_MAX else None


def parse_paging(
    query: Mapping[str, Sequence[str]], max_page: int = MAX_PAGE_SIZE
) -> tuple[int, int]:
    """``(page, page_size)`` from query parameters, or 400 with KEB's exact message (§2.9).

    ``page_size`` is checked completely before ``page``, as in ``pagination.go``.
    """

    def fail(message: str) -> SimApiError:
        return SimApiError(400, f"while getting query parameters: {message}")

    sizes = query.get("page_size")
    if sizes is None:
        page_size = max_page
    else:
        if len(sizes) > 1:
            raise fail("pageSize has to be one parameter")
        parsed = go_atoi(sizes[0])
        if parsed is None:
            raise fail("pageSize has to be an integer")
        page_size = parsed
    if page_size > max_page:
        raise fail(f"pageSize is bigger than maxPage({max_page})")
    if page_size < 1:
        raise fail("pageSize cannot be smaller than 1")
    pages = query.get("page")
    if pages is None:
        page = 1
    else:
        if len(pages) > 1:
            raise fail("page has to be one parameter")
        parsed = go_atoi(pages[0])
        if parsed is None:
            raise fail("page has to be an integer")
        page = parsed
    if page < 1:
        raise fail("page cannot be smaller than 1")
    return page, page_size


def parse_rfc3339(text: str) -> int | None:
    """Microseconds since the Unix epoch for a Go ``time.RFC3339`` string, else ``None``."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "0")[:6].ljust(6, "0")
    try:
        value = datetime(year, month, day, hour, minute, second, int(frac), tzinfo=UTC)
    except ValueError:
        return None
    zone = m.group(8)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        value -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return to_us(value)


def _go_parse_error(text: str) -> str:
    return f'parsing time "{text}" as "{_RFC3339_LAYOUT}": cannot parse "{text}" as "2006"'


# --- decoding the upgrade body like encoding/json into orchestration.Parameters -----------

_Field = tuple[str, str]  # (kind, struct name or element kind)
_STRUCTS: Final[dict[str, dict[str, _Field]]] = {
    "Parameters": {
        "targets": ("struct", "TargetSpec"),
        "strategy": ("struct", "StrategySpec"),
        "dryRun": ("bool", ""),
        "kubernetes": ("struct", "KubernetesParameters"),
        "retryoperation": ("struct", "RetryOperationParameters"),
        "notification": ("bool", ""),
    },
    "TargetSpec": {
        "include": ("list", "RuntimeTarget"),
        "exclude": ("list", "RuntimeTarget"),
    },
    "RuntimeTarget": {key: ("string", "") for key in TARGET_KEYS},
    "StrategySpec": {
        "type": ("string", ""),
        "schedule": ("string", ""),
        "ScheduleTime": ("time", ""),
        "maintenanceWindow": ("bool", ""),
        "parallel": ("struct", "ParallelStrategySpec"),
    },
    "ParallelStrategySpec": {"workers": ("int", "")},
    "KubernetesParameters": {
        "kubernetesVersion": ("string", ""),
        "machineImage": ("string", ""),
        "machineImageVersion": ("string", ""),
    },
    "RetryOperationParameters": {
        "retryoperations": ("list", "string"),
        "immediate": ("stringbool", ""),
    },
}
_GO_TYPES: Final = {"string": "string", "bool": "bool", "int": "int", "time": "time.Time"}


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _go_type(kind: str, name: str) -> str:
    if kind == "struct":
        return f"orchestration.{name}"
    if kind == "list":
        return f"[]orchestration.{name}" if name in _STRUCTS else f"[]{name}"
    return _GO_TYPES.get(kind, "orchestration.stringBoolean")


class _TypeError(Exception):
    pass


def _decode(value: object, kind: str, name: str, owner: str, path: str) -> Any:
    """Check ``value`` against a Go type; returns the value with struct keys canonicalised."""
    if value is None:
        return None

    def mismatch(what: str | None = None) -> _TypeError:
        where = f"Go struct field {owner}.{path}" if path else "Go value"
        return _TypeError(
            f"json: cannot unmarshal {what or _json_kind(value)} into {where} of type "
            f"{_go_type(kind, name)}"
        )

    if kind == "struct":
        if not isinstance(value, dict):
            raise mismatch()
        fields = _STRUCTS[name]
        lower = {f.lower(): f for f in fields}
        out: dict[str, Any] = {}
        for key, item in value.items():
            # encoding/json matches keys case-insensitively; the last duplicate wins.
            field = key if key in fields else lower.get(key.lower())
            if field is None:
                continue
            sub_kind, sub_name = fields[field]
            sub_path = f"{path}.{field}" if path else field
            out[field] = _decode(item, sub_kind, sub_name, name, sub_path)
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise mismatch()
        element_kind = "struct" if name in _STRUCTS else name
        return [_decode(item, element_kind, name, owner, path) for item in value]
    if kind == "string" and not isinstance(value, str):
        raise mismatch()
    if kind == "bool" and not isinstance(value, bool):
        raise mismatch()
    if kind == "int":
        if isinstance(value, float):
            raise mismatch(f"number {json.dumps(value)}")
        if not isinstance(value, int) or isinstance(value, bool):
            raise mismatch()
        if abs(value) > _INT64_MAX:
            raise mismatch(f"number {value}")
    if kind == "time":
        if not isinstance(value, str):
            raise mismatch()
        if parse_rfc3339(value) is None:
            raise _TypeError(
                f'parsing time "\\"{value}\\"" as "\\"{_RFC3339_LAYOUT}\\"": '
                f'cannot parse "{value}\\"" as "2006"'
            )
    if kind == "stringbool":
        return value is True or value == "true"
    return value


def _syntax_message(text: str, exc: json.JSONDecodeError) -> str:
    pos = exc.pos
    if pos >= len(text) or exc.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    char = text[pos]
    shown = "'\\''" if char == "'" else f"'{char}'"
    if exc.msg.startswith("Expecting property name"):
        return f"invalid character {shown} looking for beginning of object key string"
    if exc.msg.startswith("Expecting ':'"):
        return f"invalid character {shown} after object key"
    if exc.msg.startswith("Expecting ','"):
        return f"invalid character {shown} after object key:value pair"
    if exc.msg.startswith("Invalid control character"):
        return f"invalid character {shown} in string literal"
    return f"invalid character {shown} looking for beginning of value"


def decode_body(raw: bytes) -> object:
    """The first JSON value of a request body, as ``json.Decoder.Decode`` reads it."""
    text = raw.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise SimApiError(400, "while decoding request body: EOF")

    def reject_constant(name: str) -> object:
        raise json.JSONDecodeError("Expecting value", text, text.find(name))

    try:
        value, _ = json.JSONDecoder(parse_constant=reject_constant).raw_decode(text)
    except json.JSONDecodeError as exc:
        raise SimApiError(
            400, f"while decoding request body: {_syntax_message(text, exc)}"
        ) from None
    return value


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """A validated ``POST /upgrade/cluster`` body. ``schedule_time_us`` is set for timestamps."""

    include: tuple[dict[str, str], ...]
    exclude: tuple[dict[str, str], ...]
    strategy_type: str
    schedule: str
    schedule_time_us: int | None
    maintenance_window: bool
    workers: int
    dry_run: bool
    notification: bool
    kubernetes: dict[str, str] | None


def _targets(items: list[Any] | None) -> tuple[dict[str, str], ...]:
    # Re-emit in Go field order with omitempty: KEB stores the decoded struct. A JSON null
    # element decodes to an empty target, which the resolver treats as "every runtime".
    return tuple(
        {key: item[key] for key in TARGET_KEYS if item and item.get(key)} for item in items or []
    )


def validate_upgrade(body: object) -> UpgradeRequest:
    """Decode and validate like ``cluster_handler.go`` (§2.7), raising 400 in KEB's order.

    KEB applies no defaults for ``type`` or ``workers``; an orchestration with a non-parallel
    type or ``workers <= 0`` is accepted and its operations never start, as in KEB.
    """
    try:
        params = _decode(body, "struct", "Parameters", "Parameters", "")
    except _TypeError as exc:
        raise SimApiError(400, f"while decoding request body: {exc}") from None
    if params is None:
        params = {}
    targets = params.get("targets") or {}
    include = _targets(targets.get("include"))
    if not include:
        raise SimApiError(400, MSG_INCLUDE_EMPTY)
    strategy = params.get("strategy") or {}
    schedule = strategy.get("schedule") or ""
    if schedule == "maintenanceWindow":
        raise SimApiError(400, MSG_SCHEDULE_DEPRECATED)
    schedule_time: int | None = None
    if schedule not in ("immediate", "now"):
        schedule_time = parse_rfc3339(schedule)
        if schedule_time is None:
            raise SimApiError(
                400,
                "found deprecated value: the schedule filed does not contain 'imediate'/'now' "
                f"nor is a date: {_go_parse_error(schedule)}",
            )
    parallel = strategy.get("parallel") or {}
    kubernetes = params.get("kubernetes")
    return UpgradeRequest(
        include=include,
        exclude=_targets(targets.get("exclude")),
        strategy_type=strategy.get("type") or "",
        schedule=schedule,
        schedule_time_us=schedule_time,
        maintenance_window=bool(strategy.get("maintenanceWindow")),
        workers=int(parallel.get("workers") or 0),
        dry_run=bool(params.get("dryRun")),
        notification=bool(params.get("notification")),
        kubernetes=(
            {
                "kubernetesVersion": kubernetes.get("kubernetesVersion") or "",
                "machineImage": kubernetes.get("machineImage") or "",
                "machineImageVersion": kubernetes.get("machineImageVersion") or "",
            }
            if kubernetes
            else None
        ),
    )


def select_retry(
    failed: Sequence[OperationRecord],
    requested: Sequence[str],
    *,
    check_newer: bool,
    latest: Mapping[str, OperationRecord],
) -> tuple[list[OperationRecord], list[str], list[str]]:
    """``(candidates, invalidOperations, oldOperations)`` of a retry request (§2.6).

    Requested IDs that are not failed operations of the orchestration are invalid; no IDs
    means every failed one. For a ``failed`` orchestration (``check_newer``), a candidate whose
    runtime already has a newer operation (``latest``, any orchestration) that is not canceled
    is old and skipped.
    """
    invalid: list[str] = []
    candidates: list[OperationRecord] = []
    if requested:
        by_id = {op.operation_id: op for op in failed}
        for op_id in requested:
            found = by_id.get(op_id)
            if found is None:
                invalid.append(op_id)
            elif found not in candidates:
                candidates.append(found)
    else:
        candidates = list(failed)
    old: list[str] = []
    if check_newer:
        kept = []
        for op in candidates:
            newest = latest.get(op.runtime.runtime_id)
            if (
                newest is not None
                and newest is not op
                and newest.state not in (CANCELED, CANCELING)
            ):
                old.append(op.operation_id)
            else:
                kept.append(op)
        candidates = kept
    return candidates, invalid, old
