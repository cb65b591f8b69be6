"""Orchestration IDs as people type them: full UUIDs, or unique prefixes of tracked ones.

KEB names every orchestration with a fresh UUIDv4 (docs/keb-api.md §2.7), so ``track``
accepts only that form; where an orchestration keb-watcher already knows is named (``history``,
``untrack``, ``render --orchestration``, ``watch``, ``status``), the first 8 or more
characters do, as with git commits, as long as they name exactly one. Pure: the caller passes
the IDs it knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from watcher.core.models import KNOWN_STATES
from watcher.errors import UsageError

#: The shortest prefix accepted: the 8 hex digits the demo and Slack show.
MIN_PREFIX: Final = 8

_UUID: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PREFIX: Final = re.compile(r"^[0-9a-f-]+$")


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a UUID in its canonical hyphenated form (any case).

    >>> is_uuid("5A3F1F5E-8D2B-4F0C-9B8E-0F5C2E7D9A1F")
    True
    >>> is_uuid("5a3f1f5e"), is_uuid("not/an/id")
    (False, False)
    """
    return bool(_UUID.match(value.lower()))


def require_uuids(values: Iterable[str]) -> list[str]:
    """The values as lower-case UUIDs, without duplicates; :class:`UsageError` for the first
    that is not one.

    >>> require_uuids(["5A3F1F5E-8D2B-4F0C-9B8E-0F5C2E7D9A11"])
    ['5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11']
    """
    out: list[str] = []
    for value in values:
        if not is_uuid(value):
            raise UsageError(
                f"{value!r} is not an orchestration ID: KEB's IDs are UUIDs such as "
                "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11 (see `watcher orchestrations`)"
            )
        out.append(value.lower())
    return list(dict.fromkeys(out))


def resolve(value: str, known: Iterable[str]) -> str:
    """The one ID among ``known`` that ``value`` names: itself when it is a full UUID
    (known or not), else the only known ID it is a prefix of.

    >>> resolve("4ab15fee", ["4ab15fee-0000-4000-8000-000000000001", "5a3f1f5e-0000-4000-8000-0"])
    '4ab15fee-0000-4000-8000-000000000001'
    >>> resolve("4ab1", [])
    Traceback (most recent call last):
    ...
    watcher.errors.UsageError: '4ab1' is too short: give at least 8 characters of the ID
    """
    lowered = value.lower()
    if is_uuid(lowered):
        return lowered
    if not _PREFIX.match(lowered):
        raise UsageError(f"{value!r} is not an orchestration ID or the prefix of one")
    if len(lowered) < MIN_PREFIX:
        raise UsageError(f"{value!r} is too short: give at least {MIN_PREFIX} characters of the ID")
    matches = sorted({k for k in known if k.lower().startswith(lowered)})
    if not matches:
        raise UsageError(f"{value!r} matches no orchestration keb-watcher knows")
    if len(matches) > 1:
        more = f" and {len(matches) - 3} more" if len(matches) > 3 else ""
        shown = ", ".join(matches[:3]) + more
        raise UsageError(f"{value!r} is ambiguous: it starts {len(matches)} IDs ({shown})")
    return matches[0]


#: KEB's state literals by their loose spelling: ``kcp``'s ``inprogress``, ``in-progress``,
#: ``In Progress`` and KEB's own ``in progress`` are one state (docs/keb-api.md §4.1, §7).
_LOOSE_STATES: Final = {re.sub(r"[\s_-]", "", s): s for s in KNOWN_STATES}


def _loose(value: str) -> str:
    return re.sub(r"[\s_-]", "", value.lower())


def states(values: Iterable[str], known: Iterable[str] = KNOWN_STATES) -> tuple[str, ...]:
    """KEB's state literals for what people type after ``--state``: repeated or
    comma-separated, in any case, with or without a space, hyphen or underscore
    (``inprogress``, ``in-progress``, ``"In Progress"``); :class:`UsageError` naming the valid
    ones for anything else. ``known``: the states accepted (by default KEB's orchestration and
    operation states; fleet watch adds ``unknown``, an outcome KEB no longer shows).

    >>> states(["inprogress,failed", "In Progress", "CANCELED"])
    ('in progress', 'failed', 'canceled')
    >>> states(["running"])
    Traceback (most recent call last):
    ...
    watcher.errors.UsageError: --state: unknown state 'running' (choose from pending, \
inprogress, canceling, retrying, succeeded, failed, canceled)
    """
    accepted = tuple(known)
    loose = (
        _LOOSE_STATES
        if accepted == KNOWN_STATES
        else {re.sub(r"[\s_-]", "", s): s for s in accepted}
    )
    out: list[str] = []
    for value in values:
        items = [item for item in value.split(",") if item.strip()] or [value]
        for item in items:
            state = loose.get(_loose(item))
            if state is None:
                choices = ", ".join(s.replace(" ", "") for s in accepted)
                raise UsageError(f"--state: unknown state {item!r} (choose from {choices})")
            out.append(state)
    return tuple(dict.fromkeys(out))
