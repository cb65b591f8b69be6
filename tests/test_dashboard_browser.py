"""The web dashboard in a real browser: Chromium (Debian's) driven by Playwright, against
`watcher run` as a real process polling the simulator over HTTP.

Chromium is not optional here: ``scripts/test`` installs it when missing (as root, from
Debian's packages), and without it these tests fail rather than skip. The screenshots in
docs/ (light and dark, both pages) are taken by the last test, from `watcher demo --web`
(with ``WATCHER_UPDATE_SCREENSHOTS=1``; otherwise into a temporary folder).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.conftest import write_config
from tests.test_run_e2e import Service, free_port
from watcher.sim import SCENARIOS, SimServer, Simulator
from watcher.sim.scenarios import ScenarioSpec
from watcher.store.database import Store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TOKEN = "dashboard-secret-7f3a"
#: Chromium's flags on a machine with a closed network and no screen.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: KEB text that would be markup, script or terminal control if anything trusted it.
HOSTILE = (
    "<script>window.__pwned = 1</script> boom",
    '<img src="/x" onerror="window.__pwned = 2"> quota',
    "\x1b[31mred alert\x1b[0m *bold* <b>not bold</b>",
)
SCENARIO = ScenarioSpec(
    "dashboard",
    "a small one, one with hostile failure descriptions, one that waits",
    (
        replace(SCENARIOS["small"].orchestrations[0], created=-3.0),
        replace(
            SCENARIOS["failures"].orchestrations[0],
            ops=30,
            workers=10,
            failure_rate=0.5,
            reasons=HOSTILE,
            created=-2.0,
            start_delay=20.0,
        ),
        replace(SCENARIOS["small"].orchestrations[0], created=-1.0, start_delay=7200.0),
    ),
)


def chromium() -> str:
    found = os.environ.get("WATCHER_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "Chromium is missing: the dashboard's browser tests need it "
            "(scripts/test installs Debian's chromium package when run as root)"
        )
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium(), args=FLAGS)
        yield launched
        launched.close()


@dataclass
class Watched:
    sim: Simulator
    service: Service
    db: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}"

    def ids(self) -> list[str]:
        return self.sim.orchestration_ids()

    def polled_after(self, mark: datetime | None, timeout: float = 15.0) -> None:
        """Wait until `watcher run` finished a poll cycle after ``mark``."""
        deadline = time.monotonic() + timeout
        while (last := self.last_cycle()) is None or (mark is not None and last <= mark):
            assert time.monotonic() < deadline, self.service.log
            time.sleep(0.1)

    def last_cycle(self) -> datetime | None:
        with Store(self.db) as store:
            return store.last_cycle_at()


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    tmp = tmp_path_factory.mktemp("dashboard")
    sim = Simulator(SCENARIO, seed=3, speed=None)  # the clock moves only when a test says
    keb = SimServer(sim).start()
    port = free_port()
    extra = (
        'interval = "1s"\njitter = "0s"\n\n[service]\n'
        f'listen = "127.0.0.1:{port}"\ndashboard_token = "{TOKEN}"\n'
    )
    config = write_config(tmp / "watcher.toml", keb.url, sim.token, extra)
    with Store(tmp / "watcher.db") as store:
        store.track(sim.orchestration_ids(), None, datetime.now(UTC))
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    service = Service(proc, port)
    try:
        service.wait_for("dashboard: http://127.0.0.1:")
        w = Watched(sim, service, tmp / "watcher.db")
        w.polled_after(None)
        yield w
    finally:
        service.stop()
        keb.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A browser that sends the dashboard token (as a script or a proxy would)."""
    ctx = browser.new_context(extra_http_headers={"Authorization": f"Bearer {TOKEN}"})
    yield ctx
    ctx.close()


def row(page: Page, orch_id: str) -> str:
    return page.locator(f'tr[data-id="{orch_id}"]').inner_text()


def test_overview_lists_every_tracked_orchestration_and_follows_polls_live(
    watched: Watched, context: BrowserContext
) -> None:
    page = context.new_page()
    page.set_viewport_size({"width": 1280, "height": 300})
    page.goto(watched.url + "/")
    small, hostile, waiting = watched.ids()
    rows = page.locator("table.orchestrations tbody tr")
    expect(rows).to_have_count(3)
    for orch_id in watched.ids():
        assert re.search(r"pending|in progress", row(page, orch_id)), row(page, orch_id)
    # The reader scrolled down; nothing reloads the page from here on.
    page.evaluate("window.__sameDocument = true; window.scrollTo(0, 120)")
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 0
    watched.sim.advance(3600)  # everything but the waiting one ends
    expect(page.locator(f'tr[data-id="{small}"]')).to_contain_text("succeeded", timeout=10_000)
    expect(page.locator(f'tr[data-id="{small}"]')).to_contain_text("12/12 finished")
    expect(page.locator(f'tr[data-id="{hostile}"]')).to_contain_text("failed", timeout=10_000)
    expect(page.locator(f'tr[data-id="{hostile}"]')).to_contain_text("30/30 finished")
    assert "pending" in row(page, waiting)
    assert page.evaluate("window.__sameDocument") is True  # updated in place, not reloaded
    assert page.evaluate("window.scrollY") == scrolled
    expect(page.locator("#live")).to_contain_text("live")
    # The state filter (a plain GET form) keeps only what matches.
    page.select_option("#state-filter", "succeeded")
    expect(rows).to_have_count(1)
    assert page.url.endswith("/?state=succeeded")
    assert small in rows.first.inner_text()


def test_detail_page_filters_and_searches_operations(
    watched: Watched, context: BrowserContext
) -> None:
    _small, hostile, _waiting = watched.ids()
    watched.sim.advance(3600)
    watched.polled_after(watched.last_cycle())
    page = context.new_page()
    page.goto(f"{watched.url}/orchestrations/{hostile}")
    operations = page.locator("table.operations tbody tr")
    expect(operations).to_have_count(30)
    page.select_option("#op-state", "failed")
    page.click("form.filter button[type=submit]")
    expect(operations).to_have_count(15)  # failure_rate 0.5 of 30, exactly
    for text in operations.locator("td[data-label=State]").all_inner_texts():
        assert "failed" in text
    shoot = operations.first.locator("td[data-label=Shoot]").inner_text()
    page.fill("#op-search", shoot)
    page.click("form.filter button[type=submit]")
    expect(operations).to_have_count(1)
    assert page.input_value("#op-search") == shoot
    expect(page.locator("p.count").last).to_contain_text("1 of 1 matching")
    # Failures by reason list every affected shoot; the kcp commands are there to copy.
    groups = page.locator("#failures details")
    expect(groups).to_have_count(len(HOSTILE))
    expect(page.locator(".commands")).to_contain_text(
        f"kcp orchestration {hostile} operations --state failed"
    )


def test_hostile_keb_text_is_shown_as_inert_text(watched: Watched, context: BrowserContext) -> None:
    _small, hostile, _waiting = watched.ids()
    watched.sim.advance(3600)
    watched.polled_after(watched.last_cycle())
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for path in ("/", f"/orchestrations/{hostile}"):
        page.goto(watched.url + path)
        main = page.locator("main")
        expect(main).to_contain_text("<script>window.__pwned = 1</script> boom")
        expect(main).to_contain_text('<img src="/x" onerror="window.__pwned = 2"> quota')
        expect(main).to_contain_text("<b>not bold</b>")
        assert page.locator("main script, main img, main b:text('not bold')").count() == 0
        page.wait_for_timeout(300)
        assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    # The page keeps no escape character from KEB's text anywhere in its markup either way.
    page.locator("#failures details").first.click()
    assert page.evaluate("window.__pwned") is None


def test_with_a_dashboard_token_nothing_is_served_without_it(
    watched: Watched, browser: Browser
) -> None:
    small, hostile, _waiting = watched.ids()
    for path in ("/", f"/orchestrations/{hostile}", "/api/orchestrations", "/api/board"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(watched.url + path, timeout=5)
        assert refused.value.code == 401, path
        refusal = refused.value.read().decode()
        assert small not in refusal
        assert "upgradeCluster" not in refusal
        wrong = urllib.request.Request(
            watched.url + path, headers={"Authorization": "Bearer not-the-token"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(wrong, timeout=5)
        assert refused.value.code == 401, path
    ok = urllib.request.Request(
        watched.url + "/api/orchestrations", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(ok, timeout=5) as answer:
        assert answer.status == 200
    # A person signs in with the form: an HttpOnly cookie, the token nowhere in the page.
    ctx = browser.new_context()
    page = ctx.new_page()
    answer = page.goto(watched.url + "/")
    assert answer is not None
    assert answer.status == 401
    page.fill("#token", "wrong")
    page.click("form.login button")
    expect(page.locator(".error")).to_contain_text("Wrong token")
    page.fill("#token", TOKEN)
    page.click("form.login button")
    expect(page.locator("table.orchestrations tbody tr")).to_have_count(3)
    (cookie,) = ctx.cookies()
    assert cookie["httpOnly"] is True
    assert TOKEN not in cookie["value"]
    assert page.evaluate("document.cookie") == ""
    assert TOKEN not in page.content()
    ctx.close()


def test_screenshots_of_both_pages_light_and_dark_from_the_demo(
    browser: Browser, tmp_path: Path
) -> None:
    """The screenshots go to a temporary folder, so a test run leaves the checkout clean;
    ``WATCHER_UPDATE_SCREENSHOTS=1 scripts/test -k screenshots`` refreshes those in docs/."""
    shots = DOCS if os.environ.get("WATCHER_UPDATE_SCREENSHOTS") == "1" else tmp_path
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "watcher",
            "demo",
            "--speed",
            "600",
            "--interval",
            "500ms",
            "--web",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TERM": "dumb"},
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any("stays up until Ctrl-C" in x for x in lines):
            assert time.monotonic() < deadline, "\n".join(lines)
            assert proc.poll() is None, "\n".join(lines)
            lines.append(proc.stdout.readline().rstrip("\n"))
        assert f"Dashboard: http://127.0.0.1:{port}/" in lines
        first = next(x.split(" = ")[1] for x in lines if x.startswith("  orch-2 = "))
        for scheme in ("light", "dark"):
            ctx = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme=scheme)
            page = ctx.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            expect(page.locator("table.orchestrations tbody tr")).to_have_count(5)
            page.screenshot(path=str(shots / f"dashboard-overview-{scheme}.png"), full_page=True)
            page.goto(f"http://127.0.0.1:{port}/orchestrations/{first}")
            page.locator("#failures details").first.click()
            page.screenshot(path=str(shots / f"dashboard-detail-{scheme}.png"))
            assert (shots / f"dashboard-detail-{scheme}.png").stat().st_size > 10_000
            ctx.close()
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        page = phone.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        phone.close()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
