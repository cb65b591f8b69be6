"""Where to look next: configured links and Slack's date formatting, as mrkdwn.

* ``[links]`` URL templates are filled in with URL-encoded values and shown as Slack links
  (``<url|label>``); a link whose placeholder has no value is left out, and without
  configuration no link appears.
* Times are Slack date tokens (``<!date^EPOCH^{date_short_pretty} {time}|fallback>``, Slack's
  "Formatting text for app surfaces"), so every reader sees their own time zone; the fallback
  is the UTC time for clients that cannot format it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from watcher.notify.blocks import escape, escape_value


def _fill(template: str, values: Mapping[str, Any]) -> str | None:
    try:
        filled = {k: quote(str(v), safe="") for k, v in values.items() if v}
        url = template.format(**filled)
    except (KeyError, IndexError, ValueError):
        return None  # a placeholder without a value here: not this message's link
    # "<", ">" and "|" end a Slack link: never let them through, encoded or not.
    return url.replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")


def link_line(templates: Mapping[str, str], **values: Any) -> str:
    """``<url|Dashboard> · <url|Runbook>`` for the templates all of whose placeholders have a
    value; empty when none has.

    >>> link_line({"Logs": "https://logs.example/?q={shoot}"}, shoot="c-1 2")
    '<https://logs.example/?q=c-1%202|Logs>'
    """
    out = []
    for label, template in templates.items():
        url = _fill(template, values)
        if url is not None:
            out.append(f"<{url}|{escape(label)}>")
    return " · ".join(out)


def slack_date(value: object) -> str:
    """A time as a Slack date token with a UTC fallback; ``-`` when there is no time.

    >>> slack_date("2024-05-14T08:00:00+00:00")
    '<!date^1715673600^{date_short_pretty} {time}|2024-05-14 08:00 UTC>'
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return escape_value(str(value))
    if not isinstance(value, datetime) or value.tzinfo is None or value.year < 1971:
        return "-"
    fallback = value.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(value.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"
