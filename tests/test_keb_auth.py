"""Token providers: static, file (re-read on change) and command (cached until the JWT expires)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shlex
import stat
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.errors import TokenError
from watcher.keb import CommandToken, FileToken, StaticToken, TokenProvider
from watcher.keb.auth import EXPIRY_SKEW, OPAQUE_TOKEN_TTL, jwt_expiry


def make_jwt(claims: dict[str, object]) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- StaticToken ------------------------------------------------------------------------------


def test_static_token_is_returned_and_cannot_be_refreshed() -> None:
    provider = StaticToken("  s3cret-value \n")
    assert asyncio.run(provider.token()) == "s3cret-value"
    assert provider.invalidate() is False
    assert "s3cret" not in repr(provider)
    assert isinstance(provider, TokenProvider)


def test_static_token_rejects_empty() -> None:
    with pytest.raises(TokenError, match="empty"):
        StaticToken("   ")


# -- FileToken --------------------------------------------------------------------------------


def test_file_token_strips_whitespace_and_rereads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first-token\n")
    provider = FileToken(path)

    async def scenario() -> list[str]:
        seen = [await provider.token()]
        path.write_text("  second-token-longer  \n")
        seen.append(await provider.token())
        replacement = tmp_path / "token.new"
        replacement.write_text("third-token-by-rename")
        replacement.replace(path)  # atomic rename-over: new inode
        seen.append(await provider.token())
        return seen

    assert asyncio.run(scenario()) == [
        "first-token",
        "second-token-longer",
        "third-token-by-rename",
    ]


def test_file_token_is_cached_while_the_file_looks_unchanged_until_invalidated(
    tmp_path: Path,
) -> None:
    path = tmp_path / "token"
    path.write_text("old-token")
    provider = FileToken(path)

    async def scenario() -> list[str]:
        seen = [await provider.token()]
        before = path.stat()
        with path.open("r+") as fh:  # same inode, same size; restore the mtime below
            fh.write("new-token")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        seen.append(await provider.token())
        assert provider.invalidate() is True
        seen.append(await provider.token())
        return seen

    assert asyncio.run(scenario()) == ["old-token", "old-token", "new-token"]


def test_file_token_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    with pytest.raises(TokenError) as info:
        asyncio.run(FileToken(path).token())
    assert str(path) in str(info.value)
    assert "no such file" in str(info.value)


def test_file_token_unreadable_names_the_path(tmp_path: Path) -> None:
    # A directory cannot be read as a file, even by root (chmod 000 would not stop root).
    with pytest.raises(TokenError) as info:
        asyncio.run(FileToken(tmp_path).token())
    assert str(tmp_path) in str(info.value)


def test_file_token_empty_or_binary_file_never_echoes_content(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text(" \n\t\n")
    with pytest.raises(TokenError, match="is empty"):
        asyncio.run(FileToken(empty).token())
    binary = tmp_path / "binary"
    binary.write_bytes(b"secret-part\xff\xfe")
    with pytest.raises(TokenError) as info:
        asyncio.run(FileToken(binary).token())
    assert "secret-part" not in str(info.value)
    assert str(binary) in str(info.value)


# -- CommandToken -----------------------------------------------------------------------------

SCRIPT = """#!{python}
import pathlib, sys, time
counter = pathlib.Path(sys.argv[1])
counter.write_text(str(int(counter.read_text() or 0) + 1) if counter.exists() else "1")
mode = sys.argv[3] if len(sys.argv) > 3 else "ok"
token = pathlib.Path(sys.argv[2]).read_text()
if mode == "fail":
    print(token)
    print("login failed: refresh token revoked\\nsecond line of detail", file=sys.stderr)
    sys.exit(3)
if mode == "empty":
    print("warning: no cached credentials", file=sys.stderr)
    sys.exit(0)
if mode == "slow":
    time.sleep(10)
print(token)
"""


class TokenCommand:
    """A small real program that prints a token and counts its invocations in a file."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "print-token"
        self.script.write_text(SCRIPT.format(python=sys.executable))
        self.script.chmod(self.script.stat().st_mode | stat.S_IXUSR)
        self.counter = tmp_path / "count"
        self.token_file = tmp_path / "token-source"

    def command(self, *extra: str) -> str:
        argv = [str(self.script), str(self.counter), str(self.token_file), *extra]
        return shlex.join(argv)

    @property
    def runs(self) -> int:
        return int(self.counter.read_text()) if self.counter.exists() else 0


@pytest.fixture
def token_command(tmp_path: Path) -> TokenCommand:
    return TokenCommand(tmp_path)


def test_command_token_is_cached_until_exp_minus_skew(token_command: TokenCommand) -> None:
    clock = FakeClock(1_000_000.0)
    exp = clock.now + 3600
    token_command.token_file.write_text(make_jwt({"exp": exp, "groups": ["orchestrationsAdmin"]}))
    provider = CommandToken(token_command.command(), clock=clock)

    async def scenario() -> list[int]:
        runs = []
        await provider.token()
        await provider.token()
        runs.append(token_command.runs)
        clock.now = exp - EXPIRY_SKEW - 1
        await provider.token()
        runs.append(token_command.runs)
        clock.now = exp - EXPIRY_SKEW
        await provider.token()
        runs.append(token_command.runs)
        return runs

    assert asyncio.run(scenario()) == [1, 1, 2]


def test_command_token_that_is_not_a_jwt_is_cached_for_300s(token_command: TokenCommand) -> None:
    clock = FakeClock(5000.0)
    token_command.token_file.write_text("opaque-token\n")
    provider = CommandToken(token_command.command(), clock=clock)

    async def scenario() -> tuple[str, int, int]:
        token = await provider.token()
        clock.now += OPAQUE_TOKEN_TTL - 1
        await provider.token()
        cached_runs = token_command.runs
        clock.now += 1
        await provider.token()
        return token, cached_runs, token_command.runs

    assert asyncio.run(scenario()) == ("opaque-token", 1, 2)


def test_command_token_invalidate_reruns_and_concurrent_callers_share_a_run(
    token_command: TokenCommand,
) -> None:
    token_command.token_file.write_text("token-aaa")
    provider = CommandToken(token_command.command(), clock=FakeClock(0.0))

    async def scenario() -> tuple[list[str], str]:
        first = await asyncio.gather(*(provider.token() for _ in range(5)))
        token_command.token_file.write_text("token-bbb")
        assert provider.invalidate() is True
        return first, await provider.token()

    first, second = asyncio.run(scenario())
    assert first == ["token-aaa"] * 5
    assert second == "token-bbb"
    assert token_command.runs == 2


def test_command_token_reads_a_kubelogin_exec_credential(token_command: TokenCommand) -> None:
    clock = FakeClock(datetime(2024, 5, 14, 8, 0, tzinfo=UTC).timestamp())
    jwt = make_jwt({"exp": clock.now + 10})  # the stated expiry wins over the JWT's
    credential = {
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "spec": {"interactive": False},
        "status": {"expirationTimestamp": "2024-05-14T09:00:00Z", "token": jwt},
    }
    token_command.token_file.write_text(json.dumps(credential, indent=2))
    provider = CommandToken(token_command.command(), clock=clock)

    async def scenario() -> tuple[str, int, int]:
        token = await provider.token()
        clock.now += 3600 - EXPIRY_SKEW - 1
        await provider.token()
        cached_runs = token_command.runs
        clock.now += 1
        await provider.token()
        return token, cached_runs, token_command.runs

    assert asyncio.run(scenario()) == (jwt, 1, 2)


def test_command_printing_other_json_is_not_taken_as_a_token(token_command: TokenCommand) -> None:
    token_command.token_file.write_text('{"access_token": "hidden-secret"}')
    with pytest.raises(TokenError, match="printed no token") as info:
        asyncio.run(CommandToken(token_command.command()).token())
    assert "hidden-secret" not in str(info.value)


def test_command_failure_reports_program_and_stderr_but_never_stdout(
    token_command: TokenCommand,
) -> None:
    token_command.token_file.write_text("leaked-token-value")
    provider = CommandToken(token_command.command("fail"))
    with pytest.raises(TokenError) as info:
        asyncio.run(provider.token())
    message = str(info.value)
    assert str(token_command.script) in message
    assert "exited with status 3" in message
    assert "login failed: refresh token revoked" in message
    assert "second line" not in message
    assert "leaked-token-value" not in message
    assert str(token_command.counter) not in message  # arguments may hold secrets


def test_command_printing_nothing_is_an_error(token_command: TokenCommand) -> None:
    token_command.token_file.write_text("unused")
    with pytest.raises(TokenError, match=r"printed no token.*no cached credentials"):
        asyncio.run(CommandToken(token_command.command("empty")).token())


def test_command_timeout_is_an_error(token_command: TokenCommand) -> None:
    token_command.token_file.write_text("unused")
    with pytest.raises(TokenError, match=r"timed out after 0\.3s"):
        asyncio.run(CommandToken(token_command.command("slow"), timeout=0.3).token())


def test_a_command_that_forks_a_child_holding_stdout_is_killed_as_a_group(
    tmp_path: Path,
) -> None:
    """The helper leaves a child behind that keeps stdout open: the timeout still ends the
    run, in one line naming the command and nothing it printed, and the child is gone."""
    pidfile = tmp_path / "child.pid"
    script = tmp_path / "kcp-token"
    script.write_text(
        f"#!/bin/sh\necho token-printed-before-hanging\nsleep 60 &\necho $! > {pidfile}\nsleep 60\n"
    )
    script.chmod(0o700)
    started = time.monotonic()
    with pytest.raises(TokenError) as failed:
        asyncio.run(CommandToken(f"{script} --secret s3cr3t-argument", timeout=0.5).token())
    assert time.monotonic() - started < 5
    assert str(failed.value) == f"token command {script} timed out after 0.5s"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            break  # gone
        if state == "Z":
            break  # killed, waiting for its reaper
        time.sleep(0.05)
    else:
        raise AssertionError(f"the forked child {child} still runs")


def test_command_that_cannot_run(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-program"
    with pytest.raises(TokenError, match=r"cannot run token command .*no-such-program"):
        asyncio.run(CommandToken(f"{missing} --password hunter2").token())


def test_command_must_not_be_empty_or_unparseable() -> None:
    with pytest.raises(TokenError, match="empty"):
        CommandToken("   ")
    with pytest.raises(TokenError, match="cannot parse"):
        CommandToken("kubectl 'unterminated")


# -- jwt_expiry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (make_jwt({"exp": 1700000000}), 1700000000.0),
        (make_jwt({"exp": 1700000000.5, "sub": "x" * 7}), 1700000000.5),  # needs padding
        (make_jwt({"sub": "no-exp"}), None),
        (make_jwt({"exp": "1700000000"}), None),
        (make_jwt({"exp": True}), None),
        ("header.!!!not-base64!!!.sig", None),
        ("a.b", None),
        ("opaque", None),
    ],
)
def test_jwt_expiry(token: str, expected: float | None) -> None:
    assert jwt_expiry(token) == expected
