"""What ``watcher history`` adds to the recorded transitions: ``--since``, ``--tail`` and
``--follow``. The transitions come from :class:`watcher.app.Watcher`; this module only
chooses and prints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import click

from watcher.app import Watcher
from watcher.core.diff import Transition
from watcher.core.durations import DurationError, is_duration, parse_duration
from watcher.errors import UsageError
from watcher.faces import reports as report

#: How often ``--follow`` looks for new transitions in the database.
FOLLOW_EVERY = 1.0


def parse_since(value: str, now: datetime) -> datetime:
    """``--since``: a duration back from ``now`` (``2h``, ``30m``) or a time (ISO 8601; UTC
    when it names no zone).

    >>> now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    >>> parse_since("2h", now).isoformat(), parse_since("2024-05-01T08:00", now).isoformat()
    ('2024-05-01T10:00:00+00:00', '2024-05-01T08:00:00+00:00')
    """
    try:
        return now - timedelta(seconds=parse_duration(value, key="--since"))
    except DurationError:
        if is_duration(value.strip()):
            raise  # a duration, but not one to accept (longer than a century)
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since: {value!r} is neither a duration (2h, 30m) nor a time (2024-05-01T08:00:00Z)"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def choose(
    items: Sequence[Transition], since: datetime | None, tail: int | None
) -> list[Transition]:
    """The transitions at or after ``since``, then the last ``tail`` of them."""
    chosen = [t for t in items if since is None or t.at >= since]
    if tail is not None:
        chosen = chosen[-tail:] if tail else []
    return chosen


def emit(items: Sequence[Transition], output: str) -> None:
    """One line per transition; with ``json``, one JSON object per line (``--follow``)."""
    for t in items:
        if output == "json":
            click.echo(json.dumps(report.transition_json(t), separators=(",", ":")))
        else:
            click.echo(report.transition_line(t))


def follow(
    app: Watcher,
    orch_id: str,
    after: int,
    seen: set[str],
    output: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Print the transitions of ``orch_id`` that ``poll`` or ``run`` record after row
    ``after``, until the orchestration is terminal and its final transition is printed
    (return: exit 0), or until interrupted (Ctrl-C: exit 130).

    The state is read before the transitions: the store commits a state together with its
    transitions, so those of a terminal state read first are in the read that follows."""
    while True:
        ended = app.has_ended(orch_id)
        after, new = app.transitions_after(orch_id, after)
        fresh = [t for t in new if t.key not in seen]
        seen.update(t.key for t in fresh)
        emit(fresh, output)
        if ended:
            return
        sleep(FOLLOW_EVERY)
