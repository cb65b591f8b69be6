"""Block Kit built from data, within Slack's limits, whatever the input."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from watcher.notify.blocks import (
    MAX_BLOCKS,
    MAX_CONTEXT,
    MAX_HEADER,
    MAX_SECTION,
    MAX_TEXT,
    escape,
    to_message,
)


def test_markup_becomes_blocks() -> None:
    message = to_message("# Title\nline one\nline two\n\n---\n> ctx a\n> ctx b\nafter")
    types = [b["type"] for b in message.blocks]
    assert types == ["header", "section", "divider", "context", "section"]
    assert message.blocks[1]["text"]["text"] == "line one\nline two"
    assert len(message.blocks[3]["elements"]) == 2
    assert message.text.startswith("Title\nline one")


def test_escaping_keeps_keb_data_inert() -> None:
    assert escape("<!channel> & <https://x|y>") == "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"


def test_every_limit_degrades_gracefully() -> None:
    long_section = "\n".join("x" * 200 for _ in range(40))  # 8,000 characters
    markup = (
        "# " + "H" * 400 + "\n" + long_section + "\n\n" + "\n".join(f"> c{i}" for i in range(15))
    )
    markup += "\n\n" + "\n\n".join(f"section {i}" for i in range(80))
    message = to_message(markup)
    assert len(message.blocks) <= MAX_BLOCKS
    assert message.blocks[-1]["elements"][0]["text"].endswith("more blocks not shown")
    header = message.blocks[0]["text"]["text"]
    assert len(header) <= MAX_HEADER
    assert header.endswith("…")
    sections = [b for b in message.blocks if b["type"] == "section"]
    assert all(len(b["text"]["text"]) <= MAX_SECTION for b in sections)
    assert "".join(b["text"]["text"] for b in sections[:3]).count("x") == 8000  # split, not lost
    contexts = [b for b in message.blocks if b["type"] == "context"]
    assert all(len(b["elements"]) <= MAX_CONTEXT for b in contexts)
    assert "c14" in contexts[0]["elements"][-1]["text"]  # merged, not dropped
    assert len(message.text) <= MAX_TEXT


@given(st.text(max_size=20000))
def test_any_text_gives_a_valid_message(markup: str) -> None:
    message = to_message(markup)
    assert 0 < len(message.text) <= MAX_TEXT
    assert len(message.blocks) <= MAX_BLOCKS
    for block in message.blocks:
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= MAX_SECTION
        if block["type"] == "header":
            assert 0 < len(block["text"]["text"].strip()) <= MAX_HEADER
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= MAX_CONTEXT
            assert all(e["text"].strip() for e in block["elements"])
    json.dumps(message.blocks)
