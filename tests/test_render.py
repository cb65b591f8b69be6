"""Templates: packaged in the wheel, overridable file by file, sandboxed, strict, escaped."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from watcher.errors import ConfigError
from watcher.notify.render import TEMPLATES, Renderer, duration, packaged_templates
from watcher.notify.samples import SAMPLES

ROOT = Path(__file__).resolve().parents[1]


def test_every_template_renders_every_sample() -> None:
    renderer = Renderer()
    assert renderer.check(SAMPLES) == []
    for kind, payload in SAMPLES.items():
        message = renderer.render(kind, payload).message
        assert message.text
        assert message.blocks


def test_keb_data_is_escaped() -> None:
    payload = dict(SAMPLES["tracking_started"])
    payload["orchestration"] = {**payload["orchestration"], "description": "<!channel> & co"}
    text = Renderer().render("tracking_started", payload).message.blocks[1]["text"]["text"]
    assert "&lt;!channel&gt; &amp; co" in text
    assert "<!channel>" not in text


def test_override_one_file_keeps_the_others(tmp_path: Path) -> None:
    (tmp_path / "finished.j2").write_text(
        "Done: {{ orchestration.id }} is {{ orchestration.state }}"
    )
    renderer = Renderer(tmp_path)
    assert renderer.render("finished", SAMPLES["finished"]).message.text.startswith("Done: 5a3f")
    assert (
        "KEB upgrade"
        in renderer.render("tracking_started", SAMPLES["tracking_started"]).message.text
    )


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("{{ no_such_variable }}", "UndefinedError"),
        ("{% for x in %}", "finished.j2, line 1"),
        ("{{ ''.__class__.__mro__ }}", "SecurityError"),
    ],
)
def test_a_broken_template_falls_back_to_plain_text_and_says_why(
    tmp_path: Path, template: str, needle: str
) -> None:
    (tmp_path / "finished.j2").write_text(template)
    rendered = Renderer(tmp_path).render("finished", SAMPLES["finished"])
    assert rendered.error is not None
    assert needle in rendered.error
    assert "\n" not in rendered.error
    assert rendered.message.text.startswith("keb-watcher finished: orchestration 5a3f")


def test_missing_override_dir_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"templates\.dir"):
        Renderer(tmp_path / "nope")


def test_duration_filter() -> None:
    assert [duration(x) for x in (0, 65, 720, 3725, 90000, None)] == [
        "0s",
        "1m 5s",
        "12m",
        "1h 2m",
        "1d 1h",
        "-",
    ]


def test_templates_ship_in_the_wheel_and_a_plain_install_finds_them(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    [wheel] = tmp_path.glob("keb_watcher-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for template in set(TEMPLATES.values()):
        assert f"watcher/_templates/{template}" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--force-reinstall",
            str(wheel),
        ],
        check=True,
    )
    probe = (
        "from watcher.notify.render import packaged_templates, Renderer;"
        "from watcher.notify.samples import SAMPLES;"
        "print(packaged_templates());"
        "print(Renderer().check(SAMPLES))"
    )
    done = subprocess.run(
        [str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    where, errors = done.stdout.splitlines()
    assert where.endswith("site-packages/watcher/_templates"), where
    assert errors == "[]"
    assert packaged_templates().is_dir()


def test_the_landscape_label_is_configuration_shown_as_written() -> None:
    """keb.name comes from the operator, not from KEB: its underscores and asterisks stay
    (KEB text gets look-alikes instead), in the header and in the fallback text."""
    rendered = Renderer(context={"keb_name": "prod_eu*1"}).render("finished", SAMPLES["finished"])
    header = rendered.message.blocks[0]
    assert header["type"] == "header"
    assert "prod_eu*1" in header["text"]["text"]
    assert "prod_eu*1" in rendered.message.text


@pytest.mark.parametrize(
    ("kind", "state", "mentioned"),
    [
        ("keb_unhealthy", None, True),
        ("keb_recovered", None, False),
        ("finished", "failed", True),
        ("finished", "succeeded", False),
        ("failure_digest", None, False),
        ("progress", None, False),
    ],
)
def test_the_label_is_everywhere_and_the_mention_only_where_someone_must_act(
    kind: str, state: str | None, mentioned: bool
) -> None:
    """keb.name is in every message (the alerts too); slack.mention_on_failure only in a
    failed outcome and the KEB-unhealthy alert (issue 11)."""
    payload = dict(SAMPLES[kind])
    if state is not None:
        payload["orchestration"] = {**payload["orchestration"], "state": state}
    renderer = Renderer(context={"keb_name": "prod-eu", "mention": "<!subteam^S0123ABC>"})
    rendered = renderer.render(kind, payload)
    assert rendered.error is None
    text = (
        "\n".join(str(block.get("text", {}).get("text", "")) for block in rendered.message.blocks)
        + rendered.message.text
    )
    assert "prod-eu" in text
    assert ("<!subteam^S0123ABC>" in text) is mentioned
