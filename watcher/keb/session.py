"""One request to KEB: bounded, authenticated, retried and mapped onto :mod:`watcher.errors`.

:class:`Session` is the single path every KEB request takes. It holds the concurrency semaphore
for one attempt at a time (never while backing off), asks the token provider for the bearer
token, sends with the timeout, and turns whatever comes back into parsed JSON or a
:class:`~watcher.errors.KebError` whose one-line message reads
``KEB GET /orchestrations/<id>: 401 Unauthorized: Jwt is expired``.

Retried: connection errors, timeouts, broken connections, 5xx, 429 (honouring ``Retry-After``)
and 2xx bodies that are not JSON. After a 401 the request is sent once more if the provider has
(or, after ``invalidate()``, might have) a different token. Nothing else is retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from watcher.errors import (
    KebAuthError,
    KebError,
    KebLimitExceeded,
    KebNoOrchestrationApi,
    KebNotFound,
    KebRequestError,
    KebResponseError,
    KebTlsError,
    KebTransientError,
    KebUnavailable,
    KebUnsupportedType,
    TokenError,
)
from watcher.keb._httpx import httpx
from watcher.keb.auth import TokenProvider
from watcher.keb.messages import describe_body, describe_not_json, one_line, os_reason, redact
from watcher.keb.retry import RetryPolicy, parse_retry_after

log = logging.getLogger("watcher.keb")

AttemptOutcome = Literal["ok", "retried", "error"]


class RequestStats:
    """Counts of HTTP requests actually sent, retries included, by how each one ended.

    ``ok``: it produced the answer; ``retried``: it failed and another request followed;
    ``error``: it failed and the call raised.

    >>> stats = RequestStats()
    >>> stats.record("retried"); stats.record("ok")
    >>> stats.snapshot()
    {'requests': 2, 'ok': 1, 'retried': 1, 'error': 0}
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {"ok": 0, "retried": 0, "error": 0}

    def record(self, outcome: AttemptOutcome) -> None:
        self._counts[outcome] += 1

    @property
    def requests(self) -> int:
        return sum(self._counts.values())

    def snapshot(self) -> dict[str, int]:
        return {"requests": self.requests, **self._counts}

    def __repr__(self) -> str:
        return f"RequestStats({self.snapshot()})"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    #: False when sending twice could act twice (retry): resend only if KEB cannot have seen it.
    idempotent: bool = True

    @property
    def label(self) -> str:
        query = str(httpx.QueryParams(self.params))
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")


@dataclass(slots=True)
class _Attempt:
    """Which try of one call this is, and the token it carried (never logged)."""

    number: int = 0
    token: str = field(default="", repr=False)


class Session:
    """Sends :class:`Request` values to one KEB; see the module docstring for the policy."""

    def __init__(
        self,
        base_url: httpx.URL,
        auth: TokenProvider,
        *,
        timeout: float,
        concurrency: int,
        retry: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None,
        sleep: Callable[[float], Awaitable[None]],
        user_agent: str,
        ca_file: Path | None = None,
    ) -> None:
        self._origin = f"{base_url.scheme}://{base_url.netloc.decode('ascii')}"
        self._auth = auth
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._semaphore = asyncio.Semaphore(concurrency)
        self.stats = RequestStats()
        self._http = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            follow_redirects=False,
            # keb.ca_file, else httpx's default: $SSL_CERT_FILE, else certifi's bundle.
            verify=ssl.create_default_context(cafile=ca_file) if ca_file else True,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, req: Request) -> object:
        """Send ``req`` until it succeeds or fails for good; return the parsed JSON body."""
        failures = 0
        reauthenticated = False
        attempt = _Attempt()
        while True:
            attempt.number += 1
            try:
                result = await self._attempt(req, attempt)
            except KebAuthError as err:
                if err.status == 401 and not reauthenticated:
                    try:
                        refreshed = await self._fresh_token_possible(attempt.token)
                    except TokenError:
                        self.stats.record("error")
                        raise
                    if refreshed:
                        reauthenticated = True
                        self.stats.record("retried")
                        log.info("%s; trying once more with a fresh token", err)
                        continue
                self.stats.record("error")
                raise
            except KebTransientError as err:
                failures += 1
                if self._retry.should_retry(failures) and _may_resend(req, err):
                    retry_after = err.retry_after if isinstance(err, KebUnavailable) else None
                    delay = self._retry.delay(failures, retry_after)
                    self.stats.record("retried")
                    log.warning(
                        "%s; retrying in %.1fs (attempt %d of %d)",
                        err, delay, failures + 1, self._retry.attempts,
                    )  # fmt: skip
                    await self._sleep(delay)
                    continue
                self.stats.record("error")
                if failures > 1:
                    raise _gave_up(err, failures) from err
                raise
            except KebError:
                self.stats.record("error")
                raise
            self.stats.record("ok")
            return result

    async def _fresh_token_possible(self, rejected: str) -> bool:
        """After a 401: is there, or might there be, a token other than the rejected one?

        Concurrent requests all get 401 for the same expired token; only the first should make
        the provider drop its cache (and rerun a token command), the others reuse its result.
        """
        if await self._auth.token() != rejected:
            return True
        return self._auth.invalidate()

    async def _attempt(self, req: Request, attempt: _Attempt) -> object:
        async with self._semaphore:
            token = attempt.token = await self._auth.token()
            headers = {**dict(req.headers), "Authorization": f"Bearer {token}"}
            started = time.monotonic()
            request = self._http.build_request(
                req.method, req.path, params=req.params, content=req.content, headers=headers
            )
            try:
                async with asyncio.timeout(self._timeout):
                    response = await self._http.send(request, stream=True)
                    try:
                        content = await _read_capped(response, req)
                    finally:
                        await response.aclose()
            except (httpx.HTTPError, TimeoutError) as exc:
                err = self._transport_error(req, exc, token)
                log.debug(
                    "KEB %s -> %s after %.0f ms (attempt %d)",
                    req.label, type(exc).__name__, _ms(started), attempt.number,
                )  # fmt: skip
                raise err from exc
        log.debug(
            "KEB %s -> %d in %.0f ms (attempt %d)",
            req.label, response.status_code, _ms(started), attempt.number,
        )  # fmt: skip
        return self._interpret(req, response, content, token)

    def _interpret(
        self, req: Request, response: httpx.Response, content: bytes, token: str
    ) -> object:
        status = response.status_code
        head = f"KEB {req.label}: {status}" + (
            f" {response.reason_phrase}" if response.reason_phrase else ""
        )
        if 200 <= status < 300:
            try:
                body = json.loads(content)
                if _too_deep(body):
                    raise RecursionError
                return body
            except RecursionError:
                raise KebLimitExceeded(
                    f"{head}: JSON nested deeper than KEB ever nests", status=status
                ) from None
            except ValueError as exc:
                what = describe_not_json(content, response.headers.get("content-type", ""), exc)
                raise KebResponseError(redact(f"{head}: {what}", token), status=status) from None
        detail = describe_body(content, response.headers.get("content-type", ""))
        if 300 <= status < 400 and "location" in response.headers:
            detail = f"redirected to {response.headers['location'].split('?')[0]}"
        message = redact(f"{head}: {detail}" if detail else head, token)
        if status == 403:
            raise KebAuthError(f"{message}{forbidden_hint(req)}", status=status)
        if status == 401:
            raise KebAuthError(message, status=status)
        if status == 404:
            if _keb_error(content) is None:
                raise KebNoOrchestrationApi(redact(no_api(req, response), token), status=status)
            raise KebNotFound(message, status=status)
        # Legacy upgradeKyma data: orchestrations (§12.8) and /runtimes?op_detail=last alike.
        if status == 500 and any(
            phrase in (_keb_error(content) or "")
            for phrase in ("unsupported orchestration type", "unsupported operation type")
        ):
            raise KebUnsupportedType(message, status=status)
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
            raise KebUnavailable(message, status=status, retry_after=retry_after)
        raise KebRequestError(message, status=status)

    def _transport_error(self, req: Request, exc: BaseException, token: str) -> KebError:
        after = f"{self._timeout:g}s"
        if isinstance(exc, httpx.ConnectTimeout):
            what = f"cannot connect to {self._origin} (timed out after {after})"
        elif isinstance(exc, httpx.TimeoutException | TimeoutError):
            what = f"timed out after {after}"
        elif isinstance(exc, httpx.ConnectError) and (bad := _tls_problem(exc)):
            # Not transient: retrying cannot make the certificate trusted.
            kind, detail = bad
            if kind == "hostname":
                what = (
                    f"TLS certificate of {self._origin} is for another host ({detail}); keb.url "
                    "must name a host the certificate covers (keb.ca_file only adds trusted CAs)"
                )
            elif kind == "protocol":
                what = (
                    f"TLS handshake with {self._origin} failed (protocol error: {detail}); is "
                    "keb.url's port serving HTTPS? (keb.ca_file cannot help with this)"
                )
            else:
                what = f"TLS certificate of {self._origin} not trusted ({detail}); set keb.ca_file"
            return KebTlsError(redact(f"KEB {req.label}: {what}", token))
        elif isinstance(exc, httpx.ConnectError):
            what = f"cannot connect to {self._origin} ({os_reason(exc)})"
        elif isinstance(exc, httpx.RemoteProtocolError):
            what = f"connection broken ({one_line(str(exc)) or type(exc).__name__})"
        elif isinstance(exc, httpx.DecodingError):
            what = f"cannot decode the response body ({one_line(str(exc))})"
            return KebResponseError(redact(f"KEB {req.label}: {what}", token))
        else:
            what = f"{type(exc).__name__}: {one_line(str(exc))}"
        return KebUnavailable(redact(f"KEB {req.label}: {what}", token))


def _tls_problem(exc: BaseException) -> tuple[str, str] | None:
    """What failed in a TLS handshake: ("ca", "self-signed certificate"), ("hostname", ...) or
    ("protocol", "wrong version number"); None when the failure was not TLS."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            message = str(current.verify_message or current.reason or "verification failed")
            mismatch = "mismatch" in message.lower()
            return ("hostname" if mismatch else "ca"), message
        if isinstance(current, ssl.SSLError):
            return "protocol", str(current.reason or current.strerror or current).lower()
        current = current.__cause__ or current.__context__
    return None


#: The largest answer read: a full page of 100 operations is about 100 KB; nothing KEB sends
#: comes near this, so a larger body is a misrouted download or an attack, not data.
MAX_BODY_BYTES = 50 * 1024 * 1024


async def _read_capped(response: httpx.Response, req: Request) -> bytes:
    """The body, refused beyond :data:`MAX_BODY_BYTES` (announced or actual) without reading
    the rest."""
    announced = response.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > MAX_BODY_BYTES:
        raise KebLimitExceeded(
            f"KEB {req.label}: answer of {int(announced)} bytes exceeds the "
            f"{MAX_BODY_BYTES // (1024 * 1024)} MB limit",
            status=response.status_code,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise KebLimitExceeded(
                f"KEB {req.label}: answer exceeds the {MAX_BODY_BYTES // (1024 * 1024)} MB limit",
                status=response.status_code,
            )
        chunks.append(chunk)
    return b"".join(chunks)


#: KEB's deepest answer (an orchestration's parameters) nests about 5 levels.
MAX_JSON_DEPTH = 32


def _too_deep(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests containers deeper than ``limit`` (iteratively: no recursion).

    >>> _too_deep({"a": [{"b": 1}]}), _too_deep(json.loads("[" * 40 + "]" * 40))
    (False, True)
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


#: What a plain-text 404 means (docs/keb-api.md §12.7).
NO_API = KebNoOrchestrationApi.phrase


#: The group KEB's gateway requires on the orchestration and upgrade routes (docs/keb-api.md §5).
ORCHESTRATIONS_GROUP = "orchestrationsAdmin"


def forbidden_hint(req: Request) -> str:
    """What a 403 means: the gateway's ``AuthorizationPolicy`` lets ``/orchestrations*`` and
    ``/upgrade/*`` through only for tokens whose ``groups`` claim holds ``orchestrationsAdmin``
    (docs/keb-api.md §5, §6); Envoy says only ``RBAC: access denied``.

    >>> print(forbidden_hint(Request("GET", "/orchestrations/o-1")))
    ... # doctest: +NORMALIZE_WHITESPACE
     (the token lacks the group orchestrationsAdmin, which KEB's orchestration API needs: log
     in as a user of that group, or ask for it)
    >>> forbidden_hint(Request("GET", "/info/runtimes"))
    ''
    """
    if not req.path.lstrip("/").startswith(("orchestrations", "upgrade/")):
        return ""
    return (
        f" (the token lacks the group {ORCHESTRATIONS_GROUP}, which KEB's orchestration API "
        "needs: log in as a user of that group, or ask for it)"
    )


def no_api(req: Request, response: httpx.Response) -> str:
    """The one line for a plain-text 404: the URL asked (no query, never a token) and both
    things it can mean, since a wrong base URL and KEB 1.15.1 or later answer the same.

    >>> request = httpx.Request("GET", "https://kcp.example.com/wrong/orchestrations/o-1?page=1")
    >>> print(no_api(Request("GET", "/orchestrations/o-1"), httpx.Response(404, request=request)))
    ... # doctest: +NORMALIZE_WHITESPACE
    KEB GET https://kcp.example.com/wrong/orchestrations/o-1 answered a plain-text 404: the
    endpoint serves no orchestration API. Either keb.url is wrong (it must be KEB's base URL,
    without /orchestrations), or it points at KEB 1.15.1 or later, which removed the orchestration
    API; that KEB serves the runtimes API (GET /runtimes) instead, and `watcher fleet add NAME`
    follows its runtimes.
    """
    url = response.request.url.copy_with(query=None, fragment=None)
    return (
        f"KEB {req.method} {url} answered a plain-text 404: the endpoint {NO_API}. "
        "Either keb.url is wrong (it must be KEB's base URL, without /orchestrations), "
        "or it points at KEB 1.15.1 or later, which removed the orchestration API; "
        "that KEB serves the runtimes API (GET /runtimes) instead, and "
        "`watcher fleet add NAME` follows its runtimes."
    )


def _keb_error(content: bytes) -> str | None:
    """The text of KEB's own error body ``{"error": "..."}``, or ``None`` when the body is
    something else (a router's plain ``404 page not found``, an HTML page)."""
    if len(content) > 64 * 1024:
        return None
    try:
        body = json.loads(content)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None


def _may_resend(req: Request, err: KebTransientError) -> bool:
    """Idempotent requests are always resent; others only if KEB cannot have acted on them."""
    if req.idempotent:
        return True
    if err.status in (429, 503):
        return True
    return isinstance(err.__cause__, httpx.ConnectError | httpx.ConnectTimeout)


def _gave_up(err: KebTransientError, attempts: int) -> KebTransientError:
    message = f"{err} (gave up after {attempts} attempts)"
    if isinstance(err, KebUnavailable):
        return KebUnavailable(message, status=err.status, retry_after=err.retry_after)
    return KebResponseError(message, status=err.status)


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000
