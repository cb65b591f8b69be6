"""The Slack rate budget and digest merging, with a fake clock: plain function calls."""

from __future__ import annotations

from watcher.core.failures import merge_digests
from watcher.notify.budget import RateBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_post_per_interval_per_channel() -> None:
    clock = Clock()
    budget = RateBudget(post_interval=1.0, clock=clock)
    assert budget.wait("chat.postMessage", "#a") == 0
    budget.spend("chat.postMessage", "#a")
    assert budget.wait("chat.postMessage", "#a") == 1.0
    assert budget.wait("chat.postMessage", "#b") == 0  # another channel is not limited
    clock.now += 0.4
    assert round(budget.wait("chat.postMessage", "#a"), 6) == 0.6
    clock.now += 0.6
    assert budget.wait("chat.postMessage", "#a") == 0


def test_updates_share_a_workspace_budget_per_minute() -> None:
    clock = Clock()
    budget = RateBudget(updates_per_minute=3, clock=clock)
    for _ in range(3):
        assert budget.wait("chat.update", "#a") == 0
        budget.spend("chat.update", "#a")
        clock.now += 1
    assert budget.wait("chat.update", "#b") == 57.0  # until the oldest leaves the window
    clock.now += 57
    assert budget.wait("chat.update", "#b") == 0


def test_a_429_pauses_exactly_that_method_for_retry_after() -> None:
    clock = Clock()
    budget = RateBudget(clock=clock)
    budget.pause("chat.update", "#a", 30)
    assert budget.wait("chat.update", "#b") == 30  # updates are workspace-wide
    assert budget.wait("chat.postMessage", "#a") == 0  # posting is not paused
    budget.pause("chat.postMessage", "#a", 5)
    assert budget.wait("chat.postMessage", "#a") == 5
    assert budget.wait("chat.postMessage", "#b") == 0
    clock.now += 30
    assert budget.wait("chat.update", "#a") == 0


def test_merging_digests_adds_counts_per_reason() -> None:
    one = {
        "new_failures": 2,
        "failed": 2,
        "failures": [
            {"reason": "quota", "count": 2, "examples": [{"shoot": "a"}, {"shoot": "b"}], "more": 0}
        ],
    }
    two = {
        "new_failures": 4,
        "failed": 6,
        "failures": [
            {"reason": "timeout", "count": 1, "examples": [{"shoot": "c"}], "more": 0},
            {
                "reason": "quota",
                "count": 3,
                "examples": [{"shoot": "d"}, {"shoot": "e"}],
                "more": 1,
            },
        ],
    }
    merged = merge_digests([one, two])
    assert merged["new_failures"] == 6
    assert merged["failed"] == 6  # the newest totals
    assert [(g["reason"], g["count"], g["more"]) for g in merged["failures"]] == [
        ("quota", 5, 3),
        ("timeout", 1, 0),
    ]
    assert [e["shoot"] for e in merged["failures"][0]["examples"]] == ["a", "b"]


def test_a_channel_name_and_its_id_share_one_budget_once_known() -> None:
    clock = Clock()
    budget = RateBudget(post_interval=1.0, clock=clock)
    budget.spend("chat.postMessage", "#kyma-upgrades")
    budget.pause("chat.update", None, 5)
    budget.pause("chat.postMessage", "#kyma-upgrades", 3)
    assert budget.wait("chat.postMessage", "C0KYMA001") == 0  # not known to be the same yet
    budget.alias("#kyma-upgrades", "C0KYMA001")
    assert budget.wait("chat.postMessage", "C0KYMA001") == 3.0  # the 429's pause, and the post
    clock.now += 3
    assert budget.wait("chat.postMessage", "C0KYMA001") == 0
    budget.spend("chat.postMessage", "#alerts")
    budget.alias("#alerts", "C0ALERT01")
    assert budget.wait("chat.postMessage", "C0ALERT01") == 1.0  # the post just made there
