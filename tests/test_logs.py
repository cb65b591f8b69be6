"""Log lines: the JSON formatter, the secret-redacting filter, and `--log-format` end to end."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_config
from watcher.config import load_config
from watcher.logs import JsonFormatter, RedactFilter, configure, redact_secrets, secrets_of

KEB_TOKEN = "eyJhbGciOiJub25lIn0.keb-secret-token"
ORCH = "0a1b2c3d-0000-4000-8000-000000000001"
SLACK_TOKEN = "xoxb-1234-slack-secret"
WEBHOOK = "https://hooks.slack.com/services/T000/B000/WEBHOOKSECRET"


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("watcher.test", logging.WARNING, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_lines_carry_time_level_logger_message_and_the_ids() -> None:
    rec = record("outbox %d: sent", 12, orchestration_id="5a3f", intent_id=12, operation_id=None)
    rec.created = 1715673600.75  # 2024-05-14T08:00:00.75Z
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2024-05-14T08:00:00.750000+00:00",
        "level": "WARNING",
        "logger": "watcher.test",
        "message": "outbox 12: sent",
        "orchestration_id": "5a3f",
        "intent_id": 12,
    }


def test_json_lines_hold_a_traceback_in_one_field() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        rec = logging.LogRecord(
            "watcher.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    parsed = json.loads(JsonFormatter().format(rec))
    assert parsed["message"] == "failed"
    assert "ValueError: boom" in parsed["exception"]
    assert "operation_id" not in parsed


@pytest.mark.parametrize(
    ("msg", "args"),
    [
        ("token is %s", (KEB_TOKEN,)),
        (f"Authorization: Bearer {KEB_TOKEN}", ()),
        ("slack %s and keb %r", (SLACK_TOKEN, KEB_TOKEN)),
        ("posting to %s", (WEBHOOK,)),
        ("POST /services/T000/B000/WEBHOOKSECRET failed", ()),
    ],
)
def test_the_filter_redacts_every_configured_secret(msg: str, args: tuple[object, ...]) -> None:
    flt = RedactFilter([KEB_TOKEN, SLACK_TOKEN, WEBHOOK, "/services/T000/B000/WEBHOOKSECRET"])
    rec = record(msg, *args)
    assert flt.filter(rec) is True  # redacts, never drops
    text = rec.getMessage()
    for secret in ("keb-secret-token", "slack-secret", "WEBHOOKSECRET"):
        assert secret not in text
    assert "***" in text
    assert "secret" not in JsonFormatter().format(rec)


def test_the_filter_redacts_tracebacks_and_leaves_other_records_alone() -> None:
    flt = RedactFilter([KEB_TOKEN])
    try:
        raise RuntimeError(f"request failed with token {KEB_TOKEN}")
    except RuntimeError:
        rec = logging.LogRecord(
            "watcher.test", logging.ERROR, __file__, 1, "oops %s", ("x",), sys.exc_info()
        )
    flt.filter(rec)
    text = logging.Formatter().format(rec)
    assert KEB_TOKEN not in text
    assert "request failed with token ***" in text
    plain = record("cycle %d: %d transitions", 3, 4)
    flt.filter(plain)
    assert plain.getMessage() == "cycle 3: 4 transitions"


def test_secrets_of_a_config(tmp_path: Path) -> None:
    bot = write_config(
        tmp_path / "bot.toml",
        "http://127.0.0.1:1",
        KEB_TOKEN,
        f'\n[slack]\ntoken = "{SLACK_TOKEN}"\nchannel = "#x"\n',
    )
    assert secrets_of(load_config(bot, {})) == [KEB_TOKEN, SLACK_TOKEN]
    section = f'\n[slack]\nwebhook_url = "{WEBHOOK}"\n'
    hook = write_config(tmp_path / "hook.toml", "http://127.0.0.1:1", KEB_TOKEN, section)
    found = secrets_of(load_config(hook, {}))
    assert found == [KEB_TOKEN, WEBHOOK, "/services/T000/B000/WEBHOOKSECRET"]


def test_log_format_json_from_the_command_line_redacts_the_token(tmp_path: Path) -> None:
    """A real process: `--log-format json` gives JSON lines on stderr, and the KEB error it
    logs (here: nothing listens on the port) never carries the token."""
    cfg = write_config(tmp_path / "watcher.toml", "http://127.0.0.1:9", KEB_TOKEN)
    base = [sys.executable, "-m", "watcher", "--config", str(cfg)]
    subprocess.run([*base, "track", "--no-check", ORCH], check=True, capture_output=True)
    done = subprocess.run(
        [*base, "--log-format", "json", "--debug", "poll"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("{")]
    parsed = [json.loads(line) for line in lines]
    assert parsed
    assert {"time", "level", "logger", "message"} <= set(parsed[0])
    failed = [p for p in parsed if "poll failed" in p["message"]]
    assert failed
    assert failed[0]["orchestration_id"] == ORCH
    assert KEB_TOKEN not in done.stderr
    assert "keb-secret-token" not in done.stderr


def test_configure_and_redact_secrets_wire_the_filter_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "watcher.toml", "http://127.0.0.1:1", KEB_TOKEN)
    cfg.chmod(0o600)  # an inline token in a file others can read would add a warning line
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers = []  # as in a fresh process (pytest installs its own handlers)
    try:
        configure(logging.INFO, "json")
        configure(logging.INFO, "json")  # again: replaces its handler, does not add one
        assert len(root.handlers) == 1
        redact_secrets(load_config(cfg, {}))
        logging.getLogger("watcher.test").info(
            "token %s", KEB_TOKEN, extra={"orchestration_id": "o1"}
        )
    finally:
        root.handlers, root.level = saved, level
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "token ***"
    assert json.loads(line)["orchestration_id"] == "o1"
    configure_before = len(saved)
    configure(logging.DEBUG, "text")  # someone else's handlers: left alone
    assert len(root.handlers) == configure_before
