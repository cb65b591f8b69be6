"""Files owned by their owner: the database and its folders are private whatever the umask,
only `track` creates the database, a lost or corrupted one says so in one line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import Cli
from watcher.store.database import Store

ORCH = "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11"
ROOT = Path(__file__).resolve().parents[1]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def config_file(tmp_path: Path, database: Path, token: str = "${KEB_TOKEN}") -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'[keb]\nurl = "http://127.0.0.1:9"\ntoken = "{token}"\n\n[storage]\npath = "{database}"\n'
    )
    path.chmod(0o600)
    return path


def watcher(*args: str, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEB_TOKEN": "keb-token-1234"}
    env.pop("WATCHER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(umask),
    )


def test_track_creates_a_private_database_and_folders_under_umask_022(tmp_path: Path) -> None:
    existing = tmp_path / "srv"
    existing.mkdir(mode=0o755)
    database = existing / "state" / "keb" / "watcher.db"
    config = config_file(tmp_path, database)
    done = watcher("--config", str(config), "track", "--no-check", ORCH)
    assert done.returncode == 0, done.stderr
    assert mode(database) == 0o600
    assert mode(database.parent) == 0o700
    assert mode(database.parent.parent) == 0o700
    assert mode(existing) == 0o755  # a folder that existed is left alone


def test_the_wal_and_shm_files_are_private_too(tmp_path: Path, umask_022: None) -> None:
    store = Store(tmp_path / "watcher.db")
    try:
        store.track([ORCH], None, datetime.now(UTC))
        files = sorted(tmp_path.glob("watcher.db*"))
        assert [f.name for f in files] == ["watcher.db", "watcher.db-shm", "watcher.db-wal"]
        assert {f.name: mode(f) for f in files} == dict.fromkeys((f.name for f in files), 0o600)
    finally:
        store.close()


@pytest.mark.parametrize(
    "args",
    [["poll"], ["list"], ["history", ORCH], ["untrack", ORCH], ["outbox", "list"]],
)
def test_without_a_database_other_commands_exit_2_naming_it(
    tmp_path: Path, cli: Cli, args: list[str]
) -> None:
    database = tmp_path / "lost-volume" / "watcher.db"
    config = config_file(tmp_path, database)
    result = cli("--config", str(config), *args, env={"KEB_TOKEN": "keb-token-1234"})
    assert result.code == 2
    assert result.err == (
        f"watcher: {database}: no database here "
        "(check storage.path; `watcher track ID` creates it)\n"
    )
    assert not database.parent.exists()  # nothing was created


def test_a_corrupted_database_is_one_line_and_exit_1(tmp_path: Path, cli: Cli) -> None:
    """An SQLite file whose pages went wrong (a file that is not SQLite at all is exit 2:
    tests/test_files_loud_e2e.py)."""
    database = tmp_path / "watcher.db"
    database.write_bytes(
        b"SQLite format 3\x00" + b"this is not a database, it is a disk that went wrong " * 100
    )
    config = config_file(tmp_path, database)
    result = cli("--config", str(config), "list", env={"KEB_TOKEN": "keb-token-1234"})
    assert result.code == 1
    assert result.err == (
        f"watcher: {database}: the database is corrupted (file is not a database); restore it "
        "from a backup, or move it away and track the orchestrations again\n"
    )


@pytest.mark.parametrize(
    ("token", "file_mode", "warned"),
    [
        ("keb-token-inline-1234", 0o644, True),
        ("keb-token-inline-1234", 0o640, True),
        ("keb-token-inline-1234", 0o600, False),
        ("${KEB_TOKEN}", 0o644, False),
    ],
)
def test_a_readable_config_with_an_inline_secret_draws_one_warning(
    tmp_path: Path, token: str, file_mode: int, warned: bool
) -> None:
    config = config_file(tmp_path, tmp_path / "watcher.db", token)
    config.chmod(file_mode)
    done = watcher("--config", str(config), "track", "--no-check", ORCH)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "others can read" in line]
    if warned:
        assert lines == [
            lines[0].split(" WARNING ")[0] + f" WARNING watcher.config.loader: {config}: keb.token "
            f"written in a file that others can read (mode {file_mode:04o}); run chmod 600 "
            f"{config}, or use ${{VAR}} or keb.token_file"
        ]
    else:
        assert lines == []
