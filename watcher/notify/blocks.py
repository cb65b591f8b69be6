"""Block Kit messages built from data structures, within Slack's limits.

Templates render a light line markup (see ``templates/README.md``); :func:`to_message` turns
it into Block Kit dictionaries. KEB data never becomes JSON by string concatenation: it is
escaped text inside values of dicts built here. Slack's limits (docs/contract.md §5) are enforced
after rendering, degrading instead of failing: 50 blocks, 3,000 characters per section, 150
per header, 10 context elements, and a plain ``text`` fallback of at most 4,000 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from watcher.core.inert import inert

MAX_BLOCKS: Final = 50
MAX_SECTION: Final = 3000
MAX_HEADER: Final = 150
MAX_CONTEXT: Final = 10
MAX_TEXT: Final = 4000
TRUNCATED: Final = "… (truncated)"


#: Where a value inserted into a template begins and ends (private-use characters, which
#: :func:`watcher.core.inert.inert` removes from KEB text, so only the renderer writes them).
#: :func:`to_message` decides a line's structure with them in place, then removes them.
VALUE_START: Final = "\ue000"
VALUE_END: Final = "\ue001"
#: mrkdwn formatting characters in a value become look-alikes that format nothing.
_FORMATTING: Final = str.maketrans({"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"})
#: ``@here``, ``@channel``, ``@everyone`` as plain words: their ``@`` becomes the full-width
#: ``＠``, which no Slack client or ``link_names`` setting turns into a mention.
#: No word boundary: inside a code span the value sits between look-alike backticks, which
#: are letters to a regular expression.
_BROADCAST: Final = re.compile(r"@(?=here|channel|everyone)", re.IGNORECASE)


def escape(text: str) -> str:
    """Slack mrkdwn escaping of ``&``, ``<`` and ``>`` (links, mentions, entities)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_value(text: str) -> str:
    """A value from outside (KEB text) made inert for mrkdwn: one line with no control, escape,
    bidi or invisible characters (:func:`~watcher.core.inert.inert`), ``&<>`` escaped (no link,
    mention or entity), and ``*``, ``_``, ``~`` and backticks replaced by look-alikes
    (``∗ ˍ ∼ ˋ``) so that it cannot turn on bold, italics, strike-through or close a code span;
    ``@here``-style words get a full-width ``＠``. Inside a template's code span or not, a value
    is escaped the same way.

    >>> escape_value("*URGENT* <!here> `x`\\n# FAKE @channel")
    '∗URGENT∗ &lt;!here&gt; ˋxˋ # FAKE ＠channel'
    """
    return _BROADCAST.sub("\uff20", escape(inert(text)).translate(_FORMATTING))


def mark(text: str) -> str:
    """``text`` between the value markers (see :data:`VALUE_START`)."""
    return f"{VALUE_START}{text}{VALUE_END}"


def unmark(text: str) -> str:
    return text.replace(VALUE_START, "").replace(VALUE_END, "")


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def clip(text: str, limit: int, marker: str = TRUNCATED) -> str:
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))].rstrip() + marker


@dataclass(frozen=True, slots=True)
class Message:
    """What is sent: the fallback ``text`` (notifications, search, old clients) and blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def _split_section(text: str) -> list[str]:
    """Cut an over-long section at line ends into pieces Slack accepts."""
    if len(text) <= MAX_SECTION:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        line = clip(line, MAX_SECTION)
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > MAX_SECTION:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def to_message(markup: str) -> Message:
    """Parse rendered template markup into a :class:`Message` that respects every limit."""
    blocks: list[dict[str, Any]] = []
    paragraph: list[str] = []
    context: list[str] = []
    plain: list[str] = []

    def flush() -> None:
        if paragraph:
            text = "\n".join(paragraph).strip("\n")
            if text.strip():
                blocks.extend(_section(piece) for piece in _split_section(text))
                plain.append(text)
            paragraph.clear()
        if context:
            elements = context[: MAX_CONTEXT - 1] + (
                [" · ".join(context[MAX_CONTEXT - 1 :])] if len(context) >= MAX_CONTEXT else []
            )
            blocks.append(
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": clip(e, MAX_SECTION)} for e in elements
                    ],
                }
            )
            plain.append(" · ".join(context))
            context.clear()

    # A line's structure comes from the template's own characters: a value (between markers)
    # at the start of a line cannot make it a header, a divider or a context line.
    for marked in markup.split("\n"):
        line = unmark(marked)
        if marked.startswith("# ") and line[2:].strip():
            flush()
            title = unescape(line[2:].strip())
            blocks.append(
                {
                    "type": "header",
                    "text": {
                        "type": "plain_text",
                        "text": clip(title, MAX_HEADER, "…"),
                        "emoji": True,
                    },
                }
            )
            plain.append(escape(title))
        elif marked.strip() == "---":
            flush()
            blocks.append({"type": "divider"})
        elif marked.startswith("> ") and line[2:].strip():
            if paragraph:
                flush()
            context.append(line[2:])
        elif not line.strip():
            flush()
        else:
            if context:
                flush()
            paragraph.append(line)
    flush()
    if len(blocks) > MAX_BLOCKS:
        dropped = len(blocks) - (MAX_BLOCKS - 1)
        blocks = blocks[: MAX_BLOCKS - 1]
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"+{dropped} more blocks not shown"}],
            }
        )
    text = clip("\n".join(plain).strip() or "keb-watcher notification", MAX_TEXT)
    return Message(text, blocks)


def plain_message(text: str) -> Message:
    """A message with one section (the fallback when a template fails)."""
    text = unmark(text)
    return Message(clip(text, MAX_TEXT), [_section(clip(text, MAX_SECTION))])
