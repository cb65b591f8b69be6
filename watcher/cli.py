"""The ``watcher`` command line: thin click commands over :mod:`watcher.app`.

Every error is a :class:`watcher.errors.WatcherError` printed as one line on stderr with its
exit code (2 for usage and configuration, 1 otherwise); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TextIO, TypeVar, cast

import click

from watcher.app import Watcher
from watcher.config.loader import Config, describe, load_config
from watcher.core.inert import inert
from watcher.errors import WatcherError
from watcher.faces import reports as report
from watcher.faces.demo import demo_command
from watcher.faces.notify import notify_test_command, outbox_command, render_command
from watcher.faces.run.command import run_command
from watcher.faces.sim import sim_command
from watcher.faces.watch.command import watch_command
from watcher.logs import FORMATS, configure, redact_secrets
from watcher.notify.render import TEMPLATES
from watcher.redact import SafeStream, safe_stderr

T = TypeVar("T")

OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Plain text for people, JSON for scripts.",
)


class Context:
    """What the group passes to its commands."""

    def __init__(self, config_path: Path | None, debug: bool) -> None:
        self.config_path = config_path
        self.debug = debug

    def config(self, *, keb_env: bool = False) -> Config:
        """The configuration; with ``keb_env``, KEB_URL/KEB_TOKEN win and no file is needed."""
        # An explicit --config must exist even where KEB_URL/KEB_TOKEN would do.
        required = not keb_env or self.config_path is not None
        config = load_config(
            self.config_path, os.environ, require_file=required, env_overrides=keb_env
        )
        redact_secrets(config)
        return config

    def watcher(self, *, keb_env: bool = False) -> Watcher:
        return Watcher(self.config(keb_env=keb_env))


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Configuration file [default: $WATCHER_CONFIG, else ./watcher.toml].",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--verbose", "-v", is_flag=True, help="Log what each poll does.")
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="Log lines for people, or JSON lines (with orchestration and intent IDs).",
)
@click.version_option(package_name="keb-watcher")
@click.pass_context
def main(
    ctx: click.Context, config_path: Path | None, debug: bool, verbose: bool, log_format: str
) -> None:
    """Follow Kyma Environment Broker upgrade orchestrations.

    \b
    Try it with no setup at all:
      watcher demo
    Then against your KEB:
      watcher --config watcher.toml track 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11
      watcher poll && watcher history 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11
    """
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    configure(level, log_format)
    ctx.obj = Context(config_path, debug)


@main.command()
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


@main.command()
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


@main.command(name="list")
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


@main.command()
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


@main.command()
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


@main.command()
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
                f"{result.orchestration_id}: {inert(result.state or '-')}, "
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


@main.command(name="check-config")
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


main.add_command(sim_command, name="sim")
main.add_command(demo_command, name="demo")
main.add_command(watch_command, name="watch")
main.add_command(notify_test_command, name="notify-test")
main.add_command(render_command, name="render")
main.add_command(outbox_command, name="outbox")
main.add_command(run_command, name="run")


def entrypoint(argv: list[str] | None = None) -> int:
    """Run the command line; map our errors to one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    with safe_stderr():  # secrets masked and KEB text inert in every line written to stderr
        return _entrypoint(args)


def _entrypoint(args: list[str]) -> int:
    debug = "--debug" in args
    try:
        main.main(args=args, prog_name="watcher", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("watcher: interrupted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return 2 if isinstance(exc, click.UsageError) else exc.exit_code
    except WatcherError as exc:
        if debug:
            raise
        click.echo(f"watcher: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("watcher: interrupted", err=True)
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def console() -> None:
    """The ``watcher`` console script. Its stderr stays redacted to the end of the process,
    for a traceback the interpreter prints as it exits too."""
    sys.stderr = cast(TextIO, SafeStream(sys.stderr))
    sys.exit(entrypoint())
