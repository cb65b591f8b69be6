"""The table of notification kinds (core/kinds.py) is complete, and every module reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.config import NOTIFICATION_KINDS, load_config
from watcher.core.kinds import CARD_KINDS, KINDS, REPLY_KINDS, TEMPLATED, Kind, Role, priority
from watcher.notify.render import FLEET_TEMPLATES, TEMPLATES, Renderer, packaged_templates
from watcher.notify.samples import SAMPLES, sample_payload
from watcher.notify.sender import given_up_text


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_is_complete(kind: Kind) -> None:
    spec = KINDS[kind]
    assert isinstance(spec.role, Role)
    assert isinstance(spec.priority, int)
    assert 0 <= spec.priority <= 5
    assert spec.metric == kind.value
    payload = sample_payload(kind)
    assert payload["kind"] == kind
    if spec.role is Role.NOTICE:
        # A notice about the watcher itself: fixed text, never routed, never a template.
        assert spec.template is None
        assert spec.route is None
        assert "gave up" in given_up_text(int(payload["count"]))
        return
    assert spec.template is not None
    assert (packaged_templates() / spec.template).is_file()
    rendered = Renderer().render(kind, SAMPLES[kind])
    assert rendered.error is None, rendered.error
    assert rendered.message.text
    assert rendered.message.blocks
    assert spec.route == kind.value
    assert spec.route in NOTIFICATION_KINDS
    if spec.fleet_template is not None:
        assert (packaged_templates() / spec.fleet_template).is_file()


def test_roles_split_the_kinds() -> None:
    assert {Kind.TRACKING_STARTED, Kind.PROGRESS} == CARD_KINDS
    assert Kind.FINISHED in REPLY_KINDS
    assert Kind.FAILURE_DIGEST in REPLY_KINDS
    assert not CARD_KINDS & REPLY_KINDS
    assert {KINDS[k].role for k in (Kind.KEB_UNHEALTHY, Kind.KEB_RECOVERED)} == {Role.ALERT}


def test_final_and_failure_messages_go_before_progress() -> None:
    assert priority(Kind.KEB_UNHEALTHY) < priority(Kind.FINISHED) < priority(Kind.FAILURE_DIGEST)
    assert priority(Kind.FAILURE_DIGEST) < priority(Kind.STATE_CHANGED)
    assert priority(Kind.STATE_CHANGED) < priority(Kind.TRACKING_STARTED) < priority(Kind.PROGRESS)


def test_modules_read_the_table() -> None:
    assert set(TEMPLATES) == set(TEMPLATED) == set(SAMPLES)
    assert {k: KINDS[Kind(k)].template for k in TEMPLATES} == dict(TEMPLATES)
    assert set(FLEET_TEMPLATES) == {
        Kind.TRACKING_STARTED,
        Kind.PROGRESS,
        Kind.FAILURE_DIGEST,
        Kind.STUCK,
        Kind.UNSTUCK,
    }
    assert Kind.GIVEN_UP not in NOTIFICATION_KINDS


def test_a_stored_kind_compares_equal_to_its_member() -> None:
    assert Kind("failure_digest") is Kind.FAILURE_DIGEST
    assert Kind.FAILURE_DIGEST == "failure_digest"
    assert f"{Kind.PROGRESS}" == "progress"


@pytest.mark.parametrize("route", NOTIFICATION_KINDS)
def test_every_route_key_is_accepted_by_the_loader(tmp_path: Path, route: str) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text(
        '[keb]\nurl = "http://127.0.0.1:1"\ntoken = "keb-token-1234"\n'
        '[slack]\ntoken = "xoxb-1234-5678-abcd"\nchannel = "#a"\n'
        f'[slack.routes]\n{route} = "#b"\n'
    )
    assert load_config(path, {}).slack.routes[route] == "#b"


def test_a_silence_holds_back_replies_but_never_the_outcome() -> None:
    from watcher.core.kinds import SILENCEABLE

    assert set(SILENCEABLE) == {
        Kind.FAILURE_DIGEST,
        Kind.STATE_CHANGED,
        Kind.RETRIED,
        Kind.STUCK,
        Kind.UNSTUCK,
        Kind.AFTER_OUTCOME,
    }
