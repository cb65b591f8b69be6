"""``watcher sim``: serve the KEB simulator on 127.0.0.1 for trying configs and templates."""

from __future__ import annotations

import sys

import click

from watcher.clock import utcnow
from watcher.errors import UsageError
from watcher.sim import SCENARIOS, serve_forever
from watcher.sim.fleet_server import serve_fleet_forever


def _scenario_help() -> str:
    return "\n".join(f"  {name:<12} {spec.description}" for name, spec in SCENARIOS.items())


@click.command(
    epilog="\b\nScenarios:\n" + _scenario_help(),
)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--scenario",
    type=click.Choice(sorted(SCENARIOS)),
    default="demo",
    show_default=True,
    help="What the simulated KEB is doing.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same world.")
@click.option(
    "--speed",
    type=float,
    default=60.0,
    show_default=True,
    help="Virtual seconds per real second (0: the clock only moves via POST /_sim/advance).",
)
@click.option(
    "--no-api",
    is_flag=True,
    help="Behave like KEB 1.15.1 and later: a plain-text 404 on every /orchestrations* path "
    "(DELETE /_sim/faults brings the API back).",
)
@click.option(
    "--races",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    metavar="P",
    help="Chance that the world moves on between the two queries KEB runs for one answer "
    "(a page and its totalCount, an orchestration and its operationStats).",
)
@click.option(
    "--moves",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    metavar="P",
    help="Chance that the world moves on before KEB answers a request (workers hand off "
    "between a poller's orchestration GET and its lists, and between list pages).",
)
@click.option(
    "--api",
    type=click.Choice(["orchestrations", "runtimes"]),
    default="orchestrations",
    show_default=True,
    help="orchestrations: KEB 1.8.12-1.15.0; runtimes: current KEB (GET /runtimes, /events).",
)
@click.option(
    "--size",
    type=click.IntRange(1, 100_000),
    default=12,
    show_default=True,
    help="With --api runtimes: how many settled runtimes the fleet starts with.",
)
def sim_command(
    port: int,
    host: str,
    scenario: str,
    seed: int,
    speed: float,
    no_api: bool,
    races: float,
    moves: float,
    api: str,
    size: int,
) -> None:
    """Serve a simulated KEB orchestration API (as KEB 1.8.12-1.15.0 served it).

    It prints the URL and a bearer token accepted by its gateway. Faults can be injected
    while it runs: POST /_sim/faults {"kind": "5xx", "count": 3}; GET /_sim/state shows the
    world.

    \b
    Example:
      watcher sim --scenario failures --port 8080
      watcher sim --scenario retry-rows --races 0.2 --speed 0
      watcher sim --scenario handoffs --moves 0.5 --speed 0
      KEB_URL=http://127.0.0.1:8080 KEB_TOKEN=<printed token> watcher status <ID>
      watcher sim --api runtimes --size 500    # current KEB: a fleet on GET /runtimes
    """
    try:
        if api == "runtimes":
            serve_fleet_forever(
                seed=seed, size=size, speed=speed or None, host=host, port=port, out=sys.stdout
            )
            return
        serve_forever(
            scenario,
            seed=seed,
            speed=speed or None,
            host=host,
            port=port,
            out=sys.stdout,
            faults=("no-api",) if no_api else (),
            races=races,
            moves=moves,
            # Ages read as believable ("2 minutes", not "935 days"): start at the real now.
            start=utcnow(),
        )
    except OSError as exc:  # the bind: port in use, address not available, no permission
        raise UsageError(f"--port {port}: cannot listen on {host}: {exc.strerror or exc}") from None
