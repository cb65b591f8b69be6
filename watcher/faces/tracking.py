"""The everyday commands of the background face: ``track``, ``untrack``, ``list``,
``status``, ``history``, ``poll`` and ``check-config``. Each parses its arguments, asks
:class:`watcher.app.Watcher` for one thing and prints it (:mod:`watcher.faces.reports`)."""

from __future__ import annotations

import sys

import click

from watcher.app import Watcher
from watcher.config import describe
from watcher.faces import reports as report
from watcher.faces.context import OUTPUT, Context, emit_json, run


@click.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option("--channel", help="Slack channel for this orchestration (name or ID).")
@click.pass_obj
def track(obj: Context, ids: tuple[str, ...], channel: str | None) -> None:
    """Start tracking orchestrations; the next poll takes a baseline.

    \b
    Example:
      watcher track 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11 --channel '#kyma-upgrades'
    """
    with obj.watcher() as app:
        new = app.track(ids, channel)
    for orch_id in ids:
        note = "tracking" if orch_id in new else "tracking again (history kept)"
        click.echo(f"{orch_id}: {note}")


@click.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.pass_obj
def untrack(obj: Context, ids: tuple[str, ...]) -> None:
    """Stop tracking orchestrations (their history is kept).

    \b
    Example:
      watcher untrack 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11
    """
    with obj.watcher() as app:
        unknown = app.untrack(ids)
    for orch_id in ids:
        click.echo(f"{orch_id}: {'was not tracked' if orch_id in unknown else 'untracked'}")
    if unknown:
        sys.exit(1)


@click.command(name="list")
@OUTPUT
@click.pass_obj
def list_(obj: Context, output: str) -> None:
    """Tracked orchestrations with their last known state and counts.

    \b
    Example:
      watcher list --output json
    """
    with obj.watcher() as app:
        items = app.tracked()
    if output == "json":
        emit_json([report.tracked_json(item) for item in items])
    else:
        click.echo("\n".join(report.tracked_lines(items)))


@click.command()
@click.argument("orchestration_id", metavar="ID")
@OUTPUT
@click.pass_obj
def status(obj: Context, orchestration_id: str, output: str) -> None:
    """Fetch one orchestration from KEB now and summarise it.

    Works without a config file when KEB_URL and KEB_TOKEN are set.

    \b
    Example:
      KEB_URL=https://kyma-env-broker.example.com KEB_TOKEN=... watcher status 5a3f1f5e-...
    """
    with obj.watcher(keb_env=True) as app:
        orch = run(app.status(orchestration_id))
    if output == "json":
        emit_json(orch.to_json())
    else:
        click.echo("\n".join(report.orchestration_lines(orch)))


@click.command()
@click.argument("orchestration_id", metavar="ID")
@OUTPUT
@click.pass_obj
def history(obj: Context, orchestration_id: str, output: str) -> None:
    """The recorded transitions of one orchestration, oldest first.

    \b
    Example:
      watcher history 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11 --output json
    """
    with obj.watcher() as app:
        items = app.history(orchestration_id)
    if output == "json":
        emit_json([report.transition_json(t) for t in items])
    else:
        click.echo("\n".join(report.history_lines(items)))


@click.command()
@click.pass_obj
def poll(obj: Context) -> None:
    """Run exactly one cycle over everything tracked, deliver notifications, then exit.

    Exits 1 when a tracked orchestration could not be polled, or a notification is still
    undelivered at exit (it stays in the outbox: see `watcher outbox`). The reasons are
    printed; the next poll catches up with nothing lost.

    \b
    Example (crontab):
      */2 * * * * watcher --config /etc/keb-watcher/watcher.toml poll
    """
    with obj.watcher() as app:
        outcome = run(app.poll())
    cycle = outcome.cycle
    for result in cycle.results:
        if result.ok:
            click.echo(
                f"{result.orchestration_id}: {result.state or '-'}, "
                f"{result.transitions} transitions ({result.mode}: {result.reason})"
            )
    for result in cycle.failed:
        click.echo(f"watcher: {result.orchestration_id}: {result.error}", err=True)
    if not cycle.results:
        click.echo("nothing to poll (track an orchestration first)")
    delivery = outcome.delivery
    if delivery is not None and (delivery.sent or delivery.skipped):
        click.echo(f"notifications: {delivery.sent} sent")
    if delivery is not None:
        for error in delivery.errors:
            click.echo(f"watcher: {error}", err=True)
    if outcome.undelivered:
        click.echo(
            f"watcher: {outcome.undelivered} notifications undelivered "
            "(kept in the outbox; see `watcher outbox list`)",
            err=True,
        )
    if cycle.failed or outcome.undelivered:
        sys.exit(1)


@click.command(name="check-config")
@click.option("--online", is_flag=True, help="Also reach KEB and Slack with the configured tokens.")
@click.pass_obj
def check_config(obj: Context, online: bool) -> None:
    """Validate the configuration and show the effective settings (secrets hidden).

    \b
    Example:
      watcher --config watcher.toml check-config --online
    """
    config = obj.config()
    for line in describe(config):
        click.echo(line)
    app = Watcher(config)
    errors = app.check_templates()
    for error in errors:
        click.echo(f"watcher: {error}", err=True)
    if errors:
        sys.exit(2)
    from watcher.notify.render import TEMPLATES

    click.echo(f"templates: all {len(TEMPLATES)} render against sample data")
    if online:
        from watcher.app import keb_client

        async def reach() -> int:
            async with keb_client(config) as keb:
                return len(await keb.list_orchestrations())

        count = run(reach())
        click.echo(f"KEB: reachable, token accepted, {count} orchestrations")
        for line in app.check_slack():
            click.echo(line)
    click.echo("configuration OK")
