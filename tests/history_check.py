"""Compare a recorded history with the ground truth of what KEB did, exactly.

A recorded *path* is the state at the baseline followed by every passed-through and target
state of each transition. It must equal the truth from the state at the baseline on (the
caller says which truth positions the baseline can have seen: ``starts``); an operation
created after the baseline must be recorded from its creation (``pending``) on, as a retry
exactly when it is one. Each completion exactly once, no regressions, nothing lost. Two things
cannot be observed by any poller and are accepted: what happened to an operation between the
last poll and its deletion, and a whole "in progress -> failed -> retrying -> in progress"
detour missed between two polls (KEB shows the same descriptions and new operations as for a
retry of an orchestration that was still in progress). A third is accepted as recorded: an
operation that went ``pending -> succeeded`` or ``pending -> failed`` without ever being
``in progress`` (keb-concurrency.md §3.1) looks, between two polls, exactly like one that was
in progress for a moment, and the recorded transition says it passed ``in progress``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Path = list[str]


def recorded_paths(history: Iterable[Mapping[str, Any]]) -> tuple[Path, dict[str, Path]]:
    """Paths from `watcher history --output json` records (or equivalent dicts)."""
    orch_path: Path = []
    op_paths: dict[str, Path] = {}
    for t in history:
        kind, via, to, frm = t["kind"], list(t["via"]), t["to"], t["from"]
        if kind == "baseline":
            orch_path = [to]
        elif kind == "orchestration_state":
            orch_path.extend([*via, to])
        elif t["operationID"] is not None:
            path = op_paths.setdefault(t["operationID"], [])
            if kind in ("operation_added", "operation_retry"):
                path.append(to)
            elif kind == "operation_vanished":
                path.extend([frm] if not path else [])
                path.append("vanished")
            else:
                path.extend([frm] if not path else [])
                path.extend([*via, to])
    return orch_path, op_paths


def first_kinds(history: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The kind of the first transition recorded for each operation."""
    kinds: dict[str, str] = {}
    for t in history:
        if t["operationID"] is not None:
            kinds.setdefault(t["operationID"], t["kind"])
    return kinds


def observable(truth: Path) -> list[Path]:
    detour = ["in progress", "failed", "retrying", "in progress"]
    out = [truth]
    for i in range(len(truth) - 3):
        if truth[i : i + 4] == detour:
            out.append(truth[: i + 1] + truth[i + 4 :])
    return out


def check_orchestration(recorded: Path, truth: Path, starts: Sequence[int] | None = None) -> None:
    """``recorded`` equals the truth from one of ``starts`` (any position if ``None``)."""
    positions = range(len(truth)) if starts is None else starts
    assert any(
        recorded == variant
        for k in positions
        if 0 <= k < len(truth)
        for variant in observable(truth[k:])
    ), f"orchestration: recorded {recorded}, truth {truth}, baseline at {list(positions)}"


def check_operation(
    op_id: str,
    recorded: Path | None,
    truth: Path,
    final_state: str | None,
    *,
    first_kind: str | None = None,
    retry: bool | None = None,
    starts: Sequence[int] | None = None,
) -> None:
    """``recorded`` is None when no transition was recorded for the operation; then its
    stored state (``final_state``) must be the truth's last state.

    An operation recorded as added (or as a retry) must have its whole truth recorded, and be
    a retry exactly when ``retry`` says so. Otherwise it existed at the baseline: its path
    starts at one of ``starts`` (the truth positions the baseline can have seen; any if
    ``None``, which operations allow as their states never repeat)."""
    if recorded is None:
        assert final_state == truth[-1] or truth[-1] == "vanished", (op_id, final_state, truth)
        return
    if first_kind in ("operation_added", "operation_retry"):
        if retry is not None:
            expected = "operation_retry" if retry else "operation_added"
            assert first_kind == expected, f"{op_id}: recorded as {first_kind}, is {expected}"
        positions: Sequence[int] = [0]
    else:
        positions = range(len(truth)) if starts is None else starts
    if truth[-1] == "vanished" and recorded[-1] == "vanished":
        seen = recorded[:-1]
        assert any(truth[k : k + len(seen)] == seen for k in positions), (op_id, recorded, truth)
        return
    assert any(
        recorded in (truth[k:], _assumed_start(truth[k:])) for k in positions if 0 <= k < len(truth)
    ), f"{op_id}: recorded {recorded}, truth {truth}, baseline at {list(positions)}"


def _assumed_start(path: Path) -> Path:
    """``path`` with ``in progress`` between ``pending`` and an end reached without it."""
    out: Path = []
    for state in path:
        if out and out[-1] == "pending" and state in ("succeeded", "failed"):
            out.append("in progress")
        out.append(state)
    return out


def check_completions(
    history: Iterable[Mapping[str, Any]], truth: Mapping[str, Path] | None = None
) -> None:
    """Each completion exactly once: once per operation, or as often as its ``truth`` path
    ends a run (a legacy row resumed under its old ID completes twice)."""
    seen: dict[str, int] = {}
    for t in history:
        if t["kind"] == "operation_completed":
            seen[t["operationID"]] = seen.get(t["operationID"], 0) + 1
    terminal = ("succeeded", "failed", "canceled")
    wrong = {
        op: n
        for op, n in seen.items()
        if n != (sum(s in terminal for s in truth.get(op, ())) if truth else 1)
    }
    assert not wrong, f"completed more (or less) often than KEB completed them: {wrong}"
