"""Every failure keb-watcher reports is one of these exceptions.

Foreign exceptions (httpx, sqlite3, tomllib, OSError) are mapped to this tree where the library
is called and never leak past the module that called it. Every message is one line that names
the offending input and never contains a secret.

::

    WatcherError                      exit 1 unless a subclass says otherwise
    ├── ConfigError                   exit 2: bad file, key, type, duration, cron, variable
    │   └── DurationError             not a duration ("30s", "5m", 90); also a ValueError
    ├── UsageError                    exit 2: bad command-line input (e.g. an unknown ID format)
    ├── StoreError                    the SQLite database cannot be opened, read or written
    ├── LeaseHeld                     another keb-watcher holds the single-instance lease
    ├── TokenError                    token_file unreadable, token_command failed
    ├── SlackFailure                  a Slack call failed: Slack's error code, transient or
    │                                 not, Retry-After
    └── KebError                      anything that went wrong talking to KEB
        ├── KebTransientError         worth retrying: connection, timeout, 5xx, 429, bad body
        │   ├── KebUnavailable        connection refused/reset, timeout, 5xx, 429
        │   └── KebResponseError      2xx with a body that is not the JSON we expect
        │       │                     (truncated JSON, an HTML error page)
        │       └── KebListChanged    the pages of one list disagree (it changed while read)
        └── KebPermanentError         retrying cannot fix it
            ├── KebTlsError           TLS with KEB failed: unknown CA, hostname mismatch, protocol
            ├── KebAuthError          401/403 from the gateway ("Jwt is expired", "RBAC: ...")
            ├── KebNotFound           KEB's own JSON 404: no such orchestration/operation
            │                         (also a LookupError)
            ├── KebNoOrchestrationApi a plain-text 404: this endpoint serves no orchestration
            │                         API (KEB 1.15.1 and later, or a wrong keb.url)
            ├── KebUnsupportedType    500 "unsupported orchestration type" (legacy upgradeKyma)
            ├── KebLimitExceeded      an answer beyond a sanity limit (body size, JSON depth)
            └── KebRequestError       other 4xx (400 bad paging, 415, ...)
"""

from __future__ import annotations

from watcher.redact import redact


class WatcherError(Exception):
    """Base of every error keb-watcher reports; ``str(err)`` is the one-line message."""

    exit_code: int = 1


class ConfigError(WatcherError):
    """The configuration cannot be used. The message names the file, key or variable."""

    exit_code = 2


class UsageError(WatcherError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = 2


class StoreError(WatcherError):
    """The SQLite store cannot be opened, migrated or written."""


class DurationError(ConfigError, ValueError):
    """A value that is not a duration. The message names ``key`` and shows the value.

    It is a :class:`ConfigError` (exit 2) and a :class:`ValueError`, so the command line can
    use :func:`watcher.core.durations.parse_duration` for its own options
    (``key="--interval"``).
    """

    def __init__(self, key: str, value: object, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.value = value


class LeaseHeld(WatcherError):
    """Another keb-watcher holds the lease (:mod:`watcher.store.lease`): this one must not
    poll now. ``who`` names the holder, ``until`` is when the lease expires unless renewed."""

    def __init__(self, who: str, until: str) -> None:
        super().__init__(f"another keb-watcher ({who}) holds the lease until {until}; not polling")
        self.who = who
        self.until = until


class TokenError(WatcherError):
    """No bearer token could be obtained (file unreadable, command failed)."""


class SlackFailure(WatcherError):
    """A Slack call failed. ``error`` is Slack's error code (or a short reason), never a
    token; ``transient`` says whether trying again can help; ``retry_after`` is Slack's 429
    ``Retry-After``."""

    def __init__(
        self,
        method: str,
        error: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        error = redact(error)  # Slack may echo the request, the Authorization header included
        super().__init__(f"Slack {method}: {error}")
        self.method = method
        self.error = error
        self.transient = transient
        self.retry_after = retry_after
        self.status = status


class KebError(WatcherError):
    """A request to KEB failed. ``status`` is the HTTP status when there was a response."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KebTransientError(KebError):
    """A failure that a later attempt may not see (network, 5xx, 429, damaged body)."""


class KebUnavailable(KebTransientError):
    """KEB could not be reached or answered 5xx/429.

    ``retry_after`` carries the server's ``Retry-After`` in seconds when it sent one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class KebResponseError(KebTransientError):
    """KEB (or a proxy in front of it) answered 2xx with a body that is not the expected JSON."""


class KebListChanged(KebResponseError):
    """The pages of one list did not hold together: ``totalCount`` moved between pages, an
    item showed up twice, or fewer items came than claimed (docs/keb-api.md §12.6). The list is
    read once per cycle; the observer defers to the next cycle rather than reading it again,
    so a cycle never costs more than a full sweep plus one request."""


class KebPermanentError(KebError):
    """A failure that retrying the same request cannot fix."""


class KebTlsError(KebPermanentError):
    """TLS with KEB failed (an unknown CA, a hostname mismatch, a protocol error): a
    configuration error for ``check-config``, an outage for ``run`` (the KEB-unhealthy alert)."""


class KebAuthError(KebPermanentError):
    """The gateway rejected the token: 401 (invalid/expired JWT) or 403 (RBAC)."""


class KebNotFound(KebPermanentError, LookupError):
    """KEB does not know the orchestration or operation (404)."""


class KebNoOrchestrationApi(KebPermanentError):
    """A 404 that is not KEB's JSON ``{"error": ...}``: the gateway routed the request to a
    server without orchestration routes (KEB 1.15.1 removed them; docs/keb-api.md §12.7), or the
    base URL is wrong. Nothing is known about the orchestration: it is *not* gone."""

    #: In every such message; says the endpoint, not the orchestration, is the problem.
    phrase = "serves no orchestration API"


class KebUnsupportedType(KebPermanentError):
    """KEB refuses to list the operations of an orchestration type it no longer processes:
    500 ``unsupported orchestration type: upgradeKyma`` from 1.8.9 on, forever (§12.8); and
    ``/runtimes?op_detail=last`` fails a whole page with ``unsupported operation type`` when one
    runtime's last operation is a legacy ``upgradeKyma`` (docs/keb-runtimes-api.md §2.4)."""


class KebLimitExceeded(KebPermanentError):
    """KEB's answer goes beyond what KEB ever sends: a body above the size cap, JSON nested
    deeper than its types nest. Retrying the same request within the cycle would only repeat
    the cost; the next cycle asks again."""


class KebRequestError(KebPermanentError):
    """KEB rejected the request itself (400, 405, 415, ...)."""
