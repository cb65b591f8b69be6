"""What every face shares: the click context object, the ``--output`` option, JSON output.

Lives apart from :mod:`watcher.cli` so that the face modules and the root group can both
import it without an import cycle.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from watcher.core.ids import states
from watcher.faces.completion import complete_states

if TYPE_CHECKING:
    # The app (KEB client, store, engine) loads when a command asks for it, not when the
    # command line is parsed: `--help`, `--version` and shell completion stay quick.
    from watcher.app import Watcher
    from watcher.config import Config

T = TypeVar("T")

OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Plain text for people, JSON for scripts.",
)

STATE = click.option(
    "--state",
    "-s",
    "chosen",
    multiple=True,
    metavar="S",
    callback=lambda _ctx, _param, value: states(value),
    shell_complete=complete_states,
    help="Only these states, repeated or comma-separated, any case (e.g. --state "
    "failed,inprogress): pending, inprogress, canceling, retrying, succeeded, failed, canceled.",
)


class Context:
    """What the group passes to its commands."""

    def __init__(self, config_path: Path | None, debug: bool) -> None:
        self.config_path = config_path
        self.debug = debug

    def config(self, *, keb_env: bool = False, local: bool = False) -> Config:
        """The configuration; with ``keb_env``, KEB_URL/KEB_TOKEN win and no file is needed.
        With ``local`` (a command that reads only the database and templates), an unset
        ``${VAR}`` of a KEB, Slack or service connection setting is not an error
        (docs/contract.md §2.2): using that setting raises it."""
        from watcher.config import load_config
        from watcher.logs import redact_secrets

        # An explicit --config must exist even where KEB_URL/KEB_TOKEN would do.
        required = not keb_env or self.config_path is not None
        config = load_config(
            self.config_path,
            os.environ,
            require_file=required,
            env_overrides=keb_env,
            local=local,
        )
        redact_secrets(config)
        return config

    def watcher(self, *, keb_env: bool = False, local: bool = False) -> Watcher:
        from watcher.app import Watcher

        return Watcher(self.config(keb_env=keb_env, local=local))


@contextmanager
def quiet_retries(obj: Context) -> Iterator[None]:
    """A one-shot command shows the user one line: the KEB client's retry warnings ("...;
    retrying in 1.0s (attempt 2 of 4)") are logged only with ``--debug``; the error that ends
    the retries is the line the command prints."""
    logger = logging.getLogger("watcher.keb")
    level = logger.level
    if not obj.debug:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def terminal_width() -> int | None:
    """How wide tables may be: ``$COLUMNS`` when set, else the terminal's width when stdout
    is one; ``None`` in a pipe (every column, nothing cut: scripts and grep see it all)."""
    import shutil
    import sys

    if os.environ.get("COLUMNS", "").strip().isdigit() or sys.stdout.isatty():
        return max(shutil.get_terminal_size().columns, 40)
    return None


def run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coro)


class Terminated(Exception):
    """SIGTERM stopped the work of :func:`run_terminable` (exit 143, as for ``watch``)."""


def run_terminable(coro: Coroutine[Any, Any, T]) -> T:
    """:func:`run`, where SIGTERM (cron's timeout, systemd, Kubernetes) cancels ``coro`` like
    Ctrl-C does: its ``finally`` blocks run (the lease is released), then :class:`Terminated`.
    What ``coro`` committed stays committed; what it did not is done again next time."""
    import asyncio
    import signal

    async def main() -> T:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            if task.cancelled() and not _cancelling():
                raise Terminated from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    return asyncio.run(main())


def _cancelling() -> int:
    """Whether this task itself is being cancelled (Ctrl-C), not only the work it awaits."""
    import asyncio

    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))
