"""`watcher watch ID...` (issue 12): several orchestrations at once, the combined exit code,
lines and JSON lines tagged by ID, and a tracked set that only `--track` changes."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest

from tests import test_watch
from tests.conftest import Cli
from tests.test_watch import SimTime, Watch
from watcher.core.watching import combined_exit_code

watch = test_watch.watch  # the fixture: `watcher --config <keb's> watch ...` on the sim's clock

GHOST = "00000000-0000-4000-8000-000000000000"


def demo_ids(keb: Any) -> dict[str, str]:
    """The demo scenario's orchestrations by how they end."""
    small, failures, cancel, _retry, dry_run = keb.sim.orchestration_ids()
    return {"ok": small, "failed": failures, "canceled": cancel, "dry": dry_run}


@pytest.mark.parametrize(
    ("which", "extra", "code"),
    [
        (["ok", "dry"], [], 0),
        (["ok", "canceled"], [], 3),
        (["canceled", "failed", "ok"], [], 1),
        (["failed", "ghost"], [], 5),
        (["failed", "ok"], ["--timeout", "5m"], 4),
    ],
)
def test_several_ids_exit_with_the_first_code_that_applies(
    keb_factory: Any, watch: Watch, which: list[str], extra: list[str], code: int
) -> None:
    keb = keb_factory("demo")
    ids = {**demo_ids(keb), "ghost": GHOST}
    result = watch(keb, SimTime(keb), *(ids[w] for w in which), *extra)
    assert result.code == code, (result.out, result.err)
    *summaries, last = [line for line in result.out.splitlines() if "  summary: " in line]
    assert sorted(s.split("summary: ")[1].split(":")[0] for s in summaries) == sorted(
        ids[w] for w in which
    )
    if code == 5:
        assert f"watcher: {GHOST}: KEB does not know this orchestration (404)" in result.err
    assert last == result.out.splitlines()[-1]  # the combined line is the last
    assert re.fullmatch(
        rf"\S+ \S+ UTC  summary: {len(which)} orchestrations: .*; exit {code}", last
    ), last
    ended = Counter(s.rsplit("; exit ", 1)[1] for s in summaries)
    assert ended[str(code)] >= 1 or code == 0  # one of them ended with the process's code


@pytest.mark.parametrize(
    ("which", "code", "words"),
    [
        (["ok", "dry"], 0, "2 orchestrations: 2 succeeded"),
        (["ok", "canceled"], 3, "2 orchestrations: 1 canceled, 1 succeeded"),
        (["canceled", "failed", "ok"], 1, "3 orchestrations: 1 failed, 1 canceled, 1 succeeded"),
        (["failed", "ghost"], 5, "2 orchestrations: 1 not found, 1 failed"),
    ],
)
def test_the_last_line_names_the_combined_outcome_and_the_exit_code(
    keb_factory: Any, watch: Watch, which: list[str], code: int, words: str
) -> None:
    keb = keb_factory("demo")
    ids = {**demo_ids(keb), "ghost": GHOST}
    plain = watch(keb, SimTime(keb), *(ids[w] for w in which))
    assert plain.code == code
    assert plain.out.splitlines()[-1].endswith(f"  summary: {words}; exit {code}")
    keb2 = keb_factory("demo", seed=2)
    ids2 = {**demo_ids(keb2), "ghost": GHOST}
    lines = watch(keb2, SimTime(keb2), *(ids2[w] for w in which), "-o", "json")
    assert lines.code == code
    last = json.loads(lines.out.splitlines()[-1])
    assert last["type"] == "summary"
    assert last["orchestrationID"] is None
    assert last["orchestrationIDs"] == [ids2[w] for w in which]
    assert last["exitCode"] == code
    assert last["reason"] == words
    assert sum(last["outcomes"].values()) == len(which)


def test_combined_exit_code_is_pure_precedence() -> None:
    assert combined_exit_code([0, 0, 0]) == 0
    assert combined_exit_code([3, 0]) == 3
    assert combined_exit_code([3, 1]) == 1
    assert combined_exit_code([1, 4, 3]) == 4
    assert combined_exit_code([4, 5, 1]) == 5
    assert combined_exit_code([130, 5]) == 130


def test_plain_and_json_lines_are_tagged_by_id(keb_factory: Any, watch: Watch) -> None:
    keb = keb_factory("demo")
    ids = demo_ids(keb)
    plain = watch(keb, SimTime(keb), ids["ok"], ids["dry"])
    assert plain.code == 0
    for line in plain.out.splitlines():
        if "  summary: " in line or line.startswith("  "):  # summaries, failure reasons
            continue
        tag = line.split("  ", 1)[1][:10]
        assert tag in (f"[{ids['ok'][:8]}]", f"[{ids['dry'][:8]}]"), line
    keb2 = keb_factory("demo", seed=2)
    ids2 = demo_ids(keb2)
    lines = watch(keb2, SimTime(keb2), ids2["ok"], ids2["canceled"], "-o", "json")
    assert lines.code == 3
    *events, combined = [json.loads(line) for line in lines.out.splitlines()]
    assert {e["orchestrationID"] for e in events} == {ids2["ok"], ids2["canceled"]}
    finals = {e["orchestrationID"]: e["exitCode"] for e in events if e["type"] == "summary"}
    assert finals == {ids2["ok"]: 0, ids2["canceled"]: 3}
    assert (combined["type"], combined["orchestrationID"], combined["exitCode"]) == (
        "summary",
        None,
        3,
    )  # the last line: the combined outcome (contract §2.3)


def test_watch_leaves_the_tracked_set_alone_unless_track(
    keb_factory: Any, cli: Cli, watch: Watch
) -> None:
    keb = keb_factory("demo")
    cfg = str(keb.config)
    ids = demo_ids(keb)
    assert cli("track", ids["ok"], "-c", cfg).code == 0
    assert cli("poll", "-c", cfg).code == 0
    before = cli("history", ids["ok"], "-o", "json", "-c", cfg).json()

    result = watch(keb, SimTime(keb), ids["ok"][:8], ids["dry"])  # a prefix of a tracked one
    assert result.code == 0, result.err
    tracked = [t["orchestrationID"] for t in cli("list", "-o", "json", "-c", cfg).json()]
    assert tracked == [ids["ok"]]  # the untracked one was followed in memory only
    after = cli("history", ids["ok"], "-o", "json", "-c", cfg).json()
    assert after[: len(before)] == before
    assert after[-1]["to"] == "succeeded"  # the tracked one was recorded as poll records it
    assert cli("history", ids["dry"], "-c", cfg).code == 2  # nothing recorded for the other

    again = watch(keb, SimTime(keb), ids["dry"], "--track")
    assert again.code == 0
    tracked = {t["orchestrationID"] for t in cli("list", "-o", "json", "-c", cfg).json()}
    assert tracked == {ids["ok"], ids["dry"]}
    assert cli("history", ids["dry"], "-o", "json", "-c", cfg).json()[-1]["to"] == "succeeded"


def test_an_unknown_prefix_is_a_usage_error(keb_factory: Any, watch: Watch) -> None:
    keb = keb_factory("demo")
    result = watch(keb, SimTime(keb), demo_ids(keb)["ok"], "deadbeef")
    assert result.code == 2
    assert result.err == "watcher: 'deadbeef' matches no orchestration keb-watcher knows\n"
