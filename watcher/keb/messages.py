"""One-line descriptions of what went wrong on the wire. Pure: strings and bytes in, text out.

KEB's own errors are ``{"error": "<Go error chain>"}`` JSON; the Istio gateway in front of it
answers 401/403 in plain text (``Jwt is expired``, ``RBAC: access denied``); load balancers and
proxies answer with HTML pages (docs/keb-api.md §5). Messages must stay one line and must
never carry a token.
"""

from __future__ import annotations

import html
import json
import os
import re

from watcher.redact import redact as redact_known

_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_ERRNO_RE = re.compile(r"\[Errno -?\d+\]\s*")


def describe_body(content: bytes, content_type: str = "") -> str:
    """One line saying what an error body says: KEB's ``error`` text, a page title, or text.

    >>> describe_body(b'{"error":"while getting orchestration x: dbr: not found"}')
    'while getting orchestration x: dbr: not found'
    >>> describe_body(b"<html><head><title>502 Bad Gateway</title></head></html>", "text/html")
    'HTML error page (502 Bad Gateway)'
    >>> describe_body(b"Jwt is expired")
    'Jwt is expired'
    """
    # Redact first, cut second: a body that echoes a long token must not leave its head.
    text = redact(content.decode("utf-8", errors="replace")).strip()
    if not text:
        return ""
    if text[:1] in "{[":
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("error"), str):
            return one_line(obj["error"], limit=500)
    if looks_like_html(text, content_type):
        return "HTML error page" + _html_title(text)
    return one_line(text)


def describe_not_json(content: bytes, content_type: str, exc: ValueError) -> str:
    """Why a 2xx body could not be used: an HTML page, nothing, or broken JSON."""
    text = redact(content.decode("utf-8", errors="replace")).strip()
    if looks_like_html(text, content_type):
        return "expected JSON, got an HTML page" + _html_title(text)
    if not text:
        return "expected JSON, got an empty body"
    return f"response is not valid JSON ({one_line(str(exc))})"


def looks_like_html(text: str, content_type: str = "") -> bool:
    start = text[:200].lstrip().lower()
    return "html" in content_type.lower() or start.startswith(("<!doctype", "<html"))


def one_line(text: str, *, limit: int = 200) -> str:
    """The first non-blank line of ``text``, whitespace collapsed, at most ``limit`` chars.

    >>> one_line("  RBAC:   access denied\\nmore")
    'RBAC: access denied'
    """
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""


def os_reason(exc: BaseException) -> str:
    """``connection refused`` from whatever OSError lies under a wrapped connection error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            # asyncio puts "Connect call failed (...)" in strerror; the errno says why.
            return os.strerror(current.errno).lower()
        current = current.__cause__ or current.__context__
    text = _ERRNO_RE.sub("", one_line(str(exc)))
    return text.lower() if text else type(exc).__name__


def redact(text: str, token: str = "") -> str:
    """``text`` with ``token``, every known secret and anything shaped like a credential
    replaced by ``***`` (:mod:`watcher.redact`).

    >>> redact("echo: Authorization: Bearer abc.def.ghi", "")
    'echo: Authorization: Bearer ***'
    """
    if token:
        text = text.replace(token, "***")
    return redact_known(text)


def _html_title(text: str) -> str:
    match = _TITLE_RE.search(text)
    title = one_line(html.unescape(match.group(1))) if match else ""
    return f" ({title})" if title else ""
