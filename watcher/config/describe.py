"""What ``watcher check-config`` shows of a configuration, and what it warns about: one line
per effective setting with its origin, secrets as ``***``, a ``token_command`` as its program
only, URLs without ``user:password@``."""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from watcher.config.settings import SECTIONS, Config, Secret
from watcher.core.durations import format_duration

#: The keys whose value is a secret when written into the file itself.
_SECRET_KEYS: Final = (
    ("keb", "token"),
    ("slack", "token"),
    ("slack", "webhook_url"),
    ("service", "dashboard_token"),
    ("service", "metrics_token"),
)
_LOOPBACK: Final = re.compile(r"(127(\.\d{1,3}){3}|\[::1\]|localhost)")


def open_service_warning(config: Config) -> str | None:
    """A warning when ``service.listen`` reaches beyond this host and no
    ``service.dashboard_token`` guards the dashboard; ``None`` otherwise. Loopback is
    ``127.x.x.x``, ``[::1]`` and ``localhost``; anything else (``0.0.0.0``, ``[::]``, a name,
    an interface's address) is reachable from elsewhere.
    """
    service = config.service
    if service.listen is None or service.dashboard_token:
        return None
    host = service.listen.rpartition(":")[0]
    if _LOOPBACK.fullmatch(host.lower()):
        return None
    return (
        f"service.listen = {service.listen} serves the dashboard and /api/ beyond this host "
        "without service.dashboard_token: whoever reaches it reads every tracked orchestration"
    )


def exposed_secret_warning(path: Path, document: Mapping[str, Any]) -> str | None:
    """A warning when the file holds a secret itself (not only ``${VAR}``) and group or others
    may read it; ``None`` otherwise."""
    inline = [
        f"{section}.{key}"
        for section, key in _SECRET_KEYS
        if isinstance(value := document.get(section, {}).get(key), str)
        and not re.fullmatch(r"\s*\$\{\w+\}\s*", value)
    ]
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if not inline or not mode & 0o077:
        return None
    return (
        f"{path}: {', '.join(inline)} written in a file that others can read (mode "
        f"{mode:04o}); run chmod 600 {path}, or use ${{VAR}} or keb.token_file"
    )


def redact_url(text: str) -> str:
    """``text`` with any ``user:password@`` replaced by ``***@``."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return "***" if "@" in text else text
    if "@" not in parts.netloc:
        return text
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def describe(config: Config) -> list[str]:
    """One line per effective setting, for ``watcher check-config``; secrets show as ``***``.

    Each setting line reads ``key = value  (origin)``, e.g.
    ``poll.interval        = 1m  (default)``.
    """
    origins = config.origins
    variables = sorted(
        {name for origin in origins.values() for name in re.findall(r"\$\{(\w+)\}", origin)}
        | {origin.split()[1] for origin in origins.values() if origin.startswith("env ")}
    )
    lines = [
        f"config file: {config.source}"
        if config.source
        else "config file: none (settings from the environment and defaults)"
    ]
    if variables:
        lines.append(f"environment variables used: {', '.join(variables)}")
    rows: list[tuple[str, str, str]] = []
    for name in SECTIONS:
        section = getattr(config, name)
        for spec in dataclasses.fields(section):
            key = f"{name}.{spec.name}"
            origin = origins.get(key, "")
            if key == "poll.interval" and config.poll.cron is not None:
                origin = "; ".join(filter(None, [origin, "unused: poll.cron is set"]))
            shown = _show(getattr(section, spec.name), spec.metadata["kind"])
            if key == "keb.token_command" and config.keb.token_command:
                # Its arguments may carry secrets (--oidc-client-secret=...): the program only.
                shown = f"{command_program(config.keb.token_command)} (arguments hidden)"
            rows.append((key, shown, f"  ({origin})" if origin else ""))
    width = max(len(key) for key, _, _ in rows)
    lines.extend(f"{key.ljust(width)} = {shown}{origin}" for key, shown, origin in rows)
    return lines


def command_program(command: str) -> str:
    """The program a command line runs, without its arguments.

    >>> command_program("kubectl oidc-login get-token --oidc-client-secret=s3cr3t")
    'kubectl'
    """
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = command.split()
    return argv[0] if argv else "(empty)"


def _show(value: Any, kind: str) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "duration":
        return format_duration(value)
    if kind in ("states", "types"):
        return ", ".join(value) or "(any)"
    if kind in ("routes", "links"):
        return ", ".join(f"{k} -> {v}" for k, v in value.items()) or "(none)"
    if kind in ("url", "base_url"):
        return redact_url(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
