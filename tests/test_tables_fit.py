"""Tables that fit the terminal: at 80 columns `list` and `orchestrations` print every line
within 80 characters, no state cut, IDs shortened to prefixes that still name them; wider
terminals show TYPE, TARGETS and DRY RUN as `kcp orchestrations` does; a pipe gets it all.
Through the real CLI (COLUMNS as a terminal sets it), and `fit` as a property."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Cli, Keb
from watcher.core.models import KNOWN_STATES
from watcher.faces.tables import Column, fit, lines

STATE = "|".join(re.escape(s) for s in sorted((*KNOWN_STATES, "not found"), key=len, reverse=True))
#: Two IDs that share their first 11 characters: a prefix of 8 would name both.
TWINS = ("5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11", "5a3f1f5e-8dff-4f0c-9b8e-0f5c2e7d9a12")


def tracked_demo(cli: Cli, keb: Keb) -> dict[str, str]:
    cfg = str(keb.config)
    keb.sim.advance(100)
    ids = keb.sim.orchestration_ids()
    assert cli("track", *ids, "-c", cfg).code == 0
    assert cli("poll", "-c", cfg).code == 0
    return {i: keb.sim.orchestration_state(i) for i in ids}


def rows_at(out: str, width: int) -> list[str]:
    text = out.splitlines()
    assert all(len(line) <= width for line in text), "\n".join(
        f"{len(line):4} {line}" for line in text
    )
    return text


def test_list_at_80_columns_fits_with_whole_states_and_prefixes_that_resolve(
    cli: Cli, keb_factory: Any
) -> None:
    keb = keb_factory("demo")
    truth = tracked_demo(cli, keb)
    cfg = str(keb.config)
    assert cli("track", "--no-check", *TWINS, "-c", cfg).code == 0
    text = rows_at(cli("list", "-c", cfg, env={"COLUMNS": "80"}).out, 80)
    assert text[0].split()[:2] == ["ID", "STATE"]
    rows = [line for line in text[1:] if not line.startswith("*")]
    assert len(rows) == len(truth) + 2
    for line in rows:
        prefix = line.split()[0]
        assert len(prefix) == 12  # unique among all: the twins share 11 characters
        [full] = [i for i in [*truth, *TWINS] if i.startswith(prefix)]
        rest = line[len(prefix) :].lstrip()
        if full in truth:
            assert re.match(rf"({STATE})( \*)?(\s|$)", rest), line  # the state is whole
            assert rest.startswith(truth[full])
        else:
            assert rest.startswith("(no baseline yet)"), line
        named = cli("history", prefix, "-o", "json", "-c", cfg)
        assert named.code == 0, named.err  # the prefix shown names it


def test_list_wide_shows_every_column_and_a_pipe_gets_full_ids(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("demo")
    truth = tracked_demo(cli, keb)
    cfg = str(keb.config)
    wide = rows_at(cli("list", "-c", cfg, env={"COLUMNS": "200"}).out, 200)
    assert wide[0].split() == ["ORCHESTRATION", "STATE", "AGE", "LAST", "POLL", "OPERATIONS"]
    piped = cli("list", "-c", cfg).out.splitlines()  # no COLUMNS, not a terminal: no limit
    assert piped == wide
    assert {line.split()[0] for line in piped[1:] if not line.startswith("*")} == set(truth)


def test_a_long_poll_error_is_cut_at_80_never_the_state(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("small")
    cfg = str(keb.config)
    orch = keb.sim.orchestration_ids()[0]
    assert cli("track", orch, "-c", cfg).code == 0
    assert cli("poll", "-c", cfg).code == 0
    keb.server.stop()
    assert cli("poll", "-c", cfg).code == 1  # the error is kept on the row
    text = rows_at(cli("list", "-c", cfg, env={"COLUMNS": "80"}).out, 80)
    assert text[1].startswith(f"{orch[:8]}  pending")
    assert text[1].endswith("…")
    full = cli("list", "-c", cfg, env={"COLUMNS": "400"}).out.splitlines()[1]
    assert "[last poll failed: " in full  # all of it where there is room


def test_orchestrations_at_80_and_wide(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("demo")
    keb.sim.advance(100)
    cfg = str(keb.config)
    truth = {i: keb.sim.orchestration_state(i) for i in keb.sim.orchestration_ids()}
    dry = keb.sim.orchestration_ids()[-1]  # the demo's last one is a dry run
    narrow = rows_at(cli("orchestrations", "-c", cfg, env={"COLUMNS": "80"}).out, 80)
    assert narrow[0].split()[0] == "ID"
    assert "DRY RUN" not in narrow[0]
    assert "TARGETS" not in narrow[0]
    for line in narrow[1:]:
        prefix = line.split()[0]
        [full] = [i for i in truth if i.startswith(prefix)]
        assert re.search(rf"  {re.escape(truth[full])}(  |$)", line), line
    wide = rows_at(cli("orchestrations", "-c", cfg, env={"COLUMNS": "200"}).out, 200)
    header = wide[0]
    for name in ("ORCHESTRATION ID", "TYPE", "STATE", "DRY RUN", "TARGETS", "TRACKED", "DETAILS"):
        assert name in header
    rows = {line.split()[0]: line for line in wide[1:]}
    assert set(rows) == set(truth)
    col = header.index("DRY RUN")
    assert {i: rows[i][col : col + 3].strip() for i in rows} == {
        i: ("yes" if i == dry else "no") for i in truth
    }
    targets = header.index("TARGETS")
    assert all(re.match(r"[a-zA-Z]+=", rows[i][targets:]) for i in rows), wide
    assert all("cluster upgrade" in line for line in wide[1:])


_CELL = st.text(alphabet="abcdefgh -_:", min_size=0, max_size=30)


@given(
    st.lists(st.tuples(_CELL, st.sampled_from(KNOWN_STATES), _CELL, _CELL), min_size=1),
    st.integers(60, 160),
)
def test_fit_keeps_ids_and_states_whole_and_every_line_within_the_width(
    rows: list[tuple[str, str, str, str]], width: int
) -> None:
    ids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(len(rows))]
    table = [
        Column("ORCHESTRATION", ids, ids=True, short="ID"),
        Column("STATE", [r[1] for r in rows]),
        Column("TYPE", [r[0] for r in rows], drop=3),
        Column("WHEN", [r[2] for r in rows], drop=2, compact=[r[2][:5] for r in rows]),
        Column("NOTE", [r[3] * 4 for r in rows]),
    ]
    out = fit(table, width)
    assert all(len(line) <= width for line in out)
    for line, orch_id, row in zip(out[1:], ids, rows, strict=True):
        prefix, rest = line.split("  ", 1)
        assert orch_id.startswith(prefix)
        assert len(prefix) >= 8
        assert rest.lstrip().startswith(row[1])  # the state, whole, after the ID
    if all(len(line) <= width for line in lines(table)):
        assert out == lines(table)  # what fits is left alone
