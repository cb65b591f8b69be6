"""`--state` the way people type it: repeated or comma-separated, any case, with or without a
space, hyphen or underscore; anything else is one line naming the valid states. Through the
real CLI (`list`, `orchestrations`) and as a property of the pure parser."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Cli
from watcher.core.ids import states
from watcher.core.models import KNOWN_STATES
from watcher.errors import UsageError

VALID = "pending, inprogress, canceling, retrying, succeeded, failed, canceled"


@st.composite
def spelled(draw: st.DrawFn, state: str) -> str:
    """``state`` with random case and its space written as nothing, a space, - or _."""
    gap = draw(st.sampled_from(["", " ", "-", "_"]))
    text = state.replace(" ", gap)
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if f else c for c, f in zip(text, flips, strict=True))


@given(st.data())
def test_any_spelling_of_any_states_comma_separated_is_those_states(data: st.DataObject) -> None:
    chosen = data.draw(st.lists(st.sampled_from(KNOWN_STATES), min_size=1, max_size=4))
    typed = [data.draw(spelled(s)) for s in chosen]
    pad = data.draw(st.sampled_from(["", " "]))
    assert states([f",{pad}".join(typed)]) == tuple(dict.fromkeys(chosen))
    assert states(typed) == tuple(dict.fromkeys(chosen))


@pytest.mark.parametrize("typed", ["running", "in progres", "failed,done", "", ","])
def test_an_unknown_state_is_an_error_listing_the_valid_ones(typed: str) -> None:
    with pytest.raises(UsageError, match=f"unknown state .* \\(choose from {VALID}\\)$"):
        states([typed])


@pytest.fixture
def demo(cli: Cli, keb_factory: Any) -> tuple[str, dict[str, str]]:
    keb = keb_factory("demo")
    keb.sim.advance(100)
    cfg = str(keb.config)
    ids = keb.sim.orchestration_ids()
    assert cli("track", *ids, "-c", cfg).code == 0
    assert cli("poll", "-c", cfg).code == 0
    truth = {i: keb.sim.orchestration_state(i) for i in ids}
    assert {"pending", "in progress"} <= set(truth.values())  # the filter has work to do
    return cfg, truth


@pytest.mark.parametrize("command", ["list", "orchestrations"])
@pytest.mark.parametrize(
    "typed",
    [
        ["--state", "pending,inprogress"],
        ["--state", "Pending, In Progress"],
        ["-s", "in-progress", "-s", "PENDING"],
        ["--state", "in_progress,pending,inprogress"],
    ],
)
def test_comma_separated_and_loose_spellings_filter_like_the_repeated_form(
    cli: Cli, demo: tuple[str, dict[str, str]], command: str, typed: list[str]
) -> None:
    cfg, truth = demo
    result = cli(command, *typed, "-o", "json", "-c", cfg)
    assert result.code == 0, result.err
    wanted = {i for i, s in truth.items() if s in ("pending", "in progress")}
    assert {o["orchestrationID"] for o in result.json()} == wanted


@pytest.mark.parametrize("command", ["list", "orchestrations"])
def test_an_unknown_state_exits_2_with_one_line(
    cli: Cli, demo: tuple[str, dict[str, str]], command: str
) -> None:
    cfg, _ = demo
    result = cli(command, "--state", "failed,running", "-c", cfg)
    assert result.code == 2
    assert result.out == ""
    assert result.err == f"watcher: --state: unknown state 'running' (choose from {VALID})\n"
