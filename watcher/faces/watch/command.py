"""``watcher watch ID``: follow one orchestration until it is terminal; the exit code says how
it ended (PRODUCT.md, "Exit codes of watch").

The command wires the configuration, a store, the KEB client and a renderer around
:func:`watcher.core.watching.follow`. Its seams (sleep, clocks, whether stdout is a terminal, what
``--notify`` does) are a :class:`WatchHooks` value: :func:`make_watch_command` builds the
command over any hooks, and ``watch_command`` is the one with the real ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import click
from rich.console import Console

from watcher.app import DELIVERY_DEADLINE, Watcher, check_ids, keb_client
from watcher.config.loader import Config
from watcher.core.durations import parse_duration
from watcher.core.watching import (
    TERMINATE,
    Sink,
    Sleep,
    Summary,
    WatchOptions,
    WatchOutcome,
    follow,
)
from watcher.engine.cycle import Engine, utcnow
from watcher.errors import StoreError, UsageError, WatcherError
from watcher.faces.watch.live import JsonLines, LiveView, PlainLines
from watcher.keb import KebClient
from watcher.store.database import Store

if TYPE_CHECKING:
    from watcher.cli import Context

#: Called once the watch has ended (not after Ctrl-C) when ``--notify`` is given.
OnFinished = Callable[[Summary, Config, Store], Awaitable[None]]

#: Outcomes that are an error of the watch itself rather than the orchestration's result.
_ERRORS = (
    WatchOutcome.TIMEOUT,
    WatchOutcome.NOT_FOUND,
    WatchOutcome.AUTH,
    WatchOutcome.UNREACHABLE,
    WatchOutcome.KEB_ERROR,
)


def slack_configured(config: Config) -> bool:
    slack = config.slack
    return bool(slack.webhook_url) or bool(slack.token and slack.channel)


async def deliver_notifications(summary: Summary, config: Config, store: Store) -> None:
    """``--notify``: deliver what the watch recorded, the final summary included, through the
    configured Slack destination (the same outbox and sender as ``watcher poll``)."""
    if not slack_configured(config):
        click.echo("watcher: --notify: notifications are not configured", err=True)
        return
    app = Watcher(config, store=store)
    sender = app.sender()
    assert sender is not None
    report = await sender.deliver(deadline=time.monotonic() + DELIVERY_DEADLINE)
    for error in report.errors:
        click.echo(f"watcher: --notify: {error}", err=True)
    left = sender.outbox.undelivered()
    if left:
        click.echo(
            f"watcher: --notify: {left} notifications undelivered (see `watcher outbox`)", err=True
        )


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


@dataclass(frozen=True, slots=True)
class WatchHooks:
    """The command's seams; tests pass a sleep that advances the simulator's clock."""

    sleep: Sleep = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = utcnow
    rng: Callable[[], float] = random.random
    terminal: Callable[[], bool] = stdout_is_terminal
    on_finished: OnFinished = deliver_notifications


def make_sink(output: str, orch_id: str, hooks: WatchHooks) -> Sink:
    """``json``: JSON lines. ``auto`` and ``text``: the live view on a terminal, else lines."""
    if output == "json":
        return JsonLines(sys.stdout, sys.stderr)
    if hooks.terminal():
        return LiveView(Console(), orch_id, hooks.clock)
    return PlainLines(sys.stdout, sys.stderr)


@contextmanager
def quiet_engine_logs() -> Iterator[None]:
    """The watch reports every failed poll itself ("reconnecting ..."); the engine's and the
    client's warnings would repeat it and tear the live view. ``--verbose``/``--debug`` keep
    them."""
    loggers = [logging.getLogger(name) for name in ("watcher.engine.cycle", "watcher.keb")]
    levels = [logger.level for logger in loggers]
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _seconds(value: str | None, option: str, *, positive: bool = False) -> float | None:
    if value is None:
        return None
    seconds = parse_duration(value, key=option)
    if positive and seconds <= 0:
        raise UsageError(f"{option}: must be more than 0s, got {value!r}")
    return seconds


async def _run(
    keb: KebClient,
    config: Config,
    engine: Engine,
    sink: Sink,
    orch_id: str,
    options: WatchOptions,
    hooks: WatchHooks,
    notify: bool,
) -> Summary:
    store = engine.store
    # SIGTERM (timeout, systemd, Kubernetes) ends the watch like Ctrl-C: final frame, summary.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel, TERMINATE)
    async with keb:
        summary = await follow(
            orch_id,
            engine,
            store,
            sink,
            options,
            sleep=hooks.sleep,
            clock=hooks.clock,
            now=hooks.now,
            rng=hooks.rng,
        )
    if notify:
        try:
            await hooks.on_finished(summary, config, store)
        except WatcherError as exc:
            click.echo(f"watcher: --notify: {exc}", err=True)
    return summary


def run_watch(
    obj: Context,
    orch_id: str,
    options: WatchOptions,
    *,
    output: str,
    notify: bool,
    hooks: WatchHooks,
) -> int:
    """Follow ``orch_id``; return the exit code. Usage and configuration errors raise
    (exit 2 through :func:`watcher.cli.entrypoint`)."""
    check_ids([orch_id])
    config = obj.config(keb_env=True)
    # With a config file, record where `watcher poll` does and with its notification policy:
    # intents for what this watch records wait in the outbox for the next poll or run.
    app = Watcher(config, clock=hooks.now) if config.source is not None else None
    try:
        store = app.store if app is not None else Store(":memory:")
    except StoreError as exc:
        raise UsageError(str(exc)) from None  # the configured storage.path is unusable
    summary: Summary | None = None
    terminated = False
    try:
        keb = keb_client(config)
        if app is not None:
            engine = app.engine(keb)
        else:
            every = config.poll.full_sweep_every
            engine = Engine(store, keb, clock=hooks.now, full_sweep_every=every)
        with quiet_engine_logs():
            sink = make_sink(output, orch_id, hooks)
            try:
                summary = asyncio.run(
                    _run(keb, config, engine, sink, orch_id, options, hooks, notify)
                )
            except KeyboardInterrupt:
                pass
            except asyncio.CancelledError:  # SIGTERM
                terminated = True
            finally:
                sink.close()
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    finally:
        store.close()
    if terminated:
        click.echo("watcher: terminated", err=True)
        return 143
    if summary is None:
        click.echo("watcher: interrupted", err=True)
        return 130
    if summary.outcome in _ERRORS:
        click.echo(f"watcher: {orch_id}: {summary.reason}", err=True)
    return summary.exit_code


def make_watch_command(hooks: WatchHooks | None = None) -> click.Command:
    """The ``watch`` command over ``hooks`` (default: the real clock, sleep and terminal)."""
    seams = hooks or WatchHooks()

    @click.command(name="watch")
    @click.argument("orchestration_id", metavar="ID")
    @click.option(
        "--interval",
        metavar="DUR",
        help="Poll this often [default: adaptive: 5s while operations run, 30s while all "
        "wait, 60s-5m while all wait for maintenance windows].",
    )
    @click.option("--timeout", metavar="DUR", help="Exit 4 if not terminal after this long.")
    @click.option(
        "--give-up-after",
        metavar="DUR",
        default="10m",
        show_default=True,
        help="Exit 5 once KEB has been unreachable this long (shorter outages are ridden out).",
    )
    @click.option(
        "--output",
        "-o",
        type=click.Choice(["auto", "text", "json"]),
        default="auto",
        show_default=True,
        help="auto/text: a live view on a terminal, plain lines otherwise; json: JSON lines.",
    )
    @click.option("--notify", is_flag=True, help="Send the final summary to Slack.")
    @click.pass_obj
    def watch(
        obj: Context,
        orchestration_id: str,
        interval: str | None,
        timeout: str | None,
        give_up_after: str,
        output: str,
        notify: bool,
    ) -> None:
        """Follow one orchestration until it ends; the exit code says how it ended.

        Exit codes: 0 succeeded, 1 failed, 3 canceled, 4 --timeout reached, 5 KEB cannot
        answer (unknown ID, token rejected, unreachable longer than --give-up-after), 2 usage
        or configuration error, 130 interrupted, 143 terminated (SIGTERM). Works without a
        config file when KEB_URL and KEB_TOKEN are set.

        \b
        Example:
          watcher watch 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11 --timeout 6h && echo upgraded
          watcher watch 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11 --output json | jq .type
        """
        options = WatchOptions(
            interval=_seconds(interval, "--interval", positive=True),
            timeout=_seconds(timeout, "--timeout"),
            give_up_after=_seconds(give_up_after, "--give-up-after") or 0.0,
        )
        code = run_watch(obj, orchestration_id, options, output=output, notify=notify, hooks=seams)
        raise SystemExit(code)

    return watch


watch_command = make_watch_command()
