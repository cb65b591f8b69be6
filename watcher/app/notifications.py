"""Checking, previewing and testing notifications: what ``check-config``, ``render`` and
``notify-test`` ask of the composition root, and the names of the notification stack those
faces show (templates, samples, outbox statuses). The notification stack (Jinja2, slack-sdk)
loads only here and in the sender, never on the poll path without Slack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from watcher.app.factories import destination
from watcher.core.diff import TransitionKind
from watcher.core.failures import failure_groups
from watcher.core.models import FAILED
from watcher.core.policy import summary
from watcher.core.wording import transition_text
from watcher.errors import ConfigError, UsageError
from watcher.notify.render import TEMPLATES, Renderer
from watcher.notify.samples import SAMPLES
from watcher.store.outbox import STATUSES, UNDELIVERED

if TYPE_CHECKING:
    from watcher.app import Watcher
    from watcher.notify.render import Rendered

__all__ = [
    "SAMPLES",
    "STATUSES",
    "TEMPLATES",
    "UNDELIVERED",
    "NotificationTools",
    "Renderer",
]


class NotificationTools:
    """The notification checks of one :class:`~watcher.app.Watcher`."""

    def __init__(self, app: Watcher) -> None:
        self.app = app

    def check_templates(self) -> list[str]:
        """Render every template against sample data; the errors, one line each."""
        from watcher.notify.samples import SAMPLES

        return self.app.renderer().check(SAMPLES)

    def check_slack(self) -> list[str]:
        """Reach Slack: ``auth.test`` and the channel (bot token), or nothing (webhook)."""
        from watcher.notify.slack import BotSlack

        dest = destination(self.app.config)
        if dest is None:
            return ["Slack: not configured (notifications are off)"]
        if not isinstance(dest, BotSlack):
            return ["Slack: incoming webhook configured (not called: it would post a message)"]
        from watcher.errors import SlackFailure
        from watcher.notify.answers import fix_for

        try:
            who = dest.auth_test()
        except SlackFailure as failure:
            if failure.transient:
                raise
            raise ConfigError(
                f"slack.token: Slack answered {failure.error}; "
                f"fix: {fix_for(failure.error, queued=False)}"
            ) from None
        lines = [f"Slack: token accepted (team {who.get('team')}, bot user {who.get('user')})"]
        from watcher.notify.slack import SCOPES

        granted = dest.granted_scopes()
        missing = sorted(set(SCOPES) - granted) if granted is not None else []
        if missing:
            raise ConfigError(
                "slack.token: the Slack app lacks the scopes "
                + ", ".join(f"{scope} ({SCOPES[scope]})" for scope in missing)
                + "; add them (deploy/slack-app-manifest.yaml) and reinstall the app"
            )
        if granted is not None:
            lines.append(f"Slack: token has every scope needed ({', '.join(sorted(SCOPES))})")
        channels = {self.app.config.slack.channel, *self.app.config.slack.routes.values()} - {None}
        for channel in sorted(c for c in channels if c):
            try:
                found = dest.channel_info(channel).get("channel", {})
            except SlackFailure as failure:
                if failure.transient:
                    raise
                raise ConfigError(
                    f"slack.channel {channel}: Slack answered {failure.error}; "
                    f"fix: {fix_for(failure.error, queued=False)}"
                ) from None
            problem = (
                "is_archived"
                if found.get("is_archived")
                else "not_in_channel"
                if found.get("is_member") is False
                else None
            )
            if problem:
                raise ConfigError(
                    f"slack.channel {channel}: {problem}; fix: {fix_for(problem, queued=False)}"
                )
            lines.append(
                f"Slack: channel {channel} found ({found.get('id', '?')}), the app is a member"
            )
        return lines

    def notify_test(self, channel: str | None) -> dict[str, Any]:
        """Post a test message; Slack's answer, as Slack gave it."""
        from watcher.notify.blocks import to_message
        from watcher.notify.slack import BotSlack, metadata

        dest = destination(self.app.config)
        if dest is None:
            raise ConfigError(
                "slack: not configured: set slack.token and slack.channel, or slack.webhook_url"
            )
        target = channel or self.app.config.slack.channel
        if isinstance(dest, BotSlack) and not target:
            raise UsageError("no channel: give --channel or set slack.channel")
        message = to_message(
            ":wave: *keb-watcher test message*\n"
            "If you can read this, notifications reach this channel."
        )
        meta = metadata("test", f"test:{self.app.clock().isoformat()}", None)
        return dict(dest.post(target, message, meta).answer)

    def render(self, kind: str, orch_id: str | None) -> Rendered:
        """What a notification of ``kind`` looks like: for sample data, or for a tracked
        orchestration as it is now."""
        from watcher.notify.samples import SAMPLES

        renderer = self.app.renderer()
        renderer.template_for(kind)
        if orch_id is None:
            return renderer.render(kind, SAMPLES[kind])
        orch_id = self.app.resolve(orch_id)
        head = self.app.store.load_head(orch_id)
        if head.orchestration is None:
            raise UsageError(f"{orch_id} has no snapshot yet (track it and poll first)")
        payload = self._live_payload(kind, orch_id)
        return renderer.render(kind, payload)

    def _live_payload(self, kind: str, orch_id: str) -> dict[str, Any]:
        """The sample payload of ``kind`` with everything a snapshot can tell filled in."""
        from watcher.notify.samples import SAMPLES

        snap = self.app.store.load_snapshot(self.app.store.load_head(orch_id))
        assert snap.orchestration is not None
        payload = dict(SAMPLES[kind])
        payload.update(summary(snap.orchestration, snap.state_counts(), self.app.clock(), None))
        failed = [
            {"description": op.description, "shoot": op.shoot_name, "operation_id": op.operation_id}
            for op in snap.operations.values()
            if op.state == FAILED
        ]
        history = self.app.store.history(orch_id)
        payload.update(
            failures=failure_groups(failed),
            new_failures=len(failed),
            more_reasons=0,
            last_change=transition_text(history[-1]) if history else "-",
        )
        for t in reversed(history):
            if t.kind is TransitionKind.ORCHESTRATION_STATE:
                payload["change"] = {
                    "from": t.from_state,
                    "to": t.to_state,
                    "via": list(t.via),
                    "description": t.description,
                }
                break
        payload["orchestration"] = {**payload.get("orchestration", {}), "id": orch_id}
        return payload
