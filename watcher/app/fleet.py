"""Fleet watch (KEB 1.15.1 and later): what ``watcher fleet ...``, ``poll`` and
``status --instance`` ask of the composition root."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from watcher.app.factories import runtimes_client
from watcher.core.fleet import FleetRuntime, Selection, TrackedSelection
from watcher.core.fleet_diff import FleetTransition, RuntimeRecord
from watcher.core.stuck import Stalled
from watcher.engine.fleet_cycle import SelectionReport, poll_selections
from watcher.errors import KebUnsupportedType, UsageError
from watcher.store.selections import SelectionStore

if TYPE_CHECKING:
    from watcher.app import Watcher
    from watcher.core.instance_watch import InstanceWatch
    from watcher.engine.instance_follow import Emit

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def split_values(values: Sequence[str]) -> tuple[str, ...]:
    """Repeated or comma-separated option values, blanks dropped, order kept, no repeats
    (KEB never splits commas itself: the client sends repeated parameters).

    >>> split_values(["a,b", " c ", "a"])
    ('a', 'b', 'c')
    """
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SelectionView:
    """``fleet show``: the selection, its records and its recent history."""

    tracked: TrackedSelection
    records: dict[str, RuntimeRecord]
    history: list[FleetTransition]
    #: What is stuck (``poll.fleet_stuck_after``), as the last poll found it.
    stuck: tuple[Stalled, ...] = ()


class FleetTools:
    """The fleet-watch side of one :class:`~watcher.app.Watcher`."""

    def __init__(self, app: Watcher) -> None:
        self.app = app

    def _store(self, *, create: bool = False) -> SelectionStore:
        return SelectionStore(self.app.open_store(create=create))

    def add(
        self,
        name: str,
        *,
        accounts: Sequence[str] = (),
        subaccounts: Sequence[str] = (),
        plans: Sequence[str] = (),
        regions: Sequence[str] = (),
        instances: Sequence[str] = (),
        channel: str | None = None,
    ) -> Selection:
        if not _NAME.fullmatch(name):
            raise UsageError(
                f"selection name {name!r}: letters, digits, '.', '_' and '-', at most 63"
            )
        selection = Selection(
            name,
            accounts=split_values(accounts),
            subaccounts=split_values(subaccounts),
            plans=split_values(plans),
            regions=split_values(regions),
            instances=split_values(instances),
        )
        if not self._store(create=True).add(selection, channel, self.app.clock()):
            raise UsageError(f"a selection named {name!r} exists already")
        return selection

    def selections(self) -> list[TrackedSelection]:
        return self._store().selections()

    def show(self, name: str) -> SelectionView:
        store = self._store()
        found = [t for t in store.selections() if t.name == name]
        if not found:
            raise UsageError(f"no selection named {name!r} (see `watcher fleet list`)")
        return SelectionView(
            found[0], store.records(name), store.history(selection=name), store.stuck_of(name)
        )

    def remove(self, name: str) -> None:
        if not self._store().remove(name):
            raise UsageError(f"no selection named {name!r} (see `watcher fleet list`)")

    def any(self) -> bool:
        """Whether a database exists and follows at least one selection."""
        return bool(self.selections())

    async def poll(self, *, notify: bool) -> list[SelectionReport]:
        """One cycle over every selection."""
        store = self._store()
        if not store.selections():
            return []
        config = self.app.config
        async with runtimes_client(config) as client:
            return await poll_selections(
                store,
                client,
                now=self.app.clock(),
                full_sweep_every=config.poll.full_sweep_every,
                notify=notify,
                stuck_after=config.poll.fleet_stuck_after,
                alert_after=config.poll.alert_after if notify else None,
                keb_url=config.keb.url,
            )

    async def watch_instances(
        self,
        instance_ids: Sequence[str],
        *,
        interval: float,
        deadline: float | None,
        give_up_after: float,
        emit: Emit,
        sleep: Callable[[float], Awaitable[None]],
        monotonic: Callable[[], float],
    ) -> list[tuple[InstanceWatch, int]]:
        """``watch --instance``: :func:`watcher.engine.instance_follow.follow_instances`."""
        from watcher.engine.instance_follow import follow_instances

        async with runtimes_client(self.app.config) as client:
            return await follow_instances(
                client,
                instance_ids,
                interval=interval,
                deadline=deadline,
                give_up_after=give_up_after,
                emit=emit,
                sleep=sleep,
                monotonic=monotonic,
            )

    async def probe(self) -> int:
        """One request to ``/runtimes``: how many runtimes KEB lists (a 403 names the groups
        the token needs)."""
        async with runtimes_client(self.app.config) as client:
            try:
                page = await client.page((), page_size=1, op_detail="last")
            except KebUnsupportedType:  # a legacy runtime first in line (§2.4)
                page = await client.page((), page_size=1, op_detail="all")
            return page.total_count

    async def instance(self, instance_id: str) -> tuple[FleetRuntime | None, bool]:
        """``status --instance``: the runtime with every operation KEB lists, or ``None``
        and whether the archive lists it as deprovisioned."""
        async with runtimes_client(self.app.config) as client:
            listing = await client.by_instances([instance_id])
            runtime = listing.runtimes.get(instance_id)
            if runtime is not None:
                return runtime, False
            return None, bool(await client.deprovisioned([instance_id]))
