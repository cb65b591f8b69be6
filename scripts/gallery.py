"""Regenerate docs/gallery.md: every notification kind rendered by the real renderer.

    .venv/bin/python scripts/gallery.py          # the Markdown and the Block Kit JSON
    .venv/bin/python scripts/gallery.py --png    # also one PNG per message (needs Chromium)

The payloads are the samples `watcher render` uses (watcher/notify/samples.py), with the
variants each kind has (a succeeded-after-retry outcome, a canceled one, ...), rendered with a
landscape label, links and an on-call mention configured. The PNGs are a small HTML rendering
of those same blocks (header, mrkdwn sections, context, divider; emoji codes as emoji, date
tokens as their fallback text) taken by Debian's Chromium through Playwright, as the
dashboard's screenshots are: an approximation of Slack's look, not Slack itself.
tests/test_gallery.py checks that docs/gallery.md is what this script writes.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
IMAGES = DOCS / "gallery"
sys.path.insert(0, str(ROOT))

from watcher.notify.render import Renderer  # noqa: E402
from watcher.notify.samples import SAMPLE_ORCHESTRATION, sample_payload  # noqa: E402

CONTEXT: dict[str, Any] = {
    "keb_name": "prod-eu",
    "mention": "<!subteam^S0123ABC>",
    "links": {
        "orchestration": {"Dashboard": "https://grafana.example/d/keb?var-id={orchestration_id}"},
        "operation": {"Logs": "https://logs.example/?q={shoot}"},
    },
}
CONFIG = """[keb]
name = "prod-eu"

[slack]
mention_on_failure = "<!subteam^S0123ABC>"

[links]
orchestration = { Dashboard = "https://grafana.example/d/keb?var-id={orchestration_id}" }
operation = { Logs = "https://logs.example/?q={shoot}" }"""


@dataclass(frozen=True)
class Entry:
    slug: str
    title: str
    kind: str
    where: str
    payload: dict[str, Any]


def entries() -> Iterator[Entry]:
    card = sample_payload("tracking_started")
    yield Entry(
        "card",
        "The card (tracking_started, then progress)",
        "tracking_started",
        "a new message in the channel; every later poll edits it in place",
        card,
    )
    failed_card = sample_payload("tracking_started")
    failed_card["orchestration"] = {**failed_card["orchestration"], "state": "failed"}
    finished_failed = sample_payload("finished")
    failed_card.update(
        failures=finished_failed["failures"],
        more_reasons=0,
        counts=finished_failed["counts"],
        done=120,
        total=120,
        progress=1.0,
        failed=6,
        succeeded=114,
        throughput_per_hour=None,
    )
    yield Entry(
        "card-failed",
        "The card of an orchestration that had already failed when tracking started",
        "tracking_started",
        "a new message in the channel: the failure reasons are on the card",
        failed_card,
    )
    yield Entry(
        "failure-digest",
        "Failure digest",
        "failure_digest",
        "a reply in the card's thread, at most one per `slack.digest_interval`",
        sample_payload("failure_digest"),
    )
    changed = sample_payload("state_changed")
    changed["change"] = {
        "from": "in progress",
        "to": "canceling",
        "via": [],
        "description": "Orchestration was canceled",
    }
    yield Entry(
        "state-changed",
        "State changed",
        "state_changed",
        "a reply in the card's thread (not for pending -> in progress: the card shows it)",
        changed,
    )
    yield Entry(
        "retried",
        "Retried",
        "retried",
        "a reply in the card's thread; the retry is run 2, with its own outcome",
        sample_payload("retried"),
    )
    yield Entry(
        "finished-failed",
        "Outcome: failed",
        "finished",
        "a reply in the card's thread, also sent to the channel; the mention is "
        "`slack.mention_on_failure`",
        finished_failed,
    )
    succeeded = sample_payload("finished")
    succeeded["orchestration"] = {
        **succeeded["orchestration"],
        "state": "succeeded",
        "description": "Scheduled 120 operations, retried 6 operations",
    }
    succeeded.update(
        counts={"succeeded": 120, "failed": 0},
        succeeded=120,
        failed=0,
        run=2,
        elapsed_seconds=1260.0,
        failures=[],
        more_reasons=0,
        retried={"operations": 6, "succeeded": 6, "failed": 0, "running": 0},
    )
    succeeded["change"] = {
        "from": "in progress",
        "to": "succeeded",
        "via": [],
        "description": succeeded["orchestration"]["description"],
    }
    yield Entry(
        "finished-succeeded",
        "Outcome: succeeded (after a retry)",
        "finished",
        "a reply in the card's thread, also sent to the channel",
        succeeded,
    )
    canceled = sample_payload("finished")
    canceled["orchestration"] = {
        **canceled["orchestration"],
        "state": "canceled",
        "description": "Orchestration was canceled",
    }
    canceled.update(
        counts={"succeeded": 40, "canceled": 80, "failed": 0},
        succeeded=40,
        canceled=80,
        failed=0,
        failures=[],
        more_reasons=0,
        elapsed_seconds=3000.0,
    )
    canceled["change"] = {
        "from": "canceling",
        "to": "canceled",
        "via": [],
        "description": "Orchestration was canceled",
    }
    yield Entry(
        "finished-canceled",
        "Outcome: canceled",
        "finished",
        "a reply in the card's thread, also sent to the channel",
        canceled,
    )
    stuck_card = sample_payload("tracking_started")
    stuck_card["stuck"] = sample_payload("stuck")["stuck"]
    yield Entry(
        "card-stuck",
        "The card while operations are stuck",
        "progress",
        "the card, edited when what is stuck changes (`poll.stuck_after`)",
        stuck_card,
    )
    yield Entry(
        "stuck",
        "Stuck",
        "stuck",
        "a reply in the card's thread, once per change of what is stuck, grouped like failures",
        sample_payload("stuck"),
    )
    yield Entry(
        "unstuck",
        "Moving again (unstuck)",
        "unstuck",
        "a reply in the card's thread once nothing is stuck any more",
        sample_payload("unstuck"),
    )
    yield Entry(
        "after-outcome",
        "After the outcome",
        "after_outcome",
        "a reply in the card's thread when operations end after KEB ended the orchestration "
        "(at most one per `slack.digest_interval`, and one when the last has ended)",
        sample_payload("after_outcome"),
    )
    yield Entry(
        "not-found",
        "Not found",
        "not_found",
        "a reply in the card's thread, once",
        sample_payload("not_found"),
    )
    yield Entry(
        "keb-unhealthy",
        "KEB unhealthy",
        "keb_unhealthy",
        "a message in the channel (or its route), once per outage",
        sample_payload("keb_unhealthy"),
    )
    yield Entry(
        "keb-recovered",
        "KEB recovered",
        "keb_recovered",
        "a message in the channel (or its route), once KEB answers again",
        sample_payload("keb_recovered"),
    )


def rendered() -> list[tuple[Entry, dict[str, Any]]]:
    renderer = Renderer(context=CONTEXT)
    out = []
    for entry in entries():
        result = renderer.render(entry.kind, entry.payload)
        if result.error:
            raise SystemExit(f"gallery: {entry.slug}: {result.error}")
        out.append((entry, {"text": result.message.text, "blocks": result.message.blocks}))
    return out


def markdown() -> str:
    lines = [
        "# Gallery: what the channel gets",
        "",
        "Every kind of notification, rendered by keb-watcher's own templates and Block Kit",
        "builder from the sample data `watcher render KIND` uses, with this configuration:",
        "",
        "```toml",
        CONFIG,
        "```",
        "",
        "Each picture is a small HTML rendering of exactly the blocks below it (Slack's own",
        "client draws them a little differently: emoji, fonts, and dates in the reader's own",
        "time zone, where the picture shows the UTC fallback). The JSON is the `blocks` and",
        "`text` sent to `chat.postMessage` / `chat.update`. Generated by `scripts/gallery.py`",
        "(`--png` for the pictures); `tests/test_gallery.py` keeps this page true. See",
        "[notifications.md](notifications.md) for when each is sent.",
        "",
        f"The sample orchestration is `{SAMPLE_ORCHESTRATION.orchestration_id}`.",
        "",
    ]
    for entry, message in rendered():
        lines += [
            f"## {entry.title}",
            "",
            f"Kind `{entry.kind}`: {entry.where}.",
            "",
            f"![{entry.title}](gallery/{entry.slug}.png)",
            "",
            "<details><summary>Block Kit JSON</summary>",
            "",
            "```json",
            json.dumps(message, indent=2, ensure_ascii=False),
            "```",
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


# -- the pictures ---------------------------------------------------------------------------

#: Emoji as coloured badges with a DejaVu glyph: the machines that make the pictures have no
#: emoji font, and a blank box would hide which state a message shows.
_BADGE = {
    "ok": ("#2eb67d", "✔"),
    "fail": ("#e01e5a", "✖"),
    "no": ("#e01e5a", "⊘"),
    "stop": ("#e01e5a", "■"),
    "run": ("#1264a3", "↻"),
    "wait": ("#ecb22e", "⌛"),
    "ask": ("#9e9e9e", "?"),
    "alarm": ("#e01e5a", "!"),
}
EMOJI = {
    ":x:": "fail",
    "❌": "fail",
    ":white_check_mark:": "ok",
    "✅": "ok",
    ":no_entry_sign:": "no",
    "🚫": "no",
    ":octagonal_sign:": "stop",
    ":arrows_counterclockwise:": "run",
    "🔄": "run",
    ":repeat:": "run",
    ":hourglass_flowing_sand:": "wait",
    "⏳": "wait",
    ":grey_question:": "ask",
    ":rotating_light:": "alarm",
}


def mrkdwn(text: str) -> str:
    """Slack mrkdwn as HTML, for the picture: links, dates, mentions, *bold*, `code`."""
    out = html.escape(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    out = re.sub(r"&lt;!date\^\d+\^[^|]*\|(.*?)&gt;", r'<span class="date">\1</span>', out)
    out = re.sub(r"&lt;!subteam\^[A-Z0-9]+&gt;", '<span class="mention">@kyma-oncall</span>', out)
    out = re.sub(r"&lt;(https?://[^|]*?)\|(.*?)&gt;", r'<a href="\1">\2</a>', out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"<b>\1</b>", out)
    for code, badge in EMOJI.items():
        colour, glyph = _BADGE[badge]
        out = out.replace(code, f'<span class="emo" style="background:{colour}">{glyph}</span>')
    return out.replace("\n", "<br>")


def page(entry: Entry, message: dict[str, Any]) -> str:
    parts = []
    for block in message["blocks"]:
        kind = block["type"]
        if kind == "header":
            parts.append(f'<div class="header">{mrkdwn(block["text"]["text"])}</div>')
        elif kind == "section":
            parts.append(f'<div class="section">{mrkdwn(block["text"]["text"])}</div>')
        elif kind == "context":
            items = "".join(
                f'<span class="el">{mrkdwn(e["text"])}</span>' for e in block["elements"]
            )
            parts.append(f'<div class="context">{items}</div>')
        elif kind == "divider":
            parts.append("<hr>")
    thread = entry.where.startswith("a reply")
    label = "replied to a thread" if thread else ""
    return f"""<!doctype html><meta charset="utf-8"><style>
body {{ margin: 0; background: #fff; color: #1d1c1d;
       font: 15px/1.46 Lato, "Helvetica Neue", "DejaVu Sans", sans-serif; }}
#msg {{ display: flex; gap: 8px; padding: 12px 20px; width: 760px; }}
.avatar {{ width: 36px; height: 36px; border-radius: 4px; background: #0b6bcb; color: #fff;
          font-weight: 700; display: flex; align-items: center; justify-content: center; }}
.who {{ font-weight: 900; }} .app {{ font-size: 10px; background: #e8e8e8; padding: 1px 3px;
        border-radius: 2px; color: #616061; margin-left: 4px; }}
.meta {{ color: #616061; font-size: 12px; margin-left: 6px; }}
.header {{ font-size: 18px; font-weight: 900; margin: 4px 0; }}
.section {{ margin: 4px 0; white-space: normal; overflow-wrap: anywhere; }}
.context {{ color: #616061; font-size: 12px; margin: 4px 0; }}
.context .el {{ margin-right: 14px; }}
code {{ font: 12px Menlo, Consolas, monospace; color: #c01343; background: #f6f6f6;
        border: 1px solid #e0e0e0; border-radius: 3px; padding: 0 2px; }}
a {{ color: #1264a3; text-decoration: none; }} .date {{ color: #1264a3; }}
.mention {{ background: #f2c74466; color: #1264a3; border-radius: 3px; padding: 0 2px; }}
hr {{ border: 0; border-top: 1px solid #ddd; }}
.emo {{ display: inline-block; width: 1.15em; height: 1.15em; line-height: 1.15em;
        border-radius: 3px; color: #fff; text-align: center; font: bold 0.8em "DejaVu Sans";
        vertical-align: -0.1em; }}
</style><div id="msg"><div class="avatar">kw</div><div><div><span class="who">keb-watcher</span>
<span class="app">APP</span><span class="meta">{label}</span></div>{"".join(parts)}</div></div>"""


def pictures(items: list[tuple[Entry, dict[str, Any]]]) -> None:
    from playwright.sync_api import sync_playwright

    browser_path = os.environ.get("WATCHER_CHROMIUM") or shutil.which("chromium")
    if not browser_path:
        raise SystemExit("gallery: --png needs Chromium (scripts/browser installs it)")
    IMAGES.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=browser_path, args=["--no-sandbox", "--disable-gpu"]
        )
        tab = browser.new_page(viewport={"width": 800, "height": 400}, device_scale_factor=1)
        for entry, message in items:
            tab.set_content(page(entry, message))
            tab.locator("#msg").screenshot(path=str(IMAGES / f"{entry.slug}.png"))
        browser.close()


def main(argv: list[str]) -> int:
    (DOCS / "gallery.md").write_text(markdown() + "\n")
    if "--png" in argv:
        pictures(rendered())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
