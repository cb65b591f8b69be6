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
  surrogates (``Cs``) are removed.

What stays is printable text. Markup of the destination (Slack mrkdwn) is a separate step
(:func:`watcher.notify.blocks.escape_value`). The JSON outputs keep KEB text verbatim: they are
written with ``ensure_ascii``, so every such character is a ``\\uXXXX`` escape there.

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


def _is_plain(text: str) -> bool:
    """ASCII without control characters: nothing to do (the common case, kept fast)."""
    return text.isascii() and text.isprintable()


def inert(text: str) -> str:
    """``text`` as one line with no escape sequence, control, bidi or invisible character.

    >>> inert("a\\tb\\r\\nc\\u200bd\\x1b[2J\\x1b[31mred\\x1b[0m")
    'a b  cdred'
    """
    if _is_plain(text):
        return text
    text = _SEQUENCES.sub("", text)
    out: list[str] = []
    for char in text:
        if char in _BREAKS or char == "\t":
            out.append(" ")
        elif unicodedata.category(char) in _DROPPED:
            continue
        else:
            out.append(char)
    return "".join(out)
