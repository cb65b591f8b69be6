"""``watcher demo``: the whole product on embedded defaults, in under a minute.

It starts the KEB simulator in-process on a free port, tracks every orchestration it serves,
and beside them follows a selection of runtimes served by the simulator of current KEB
(``watcher sim --api runtimes``, a second port: fleet watch), polls until the orchestrations
are finished and prints what a Slack channel would get (the fleet's card too): the same policy,
outbox, templates and sender as with Slack, with the terminal as the channel. The engine runs
on the simulator's clock, so durations, throughput and ETAs read as KEB time. Nothing
outside its own folder (`~/.local/state/keb-watcher/demo`, emptied on each run) is touched, and
no configuration is needed.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import click
from rich.live import Live
from rich.table import Table

from watcher.app import Watcher
from watcher.clock import utcnow
from watcher.config import (
    Config,
    KebConfig,
    LinksConfig,
    PollConfig,
    Secret,
    ServiceConfig,
    SlackConfig,
    StorageConfig,
    TemplatesConfig,
)
from watcher.core.durations import format_duration, parse_duration
from watcher.core.models import is_terminal_orchestration
from watcher.core.wording import counts_text, plural
from watcher.faces.watch.live import StateBar
from watcher.sim import SimServer, Simulator
from watcher.sim.fleet_server import FleetServer, FleetSim, demo_fleet, runtime_token

#: The selection the demo follows (the whole simulated fleet).
DEMO_FLEET = "demo-fleet"


def demo_config(url: str, token: str, workdir: Path) -> Config:
    return Config(
        keb=KebConfig(url=url, token=Secret(token), timeout=10.0),
        storage=StorageConfig(path=workdir / "watcher.db"),
        poll=PollConfig(interval=1.0, jitter=0.0, full_sweep_every=600.0),
        slack=SlackConfig(channel="#kyma-upgrades"),
        links=LinksConfig(),
        templates=TemplatesConfig(),
        service=ServiceConfig(),
        source=None,
    )


def demo_dir(env: Mapping[str, str]) -> Path:
    """One stable place for the demo's files, emptied at the start of each run (so runs never
    pile up): ``$XDG_STATE_HOME/keb-watcher/demo``, else ``~/.local/state/keb-watcher/demo``."""
    base = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    workdir = base / "keb-watcher" / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, mode=0o700)
    return workdir


def own_command() -> str:
    """How to run this keb-watcher again: ``watcher`` when that is on PATH and is this
    installation, else this Python with ``-m watcher`` (a venv that is not activated)."""
    found = shutil.which("watcher")
    here = Path(sys.executable).parent
    if found and Path(found).parent.resolve() == here.resolve():
        return "watcher"
    return f"{sys.executable} -m watcher"


async def run_demo(
    scenario: str,
    seed: int,
    speed: float,
    interval: float,
    limit: float,
    web: str | None = None,
) -> int:
    # The simulator's clock starts at the real now, so ages shown read as believable.
    sim = Simulator.from_scenario(scenario, seed=seed, speed=speed, start=utcnow())
    workdir = demo_dir(os.environ)
    with (
        SimServer(sim).start() as server,
        FleetServer(FleetSim(demo_fleet(seed), speed)) as fleet_server,
    ):
        config = demo_config(server.url, sim.token, workdir)
        (workdir / "watcher.toml").write_text(
            f"# Written by `watcher demo`; the simulator is gone once the demo ends.\n"
            f'[keb]\nurl = "{server.url}"\n\n'
            f'[storage]\npath = "{workdir / "watcher.db"}"\n'
        )
        click.echo(f"KEB simulator: {server.url} (scenario {scenario!r}, {speed:g}x time)")
        click.echo(f"Current KEB simulator (GET /runtimes): {fleet_server.url}")
        click.echo("No Slack is configured, so what the channel would get is printed here.")
        terminal = sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
        printer = _Printer()
        with Watcher(
            config,
            clock=lambda: sim.now,
            terminal=printer.echo,
        ) as app:
            # The fleet is read from the second simulator, into the same store, outbox and
            # channel: a second composition root on the first one's database (not closed
            # here: the first one closes it).
            fleet_keb = replace(config.keb, url=fleet_server.url, token=Secret(runtime_token()))
            fleet_app = Watcher(
                replace(config, keb=fleet_keb),
                clock=lambda: sim.now,
                store=app.open_store(create=True),
                destination=app.destination(),
            )
            fleet_app.fleet.add(DEMO_FLEET)
            follow = (app, fleet_app, sim, printer, interval, limit, workdir, terminal)
            if web is None:
                return await _follow(*follow)
            # The dashboard runs on the simulator's clock too: stale after ten polls.
            async with _dashboard(app, web, stale_after=10 * interval * speed):
                code = await _follow(*follow)
                click.echo("The dashboard stays up until Ctrl-C.")
                await asyncio.Event().wait()
                return code


@asynccontextmanager
async def _dashboard(app: Watcher, listen: str, stale_after: float) -> AsyncIterator[None]:
    """``--web``: the dashboard of ``watcher run`` (:mod:`watcher.faces.web`) on ``listen``."""
    from watcher.faces.run.health import Readiness, health_routes
    from watcher.faces.run.server import WebServer, surface
    from watcher.faces.web.routes import Dashboard

    readiness = Readiness(math.inf)
    readiness.succeeded()
    dashboard = Dashboard(app, stale_after=stale_after)
    routes = [*health_routes(readiness, lambda: b""), *dashboard.routes()]
    async with WebServer(listen, surface(routes, dashboard.middleware())) as server:
        click.echo(f"Dashboard: {server.url}/")
        yield


class _Printer:
    """Where the demo's lines go: above the live board on a terminal, else plain lines."""

    def __init__(self) -> None:
        self.board: Board | None = None

    def echo(self, line: str) -> None:
        if self.board is not None:
            self.board.print(line)
        else:
            click.echo(line)


async def _follow(
    app: Watcher,
    fleet_app: Watcher,
    sim: Simulator,
    printer: _Printer,
    interval: float,
    limit: float,
    workdir: Path,
    terminal: bool,
) -> int:
    board = printer.board = Board(app) if terminal else None
    async with app.keb() as keb:
        ids = [o.orchestration_id for o in await keb.list_orchestrations()]
        app.track(ids, None)
        names = {orch_id: f"orch-{i + 1}" for i, orch_id in enumerate(ids)}
        if board is not None:
            board.names = names
        click.echo(f"Tracking {plural(len(ids), 'orchestration')}:")
        for orch_id, name in names.items():
            click.echo(f"  {name} = {orch_id}")
        engine = app.engine(keb)
        started = time.monotonic()
        cycles = 0
        while time.monotonic() - started < limit:
            cycle = await engine.poll_once()
            for report in await fleet_app.fleet.poll(notify=True):
                if not report.ok:
                    click.echo(f"  poll failed for fleet {report.name}: {report.error}")
            cycles += 1
            if cycle.transitions:
                elapsed = format_duration(round(time.monotonic() - started))
                recorded = plural(cycle.transitions, "transition")
                printer.echo(f"[{elapsed:>4}] poll {cycles}: {recorded} recorded")
            for failure in cycle.failed:
                click.echo(f"  poll failed for {failure.orchestration_id}: {failure.error}")
            await app.deliver(deadline=5)
            if board is not None:
                board.refresh()
            if _caught_up(app, sim, ids):
                break
            await asyncio.sleep(interval)
        requests = keb.stats.requests
    if board is not None:
        board.stop()
    printer.board = None
    click.echo("")
    click.echo("Summary:")
    items = sorted(
        app.tracked(include_inactive=True),
        key=lambda t: list(names).index(t.orchestration_id),
    )
    for item in items:
        name = names.get(item.orchestration_id, item.orchestration_id)
        click.echo(
            f"  {name}: {item.state}, operations {counts_text(item.counts)}, "
            f"{plural(len(app.history(item.orchestration_id)), 'transition')} recorded"
        )
    view = fleet_app.fleet.show(DEMO_FLEET)
    click.echo(
        f"  fleet {DEMO_FLEET}: {plural(len(view.records), 'runtime')}, "
        f"{plural(len(view.history), 'transition')} recorded"
    )
    click.echo(f"  {cycles} poll cycles, {requests} KEB requests in all.")
    click.echo("")
    click.echo("Everything is recorded. The fleet's runtimes and changes:")
    click.echo(f"  {own_command()} --config {workdir / 'watcher.toml'} fleet show {DEMO_FLEET}")
    click.echo("One orchestration's history:")
    first = ids[0] if ids else "ID"
    click.echo(f"  {own_command()} --config {workdir / 'watcher.toml'} history {first}")
    unfinished = [t for t in app.due() if not t.state or not is_terminal_orchestration(t.state)]
    return 1 if unfinished else 0


def _caught_up(app: Watcher, sim: Simulator, ids: Sequence[str]) -> bool:
    """The simulated KEB has nothing more to do, and the watcher has recorded every final
    state and delivered its final summary. (Failed orchestrations stay watched for a retry
    for `poll.retry_window`; the demo does not wait that long.)"""
    if not sim.all_finished():
        return False
    known = {t.orchestration_id: t for t in app.tracked(include_inactive=True)}
    return all(
        orch_id in known
        and known[orch_id].finished_at is not None
        and known[orch_id].state == sim.orchestration_state(orch_id)
        for orch_id in ids
    )


class Board:
    """On a terminal: a live table of every orchestration (state, a bar of operations by
    state, counts), with what Slack would get printed above it."""

    def __init__(self, app: Watcher) -> None:
        self.app = app
        self.names: dict[str, str] = {}
        self.live = Live(self._table(), refresh_per_second=4, transient=False)
        self.live.start()

    def _table(self) -> Table:
        table = Table(box=None, expand=True, show_header=True, header_style="bold")
        table.add_column("orchestration", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("operations", ratio=1)
        table.add_column("counts", no_wrap=True)
        order = list(self.names)
        items = self.app.tracked(include_inactive=True)
        items.sort(
            key=lambda t: order.index(t.orchestration_id) if t.orchestration_id in order else 0
        )
        for item in items:
            name = self.names.get(item.orchestration_id, item.orchestration_id[:8])
            table.add_row(name, item.state or "-", StateBar(item.counts), counts_text(item.counts))
        return table

    def print(self, line: str) -> None:
        self.live.console.print(line, markup=False, highlight=False)

    def refresh(self) -> None:
        self.live.update(self._table())

    def stop(self) -> None:
        self.refresh()
        self.live.stop()


@click.command()
@click.option("--scenario", default="demo", show_default=True, help="Simulator scenario.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--speed", type=float, default=60.0, show_default=True, help="Simulated time x.")
@click.option("--interval", default="1s", show_default=True, help="Time between polls.")
@click.option("--limit", default="90s", show_default=True, help="Give up after this long.")
@click.option(
    "--web",
    "web",
    flag_value="127.0.0.1:0",
    default=None,
    help="Serve the web dashboard too (on a free port) and keep it up until Ctrl-C.",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    default=None,
    help="Where --web serves the dashboard (default: 127.0.0.1 and a free port).",
)
def demo_command(
    scenario: str,
    seed: int,
    speed: float,
    interval: str,
    limit: str,
    web: str | None,
    listen: str | None,
) -> None:
    """Run keb-watcher against its built-in KEB simulator: no setup, under a minute.

    \b
    Example:
      watcher demo
      watcher demo --scenario failures --speed 120
      watcher demo --web
    """
    try:
        code = asyncio.run(
            run_demo(
                scenario,
                seed,
                speed,
                parse_duration(interval, key="--interval"),
                parse_duration(limit, key="--limit"),
                web=(listen or web) if (web or listen) else None,
            )
        )
    except KeyboardInterrupt:
        code = 0  # --web: the reader is done with the dashboard
    raise SystemExit(code)
