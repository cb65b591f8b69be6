"""``watcher silence`` and ``watcher unsilence``: quiet a noisy orchestration for a while, as
Alertmanager silences alerts. Its failure digests, thread replies and stuck alerts are held
back (dropped, not sent later) until the silence ends; its card stays current and its final
outcome is always sent (docs/notifications.md). They read and write the database alone."""

from __future__ import annotations

import getpass
import sys

import click

from watcher.core.durations import format_duration, parse_duration
from watcher.errors import UsageError
from watcher.faces.completion import complete_ids
from watcher.faces.context import Context
from watcher.faces.reports import when

#: How long a silence lasts unless --for says otherwise.
DEFAULT_FOR = "2h"


def _who() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return None


@click.command(name="silence")
@click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=complete_ids)
@click.option(
    "--for",
    "duration",
    default=DEFAULT_FOR,
    show_default=True,
    metavar="DUR",
    help="How long, e.g. --for 30m or --for 1d.",
)
@click.option(
    "--reason",
    metavar="TEXT",
    help='Why, shown on the card and in `list`, e.g. --reason "known quota issue, INC-1234".',
)
@click.pass_obj
def silence_command(obj: Context, ids: tuple[str, ...], duration: str, reason: str | None) -> None:
    """Hold back an orchestration's digests, replies and stuck alerts for a while.

    Its card stays current and its final outcome is always sent. What is held back is
    dropped, not sent later (`watcher outbox list --status dropped` shows it). Silencing again
    replaces the silence. IDs may be unique prefixes (8+ characters) of tracked ones.

    \b
    Example:
      watcher silence 5a3f1f5e --for 2h --reason "quota issue in eu-west, INC-1234"
      watcher unsilence 5a3f1f5e
    """
    seconds = parse_duration(duration, key="--for")
    if seconds <= 0:
        raise UsageError(f"--for: must be more than 0s, got {duration!r}")
    text = " ".join(reason.split()) if reason else None
    with obj.watcher(local=True) as app:
        full, until = app.silence(ids, seconds, text or None, _who())
    for orch_id in full:
        why = f": {text}" if text else ""
        click.echo(f"{orch_id}: silenced for {format_duration(seconds)}, until {when(until)}{why}")


@click.command(name="unsilence")
@click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=complete_ids)
@click.pass_obj
def unsilence_command(obj: Context, ids: tuple[str, ...]) -> None:
    """Lift silences: notifications go out again from now on. Exits 1 if one of them was
    not silenced.

    \b
    Example:
      watcher unsilence 5a3f1f5e
    """
    with obj.watcher(local=True) as app:
        full, loud = app.unsilence(ids)
    for orch_id in full:
        click.echo(f"{orch_id}: {'was not silenced' if orch_id in loud else 'unsilenced'}")
    if loud:
        sys.exit(1)
