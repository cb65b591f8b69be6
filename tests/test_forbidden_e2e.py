"""A 403 says why: the token lacks the group KEB's orchestration API needs (issue 18, point 4).

The simulator's gateway answers ``403 RBAC: access denied`` in plain text, as Istio does, to a
token without ``orchestrationsAdmin`` (scenario ``no-group``); every face names the group.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Cli, write_config
from watcher.sim.tokens import make_token

HINT = "the token lacks the group orchestrationsAdmin, which KEB's orchestration API needs"


def _one_line_with_hint(text: str) -> str:
    """Every line that reports the 403 names the group (``watch`` also ends with a summary)."""
    lines = [line for line in text.splitlines() if "RBAC: access denied" in line]
    assert lines, text
    assert all(HINT in line for line in lines), lines
    return lines[0]


def test_a_token_without_the_group_is_named_in_poll_status_watch_and_check_config(
    keb_factory: Any, cli: Cli
) -> None:
    keb = keb_factory("no-group")
    [orch_id] = keb.sim.orchestration_ids()
    config = str(keb.config)

    checked = cli("--config", config, "check-config", "--online")
    assert checked.code == 1
    _one_line_with_hint(checked.err)

    status = cli("--config", config, "status", orch_id)
    assert status.code == 1
    assert "403 Forbidden" in _one_line_with_hint(status.err)

    # Tracked with a token that has the group; polled with the one that lacks it.
    admin = write_config(keb.config.parent / "admin.toml", keb.server.url, make_token())
    assert cli("--config", str(admin), "track", orch_id).code == 0
    polled = cli("--config", config, "poll")
    assert polled.code == 1
    _one_line_with_hint(polled.err)
    listed = cli("--config", config, "list", "-o", "json").json()
    assert HINT in listed[0]["lastError"]  # what the poll stored says why too

    env = {"KEB_URL": keb.server.url, "KEB_TOKEN": keb.sim.token}
    watched = cli("watch", orch_id, "--output", "text", env=env)
    assert watched.code == 5, (watched.out, watched.err)
    _one_line_with_hint(watched.err + watched.out)

    for result in (checked, status, polled, watched):
        assert keb.sim.token not in result.out + result.err
        assert "Traceback" not in result.err


def test_a_401_is_not_blamed_on_the_group(keb_factory: Any, cli: Cli) -> None:
    """Only the gateway's 403 means a missing group; an expired or broken token is a 401."""
    keb = keb_factory("small")
    env = {"KEB_URL": keb.server.url, "KEB_TOKEN": "not-a-jwt"}
    result = cli("status", keb.sim.orchestration_ids()[0], env=env)
    assert result.code == 1
    assert "401 Unauthorized" in result.err
    assert "orchestrationsAdmin" not in result.err
