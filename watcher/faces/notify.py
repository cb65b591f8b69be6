"""Commands about notifications: `notify-test`, `render`, `outbox`."""

from __future__ import annotations

import json
import os
import sys

import click

from watcher.app import Watcher
from watcher.app.notifications import SAMPLES, STATUSES, TEMPLATES, UNDELIVERED, Renderer
from watcher.config import default_config_path
from watcher.faces.completion import complete_ids


def _app(ctx: click.Context, *, local: bool = False) -> Watcher:
    """The app; ``local`` for a command that reads only the database and templates."""
    app: Watcher = ctx.find_root().obj.watcher(local=local)
    return app


@click.command()
@click.option("--channel", help="Channel name or ID [default: slack.channel].")
@click.pass_context
def notify_test_command(ctx: click.Context, channel: str | None) -> None:
    """Send a test message to Slack and print Slack's real answer.

    \b
    Example:
      watcher --config watcher.toml notify-test --channel '#kyma-upgrades'
    """
    with _app(ctx) as app:
        answer = app.notifications.notify_test(channel)
    click.echo(json.dumps(answer, indent=2, default=str))


@click.command()
@click.argument("kind", type=click.Choice(sorted(TEMPLATES)))
@click.option(
    "--orchestration",
    "orch_id",
    shell_complete=complete_ids,
    help="Render for a tracked orchestration as it is now.",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: the fallback text and the blocks; json: the Slack message as sent.",
)
@click.pass_context
def render_command(ctx: click.Context, kind: str, orch_id: str | None, output: str) -> None:
    """Print what a notification template produces, for sample data or a tracked orchestration.

    Templates come from [templates] dir first, then the packaged ones. A template that fails
    is reported (exit 1) together with the plain message that would be sent instead.

    \b
    Example:
      watcher render finished
      watcher render progress --orchestration 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11
    """
    explicit = ctx.find_root().obj.config_path is not None
    if orch_id is None and not explicit and not default_config_path(os.environ).exists():
        rendered = Renderer().render(kind, SAMPLES[kind])  # no configuration needed for samples
    else:
        with _app(ctx, local=True) as app:
            rendered = app.notifications.render(kind, orch_id)
    message = rendered.message
    if output == "json":
        click.echo(
            json.dumps(
                {"text": message.text, "blocks": message.blocks}, indent=2, ensure_ascii=False
            )
        )
    else:
        click.echo(message.text)
        click.echo("")
        click.echo(f"({len(message.blocks)} blocks; `--output json` shows them)")
    if rendered.error:
        click.echo(f"watcher: {rendered.error}", err=True)
        sys.exit(1)


@click.command()
@click.argument("action", type=click.Choice(["list", "retry", "drop"]), default="list")
@click.argument("ids", nargs=-1, type=int)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="With list: which statuses [default: pending, failed, dead].",
)
@click.option(
    "--all", "everything", is_flag=True, help="With retry/drop: every failed and dead one."
)
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def outbox_command(
    ctx: click.Context,
    action: str,
    ids: tuple[int, ...],
    statuses: tuple[str, ...],
    everything: bool,
    output: str,
) -> None:
    """Pending, failed and dead notifications, and what to do with them.

    `retry` sends failed or dead ones again (with a fresh attempt count); `drop` gives up on
    them. Delivery happens on the next `watcher poll` (or in `watcher run`).

    \b
    Example:
      watcher outbox list
      watcher outbox retry 12 13
      watcher outbox drop --all
    """
    with _app(ctx, local=True) as app:  # retry and drop only mark; delivery is poll's
        outbox = app.outbox()
        if action == "list":
            entries = outbox.entries(statuses or UNDELIVERED)
            if output == "json":
                click.echo(json.dumps([e.to_json() for e in entries], indent=2))
                return
            if not entries:
                click.echo("outbox: nothing undelivered")
                return
            for e in entries:
                orch = e.orchestration_id or "-"
                line = f"{e.id:>5}  {e.status:<10} {e.kind:<16} {orch:<38} attempts {e.attempts}"
                if e.last_error:
                    line += f"  last error: {e.last_error}"
                if e.render_error:
                    line += f"  template: {e.render_error}"
                click.echo(line)
            return
        chosen = list(ids)
        if everything:
            chosen += [e.id for e in outbox.entries(("failed", "dead"))]
        if not chosen:
            raise click.UsageError(f"outbox {action}: give IDs or --all")
        done = outbox.retry(chosen, app.clock()) if action == "retry" else outbox.drop(chosen)
        verb = "queued again" if action == "retry" else "dropped"
        click.echo(f"outbox: {done} of {len(set(chosen))} {verb}")
