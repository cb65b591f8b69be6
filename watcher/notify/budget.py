"""Slack's rate limits, respected before Slack has to say so.

Slack allows about one message per second per channel, and ``chat.update`` shares a
workspace-wide budget of about 50 a minute (docs/contract.md §5). A 429 carries ``Retry-After``:
that method (for that channel, for posts) pauses for exactly that long, and nothing is retried
in a tight loop. The budget only answers "how long until this call may go"; the sender waits.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from watcher.notify.plan import POST_METHODS, Limits


class RateBudget:
    """Per-process rate budget (a second process sees Slack's 429s instead)."""

    def __init__(
        self,
        *,
        post_interval: float = 1.05,
        updates_per_minute: int = 48,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.post_interval = post_interval
        self.updates_per_minute = updates_per_minute
        self.clock = clock
        self._last_post: dict[str | None, float] = {}
        self._updates: deque[float] = deque()
        self._paused: dict[tuple[str, str | None], float] = {}

    @staticmethod
    def _key(method: str, channel: str | None) -> tuple[str, str | None]:
        return (method, channel if method in POST_METHODS else None)

    def wait(self, method: str, channel: str | None) -> float:
        """Seconds until a call of ``method`` (to ``channel``) is allowed; 0 means now."""
        now = self.clock()
        waits = [self._paused.get(self._key(method, channel), now) - now]
        if method in POST_METHODS and channel in self._last_post:
            waits.append(self._last_post[channel] + self.post_interval - now)
        if method == "chat.update":
            while self._updates and self._updates[0] <= now - 60:
                self._updates.popleft()
            if len(self._updates) >= self.updates_per_minute:
                waits.append(self._updates[0] + 60 - now)
        return max(0.0, *waits)

    def spend(self, method: str, channel: str | None) -> None:
        """Record a call as made (whatever its outcome: Slack counted it)."""
        now = self.clock()
        if method in POST_METHODS:
            self._last_post[channel] = now
        elif method == "chat.update":
            self._updates.append(now)

    def pause(self, method: str, channel: str | None, seconds: float) -> None:
        """Slack answered 429: nothing more for this method (and channel) for ``seconds``."""
        key = self._key(method, channel)
        self._paused[key] = max(self._paused.get(key, 0.0), self.clock() + seconds)

    def alias(self, name: str, channel_id: str) -> None:
        """``name`` is the channel ``channel_id``: what was spent or paused under the name
        counts for the ID from now on (Slack limits the channel, not the way it is named)."""
        if name in self._last_post:
            last = self._last_post[name]
            self._last_post[channel_id] = max(self._last_post.get(channel_id, last), last)
        for (method, channel), until in list(self._paused.items()):
            if channel == name:
                key = (method, channel_id)
                self._paused[key] = max(self._paused.get(key, until), until)

    def limits(self, down: float = 0.0) -> Limits:
        """The budget as it stands, for :func:`watcher.notify.plan.plan`; ``down``: seconds
        left of the destination's backoff."""
        now = self.clock()
        return Limits(
            paused={key: until - now for key, until in self._paused.items() if until > now},
            posted={channel: now - at for channel, at in self._last_post.items()},
            updates=tuple(now - at for at in self._updates if at > now - 60),
            down=max(0.0, down),
        )
