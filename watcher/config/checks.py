"""Checks of a setting that need more than its text: a CA file's certificates, an IPv6 host,
and the close match offered for a misspelt key or value."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
from collections.abc import Callable
from pathlib import Path

from watcher.config.settings import SECTIONS
from watcher.errors import ConfigError


def check_ca_file(path: Path, error: Callable[[str], ConfigError]) -> None:
    """``path`` must be readable and hold at least one PEM certificate that TLS accepts:
    found at load time (exit 2 naming the key), not at the first request to KEB."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise error(f"{path}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)")
    import ssl  # only when a CA file is configured

    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise error(f"{path}: not a valid PEM certificate ({reason})") from None


def is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def suggest(word: str, candidates: list[str], *, keys: bool = False) -> str:
    """`` (did you mean 'interval'?)`` for a close candidate, else an empty string.

    With ``keys``, a key that exists in another section is suggested with its section.

    >>> suggest("intervl", ["interval", "cron"]), suggest("zzz", ["interval"])
    (" (did you mean 'interval'?)", '')
    """
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if not keys:
        return ""
    elsewhere = [
        f"{name}.{spec.name}"
        for name, cls in SECTIONS.items()
        for spec in dataclasses.fields(cls)
        if spec.name == word
    ]
    return f" (did you mean {elsewhere[0]!r}?)" if elsewhere else ""
