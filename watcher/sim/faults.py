"""Injected failures of the network path between a client and KEB.

Each fault imitates something a poller meets in production (docs/keb-api.md §5,
docs/contract.md §4.8): a 500 from KEB, an HTML error page from a proxy, a slow answer, a
body cut short, an SSO login page served with 200, a token rejected by the gateway, a connection
reset. Faults apply to API paths only, never to the ``/_sim/`` admin paths.

A fault rule fires on matching requests until its ``count`` is used up (``None``: forever);
with a ``probability`` each matching request draws whether it fires. Rules are checked in the
order they were injected and at most one fires per request.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any, Final

FAULT_KINDS: Final = (
    "5xx",
    "502-html",
    "slow",
    "truncated",
    "html-200",
    "reject-token",
    "rbac",
    "reset",
    "no-api",
    "inflated-total",
    "deep-json",
    "empty-page",
)
#: Faults that model a KEB (or a gateway) that behaves differently, not a broken network:
#: ``no-api`` answers every ``/orchestrations*`` path with the plain-text 404 of KEB 1.15.1 and
#: later (docs/keb-api.md §12.7); ``inflated-total`` claims a ``totalCount`` of 1,000,000 on lists;
#: ``deep-json`` nests the answer 1,000 levels deep; ``empty-page`` answers a list page with
#: ``data: []`` and the real ``totalCount`` (§12.6). Use them with ``count`` ``None`` to keep
#: the mode on until cleared.
INFLATED_TOTAL: Final = 1_000_000

#: What a 500 from KEB looks like: the usual ``{"error": ...}`` object (docs/keb-api.md §3.7).
ERROR_500_JSON: Final = (
    '{"error":"while getting orchestrations: dbr: failed to connect to database: '
    'connection refused (simulated fault)"}'
)
HTML_502: Final = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>envoy</center>\r\n"
    "</body>\r\n</html>\r\n"
)
#: An identity-provider login page that a misrouted request can get with status 200.
HTML_200_LOGIN: Final = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Sign In</title></head>\n'
    '<body><form method="post" action="/saml2/idp/sso"><h1>Sign in</h1>'
    '<input name="j_username"><input name="j_password" type="password">'
    '<button type="submit">Continue</button></form></body></html>\n'
)
DEFAULT_SLOW_DELAY: Final = 2.0


@dataclass(slots=True)
class Fault:
    """One injected rule. ``remaining`` counts down; ``None`` never runs out."""

    kind: str
    remaining: int | None = 1
    probability: float | None = None
    path_prefix: str | None = None
    delay: float = DEFAULT_SLOW_DELAY

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.remaining,
            "probability": self.probability,
            "path_prefix": self.path_prefix,
            "delay": self.delay,
        }


class Faults:
    """The fault rules of one simulator; thread-safe (the HTTP threads consume them)."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        # A separate RNG: probabilistic faults must not perturb the world's seeded sequence.
        self._rng = random.Random(f"faults-{seed}")

    def inject(
        self,
        kind: str,
        count: int | None = 1,
        probability: float | None = None,
        path_prefix: str | None = None,
        delay: float = DEFAULT_SLOW_DELAY,
    ) -> Fault:
        """Add a rule; ``ValueError`` names the bad argument.

        ``delay`` is the real-time pause of ``slow`` faults, in seconds.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if count is not None and (isinstance(count, bool) or count < 1):
            raise ValueError(f"fault count must be a positive integer or None, got {count!r}")
        if probability is not None and not 0.0 < probability <= 1.0:
            raise ValueError(f"fault probability must be in (0, 1], got {probability!r}")
        if delay < 0:
            raise ValueError(f"fault delay must not be negative, got {delay!r}")
        fault = Fault(kind, count, probability, path_prefix, float(delay))
        with self._lock:
            self._rules.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def take(self, path: str) -> Fault | None:
        """The fault that fires for a request to ``path``, consuming one of its uses."""
        with self._lock:
            for rule in self._rules:
                if rule.path_prefix is not None and not path.startswith(rule.path_prefix):
                    continue
                if rule.probability is not None and self._rng.random() >= rule.probability:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return Fault(rule.kind, None, rule.probability, rule.path_prefix, rule.delay)
        return None
