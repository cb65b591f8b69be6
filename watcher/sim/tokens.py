"""Unsigned JWTs and the simulator's stand-in for KEB's Istio gateway.

KEB itself never checks tokens (docs/keb-api.md §5, §6): the Istio sidecar validates an OIDC
ID token and only lets ``/orchestrations*`` and ``/upgrade/*`` through when the token's
``groups`` claim contains ``orchestrationsAdmin``. Envoy answers in plain text, not JSON:

* token present but unreadable -> 401 ``Jwt verification fails``;
* token expired -> 401 ``Jwt is expired``;
* no token, or no ``orchestrationsAdmin`` group -> 403 ``RBAC: access denied``.

Signatures are deliberately not verified: the simulator has no issuer keys, and tests need to
mint tokens freely. Tokens are HS256-shaped with a dummy key so that clients which decode them
(to read ``exp``) see an ordinary JWT.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

ORCHESTRATIONS_GROUP: Final = "orchestrationsAdmin"
#: The chart default issuer (``resources/keb/values.yaml`` ``oidc.issuer``).
ISSUER: Final = "https://kymatest.accounts400.ondemand.com"
#: ``exp`` of tokens minted without an explicit expiry: far enough that tests never see it.
FAR_FUTURE: Final = datetime(2100, 1, 1, tzinfo=UTC)

BODY_VERIFICATION_FAILS: Final = "Jwt verification fails"
BODY_EXPIRED: Final = "Jwt is expired"
BODY_RBAC: Final = "RBAC: access denied"

# Not a secret: the signature only makes the token look ordinary; nobody verifies it.
_DUMMY_KEY: Final = b"keb-watcher-simulator"


class TokenCheck(Enum):
    """What the gateway concluded about an ``Authorization`` header."""

    OK = "ok"
    MISSING = "missing"  # no header, or not ``Bearer <token>``: Istio sees no JWT at all
    INVALID = "invalid"
    EXPIRED = "expired"
    NO_GROUP = "no-group"


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(
    groups: Iterable[str] = (ORCHESTRATIONS_GROUP,),
    exp: datetime | None = FAR_FUTURE,
    login_name: str = "demo",
) -> str:
    """Mint a JWT the simulator accepts: ``groups`` decide 403, ``exp`` decides 401.

    ``exp=None`` leaves the claim out (Envoy accepts tokens without ``exp``). ``login_name`` is
    the claim the kcp CLI reads for its Slack message (docs/keb-api.md §8.2).

    >>> claims = decode_claims(make_token(groups=("runtimeViewer",), exp=None))
    >>> claims["groups"], "exp" in claims
    (['runtimeViewer'], False)
    """
    header = {"alg": "HS256", "typ": "JWT"}
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": login_name,
        "login_name": login_name,
        "groups": list(groups),
    }
    if exp is not None:
        claims["exp"] = int(exp.timestamp())
    signing_input = ".".join(
        _b64encode(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = hmac.new(_DUMMY_KEY, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64encode(signature)}"


def decode_claims(token: str) -> dict[str, Any]:
    """The payload of ``header.payload.signature``; ``ValueError`` when it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise ValueError("a JWT has three dot-separated sections")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"JWT section is not base64url JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("JWT header and payload must be JSON objects")
    return claims


def _has_group(claims: Mapping[str, Any], group: str) -> bool:
    # Istio's ``request.auth.claims[groups]`` matches a list element or a plain string claim.
    groups = claims.get("groups")
    if isinstance(groups, str):
        return groups == group
    return isinstance(groups, list) and group in groups


def check_authorization(header: str | None, *, now: float | None = None) -> TokenCheck:
    """Judge an ``Authorization`` header as Istio would for the orchestration routes.

    ``now`` is real wall-clock seconds (``exp`` is compared with real time, not virtual time,
    so a token minted for a test never expires mid-simulation).
    """
    if header is None or not header.startswith("Bearer "):
        return TokenCheck.MISSING
    token = header[len("Bearer ") :].strip()
    if not token:
        return TokenCheck.MISSING
    try:
        claims = decode_claims(token)
    except ValueError:
        return TokenCheck.INVALID
    exp = claims.get("exp")
    if exp is not None:
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            return TokenCheck.INVALID
        if exp < (time.time() if now is None else now):
            return TokenCheck.EXPIRED
    if not _has_group(claims, ORCHESTRATIONS_GROUP):
        return TokenCheck.NO_GROUP
    return TokenCheck.OK


def gateway_reply(check: TokenCheck, *, protected: bool) -> tuple[int, str] | None:
    """The plain-text answer Istio sends instead of forwarding, or ``None`` to forward.

    Invalid and expired tokens are rejected on every path (``RequestAuthentication``); the
    group is only required on the orchestration and upgrade routes (``AuthorizationPolicy``).
    """
    if check is TokenCheck.INVALID:
        return 401, BODY_VERIFICATION_FAILS
    if check is TokenCheck.EXPIRED:
        return 401, BODY_EXPIRED
    if protected and check in (TokenCheck.MISSING, TokenCheck.NO_GROUP):
        return 403, BODY_RBAC
    return None
