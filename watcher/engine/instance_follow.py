"""The I/O driver of ``watch --instance``: look at the instances, step, tell the sink, sleep.

Each look is one ``GET /runtimes?instance_id=...&state=all&op_detail=all`` for every instance
still watched (50 per request), plus one archive question for those KEB no longer lists.
The decisions are :func:`watcher.core.instance_watch.instance_step`'s. KEB errors: a 401/403
or another permanent answer ends the watch (exit 5); transient ones are ridden out until they
have lasted ``give_up_after``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from watcher.core.instance_watch import InstanceWatch, instance_step
from watcher.errors import KebPermanentError, KebTransientError
from watcher.keb.runtimes import RuntimesClient

#: Exit code of a watch cut short by ``--timeout``.
TIMEOUT_EXIT = 4
#: Exit code when KEB cannot answer.
KEB_EXIT = 5

Emit = Callable[[dict[str, Any]], None]


async def follow_instances(
    client: RuntimesClient,
    instance_ids: Sequence[str],
    *,
    interval: float,
    deadline: float | None,
    give_up_after: float,
    emit: Emit,
    sleep: Callable[[float], Awaitable[None]],
    monotonic: Callable[[], float],
) -> list[tuple[InstanceWatch, int]]:
    """Follow every instance until its operation ended, or ``deadline`` seconds passed (exit
    4), or KEB could not answer (exit 5); each final state with its exit code."""
    watches = {iid: InstanceWatch(iid) for iid in dict.fromkeys(instance_ids)}
    codes: dict[str, int] = {}
    started = monotonic()
    failing_since: float | None = None
    while True:
        waiting = [iid for iid, w in watches.items() if not w.done and iid not in codes]
        if not waiting:
            break
        try:
            listing = await client.by_instances(waiting)
            missing = [iid for iid in waiting if iid not in listing.runtimes]
            archived = await client.deprovisioned(missing) if missing else set()
        except KebPermanentError as err:
            for iid in waiting:
                codes[iid] = KEB_EXIT
                emit({"type": "error", "instance": iid, "reason": str(err)})
            break
        except KebTransientError as err:
            now = monotonic()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= give_up_after:
                for iid in waiting:
                    codes[iid] = KEB_EXIT
                    emit({"type": "error", "instance": iid, "reason": f"gave up: {err}"})
                break
            emit({"type": "reconnecting", "reason": str(err)})
            await sleep(interval)
            continue
        failing_since = None
        for iid in waiting:
            step, events = instance_step(watches[iid], listing.runtimes.get(iid), iid in archived)
            watches[iid] = step
            for event in events:
                emit(event)
            if step.done:
                codes[iid] = step.exit_code
        if all(iid in codes for iid in watches):
            break
        if deadline is not None and monotonic() - started >= deadline:
            for iid, w in watches.items():
                if iid not in codes:
                    codes[iid] = TIMEOUT_EXIT
                    emit({"type": "timeout", "instance": iid, "operation": w.target})
            break
        await sleep(interval)
    return [(watches[iid], codes[iid]) for iid in watches]
