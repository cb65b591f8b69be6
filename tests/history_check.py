"""Compare a recorded history with the ground truth of what KEB did.

A recorded *path* is the state at the baseline followed by every passed-through and target
state of each transition. It must equal the truth from that state on: each completion
exactly once, no regressions, nothing lost. Two things cannot be observed by any poller and
are accepted: what happened to an operation between the last poll and its deletion, and a
whole "in progress -> failed -> retrying -> in progress" detour missed between two polls
(KEB shows the same descriptions and new operations as for a retry of an orchestration that
was still in progress).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def is_suffix(recorded: Path, truth: Path) -> bool:
    return bool(recorded) and any(
        recorded == truth[start:] for start, state in enumerate(truth) if state == recorded[0]
    )


def observable(truth: Path) -> list[Path]:
    detour = ["in progress", "failed", "retrying", "in progress"]
    out = [truth]
    for i in range(len(truth) - 3):
        if truth[i : i + 4] == detour:
            out.append(truth[: i + 1] + truth[i + 4 :])
    return out


def check_orchestration(recorded: Path, truth: Path) -> None:
    assert any(is_suffix(recorded, t) for t in observable(truth)), (
        f"orchestration: recorded {recorded}, truth {truth}"
    )


def check_operation(
    op_id: str, recorded: Path | None, truth: Path, final_state: str | None
) -> None:
    """``recorded`` is None when no transition was recorded for the operation; then its
    stored state (``final_state``) must be the truth's last state."""
    if recorded is None:
        assert final_state == truth[-1] or truth[-1] == "vanished", (op_id, final_state, truth)
        return
    if truth[-1] == "vanished" and recorded[-1] == "vanished":
        seen = recorded[:-1]
        assert any(truth[i : i + len(seen)] == seen for i in range(len(truth))), (
            op_id,
            recorded,
            truth,
        )
        return
    assert is_suffix(recorded, truth), f"{op_id}: recorded {recorded}, truth {truth}"


def check_completions(history: Iterable[Mapping[str, Any]]) -> None:
    seen: dict[str, int] = {}
    for t in history:
        if t["kind"] == "operation_completed":
            seen[t["operationID"]] = seen.get(t["operationID"], 0) + 1
    twice = {op: n for op, n in seen.items() if n != 1}
    assert not twice, f"completed more than once: {twice}"
