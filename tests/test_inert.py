"""KEB text is data: the sanitiser, and the Slack renderer over it (tables and a property)."""

from __future__ import annotations

import io
import re
import unicodedata
from collections import Counter
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from rich.console import Console

from tests.hostile import HOSTILE, assert_inert_in_slack, bad_characters, block_texts
from tests.test_watch_tty import ANSI
from watcher.core.inert import MARKS, inert
from watcher.core.models import Orchestration
from watcher.faces.watch.live import Frame, render
from watcher.notify.blocks import escape_value, to_message
from watcher.notify.render import TEMPLATES, Renderer
from watcher.notify.samples import SAMPLES


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text", "plain text"),
        ("a\nb\r\nc", "a b  c"),
        ("tab\there", "tab here"),
        ("\x1b]52;c;ZXZpbA==\x07copied", "copied"),  # OSC 52 clipboard write
        ("\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink
        ("\x1b]0;title\x07x", "x"),  # window title
        ("\x1b[2J\x1b[10;5H\x1b[1;31mred\x1b[0m", "red"),  # CSI: clear, move, colour
        ("\x9b2Jc1\x9d0;t\x9c", "c1"),  # 8-bit CSI and OSC
        ("\x1bPdcs\x1b\\after", "after"),  # DCS string
        ("\x1b(Bcharset\x1bc", "charset"),  # two-character ESC sequences
        ("bell\x07back\x08del\x7fnul\x00", "bellbackdelnul"),
        ("\u202eevil\u202c \u2066iso\u2069 \u200f", "evil iso "),  # bidi controls
        ("zero\u200bwidth\u200c\u200d\u2060\ufeff", "zerowidth"),
        ("line\u2028sep\u2029para\x85nel", "line sep para nel"),
        ("private\ue000\ue001use", "privateuse"),  # also the renderer's value markers
        ("emoji ✅ and ümlaut", "emoji ✅ and ümlaut"),
        ("cgj\u034fwj\u2060zw\u200b", "cgjwjzw"),  # invisible whatever their category
        ("tags\U000e0001\U000e0068\U000e0069\U000e007f", "tags"),  # hidden ASCII
        ("vs\ufe0f\U000e0100 mvs\u180b\u180e", "vs mvs"),  # variation selectors
        ("fill\u3164\u115f\u1160\uffa0er", "filler"),  # Hangul fillers
        ("non\ufdd0\ufffe\U0001fffechar", "nonchar"),  # noncharacters
        ("nb\u00a0sp\u2003em\u3000ideo", "nb sp em ideo"),  # every space is a space
        ("Z\u0301\u0302\u0303\u0304\u0305 a\u0308", "Z\u0301\u0302 a\u0308"),  # "Zalgo"
        ("Vi\u1ec7t \u0110\u00ea\u0301", "Vi\u1ec7t \u0110\u00ea\u0301"),  # real accents stay
    ],
)
def test_inert_removes_what_could_control_a_terminal(raw: str, shown: str) -> None:
    assert inert(raw) == shown
    assert inert(shown) == shown  # idempotent


@given(st.text())
def test_inert_output_is_always_one_clean_line(text: str) -> None:
    out = inert(text)
    assert "\n" not in out
    assert "\x1b" not in out
    assert not bad_characters(out)
    assert inert(out) == out


#: Every code point, surrogates and unassigned ones included.
ANY_CHARACTER = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None)
IGNORABLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2065\u3164\ufe00-\ufe0f\uffa0"
    "\ufff0-\ufff8\ufdd0-\ufdef\U000e0000-\U000e0fff]"
)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ANY_CHARACTER, max_size=60))
def test_inert_over_arbitrary_unicode_leaves_only_visible_text(text: str) -> None:
    out = inert(text)
    assert inert(out) == out
    run = 0
    for char in out:
        category = unicodedata.category(char)
        assert category not in ("Cc", "Cf", "Co", "Cs"), f"U+{ord(char):04X} {category}"
        assert category != "Zs" or char == " ", f"U+{ord(char):04X}"
        assert not IGNORABLE.match(char), f"U+{ord(char):04X}"
        assert ord(char) & 0xFFFE != 0xFFFE, f"U+{ord(char):04X}"
        run = run + 1 if category in ("Mn", "Me") else 0
        assert run <= MARKS, out


@given(st.text(alphabet=ANY_CHARACTER, max_size=20), st.sampled_from(["here", "channel"]))
def test_broadcast_words_never_reach_slack_as_mentions(noise: str, word: str) -> None:
    for text in (f"{noise}@{word}", f"`@{word}` {noise}", f"{noise} <!{word}> @{word.upper()}"):
        value = escape_value(text)
        assert f"@{word}" not in value.lower()
        assert "<!" not in value


def test_escape_value_neutralises_mrkdwn_and_links() -> None:
    value = escape_value("*URGENT* _i_ ~s~ `c` <!here> <https://x|y> &amp;\n# H")
    assert value == "∗URGENT∗ ˍiˍ ∼s∼ ˋcˋ &lt;!here&gt; &lt;https://x|y&gt; &amp;amp; # H"


def _replace_text(value: Any, text: str) -> Any:
    """``value`` with every string in it replaced by ``text`` (and the states counted)."""
    if isinstance(value, str):
        return text
    if isinstance(value, dict):
        return {
            k: (
                {text + str(i): n for i, n in enumerate(v.values())}
                if k == "counts" and isinstance(v, dict)
                else _replace_text(v, text)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_replace_text(v, text) for v in value]
    return value


def _shape(blocks: list[dict[str, Any]]) -> list[tuple[str, Counter[str]]]:
    """Block types with the count of every mrkdwn control character in their mrkdwn texts
    (a header is ``plain_text``: Slack shows it as written)."""
    return [
        (kind, Counter(c for c in body if c in "*_~`<>\n" and kind != "header"))
        for kind, body in block_texts(blocks)
    ]


RENDERER = Renderer()


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=120), kind=st.sampled_from(sorted(TEMPLATES)))
def test_any_keb_text_changes_no_structure_or_formatting(text: str, kind: str) -> None:
    """Every string of a payload (descriptions, reasons, names, states, errors) replaced by
    arbitrary text renders to the same blocks, with the same mrkdwn control characters in each,
    as the payload with a harmless word: everything structural came from the template."""
    assume(inert(text).strip())
    payload = dict(SAMPLES[kind])
    harmless = {k: _replace_text(v, "word") for k, v in payload.items() if k not in ("kind", "key")}
    hostile = {k: _replace_text(v, text) for k, v in payload.items() if k not in ("kind", "key")}
    base = RENDERER.render(kind, harmless)
    rendered = RENDERER.render(kind, hostile)
    assert base.error is None
    assert rendered.error is None, rendered.error
    assert _shape(rendered.message.blocks) == _shape(base.message.blocks)
    for kind, body in block_texts(rendered.message.blocks):
        assert kind == "header" or not re.search(r"&(?!amp;|lt;|gt;)", body), (
            body
        )  # entities are ours only
    assert_inert_in_slack(rendered.message.blocks, rendered.message.text)


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_fixtures_render_to_valid_inert_blocks(kind: str, text: str) -> None:
    payload = {k: _replace_text(v, text) for k, v in SAMPLES[kind].items()}
    rendered = RENDERER.render(kind, payload)
    assert rendered.error is None, rendered.error
    assert_inert_in_slack(rendered.message.blocks, rendered.message.text)


def test_a_value_at_the_start_of_a_template_line_is_never_structure(tmp_path: Any) -> None:
    (tmp_path / "not_found.j2").write_text(
        "{{ orchestration.id }}\n{{ orchestration.id }}\n\n{{ orchestration.id }}\n"
    )
    for value in ("# FAKE HEADER", "---", "> FAKE CONTEXT"):
        message = Renderer(tmp_path).render("not_found", {"orchestration": {"id": value}}).message
        assert [b["type"] for b in message.blocks] == ["section", "section"], message.blocks


def test_the_markup_parser_keeps_template_structure() -> None:
    message = to_message("# Title\n---\n> context\ntext")
    assert [b["type"] for b in message.blocks] == ["header", "divider", "context", "section"]


def test_the_live_view_shows_keb_text_as_text_not_rich_markup() -> None:
    hostile = "[link=https://evil.example]click[/link] [bold]B[/bold] \x1b]52;c;eA==\x07x"
    orch = Orchestration(
        "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11", type=hostile, state=hostile, description=hostile
    )
    frame = Frame("5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11", 0.0, orch, {hostile: 3})
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="truecolor", width=300)
    console.print(render(frame, 1.0))
    screen = out.getvalue()
    assert "\x1b]" not in screen  # no hyperlink, no clipboard write
    assert ANSI.sub("", screen).count("[link=https://evil.example]click[/link]") == 4
