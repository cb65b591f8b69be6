"""The application facade the CLI talks to: configuration, store and KEB client together.

Commands stay thin: they parse arguments, call one method here and print what it returns.
Resources are opened lazily, so ``watcher status`` never creates a database and
``watcher history`` never needs KEB.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType

from watcher.config import Config
from watcher.diff import Transition
from watcher.errors import ConfigError, UsageError
from watcher.keb import CommandToken, FileToken, KebClient, RetryPolicy, StaticToken, TokenProvider
from watcher.models import Orchestration
from watcher.service import CycleReport, Engine, utcnow
from watcher.store import Store, Tracked

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_ids(ids: Sequence[str]) -> list[str]:
    """Orchestration IDs are UUIDs in KEB; accept any plain token, reject what cannot be one."""
    for orch_id in ids:
        if not _ID.match(orch_id):
            raise UsageError(f"{orch_id!r} is not an orchestration ID (expected e.g. a UUID)")
    return list(dict.fromkeys(ids))


def token_provider(config: Config) -> TokenProvider:
    keb = config.keb
    if keb.token:
        return StaticToken(keb.token.reveal())
    if keb.token_file is not None:
        return FileToken(keb.token_file)
    if keb.token_command:
        return CommandToken(keb.token_command)
    raise ConfigError(
        "keb: no token configured: set keb.token, keb.token_file or keb.token_command "
        "(or the KEB_TOKEN environment variable)"
    )


def keb_client(config: Config) -> KebClient:
    return KebClient(
        config.keb.url,
        token_provider(config),
        timeout=config.keb.timeout,
        concurrency=config.keb.concurrency,
        retry=RetryPolicy(attempts=config.keb.retries),
    )


class Watcher:
    """One configured keb-watcher: what every command needs, opened on first use."""

    def __init__(self, config: Config, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.clock = clock
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.config.storage.path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- tracking -------------------------------------------------------------------------

    def track(self, ids: Sequence[str], channel: str | None) -> list[str]:
        """Start tracking; returns the IDs that are new (the others resume)."""
        return self.store.track(check_ids(ids), channel, self.clock())

    def untrack(self, ids: Sequence[str]) -> list[str]:
        """Stop tracking; returns the IDs that were not tracked."""
        return self.store.untrack(check_ids(ids), self.clock())

    def tracked(self) -> list[Tracked]:
        return self.store.tracked()

    def history(self, orch_id: str) -> list[Transition]:
        check_ids([orch_id])
        if not self.store.is_known(orch_id):
            raise UsageError(f"{orch_id} is not tracked and has no history")
        return self.store.history(orch_id)

    # -- KEB ------------------------------------------------------------------------------

    async def status(self, orch_id: str) -> Orchestration:
        check_ids([orch_id])
        async with keb_client(self.config) as keb:
            return await keb.get_orchestration(orch_id)

    async def poll(self) -> CycleReport:
        """Exactly one cycle over everything tracked."""
        async with keb_client(self.config) as keb:
            engine = Engine(
                self.store,
                keb,
                clock=self.clock,
                full_sweep_every=self.config.poll.full_sweep_every,
                concurrency=self.config.poll.concurrency,
            )
            return await engine.poll_once()
