"""The fake Slack, driven over real HTTP by slack-sdk's own clients (no client-side retries)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tests.fakeslack import FakeSlack

TOKEN = "xoxb-test-token"
CHANNELS = {"#kyma-upgrades": "C0KYMA001", "#other": "C0OTHER02"}
KYMA, OTHER = "C0KYMA001", "C0OTHER02"
META = {"event_type": "keb_watcher_notification", "event_payload": {"orchestration_id": "o-1"}}

Factory = Callable[..., FakeSlack]


@pytest.fixture
def start() -> Iterator[Factory]:
    started: list[FakeSlack] = []

    def make(**options: Any) -> FakeSlack:
        defaults: dict[str, Any] = {"token": TOKEN, "channels": CHANNELS, "post_interval": 0.0}
        slack = FakeSlack(**(defaults | options)).start()
        started.append(slack)
        return slack

    yield make
    for slack in started:
        slack.stop()


@pytest.fixture
def slack(start: Factory) -> FakeSlack:
    return start()


def client(slack: FakeSlack, token: str | None = TOKEN) -> WebClient:
    return WebClient(token=token, base_url=slack.api_url, retry_handlers=[])


def error_of(call: Callable[[], Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def test_post_reply_broadcast_update_and_history_round_trip(slack: FakeSlack) -> None:
    web = client(slack)
    parent = web.chat_postMessage(
        channel="#kyma-upgrades", text="card", blocks=[section("*card*")], metadata=META
    )
    assert parent["channel"] == KYMA
    assert parent["message"]["metadata"] == META
    reply = web.chat_postMessage(channel=KYMA, text="detail", thread_ts=parent["ts"], metadata=META)
    final = web.chat_postMessage(
        channel=KYMA, text="done", thread_ts=parent["ts"], reply_broadcast=True, metadata=META
    )
    assert final["message"]["subtype"] == "thread_broadcast"
    updated = web.chat_update(channel=KYMA, ts=parent["ts"], text="card v2", blocks=[section("v2")])
    assert (updated["ts"], updated["text"]) == (parent["ts"], "card v2")

    history = web.conversations_history(channel=KYMA, include_all_metadata=True)
    assert [m["ts"] for m in history["messages"]] == [final["ts"], parent["ts"]]  # no plain reply
    card = history["messages"][1]
    assert (card["metadata"], card["reply_count"]) == (META, 2)
    assert (card["text"], card["blocks"]) == ("card v2", [section("v2")])
    assert card["edited"]["user"] == "U0BOT"
    assert "metadata" not in web.conversations_history(channel=KYMA)["messages"][0]

    stored = slack.messages("#kyma-upgrades")
    assert [m.ts for m in stored] == [parent["ts"], reply["ts"], final["ts"]]
    assert (stored[0].edits, stored[0].text) == (1, "card v2")
    assert (stored[1].thread_ts, stored[1].reply_broadcast) == (parent["ts"], False)
    assert (stored[2].reply_broadcast, stored[2].metadata) == (True, META)
    assert slack.message(KYMA, reply["ts"]).text == "detail"


def test_update_keeps_omitted_blocks_and_metadata_and_clears_empty_ones(slack: FakeSlack) -> None:
    web = client(slack)
    ts = web.chat_postMessage(channel=KYMA, text="a", blocks=[section("a")], metadata=META)["ts"]
    web.chat_update(channel=KYMA, ts=ts, text="b")
    kept = slack.message(KYMA, ts)
    assert (kept.text, kept.blocks, kept.metadata) == ("b", [section("a")], META)
    web.chat_update(channel=KYMA, ts=ts, text="c", blocks=[], metadata={})
    cleared = slack.message(KYMA, ts)
    assert (cleared.blocks, cleared.metadata, cleared.edits) == (None, None, 2)


@pytest.mark.parametrize("channel", ["#kyma-upgrades", "kyma-upgrades", KYMA])
def test_post_takes_a_channel_by_name_or_id(slack: FakeSlack, channel: str) -> None:
    assert client(slack).chat_postMessage(channel=channel, text="x")["channel"] == KYMA
    assert (len(slack.messages(KYMA)), slack.messages("#other")) == (1, [])


def test_unknown_channels_and_names_where_slack_wants_ids(slack: FakeSlack) -> None:
    web = client(slack)
    ts = web.chat_postMessage(channel=KYMA, text="x")["ts"]
    calls: list[Callable[[], Any]] = [
        lambda: web.chat_postMessage(channel="#nope", text="x"),
        lambda: web.chat_update(channel="#kyma-upgrades", ts=ts, text="y"),
        lambda: web.conversations_history(channel="#kyma-upgrades"),
        lambda: web.conversations_info(channel="C0NOPE000"),
    ]
    for call in calls:
        assert error_of(call).response["error"] == "channel_not_found"
    assert web.conversations_info(channel=OTHER)["channel"] == {
        "id": OTHER,
        "name": "other",
        "is_channel": True,
        "is_archived": False,
        "is_member": True,
    }


def test_unknown_message_and_thread(slack: FakeSlack) -> None:
    web = client(slack)
    missing = error_of(lambda: web.chat_update(channel=KYMA, ts="1.000001", text="x"))
    assert missing.response["error"] == "message_not_found"
    ts = web.chat_postMessage(channel=OTHER, text="in other")["ts"]
    orphan = error_of(lambda: web.chat_postMessage(channel=KYMA, text="x", thread_ts=ts))
    assert orphan.response["error"] == "thread_not_found"


def _text(kind: str, text: str) -> dict[str, str]:
    return {"type": kind, "text": text}


def _limit_cases(over: int) -> list[Any]:
    """Block lists at (over=0) and one past (over=1) each limit of docs/contract.md."""
    return [
        [{"type": "divider"}] * (50 + over),
        [section("s" * (3000 + over))],
        [{"type": "header", "text": _text("plain_text", "h" * (150 + over))}],
        [{"type": "section", "fields": [_text("mrkdwn", "f")] * (10 + over)}],
        [{"type": "section", "fields": [_text("mrkdwn", "f" * (2000 + over))]}],
        [{"type": "context", "elements": [_text("mrkdwn", "c")] * (10 + over)}],
    ]


@pytest.mark.parametrize("blocks", _limit_cases(0))
def test_block_kit_limits_themselves_are_accepted(slack: FakeSlack, blocks: list[Any]) -> None:
    assert client(slack).chat_postMessage(channel=KYMA, text="t", blocks=blocks)["ok"]


INVALID_BLOCKS = [
    *_limit_cases(1),
    [{"type": "header", "text": _text("mrkdwn", "not plain")}],
    [{"type": "carousel"}],
    [{"type": "header"}],
    [{"type": "section"}],
    [{"type": "context", "elements": []}],
    [section("")],
]


@pytest.mark.parametrize("blocks", INVALID_BLOCKS)
def test_block_kit_violations_are_invalid_blocks(slack: FakeSlack, blocks: list[Any]) -> None:
    web = client(slack)
    ts = web.chat_postMessage(channel=KYMA, text="ok")["ts"]
    for call in (
        lambda: web.chat_postMessage(channel=KYMA, text="t", blocks=blocks),
        lambda: web.chat_update(channel=KYMA, ts=ts, text="t", blocks=blocks),
    ):
        answer = error_of(call).response
        assert answer["error"] == "invalid_blocks"
        assert answer["response_metadata"]["messages"][0].startswith("[ERROR] ")
        assert "[json-pointer:/blocks" in answer["response_metadata"]["messages"][0]
    assert [m.text for m in slack.messages(KYMA)] == ["ok"]


def test_blocks_and_metadata_as_form_encoded_json_strings(slack: FakeSlack) -> None:
    web = client(slack)
    params = {"channel": KYMA, "text": "t", "blocks": json.dumps([section("form")])}
    answer = web.api_call("chat.postMessage", params=params | {"metadata": json.dumps(META)})
    stored = slack.message(KYMA, answer["ts"])
    assert (stored.blocks, stored.metadata) == ([section("form")], META)
    bad = error_of(lambda: web.api_call("chat.postMessage", params=params | {"blocks": "[{"}))
    assert bad.response["error"] == "invalid_blocks_format"


def test_query_string_and_get_are_accepted_like_slack(slack: FakeSlack) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    got = httpx.get(f"{slack.api_url}conversations.info?channel={KYMA}", headers=auth).json()
    assert got["channel"]["id"] == KYMA
    form = httpx.post(f"{slack.api_url}auth.test", data={"token": TOKEN}).json()
    assert form["user_id"] == "U0BOT"
    # Slack reads no token from a JSON body: only the header authenticates JSON requests.
    json_token = httpx.post(f"{slack.api_url}auth.test", json={"token": TOKEN}).json()
    assert json_token == {"ok": False, "error": "not_authed"}
    broken = httpx.post(
        f"{slack.api_url}auth.test",
        content=b"{",
        headers=auth | {"Content-Type": "application/json"},
    )
    assert broken.json()["error"] == "invalid_json"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
def test_text_limits(slack: FakeSlack) -> None:
    web = client(slack)
    assert web.chat_postMessage(channel=KYMA, text="x" * 4000)["ok"]
    too_long = error_of(lambda: web.chat_postMessage(channel=KYMA, text="x" * 4001))
    assert too_long.response["error"] == "msg_too_long"
    assert error_of(lambda: web.chat_postMessage(channel=KYMA)).response["error"] == "no_text"
    assert web.chat_postMessage(channel=KYMA, blocks=[section("only blocks")])["ok"]


def test_metadata_format_error_and_schema_warning(slack: FakeSlack) -> None:
    web = client(slack)
    form = {"channel": KYMA, "text": "t", "metadata": "{nope"}  # a form body sends a JSON string
    bad = error_of(lambda: web.api_call("chat.postMessage", params=form))
    assert bad.response["error"] == "invalid_metadata_format"
    dropped = web.chat_postMessage(
        channel=KYMA, text="t", metadata={"event_type": "has.dot", "event_payload": {}}
    )
    assert dropped["warning"] == "invalid_metadata_schema"
    assert "metadata" not in dropped["message"]
    assert slack.message(KYMA, dropped["ts"]).metadata is None


def test_auth(slack: FakeSlack) -> None:
    assert client(slack).auth_test().data == {
        "ok": True,
        "url": "https://fake.slack.com/",
        "team": "Fake",
        "user": "keb-watcher",
        "team_id": "T000",
        "user_id": "U0BOT",
        "bot_id": "B0BOT",
    }
    wrong = error_of(lambda: client(slack, "xoxb-wrong").chat_postMessage(channel=KYMA, text="x"))
    assert (wrong.response.status_code, wrong.response["error"]) == (200, "invalid_auth")
    missing = error_of(lambda: client(slack, None).auth_test())
    assert missing.response["error"] == "not_authed"
    assert slack.messages(KYMA) == []
    assert "token" not in slack.calls[-1].args


def test_unknown_method(slack: FakeSlack) -> None:
    answer = error_of(lambda: client(slack).api_call("chat.nope")).response
    assert (answer.status_code, answer["error"]) == (200, "unknown_method")


def test_post_interval_is_per_channel(start: Factory) -> None:
    slack = start(post_interval=0.2, retry_after=1)
    web = client(slack)
    web.chat_postMessage(channel=KYMA, text="1")
    limited = error_of(lambda: web.chat_postMessage(channel=KYMA, text="2"))
    assert limited.response.status_code == 429
    assert limited.response["error"] == "ratelimited"
    assert limited.response.headers["Retry-After"] == "1"
    assert web.chat_postMessage(channel=OTHER, text="elsewhere")["ok"]
    assert [m.text for m in slack.messages(KYMA)] == ["1"]
    assert (slack.calls[1].retry_after, slack.calls[1].channel) == (1, KYMA)
    assert slack.violations == []


def test_update_budget_is_workspace_wide(start: Factory) -> None:
    slack = start(update_per_minute=3)
    web = client(slack)
    one = web.chat_postMessage(channel=KYMA, text="a")["ts"]
    two = web.chat_postMessage(channel=OTHER, text="b")["ts"]
    for n, (channel, ts) in enumerate([(KYMA, one), (OTHER, two), (KYMA, one)]):
        web.chat_update(channel=channel, ts=ts, text=f"v{n}")
    limited = error_of(lambda: web.chat_update(channel=OTHER, ts=two, text="v4"))
    assert (limited.response.status_code, limited.response.headers["Retry-After"]) == (429, "1")
    assert slack.message(OTHER, two).edits == 1
    assert web.chat_postMessage(channel=KYMA, text="posts are not in the update budget")["ok"]
    slack.reset_rate_limits()
    assert web.chat_update(channel=OTHER, ts=two, text="v5")["ok"]


def test_a_request_inside_retry_after_is_a_violation(start: Factory) -> None:
    slack = start(post_interval=0.2, retry_after=1)
    web = client(slack)
    web.chat_postMessage(channel=KYMA, text="1")
    error_of(lambda: web.chat_postMessage(channel=KYMA, text="too soon"))
    time.sleep(0.3)  # the bucket has refilled, but Retry-After has not expired
    ignored = error_of(lambda: web.chat_postMessage(channel=KYMA, text="ignores Retry-After"))
    assert ignored.response.status_code == 429
    assert ignored.response.headers["Retry-After"] == "1"  # what is left of the window, rounded up
    assert web.chat_postMessage(channel=OTHER, text="other channel, other key")["ok"]
    assert [(v.method, v.channel, v.args["text"]) for v in slack.violations] == [
        ("chat.postMessage", KYMA, "ignores Retry-After")
    ]
    time.sleep(0.8)
    assert web.chat_postMessage(channel=KYMA, text="after the window")["ok"]
    assert len(slack.violations) == 1


def test_fail_next_server_error_then_recovers(slack: FakeSlack) -> None:
    web = client(slack)
    slack.fail_next("chat.postMessage", status=500)
    failed = error_of(lambda: web.chat_postMessage(channel=KYMA, text="x"))
    assert failed.response.status_code == 500
    assert "Internal Server Error" in failed.response["error"]
    assert web.chat_postMessage(channel=KYMA, text="x")["ok"]
    assert [(c.status, c.ok) for c in slack.calls] == [(500, False), (200, True)]
    assert len(slack.messages(KYMA)) == 1


def test_fail_next_api_error_and_count(slack: FakeSlack) -> None:
    web = client(slack)
    slack.fail_next("auth.test", error="invalid_auth", count=2)
    for _ in range(2):
        failed = error_of(web.auth_test)
        assert (failed.response.status_code, failed.response["error"]) == (200, "invalid_auth")
    assert web.auth_test()["ok"]
    assert web.chat_postMessage(channel=KYMA, text="other methods are untouched")["ok"]


def test_fail_next_ratelimited_opens_a_window(slack: FakeSlack) -> None:
    web = client(slack)
    slack.fail_next("chat.update")
    limited = error_of(lambda: web.chat_update(channel=KYMA, ts="1.0", text="x"))
    assert (limited.response.status_code, limited.response.headers["Retry-After"]) == (429, "1")
    error_of(lambda: web.chat_update(channel=KYMA, ts="1.0", text="x"))
    assert len(slack.violations) == 1


def hook(slack: FakeSlack, url: str | None = None) -> WebhookClient:
    return WebhookClient(url or slack.webhook_url, retry_handlers=[])


def test_webhook_posts_to_its_channel(slack: FakeSlack) -> None:
    answer = hook(slack).send(text="milestone", blocks=[section("m")], metadata=META)
    assert (answer.status_code, answer.body) == (200, "ok")
    [message] = slack.messages(KYMA)
    assert (message.text, message.blocks, message.metadata) == ("milestone", [section("m")], META)
    assert (slack.calls[-1].method, slack.calls[-1].ok) == ("webhook", True)


def test_webhook_errors(slack: FakeSlack) -> None:
    assert (hook(slack).send().status_code, hook(slack).send().body) == (400, "no_text")
    invalid = hook(slack).send(text="t", blocks=[{"type": "carousel"}])
    assert (invalid.status_code, invalid.body) == (400, "invalid_blocks")
    lost = hook(slack, slack.webhook_url.replace("XXXX", "YYYY")).send(text="t")
    assert (lost.status_code, lost.body) == (404, "no_service")
    form = httpx.post(slack.webhook_url, data={"payload": json.dumps({"text": "as form"})})
    assert (form.status_code, form.text) == (200, "ok")
    garbage = httpx.post(slack.webhook_url, content=b"not json", headers={"Content-Type": "text"})
    assert (garbage.status_code, garbage.text) == (400, "invalid_payload")
    slack.fail_next("webhook", status=503)
    assert hook(slack).send(text="t").status_code == 503
    assert [m.text for m in slack.messages(KYMA)] == ["as form"]


def test_webhook_rate_limit_and_violation(start: Factory) -> None:
    slack = start(post_interval=0.2, retry_after=1)
    assert hook(slack).send(text="1").status_code == 200
    limited = hook(slack).send(text="2")
    assert (limited.status_code, limited.body) == (429, "rate_limited")
    assert limited.headers["Retry-After"] == "1"
    hook(slack).send(text="3")
    assert [v.args["text"] for v in slack.violations] == ["3"]


def test_history_pagination(slack: FakeSlack) -> None:
    web = client(slack)
    posted = [web.chat_postMessage(channel=KYMA, text=str(n))["ts"] for n in range(5)]
    web.chat_postMessage(channel=KYMA, text="hidden reply", thread_ts=posted[0])
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = web.conversations_history(channel=KYMA, limit=2, cursor=cursor)
        pages.append([m["text"] for m in page["messages"]])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        assert page["has_more"] is bool(cursor)
        if not cursor:
            break
    assert pages == [["4", "3"], ["2", "1"], ["0"]]
    iterated = web.conversations_history(channel=KYMA, limit=2)  # slack-sdk's own paging
    assert [[m["text"] for m in page["messages"]] for page in iterated] == pages
    window = web.conversations_history(channel=KYMA, oldest=posted[1], latest=posted[4])
    assert [m["text"] for m in window["messages"]] == ["3", "2"]
    bad = error_of(lambda: web.conversations_history(channel=KYMA, cursor="garbage!"))
    assert bad.response["error"] == "invalid_cursor"


def test_concurrent_posts_get_unique_increasing_ts(slack: FakeSlack) -> None:
    web = client(slack)
    threads = [
        threading.Thread(target=web.chat_postMessage, kwargs={"channel": KYMA, "text": str(n)})
        for n in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps = [m.ts for m in slack.messages(KYMA)]
    assert stamps == sorted(set(stamps))
    assert len(stamps) == 20
    assert len(slack.calls) == 20


def test_snapshots_are_copies(slack: FakeSlack) -> None:
    client(slack).chat_postMessage(channel=KYMA, text="x", metadata=META)
    slack.messages(KYMA)[0].metadata["event_type"] = "changed"  # type: ignore[index]
    slack.calls.clear()
    assert slack.messages(KYMA)[0].metadata == META
    assert len(slack.calls) == 1
