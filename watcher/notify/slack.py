"""Slack delivery through slack-sdk: the only module that imports it.

Two destinations. **Bot token**: one card per orchestration (``chat.postMessage``) kept
current with ``chat.update``, details as thread replies, the final summary as a reply with
``reply_broadcast``. **Incoming webhook**: posts only (a webhook can neither edit nor thread).

slack-sdk's own retry handlers are switched off: the sender decides about retries, so a 429
pauses exactly that method for its ``Retry-After`` and is never retried in a tight loop.
Every failure becomes a :class:`SlackFailure` that says whether retrying can help; tokens and
webhook URLs never appear in its message.
"""

from __future__ import annotations

import http.client
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.webhook import WebhookClient, WebhookResponse

from watcher.core.kinds import Kind
from watcher.errors import SlackFailure
from watcher.notify.blocks import Message
from watcher.redact import cut, remember, remember_url

EVENT_TYPE: Final = "keb_watcher_notification"
#: Slack error codes that a later attempt may not get.
TRANSIENT: Final = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
    }
)


@dataclass(frozen=True, slots=True)
class Posted:
    """Where a message is: the channel ID Slack returned and the message ``ts``."""

    channel: str
    ts: str
    answer: Mapping[str, Any]


#: What a selection's outbox rows carry where an orchestration's carry its ID
#: (:func:`watcher.core.fleet_policy.outbox_id`).
FLEET_PREFIX = "fleet:"


def metadata(kind: str, key: str, orchestration_id: str | None) -> dict[str, Any]:
    """The message metadata every post carries (docs/contract.md §5): duplicates are detectable and
    the card map can be rebuilt from the channel."""
    followed: dict[str, Any] = {"orchestration_id": orchestration_id or ""}
    if orchestration_id and orchestration_id.startswith(FLEET_PREFIX):
        # A selection of runtimes (fleet watch): named by ``fleet``, not an orchestration.
        followed = {"fleet": orchestration_id[len(FLEET_PREFIX) :]}
    return {"event_type": EVENT_TYPE, "event_payload": {**followed, "kind": kind, "key": key}}


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


class RedirectedAway(urllib.error.URLError):
    """Slack's base URL answered with a redirect to another origin: not followed."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


class _StayHome(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only within the origin of ``slack.base_url``: the bot token goes to
    no other host (urllib would send every header, ``Authorization`` included, along)."""

    def __init__(self, home: str) -> None:
        self.home = _origin(home)

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if _origin(newurl) != self.home:
            raise RedirectedAway(newurl.split("?")[0])
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _open_at_home(url: str, req: Any, ssl: Any, proxy: Any, timeout: int) -> tuple[int, Any, str]:
    """``req`` through an opener that follows redirects only within ``url``'s origin (both
    slack-sdk clients): ``(status, headers, body)``."""
    if not url.lower().startswith("http"):
        raise SlackRequestError(f"Invalid URL detected: {url}")
    handlers: list[Any] = [urllib.request.HTTPSHandler(context=ssl), _StayHome(url)]
    if isinstance(proxy, str):
        handlers.insert(0, urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
    resp = urllib.request.build_opener(*handlers).open(req, timeout=timeout)
    charset = resp.headers.get_content_charset() or "utf-8"
    return resp.status, resp.headers, resp.read().decode(charset)


class _HomeClient(WebClient):
    """slack-sdk's client, sending its requests through an opener that keeps the token home."""

    def _perform_urllib_http_request_internal(self, url: str, req: Any) -> dict[str, Any]:
        status, headers, body = _open_at_home(url, req, self.ssl, self.proxy, self.timeout)
        return {"status": status, "headers": headers, "body": body}


class _HomeWebhook(WebhookClient):
    """slack-sdk's webhook client, following a redirect only within the webhook URL's origin:
    whatever answers elsewhere is never counted as a delivery."""

    def _perform_http_request_internal(self, url: str, req: Any) -> WebhookResponse:
        status, headers, body = _open_at_home(url, req, self.ssl, self.proxy, self.timeout)
        return WebhookResponse(url=url, status_code=status, body=body, headers=headers)


def _failure(method: str, exc: Exception) -> SlackFailure:
    if isinstance(exc, RedirectedAway) and method == "webhook":
        return SlackFailure(
            method,
            f"redirected_elsewhere: the webhook URL redirected to {exc.target}, another host; "
            "not followed, nothing was sent there",
            transient=False,
        )
    if isinstance(exc, RedirectedAway):
        return SlackFailure(
            method,
            f"redirected_elsewhere: slack.base_url redirected to {exc.target}, another host; "
            "not followed, the token was not sent there",
            transient=False,
        )
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", None)
        data = getattr(response, "data", None)
        error = data.get("error") if isinstance(data, dict) else None
        if not error:
            error = f"HTTP {status}" if status else "unexpected answer"
        details = (
            data.get("response_metadata", {}).get("messages") if isinstance(data, dict) else None
        )
        text = f"{error} ({cut('; '.join(map(str, details)), 300)})" if details else str(error)
        transient = error in TRANSIENT or (status is not None and (status == 429 or status >= 500))
        return SlackFailure(
            method,
            text,
            transient=transient,
            retry_after=_retry_after(getattr(response, "headers", None)),
            status=status,
        )
    if isinstance(exc, urllib.error.HTTPError):
        return SlackFailure(
            method,
            f"HTTP {exc.code}",
            transient=exc.code >= 500 or exc.code == 429,
            retry_after=_retry_after(dict(exc.headers or {})),
            status=exc.code,
        )
    reason = getattr(exc, "reason", None) or exc
    return SlackFailure(method, f"cannot reach Slack: {reason}", transient=True)


_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
#: Everything a broken connection can raise inside slack-sdk's urllib transport.
_NETWORK = (
    urllib.error.URLError,
    socket.timeout,
    TimeoutError,
    ConnectionError,
    http.client.HTTPException,
    SlackRequestError,
    OSError,
)


class Destination(Protocol):
    """Where notifications go. ``threads`` and ``edits`` say what the destination can do."""

    threads: bool
    edits: bool

    def post(
        self,
        channel: str | None,
        message: Message,
        meta: dict[str, Any],
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
    ) -> Posted: ...

    def update(self, channel: str, ts: str, message: Message, meta: dict[str, Any]) -> Posted: ...

    def find(
        self, channel: str | None, key: str, *, thread_ts: str | None = None
    ) -> Posted | None: ...

    def find_card(self, channel: str | None, orchestration_id: str) -> Posted | None: ...

    def probe(self) -> None:
        """A call that posts nothing, to tell whether Slack answers (raises SlackFailure)."""


#: The scopes the bot token needs, and what for (deploy/slack-app-manifest.yaml lists them).
SCOPES: Final[Mapping[str, str]] = {
    "chat:write": "chat.postMessage and chat.update: the card, its edits and thread replies",
    "channels:read": "conversations.list and conversations.info: a channel name to its ID",
    "groups:read": "the same for private channels",
    "channels:history": "conversations.history and replies: find a post made before a crash",
    "groups:history": "the same for private channels",
}


class BotSlack:
    """A bot token: cards, edits and threads."""

    threads = True
    edits = True

    def __init__(
        self, token: str, base_url: str, *, timeout: int = 15, history_limit: int = 200
    ) -> None:
        remember(token)
        self.client = _HomeClient(
            token=token, base_url=base_url, timeout=timeout, retry_handlers=[]
        )
        self.history_limit = history_limit
        self._ids: dict[str, str] = {}

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call a Web API method by its Slack name (``chat.postMessage``)."""
        function = getattr(self.client, method.replace(".", "_"))
        try:
            response = function(**kwargs)
        except SlackApiError as exc:
            raise _failure(method, exc) from None
        except _NETWORK as exc:
            raise _failure(method, exc) from None
        data = response.data
        return data if isinstance(data, dict) else {}

    def post(
        self,
        channel: str | None,
        message: Message,
        meta: dict[str, Any],
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
    ) -> Posted:
        args: dict[str, Any] = {
            "channel": channel,
            "text": message.text,
            "blocks": message.blocks,
            "metadata": meta,
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if thread_ts:
            args["thread_ts"] = thread_ts
            if broadcast:
                args["reply_broadcast"] = True
        answer = self._call("chat.postMessage", **args)
        return Posted(str(answer.get("channel", channel)), str(answer.get("ts", "")), answer)

    def update(self, channel: str, ts: str, message: Message, meta: dict[str, Any]) -> Posted:
        answer = self._call(
            "chat.update",
            channel=channel,
            ts=ts,
            text=message.text,
            blocks=message.blocks,
            metadata=meta,
        )
        return Posted(str(answer.get("channel", channel)), str(answer.get("ts", ts)), answer)

    def channel_id(self, channel: str) -> str:
        """The ID of a channel given by name (reads need IDs: conversations.history/info).

        Names are looked up once with ``conversations.list`` and remembered."""
        if _CHANNEL_ID.match(channel):
            return channel
        name = channel.lstrip("#")
        if name not in self._ids:
            cursor = None
            while True:
                data = self._call(
                    "conversations.list",
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=1000,
                    cursor=cursor,
                )
                for item in data.get("channels", []):
                    if isinstance(item, dict) and item.get("name"):
                        self._ids[str(item["name"])] = str(item.get("id"))
                cursor = (data.get("response_metadata") or {}).get("next_cursor")
                if not cursor or name in self._ids:
                    break
        if name not in self._ids:
            raise SlackFailure(
                "conversations.list", f"channel_not_found ({channel})", transient=False
            )
        return self._ids[name]

    def _messages(self, channel: str, thread_ts: str | None) -> list[dict[str, Any]]:
        channel = self.channel_id(channel)
        if thread_ts:
            data = self._call(
                "conversations.replies",
                channel=channel,
                ts=thread_ts,
                include_all_metadata=True,
                limit=self.history_limit,
            )
        else:
            data = self._call(
                "conversations.history",
                channel=channel,
                include_all_metadata=True,
                limit=self.history_limit,
            )
        messages = data.get("messages", [])
        return [m for m in messages if isinstance(m, dict)]

    def _payload(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        meta = message.get("metadata")
        if isinstance(meta, dict) and meta.get("event_type") == EVENT_TYPE:
            payload = meta.get("event_payload")
            if isinstance(payload, dict):
                return payload
        return {}

    def find(self, channel: str | None, key: str, *, thread_ts: str | None = None) -> Posted | None:
        """A message this watcher posted with this key (a post that succeeded before a crash)."""
        if not channel:
            return None
        for message in self._messages(channel, thread_ts):
            if self._payload(message).get("key") == key:
                return Posted(self.channel_id(channel), str(message.get("ts", "")), message)
        return None

    def find_card(self, channel: str | None, orchestration_id: str) -> Posted | None:
        """The card of an orchestration, from the channel itself (when the database was lost)."""
        if not channel:
            return None
        for message in self._messages(channel, None):
            payload = self._payload(message)
            if (
                payload.get("orchestration_id") == orchestration_id
                and payload.get("kind") == Kind.TRACKING_STARTED
            ):
                return Posted(self.channel_id(channel), str(message.get("ts", "")), message)
        return None

    def auth_test(self) -> dict[str, Any]:
        return self._call("auth.test")

    def granted_scopes(self) -> frozenset[str] | None:
        """The token's scopes, from the ``x-oauth-scopes`` header Slack sends with every Web API
        answer (``auth.test`` here); None when the answer has no such header (a proxy)."""
        try:
            response = self.client.auth_test()
        except (SlackApiError, *_NETWORK) as exc:
            raise _failure("auth.test", exc) from None
        headers = {str(k).lower(): v for k, v in (response.headers or {}).items()}
        raw = headers.get("x-oauth-scopes")
        if isinstance(raw, list):
            raw = ",".join(raw)
        if raw is None:
            return None
        return frozenset(s.strip() for s in str(raw).split(",") if s.strip())

    def probe(self) -> None:
        self.auth_test()

    def channel_info(self, channel: str) -> dict[str, Any]:
        return self._call("conversations.info", channel=self.channel_id(channel))


class WebhookSlack:
    """An incoming webhook: milestone posts only (it can neither edit nor thread)."""

    threads = False
    edits = False

    def __init__(self, url: str, *, timeout: int = 15) -> None:
        remember_url(url)
        self.client = _HomeWebhook(url, timeout=timeout, retry_handlers=[])  # ours retry

    def post(
        self,
        channel: str | None,
        message: Message,
        meta: dict[str, Any],
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
    ) -> Posted:
        try:
            response = self.client.send(text=message.text, blocks=message.blocks, metadata=meta)
        except _NETWORK as exc:
            raise _failure("webhook", exc) from None
        if response.status_code != 200:
            error = (response.body or f"HTTP {response.status_code}").strip()
            transient = response.status_code == 429 or response.status_code >= 500
            raise SlackFailure(
                "webhook",
                error,
                transient=transient,
                retry_after=_retry_after(response.headers),
                status=response.status_code,
            )
        return Posted("webhook", "", {"ok": True, "body": response.body})

    def update(self, channel: str, ts: str, message: Message, meta: dict[str, Any]) -> Posted:
        raise SlackFailure("webhook", "a webhook cannot edit messages", transient=False)

    def find(self, channel: str | None, key: str, *, thread_ts: str | None = None) -> Posted | None:
        return None

    def find_card(self, channel: str | None, orchestration_id: str) -> Posted | None:
        return None

    def probe(self) -> None:
        """A webhook cannot be asked without posting: the next notification is the probe."""
