"""The sender's pure decisions (watcher.notify.plan) with plain values: coalescing, event order,
the rate budget, backoff and giving up on time; and properties over any outbox."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.core.kinds import Kind, priority
from watcher.core.tracked import Silence
from watcher.notify.plan import (
    CARD_KINDS,
    MAX_BACKOFF,
    POST_METHODS,
    GiveUp,
    Limits,
    Refused,
    Retry,
    Rules,
    after_failure,
    plan,
)
from watcher.store.outbox import Card, Entry, Shown

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
DAY = 86400.0
CARD = Card("C0KYMA001", "1.000")


def entry(
    id: int,
    kind: str,
    orch: str | None = "o1",
    *,
    status: str = "pending",
    attempts: int = 0,
    at: datetime | None = None,
    payload: dict[str, Any] | None = None,
    channel: str | None = None,
) -> Entry:
    return Entry(
        id=id,
        key=f"{orch}:{kind}:{id}",
        orchestration_id=orch,
        kind=kind,
        priority=priority(Kind(kind)),
        channel=channel,
        payload=payload or {},
        status=status,
        attempts=attempts,
        next_attempt_at=at,
        last_error=None,
        created_at=NOW,
        sent_at=None,
        slack_channel=None,
        slack_ts=None,
        render_error=None,
        last_attempt_at=None,
    )


RULES = Rules(default_channel="#kyma-upgrades", post_interval=0.0)
WITH_CARD = {"o1": Shown(card=CARD)}


def sent_ids(entries: list[Entry], shown: dict[str, Shown] | None = None, **kw: Any) -> list[int]:
    return [s.entry.id for s in plan(entries, shown or WITH_CARD, NOW, RULES, **kw).sends]


# -- coalescing -------------------------------------------------------------------------------


def test_only_the_newest_card_state_is_sent_and_never_one_older_than_shown() -> None:
    entries = [entry(1, "progress"), entry(2, "progress"), entry(3, "progress")]
    decided = plan(entries, WITH_CARD, NOW, RULES)
    assert [s.entry.id for s in decided.sends] == [3]
    assert [(k.entry.id, k.status) for k in decided.skips] == [(1, "superseded"), (2, "superseded")]
    # `outbox retry --all` brings back a card state older than the one the card shows.
    shown = {"o1": Shown(card=CARD, card_state=5)}
    decided = plan([entry(3, "progress")], shown, NOW, RULES)
    assert decided.sends == []
    assert "already shows a newer state, outbox 5" in decided.skips[0].why


def test_a_final_summary_absorbs_the_digests_of_its_run_and_digests_merge() -> None:
    failures = [{"reason": "r", "count": 1, "examples": [], "more": 0}]
    entries = [
        entry(1, "failure_digest", payload={"failures": failures}),
        entry(2, "failure_digest", payload={"failures": failures}),
        entry(3, "finished"),
        entry(4, "failure_digest", "o2", payload={"failures": failures}),
        entry(5, "failure_digest", "o2", payload={"failures": failures}),
    ]
    decided = plan(entries, WITH_CARD, NOW, RULES)
    skips = {k.entry.id: k.why for k in decided.skips}
    assert "absorbed into the final summary, outbox 3" in skips[1]
    assert "absorbed into the final summary, outbox 3" in skips[2]
    assert skips[4] == "merged into outbox 5"
    [merge] = decided.merges
    assert merge.entry.id == 5
    assert merge.payload["failures"][0]["count"] == 2
    assert sorted(s.entry.id for s in decided.sends) == [3, 5]


def test_a_reply_older_than_a_final_summary_already_sent_is_superseded() -> None:
    shown = {"o1": Shown(card=CARD, final=7)}
    decided = plan([entry(4, "state_changed"), entry(9, "retried")], shown, NOW, RULES)
    assert [s.entry.id for s in decided.sends] == [9]
    assert "final summary was sent already, outbox 7" in decided.skips[0].why


def test_a_silence_drops_the_replies_and_never_the_card_or_the_outcome() -> None:
    silence = Silence("o1", NOW + timedelta(hours=2), "INC-1", "ana", NOW)
    entries = [
        entry(1, "progress"),
        entry(2, "failure_digest"),
        entry(3, "stuck"),
        entry(4, "state_changed"),
        entry(5, "failure_digest", "o2"),
        entry(6, "finished"),
    ]
    decided = plan(
        entries, {**WITH_CARD, "o2": Shown(card=CARD)}, NOW, RULES, silences={"o1": silence}
    )
    dropped = {k.entry.id: (k.status, k.why) for k in decided.skips}
    assert dropped == {i: ("dropped", silence.held_back()) for i in (2, 3, 4)}
    assert sorted(s.entry.id for s in decided.sends) == [1, 5, 6]


def test_webhooks_skip_card_updates() -> None:
    rules = replace(RULES, threads=False, edits=False)
    decided = plan([entry(1, "progress"), entry(2, "finished")], {}, NOW, rules)
    assert [(k.entry.id, k.status) for k in decided.skips] == [(1, "skipped")]
    assert [(s.entry.id, s.method) for s in decided.sends] == [(2, "webhook")]


# -- order ---------------------------------------------------------------------------------------


def test_a_reply_never_overtakes_an_earlier_reply_of_its_thread() -> None:
    # state_changed has a higher priority value than finished, and goes first all the same.
    assert sent_ids([entry(2, "state_changed"), entry(3, "finished"), entry(1, "progress")]) == [
        2,
        3,
        1,
    ]


def test_a_reply_waits_behind_an_earlier_one_in_backoff_or_waiting_for_a_fix() -> None:
    later = NOW + timedelta(minutes=1)
    for blocker in (
        entry(2, "state_changed", at=later),
        entry(2, "state_changed", status="failed"),
    ):
        decided = plan([blocker, entry(3, "finished"), entry(4, "progress")], WITH_CARD, NOW, RULES)
        assert [s.entry.id for s in decided.sends] == [4]
        waits = {w.entry.id: w.why for w in decided.waits}
        assert waits[3] == "waits behind outbox 2 in its thread"
    routed = replace(RULES, routes={"finished": "#outcomes"})
    decided = plan(
        [entry(2, "state_changed", status="failed"), entry(3, "finished")], {}, NOW, routed
    )
    assert [(s.entry.id, s.channel) for s in decided.sends] == [(3, "#outcomes")]


def test_replies_wait_for_their_card_and_go_right_after_it() -> None:
    entries = [entry(1, "tracking_started"), entry(2, "state_changed"), entry(3, "finished")]
    decided = plan(entries, {}, NOW, RULES)
    assert [(s.entry.id, s.method) for s in decided.sends] == [
        (1, "chat.postMessage"),
        (2, "chat.postMessage"),
        (3, "chat.postMessage"),
    ]
    held = [replace(entries[0], next_attempt_at=NOW + timedelta(seconds=30)), *entries[1:]]
    decided = plan(held, {}, NOW, RULES)
    assert decided.sends == []
    assert decided.next_at == NOW + timedelta(seconds=30)


def test_the_rate_budget_spaces_posts_per_channel_and_the_backoff_holds_everything() -> None:
    rules = replace(RULES, post_interval=1.0)
    entries = [entry(1, "finished", "o1"), entry(2, "finished", "o2"), entry(3, "not_found", None)]
    decided = plan(entries, {}, NOW, rules, Limits(posted={"#kyma-upgrades": 0.5}))
    assert [s.after for s in decided.sends] == [0.5, 1.5, 2.5]
    decided = plan(entries, {}, NOW, rules, Limits(down=40.0))
    assert [s.after for s in decided.sends] == [40.0, 41.0, 42.0]
    paused = Limits(paused={("chat.postMessage", "#kyma-upgrades"): 30.0})
    assert plan(entries, {}, NOW, rules, paused).sends[0].after == 30.0


def test_the_digest_clock_holds_a_digest_until_an_interval_after_the_last_one() -> None:
    rules = replace(RULES, digest_interval=600)
    failures = [{"reason": "new", "count": 1, "examples": [], "more": 0}]
    shown = {"o1": Shown(card=CARD, last_digest_at=NOW - timedelta(minutes=4))}
    decided = plan([entry(1, "failure_digest", payload={"failures": failures})], shown, NOW, rules)
    assert [(h.entry.id, h.until) for h in decided.holds] == [(1, NOW + timedelta(minutes=6))]
    assert decided.sends == []
    # A reason every earlier digest named already: six intervals.
    shown = {"o1": replace(shown["o1"], reasons=frozenset({"new"}))}
    decided = plan([entry(1, "failure_digest", payload={"failures": failures})], shown, NOW, rules)
    assert decided.holds[0].until == NOW + timedelta(minutes=56)


# -- after a failure -------------------------------------------------------------------------


def failure(now: datetime, since: datetime | None, **kw: Any) -> Retry | GiveUp | Refused:
    args: dict[str, Any] = {"transient": True, "retry_after": None}
    args.update(kw)
    return after_failure(now=now, failing_since=since, give_up_after=DAY, jitter=0.5, **args)


def test_giving_up_is_exactly_at_give_up_after_and_not_a_moment_before() -> None:
    since = NOW
    end = since + timedelta(seconds=DAY)
    just_before = failure(end - timedelta(microseconds=1), since)
    assert just_before == Retry(end, counts=True)  # the last retry is at that very moment
    assert failure(end, since) == GiveUp()
    assert failure(end + timedelta(hours=1), since) == GiveUp()
    assert failure(NOW, None) == Retry(NOW + timedelta(seconds=2), counts=True)


def test_backoff_doubles_with_the_time_failing_and_is_capped_at_five_minutes() -> None:
    at, since, delays = NOW, NOW, []
    for _ in range(12):
        decision = failure(at, since)
        assert isinstance(decision, Retry)
        delays.append((decision.at - at).total_seconds())
        at = decision.at
    assert delays == [2, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    hour_ago = NOW - timedelta(hours=1)
    most = after_failure(
        now=NOW,
        failing_since=hour_ago,
        transient=True,
        retry_after=None,
        give_up_after=DAY,
        jitter=0.999,
    )
    assert most == Retry(NOW + timedelta(seconds=MAX_BACKOFF), counts=True)  # jitter included


def test_a_429_waits_its_retry_after_longer_than_any_backoff_and_never_counts() -> None:
    # Even after failing for longer than give_up_after, a 429 is only a wait.
    long_ago = NOW - timedelta(days=3)
    decision = failure(NOW, long_ago, retry_after=3600.0)
    assert decision == Retry(NOW + timedelta(seconds=3600), counts=False)
    assert MAX_BACKOFF < 3600


def test_a_permanent_answer_waits_for_a_fix() -> None:
    assert failure(NOW, None, transient=False) == Refused()


# -- properties over any outbox -------------------------------------------------------------------

KINDS = ["tracking_started", "progress", "failure_digest", "state_changed", "retried", "finished"]


@st.composite
def outboxes(draw: st.DrawFn) -> tuple[list[Entry], dict[str, Shown], Rules]:
    n = draw(st.integers(1, 40))
    entries = []
    for i in range(1, n + 1):
        orch = draw(st.sampled_from(["o1", "o2", "o3"]))
        kind = draw(st.sampled_from(KINDS))
        status = draw(st.sampled_from(["pending"] * 5 + ["failed"]))
        offset = draw(st.sampled_from([None, None, None, -10, 5, 120]))
        at = NOW + timedelta(seconds=offset) if offset is not None else None
        failures = [{"reason": draw(st.sampled_from("ab")), "count": 1, "examples": [], "more": 0}]
        payload = {"failures": failures}
        entries.append(entry(2 * i, kind, orch, status=status, at=at, payload=payload))
    shown = {}
    for orch in ("o1", "o2", "o3"):
        card = draw(st.booleans())
        shown[orch] = Shown(
            card=Card("C0KYMA001", f"{orch}.1") if card else None,
            # IDs of notifications sent already: odd, those still waiting are even
            card_state=draw(st.sampled_from([0, 0, n | 1])) if card else 0,
            final=draw(st.sampled_from([0, 0, (2 * n // 3) | 1])),
        )
    rules = Rules(
        default_channel="#kyma-upgrades",
        post_interval=draw(st.sampled_from([0.0, 1.05])),
        updates_per_minute=draw(st.sampled_from([2, 48])),
        digest_interval=draw(st.sampled_from([0.0, 600.0])),
        routes=draw(st.sampled_from([{}, {"finished": "#outcomes"}])),
    )
    return entries, shown, rules


def deliver_all(
    entries: list[Entry], shown: dict[str, Shown], rules: Rules
) -> list[tuple[Entry, float]]:
    """Carry out plans as the driver would (every send succeeds), the clock moving on to
    what comes due next, until nothing more is sent."""
    waiting = {e.id: e for e in entries}
    now = NOW
    delivered: list[tuple[Entry, float]] = []
    for _ in range(50):
        decided = plan(list(waiting.values()), shown, now, rules)
        ids = [s.entry.id for s in decided.sends]
        assert len(ids) == len(set(ids))
        gone = {k.entry.id for k in decided.skips}
        assert not gone & set(ids)
        assert not {w.entry.id for w in decided.waits} & set(ids)
        for skip in decided.skips:
            del waiting[skip.entry.id]
        for hold in decided.holds:
            waiting[hold.entry.id] = replace(waiting[hold.entry.id], next_attempt_at=hold.until)
        merged = {m.entry.id: m.payload for m in decided.merges}
        check_rate_limits(decided.sends, rules)
        for send in decided.sends:
            e = replace(send.entry, payload=merged.get(send.entry.id, send.entry.payload))
            assert e.id in waiting, "sent twice"
            del waiting[e.id]
            delivered.append((e, send.after))
            orch = e.orchestration_id or ""
            s = shown.get(orch, Shown())
            if e.kind in CARD_KINDS:
                s = replace(s, card=s.card or Card("C0KYMA001", f"{orch}.1"), card_state=e.id)
            elif e.kind == "finished":
                s = replace(s, final=max(s.final, e.id))
            shown[orch] = s
        if not decided.sends:
            if decided.next_at is None:
                break
            now = decided.next_at
    return delivered


def check_rate_limits(sends: list[Any], rules: Rules) -> None:
    afters = [s.after for s in sends]
    assert afters == sorted(afters)
    by_channel: dict[str | None, list[float]] = {}
    updates = []
    for s in sends:
        if s.method in POST_METHODS:
            by_channel.setdefault(s.channel, []).append(s.after)
        elif s.method == "chat.update":
            updates.append(s.after)
    for times in by_channel.values():
        assert all(b - a >= rules.post_interval - 1e-9 for a, b in itertools.pairwise(times))
    for i, start in enumerate(updates):
        in_window = [t for t in updates[i:] if t < start + 60]
        assert len(in_window) <= rules.updates_per_minute


@settings(max_examples=150, deadline=None)
@given(outboxes())
def test_any_outbox_is_delivered_in_order_once_within_the_rate_limits(
    case: tuple[list[Entry], dict[str, Shown], Rules],
) -> None:
    entries, shown, rules = case
    initial = {orch: s.card_state for orch, s in shown.items()}
    finals = {orch: s.final for orch, s in shown.items()}
    delivered = deliver_all(entries, dict(shown), rules)
    ids = [e.id for e, _ in delivered]
    assert len(ids) == len(set(ids))  # no entry sent twice
    assert all(e.status == "pending" for e, _ in delivered)  # what waits for a fix stays
    for orch in ("o1", "o2", "o3"):
        card = [e.id for e, _ in delivered if e.orchestration_id == orch and e.kind == "progress"]
        # card updates never go back in time
        assert card == sorted(card), card
        assert all(i > initial[orch] for i in card), card
        replies = [
            e
            for e, _ in delivered
            if e.orchestration_id == orch and rules.in_thread(e) and e.kind != "tracking_started"
        ]
        # thread replies in event order, so a final is never followed by an older reply
        assert [e.id for e in replies] == sorted(e.id for e in replies)
        if "finished" not in rules.routes:
            assert all(e.id > finals[orch] or e.kind == "finished" for e in replies)
        stuck = [
            e.id
            for e in entries
            if e.orchestration_id == orch and rules.in_thread(e) and e.status == "failed"
        ]
        # nothing overtakes a reply that waits for a fix
        assert all(e.id < min(stuck) for e in replies) if stuck else True
