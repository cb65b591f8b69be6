"""The one sanitiser for text that came from KEB, on its way to any human. Pure.

KEB text (descriptions, failure reasons, names, states, error bodies) quotes names that
customers chose, so it is data, never markup (docs/contract.md §4.7).
:func:`inert` makes it safe to show in one line of a terminal or a Slack message:

* terminal escape sequences are removed whole: CSI (``ESC [ ... m``, cursor moves), OSC
  (``ESC ] 52 ;`` clipboard writes, ``ESC ] 8 ;`` hyperlinks, ``ESC ] 0 ;`` window titles), DCS,
  APC, PM and SOS strings, their 8-bit forms, and two-character ``ESC x`` sequences;
* every other control character (Unicode category ``Cc``) is removed; tabs become spaces and
  line breaks (``\\n``, ``\\r``, VT, FF, NEL, U+2028, U+2029) become spaces, so a value can
  never start a line of its own;
* format characters (``Cf``: bidi embeddings, overrides and isolates, zero-width spaces and
  joiners, the BOM, soft hyphens, tag characters), private-use characters (``Co``) and lone
  surrogates (``Cs``) are removed;
* so is every other *default-ignorable* code point, which a terminal or a browser draws as
  nothing whatever its category: the combining grapheme joiner U+034F, Hangul fillers,
  Mongolian and other variation selectors, and the unassigned rest of those ranges; and
  noncharacters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF);
* a base character keeps at most :data:`MARKS` combining marks (accents stacked into a wall
  of "Zalgo" text over the neighbouring lines are cut);
* other spaces (no-break, ideographic, thin ...) become a plain space.

What stays is printable text, the same for Slack, the terminal, the dashboard's HTML and the
labels of ``/metrics``. Markup of the destination is a separate step (Slack mrkdwn:
:func:`watcher.notify.blocks.escape_value`; HTML: Jinja2's autoescape). The JSON outputs
(``-o json``, the dashboard's ``/api/``) keep KEB text verbatim: they are written with
``ensure_ascii``, so every such character is a ``\\uXXXX`` escape there, never raw.

>>> inert("ok\\x1b]52;c;ZXZpbA==\\x07 then\\n# FAKE\\u202e")
'ok then # FAKE'
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

#: Terminal escape sequences, removed whole (ECMA-48: CSI, OSC and string commands, ESC Fe).
_SEQUENCES: Final = re.compile(
    r"\x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC ... BEL or ST (unterminated: to the end)
    r"|\x9d[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # 8-bit OSC
    r"|\x1b[P^_X][^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # DCS, PM, APC, SOS strings
    r"|[\x90\x9e\x9f\x98][^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # their 8-bit forms
    r"|\x1b\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"  # CSI: parameters, intermediates, final
    r"|\x9b[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"  # 8-bit CSI
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"  # other ESC sequences (charset, ESC c, ESC 7 ...)
)
_BREAKS: Final = frozenset("\n\r\x0b\x0c\x85\u2028\u2029")
_DROPPED: Final = frozenset(("Cc", "Cf", "Co", "Cs"))
#: Default-ignorable code points outside ``Cf`` (Unicode's DerivedCoreProperties), and the
#: noncharacters of the Basic Multilingual Plane.
_IGNORABLE: Final = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2065\u3164\ufe00-\ufe0f\uffa0"
    "\ufff0-\ufff8\ufdd0-\ufdef\ufffe\uffff\U000e0000-\U000e0fff]"
)
#: Combining marks kept on one base character (Vietnamese needs two).
MARKS: Final = 2
_COMBINING: Final = frozenset(("Mn", "Me"))


def _is_plain(text: str) -> bool:
    """ASCII without control characters: nothing to do (the common case, kept fast)."""
    return text.isascii() and text.isprintable()


def inert(text: str) -> str:
    """``text`` as one line with no escape sequence, control, bidi or invisible character.

    >>> inert("a\\tb\\r\\nc\\u200bd\\x1b[2J\\x1b[31mred\\x1b[0m")
    'a b  cdred'
    >>> shown = inert("in\\u034fvis\\u2060ible\\U000e0041 Z\\u0301\\u0302\\u0303 no\\u00a0break")
    >>> shown == "invisible Z\\u0301\\u0302 no break"
    True
    """
    if _is_plain(text):
        return text
    text = _IGNORABLE.sub("", _SEQUENCES.sub("", text))
    out: list[str] = []
    marks = 0
    for char in text:
        category = unicodedata.category(char)
        if category in _COMBINING:
            marks += 1
            if marks <= MARKS:
                out.append(char)
            continue
        if category in _DROPPED and char not in _BREAKS and char != "\t":
            continue
        marks = 0
        if char in _BREAKS or char == "\t" or category == "Zs":
            out.append(" ")
        elif ord(char) & 0xFFFE == 0xFFFE:  # a noncharacter of a supplementary plane
            continue
        else:
            out.append(char)
    return "".join(out)
