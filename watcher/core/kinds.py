"""The kinds of notification, and everything each kind implies, in one table.

A kind is what an outbox row says it is (``outbox.kind``). :class:`Kind` is a ``StrEnum``, so a
stored row's string compares equal to its member and no stored value changes. :data:`KINDS`
gives every kind its template, its ``[slack.routes]`` key, its delivery priority, its role in
the channel and its metric label; the policy, the loader, the renderer, the delivery plan, the
sender and the metrics all read from it, and ``tests/test_kinds.py`` checks it is complete.

>>> KINDS[Kind.FINISHED].role
<Role.REPLY: 'reply'>
>>> Kind("progress") in CARD_KINDS
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Kind(StrEnum):
    """A kind of notification; its value is what the outbox stores."""

    TRACKING_STARTED = "tracking_started"
    PROGRESS = "progress"
    FAILURE_DIGEST = "failure_digest"
    STATE_CHANGED = "state_changed"
    RETRIED = "retried"
    FINISHED = "finished"
    NOT_FOUND = "not_found"
    KEB_UNHEALTHY = "keb_unhealthy"
    KEB_RECOVERED = "keb_recovered"
    STUCK = "stuck"
    UNSTUCK = "unstuck"
    AFTER_OUTCOME = "after_outcome"
    GIVEN_UP = "given_up"


class Role(StrEnum):
    """Where a kind shows in the channel."""

    CARD = "card"  # the living card: a post, then edits
    REPLY = "reply"  # a reply in the card's thread (bot token mode)
    ALERT = "alert"  # a landscape-wide alert, a channel message of its own
    NOTICE = "notice"  # a channel message about the watcher itself, written without a template


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What a kind implies.

    ``template``: the Jinja2 template (``templates/``), ``None`` for a notice whose text is
    fixed; ``fleet_template``: the template of a selection's payload (fleet watch), if it has
    its own; ``route``: its key in ``[slack.routes]``, ``None`` when it cannot be routed;
    ``priority``: lower is delivered first, so final and failure messages never wait behind
    progress updates; ``metric``: its label value in the metrics.
    """

    template: str | None
    route: str | None
    priority: int
    role: Role
    metric: str
    fleet_template: str | None = None


def _spec(kind: Kind, template: str | None, priority: int, role: Role, **more: str) -> KindSpec:
    route = None if role is Role.NOTICE else kind.value
    return KindSpec(template, route, priority, role, kind.value, **more)


#: The one table of notification kinds.
KINDS: Final[Mapping[Kind, KindSpec]] = MappingProxyType(
    {
        Kind.TRACKING_STARTED: _spec(
            Kind.TRACKING_STARTED, "card.j2", 4, Role.CARD, fleet_template="fleet_card.j2"
        ),
        Kind.PROGRESS: _spec(
            Kind.PROGRESS, "card.j2", 5, Role.CARD, fleet_template="fleet_card.j2"
        ),
        Kind.FAILURE_DIGEST: _spec(
            Kind.FAILURE_DIGEST,
            "failure_digest.j2",
            2,
            Role.REPLY,
            fleet_template="fleet_digest.j2",
        ),
        Kind.STATE_CHANGED: _spec(Kind.STATE_CHANGED, "state_changed.j2", 3, Role.REPLY),
        Kind.RETRIED: _spec(Kind.RETRIED, "retried.j2", 1, Role.REPLY),
        Kind.FINISHED: _spec(Kind.FINISHED, "finished.j2", 1, Role.REPLY),
        Kind.NOT_FOUND: _spec(Kind.NOT_FOUND, "not_found.j2", 2, Role.REPLY),
        Kind.KEB_UNHEALTHY: _spec(Kind.KEB_UNHEALTHY, "keb_unhealthy.j2", 0, Role.ALERT),
        Kind.KEB_RECOVERED: _spec(Kind.KEB_RECOVERED, "keb_recovered.j2", 0, Role.ALERT),
        Kind.STUCK: _spec(Kind.STUCK, "stuck.j2", 2, Role.REPLY, fleet_template="fleet_stuck.j2"),
        Kind.UNSTUCK: _spec(
            Kind.UNSTUCK, "unstuck.j2", 3, Role.REPLY, fleet_template="fleet_unstuck.j2"
        ),
        Kind.AFTER_OUTCOME: _spec(Kind.AFTER_OUTCOME, "after_outcome.j2", 2, Role.REPLY),
        Kind.GIVEN_UP: _spec(Kind.GIVEN_UP, None, 0, Role.NOTICE),
    }
)

#: Kinds that are the orchestration's card.
CARD_KINDS: Final = frozenset(k for k, s in KINDS.items() if s.role is Role.CARD)
#: Kinds that are replies in the card's thread.
REPLY_KINDS: Final = frozenset(k for k, s in KINDS.items() if s.role is Role.REPLY)
#: What a silence holds back (dropped, never sent later): the thread's replies and stuck
#: alerts; never the card (kept current), the final summary or ``not_found`` (always sent).
SILENCEABLE: Final = frozenset(REPLY_KINDS - {Kind.FINISHED, Kind.NOT_FOUND})
#: Kinds that ``[slack.routes]`` may send to a channel of their own, in table order.
ROUTE_KEYS: Final = tuple(s.route for s in KINDS.values() if s.route is not None)
#: Kinds rendered by a template, in table order (``watcher render``, ``check-config``).
TEMPLATED: Final = tuple(k for k, s in KINDS.items() if s.template is not None)


def priority(kind: Kind) -> int:
    """The delivery priority of ``kind`` (lower goes first)."""
    return KINDS[kind].priority
