"""A fast start: the commands cron and people run most import only what they use.

`watcher poll` is a whole process every minute or two; its start-up is most of what a poll
with nothing new costs. The live view (rich), the service (apscheduler, prometheus-client),
notifications (jinja2, slack-sdk) and the simulator load only on the paths that need them.
Each command runs here as its own process, for real, against the simulator.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Keb

HEAVY = (
    "rich",
    "prometheus_client",
    "apscheduler",
    "jinja2",
    "slack_sdk",
    "pygments",
    "sqlite_utils",
    "starlette",
    "uvicorn",
)

#: Runs the real command line, then reports which heavy packages the process had loaded.
PROBE = """
import json, sys
from watcher.cli import entrypoint
code = entrypoint(sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(%r)))
print("LOADED=" + json.dumps(heavy))
sys.exit(code)
"""


def loaded(*args: str, cwd: Path) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE % json.dumps(HEAVY), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=60,
    )
    line = [x for x in done.stdout.splitlines() if x.startswith("LOADED=")][-1]
    return done.returncode, json.loads(line.removeprefix("LOADED=")), done.stderr


@pytest.fixture
def small(keb_factory: Callable[[str], Keb]) -> Keb:
    return keb_factory("small")


def test_daily_commands_load_no_heavy_package(small: Keb, tmp_path: Path) -> None:
    config = str(small.config)
    orch_id = small.sim.orchestration_ids()[0]
    # Creating the database sets its journal mode once, through sqlite-utils; opening it
    # again (every poll) does not load sqlite-utils.
    code, heavy, err = loaded("--config", config, "track", orch_id, cwd=tmp_path)
    assert code == 0, err
    assert heavy == ["sqlite_utils"]
    for args in (
        ("--config", config, "poll"),
        ("--config", config, "poll"),
        ("--config", config, "list"),
        ("--config", config, "history", orch_id),
        ("--config", config, "status", orch_id),
    ):
        code, heavy, err = loaded(*args, cwd=tmp_path)
        assert code == 0, (args, err)
        assert heavy == [], f"`watcher {args[2]}` loaded {heavy}"


def test_the_paths_that_need_them_still_load_them(small: Keb, tmp_path: Path) -> None:
    """The probe itself can see a heavy import (so the test above can fail)."""
    code, heavy, _err = loaded("--config", str(small.config), "check-config", cwd=tmp_path)
    assert code == 0
    assert "jinja2" in heavy
    code, heavy, _err = loaded("render", "progress", cwd=tmp_path)
    assert "jinja2" in heavy


#: httpx's command-line client stays out of keb-watcher's httpx, leaves nothing behind, and
#: loads for real when asked for afterwards; httpx imported first is used as it is.
HTTPX_PROBE = """
import sys
if sys.argv[1] == "httpx-first":
    import httpx
import watcher.keb
from watcher.keb._httpx import httpx
print("cli-loaded" if "httpx._main" in sys.modules else "cli-skipped")
assert not any(type(f).__module__ == "watcher.keb._httpx" for f in sys.meta_path)
import httpx._main
print(type(httpx._main.main).__name__)
"""


@pytest.mark.parametrize(
    ("order", "expected"), [("keb-first", "cli-skipped"), ("httpx-first", "cli-loaded")]
)
def test_httpx_loads_without_its_command_line_client_in_any_order(
    order: str, expected: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", HTTPX_PROBE, order],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.split() == [expected, "Command"]
