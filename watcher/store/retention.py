"""How long history outlives tracking: ``[storage] retention``, applied by ``watcher run``.

An orchestration whose tracking ended (``watcher untrack``, or finished: terminal and its final
notification delivered) longer than ``retention`` ago is forgotten: its tracked row, snapshot,
operations, transitions, outbox entries, delivery attempts and Slack card. Orchestrations
still tracked keep their whole history; of their outbox only ``superseded`` card updates (which
are never sent) older than ``retention`` go. Also pruned: delivered health alerts and poll
cycle records older than ``retention``. ``"0s"`` keeps nothing once tracking has ended.

One ``BEGIN IMMEDIATE`` transaction: a crash leaves everything or nothing pruned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from watcher.store.database import Store

#: Outbox statuses that will never be sent again.
_SETTLED = "('sent', 'superseded', 'skipped', 'dropped')"


@dataclass(frozen=True, slots=True)
class Pruned:
    orchestrations: tuple[str, ...]
    rows: int


def prune(store: Store, now: datetime, retention: float) -> Pruned:
    """Delete what ``retention`` seconds before ``now`` no longer keeps; what went."""
    cutoff = (now - timedelta(seconds=retention)).astimezone(UTC).isoformat(timespec="microseconds")
    rows = 0
    with store.transaction() as conn:
        ended = tuple(
            row[0]
            for row in conn.execute(
                "SELECT orchestration_id FROM tracked WHERE (active = 0 AND untracked_at < ?1) "
                "OR (finished_at IS NOT NULL AND finished_at < ?1) ORDER BY orchestration_id",
                (cutoff,),
            )
        )
        for orch_id in ended:
            rows += conn.execute(
                "DELETE FROM attempts WHERE outbox_id IN "
                "(SELECT id FROM outbox WHERE orchestration_id = ?)",
                (orch_id,),
            ).rowcount
            for table in ("outbox", "cards", "transitions", "operations", "orchestrations"):
                rows += conn.execute(
                    f"DELETE FROM {table} WHERE orchestration_id = ?", (orch_id,)
                ).rowcount
            rows += conn.execute(
                "DELETE FROM tracked WHERE orchestration_id = ?", (orch_id,)
            ).rowcount
        old_outbox = (
            f"SELECT id FROM outbox WHERE created_at < ?1 AND (status = 'superseded' "
            f"OR (orchestration_id IS NULL AND status IN {_SETTLED}))"
        )
        rows += conn.execute(
            f"DELETE FROM attempts WHERE outbox_id IN ({old_outbox})", (cutoff,)
        ).rowcount
        rows += conn.execute(f"DELETE FROM outbox WHERE id IN ({old_outbox})", (cutoff,)).rowcount
        rows += conn.execute("DELETE FROM cycles WHERE started_at < ?", (cutoff,)).rowcount
    return Pruned(ended, rows)
