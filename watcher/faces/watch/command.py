"""``watcher watch ID``: follow one orchestration until it is terminal; the exit code says how
it ended (docs/contract.md §2.3).

The command asks :mod:`watcher.app` for the cycle of ``watch`` (driven by
:mod:`watcher.engine.follow`, each step decided by :func:`watcher.core.watching.step`) and
gives it a sink from :mod:`~watcher.faces.watch.live`. Its seams (sleep, clocks, whether
stdout is a terminal, what ``--notify`` does) are a :class:`WatchHooks` value:
:func:`make_watch_command` builds the command over any hooks, and ``watch_command`` is the
one with the real ones.
"""

from __future__ import annotations

import asyncio
import json
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
from typing import assert_never

import click
from rich.console import Console

from watcher.app import Watcher
from watcher.clock import utcnow
from watcher.config import Config
from watcher.core.durations import parse_duration
from watcher.core.watching import (
    TERMINATE,
    Sink,
    Sleep,
    Summary,
    WatchOptions,
    WatchOutcome,
    combine,
    combined_exit_code,
)
from watcher.core.wording import plural
from watcher.errors import KebNoOrchestrationApi, StoreError, UsageError, WatcherError
from watcher.faces.completion import complete_ids
from watcher.faces.context import Context
from watcher.faces.watch.live import (
    JsonLines,
    LiveView,
    PlainLines,
    combined_event,
    combined_line,
)

#: Called once the watch has ended (not after Ctrl-C) when ``--notify`` is given.
OnFinished = Callable[[Summary, Watcher], Awaitable[None]]

#: Outcomes that are an error of the watch itself rather than the orchestration's result.
_ERRORS = (
    WatchOutcome.TIMEOUT,
    WatchOutcome.NOT_FOUND,
    WatchOutcome.AUTH,
    WatchOutcome.UNREACHABLE,
    WatchOutcome.KEB_ERROR,
)


def _endpoint_wide(error: WatcherError | None) -> bool:
    """Whether the error that ended a watch is the endpoint's rather than the orchestration's
    (a KEB that serves no orchestration API): said once for all, as ``poll`` says it."""
    if error is None:  # --timeout: no error ended it
        return False
    elif isinstance(error, KebNoOrchestrationApi):
        return True
    elif isinstance(error, WatcherError):
        return False
    else:
        assert_never(error)


def slack_configured(config: Config) -> bool:
    slack = config.slack
    return bool(slack.webhook_url) or bool(slack.token and slack.channel)


async def deliver_notifications(summary: Summary, app: Watcher) -> None:
    """``--notify``: deliver what the watch recorded, the final summary included, through the
    configured Slack destination (the same outbox and sender as ``watcher poll``)."""
    if not slack_configured(app.config):
        click.echo("watcher: --notify: notifications are not configured", err=True)
        return
    report, left = await app.deliver()
    for error in report.errors if report is not None else ():
        click.echo(f"watcher: --notify: {error}", err=True)
    if left:
        click.echo(
            f"watcher: --notify: {plural(left, 'notification')} undelivered (see `watcher outbox`)",
            err=True,
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


def make_sink(output: str, ids: list[str], hooks: WatchHooks) -> Sink:
    """``json``: JSON lines. ``auto`` and ``text``: the live view on a terminal (a board
    for several orchestrations), else lines (tagged with the ID for several)."""
    if output == "json":
        return JsonLines(sys.stdout, sys.stderr)
    if hooks.terminal():
        if len(ids) > 1:
            from watcher.faces.watch.board import WatchBoard

            return WatchBoard(Console(), ids, hooks.clock)
        return LiveView(Console(), ids[0], hooks.clock)
    return PlainLines(sys.stdout, sys.stderr, tagged=len(ids) > 1)


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
    app: Watcher,
    sink: Sink,
    ids: list[str],
    options: WatchOptions,
    hooks: WatchHooks,
    notify: bool,
    track: bool,
) -> list[Summary]:
    # SIGTERM (timeout, systemd, Kubernetes) ends the watch like Ctrl-C: final frame, summary.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel, TERMINATE)
    summaries = list(
        await asyncio.gather(
            *(
                app.follow(
                    orch_id,
                    sink,
                    options,
                    sleep=hooks.sleep,
                    monotonic=hooks.clock,
                    rng=hooks.rng,
                    track=track,
                )
                for orch_id in ids
            )
        )
    )
    if notify:
        unrecorded = [s.orchestration_id for s in summaries if not app.recorded(s.orchestration_id)]
        configured = slack_configured(app.config)
        for orch_id in unrecorded if configured else ():
            click.echo(
                f"watcher: --notify: {orch_id} is not tracked, so nothing about it was "
                "recorded to send (add --track, or `watcher track` it first)",
                err=True,
            )
        if len(unrecorded) < len(summaries) or not configured:
            try:
                await hooks.on_finished(summaries[-1], app)
            except WatcherError as exc:
                click.echo(f"watcher: --notify: {exc}", err=True)
    return summaries


def run_watch(
    obj: Context,
    given: tuple[str, ...],
    options: WatchOptions,
    *,
    output: str,
    notify: bool,
    hooks: WatchHooks,
    track: bool = False,
) -> int:
    """Follow the orchestrations ``given`` (IDs or unique prefixes); return the exit code.
    Usage and configuration errors raise (exit 2 through :func:`watcher.cli.entrypoint`)."""
    config = obj.config(keb_env=True)
    # With a config file, a tracked orchestration is recorded where `watcher poll` records
    # it, with its notification policy (intents wait in the outbox for the next poll or
    # run); anything else (and everything without a file) is followed in memory.
    summaries: list[Summary] | None = None
    terminated = False
    try:
        with Watcher(config, clock=hooks.now, memory=config.source is None) as app:
            if track:  # like `watcher track`, it creates the database
                app.open_store(create=True)
            elif app.has_database():  # an unusable storage.path is a usage error, now
                app.open_store(create=False)
            ids = list(dict.fromkeys(app.resolve(i) for i in given))
            with quiet_engine_logs():
                sink = make_sink(output, ids, hooks)
                try:
                    summaries = asyncio.run(_run(app, sink, ids, options, hooks, notify, track))
                except KeyboardInterrupt:
                    pass
                except asyncio.CancelledError:  # SIGTERM
                    terminated = True
                finally:
                    sink.close()
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    if terminated:
        click.echo("watcher: terminated", err=True)
        return 143
    if summaries is None:
        click.echo("watcher: interrupted", err=True)
        return 130
    endpoint = False
    for summary in summaries:
        if summary.outcome in _ERRORS and _endpoint_wide(summary.error):
            # The endpoint is the problem, not this orchestration: one line, as `poll` says it.
            if not endpoint:
                click.echo(f"watcher: {summary.reason}", err=True)
            endpoint = True
        elif summary.outcome in _ERRORS:
            click.echo(f"watcher: {summary.orchestration_id}: {summary.reason}", err=True)
    if len(summaries) > 1:  # the last line names the combined outcome and the exit code
        both = combine(summaries)
        if output == "json":
            click.echo(json.dumps(combined_event(both, hooks.now()), separators=(",", ":")))
        else:
            board = hooks.terminal()  # the live board, drawn to fit the terminal
            click.echo(combined_line(both, None if board else hooks.now()))
    return combined_exit_code(s.exit_code for s in summaries)


def make_watch_command(hooks: WatchHooks | None = None) -> click.Command:
    """The ``watch`` command over ``hooks`` (default: the real clock, sleep and terminal)."""
    seams = hooks or WatchHooks()

    @click.command(name="watch")
    @click.argument("orchestration_ids", metavar="ID...", nargs=-1, shell_complete=complete_ids)
    @click.option(
        "--instance",
        "instances",
        multiple=True,
        metavar="ID",
        help="Instead of orchestrations: follow these runtimes' current (or next) operation "
        "(KEB 1.15.1 and later, GET /runtimes); repeatable, a,b.",
    )
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
    @click.option(
        "--notify",
        is_flag=True,
        help="Deliver what was recorded, the final summary included, to Slack (tracked "
        "orchestrations only).",
    )
    @click.option(
        "--track",
        "track",
        is_flag=True,
        help="Also track the orchestrations (as `watcher track` does), so that `poll` and "
        "`run` keep following them and Slack hears about them.",
    )
    @click.pass_obj
    def watch(
        obj: Context,
        orchestration_ids: tuple[str, ...],
        instances: tuple[str, ...],
        interval: str | None,
        timeout: str | None,
        give_up_after: str,
        output: str,
        notify: bool,
        track: bool,
    ) -> None:
        """Follow one or more orchestrations until they end; the exit code says how.

        Exit codes: 0 succeeded, 1 failed, 3 canceled, 4 --timeout reached, 5 KEB cannot
        answer (unknown ID, token rejected, unreachable longer than --give-up-after), 2 usage
        or configuration error, 130 interrupted, 143 terminated (SIGTERM). With several IDs:
        0 only when all succeeded, else the first that applies of 5, 4, 1, 3.

        It never changes the tracked set unless --track is given: a tracked orchestration
        is recorded as `watcher poll` records it, any other is followed in memory. IDs of
        tracked orchestrations may be unique prefixes (8+ characters). Works without a
        config file when KEB_URL and KEB_TOKEN are set.

        \b
        Example:
          watcher watch 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11 --timeout 6h && echo upgraded
          watcher watch 5a3f1f5e 4ab15fee 9d7cc285 -o json | jq -c 'select(.type == "summary")'
          watcher watch --instance 8f2b6d1e-4a9c-4e37-b5d0-3c7e9a1f6b82 --timeout 4h
        """
        options = WatchOptions(
            interval=_seconds(interval, "--interval", positive=True),
            timeout=_seconds(timeout, "--timeout"),
            give_up_after=_seconds(give_up_after, "--give-up-after") or 0.0,
        )
        if bool(orchestration_ids) == bool(instances):
            raise UsageError("give orchestration IDs or --instance IDs (one kind of them)")
        if instances:
            from watcher.faces.watch.instances import run_instances

            raise SystemExit(
                run_instances(
                    obj,
                    instances,
                    interval=options.interval,
                    deadline=options.timeout,
                    give_up_after=options.give_up_after,
                    output="json" if output == "json" else "text",
                    sleep=seams.sleep,
                    monotonic=seams.clock,
                )
            )
        code = run_watch(
            obj,
            orchestration_ids,
            options,
            output=output,
            notify=notify,
            hooks=seams,
            track=track,
        )
        raise SystemExit(code)

    return watch


watch_command = make_watch_command()
