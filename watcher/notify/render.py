"""Rendering notifications with Jinja2 templates.

Templates live in the top-level ``templates/`` folder, shipped inside the wheel as
``watcher/_templates``; ``[templates] dir`` overrides them file by file. The environment is
sandboxed (templates are configuration, not code) and uses ``StrictUndefined`` (a typo is an
error, not an empty string). Every ``{{ value }}`` is redacted and made inert for Slack mrkdwn
(:func:`watcher.notify.blocks.escape_value`: one line, no control or invisible characters, no
link, mention or formatting) unless a filter of ours marked it as already safe; a value never
starts a header, divider or context line. Templates keep their freedom: structure and
formatting come from the template's own text. A template that fails for any reason, or runs
past its time budget, falls back to a plain message, and the error (with the template and
line) is returned so that the sender records it: never swallowed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2
from jinja2.sandbox import MAX_RANGE, SandboxedEnvironment

from watcher.core.inert import inert
from watcher.core.kinds import KINDS
from watcher.core.states import finished_first, state_label
from watcher.errors import ConfigError
from watcher.notify.blocks import (
    Message,
    escape,
    escape_value,
    mark,
    plain_message,
    to_message,
)
from watcher.notify.links import link_line, slack_date
from watcher.redact import redact

#: Which template renders which kind of notification (core/kinds.py); a notice written
#: without a template (``given_up``) has none.
TEMPLATES: Final[Mapping[str, str]] = {
    k.value: s.template for k, s in KINDS.items() if s.template is not None
}

#: The templates of a selection's notifications (fleet watch): its payloads carry ``fleet``
#: where an orchestration's carry ``orchestration``; the kinds and their delivery are the same.
FLEET_TEMPLATES: Final[Mapping[str, str]] = {
    k.value: s.fleet_template for k, s in KINDS.items() if s.fleet_template is not None
}

_ICONS: Final = {
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "canceled": ":no_entry_sign:",
    "canceling": ":octagonal_sign:",
    "in progress": ":arrows_counterclockwise:",
    "retrying": ":repeat:",
    "pending": ":hourglass_flowing_sand:",
}
_COUNT_ICONS: Final = {
    "succeeded": "✅",
    "failed": "❌",
    "canceled": "🚫",
    "in progress": "🔄",
    "pending": "⏳",
}


class Safe(str):
    """Text that is already valid mrkdwn: not escaped again."""

    __slots__ = ()


def packaged_templates() -> Path:
    """The shipped templates: inside the wheel, or the repository's ``templates/``."""
    inside = Path(__file__).resolve().parent.parent / "_templates"
    if inside.is_dir():
        return inside
    return Path(__file__).resolve().parents[2] / "templates"


#: Longest a template may take to render one notification (seconds).
RENDER_BUDGET: Final = 2.0


def _finalize(value: object) -> str:
    """Every ``{{ value }}``: secrets masked, made inert for mrkdwn, and marked so that it
    cannot start a line's structure (see :func:`watcher.notify.blocks.to_message`)."""
    if isinstance(value, Safe):
        return value
    if value is None:
        return ""
    return mark(escape_value(redact(str(value))))


def duration(seconds: object) -> str:
    """``3725`` -> ``1h 2m``; unknown -> ``-``."""
    if not isinstance(seconds, int | float) or math.isnan(seconds):
        return "-"
    total = int(max(0, seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    if days or hours or (minutes and not secs):
        return " ".join(p for p in parts if p)
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def bar(fraction: object, width: int = 20) -> Safe:
    share = float(fraction) if isinstance(fraction, int | float) else 0.0
    filled = round(max(0.0, min(1.0, share)) * width)
    return Safe("▰" * filled + "▱" * (width - filled))


def pct(fraction: object) -> str:
    share = float(fraction) if isinstance(fraction, int | float) else 0.0
    return f"{share * 100:.0f}%"


def state_icon(state: object) -> Safe:
    return Safe(_ICONS.get(str(state), ":grey_question:"))


def counts_line(counts: object) -> Safe:
    """``✅ 13 succeeded · ❌ 2 failed · ...``, finished states first; unknown states kept."""
    if not isinstance(counts, Mapping):
        return Safe("")
    named = {str(state): n for state, n in counts.items()}
    return Safe(
        " · ".join(
            f"{_COUNT_ICONS.get(state, '•')} {int(named[state])} {escape_value(state_label(state))}"
            for state in finished_first(named)
            if named[state]
        )
    )


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered notification; ``error`` says why the plain fallback was used."""

    message: Message
    error: str | None = None


class TemplateTimeout(RuntimeError):
    """A template ran longer than its time budget."""


class Budget:
    """A time budget for one render, checked wherever a template does work: each call,
    attribute and item it looks up, each step of ``range``. A runaway template (nested loops,
    a huge ``range``) then stops with :class:`TemplateTimeout` instead of stalling
    ``watcher run``."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.deadline = math.inf

    @contextmanager
    def running(self) -> Iterator[None]:
        self.deadline = self.clock() + self.seconds
        try:
            yield
        finally:
            self.deadline = math.inf

    def check(self) -> None:
        if self.clock() > self.deadline:
            raise TemplateTimeout(f"took longer than {self.seconds:g}s")

    def range(self, *args: int) -> Iterator[int]:
        numbers = range(*args)
        if len(numbers) > MAX_RANGE:
            raise OverflowError(f"range of {len(numbers)} numbers (at most {MAX_RANGE})")
        for number in numbers:
            self.check()
            yield number


class _BudgetedEnvironment(SandboxedEnvironment):
    """The sandbox, checking the render's :class:`Budget` on every lookup and call."""

    budget: Budget

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.budget.check()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.budget.check()
        return super().getitem(obj, argument)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        self.budget.check()
        return super().call(__context, __obj, *args, **kwargs)


def _where(name: str, exc: BaseException) -> str:
    """``card.j2, line 3``: the template line the error came from (Jinja2 maps the frames of
    compiled templates back to template lines), else the template's name."""
    line = getattr(exc, "lineno", None) if isinstance(exc, jinja2.TemplateSyntaxError) else None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"{name}, line {line}" if line else name


class Renderer:
    """Renders notification payloads with the packaged templates and the user's overrides."""

    def __init__(
        self, override_dir: Path | None = None, *, context: Mapping[str, Any] | None = None
    ) -> None:
        if override_dir is not None and not override_dir.is_dir():
            raise ConfigError(f"templates.dir: {override_dir} is not a directory")
        paths = [str(p) for p in (override_dir, packaged_templates()) if p is not None]
        self.env = _BudgetedEnvironment(
            loader=jinja2.FileSystemLoader(paths),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            finalize=_finalize,
            trim_blocks=False,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.budget = Budget(RENDER_BUDGET)
        self.env.budget = self.budget
        self.env.globals["range"] = self.budget.range
        self.env.filters.update(
            duration=duration,
            bar=bar,
            pct=pct,
            state_icon=state_icon,
            counts_line=counts_line,
            when=lambda value: Safe(slack_date(value)),
            links=lambda templates, **values: Safe(link_line(templates, **values)),
        )
        # What configuration adds to every message: keb.name, [links], the on-call mention.
        self.env.globals.update(
            {"keb_name": None, "mention": None, "links": {"orchestration": {}, "operation": {}}}
        )
        given = dict(context or {})
        if given.get("mention"):  # validated by the loader; the only mention a message gets
            given["mention"] = Safe(given["mention"])
        if given.get("keb_name"):  # configuration: shown as written (escaped, one line)
            given["keb_name"] = Safe(escape(inert(str(given["keb_name"]))))
        self.env.globals.update(given)

    def template_for(self, kind: str) -> str:
        try:
            return TEMPLATES[kind]
        except KeyError:
            raise ConfigError(f"no template for notification kind {kind!r}") from None

    def render(self, kind: str, payload: Mapping[str, Any]) -> Rendered:
        """Render ``kind``; on any failure (an error, a template over its time budget) the
        plain fallback message and the error in one line, naming the template and line."""
        name = self.template_for(kind)
        if payload.get("fleet") and kind in FLEET_TEMPLATES:
            name = FLEET_TEMPLATES[kind]
        try:
            template = self.env.get_template(name)
            with self.budget.running():
                markup = template.render(**payload)
            return Rendered(to_message(markup))
        except Exception as exc:  # a template must never stop delivery: fall back, say why
            error = f"template {_where(name, exc)}: {type(exc).__name__}: {exc}"
        return Rendered(plain_message(fallback_text(kind, payload)), " ".join(error.split()))

    def check(self, samples: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Render every template against sample data; the errors, one line each."""
        errors = []
        for kind in TEMPLATES:
            rendered = self.render(kind, samples[kind])
            if rendered.error and rendered.error not in errors:  # kinds may share a template
                errors.append(rendered.error)
        return errors


def fallback_text(kind: str, payload: Mapping[str, Any]) -> str:
    """A plain message built without templates, from whatever the payload has."""
    orch = payload.get("orchestration")
    orch_id = orch.get("id", "?") if isinstance(orch, Mapping) else "?"
    state = orch.get("state", "") if isinstance(orch, Mapping) else ""
    done, total = payload.get("done"), payload.get("total")
    parts = [f"keb-watcher {kind.replace('_', ' ')}: orchestration {orch_id}"]
    if payload.get("fleet"):
        parts = [f"keb-watcher {kind.replace('_', ' ')}: fleet {payload['fleet']}"]
    if state:
        parts.append(f"is {state}")
    if isinstance(done, int) and isinstance(total, int):
        parts.append(f"({done} of {total} operations finished)")
    keb = payload.get("keb")
    if isinstance(keb, Mapping) and keb.get("error"):
        parts = [f"keb-watcher {kind.replace('_', ' ')}: {keb['error']}"]
    return escape_value(redact(" ".join(parts)))
