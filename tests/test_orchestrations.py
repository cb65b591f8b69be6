"""`watcher orchestrations`: what KEB lists, every page, with kcp's filters (issue 12)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Cli

UPGRADE = {
    "targets": {"include": [{"target": "all"}]},
    "strategy": {"type": "parallel", "schedule": "now", "parallel": {"workers": 1}},
}


def test_every_page_oldest_first_with_state_and_type_filters(cli: Cli, keb_factory: Any) -> None:
    keb = keb_factory("demo")
    keb.sim.advance(100)  # the demo's five are under way
    for _ in range(100):  # 105 in all: two pages of KEB's 100; the new ones are pending
        keb.sim.create_upgrade(UPGRADE)
    cfg = str(keb.config)
    everything = cli("orchestrations", "-o", "json", "-c", cfg)
    assert everything.code == 0, everything.err
    listed = [o["orchestrationID"] for o in everything.json()]
    assert listed == keb.sim.orchestration_ids()  # KEB's order: oldest first
    assert len(listed) == 105
    assert not any(o["tracked"] for o in everything.json())
    assert all("operationStats" not in o for o in everything.json())

    newest = cli("orchestrations", "--sort", "newest", "-o", "json", "-c", cfg).json()
    assert [o["orchestrationID"] for o in newest] == listed[::-1]

    truth = {i: keb.sim.orchestration_state(i) for i in listed}
    wanted = {i for i, s in truth.items() if s in ("in progress", "pending")}
    assert set(truth.values()) >= {"pending", "in progress"}  # the filter has work to do
    both = cli("orchestrations", "-s", "inprogress", "--state", "pending", "-o", "json", "-c", cfg)
    assert {o["orchestrationID"] for o in both.json()} == wanted
    assert [o["orchestrationID"] for o in both.json()] == [i for i in listed if i in wanted]
    pending = cli("orchestrations", "--state", "pending", "-o", "json", "-c", cfg).json()
    assert {o["orchestrationID"] for o in pending} == {
        i for i, s in truth.items() if s == "pending"
    }

    assert cli("orchestrations", "--type", "kyma", "-c", cfg).out == (
        "KEB lists no orchestration that matches\n"
    )
    clusters = cli("orchestrations", "--type", "cluster", "-o", "json", "-c", cfg).json()
    assert len(clusters) == 105
    bad = cli("orchestrations", "--state", "running", "-c", cfg)
    assert bad.code == 2
    assert "--state: unknown state 'running'" in bad.err


def test_text_marks_tracked_ones_and_track_tracks_what_is_listed(
    cli: Cli, keb_factory: Any
) -> None:
    keb = keb_factory("demo")
    keb.sim.advance(100)
    cfg = str(keb.config)
    ids = keb.sim.orchestration_ids()
    assert cli("track", ids[0], "-c", cfg).code == 0
    lines = cli("orchestrations", "-c", cfg).out.splitlines()
    assert lines[0].split()[:5] == ["ORCHESTRATION", "ID", "TYPE", "CREATED", "(UTC)"]
    col = lines[0].index("TRACKED")
    marks = {line.split()[0]: line[col : col + 3] for line in lines[1:]}
    assert marks == {i: ("yes" if i == ids[0] else "-  ") for i in ids}

    running = {i for i in ids if keb.sim.orchestration_state(i) == "in progress"}
    assert ids[0] in running
    assert len(running) >= 2
    tracked = cli("orchestrations", "--state", "inprogress", "--track", "-c", cfg)
    assert tracked.code == 0, tracked.err
    note = f"now tracking {len(running) - 1} more orchestrations (1 already tracked)"
    assert tracked.out.splitlines()[-1] == note
    listed = {item["orchestrationID"] for item in cli("list", "-o", "json", "-c", cfg).json()}
    assert listed == running


def test_orchestrations_from_the_environment_alone(
    cli: Cli, keb_factory: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    keb = keb_factory("small")
    monkeypatch.chdir(tmp_path)
    env = {"KEB_URL": keb.server.url, "KEB_TOKEN": keb.sim.token}
    result = cli("orchestrations", env=env)
    assert result.code == 0, result.err
    assert keb.sim.orchestration_ids()[0] in result.out
    assert not (tmp_path / "watcher.db").exists()
    denied = cli("orchestrations", env={"KEB_URL": keb.server.url, "KEB_TOKEN": "not-a-jwt"})
    assert denied.code == 1
    assert "401" in denied.err


def test_the_table_shows_keb_text_inert() -> None:
    """What KEB lists is text from outside: escape sequences and bidi overrides in a type, a
    state or a version never reach the terminal (docs/contract.md §4.7)."""
    import json
    from pathlib import Path

    from watcher.core.models import Orchestration
    from watcher.faces.orchestrations import table

    raw = json.loads(
        (Path(__file__).parent / "samples" / "get-orchestration-01-synth.json").read_text()
    )
    raw["type"] = "upgrade\x1b]52;c;ZXZpbA==\x07Cluster"
    raw["state"] = "in progress\x1b[2J\u202e"
    raw["parameters"]["kubernetes"] = {"kubernetesVersion": "1.29\x1b[31m"}
    lines = table([Orchestration.from_json(raw)], set())
    text = "\n".join(lines)
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\x07" not in text
    assert "in progress" in lines[1]
