"""The everyday commands of the background face: ``track``, ``untrack``, ``list``,
``status``, ``history``, ``poll`` and ``check-config``. Each parses its arguments, asks
:class:`watcher.app.Watcher` for one thing and prints it (:mod:`watcher.faces.reports`)."""

from __future__ import annotations

import sys
from typing import assert_never

import click

from watcher.app import Watcher
from watcher.config import describe, open_service_warning
from watcher.core.ids import require_uuids
from watcher.core.inert import inert
from watcher.core.wording import plural
from watcher.errors import (
    ConfigError,
    KebError,
    KebNoOrchestrationApi,
    KebTlsError,
    StoreError,
    UsageError,
    WatcherError,
)
from watcher.faces import reports as report
from watcher.faces.completion import complete_ids
from watcher.faces.context import (
    OUTPUT,
    STATE,
    Context,
    Terminated,
    emit_json,
    quiet_retries,
    run,
    run_terminable,
    terminal_width,
)


@click.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option("--channel", help="Slack channel for this orchestration (name or ID).")
@click.option(
    "--no-check",
    "no_check",
    is_flag=True,
    help="Track without asking KEB whether the IDs exist, e.g. while KEB is unreachable "
    "(watcher track 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11 --no-check).",
)
@click.pass_obj
def track(obj: Context, ids: tuple[str, ...], channel: str | None, no_check: bool) -> None:
    """Start tracking orchestrations; the next poll takes a baseline.

    KEB is asked first whether each ID exists: an ID it does not know is an error (exit 1)
    and nothing is tracked. --no-check skips the question.

    \b
    Example:
      watcher track 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11 --channel '#kyma-upgrades'
      watcher track 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11 --no-check
    """
    full = require_uuids(ids)  # before the database is opened
    with obj.watcher() as app:
        if not no_check:
            _check_known(obj, app, full)  # before the database is created
        new = app.track(full, channel)
    for orch_id in full:
        note = "tracking" if orch_id in new else "tracking again (history kept)"
        click.echo(f"{orch_id}: {note}")


def _check_known(obj: Context, app: Watcher, ids: list[str]) -> None:
    """Exit 1, naming each, when KEB does not know some of ``ids``; an error reaching KEB
    says that --no-check tracks without asking."""
    try:
        with quiet_retries(obj):
            unknown = run(app.unknown_to_keb(ids))
    except KebError as exc:
        raise KebError(f"{exc} (`--no-check` tracks without asking KEB)") from exc
    for orch_id in unknown:
        click.echo(
            f"watcher: {orch_id}: KEB knows no such orchestration "
            "(`watcher orchestrations` lists the IDs it knows)",
            err=True,
        )
    if unknown:
        click.echo("watcher: nothing tracked", err=True)
        sys.exit(1)


@click.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=complete_ids)
@click.pass_obj
def untrack(obj: Context, ids: tuple[str, ...]) -> None:
    """Stop tracking orchestrations (their history is kept). IDs may be unique prefixes of
    at least 8 characters. Exits 1 if one of them was not tracked.

    \b
    Example:
      watcher untrack 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11
      watcher untrack 5a3f1f5e
    """
    with obj.watcher(local=True) as app:
        full, unknown = app.untrack(ids)
    for orch_id in full:
        click.echo(f"{orch_id}: {'was not tracked' if orch_id in unknown else 'untracked'}")
    if unknown:
        sys.exit(1)


@click.command(name="list")
@STATE
@OUTPUT
@click.pass_obj
def list_(obj: Context, chosen: tuple[str, ...], output: str) -> None:
    """Tracked orchestrations with their last known state and counts, their age and the
    time of the last successful poll.

    \b
    Example:
      watcher list --state inprogress --state failed
      watcher list --output json
    """
    with obj.watcher(local=True) as app:
        items = app.tracked()
        known = app.known_ids()
        silences = app.silences()
        now = app.clock()
        window = app.config.poll.retry_window
    if chosen:
        items = [item for item in items if item.state in chosen and not item.not_found]
    if output == "json":
        emit_json(
            [
                report.tracked_json(item, window, silences.get(item.orchestration_id))
                for item in items
            ]
        )
    elif chosen and not items:
        click.echo(f"no tracked orchestration is {' or '.join(chosen)}")
    else:
        lines = report.tracked_lines(items, now, window, terminal_width(), known, silences)
        click.echo("\n".join(lines))


@click.command()
@click.argument("orchestration_id", metavar="ID", required=False, shell_complete=complete_ids)
@click.option(
    "--instance",
    "instance_id",
    metavar="ID",
    help="Instead: one runtime by instance ID and its recent operations (KEB 1.15.1 and "
    "later, GET /runtimes).",
)
@OUTPUT
@click.pass_obj
def status(
    obj: Context, orchestration_id: str | None, instance_id: str | None, output: str
) -> None:
    """Fetch one orchestration (or, with --instance, one runtime) from KEB now and summarise it.

    Works without a config file when KEB_URL and KEB_TOKEN are set. ID may be a unique prefix
    (8 characters or more) of a tracked orchestration.

    \b
    Example:
      KEB_URL=https://kyma-env-broker.example.com KEB_TOKEN=... watcher status 5a3f1f5e-...
      watcher status --instance 8f2b6d1e-4a9c-4e37-b5d0-3c7e9a1f6b82
    """
    if (orchestration_id is None) == (instance_id is None):
        raise UsageError("give an orchestration ID or --instance ID (one of them)")
    if instance_id is not None:
        _instance_status(obj, instance_id.strip(), output)
        return
    assert orchestration_id is not None
    with obj.watcher(keb_env=True) as app, quiet_retries(obj):
        orch = run(app.status(orchestration_id))
    if output == "json":
        emit_json(orch.to_json())
    else:
        click.echo("\n".join(report.orchestration_lines(orch)))


def _instance_status(obj: Context, instance_id: str, output: str) -> None:
    from watcher.faces.fleet import runtime_json, runtime_lines

    with obj.watcher(keb_env=True) as app:
        runtime, deprovisioned = run(app.fleet.instance(instance_id))
    if runtime is None and not deprovisioned:
        raise WatcherError(f"KEB knows no runtime with instance ID {instance_id!r}")
    if output == "json":
        emit_json(
            runtime_json(runtime)
            if runtime is not None
            else {"instance_id": instance_id, "deprovisioned": True}
        )
    elif runtime is None:
        click.echo(f"instance {inert(instance_id)}: deprovisioned (KEB's archive lists it)")
    else:
        click.echo("\n".join(runtime_lines(runtime)))


@click.command()
@click.argument("orchestration_id", metavar="ID", shell_complete=complete_ids)
@click.option(
    "--since",
    metavar="DUR|TIME",
    help="Only transitions recorded in the last DUR (2h) or since TIME (ISO 8601, UTC if no zone).",
)
@click.option("--tail", type=click.IntRange(min=0), metavar="N", help="Only the last N.")
@click.option(
    "--follow",
    "-f",
    "follow",
    is_flag=True,
    help="Keep printing new transitions as `poll` or `run` record them, until the "
    "orchestration has ended (exit 0) or Ctrl-C (with --output json: one object per line). "
    "Example: watcher history 5a3f1f5e --follow",
)
@OUTPUT
@click.pass_obj
def history(
    obj: Context,
    orchestration_id: str,
    since: str | None,
    tail: int | None,
    follow: bool,
    output: str,
) -> None:
    """The recorded transitions of one orchestration, oldest first.

    ID may be a unique prefix (8 characters or more).

    \b
    Example:
      watcher history 5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11 --output json
      watcher history 5a3f1f5e --since 2h --follow
    """
    from watcher.faces import history as hist

    with obj.watcher(local=True) as app:
        start = hist.parse_since(since, app.clock()) if since else None
        orch_id, last, everything = app.history_from(orchestration_id)
        items = hist.choose(everything, start, tail)
        if follow:
            hist.emit(items, output)
            hist.follow(app, orch_id, last, {t.key for t in everything}, output)
            return
    if output == "json":
        emit_json([report.transition_json(t) for t in items])
    elif items or not everything:
        click.echo("\n".join(report.history_lines(items)))
    else:
        click.echo(f"no transitions match (of {plural(len(everything), 'transition')} recorded)")


@click.command()
@click.pass_obj
def poll(obj: Context) -> None:
    """Run exactly one cycle over everything tracked, deliver notifications, then exit.

    Exits 1 when a tracked orchestration could not be polled, or a notification is still
    undelivered at exit (it stays in the outbox: see `watcher outbox`). The reasons are
    printed; the next poll catches up with nothing lost. SIGTERM abandons the cycle in
    flight, releases the lease at once (the next poll does not wait) and exits 143.

    \b
    Example (crontab):
      */2 * * * * watcher --config /etc/keb-watcher/watcher.toml poll
    """
    try:
        with obj.watcher() as app:
            outcome = run_terminable(app.poll())
            # What waits for a fix or was given up, named every time until it is dealt with.
            waiting = app.outbox().entries(("failed", "dead")) if outcome.undelivered else []
    except Terminated:
        click.echo(
            "watcher: terminated: the cycle in flight was abandoned and the lease released; "
            "the next poll catches up",
            err=True,
        )
        sys.exit(143)
    cycle = outcome.cycle
    for result in cycle.results:
        if result.ok:
            click.echo(
                f"{result.orchestration_id}: {inert(result.state or '-')}, "
                f"{plural(result.transitions, 'transition')} ({result.mode}: {result.reason})"
            )
    failures = [_poll_failure(r.orchestration_id, r.error) for r in cycle.failed if r.error]
    endpoint = [line for line, endpoint_wide in failures if endpoint_wide]
    if endpoint:  # one line, not one per orchestration: the endpoint itself is the problem
        click.echo(endpoint[0], err=True)
    for line, endpoint_wide in failures:
        if not endpoint_wide:
            click.echo(line, err=True)
    for selection in outcome.fleet:
        if selection.ok:
            what = (
                "baseline"
                if selection.baseline
                else ("full sweep" if selection.full_sweep else "active")
            )
            click.echo(
                f"fleet {selection.name}: {plural(selection.runtimes, 'runtime')}, "
                f"{plural(selection.transitions, 'transition')} ({what}, "
                f"{plural(selection.requests, 'request')})"
            )
        else:
            click.echo(f"watcher: fleet {selection.name}: {selection.error}", err=True)
        for instance_id in selection.unreadable:
            click.echo(
                f"watcher: fleet {selection.name}: runtime {instance_id} makes KEB fail every "
                "page it is on (a legacy operation type); it is read on its own",
                err=True,
            )
    if not cycle.results and not outcome.fleet:
        click.echo(
            "nothing to poll (track an orchestration, or follow runtimes with "
            "`watcher fleet add NAME`)"
        )
    delivery = outcome.delivery
    if delivery is not None and (delivery.sent or delivery.skipped):
        click.echo(f"notifications: {delivery.sent} sent")
    named = {f"outbox {e.id} " for e in waiting}
    if delivery is not None:
        for error in delivery.errors:
            if not any(error.startswith(prefix) for prefix in named):
                click.echo(f"watcher: {error}", err=True)
    for entry in waiting[:10]:
        what = "given up" if entry.status == "dead" else "waits for a fix"
        about = f", {entry.orchestration_id}" if entry.orchestration_id else ""
        click.echo(
            f"watcher: outbox {entry.id} ({entry.kind}{about}) {what}: "
            f"{inert(entry.last_error or '-')}",
            err=True,
        )
    if len(waiting) > 10:
        click.echo(f"watcher: and {len(waiting) - 10} more (see `watcher outbox list`)", err=True)
    if outcome.undelivered:
        click.echo(
            f"watcher: {plural(outcome.undelivered, 'notification')} undelivered "
            "(kept in the outbox; see `watcher outbox list`)",
            err=True,
        )
    if cycle.failed or outcome.undelivered or any(not f.ok for f in outcome.fleet):
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
    warning = open_service_warning(config)
    if warning:
        click.echo(f"watcher: warning: {warning}", err=True)
    app = Watcher(config)
    errors = app.notifications.check_templates()
    for error in errors:
        click.echo(f"watcher: {error}", err=True)
    if errors:
        sys.exit(2)
    from watcher.app.notifications import TEMPLATES

    click.echo(f"templates: all {len(TEMPLATES)} render against sample data")
    if online:
        from watcher.app import keb_client

        async def reach() -> int:
            async with keb_client(config) as keb:
                try:
                    return len(await keb.list_orchestrations())
                except KebTlsError as exc:  # the configuration's to fix, not an outage
                    raise ConfigError(str(exc)) from None

        try:
            count = run(reach())
            click.echo(f"KEB: reachable, token accepted, {count} orchestrations")
        except KebNoOrchestrationApi:
            # KEB 1.15.1 and later: no orchestrations, but the runtimes API on the same URL.
            runtimes = run(app.fleet.probe())
            click.echo(
                f"KEB: reachable, token accepted; no orchestration API (KEB 1.15.1 or later): "
                f"it serves the runtimes API (GET /runtimes, {plural(runtimes, 'runtime')}); "
                "`watcher fleet add NAME` follows them"
            )
        for line in app.notifications.check_slack():
            click.echo(line)
    click.echo("configuration OK")


def _poll_failure(orch_id: str, error: KebError | StoreError) -> tuple[str, bool]:
    """The line ``poll`` prints for an orchestration it could not poll or record, and whether
    the error is the endpoint's (said once for all: a KEB that serves no orchestration API)."""
    if isinstance(error, KebNoOrchestrationApi):
        return f"watcher: {error}", True
    elif isinstance(error, KebError | StoreError):
        return f"watcher: {orch_id}: {error}", False
    else:
        assert_never(error)
