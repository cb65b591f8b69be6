"""Notification intents: what the outbox holds until a notifier has delivered it.

An intent is written in the same transaction as the snapshot change that caused it, so it
survives crashes and Slack outages. ``key`` is the once-per key of the logical notification:
the outbox has a unique index on it, and every delivery of the same intent carries it (Slack
message metadata), so a post that succeeded just before a crash can be recognised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from watcher.core.kinds import Kind


@dataclass(frozen=True, slots=True)
class Intent:
    """One logical notification. Lower ``priority`` values are delivered first."""

    key: str
    kind: Kind
    orchestration_id: str | None
    priority: int
    payload: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    channel: str | None = None
