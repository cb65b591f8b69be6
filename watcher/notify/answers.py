"""Slack's permanent answers, and the one-line fix for each.

A permanent answer is not retried blindly: the notification waits (``failed``) with Slack's
answer and the fix, ``watcher poll`` exits 1 naming both, and ``watcher outbox retry`` sends
what waits once it is fixed. ``check-config --online`` finds the same problems up front.
"""

from __future__ import annotations

from typing import Final

RETRY: Final = "then `watcher outbox retry --all`"

#: Slack error code -> what to do about it.
FIXES: Final = {
    "not_in_channel": "invite the app to the channel (/invite @your-app)",
    "channel_not_found": "check slack.channel, the routes and `track --channel` (a private "
    "channel also needs the app invited: /invite @your-app)",
    "is_archived": "unarchive the channel or configure another one in slack.channel",
    "invalid_auth": "slack.token is not accepted: copy the bot token (xoxb-...) again",
    "not_authed": "slack.token is empty: set it to the bot token (xoxb-...)",
    "token_revoked": "the bot token was revoked: reinstall the Slack app and copy its token",
    "token_expired": "the bot token expired: reinstall the Slack app and copy its token",
    "account_inactive": "the Slack app was removed or its owner deactivated: reinstall it",
    "missing_scope": "add the missing scope to the Slack app and reinstall it "
    "(deploy/slack-app-manifest.yaml)",
    "restricted_action": "posting to this channel is restricted: let the app post or pick "
    "another channel",
    "msg_too_long": "a template makes the message too long: shorten it ([templates] dir)",
    "no_text": "a template renders an empty message: fix it ([templates] dir)",
    "invalid_blocks": "a template makes blocks Slack refuses: fix it ([templates] dir)",
    "redirected_elsewhere": "set slack.base_url to the address that serves the Slack Web API "
    "itself (https://slack.com/api/ or your proxy), not one that redirects",
    "ekm_access_denied": "the workspace's encryption keys deny access: ask a Slack admin",
}


def fix_for(error: str, *, queued: bool = True) -> str:
    """The one-line fix for Slack's answer ``error`` (its code may carry details after it);
    ``queued``: notifications wait for it (then say how to send them)."""
    code = error.split(" ", 1)[0].split(":", 1)[0]
    fix = FIXES.get(code, "see Slack's answer")
    return f"{fix}, {RETRY}" if queued else fix
