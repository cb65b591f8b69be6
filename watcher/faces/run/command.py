"""``watcher run``: the background service (:mod:`watcher.faces.run.service`) as a command."""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from watcher.app import Watcher
from watcher.faces.context import Context
from watcher.faces.run.service import CYCLE_GRACE, FLUSH_DEADLINE, Service

#: Loggers whose INFO lines (start, lease, cycles with changes, stop) a service always shows.
SERVICE_LOGGERS = ("watcher.faces.run.service", "watcher.store.lease")


@click.command(
    epilog=(
        f"On SIGTERM or Ctrl-C it lets the cycle in flight finish (up to {CYCLE_GRACE:g}s), "
        f"delivers pending notifications (up to {FLUSH_DEADLINE:g}s), releases the lease and "
        "exits 0, within 5s of the signal; give it at least 10s before a SIGKILL."
    )
)
@click.pass_obj
def run_command(obj: Context) -> None:
    """Run the background service until SIGTERM or Ctrl-C: poll, notify, serve health.

    Polls on the [poll] schedule (interval or cron, plus jitter), each tracked orchestration
    as often as its state needs: every tick while operations run, every third tick while
    everything unfinished is pending, less often while they wait for maintenance windows.
    Notifications are delivered between polls. With [poll] discover = true it also tracks
    new orchestrations that KEB lists (ones that already ended are left alone). With
    [service] listen it serves /healthz, /readyz and /metrics.

    Only one keb-watcher polls a database at a time: a second `run` waits for the lease
    (and says who holds it), and `watcher poll` exits 1 while `run` holds it.

    \b
    Example:
      watcher --config /etc/keb-watcher/watcher.toml --log-format json run
    """
    config = obj.config()
    root = logging.getLogger().getEffectiveLevel()
    for name in SERVICE_LOGGERS:
        logging.getLogger(name).setLevel(min(root, logging.INFO))
    # APScheduler logs two INFO lines per job run (every second for delivery): --debug only.
    logging.getLogger("apscheduler").setLevel(root if root <= logging.DEBUG else logging.WARNING)
    with Watcher(config) as app:
        # The service owns the database: a fresh deployment starts from nothing and is ready,
        # so that a container does not crash-loop before anyone can `track`.
        app.open_store(create=True)
        code = asyncio.run(Service(app).run())
    if code:
        sys.exit(code)
