"""Files fail loudly, through the real CLI: a database through a dangling symbolic link is
created owner-only; an empty, foreign or read-only database file, a bad `keb.ca_file` and a
duration beyond a century are exit 2 naming the path, key or option; nothing is reinitialised.
A database deleted under `watcher run` fails /readyz and says so in the log."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import write_config
from watcher.sim import SimServer, Simulator
from watcher.store.database import Store

ROOT = Path(__file__).resolve().parents[1]
ORCH = "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11"
TOKEN = "keb-token-1234"
HUGE = "1" + "0" * 40 + "s"
#: Root writes through file modes; this takes that away (a real operator is not root).
UNPRIVILEGED: Sequence[str] = (
    ("setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner")
    if os.geteuid() == 0
    else ()
)


def watcher(*args: str, umask: int = 0o022, drop: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEB_TOKEN": TOKEN}
    env.pop("WATCHER_CONFIG", None)
    prefix = list(UNPRIVILEGED) if drop else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "watcher", *args],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(umask),
        timeout=60,
        check=False,
    )


def config_file(tmp_path: Path, database: Path, keb: str = "", poll: str = "") -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'[keb]\nurl = "http://127.0.0.1:9"\ntoken = "${{KEB_TOKEN}}"\n{keb}\n'
        f'[storage]\npath = "{database}"\n\n[poll]\n{poll}\n'
    )
    path.chmod(0o600)
    return path


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


def test_a_database_through_a_dangling_symlink_is_created_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "volume" / "data" / "watcher.db"
    link = tmp_path / "watcher.db"
    link.symlink_to(target)
    config = config_file(tmp_path, link)
    done = watcher("--config", str(config), "track", "--no-check", ORCH, umask=0o022)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink()
    assert os.readlink(link) == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    listed = watcher("--config", str(config), "list")
    assert ORCH in listed.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the database file is empty (0 bytes), not a keb-watcher database"),
        (b"orchestrations:\n  - 5a3f1f5e\n", "not an SQLite database (check storage.path"),
        (b"SQLite format 2\x00" + b"\x00" * 100, "not an SQLite database (check storage.path"),
    ],
    ids=["zero-bytes", "text", "other-format"],
)
@pytest.mark.parametrize(
    "command",
    [("poll",), ("list",), ("history", ORCH), ("track", "--no-check", ORCH), ("run",)],
    ids=lambda c: c[0],
)
def test_an_empty_or_foreign_database_file_is_exit_2_naming_it_and_untouched(
    tmp_path: Path, content: bytes, message: str, command: tuple[str, ...]
) -> None:
    database = tmp_path / "watcher.db"
    database.write_bytes(content)
    config = config_file(tmp_path, database)
    done = watcher("--config", str(config), *command)
    assert done.returncode == 2, done.stderr
    assert one_line(done).startswith(f"watcher: {database}: {message}")
    assert database.read_bytes() == content  # never a fresh start
    assert not Path(f"{database}-wal").exists()


@pytest.mark.skipif(shutil.which("setpriv") is None and os.geteuid() == 0, reason="setpriv")
@pytest.mark.parametrize(
    "command",
    [("poll",), ("list",), ("history", ORCH), ("track", "--no-check", ORCH), ("outbox", "list")],
    ids=lambda c: c[0],
)
def test_a_read_only_database_is_exit_2_for_every_command(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    database = tmp_path / "watcher.db"
    config = config_file(tmp_path, database)
    assert watcher("--config", str(config), "track", "--no-check", ORCH).returncode == 0
    before = database.read_bytes()
    database.chmod(0o400)
    done = watcher("--config", str(config), *command, drop=True)
    assert done.returncode == 2, done.stderr
    assert one_line(done).startswith(f"watcher: {database}: the database is read-only")
    assert database.read_bytes() == before


@pytest.mark.parametrize(
    ("ca", "message"),
    [
        (None, "keb.ca_file: {ca}: no such file"),
        (b"just some text\n", "keb.ca_file: {ca}: no PEM certificate in it"),
        (
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
            "keb.ca_file: {ca}: not a valid PEM certificate",
        ),
    ],
    ids=["missing", "no-certificate", "garbage-certificate"],
)
@pytest.mark.parametrize("command", [("check-config",), ("poll",), ("list",)], ids=str)
def test_a_bad_ca_file_is_exit_2_naming_the_key_at_load(
    tmp_path: Path, ca: bytes | None, message: str, command: tuple[str, ...]
) -> None:
    path = tmp_path / "ca.pem"
    if ca is not None:
        path.write_bytes(ca)
    config = config_file(tmp_path, tmp_path / "watcher.db", keb=f'ca_file = "{path}"')
    done = watcher("--config", str(config), *command)
    assert done.returncode == 2, done.stderr
    assert one_line(done).startswith(f"watcher: {config}: {message.format(ca=path)}")
    assert "configuration OK" not in done.stdout


@pytest.mark.skipif(shutil.which("setpriv") is None and os.geteuid() == 0, reason="setpriv")
def test_an_unreadable_ca_file_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    path.chmod(0o000)
    config = config_file(tmp_path, tmp_path / "watcher.db", keb=f'ca_file = "{path}"')
    done = watcher("--config", str(config), "check-config", drop=True)
    assert done.returncode == 2, done.stderr
    assert one_line(done) == (
        f"watcher: {config}: keb.ca_file: {path}: cannot read: Permission denied\n"
    )


def test_a_real_ca_bundle_is_accepted(tmp_path: Path) -> None:
    import certifi

    config = config_file(tmp_path, tmp_path / "watcher.db", keb=f'ca_file = "{certifi.where()}"')
    done = watcher("--config", str(config), "check-config")
    assert done.returncode == 0, done.stderr
    assert "configuration OK" in done.stdout


@pytest.mark.parametrize(
    ("poll", "message"),
    [
        ('interval = "30000000d"', "poll.interval: bad duration '30000000d' (at most 36500d)"),
        ("interval = 9223372036854775807", "poll.interval: bad duration 9223372036854775807"),
        ('alert_after = "36501d"', "poll.alert_after: bad duration '36501d' (at most 36500d)"),
        (f'retry_window = "{HUGE}"', f"poll.retry_window: bad duration '{HUGE}' (at most 36500d)"),
    ],
)
def test_a_duration_beyond_a_century_is_exit_2_naming_the_key(
    tmp_path: Path, poll: str, message: str
) -> None:
    config = config_file(tmp_path, tmp_path / "watcher.db", poll=poll)
    done = watcher("--config", str(config), "check-config")
    assert done.returncode == 2, done.stderr
    assert one_line(done).startswith(f"watcher: {config}: {message}")


def test_a_since_beyond_a_century_is_exit_2_naming_the_option(tmp_path: Path) -> None:
    config = config_file(tmp_path, tmp_path / "watcher.db")
    assert watcher("--config", str(config), "track", "--no-check", ORCH).returncode == 0
    done = watcher("--config", str(config), "history", ORCH, "--since", "99999999999d")
    assert done.returncode == 2, done.stderr
    assert "--since" in one_line(done)
    assert "at most 36500d" in done.stderr
    ok = watcher("--config", str(config), "history", ORCH, "--since", "36500d")
    assert ok.returncode == 0, ok.stderr


def readyz(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_deleted_under_run_fails_readyz_and_the_log_says_so(
    tmp_path: Path, how: str
) -> None:
    sim = Simulator.from_scenario("small", speed=60.0)
    with SimServer(sim).start() as server:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        extra = f'interval = "1s"\njitter = "0s"\n\n[service]\nlisten = "127.0.0.1:{port}"\n'
        config = write_config(tmp_path / "watcher.toml", server.url, sim.token, extra)
        config.chmod(0o600)
        base = [sys.executable, "-m", "watcher", "--config", str(config)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("WATCHER_CONFIG", None)
        subprocess.run([*base, "track", *sim.orchestration_ids()], env=env, check=True)
        proc = subprocess.Popen(
            [*base, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while readyz_or_none(url) != 200:
                assert time.monotonic() < deadline, "never ready"
                time.sleep(0.2)
            database = tmp_path / "watcher.db"
            if how == "deleted":
                database.unlink()
            else:
                database.rename(tmp_path / "old.db")
                shutil.copy(tmp_path / "old.db", database)
            status, body = readyz(url)
            time.sleep(2.5)  # a poll tick or two: the log says it once
            assert status == 503
            assert body == f"not ready: {database}: the database file was {how}" + (
                "; restart keb-watcher\n"
            )
        finally:
            proc.terminate()
            _out, err = proc.communicate(timeout=30)
    line = f"{database}: the database file was {how}; restart keb-watcher; not polling"
    assert err.count(line) == 1, err
    assert "Traceback" not in err


def readyz_or_none(url: str) -> int | None:
    try:
        return readyz(url)[0]
    except OSError:
        return None


def test_opening_the_database_again_keeps_the_locks_of_the_open_connection(
    tmp_path: Path,
) -> None:
    """The service opens the database again for every page of the dashboard. Checking the file
    must not open and close it: that drops the POSIX locks of the service's own connection,
    and another process closing its connection then deletes the WAL under the service."""
    database = tmp_path / "watcher.db"
    with Store(database) as service:
        service.track([ORCH], None, datetime.now(UTC))
        for _ in range(3):
            Store(database, create=False).close()  # a page of the dashboard
        reader = (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute('SELECT count(*) FROM tracked').fetchone(); c.close()"
        )
        subprocess.run([sys.executable, "-c", reader, str(database)], check=True, timeout=30)
        assert Path(f"{database}-wal").exists(), "another process deleted the WAL in use"
        later = "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a12"
        service.track([later], None, datetime.now(UTC))
        count = (
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1])"
            ".execute('SELECT count(*) FROM tracked').fetchone()[0])"
        )
        seen = subprocess.run(
            [sys.executable, "-c", count, str(database)], capture_output=True, text=True, timeout=30
        )
        assert seen.stdout.strip() == "2", seen.stderr
