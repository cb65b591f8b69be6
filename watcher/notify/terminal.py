"""A destination that prints what Slack would get: `watcher demo` without Slack.

It behaves like a bot-token channel (a card, edits, threads), so the demo exercises the same
outbox, sender, templates and rate budget as the real thing; only the last step differs.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from typing import Any

from watcher.notify.blocks import Message, unescape
from watcher.notify.slack import Posted

_EMOJI = {
    ":white_check_mark:": "✅",
    ":x:": "❌",
    ":no_entry_sign:": "🚫",
    ":octagonal_sign:": "🛑",
    ":arrows_counterclockwise:": "🔄",
    ":repeat:": "🔁",
    ":hourglass_flowing_sand:": "⏳",
    ":grey_question:": "❔",
    ":rotating_light:": "🚨",
    ":wave:": "👋",
}
_MARKUP = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
#: Slack's own tokens the templates write: a time (shown in each reader's zone; the terminal
#: shows its UTC fallback) and a link (shown as its label and address).
_DATE = re.compile(r"<!date\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<([^|<>]+)\|([^<>]+)>")


def plain(text: str) -> str:
    """mrkdwn as a terminal shows it: emoji codes as emoji, no bold markers, times and links
    as words, no escapes.

    >>> plain("*done* <!date^1715682600^{date_short_pretty} {time}|2024-05-14 10:30 UTC>")
    'done 2024-05-14 10:30 UTC'
    >>> plain("<https://dash.example/o/1|Dashboard> &amp; more")
    'Dashboard (https://dash.example/o/1) & more'
    """
    for code, emoji in _EMOJI.items():
        text = text.replace(code, emoji)
    text = _LINK.sub(r"\2 (\1)", _DATE.sub(r"\1", text))
    return unescape(_MARKUP.sub(r"\1", text))


class TerminalSlack:
    """Prints posts and thread replies; card edits are remembered, not printed."""

    threads = True
    edits = True

    def __init__(self, echo: Callable[[str], None], channel: str = "#kyma-upgrades") -> None:
        self.echo = echo
        self.channel = channel
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.cards: dict[str, str] = {}
        self.cards_of: dict[str | None, str] = {}

    def _next(self) -> str:
        with self._lock:
            return f"{next(self._ts)}.000000"

    def post(
        self,
        channel: str | None,
        message: Message,
        meta: dict[str, Any],
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
    ) -> Posted:
        ts = self._next()
        payload = meta.get("event_payload", {})
        orch = str(payload.get("orchestration_id", ""))[:8]
        if payload.get("fleet"):  # a selection of runtimes (fleet watch) is named, not an ID
            orch = f"fleet {payload['fleet']}"
        where = (
            f"reply in the thread of {self.cards_of.get(thread_ts, orch)}"
            if thread_ts
            else "new message"
        )
        if broadcast:
            where += ", also sent to the channel"
        if not thread_ts and orch:
            self.cards_of[ts] = orch
        lines = plain(message.text).splitlines()
        self.echo(f"  ┌ Slack {self.channel} ({where})")
        for line in lines:
            self.echo(f"  │ {line}")
        self.echo("  └")
        return Posted("CDEMO0001", ts, {"ok": True, "channel": "CDEMO0001", "ts": ts})

    def update(self, channel: str, ts: str, message: Message, meta: dict[str, Any]) -> Posted:
        self.cards[ts] = plain(message.text)
        return Posted(channel, ts, {"ok": True, "channel": channel, "ts": ts})

    def find(self, channel: str | None, key: str, *, thread_ts: str | None = None) -> Posted | None:
        return None

    def find_card(self, channel: str | None, orchestration_id: str) -> Posted | None:
        return None

    def probe(self) -> None:
        """The terminal always answers."""
