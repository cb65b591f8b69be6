"""The ``watcher`` command line: thin click commands over :mod:`watcher.app`.

Every error is a :class:`watcher.errors.WatcherError` printed as one line on stderr with its
exit code (2 for usage and configuration, 1 otherwise); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from watcher.errors import WatcherError
from watcher.faces.context import Context
from watcher.faces.demo import demo_command
from watcher.faces.notify import notify_test_command, outbox_command, render_command
from watcher.faces.run.command import run_command
from watcher.faces.sim import sim_command
from watcher.faces.tracking import COMMANDS
from watcher.faces.watch.command import watch_command
from watcher.logs import FORMATS, configure


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


for name, command in COMMANDS.items():
    main.add_command(command, name=name)
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
    """The ``watcher`` console script."""
    sys.exit(entrypoint())
