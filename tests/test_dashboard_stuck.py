"""The dashboard shows what is stuck (issue 18, point 3): the overview and the detail page."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from tests.test_dashboard import Served, get
from watcher.app import Watcher
from watcher.faces.demo import demo_config
from watcher.faces.web.routes import Dashboard
from watcher.sim import SimServer, Simulator


def test_overview_and_detail_show_what_is_stuck_and_since_when(tmp_path: Path) -> None:
    sim = Simulator.from_scenario("hanging")
    with SimServer(sim).start() as server:
        base = demo_config(server.url, sim.token, tmp_path)
        config = replace(base, poll=replace(base.poll, stuck_after=3600.0))
        with Watcher(config, clock=lambda: sim.now) as app:
            app.track(sim.orchestration_ids(), None)
            [orch_id] = sim.orchestration_ids()

            async def poll_for(minutes: int) -> None:
                async with app.keb() as keb:
                    engine = app.engine(keb)
                    for _ in range(minutes // 15):
                        await engine.poll_once()
                        sim.advance(900)

            asyncio.run(poll_for(60))
            dash = Served(Dashboard(app, stale_after=60))
            try:
                assert "⏳" not in get(dash, "/")[2]  # 45 minutes in: not yet
                asyncio.run(poll_for(30))
                [tracked] = app.tracked()
                [hanging] = tracked.stuck
                status, _, page = get(dash, "/")
                assert status == 200
                assert f"⏳ 1 stuck: {hanging.shoot} in progress since " in page
                status, _, page = get(dash, f"/orchestrations/{orch_id}")
                assert status == 200
                assert f"<dt>Stuck</dt><dd>1 stuck: {hanging.shoot} in progress since " in page
                asyncio.run(poll_for(30))  # it moved on
                assert "⏳" not in get(dash, "/")[2]
                assert (
                    "<dt>Stuck</dt><dd>nothing</dd>" in get(dash, f"/orchestrations/{orch_id}")[2]
                )
            finally:
                dash.close()
