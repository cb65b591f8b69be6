"""Pure rules of "Stuck is news too" (watcher.core.stuck): what is stuck, when that is news."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.core.stuck import Stalled, news, stalled, stuck_intents, view

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def op(n: int, minutes_ago: float, description: str = "cluster upgrade in progress") -> Stalled:
    return Stalled(
        "in progress", NOW - timedelta(minutes=minutes_ago), f"op-{n}", f"c-{n}", description
    )


def test_only_what_lasted_stuck_after_is_stuck_oldest_first() -> None:
    found = stalled([op(1, 59), op(2, 61), op(3, 300), op(4, 60)], NOW, HOUR)
    assert [s.operation_id for s in found] == ["op-3", "op-2", "op-4"]  # 60 min is enough
    assert stalled([op(3, 300)], NOW, 0.0) == []  # 0s: off


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        ([], [], None),
        ([], [op(1, 90)], "stuck"),
        ([op(1, 90)], [op(1, 90)], None),  # the same things stay stuck: not repeated
        ([op(1, 90), op(2, 90)], [op(1, 90)], None),  # one moved on, one still stuck: card only
        ([op(1, 90)], [op(1, 90), op(2, 61)], "stuck"),  # something new is stuck
        ([op(1, 90)], [op(1, 61)], "stuck"),  # moved and stuck again since another time
        ([op(1, 90)], [], "unstuck"),
        ([Stalled("canceling", NOW - timedelta(hours=3))], [], "unstuck"),
    ],
)
def test_news(previous: list[Stalled], current: list[Stalled], expected: str | None) -> None:
    assert news(previous, current) == expected


def test_the_view_groups_like_failures_and_names_the_orchestration() -> None:
    items = [
        Stalled("canceling", NOW - timedelta(hours=5)),
        *(op(n, 120 + n) for n in range(5)),
        op(9, 180, "Performing post-upgrade tasks"),
    ]
    shown = view(items, NOW, 2 * HOUR)
    assert shown is not None
    assert shown["count"] == 7
    assert shown["operations"] == 6
    assert shown["orchestration"] == {
        "state": "canceling",
        "since": (NOW - timedelta(hours=5)).isoformat(),
    }
    assert shown["since"] == (NOW - timedelta(hours=5)).isoformat()
    assert shown["for_seconds"] == 5 * HOUR
    [first, second] = shown["groups"]
    assert (first["reason"], first["count"], first["more"]) == ("cluster upgrade in progress", 5, 2)
    assert [e["operation_id"] for e in first["examples"]] == ["op-0", "op-1", "op-2"]
    assert (second["reason"], second["count"]) == ("Performing post-upgrade tasks", 1)
    assert view([], NOW, HOUR) is None


def kinds(previous: list[Stalled], current: list[Stalled], **kw: object) -> list[str]:
    intents = stuck_intents(
        "o1",
        previous=previous,
        current=current,
        base={"orchestration": {"id": "o1"}},
        card={"orchestration": {"id": "o1"}, "done": 3},
        channel=None,
        now=NOW,
        after=HOUR,
        **kw,  # type: ignore[arg-type]
    )
    return [i.kind for i in intents]


def test_intents_follow_the_news_and_the_card_follows_every_change() -> None:
    assert kinds([], []) == []
    assert kinds([op(1, 90)], [op(1, 90)]) == []
    assert kinds([], [op(1, 90)]) == ["stuck", "progress"]
    assert kinds([op(1, 90), op(2, 90)], [op(1, 90)]) == ["progress"]
    assert kinds([op(1, 90)], []) == ["unstuck", "progress"]
    assert kinds([op(1, 90)], [], quiet_unstuck=True) == ["progress"]  # the outcome says it


@given(
    st.lists(st.integers(min_value=0, max_value=5), unique=True),
    st.lists(st.integers(min_value=0, max_value=5), unique=True),
)
def test_keys_are_once_per_change(before: list[int], after: list[int]) -> None:
    """The same change gives the same keys (enqueued once); a different one new keys."""
    prev = [op(n, 90) for n in before]
    cur = [op(n, 90) for n in after]
    first = stuck_intents(
        "o1", previous=prev, current=cur, base={}, card={}, channel=None, now=NOW, after=HOUR
    )
    again = stuck_intents(
        "o1", previous=prev, current=cur, base={}, card={}, channel=None, now=NOW, after=HOUR
    )
    assert [i.key for i in first] == [i.key for i in again]
    assert len({i.key for i in first}) == len(first)
    said = news(prev, cur)
    assert [i.kind for i in first if i.kind != "progress"] == ([said] if said else [])


def test_keb_text_in_a_stuck_alert_is_data_never_markup() -> None:
    from watcher.notify.render import Renderer
    from watcher.notify.samples import SAMPLES

    hostile = Stalled(
        "in progress",
        NOW - timedelta(hours=3),
        "op-<!channel>",
        "c-*bold*\x1b[31m",
        "<!here> <https://evil.example|click> *x* \u202e",
    )
    payload = {**SAMPLES["stuck"], "stuck": view([hostile], NOW, HOUR)}
    rendered = Renderer().render("stuck", payload)
    assert rendered.error is None
    text = rendered.message.text + json_blocks(rendered.message.blocks)
    for bad in ("<!channel>", "<!here>", "<https://evil", "*bold*", "\x1b", "\u202e"):
        assert bad not in text, bad


def json_blocks(blocks: object) -> str:
    import json

    return json.dumps(blocks, ensure_ascii=False)
