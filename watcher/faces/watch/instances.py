"""``watcher watch --instance ID...``: follow runtimes' operations on current KEB (GET /runtimes).

Each instance's current operation (or, with none open, its next one) is followed until it
ends; the exit codes are those of ``watch``: 0 all succeeded, 1 one failed, 4 ``--timeout``,
5 KEB cannot answer (unknown instance, token rejected, unreachable longer than
``--give-up-after``); several instances combine as for orchestrations. ``--output json``
prints one JSON object per event and a final ``summary`` line (docs/output.md).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from watcher.core.inert import inert
from watcher.core.watching import combined_exit_code
from watcher.faces.context import Context

#: How often instances are looked at by default: operations take minutes to hours.
DEFAULT_INTERVAL = 30.0


def _line(event: dict[str, Any]) -> str:
    kind = event.get("type")
    who = f"instance {event.get('instance', '')}"
    op = f"{event.get('kind') or 'operation'} {event.get('operation') or ''}".strip()
    reason = f" ({event['reason']})" if event.get("reason") else ""
    if kind == "waiting":
        return f"{who}: nothing in progress; waiting for its next operation"
    if kind in ("following", "changed"):
        return f"{who}: {op} {event.get('state')}"
    if kind == "ended":
        return f"{who}: {op} ended {event.get('state') or ''}{reason}".rstrip()
    if kind == "timeout":
        return f"{who}: --timeout reached"
    if kind == "reconnecting":
        return f"KEB not answering, trying again{reason}"
    return f"{who}: {event.get('reason', '')}"


def run_instances(
    obj: Context,
    instance_ids: tuple[str, ...],
    *,
    interval: float | None,
    deadline: float | None,
    give_up_after: float,
    output: str,
    sleep: Any,
    monotonic: Any,
) -> int:
    """Follow the instances; the exit code."""
    ids = [i.strip() for value in instance_ids for i in value.split(",") if i.strip()]

    def emit(event: dict[str, Any]) -> None:
        if output == "json":
            click.echo(json.dumps(event, separators=(",", ":"), default=str))
        else:
            click.echo(inert(_line(event)))
        sys.stdout.flush()

    with obj.watcher(keb_env=True) as app:
        results = asyncio.run(
            app.fleet.watch_instances(
                ids,
                interval=interval or DEFAULT_INTERVAL,
                deadline=deadline,
                give_up_after=give_up_after,
                emit=emit,
                sleep=sleep,
                monotonic=monotonic,
            )
        )
    code = combined_exit_code(c for _, c in results)
    outcomes = {w.instance_id: w.outcome or "unfinished" for w, _ in results}
    if output == "json":
        emit({"type": "summary", "exitCode": code, "outcomes": outcomes})
    else:
        words = ", ".join(f"{iid}: {outcome}" for iid, outcome in outcomes.items())
        click.echo(inert(f"{words} (exit {code})"))
    return code
