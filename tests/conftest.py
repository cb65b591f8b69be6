"""Shared fixtures: the KEB simulator over real HTTP on 127.0.0.1, and the real CLI."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from watcher.cli import entrypoint
from watcher.sim import SimServer, Simulator


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Keb:
    """A running simulator with a manual clock, and a config file pointing at it."""

    sim: Simulator
    server: SimServer
    config: Path
    #: Lengths of the simulator's truth paths just before and just after the poll that took
    #: the baseline (keyed by orchestration and operation ID): where a recorded history
    #: may start. None: not known (the history is then checked against any suffix).
    baseline: tuple[dict[str, int], dict[str, int]] | None = None
    #: The baseline window still grows: no poll has succeeded for every orchestration yet.
    baseline_open: bool = True

    def restart(self) -> None:
        """Bring the server back on the same port (after ``server.stop()``)."""
        port = int(self.server.url.rsplit(":", 1)[1])
        self.server = SimServer(self.sim, port=port).start()


Cli = Callable[..., Result]


@pytest.fixture(autouse=True)
def _restore_sigterm() -> Iterator[None]:
    """`watcher run` ignores SIGTERM once it has stopped; in-process runs must not leave the
    test process ignoring it."""
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run the real command line in-process (the console script's own entry function)."""

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        capsys.readouterr()
        for key in ("WATCHER_CONFIG", "KEB_URL", "KEB_TOKEN", "COLUMNS"):
            monkeypatch.delenv(key, raising=False)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        code = entrypoint(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def write_config(path: Path, url: str, token: str, extra: str = "") -> Path:
    path.write_text(
        f'[keb]\nurl = "{url}"\ntoken = "{token}"\ntimeout = "2s"\nretries = 1\n\n'
        f'[storage]\npath = "{path.parent / "watcher.db"}"\n\n'
        f'[poll]\nfull_sweep_every = "1h"\n{extra}'
    )
    return path


@pytest.fixture
def keb_factory(tmp_path: Path) -> Iterator[Callable[[str], Keb]]:
    started: list[Keb] = []

    def start(scenario: str, seed: int = 1) -> Keb:
        sim = Simulator.from_scenario(scenario, seed=seed)
        server = SimServer(sim).start()
        config = write_config(tmp_path / f"{scenario}-{seed}.toml", server.url, sim.token)
        keb = Keb(sim, server, config)
        started.append(keb)
        return keb

    yield start
    for keb in started:
        keb.server.stop()
