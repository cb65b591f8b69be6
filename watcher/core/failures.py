"""Failed operations grouped by reason: the one rule every face shows failures by.

Slack's digests and final summaries, ``watch``, the dashboard and ``/metrics`` group failed
operations the same way: by KEB's description of the operation (the *reason*), an empty
description shown as :data:`NO_DESCRIPTION`, the most frequent reason first and reasons with
the same count in the order of their text. Several digests of one orchestration that wait in
the outbox fold into one the same way (:func:`merge_digests`).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

T = TypeVar("T")

#: The reason shown for a failed operation whose description KEB left empty.
NO_DESCRIPTION: Final = "(no description)"
#: Example shoots shown per reason before "+N more".
EXAMPLES: Final = 3


def reason_of(description: str | None) -> str:
    """The reason a failed operation is grouped and shown under.

    >>> reason_of("quota exceeded"), reason_of(""), reason_of(None)
    ('quota exceeded', '(no description)', '(no description)')
    """
    return description or NO_DESCRIPTION


def grouped(
    items: Iterable[T], description: Callable[[T], str | None]
) -> list[tuple[str, list[T]]]:
    """``items`` grouped by :func:`reason_of` their description, most frequent reason first.

    >>> grouped(["quota", "timeout", "quota", ""], lambda text: text)
    [('quota', ['quota', 'quota']), ('(no description)', ['']), ('timeout', ['timeout'])]
    """
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(reason_of(description(item)), []).append(item)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def ranked(counts: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Counts per reason (a reason may come more than once) added up, most frequent first.

    >>> ranked([("quota", 1), ("timeout", 5), ("quota", 2), ("", 1)])
    [('timeout', 5), ('quota', 3), ('(no description)', 1)]
    """
    total: Counter[str] = Counter()
    for description, n in counts:
        total[reason_of(description)] += n
    return sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))


def failure_groups(
    failed: Iterable[Mapping[str, str]], *, examples: int = EXAMPLES
) -> list[dict[str, Any]]:
    """The failure groups of a digest or a final summary: reason, count, a few example
    shoots and operation IDs, and how many more.

    Each item of ``failed`` has ``description``, ``shoot`` and ``operation_id``.

    >>> failure_groups([{"description": "quota", "shoot": "c-1", "operation_id": "a"}] * 5,
    ...                examples=2)[0]["more"]
    3
    """
    return [
        {
            "reason": reason,
            "count": len(items),
            "examples": [
                {"shoot": i["shoot"], "operation_id": i["operation_id"]} for i in items[:examples]
            ],
            "more": max(0, len(items) - examples),
        }
        for reason, items in grouped(failed, lambda item: item["description"])
    ]


def merge_digests(payloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One digest from several of one orchestration (oldest first): counts added per reason,
    examples kept up to the number each group shows, the newest digest's totals.

    >>> one = {"failures": [{"reason": "quota", "count": 1, "examples": [{"shoot": "a"}],
    ...                      "more": 0}], "new_failures": 1}
    >>> merged = merge_digests([one, one])
    >>> merged["failures"][0]["count"], merged["failures"][0]["more"], merged["new_failures"]
    (2, 1, 2)
    """
    merged = dict(payloads[-1])
    groups: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        for group in payload.get("failures", []):
            into = groups.setdefault(
                group["reason"], {"reason": group["reason"], "count": 0, "examples": [], "more": 0}
            )
            into["count"] += group["count"]
            into["examples"].extend(group["examples"])
    shown = max(
        (len(g["examples"]) for p in payloads for g in p.get("failures", [])), default=EXAMPLES
    )
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["reason"]))
    for group in ordered:
        group["examples"] = group["examples"][:shown]
        group["more"] = group["count"] - len(group["examples"])
    merged["failures"] = ordered
    merged["new_failures"] = sum(int(p.get("new_failures", 0)) for p in payloads)
    merged["more_reasons"] = 0
    return merged
