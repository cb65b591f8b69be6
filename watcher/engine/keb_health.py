"""The blind alert, for orchestrations and selections alike: KEB unreachable or rejecting for
longer than ``poll.alert_after`` gives one ``keb_unhealthy`` alert, and ``keb_recovered`` when
it answers again (PRODUCT.md, and "Fleet watch": "the blind alert").

One health record (``health``, one row), one kind of intent
(:func:`watcher.core.policy.health_intent`, keyed by since-when, so an alert is never enqueued
twice) and one rule, :func:`watch_keb_health`, which ``Engine._watch_keb``
(:mod:`watcher.engine.cycle`) and the selections' cycle both call. The watcher is blind when
*every* read it made failed with an outage (unreachable, 5xx, a rejected token, TLS; for
orchestrations also a KEB without their API), and sees again when one succeeded. Selections
are evaluated after the orchestrations in the same cycle: a selection answered ends an outage
the orchestrations recorded, and selections that all failed start (or continue) one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from watcher.core.intents import Intent
from watcher.core.kinds import Kind
from watcher.core.policy import health_intent
from watcher.errors import KebAuthError, KebError, KebTlsError, KebTransientError, WatcherError
from watcher.store.database import Store

#: Failures that mean KEB cannot be read at all (a 404 for one runtime, a bad filter do not).
OUTAGES = (KebTransientError, KebAuthError, KebTlsError)


def watch_keb_health(
    store: Store,
    outcomes: Sequence[WatcherError | None],
    *,
    now: datetime,
    alert_after: float,
    url: str,
    outages: tuple[type[KebError], ...] = OUTAGES,
) -> None:
    """Record this cycle's reads (``None``: one succeeded) in the health record; enqueue the
    alert once the outage lasted ``alert_after`` seconds, the recovery when one succeeded."""
    if not outcomes:
        return
    since, error, alerted = store.health()
    down = [e for e in outcomes if isinstance(e, outages)]
    if len(down) == len(outcomes):
        since = since or now
        error = str(down[0])
        intents: list[Intent] = []
        if not alerted and (now - since).total_seconds() >= alert_after:
            intents.append(
                health_intent(Kind.KEB_UNHEALTHY, since=since, now=now, error=error, url=url)
            )
            alerted = True
        store.set_health(since, error, alerted, intents, now)
    elif since is not None and any(e is None for e in outcomes):
        recovered = [
            health_intent(Kind.KEB_RECOVERED, since=since, now=now, error=error or "", url=url)
        ]
        store.set_health(None, None, False, recovered if alerted else [], now)
