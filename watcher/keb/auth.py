"""Bearer tokens for KEB's orchestration API.

The Istio gateway in front of KEB wants ``Authorization: Bearer <OIDC ID token>`` whose
``groups`` claim contains ``orchestrationsAdmin``; an expired or invalid JWT gets a plain-text
401 (``Jwt is expired``), a missing group a 403 (``RBAC: access denied``) (docs/keb-api.md §5, §6).
The ``kcp`` CLI caches its ID token until it expires; :class:`CommandToken` does the same with
whatever command prints a token (``kubectl oidc-login get-token ...``, a vault lookup, ...).

No message, log line or ``repr`` produced here ever contains a token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import shlex
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from watcher.core.models import parse_keb_time
from watcher.errors import TokenError
from watcher.redact import MIN_SECRET, redact, remember

log = logging.getLogger("watcher.keb")

#: Refresh a JWT this many seconds before its ``exp`` so it does not expire in flight.
EXPIRY_SKEW = 60.0
#: How long to reuse a command's token that is not a JWT or carries no ``exp``.
OPAQUE_TOKEN_TTL = 300.0


@runtime_checkable
class TokenProvider(Protocol):
    """Where the client gets its bearer token.

    ``token()`` may be called once per request, concurrently; providers cache. After KEB's
    gateway answers 401 the client calls ``invalidate()``; it returns ``True`` when asking
    again might yield a different token, and the client then retries once.
    """

    async def token(self) -> str: ...

    def invalidate(self) -> bool: ...


class StaticToken:
    """A fixed token (e.g. from an environment variable); ``invalidate()`` cannot help."""

    def __init__(self, token: str) -> None:
        token = token.strip()
        if not token:
            raise TokenError("the KEB token is empty")
        remember(token)
        self._token = token

    async def token(self) -> str:
        return self._token

    def invalidate(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "StaticToken(***)"


class FileToken:
    """A token read from a file that something else keeps fresh (a sidecar, a cron job).

    The file is re-read when its modification time, size or inode changes (an atomic
    rename-over replaces the inode) and after ``invalidate()``. Surrounding whitespace is
    stripped. Errors name the path, never the content.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._cached: str | None = None
        self._key: tuple[int, int, int] | None = None

    @property
    def path(self) -> Path:
        return self._path

    async def token(self) -> str:
        try:
            stat = self._path.stat()
        except OSError as exc:
            raise TokenError(f"cannot read token file {self._path}: {_os_reason(exc)}") from exc
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if self._cached is not None and key == self._key:
            return self._cached
        try:
            raw = self._path.read_bytes()
        except OSError as exc:
            raise TokenError(f"cannot read token file {self._path}: {_os_reason(exc)}") from exc
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise TokenError(f"token file {self._path} is not UTF-8 text") from exc
        if not text:
            raise TokenError(f"token file {self._path} is empty")
        _check_length(text, f"token file {self._path}")
        if self._cached is not None:
            log.info("token file %s changed; using the new token", self._path)
        self._cached, self._key = text, key
        return text

    def invalidate(self) -> bool:
        self._cached, self._key = None, None
        return True

    def __repr__(self) -> str:
        return f"FileToken({str(self._path)!r})"


class CommandToken:
    """A token printed on stdout by a command, cached until shortly before it expires.

    The command line is split with :func:`shlex.split` and run without a shell. Its stdout is
    the token, or a Kubernetes ``ExecCredential`` (see :func:`parse_token_output`). A token is
    reused until its stated expiry, else its JWT ``exp`` claim, minus :data:`EXPIRY_SKEW` (the
    payload is decoded, not verified: the gateway verifies it); any other token for
    :data:`OPAQUE_TOKEN_TTL` seconds. Concurrent callers share one run of the command.
    Failures name the program and quote the first line of its stderr, never its stdout (which
    may hold a token) nor its arguments (which may hold secrets).
    """

    def __init__(
        self,
        command: str,
        *,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise TokenError(f"cannot parse token command: {exc}") from exc
        if not argv:
            raise TokenError("the token command is empty")
        self._argv = argv
        self._timeout = timeout
        self._clock = clock
        self._cached: str | None = None
        self._valid_until = 0.0
        self._lock = asyncio.Lock()

    @property
    def program(self) -> str:
        """The program name, safe to show: the arguments may carry secrets."""
        return self._argv[0]

    async def token(self) -> str:
        async with self._lock:
            now = self._clock()
            if self._cached is not None and now < self._valid_until:
                return self._cached
            token, expires = await self._run()
            self._cached = token
            self._valid_until = _valid_until(token, now, expires)
            return token

    def invalidate(self) -> bool:
        self._cached = None
        self._valid_until = 0.0
        return True

    async def _run(self) -> tuple[str, float | None]:
        name = self.program
        try:
            # A process group of its own: on a timeout the whole group goes, also a helper
            # the command forked that still holds stdout (which would keep the pipe open).
            proc = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise TokenError(f"cannot run token command {name}: {_os_reason(exc)}") from exc
        try:
            async with asyncio.timeout(self._timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            await _kill_group(proc)
            raise TokenError(f"token command {name} timed out after {self._timeout:g}s") from None
        except asyncio.CancelledError:
            await _kill_group(proc)
            raise
        output = out.decode("utf-8", errors="replace").strip()
        detail = _first_line(err.decode("utf-8", errors="replace"), hide=[output, *self._hidden()])
        if proc.returncode != 0:
            suffix = f": {detail}" if detail else ""
            raise TokenError(f"token command {name} exited with status {proc.returncode}{suffix}")
        token, expires = parse_token_output(output)
        if not token:
            suffix = f" (stderr: {detail})" if detail else ""
            raise TokenError(f"token command {name} printed no token{suffix}")
        _check_length(token, f"token command {name}")
        log.debug("token command %s produced a token", name)
        return token, expires

    def _hidden(self) -> list[str]:
        """The arguments (and ``--option=value`` values) long enough to be secrets: a failing
        command often repeats its arguments on stderr."""
        hidden = []
        for arg in self._argv[1:]:
            hidden += [arg, arg.partition("=")[2]]
        return [h for h in hidden if len(h) >= MIN_SECRET]

    def __repr__(self) -> str:
        return f"CommandToken({self.program!r})"


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """Kill the command's process group and reap the command (bounded: never hang here)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        async with asyncio.timeout(5):
            await proc.wait()
    except TimeoutError:
        log.warning("token command %s: its process group did not go away", proc.pid)


def parse_token_output(output: str) -> tuple[str, float | None]:
    """The token a command printed, and its expiry when the output states one.

    Plain output is the token itself. A Kubernetes ``ExecCredential`` (what
    ``kubectl oidc-login get-token`` prints, the kubelogin flow ``kcp login`` uses) yields
    ``status.token`` and ``status.expirationTimestamp``. Other JSON is not a token: ``""``.

    >>> parse_token_output("  abc.def.ghi  ")
    ('abc.def.ghi', None)
    >>> parse_token_output('{"kind": "ExecCredential", "status": {"token": "t0k",'
    ...                    ' "expirationTimestamp": "2024-05-14T09:00:00Z"}}')
    ('t0k', 1715677200.0)
    """
    text = output.strip()
    if not text.startswith("{"):
        return text, None
    try:
        doc = json.loads(text)
    except ValueError:
        return text, None
    if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
        return "", None
    status = doc.get("status")
    if not isinstance(status, dict) or not isinstance(status.get("token"), str):
        return "", None
    expires = parse_keb_time(status.get("expirationTimestamp"))
    return str(status["token"]).strip(), expires.timestamp() if expires else None


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT as a POSIX timestamp, without verifying anything.

    Returns ``None`` for anything that is not a three-part JWT with a numeric ``exp``.

    >>> payload = base64.urlsafe_b64encode(b'{"exp": 1700000000}').rstrip(b"=").decode()
    >>> jwt_expiry(f"e30.{payload}.sig")
    1700000000.0
    >>> jwt_expiry("opaque-token") is None
    True
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segment = parts[1]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict):
        return None
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


def _valid_until(token: str, now: float, stated: float | None = None) -> float:
    exp = stated if stated is not None else jwt_expiry(token)
    if exp is None:
        return now + OPAQUE_TOKEN_TTL
    if exp - EXPIRY_SKEW > now:
        return exp - EXPIRY_SKEW
    # Already inside the skew: use it while it lasts rather than rerun the command per request.
    return exp


def _check_length(token: str, source: str) -> None:
    """Remember ``token`` for redaction at once, or refuse one too short to be masked."""
    if len(token) < MIN_SECRET:
        raise TokenError(f"{source}: the token is shorter than {MIN_SECRET} characters")
    remember(token)


def _first_line(text: str, *, hide: Sequence[str] = (), limit: int = 200) -> str:
    """The first non-blank line, with ``hide`` and every known secret masked, then cut."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            for secret in sorted(filter(None, hide), key=len, reverse=True):
                line = line.replace(secret, "***")
            line = redact(line)
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


__all__ = [
    "EXPIRY_SKEW",
    "OPAQUE_TOKEN_TTL",
    "CommandToken",
    "FileToken",
    "StaticToken",
    "TokenProvider",
    "jwt_expiry",
    "parse_token_output",
]
