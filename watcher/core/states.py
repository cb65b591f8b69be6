"""The order states are shown in, and the name of a missing state: one rule for every face.

Two orders, each for one purpose:

* Counts written out in words (``list``, ``watch``, Slack's context lines, the dashboard's
  labels) follow KEB's own order, :data:`~watcher.core.models.KNOWN_STATES`, from ``pending``
  to ``canceled``: :func:`in_keb_order`.
* Counts drawn (progress bars, Slack's count line with icons) put what is finished first, so
  that a bar fills from the left: :data:`FINISHED_FIRST`, :func:`finished_first`.

Either way a state KEB sent that we do not know comes last, by name, and is never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from watcher.core.models import (
    CANCELED,
    CANCELING,
    FAILED,
    IN_PROGRESS,
    KNOWN_STATES,
    PENDING,
    RETRYING,
    SUCCEEDED,
)

#: The drawing order: finished states first, then what still moves, pending last.
FINISHED_FIRST: Final = (SUCCEEDED, FAILED, CANCELED, IN_PROGRESS, CANCELING, RETRYING, PENDING)
#: What an empty state is called where a state is shown.
NO_STATE: Final = "(no state)"

_KEB_RANK: Final = {state: i for i, state in enumerate(KNOWN_STATES)}
_DRAW_RANK: Final = {state: i for i, state in enumerate(FINISHED_FIRST)}


def state_label(state: str | None) -> str:
    """``state``, or :data:`NO_STATE` when KEB sent none.

    >>> state_label("failed"), state_label("")
    ('failed', '(no state)')
    """
    return state or NO_STATE


def in_keb_order(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """``counts`` in KEB's order of states, unknown states last by name.

    >>> in_keb_order({"succeeded": 2, "zzz": 1, "pending": 3})
    [('pending', 3), ('succeeded', 2), ('zzz', 1)]
    """
    return sorted(counts.items(), key=lambda kv: (_KEB_RANK.get(kv[0], len(_KEB_RANK)), kv[0]))


def finished_first(states: Iterable[str]) -> list[str]:
    """``states`` in the drawing order, unknown states last by name.

    >>> finished_first(["pending", "zzz", "failed", "succeeded"])
    ['succeeded', 'failed', 'pending', 'zzz']
    """
    return sorted(states, key=lambda s: (_DRAW_RANK.get(s, len(_DRAW_RANK)), s))
