"""Keep keb-watcher's ``token_file`` fresh: get a token from an OIDC identity provider's token
endpoint, write it atomically (mode 0600), and get the next one when half of its lifetime is
over. keb-watcher re-reads the file when it changes (a new inode after each rename).

KEB's Istio policy checks the JWT's issuer and that its ``groups`` claim holds the
orchestrations admin group (``orchestrationsAdmin`` by default); no audience or scope. So the
token must be one the IdP issues to this client with that group: usually the ID token.

Standard library only, so it runs in the keb-watcher image (Python 3.11). Configuration is
read from the environment:

  OIDC_TOKEN_URL      the IdP's token endpoint (required)
  OIDC_GRANT_TYPE     client_credentials (default), password or refresh_token
  OIDC_CLIENT_ID      the client (required)
  OIDC_CLIENT_SECRET  its secret (none for a public client)
  OIDC_CLIENT_AUTH    basic (default: HTTP Basic, client_secret_basic) or post
  OIDC_SCOPE          default "openid"
  OIDC_USERNAME, OIDC_PASSWORD   for the password grant (a technical user)
  OIDC_REFRESH_TOKEN  for the refresh_token grant (a rotated one is kept in memory)
  TOKEN_FIELD         which field of the answer to write: id_token (default) or access_token
  TOKEN_FILE          default /var/run/secrets/keb-watcher/keb-token

``--once`` writes one token and exits (0, or 1 after an error): for an init container.
Without it, it runs until stopped, and retries failures with a growing delay (5 s to 60 s).
Log lines go to stderr and never contain a token or a secret.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

DEFAULT_FILE = "/var/run/secrets/keb-watcher/keb-token"
#: Lifetime assumed when the answer says nothing (no JWT ``exp``, no ``expires_in``).
DEFAULT_LIFETIME = 300.0
MIN_WAIT = 1.0
RETRY_FIRST, RETRY_MAX = 5.0, 60.0
GRANTS = ("client_credentials", "password", "refresh_token")


class RefreshError(Exception):
    """A token could not be obtained or written; the message names no secret."""


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} keb-token-refresh: {message}", file=sys.stderr, flush=True)


def setting(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, "").strip() or default
    if value is None:
        raise RefreshError(f"{name} is not set")
    return value


class Refresher:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.url = setting(env, "OIDC_TOKEN_URL")
        self.grant = setting(env, "OIDC_GRANT_TYPE", "client_credentials")
        if self.grant not in GRANTS:
            raise RefreshError(f"OIDC_GRANT_TYPE {self.grant!r} is not one of {', '.join(GRANTS)}")
        self.client_id = setting(env, "OIDC_CLIENT_ID")
        self.client_secret = env.get("OIDC_CLIENT_SECRET", "")
        self.client_auth = setting(env, "OIDC_CLIENT_AUTH", "basic")
        if self.client_auth not in ("basic", "post"):
            raise RefreshError(f"OIDC_CLIENT_AUTH {self.client_auth!r} is not basic or post")
        self.scope = setting(env, "OIDC_SCOPE", "openid")
        self.field = setting(env, "TOKEN_FIELD", "id_token")
        self.path = Path(setting(env, "TOKEN_FILE", DEFAULT_FILE))
        self.username = self.password = self.refresh_token = ""
        if self.grant == "password":
            self.username = setting(env, "OIDC_USERNAME")
            self.password = setting(env, "OIDC_PASSWORD")
        if self.grant == "refresh_token":
            self.refresh_token = setting(env, "OIDC_REFRESH_TOKEN")

    def request(self) -> urllib.request.Request:
        form = {"grant_type": self.grant, "scope": self.scope}
        if self.grant == "password":
            form |= {"username": self.username, "password": self.password}
        if self.grant == "refresh_token":
            form["refresh_token"] = self.refresh_token
        headers = {"Accept": "application/json"}
        if self.client_auth == "basic" and self.client_secret:
            pair = f"{urllib.parse.quote(self.client_id)}:{urllib.parse.quote(self.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = self.client_id
            if self.client_secret:
                form["client_secret"] = self.client_secret
        body = urllib.parse.urlencode(form).encode()
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def fetch(self) -> tuple[str, float]:
        """A new token and its remaining lifetime in seconds."""
        try:
            with urllib.request.urlopen(self.request(), timeout=30) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            raise RefreshError(
                f"{self.url} answered {exc.code}: {oauth_error(exc.read())}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RefreshError(f"cannot reach {self.url}: {reason}") from None
        try:
            answer_json = json.loads(raw)
        except ValueError:
            raise RefreshError(f"{self.url} did not answer JSON") from None
        token = answer_json.get(self.field) if isinstance(answer_json, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise RefreshError(
                f"{self.url} answered without {self.field} (does the identity provider issue "
                f"one for the {self.grant} grant and scope {self.scope!r}?)"
            )
        rotated = answer_json.get("refresh_token")
        if self.grant == "refresh_token" and isinstance(rotated, str) and rotated:
            self.refresh_token = rotated
        return token.strip(), lifetime(token, answer_json.get("expires_in"))

    def write(self, token: str) -> None:
        """Write ``token`` to a new file beside the target, then rename it over the target."""
        directory = self.path.parent
        try:
            fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        except OSError as exc:
            raise RefreshError(f"cannot write in {directory}: {exc.strerror}") from None
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(token + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            Path(temp).unlink(missing_ok=True)
            raise RefreshError(f"cannot write {self.path}: {exc.strerror}") from None

    def refresh(self) -> float:
        """One token fetched and written; seconds until the next refresh is due."""
        token, left = self.fetch()
        self.write(token)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + left))
        log(f"wrote a new {self.field} to {self.path} (valid until {expires})")
        return max(MIN_WAIT, left / 2)


def oauth_error(body: bytes) -> str:
    """The OAuth ``error`` and ``error_description`` of an error answer, or its start."""
    try:
        data = json.loads(body)
    except ValueError:
        return " ".join(body[:200].decode("utf-8", "replace").split()) or "(no body)"
    if isinstance(data, dict) and "error" in data:
        return " ".join(str(data.get(k, "")) for k in ("error", "error_description")).strip()
    return "(no OAuth error in the answer)"


def lifetime(token: str, expires_in: object) -> float:
    """Seconds the token stays valid: the JWT's ``exp`` (not verified: only for timing),
    else ``expires_in``, else :data:`DEFAULT_LIFETIME`."""
    parts = token.split(".")
    if len(parts) == 3:
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            return max(0.0, float(payload["exp"]) - time.time())
        except (ValueError, KeyError, TypeError):
            pass
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        return max(0.0, float(expires_in))
    return DEFAULT_LIFETIME


def main(argv: list[str]) -> int:
    once = "--once" in argv
    try:
        refresher = Refresher(os.environ)
    except RefreshError as exc:
        log(f"configuration: {exc}")
        return 2
    delay = RETRY_FIRST
    while True:
        try:
            wait = refresher.refresh()
            delay = RETRY_FIRST
        except RefreshError as exc:
            log(str(exc))
            if once:
                return 1
            wait, delay = delay, min(RETRY_MAX, delay * 2)
            log(f"trying again in {wait:.0f}s")
        if once:
            return 0
        time.sleep(wait)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
