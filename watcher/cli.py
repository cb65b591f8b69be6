"""The ``watcher`` command line: thin click commands over :mod:`watcher.app`.

Every error is a :class:`watcher.errors.WatcherError` printed as one line on stderr with its
exit code (2 for usage and configuration, 1 otherwise); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Final, TextIO, cast

import click

from watcher import __version__
from watcher.errors import WatcherError
from watcher.faces.context import Context
from watcher.logs import FORMATS, SafeStream, configure, safe_stderr

#: Every command and where it lives. A command's module is imported only when that command
#: runs (or ``--help`` lists them all): `watcher poll` from cron never pays for the live view
#: (rich), the service (apscheduler, prometheus-client) or the simulator.
COMMANDS: Final = {
    "track": "watcher.faces.tracking:track",
    "untrack": "watcher.faces.tracking:untrack",
    "list": "watcher.faces.tracking:list_",
    "status": "watcher.faces.tracking:status",
    "history": "watcher.faces.tracking:history",
    "poll": "watcher.faces.tracking:poll",
    "check-config": "watcher.faces.tracking:check_config",
    "watch": "watcher.faces.watch.command:watch_command",
    "run": "watcher.faces.run.command:run_command",
    "notify-test": "watcher.faces.notify:notify_test_command",
    "render": "watcher.faces.notify:render_command",
    "outbox": "watcher.faces.notify:outbox_command",
    "sim": "watcher.faces.sim:sim_command",
    "demo": "watcher.faces.demo:demo_command",
    "orchestrations": "watcher.faces.orchestrations:orchestrations_command",
    "completion": "watcher.faces.completion:completion_command",
    "silence": "watcher.faces.silences:silence_command",
    "unsilence": "watcher.faces.silences:unsilence_command",
    "fleet": "watcher.faces.fleet:fleet_group",
}


def _obj(ctx: click.Context) -> Context:
    obj = ctx.find_object(Context)
    assert obj is not None, "the root group sets the Context before any command parses"
    return obj


def _set_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        _obj(ctx).config_path = value


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _obj(ctx).debug = True
        configure(logging.DEBUG, _log_format(ctx))


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and logging.getLogger().getEffectiveLevel() > logging.INFO:
        configure(logging.INFO, _log_format(ctx))


def _set_log_format(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_root().params["log_format"] = value
        configure(min(logging.getLogger().getEffectiveLevel(), logging.WARNING), value)


def _log_format(ctx: click.Context) -> str:
    return str(ctx.find_root().params.get("log_format") or "text")


def global_options() -> list[click.Option]:
    """The root group's options once more, for after the command (``watcher poll --config
    PATH`` as kubectl and gh allow). Hidden from each command's help; the root's lists them.
    They act through callbacks while the command's arguments are parsed, before it runs."""
    return [
        click.Option(
            ["--config", "-c"],
            type=click.Path(path_type=Path, dir_okay=False),
            expose_value=False,
            hidden=True,
            callback=_set_config,
        ),
        click.Option(
            ["--debug"], is_flag=True, expose_value=False, hidden=True, callback=_set_debug
        ),
        click.Option(
            ["--verbose", "-v"],
            is_flag=True,
            expose_value=False,
            hidden=True,
            callback=_set_verbose,
        ),
        click.Option(
            ["--log-format"],
            type=click.Choice(FORMATS),
            expose_value=False,
            hidden=True,
            callback=_set_log_format,
            is_eager=True,
        ),
    ]


def with_global_options(command: click.Command) -> click.Command:
    """Add :func:`global_options` to ``command`` (and to a group's commands), once."""
    names = {opt for param in command.params for opt in getattr(param, "opts", ())}
    command.params.extend(o for o in global_options() if not names & set(o.opts))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_global_options(sub)
    return command


class LazyGroup(click.Group):
    """A click group that imports a command's module when the command is asked for.
    Commands added with ``add_command`` (tests replace ``watch`` this way) win."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, _, attr = where.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        if not getattr(command, "_watcher_globals", False):
            with_global_options(command)
            command._watcher_globals = True  # type: ignore[attr-defined]
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.version_option(__version__, prog_name="keb-watcher")
@click.pass_context
def main(
    ctx: click.Context, config_path: Path | None, debug: bool, verbose: bool, log_format: str
) -> None:
    """Follow Kyma Environment Broker upgrade orchestrations.

    \b
    Try it with no setup at all:
      watcher demo
    Then against your KEB:
      watcher --config watcher.toml orchestrations --state inprogress
      watcher --config watcher.toml track 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11
      watcher poll && watcher history 5a3f1f5e

    Global options work before or after the command (`watcher poll --config PATH`).
    """
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    configure(level, log_format)
    ctx.obj = Context(config_path, debug)


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
