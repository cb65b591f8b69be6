"""Durations: the grammar operators write, its error messages, and the compact form back."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.core.durations import LONGEST, format_duration, parse_duration
from watcher.errors import ConfigError, DurationError


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("0s", 0.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1d2h3m4s5ms", 93784.005),
        ("1.5h", 5400.0),
        ("90m", 5400.0),
        (" 5m ", 300.0),
        ("45", 45.0),
        ("2.5", 2.5),
        (0, 0.0),
        (90, 90.0),
        (1.25, 1.25),
    ],
)
def test_parse_duration_accepts(value: object, seconds: float) -> None:
    assert parse_duration(value, key="poll.interval") == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5 minutes", "x.y: bad duration '5 minutes' (use 30s, 5m, 2h, 0s or seconds)"),
        ("", "x.y: bad duration '' (use 30s, 5m, 2h, 0s or seconds)"),
        ("1h 30m", "x.y: bad duration '1h 30m' (use 30s, 5m, 2h, 0s or seconds)"),
        ("5M", "x.y: bad duration '5M' (use 30s, 5m, 2h, 0s or seconds)"),
        ("m", "x.y: bad duration 'm' (use 30s, 5m, 2h, 0s or seconds)"),
        (".5s", "x.y: bad duration '.5s' (use 30s, 5m, 2h, 0s or seconds)"),
        ("5w", "x.y: bad duration '5w' (use 30s, 5m, 2h, 0s or seconds)"),
        ("-5s", "x.y: bad duration '-5s' (must not be negative)"),
        ("-5", "x.y: bad duration '-5' (must not be negative)"),
        (-1, "x.y: bad duration -1 (must not be negative)"),
        (-0.5, "x.y: bad duration -0.5 (must not be negative)"),
        (math.inf, "x.y: bad duration inf (use 30s, 5m, 2h, 0s or seconds)"),
        (math.nan, "x.y: bad duration nan (use 30s, 5m, 2h, 0s or seconds)"),
        ("30m1h", "x.y: bad duration '30m1h' (write units largest first, each once: 1h30m, 2m5s)"),
        ("1m1m", "x.y: bad duration '1m1m' (write units largest first, each once: 1h30m, 2m5s)"),
        (True, "x.y: expected a duration string or number, got a boolean"),
        (None, "x.y: expected a duration string or number, got a NoneType"),
        ([1], "x.y: expected a duration string or number, got a list"),
        ({"s": 1}, "x.y: expected a duration string or number, got a table"),
    ],
)
def test_parse_duration_rejects_with_the_key_and_value(value: object, message: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(value, key="x.y")
    assert str(caught.value) == message
    assert caught.value.key == "x.y"


def test_duration_error_is_a_config_error_and_a_value_error() -> None:
    with pytest.raises(ConfigError):
        parse_duration("soon", key="--interval")
    with pytest.raises(ValueError, match=r"^--interval: bad duration 'soon'"):
        parse_duration("soon", key="--interval")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "0s"),
        (45, "45s"),
        (60, "1m"),
        (90, "1m30s"),
        (5400, "1h30m"),
        (86400, "1d"),
        (30 * 86400, "30d"),
        (0.5, "500ms"),
        (1.5, "1s500ms"),
        (93784.005, "1d2h3m4s5ms"),
        (-30, "-30s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_format_duration_refuses_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match="cannot format"):
        format_duration(value)


@st.composite
def canonical_durations(draw: st.DrawFn) -> str:
    """Compact durations as format_duration writes them: ranges normalised, zeros left out."""
    limits = {"d": 36_499, "h": 23, "m": 59, "s": 59, "ms": 999}  # within a century
    parts = [f"{n}{unit}" for unit, top in limits.items() if (n := draw(st.integers(0, top)))]
    return "".join(parts) or "0s"


@given(canonical_durations())
def test_format_gives_back_the_canonical_text(text: str) -> None:
    assert format_duration(parse_duration(text, key="k")) == text


@st.composite
def written_durations(draw: st.DrawFn) -> str:
    """Durations as people write them: any size per unit, some units left out, decimals."""
    units = draw(st.lists(st.sampled_from(["d", "h", "m", "s", "ms"]), min_size=1, unique=True))
    order = ["d", "h", "m", "s", "ms"]
    parts = []
    for unit in sorted(units, key=order.index):
        whole = draw(st.integers(0, 10_000))
        tenths = draw(st.none() | st.integers(0, 9))
        parts.append(f"{whole}{'' if tenths is None else f'.{tenths}'}{unit}")
    return "".join(parts)


@given(written_durations())
def test_format_then_parse_keeps_the_length(text: str) -> None:
    seconds = parse_duration(text, key="k")
    again = parse_duration(format_duration(seconds), key="k")
    # format_duration rounds to whole milliseconds: at most half of one is lost, plus the
    # float's own resolution at this magnitude (months of seconds have ulps above 1e-9).
    assert abs(again - seconds) <= 0.0005 + 4 * math.ulp(seconds)


@given(st.integers(0, 10**9))
def test_whole_seconds_round_trip_exactly(seconds: int) -> None:
    assert parse_duration(format_duration(seconds), key="k") == seconds


@pytest.mark.parametrize(
    "value",
    [
        "36500d1ms",
        "36501d",
        "99999999999d",
        "1" + "0" * 400 + "s",
        10**400,
        10**20,
        3.2e9,
        "3153600001",
    ],
)
def test_nothing_beyond_a_century_is_a_duration(value: object) -> None:
    with pytest.raises(DurationError, match=r"^poll\.interval: bad duration .*\(at most "):
        parse_duration(value, key="poll.interval")


def test_a_century_itself_is_one() -> None:
    assert parse_duration("36500d", key="k") == LONGEST == 3_153_600_000
    assert parse_duration(3_153_600_000, key="k") == LONGEST
