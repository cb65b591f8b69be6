"""The one redactor: every sink (stderr, logs, the database, Slack, ``check-config``) passes
text through :func:`redact` before it writes, and :func:`cut` when it also shortens it.

It masks with ``***``:

* every secret it was told about: the KEB token (also each token a ``token_file`` or a
  ``token_command`` produced, added by :mod:`watcher.keb.auth` as soon as it is read), the
  Slack token and the webhook URL (with its path, which is the webhook's credential);
* whatever is shaped like a credential even when nobody told it: ``Bearer <token>``, Slack
  tokens (``xoxb-``, ``xoxp-``, ``xapp-`` ...), JSON Web Tokens (``eyJ...``, also cut short)
  and ``user:password@`` in URLs.

Redact first, cut second (:func:`cut`): a secret cut in half no longer matches, so cutting
first would let the rest of it through.

The known secrets are a process-wide set, like the logging configuration they serve: a token
that a ``token_command`` prints at 03:00 must be masked by the log handler, the outbox writer
and the Slack alert alike, and none of them is handed the token. Secrets shorter than
:data:`MIN_SECRET` characters are refused (the loader rejects them with exit 2): masking them
would mask single characters in every line.
"""

from __future__ import annotations

import re
import threading
from typing import Final
from urllib.parse import urlsplit

MASK: Final = "***"
#: Shorter secrets are configuration errors, never masked (they would mask ordinary words).
MIN_SECRET: Final = 8

_PATTERNS: Final = (
    # Authorization: Bearer <token>, also JSON-quoted or form-encoded.
    (re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[A-Za-z0-9._~+/=-]{4,}"), r"\1\2" + MASK),
    # Slack tokens: xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xoxe-, xapp-.
    (re.compile(r"\bx(?:ox[a-z]|app)-[A-Za-z0-9-]{4,}"), MASK),
    # JSON Web Tokens, whole or cut: a base64url JSON header, then what follows.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{6,}(?:\.[A-Za-z0-9_-]*){0,2}"), MASK),
    # user:password@ in a URL.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:]+:[^/\s@]+@"), r"\1" + MASK + "@"),
)


def url_secrets(url: str) -> list[str]:
    """What of a secret URL (a Slack webhook) must never be shown: the URL, and its path,
    which is the credential (when it is long enough to be one).

    >>> url_secrets("https://hooks.slack.com/services/T0/B0/XYZSECRET")
    ['https://hooks.slack.com/services/T0/B0/XYZSECRET', '/services/T0/B0/XYZSECRET']
    """
    try:
        path = urlsplit(url).path
    except ValueError:
        return [url]
    return [url, path] if len(path.strip("/")) >= MIN_SECRET else [url]


class Redactor:
    """Masks known secrets and credential-shaped text. Thread-safe; secrets only accumulate.

    >>> r = Redactor()
    >>> r.add("s3cr3t-token-value")
    >>> r.redact("got s3cr3t-token-value; Authorization: Bearer abc.def.ghi")
    'got ***; Authorization: Bearer ***'
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add(self, *secrets: str) -> None:
        """Remember ``secrets``; too-short and empty ones are ignored (see :data:`MIN_SECRET`)."""
        with self._lock:
            known = set(self._secrets)
            known.update(s for s in secrets if len(s) >= MIN_SECRET)
            # Longest first: a secret that contains another is masked whole.
            self._secrets = tuple(sorted(known, key=len, reverse=True))

    def add_url(self, url: str) -> None:
        """A secret URL (a Slack webhook): the URL and its path, which is the credential."""
        self.add(*url_secrets(url))

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def cut(self, text: str, limit: int, marker: str = "...") -> str:
        """Redact, then shorten to at most ``limit`` characters (``marker`` included)."""
        text = self.redact(text)
        if len(text) <= limit:
            return text
        return text[: max(0, limit - len(marker))] + marker


#: The process's redactor; see the module docstring for why it is shared.
REDACTOR: Final = Redactor()


def remember(*secrets: str) -> None:
    """Teach the process's redactor ``secrets`` (call it as soon as a secret is read)."""
    REDACTOR.add(*secrets)


def remember_url(url: str) -> None:
    REDACTOR.add_url(url)


def redact(text: str) -> str:
    """``text`` with every known secret and credential-shaped string masked."""
    return REDACTOR.redact(text)


def cut(text: str, limit: int, marker: str = "...") -> str:
    """:func:`redact`, then shorten to ``limit`` characters."""
    return REDACTOR.cut(text, limit, marker)
