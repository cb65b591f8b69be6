"""Logging: plain text for people or JSON lines for log pipelines, secrets always redacted.

``watcher --log-format text|json ...`` picks the format. A JSON line holds ``time`` (ISO 8601,
UTC), ``level``, ``logger`` and ``message``, plus ``orchestration_id``, ``operation_id`` and
``intent_id`` (the outbox row) when the record carries them, given as ``extra=`` by the code
that logs::

    log.info("orchestration %s: polled", orch_id, extra={"orchestration_id": orch_id})
    {"time": "2024-05-14T08:15:00.750000+00:00", "level": "INFO", "logger": "watcher.engine.cycle",
     "message": "orchestration 5a3f...: polled", "orchestration_id": "5a3f..."}

:class:`RedactFilter` sits on the handler, so it sees every record that is written, from any
logger: each secret :mod:`watcher.redact` knows (KEB token, tokens read from a file or a
command, Slack token, webhook URL and its path) and anything shaped like a credential is
replaced by ``***`` in the message, the arguments and any traceback before a formatter reads
them.

Under all of it, :func:`safe_stderr` routes ``sys.stderr`` itself through a
:class:`SafeStream`: redacted and inert, whatever writes there.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TextIO, cast

from watcher.core.inert import inert
from watcher.redact import REDACTOR, Redactor, redact, remember, url_secrets

if TYPE_CHECKING:
    from watcher.config import Config

FORMATS: Final = ("text", "json")
#: Record attributes a JSON line carries when present (``extra=`` at the call site).
ID_FIELDS: Final = ("orchestration_id", "operation_id", "intent_id")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ID_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


class RedactFilter(logging.Filter):
    """Masks secrets (:mod:`watcher.redact`) in each record; never drops a record.

    It consults the process's redactor, which learns every token as soon as it is read, plus
    any ``secrets`` given here.
    """

    def __init__(self, secrets: Iterable[str] = (), redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor
        self.add(secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.redactor.secrets

    def add(self, secrets: Iterable[str]) -> None:
        self.redactor.add(*secrets)

    def redact(self, text: str) -> str:
        return self.redactor.redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name in ID_FIELDS:
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


def secrets_of(config: Config) -> list[str]:
    """The configured secrets, as they could appear in a log line."""
    found = [s.reveal() for s in (config.keb.token, config.slack.token) if s]
    if config.slack.webhook_url:
        found.extend(url_secrets(config.slack.webhook_url.reveal()))
    return found


class _Stderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (like logging's last resort)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def configure(level: int, fmt: str = "text") -> None:
    """Log at ``level`` to stderr in ``fmt``, with a :class:`RedactFilter` on the handler.

    Like :func:`logging.basicConfig`, it leaves a root logger configured by someone else (a
    test runner, an embedding program) alone; calling it again replaces its own handler.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; choose one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _Stderr)]
    if len(ours) != len(root.handlers):
        return
    for handler in ours:
        root.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactFilter())
    root.addHandler(handler)
    root.setLevel(level)


def redact_secrets(config: Config) -> None:
    """Teach the process's redactor, which every :class:`RedactFilter` and stderr consult,
    ``config``'s secrets."""
    remember(*secrets_of(config))


class SafeStream:
    """A text stream (``sys.stderr``) whose every write is redacted and made inert line by
    line (:func:`watcher.core.inert.inert`): the catch-all under every error line, log record
    and ``--debug`` traceback. Everything else is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self.wrapped = stream

    def write(self, text: str) -> int:
        lines = text.split("\n")
        self.wrapped.write("\n".join(inert(redact(line)) for line in lines))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


@contextmanager
def safe_stderr() -> Iterator[None]:
    """Route ``sys.stderr`` through a :class:`SafeStream` for the duration (once: the
    console script has done it already for the whole process)."""
    previous = sys.stderr
    if not isinstance(previous, SafeStream):
        sys.stderr = cast(TextIO, SafeStream(previous))
    try:
        yield
    finally:
        sys.stderr = previous
