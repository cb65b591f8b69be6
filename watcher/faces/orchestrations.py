"""``watcher orchestrations``: what KEB itself lists, like ``kcp orchestrations``: how a user
finds the IDs to track.

KEB filters by state on the server (``GET /orchestrations?state=...``, docs/keb-api.md §2.1)
but not by type, so ``--type`` filters here. Every page is read; KEB lists oldest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import click

from watcher.core.models import Orchestration
from watcher.core.wording import plural
from watcher.faces.context import (
    OUTPUT,
    STATE,
    Context,
    emit_json,
    quiet_retries,
    run,
    terminal_width,
)
from watcher.faces.tables import Column, fit

#: ``--type`` values: KEB's own and the words ``kcp`` prints.
TYPES: Final = {
    "upgradeCluster": "upgradeCluster",
    "cluster": "upgradeCluster",
    "upgradeKyma": "upgradeKyma",
    "kyma": "upgradeKyma",
}
_TYPE_WORDS: Final = {"upgradeCluster": "cluster upgrade", "upgradeKyma": "kyma upgrade"}
#: ``kcp`` cuts TARGETS to 20 characters; a little more says more on a wide terminal.
TARGETS_WIDTH: Final = 24


def details(orch: Orchestration) -> str:
    """``K8S: 1.29.4`` or ``Kyma: 2.20.0``, as ``kcp`` shows them (docs/keb-api.md §7)."""
    if orch.kubernetes_version:
        return f"K8S: {orch.kubernetes_version}"
    kyma = orch.parameters.get("kyma")
    version = kyma.get("version") if isinstance(kyma, dict) else None
    return f"Kyma: {version}" if version else "-"


def targets_text(orch: Orchestration, limit: int = TARGETS_WIDTH) -> str:
    """The include targets as ``kcp`` shows them (``target=all``, ``region=eu.*,plan=aws``;
    several separated by ``; ``), cut to ``limit`` characters (docs/keb-api.md §7)."""
    targets = orch.parameters.get("targets")
    include = targets.get("include") if isinstance(targets, Mapping) else None
    parts = [
        ",".join(f"{k}={v}" for k, v in item.items() if v not in (None, ""))
        for item in include or ()
        if isinstance(item, Mapping)
    ]
    text = "; ".join(p for p in parts if p) or "-"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(items: Sequence[Orchestration], tracked: set[str], width: int | None = None) -> list[str]:
    """One row per orchestration, as ``kcp orchestrations`` prints it plus TRACKED, fitted to
    ``width`` (:func:`watcher.faces.tables.fit`: IDs shortened to unique prefixes first, then
    TARGETS, DRY RUN, TYPE, CREATED and TRACKED dropped in that order)."""
    ids = [o.orchestration_id for o in items]
    created = [o.created_at.strftime("%Y-%m-%d %H:%M:%S") if o.created_at else "-" for o in items]
    return fit(
        [
            Column("ORCHESTRATION ID", ids, ids=True, short="ID"),
            Column("TYPE", [_TYPE_WORDS.get(o.type, o.type or "-") for o in items], drop=4),
            Column("CREATED (UTC)", created, drop=3, compact=[c[:16] for c in created]),
            Column("STATE", [o.state or "-" for o in items]),
            Column("DRY RUN", ["yes" if o.dry_run else "no" for o in items], drop=5),
            Column("TARGETS", [targets_text(o) for o in items], drop=6),
            Column("TRACKED", ["yes" if i in tracked else "-" for i in ids], drop=2),
            Column("DETAILS", [details(o) for o in items], drop=1),
        ],
        width,
    )


def orchestration_json(orch: Orchestration, tracked: set[str]) -> dict[str, Any]:
    """KEB's ``StatusResponse`` as listed (no ``operationStats``), plus ``tracked``."""
    return {**orch.to_json(), "tracked": orch.orchestration_id in tracked}


@click.command(name="orchestrations")
@STATE
@click.option(
    "--type",
    "kind",
    type=click.Choice(sorted(TYPES)),
    help="Only cluster upgrades or only Kyma upgrades.",
)
@click.option(
    "--sort",
    type=click.Choice(["oldest", "newest"]),
    default="oldest",
    show_default=True,
    help="oldest first, as KEB lists them, or newest first.",
)
@click.option("--track", "track", is_flag=True, help="Also track every orchestration listed.")
@click.option("--channel", help="With --track: the Slack channel for them (name or ID).")
@OUTPUT
@click.pass_obj
def orchestrations_command(
    obj: Context,
    chosen: tuple[str, ...],
    kind: str | None,
    sort: str,
    track: bool,
    channel: str | None,
    output: str,
) -> None:
    """List the orchestrations KEB serves (every page), marking the ones already tracked.

    Works without a config file when KEB_URL and KEB_TOKEN are set (--track needs one).

    \b
    Example:
      watcher orchestrations --state inprogress --state pending
      watcher orchestrations --state inprogress --type cluster --track
      watcher orchestrations --sort newest --output json | jq -r '.[0].orchestrationID'
    """
    with obj.watcher(keb_env=not track) as app:
        with quiet_retries(obj):
            items = run(app.orchestrations(chosen))
        if kind is not None:
            items = [o for o in items if o.type == TYPES[kind]]
        if sort == "newest":
            items.reverse()
        tracked = app.tracked_ids()
        new: list[str] = []
        if track and items:
            new = app.track([o.orchestration_id for o in items], channel)
            tracked |= {o.orchestration_id for o in items}
    if output == "json":
        emit_json([orchestration_json(o, tracked) for o in items])
    elif items:
        click.echo("\n".join(table(items, tracked, terminal_width())))
    else:
        click.echo("KEB lists no orchestration" + (" that matches" if chosen or kind else ""))
    if track:
        again = len(items) - len(new)
        note = f"now tracking {plural(len(new), 'more orchestration')}"
        if again:
            note += f" ({again} already tracked)"
        click.echo(note, err=output == "json")
