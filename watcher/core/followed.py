"""What keb-watcher follows: a thing that has operations, whichever KEB API shows it.

Two sources exist. An *orchestration* (KEB 1.15.0 and older, ``/orchestrations``) groups one
operation per runtime; a *selection* (KEB 1.15.1 and later, ``/runtimes``) is a named set of
runtimes whose own operations (provisioning, update, suspension, unsuspension,
deprovisioning) are followed. Both are a :class:`Followed`: a kind and a name, the key
notifications carry in their metadata, and operations seen as :class:`OperationFact` values,
which the failure grouping of :mod:`watcher.core.failures` and the words of the faces read
the same way for both.

A third source plugs in by adding a :class:`SourceKind`, a client in ``keb/`` and an
observer in ``engine/`` that turn its answers into :class:`OperationFact` values, and a pure
diff in ``core/`` (as :mod:`watcher.core.fleet_diff` does for selections); see
docs/architecture.md §8.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from watcher.core.failures import EXAMPLES, grouped


class SourceKind(StrEnum):
    ORCHESTRATION = "orchestration"
    SELECTION = "selection"


@dataclass(frozen=True, slots=True)
class Followed:
    """A thing we follow: an orchestration by ID, or a selection of runtimes by name.

    >>> Followed(SourceKind.SELECTION, "eu-prod").metadata()
    {'fleet': 'eu-prod'}
    >>> Followed(SourceKind.ORCHESTRATION, "0b1c").metadata()
    {'orchestration_id': '0b1c'}
    """

    kind: SourceKind
    name: str

    @property
    def metadata_key(self) -> str:
        """The key Slack message metadata names it by (docs/notifications.md)."""
        return "fleet" if self.kind is SourceKind.SELECTION else "orchestration_id"

    def metadata(self) -> dict[str, str]:
        return {self.metadata_key: self.name}


@dataclass(frozen=True, slots=True)
class OperationFact:
    """One operation of something followed, as the faces show it.

    ``kind`` is the operation type (``upgradeCluster`` for orchestrations; the ``/runtimes``
    list an operation appears in for selections); ``reason`` is what failures group by."""

    operation_id: str
    kind: str
    state: str
    reason: str = ""
    instance_id: str = ""
    shoot: str = ""
    subaccount_id: str = ""
    runtime_id: str = ""


def failure_digest(
    facts: Iterable[OperationFact], examples: int = EXAMPLES
) -> list[dict[str, Any]]:
    """Failed operations grouped by reason (most frequent first), each with a few examples
    naming shoot, subaccount and instance, and how many more there are.

    >>> bad = [OperationFact("o1", "update", "failed", "quota", "i1", "c1", "s1"),
    ...        OperationFact("o2", "provisioning", "failed", "quota", "i2", "c2", "s2")]
    >>> [(g["reason"], g["count"], g["more"]) for g in failure_digest(bad, examples=1)]
    [('quota', 2, 1)]
    """
    groups = []
    for reason, items in grouped(list(facts), lambda fact: fact.reason):
        groups.append(
            {
                "reason": reason,
                "count": len(items),
                "examples": [
                    {
                        "kind": fact.kind,
                        "instance_id": fact.instance_id,
                        "shoot": fact.shoot,
                        "subaccount_id": fact.subaccount_id,
                        "operation_id": fact.operation_id,
                    }
                    for fact in items[:examples]
                ],
                "more": max(0, len(items) - examples),
            }
        )
    return groups
