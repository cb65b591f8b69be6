"""Checks for the settings that shape what a message says: ``[links]`` and
``slack.mention_on_failure`` (docs/notifications.md §1.3).

Kept apart from the loader's generic readers: these know about Slack's mention syntax and the
placeholders keb-watcher fills in.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

from watcher.errors import ConfigError

#: What a link template may name; each is URL-encoded when filled in.
PLACEHOLDERS: Final = ("orchestration_id", "operation_id", "runtime_id", "shoot")
#: Slack's mention syntax: a user group, a user, or @here / @channel ("Formatting text").
MENTION: Final = re.compile(r"<!subteam\^[A-Z0-9]+(\|[^<>]*)?>|<@[UW][A-Z0-9]+>|<!here>|<!channel>")

Error = Callable[[str, str], ConfigError]


def mention(key: str, value: Any, error: Error) -> str:
    """``<!subteam^S0123ABC>``, ``<@U0123ABC>``, ``<!here>`` or ``<!channel>``."""
    if not isinstance(value, str) or not MENTION.fullmatch(value.strip()):
        raise error(
            key,
            f"expected a Slack mention such as '<!subteam^S0123ABC>' (a user group) or "
            f"'<@U0123ABC>' (a user), got {value!r}",
        )
    return value.strip()


def links(key: str, value: Any, error: Error) -> Mapping[str, str]:
    """A table of label = URL template, e.g. ``Dashboard = "https://grafana/d/x?o={orchestration_id}"``."""
    if not isinstance(value, dict):
        raise error(key, f"expected a table of label = URL, got {type(value).__name__}")
    for label, url in value.items():
        where = f"{key}.{label}"
        if not isinstance(url, str):
            raise error(where, "expected a URL string")
        try:
            names = [field for _, field, _, _ in string.Formatter().parse(url) if field is not None]
        except ValueError as exc:
            raise error(where, f"bad placeholder in {url!r} ({exc})") from None
        unknown = [name for name in names if name not in PLACEHOLDERS]
        if unknown:
            raise error(
                where, f"unknown placeholder {{{unknown[0]}}} (known: {', '.join(PLACEHOLDERS)})"
            )
        parts = urlsplit(url.format(**dict.fromkeys(PLACEHOLDERS, "x")))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise error(where, f"expected an http(s) URL, got {url!r}")
        if any(c in label for c in "<>|&*_~`"):
            raise error(where, "a label is plain text (no Slack formatting characters)")
    return MappingProxyType(dict(value))
