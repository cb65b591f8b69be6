"""Failed dashboard logins, counted per client: after :data:`LIMIT` failures within
:data:`WINDOW` seconds a client waits until the oldest of them is that old.

In memory (a restart forgets), bounded to :data:`CLIENTS` clients, safe from the worker threads
that serve the pages. The client is the TCP peer: behind a proxy every user shares the proxy's
count, which errs on the side of fewer guesses.

>>> now = [0.0]
>>> logins = LoginThrottle(limit=2, window=60.0, clock=lambda: now[0])
>>> logins.failed("10.0.0.1"), logins.failed("10.0.0.1"), logins.wait("10.0.0.1")
(1, 2, 60.0)
>>> logins.wait("10.0.0.2")
0.0
>>> now[0] = 61.0
>>> logins.wait("10.0.0.1")
0.0
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

LIMIT: Final = 10
WINDOW: Final = 300.0
CLIENTS: Final = 10_000


class LoginThrottle:
    def __init__(
        self,
        *,
        limit: int = LIMIT,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        """Seconds ``client`` must wait before its next try; 0 when it may try now."""
        with self._lock:
            recent = self._recent(client, self.clock())
            if len(recent) < self.limit:
                return 0.0
            return max(0.0, recent[0] + self.window - self.clock())

    def failed(self, client: str) -> int:
        """Count one failure; the failures of ``client`` within the window."""
        with self._lock:
            now = self.clock()
            recent = self._recent(client, now)
            recent.append(now)
            self._failures[client] = recent
            if len(self._failures) > CLIENTS:
                self._forget(now)
            return len(recent)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str, now: float) -> deque[float]:
        recent = self._failures.get(client, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent

    def _forget(self, now: float) -> None:
        for client in [c for c, times in self._failures.items() if times[-1] <= now - self.window]:
            del self._failures[client]
        while len(self._failures) > CLIENTS:
            del self._failures[next(iter(self._failures))]  # the earliest counted
