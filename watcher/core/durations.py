"""Durations as operators write them: ``"30s"``, ``"5m"``, ``"1h30m"``, ``"500ms"`` or seconds.

One grammar serves the configuration file and the command line (``watch --interval 5m``)::

    duration  := number | component+        (at least one component, or a plain number)
    component := number unit                 (units in descending order, each at most once)
    unit      := "d" | "h" | "m" | "s" | "ms"
    number    := digits ["." digits]

A TOML integer or float is a number of seconds. Negative, infinite or NaN values are rejected:
no setting in keb-watcher means anything with a negative duration. So is anything above
:data:`LONGEST` (a century): no setting means that either, and a date or timer that far away
overflows.

>>> parse_duration("1h30m", key="poll.interval")
5400.0
>>> format_duration(5400)
'1h30m'
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Final

from watcher.errors import DurationError

__all__ = ["DurationError", "format_duration", "is_duration", "parse_duration", "type_phrase"]

HINT: Final = "use 30s, 5m, 2h, 0s or seconds"
#: The longest duration anything accepts: 100 years of 365 days, in seconds.
LONGEST: Final = 100 * 365 * 86_400.0

# Milliseconds per unit, largest first: the order a duration's components must follow.
_UNIT_MS: Final = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
_NUMBER: Final = r"\d+(?:\.\d+)?"
# "ms" before "m": alternation takes the first alternative that matches.
_COMPONENT: Final = re.compile(rf"({_NUMBER})(ms|d|h|m|s)")
_DURATION: Final = re.compile(rf"(?:{_NUMBER}(?:ms|d|h|m|s))+")
_SECONDS: Final = re.compile(_NUMBER)


def type_phrase(value: object) -> str:
    """Name the TOML type of ``value`` the way an error message needs it: ``"a list"``.

    >>> type_phrase([1]), type_phrase(True), type_phrase(1.5)
    ('a list', 'a boolean', 'a float')
    """
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return f"a {type(value).__name__}"


def parse_duration(text_or_number: object, *, key: str) -> float:
    """Return the duration in seconds, or raise :class:`DurationError` naming ``key``.

    ``text_or_number`` is a string in the grammar above or a non-negative int/float of seconds
    (``True`` is not a number here, although Python says it is an int).

    >>> parse_duration("500ms", key="x"), parse_duration(90, key="x"), parse_duration("2", key="x")
    (0.5, 90.0, 2.0)
    >>> parse_duration("5 minutes", key="poll.interval")
    Traceback (most recent call last):
    ...
    watcher.errors.DurationError: poll.interval: bad duration '5 minutes' (use 30s, 5m, ...)
    >>> parse_duration("30000000d", key="poll.interval")
    Traceback (most recent call last):
    ...
    watcher.errors.DurationError: poll.interval: bad duration '30000000d' (at most 36500d)
    """
    seconds = _parse(text_or_number, key)
    if seconds > LONGEST:
        shown = text_or_number if isinstance(text_or_number, str) else seconds
        raise DurationError(
            key, text_or_number, f"bad duration {shown!r} (at most {format_duration(LONGEST)})"
        )
    return seconds


def _parse(text_or_number: object, key: str) -> float:
    value = text_or_number
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DurationError(
            key, value, f"expected a duration string or number, got {type_phrase(value)}"
        )
    if isinstance(value, int | float):
        if isinstance(value, int) and value > LONGEST:  # before float(): it may not fit one
            raise DurationError(key, value, f"bad duration {value} (at most {LONGEST:.0f}s)")
        if not math.isfinite(value):
            raise DurationError(key, value, f"bad duration {value} ({HINT})")
        if value < 0:
            raise DurationError(key, value, f"bad duration {value} (must not be negative)")
        return float(value)
    text = value.strip()
    if text.startswith("-") and is_duration(text[1:]):
        raise DurationError(key, value, f"bad duration {value!r} (must not be negative)")
    if _SECONDS.fullmatch(text):
        return float(Decimal(text))
    if not _DURATION.fullmatch(text):
        raise DurationError(key, value, f"bad duration {value!r} ({HINT})")
    total_ms = Decimal(0)
    previous = math.inf
    for number, unit in _COMPONENT.findall(text):
        size = _UNIT_MS[unit]
        if size >= previous:
            raise DurationError(
                key,
                value,
                f"bad duration {value!r} (write units largest first, each once: 1h30m, 2m5s)",
            )
        previous = size
        total_ms += Decimal(number) * size
    return float(total_ms / 1000)


def is_duration(text: str) -> bool:
    """Whether ``text`` is written in the grammar above (whatever its size)."""
    return bool(_SECONDS.fullmatch(text) or _DURATION.fullmatch(text))


def format_duration(seconds: float) -> str:
    """The compact form of ``seconds``, rounded to milliseconds, that :func:`parse_duration` reads.

    >>> [format_duration(s) for s in (0, 45, 90, 5400, 86400, 0.25, 93784.005)]
    ['0s', '45s', '1m30s', '1h30m', '1d', '250ms', '1d2h3m4s5ms']
    >>> format_duration(-30)
    '-30s'
    """
    if not math.isfinite(seconds):
        raise ValueError(f"cannot format {seconds} as a duration")
    total_ms = round(Decimal(seconds) * 1000)
    if total_ms < 0:
        return "-" + format_duration(-seconds)
    parts = []
    for unit, size in _UNIT_MS.items():
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
