"""`watcher watch` in a real terminal: a pty of a known size, the real process, a simulator
running at 120x in this process. The live view must render, update, follow a resize, and
Ctrl-C must exit 130 with the cursor shown again."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from watcher.sim import SimServer, Simulator

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """A child process on a pty; ``screen`` is everything it wrote."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, rows: int, cols: int):
        pid, fd = pty.fork()
        if pid == 0:  # the child: its controlling terminal is the pty, so ^C is SIGINT
            try:
                set_size(0, rows, cols)
                os.chdir(cwd)  # no watcher.toml there: KEB_URL/KEB_TOKEN, an in-memory store
                os.execve(sys.executable, [sys.executable, *argv], env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.raw = b""
        self.status: int | None = None

    @property
    def screen(self) -> str:
        return self.raw.decode("utf-8", errors="replace")

    def read_until(self, done: Callable[[str], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self.screen):
                return True
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                self.raw += chunk
        return done(self.screen)

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.status is None and time.monotonic() < deadline:
            self.read_until(lambda _: False, 0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        self.read_until(lambda _: False, 0.1)
        assert self.status is not None, "the watch did not exit"
        return self.status

    def close(self) -> None:
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    started: list[Terminal] = []
    server: list[SimServer] = []

    def start(scenario: str, speed: float, *args: str, rows: int = 40, cols: int = 100) -> Terminal:
        sim = Simulator.from_scenario(scenario, speed=speed)
        server.append(SimServer(sim).start())
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env.update(
            KEB_URL=server[-1].url, KEB_TOKEN=sim.token, TERM="xterm-256color", PYTHONUTF8="1"
        )
        env.pop("WATCHER_CONFIG", None)
        argv = ["-m", "watcher", "watch", sim.orchestration_ids()[0], *args]
        term = Terminal(argv, env, str(tmp_path), rows, cols)
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()
    for s in server:
        s.stop()


def frames(screen: str) -> list[str]:
    """The panels drawn so far, escape sequences removed."""
    return ["╭" + part for part in ANSI.sub("", screen).split("╭")[1:]]


def progress_of(frame: str) -> str | None:
    found = re.search(r"Operations\s+(200: [^│]*?)\s*│", frame)
    return found.group(1) if found else None


def test_live_view_renders_updates_resizes_and_ctrl_c_exits_130(
    terminal: Callable[..., Terminal],
) -> None:
    term = terminal("failures", 120.0, "--interval", "0.5s", rows=40, cols=100)

    def progressed(screen: str) -> bool:
        seen = {progress_of(f) for f in frames(screen)} - {None}
        return len(seen) >= 3

    assert term.read_until(progressed, timeout=10.0), term.screen[-3000:]
    first = frames(term.screen)
    assert "\x1b[?25l" in term.screen  # the cursor is hidden while the view is live
    # The newest frame that was drawn to its end (the last one may still be arriving).
    latest = [f for f in first if "╰" in f][-1]
    for needle in ("watcher watch", "upgradeCluster", "in progress", "Progress", "Throughput"):
        assert needle in latest
    assert all(len(line) <= 100 for f in first for line in f.splitlines())

    # a narrower terminal: the next frames fit 60 columns
    set_size(term.fd, 40, 60)
    os.kill(term.pid, signal.SIGWINCH)
    mark = len(term.raw)

    def narrow(screen: str) -> bool:
        later = frames(term.raw[mark:].decode("utf-8", errors="replace"))
        return len(later) >= 2

    assert term.read_until(narrow, timeout=5.0)
    later = frames(term.raw[mark:].decode("utf-8", errors="replace"))[-1]
    assert all(len(line) <= 60 for line in later.splitlines()), later
    assert "Operations" in later

    os.write(term.fd, b"\x03")  # Ctrl-C, as typed
    assert term.wait(timeout=10.0) == 130
    tail = term.screen[-2000:]
    assert "\x1b[?25h" in tail  # the cursor is shown again
    assert "interrupted (Ctrl-C) (exit 130)" in ANSI.sub("", tail)
    assert "Traceback" not in term.screen
