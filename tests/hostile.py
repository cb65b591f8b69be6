"""Hostile KEB text, as a customer-chosen name inside a failure description could carry it, and
the checks that it stayed data: no structure, formatting, escape or control character."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from slack_sdk.models.blocks import Block

#: Each one tries a different way to become structure, markup or terminal control.
HOSTILE: tuple[str, ...] = (
    "fine\n# FAKE HEADER from KEB",
    "x\n> FAKE CONTEXT from KEB\n---\n*URGENT* rotate credentials at https://evil.example/rotate",
    "mentions <!channel> <!here> <@U0ADMIN> <#C0SECRET> <https://evil.example|click here> @here",
    "`code closed` early ```fence``` ~strike~ _italic_ *bold*",
    "osc52 \x1b]52;c;ZXZpbA==\x07 osc8 \x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\ "
    "title \x1b]0;pwned\x07 end",
    "csi \x1b[2J\x1b[H\x1b[31mred\x1b[0m \x1b[10A up \x9b31m c1 \x07bell\x08\x7f",
    "bidi \u202eevil\u202c \u2066iso\u2069 zw\u200bsp\u200d\ufeff\u2028line\u2029para\rcr",
    "long " + "A" * 10_000,
)

#: What must never reach a terminal or Slack: C0/C1 controls (newline and tab aside where the
#: output itself is multi-line), bidi and zero-width characters.
_BAD = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def bad_characters(text: str) -> list[str]:
    """The forbidden characters in ``text`` (as escapes, for a readable assertion)."""
    found = _BAD.findall(text)
    found += [c for c in text if unicodedata.category(c) == "Cf"]
    return sorted({f"U+{ord(c):04X}" for c in found})


def block_texts(blocks: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(block type, text) for every text in ``blocks``."""
    out: list[tuple[str, str]] = []
    for block in blocks:
        kind = block["type"]
        if "text" in block:
            out.append((kind, block["text"]["text"]))
        for element in block.get("elements", []):
            out.append((kind, element["text"]))
        for element in block.get("fields", []):
            out.append((kind, element["text"]))
    return out


def validate_blocks(blocks: list[dict[str, Any]]) -> None:
    """Block Kit validation by slack_sdk's models (limits, required fields, types)."""
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()


#: A time as the templates write it (Slack shows it in each reader's time zone).
SLACK_DATE = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^<>|]*>")


def assert_inert_in_slack(blocks: list[dict[str, Any]], text: str) -> None:
    """Nothing the hostile strings carry became structure or formatting in a message."""
    validate_blocks(blocks)
    assert not bad_characters(text), bad_characters(text)
    for kind, body in block_texts(blocks):
        assert not bad_characters(body), (kind, bad_characters(body))
        # KEB text may sit inside a template's header or context line, never start one.
        assert not body.startswith(("FAKE", "# ", "&gt; ", "---")), (kind, body)
        # The packaged templates write no links or mentions of their own (a header is
        # plain_text, where Slack shows < and > as written); their one token is a time,
        # `<!date^EPOCH^{...}|fallback>`, which KEB text cannot make (it has no < or >).
        plain = SLACK_DATE.sub("", body)
        assert kind == "header" or ("<" not in plain and ">" not in plain), body
        assert "@here" not in body, body  # never a mention
        assert "@channel" not in body, body
        for made_up in ("*URGENT*", "*bold*", "_italic_", "~strike~", "`code closed`", "```"):
            assert made_up not in body, (made_up, body)
        if kind == "header":
            assert "KEB upgrade" in body, body
    assert all(b["type"] != "divider" for b in blocks)  # the templates have none
