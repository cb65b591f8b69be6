"""`check-config` about the service's access: an open dashboard beyond loopback, and the
service's tokens written inline in a file others can read. Through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPEN = "serves the dashboard and /api/ beyond this host without service.dashboard_token"


def check_config(tmp_path: Path, service: str, file_mode: int = 0o600) -> tuple[int, str]:
    path = tmp_path / "watcher.toml"
    path.write_text(
        '[keb]\nurl = "http://127.0.0.1:9"\ntoken = "${KEB_TOKEN}"\n\n'
        f'[storage]\npath = "{tmp_path / "watcher.db"}"\n\n[service]\n{service}\n'
    )
    path.chmod(file_mode)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KEB_TOKEN": "keb-token-1234",
        "DASH": "dashboard-token-1234",
    }
    env.pop("WATCHER_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(path), "check-config"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, done.stderr


@pytest.mark.parametrize(
    ("service", "warned"),
    [
        ('listen = "0.0.0.0:9464"', True),
        ('listen = "[::]:9464"', True),
        ('listen = "10.1.2.3:9464"', True),
        ('listen = "keb-watcher.internal:9464"', True),
        ('listen = "0.0.0.0:9464"\nmetrics_token = "${DASH}"', True),  # not the dashboard's
        ('listen = "0.0.0.0:9464"\ndashboard_token = "${DASH}"', False),
        ('listen = "127.0.0.1:9464"', False),
        ('listen = "127.0.0.2:9464"', False),
        ('listen = "[::1]:9464"', False),
        ('listen = "localhost:9464"', False),
        ("ready_after_intervals = 3", False),  # no listen: nothing served
    ],
)
def test_check_config_warns_about_an_open_dashboard(
    tmp_path: Path, service: str, warned: bool
) -> None:
    code, stderr = check_config(tmp_path, service)
    assert code == 0, stderr
    lines = [line for line in stderr.splitlines() if OPEN in line]
    assert len(lines) == (1 if warned else 0), stderr
    if warned:
        assert lines[0].startswith("watcher: warning: service.listen = ")


@pytest.mark.parametrize("key", ["dashboard_token", "metrics_token"])
@pytest.mark.parametrize(("file_mode", "warned"), [(0o644, True), (0o600, False)])
def test_an_inline_service_token_in_a_readable_file_is_warned_about(
    tmp_path: Path, key: str, file_mode: int, warned: bool
) -> None:
    service = f'listen = "127.0.0.1:9464"\n{key} = "inline-secret-value"'
    code, stderr = check_config(tmp_path, service, file_mode)
    assert code == 0, stderr
    lines = [line for line in stderr.splitlines() if "others can read" in line]
    assert len(lines) == (1 if warned else 0), stderr
    if warned:
        assert f"service.{key} written in a file that others can read (mode 0644)" in lines[0]
    assert "inline-secret-value" not in stderr
