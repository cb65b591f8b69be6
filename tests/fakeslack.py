"""A fake Slack Web API and incoming webhook, served over real HTTP on 127.0.0.1.

It answers like Slack (docs.slack.dev: method pages, "Web API basics", "Rate limits"): API errors
are HTTP 200 ``{"ok": false, "error": CODE}``; rate limits are HTTP 429 with ``Retry-After`` and
``{"ok": false, "error": "ratelimited"}``; every method takes a JSON body (token only in the
``Authorization: Bearer`` header), a form body or a query string, by GET or POST. The incoming
webhook answers plain text (``ok``, ``invalid_payload``, ``no_text``, ``rate_limited``...).

Where docs/contract.md §5 is stricter than Slack, the fake follows the contract:
``text`` over 4,000 characters is ``msg_too_long`` (Slack truncates at 40,000), and
``chat.update``, ``conversations.history`` and ``conversations.info`` take channel IDs only
(names answer ``channel_not_found``); ``chat.postMessage`` also takes ``#name`` or ``name``.

Rate limits: chat.postMessage and webhook posts share one bucket of size 1 per channel ("one
message per second per channel"), drained only by a message actually posted; chat.update counts
every authenticated call against a workspace-wide rolling minute (Tier 3). A 429 opens a
Retry-After window for its key, (method, channel) for posts and (method, None) for chat.update;
a request for a key whose window is open is a violation and gets another 429.

Message metadata ("Using message metadata"): a value that is not a JSON object is
``invalid_metadata_format``; a bad ``event_type`` or ``event_payload`` is not an error: Slack
posts the message without the metadata and warns ``invalid_metadata_schema``. So does the fake.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

TEAM_ID, BOT_USER_ID, BOT_ID = "T000", "U0BOT", "B0BOT"
WEBHOOK_PATH = "/services/T000/B000/XXXX"
MAX_TEXT = 4000  # docs/contract.md §5; Slack itself truncates at 40,000.
HISTORY_MAX_LIMIT = 999  # conversations.history: "Maximum of 999."
RATELIMITED = {"ok": False, "error": "ratelimited"}
#: The scopes a token of the fake has, unless a test sets ``FakeSlack.scopes``.
SCOPES = ("chat:write", "channels:read", "groups:read", "channels:history", "groups:history")
# Block types Slack accepts in messages, and the keys each one requires.
_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "section": (),  # text or fields
    "divider": (),
    "header": ("text",),
    "context": ("elements",),
    "actions": ("elements",),
    "rich_text": ("elements",),
    "image": ("alt_text",),
    "markdown": ("text",),
    "input": ("label", "element"),
    "file": ("external_id", "source"),
    "video": ("alt_text", "title", "thumbnail_url", "video_url"),
}
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_-]+")  # "letters, numbers, underscores, and hyphens"
# Incoming-webhook error statuses (docs.slack.dev, "Sending messages using incoming webhooks");
# the other error bodies are 400.
_WEBHOOK_STATUS = {"invalid_token": 403, "no_service": 404, "channel_not_found": 404}
_WEBHOOK_STATUS |= {"channel_is_archived": 410, "rate_limited": 429, "ratelimited": 429}

Reply = tuple[int, dict[str, str], bytes]
Key = tuple[str, str | None]


@dataclass(frozen=True)
class Call:
    """One request as the fake answered it. ``at`` is ``time.monotonic()`` on arrival."""

    method: str  # "chat.postMessage", ..., or "webhook"
    at: float
    status: int
    ok: bool
    error: str | None  # the error code, or the webhook's plain-text answer
    channel: str | None  # the channel ID when the argument resolves, else the argument
    args: dict[str, Any]  # as received (JSON values or form strings), without the token
    retry_after: int | None


@dataclass
class Message:
    """A stored message. ``thread_ts`` is set on replies only, as Slack stores them."""

    ts: str
    channel: str
    text: str
    blocks: list[Any] | None
    thread_ts: str | None
    reply_broadcast: bool
    metadata: dict[str, Any] | None
    edits: int = 0
    user: str = BOT_USER_ID
    edited_ts: str | None = None


class SlackError(Exception):
    """An API error answer: ``{"ok": false, "error": error, **extra}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error, self.extra = error, extra

    def reply(self) -> Reply:
        return _answer(200, {"ok": False, "error": self.error, **self.extra})


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _micros(ts: Any, error: str) -> int:
    """``"1700000000.000100"`` -> 1700000000000100; Slack timestamps are microsecond strings."""
    seconds, _, frac = str(ts).partition(".")
    if not seconds.isdigit() or not (frac.isdigit() or not frac):
        raise SlackError(error)
    return int(seconds) * 1_000_000 + int(frac.ljust(6, "0")[:6])


def _json_arg(value: Any, error: str) -> Any:
    """Form bodies carry blocks and metadata as JSON strings, JSON bodies as values."""
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        raise SlackError(error) from None


def _parse(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if not content_type.startswith("application/json"):
        return args | dict(parse_qsl(body.decode(), keep_blank_values=True))
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        raise SlackError("invalid_json") from None
    if not isinstance(parsed, dict):
        raise SlackError("json_not_object")
    return args | {key: value for key, value in parsed.items() if key != "token"}


def _answer(status: int, body: dict[str, Any] | str, retry_after: int | None = None) -> Reply:
    kind = "text/plain" if isinstance(body, str) else "application/json"
    headers = {"Content-Type": f"{kind}; charset=utf-8"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return status, headers, (body if isinstance(body, str) else json.dumps(body)).encode()


def _warned(answer: dict[str, Any], warning: str | None) -> dict[str, Any]:
    """Slack reports warnings twice: ``warning`` and ``response_metadata.warnings``."""
    if warning is None:
        return answer
    return answer | {"warning": warning, "response_metadata": {"warnings": [warning]}}


def _text_problems(obj: Any, at: str, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"must provide an object with type plain_text or mrkdwn [json-pointer:{at}]"]
    if plain_only and obj["type"] != "plain_text":
        return [f"must be a valid enum value [json-pointer:{at}/type]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be more than 0 characters [json-pointer:{at}/text]"]
    if len(text) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{at}/text]"]
    return []


def _items(block: dict[str, Any], key: str, at: str, most: int) -> tuple[list[Any], list[str]]:
    items = block[key]
    if not isinstance(items, list) or not items:
        return [], [f"must provide an array with at least 1 item [json-pointer:{at}/{key}]"]
    if len(items) > most:
        return items, [f"no more than {most} items allowed [json-pointer:{at}/{key}]"]
    return items, []


def block_problems(blocks: Any) -> list[str]:
    """The Block Kit limits of docs/contract.md §5, worded like Slack's errors."""
    if not isinstance(blocks, list):
        return ["must provide an array [json-pointer:/blocks]"]
    problems = ["no more than 50 items allowed [json-pointer:/blocks]"] if len(blocks) > 50 else []
    for i, block in enumerate(blocks):
        at = f"/blocks/{i}"
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(block, dict) or kind not in _REQUIRED_KEYS:
            problems.append(f"unsupported type: {kind} [json-pointer:{at}/type]")
            continue
        missing = [key for key in _REQUIRED_KEYS[kind] if key not in block]
        if kind == "section" and "text" not in block and "fields" not in block:
            missing.append("text")
        problems += [f"missing required field: {key} [json-pointer:{at}]" for key in missing]
        if missing:
            continue
        if kind == "section" and "text" in block:
            problems += _text_problems(block["text"], f"{at}/text", 3000)
        if kind == "section" and "fields" in block:
            fields, found = _items(block, "fields", at, 10)
            problems += found
            for j, item in enumerate(fields):
                problems += _text_problems(item, f"{at}/fields/{j}", 2000)
        elif kind == "header":
            problems += _text_problems(block["text"], f"{at}/text", 150, plain_only=True)
        elif kind == "context":
            problems += _items(block, "elements", at, 10)[1]
    return problems


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 overflows under concurrent clients: 1 s SYN retries
    fake: FakeSlack


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, payload = self.server.fake.dispatch(
            self.path, self.headers.get("Content-Type", ""), self.headers.get("Authorization"), body
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the record is ``FakeSlack.calls``."""


class FakeSlack:
    """A Slack workspace with one bot user, some channels and one incoming webhook.

    >>> with FakeSlack(channels={"#kyma-upgrades": "C0KYMA001"}, post_interval=0.2) as slack:
    ...     client = WebClient(token=slack.token, base_url=slack.api_url, retry_handlers=[])
    ...     client.chat_postMessage(channel="#kyma-upgrades", text="hi")["ts"]  # doctest: +SKIP

    The webhook posts to ``webhook_channel`` (a name or ID; default: the first channel).
    """

    def __init__(
        self,
        token: str = "xoxb-test-token",
        channels: dict[str, str] | None = None,
        post_interval: float = 1.0,
        update_per_minute: int = 50,
        retry_after: int = 1,
        webhook_channel: str | None = None,
    ) -> None:
        self.token, self.post_interval = token, post_interval
        self.update_per_minute, self.retry_after = update_per_minute, retry_after
        named = channels if channels is not None else {"#kyma-upgrades": "C0KYMA001"}
        self._names = {name.lstrip("#"): cid for name, cid in named.items()}
        self._ids = {cid: name for name, cid in self._names.items()}
        webhook = self._resolve(webhook_channel or next(iter(self._ids), None))
        if webhook is None:
            raise ValueError(f"webhook_channel {webhook_channel!r} is not one of {named}")
        self._webhook_channel: str = webhook
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._violations: list[Call] = []
        self._messages: dict[str, list[Message]] = {cid: [] for cid in self._ids}
        self._failures: dict[str, deque[tuple[str, int | None, dict[str, Any] | None]]] = {}
        self._outage = 0
        self._outside: set[str] = set()  # channels the bot is not a member of
        self.scopes = ",".join(SCOPES)
        self._last_ts, self._now, self._inside_window = 0, 0.0, False
        self._last_post: dict[str, float] = {}
        self._updates: deque[float] = deque()
        self._windows: dict[Key, float] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.history": self._history,
            "conversations.info": self._info,
            "conversations.list": self._list,
            "conversations.replies": self._replies,
        }

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        """Serve on a free port of 127.0.0.1 from a daemon thread."""
        server = self._server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        # A short poll interval keeps stop(), and so every test using the fake, fast.
        self._thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started; call start() or use it in a with block")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        """slack-sdk's ``base_url``: ``http://127.0.0.1:PORT/api/``."""
        return f"{self.base_url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}{WEBHOOK_PATH}"

    # -- what tests read and steer ------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    @property
    def violations(self) -> list[Call]:
        """Requests that arrived while a 429's Retry-After for their key had not expired."""
        with self._lock:
            return list(self._violations)

    def messages(self, channel: str) -> list[Message]:
        """Copies of a channel's messages (ID or name), oldest first, replies included."""
        cid = self._resolve(channel)
        if cid is None:
            raise KeyError(f"unknown channel {channel!r}; known: {sorted(self._names)}")
        with self._lock:
            return copy.deepcopy(self._messages[cid])

    def message(self, channel: str, ts: str) -> Message:
        found = [message for message in self.messages(channel) if message.ts == ts]
        if not found:
            raise KeyError(f"no message with ts {ts!r} in {channel!r}")
        return found[0]

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        status: int | None = None,
        count: int = 1,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``count`` calls of ``method`` (or ``"webhook"``) with ``error``.

        ``status`` None means 429 for ``ratelimited``/``rate_limited`` (with Retry-After, opening
        a window like a real limit), else 200 for the API and the documented status for the
        webhook. A status of 500 or more answers a plain ``Internal Server Error`` body. The
        injection comes after the Retry-After check and before authentication. ``extra`` adds
        keys to an API error answer (e.g. ``response_metadata``).
        """
        with self._lock:
            self._failures.setdefault(method, deque()).extend([(error, status, extra)] * count)

    def clear_failures(self) -> None:
        """Forget every injected failure that has not happened yet (Slack is back)."""
        with self._lock:
            self._failures.clear()
            self._outage = 0

    @property
    def outage_left(self) -> int:
        """How many calls the outage of :meth:`outage` still fails."""
        with self._lock:
            return self._outage

    def remove_bot(self, channel: str, *, removed: bool = True) -> None:
        """The bot leaves (or, with ``removed=False``, is invited back to) a channel (ID or
        name): posts there answer ``not_in_channel`` and ``conversations.info`` says
        ``is_member: false``."""
        cid = self._resolve(channel)
        assert cid is not None, channel
        with self._lock:
            (self._outside.add if removed else self._outside.discard)(cid)

    def outage(self, count: int) -> None:
        """Slack is down for the next ``count`` Web API calls, whatever their method: each is
        answered ``500 Internal Server Error`` (after the Retry-After check, like fail_next)."""
        with self._lock:
            self._outage = count

    def reset_rate_limits(self) -> None:
        with self._lock:
            self._last_post.clear()
            self._updates.clear()
            self._windows.clear()

    # -- HTTP ---------------------------------------------------------------------------------

    def dispatch(self, target: str, content_type: str, auth: str | None, body: bytes) -> Reply:
        """Answer one HTTP request (the server's threads call this one at a time)."""
        url = urlsplit(target)
        with self._lock:
            self._now, self._inside_window = time.monotonic(), False
            args: dict[str, Any] = {}
            channel: str | None = self._webhook_channel
            if url.path.startswith("/services/"):
                method = "webhook"
                reply = self._webhook(url.path, content_type, body, args)
            else:
                method = url.path.removeprefix("/api/")
                try:
                    args.update(_parse(url.query, content_type, body))
                    reply = self._api(method, auth, args)
                except SlackError as failure:
                    reply = failure.reply()
                raw = args.get("channel")
                channel = self._resolve(raw) or (None if raw is None else str(raw))
            status, headers, payload = reply
            retry = int(headers["Retry-After"]) if "Retry-After" in headers else None
            ok, error = status == 200, None if status == 200 else payload.decode()
            if headers["Content-Type"].startswith("application/json"):
                answer = json.loads(payload)
                ok, error = answer["ok"], answer.get("error")
            args.pop("token", None)
            call = Call(method, self._now, status, ok, error, channel, args, retry)
            self._calls.append(call)
            if self._inside_window:
                self._violations.append(call)
            return reply

    def _api(self, method: str, auth: str | None, args: dict[str, Any]) -> Reply:
        """Checks in order: method, Retry-After window, injected failure, token, rate, arguments."""
        handler = self._methods.get(method)
        if handler is None:
            raise SlackError("unknown_method", req_method=method)
        key = self._limit_key(method, args)
        if key is not None and self._window(key):
            return _answer(429, RATELIMITED, self._left(key))
        if self._outage > 0:
            self._outage -= 1
            return 500, {"Content-Type": "text/plain"}, b"Internal Server Error"
        injected = self._injected(method, key)
        if injected is not None:
            return injected
        bearer = auth.removeprefix("Bearer ").strip() if auth else args.get("token")
        if not bearer:
            raise SlackError("not_authed")
        if bearer != self.token:
            raise SlackError("invalid_auth")
        if key is not None and not self._within_budget(key):
            self._windows[key] = self._now + self.retry_after
            return _answer(429, RATELIMITED, self.retry_after)
        status, headers, payload = _answer(200, {"ok": True, **handler(args)})
        if method == "auth.test":  # Slack names the token's scopes in a header of every call
            headers["x-oauth-scopes"] = self.scopes
        return status, headers, payload

    def _webhook(self, path: str, content_type: str, body: bytes, args: dict[str, Any]) -> Reply:
        if path != WEBHOOK_PATH:
            return _answer(404, "no_service")
        try:
            raw = body.decode()
            if not content_type.startswith("application/json"):
                raw = dict(parse_qsl(raw)).get("payload", "")
            payload = json.loads(raw)
        except ValueError:
            payload = None
        args.update(payload if isinstance(payload, dict) else {})
        key = ("webhook", self._webhook_channel)
        if self._window(key):
            return _answer(429, "rate_limited", self._left(key))
        injected = self._injected("webhook", key)
        if injected is not None:
            return injected
        if not isinstance(payload, dict):
            return _answer(400, "invalid_payload")
        if not self._within_budget(key):
            self._windows[key] = self._now + self.retry_after
            return _answer(429, "rate_limited", self.retry_after)
        try:
            self._store(self._webhook_channel, args)
        except SlackError as failure:
            return _answer(_WEBHOOK_STATUS.get(failure.error, 400), failure.error)
        return _answer(200, "ok")

    # -- rate limits and injected failures ----------------------------------------------------

    def _limit_key(self, method: str, args: dict[str, Any]) -> Key | None:
        if method == "chat.postMessage":
            return method, self._resolve(args.get("channel")) or str(args.get("channel"))
        return (method, None) if method == "chat.update" else None

    def _window(self, key: Key) -> bool:
        """Is a Retry-After window open for ``key``? Then this request is a violation."""
        self._inside_window = self._now < self._windows.get(key, -math.inf)
        return self._inside_window

    def _left(self, key: Key) -> int:
        return max(1, math.ceil(self._windows[key] - self._now))

    def _within_budget(self, key: Key) -> bool:
        if key[0] != "chat.update":
            last = self._last_post.get(str(key[1]))
            return last is None or self._now - last >= self.post_interval
        while self._updates and self._updates[0] <= self._now - 60:
            self._updates.popleft()
        if len(self._updates) >= self.update_per_minute:
            return False
        self._updates.append(self._now)
        return True

    def _injected(self, method: str, key: Key | None) -> Reply | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        error, status, extra = queue.popleft()
        webhook = method == "webhook"
        if status is None:
            status = 429 if error in ("ratelimited", "rate_limited") else 200
            status = _WEBHOOK_STATUS.get(error, 400) if webhook and status == 200 else status
        if status >= 500:
            return status, {"Content-Type": "text/plain"}, b"Internal Server Error"
        retry = self.retry_after if status == 429 else None
        if retry is not None:
            self._windows[key or (method, None)] = self._now + retry
        answer = {"ok": False, "error": error, **(extra or {})}
        return _answer(status, error if webhook else answer, retry)

    # -- methods ------------------------------------------------------------------------------

    def _resolve(self, channel: Any) -> str | None:
        if not isinstance(channel, str):
            return None
        return channel if channel in self._ids else self._names.get(channel.lstrip("#"))

    def _channel_id(self, args: dict[str, Any]) -> str:
        """IDs only, as Slack documents for chat.update and conversations.*."""
        channel = args.get("channel")
        if not isinstance(channel, str) or channel not in self._ids:
            raise SlackError("channel_not_found")
        return channel

    def _next_ts(self) -> str:
        """Unique and increasing: wall-clock microseconds, bumped on collision."""
        self._last_ts = max(time.time_ns() // 1000, self._last_ts + 1)
        return f"{self._last_ts // 1_000_000}.{self._last_ts % 1_000_000:06d}"

    def _content(self, args: dict[str, Any], old: Message | None) -> tuple[str, Any, Any, Any]:
        """(text, blocks, metadata, warning); an update keeps omitted blocks and metadata."""
        text = str(args.get("text") or "")
        blocks = _json_arg(args["blocks"], "invalid_blocks_format") if "blocks" in args else None
        blocks = old.blocks if blocks is None and old is not None else blocks
        problems = block_problems(blocks) if blocks is not None else []
        if problems:
            messages = [f"[ERROR] {problem}" for problem in problems]
            raise SlackError(
                "invalid_blocks", errors=problems, response_metadata={"messages": messages}
            )
        if not text and not blocks:
            raise SlackError("no_text")
        if len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
        metadata, warning = old.metadata if old is not None else None, None
        if "metadata" in args:
            metadata = _json_arg(args["metadata"], "invalid_metadata_format")
            if not isinstance(metadata, dict):
                raise SlackError("invalid_metadata_format")
            event_type, payload = metadata.get("event_type"), metadata.get("event_payload")
            valid = isinstance(event_type, str) and bool(_EVENT_TYPE.fullmatch(event_type))
            if metadata and not (valid and isinstance(payload, dict)):
                warning = "invalid_metadata_schema"
            valid = bool(metadata) and not warning
            metadata = {"event_type": event_type, "event_payload": payload} if valid else None
        return text, blocks or None, metadata, warning

    def _store(self, cid: str, args: dict[str, Any]) -> dict[str, Any]:
        text, blocks, metadata, warning = self._content(args, None)
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            parent = [m for m in self._messages[cid] if m.ts == str(thread_ts)]
            if not parent:
                raise SlackError("thread_not_found")
            thread_ts = parent[0].thread_ts or parent[0].ts
        broadcast = thread_ts is not None and _truthy(args.get("reply_broadcast"))
        message = Message(self._next_ts(), cid, text, blocks, thread_ts, broadcast, metadata)
        self._messages[cid].append(message)
        self._last_post[cid] = self._now
        return _warned({"channel": cid, "ts": message.ts, "message": self._wire(message)}, warning)

    def _wire(self, message: Message, with_metadata: bool = True) -> dict[str, Any]:
        """A message as Slack's API shows it."""
        out: dict[str, Any] = {"type": "message", "user": message.user, "bot_id": BOT_ID}
        out |= {"team": TEAM_ID, "text": message.text, "ts": message.ts}
        if message.blocks is not None:
            out["blocks"] = copy.deepcopy(message.blocks)
        if message.thread_ts is not None:
            out |= {"thread_ts": message.thread_ts, "parent_user_id": BOT_USER_ID}
            if message.reply_broadcast:
                out["subtype"] = "thread_broadcast"
        elif replies := sum(m.thread_ts == message.ts for m in self._messages[message.channel]):
            out |= {"thread_ts": message.ts, "reply_count": replies}
        if message.edited_ts is not None:
            out["edited"] = {"user": message.user, "ts": message.edited_ts}
        if with_metadata and message.metadata is not None:
            out["metadata"] = copy.deepcopy(message.metadata)
        return out

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "keb-watcher",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        cid = self._resolve(args.get("channel"))
        if cid is None:
            raise SlackError("channel_not_found")
        if cid in self._outside:
            raise SlackError("not_in_channel")
        return self._store(cid, args)

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        """chat.update, by channel ID only: a name answers ``channel_not_found``."""
        cid = self._channel_id(args)
        if cid in self._outside:
            raise SlackError("not_in_channel")
        found = [m for m in self._messages[cid] if m.ts == str(args.get("ts"))]
        if not found:
            raise SlackError("message_not_found")
        message = found[0]
        message.text, message.blocks, message.metadata, warning = self._content(args, message)
        message.edits += 1
        message.edited_ts = self._next_ts()
        answer = {"channel": cid, "ts": message.ts, "text": message.text}
        return _warned(answer | {"message": self._wire(message)}, warning)

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Newest first: top-level messages and broadcast replies, like Slack."""
        cid = self._channel_id(args)
        try:
            limit = min(max(int(args.get("limit") or 100), 1), HISTORY_MAX_LIMIT)
        except ValueError:
            raise SlackError("invalid_limit") from None
        inclusive = _truthy(args.get("inclusive"))
        oldest = _micros(args.get("oldest") or "0", "invalid_ts_oldest")
        latest = _micros(args["latest"], "invalid_ts_latest") if args.get("latest") else math.inf
        cursor_at: float = math.inf
        if args.get("cursor"):
            # Slack's cursors are base64 of "next_ts:<microseconds of the next message>".
            try:
                decoded = base64.b64decode(str(args["cursor"]), validate=True).decode()
            except ValueError:
                raise SlackError("invalid_cursor") from None
            if not decoded.startswith("next_ts:") or not decoded[8:].isdigit():
                raise SlackError("invalid_cursor")
            cursor_at = int(decoded[8:])
        selected = []
        for message in reversed(self._messages[cid]):
            at = _micros(message.ts, "invalid_ts")
            low = at > oldest or (inclusive and at == oldest)
            high = at < latest or (inclusive and at == latest)
            if (message.thread_ts is None or message.reply_broadcast) and low and high:
                selected += [message] if at <= cursor_at else []
        page, more = selected[:limit], selected[limit:]
        include = _truthy(args.get("include_all_metadata"))
        answer = {"messages": [self._wire(m, include) for m in page], "has_more": bool(more)}
        if more:
            cursor = f"next_ts:{_micros(more[0].ts, 'invalid_ts')}".encode()
            answer["response_metadata"] = {"next_cursor": base64.b64encode(cursor).decode()}
        return answer | {"pin_count": 0}

    def _info(self, args: dict[str, Any]) -> dict[str, Any]:
        cid = self._channel_id(args)
        channel = {"id": cid, "name": self._ids[cid], "is_channel": True, "is_archived": False}
        return {"channel": channel | {"is_member": cid not in self._outside}}

    def _list(self, args: dict[str, Any]) -> dict[str, Any]:
        """Every channel (no pagination: the fake has few)."""
        channels = [
            {"id": cid, "name": name, "is_channel": True, "is_archived": False, "is_member": True}
            for cid, name in self._ids.items()
        ]
        return {"channels": channels, "response_metadata": {"next_cursor": ""}}

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread, oldest first: the parent, then its replies (``ts`` is the parent)."""
        cid = self._channel_id(args)
        parent = str(args.get("ts"))
        thread = [m for m in self._messages[cid] if m.ts == parent or m.thread_ts == parent]
        if not thread:
            raise SlackError("thread_not_found")
        include = _truthy(args.get("include_all_metadata"))
        return {"messages": [self._wire(m, include) for m in thread], "has_more": False}
