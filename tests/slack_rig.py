"""What an end-to-end notification test stands on: the simulator, its HTTP server as KEB, a
fake Slack over real HTTP, and the configuration file that points the CLI at both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakeslack import FakeSlack, Message
from watcher.sim import SimServer, Simulator

#: The default channel of the tests' configurations, and the event type of our messages.
CHANNEL = "C0KYMA001"
EVENT = "keb_watcher_notification"


@dataclass
class SlackRig:
    sim: Simulator
    keb: SimServer
    slack: FakeSlack
    config: Path

    def channels(self) -> tuple[str, ...]:
        """The channels whose messages count (the routes' channels too, where a test has)."""
        return (CHANNEL,)

    def messages(self) -> list[Message]:
        return [m for cid in self.channels() for m in self.slack.messages(cid)]

    def keys(self) -> list[str]:
        """The metadata key of every message of ours, replies included."""
        return [
            m.metadata["event_payload"]["key"]
            for m in self.messages()
            if m.metadata and m.metadata.get("event_type") == EVENT
        ]

    def posts(self) -> list[Any]:
        return [c for c in self.slack.calls if c.method == "chat.postMessage" and c.ok]
