"""The schedule of ``watcher run``: APScheduler's trigger for ``[poll] interval`` or ``cron``,
and the time between two of its ticks (what :func:`watcher.core.cadence.cadence` counts in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from watcher.config.settings import PollConfig


def poll_trigger(poll: PollConfig) -> CronTrigger | IntervalTrigger:
    """The poll job's trigger: cron (five fields, as ``CronTrigger.from_crontab`` reads them,
    which takes no jitter) or interval, in UTC."""
    jitter = poll.jitter or None
    if poll.cron:
        minute, hour, day, month, day_of_week = poll.cron.split()
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=day_of_week,
            timezone=UTC,
            jitter=jitter,
        )
    return IntervalTrigger(seconds=poll.interval, timezone=UTC, jitter=jitter)


def tick_seconds(poll: PollConfig, now: datetime) -> float:
    """The time between two scheduled cycles: the interval, or the gap between the next two
    times the cron expression fires."""
    if not poll.cron:
        return poll.interval
    trigger = CronTrigger.from_crontab(poll.cron, timezone=UTC)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    return float((second - first).total_seconds())
