"""Which moves an upgrade operation can make (docs/keb-api.md §13, keb-concurrency.md §3.1),
and when two reads of an orchestration show the same moment."""

from __future__ import annotations

from watcher.core.models import (
    CANCELED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    RETRYING,
    SUCCEEDED,
    Orchestration,
)

_RANK = {PENDING: 0, IN_PROGRESS: 1}


def backwards(old: str, new: str) -> bool:
    """Would recording ``new`` over ``old`` take an operation backwards? Only a retry may:
    a legacy row goes ``failed -> retrying -> pending`` under its old ID (docs/keb-api.md §13).
    Unknown states are not ranked (kept verbatim).

    >>> backwards("succeeded", "in progress"), backwards("failed", "retrying")
    (True, False)
    >>> backwards("in progress", "pending"), backwards("retrying", "pending")
    (True, False)
    """
    if old == new or (old in (FAILED, RETRYING) and new in (RETRYING, PENDING, IN_PROGRESS)):
        return False
    rank = {**_RANK, SUCCEEDED: 2, FAILED: 2, CANCELED: 2}
    if old not in rank or new not in rank:
        return False
    return rank[new] < rank[old]


def same_moment(opening: Orchestration, closing: Orchestration) -> bool:
    """Did nothing move between two GETs of one orchestration (state, description and
    ``operationStats`` all equal)? See the module docstring, step 4."""
    return (opening.state, opening.description, dict(opening.operation_stats or {})) == (
        closing.state,
        closing.description,
        dict(closing.operation_stats or {}),
    )


_FORWARD = {PENDING: (IN_PROGRESS, SUCCEEDED, FAILED, CANCELED), IN_PROGRESS: (SUCCEEDED, FAILED)}


def forward(old: str, new: str) -> bool:
    """Can a cluster operation move from ``old`` to ``new`` (§4.3)?

    >>> forward("pending", "succeeded"), forward("succeeded", "in progress")
    (True, False)
    """
    return new in _FORWARD.get(old, ())
