"""The configuration: a TOML file (see ``config.example.toml``), the environment, and defaults.

:func:`load_config` reads the file with :mod:`tomllib`, substitutes ``${VAR}`` from the
environment in every string (``$${`` is a literal ``${``), checks every key against the frozen
dataclasses of :mod:`watcher.config.settings` and returns a :class:`Config`. Anything wrong
raises one :class:`~watcher.errors.ConfigError` whose one-line message names the file and
the dotted key (or the environment variable)::

    watcher.toml: poll.intervall: unknown key (did you mean 'interval'?)
    watcher.toml: keb.token: ${KEB_TOKEN} names an unset environment variable

Secrets (``keb.token``, ``slack.token``, ``slack.webhook_url``) are :class:`Secret` values that
print as ``***``; no message, ``repr`` or :func:`describe` line ever shows them.

Relative paths are resolved against the directory holding the config file, so a cron job finds
the same database from any working directory. ``~`` is expanded.

Each setting is declared once, as a dataclass field whose metadata says how to read it
(``kind``); the loader, :func:`describe` and the tests that keep ``config.example.toml``
complete all work from those declarations.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import UTC
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

from watcher.clock import utcnow
from watcher.config import messages
from watcher.config.checks import check_ca_file, is_ipv6, suggest
from watcher.config.describe import describe, exposed_secret_warning, redact_url
from watcher.config.scope import unused_by_local_commands
from watcher.config.settings import (
    NOTIFICATION_KINDS,
    ORCHESTRATION_TYPES,
    SECTIONS,
    Config,
    Secret,
)
from watcher.core.durations import parse_duration, type_phrase
from watcher.core.models import KNOWN_STATES
from watcher.errors import ConfigError
from watcher.redact import MIN_SECRET

log = logging.getLogger(__name__)

__all__ = ["config_from_env", "default_config_path", "describe", "load_config"]


_STATE_ALIASES: Final = {"inprogress": "in progress"}

#: Variables that stand in for the file's keb.url/keb.token (docs/contract.md §2).
_ENV_KEYS: Final = {"KEB_URL": "keb.url", "KEB_TOKEN": "keb.token"}


def default_config_path(env: Mapping[str, str]) -> Path:
    """``$WATCHER_CONFIG`` when set and not empty, else ``./watcher.toml``."""
    return _expand_user(env.get("WATCHER_CONFIG") or "watcher.toml", env)


def load_config(
    path: Path | None,
    env: Mapping[str, str],
    *,
    require_file: bool = True,
    env_overrides: bool = False,
    local: bool = False,
) -> Config:
    """Read, check and return the configuration; raise :class:`ConfigError` on any problem.

    ``path`` ``None`` means :func:`default_config_path`. ``env`` is the environment (pass
    ``os.environ``), read for ``${VAR}`` and, with ``env_overrides``, for ``KEB_URL`` and
    ``KEB_TOKEN``, which then win over the file's ``keb.url`` and ``keb.token`` (``KEB_TOKEN``
    also replaces a ``token_file`` or ``token_command``). With ``require_file=False`` a missing
    file is no error when ``KEB_URL`` is set: the result is :func:`config_from_env`.

    With ``local`` (a command that reads only the database and templates), a ``${VAR}`` that
    names an unset variable in a connection setting of ``[keb]``, ``[slack]`` or ``[service]``
    is no error: the setting is left unset and its error kept in ``Config.unresolved``, raised
    by :meth:`Config.require` if the command does reach for it.
    """
    path = default_config_path(env) if path is None else path
    label = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        if not require_file and env.get("KEB_URL"):
            return config_from_env(env)
        hint = "" if require_file else " (or set KEB_URL and KEB_TOKEN)"
        raise ConfigError(f"{label}: cannot read: {exc.strerror}{hint}") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror or exc}") from None
    document = _parse_toml(data, label)
    overrides = {}
    if env_overrides:
        overrides = {key: var for var, key in _ENV_KEYS.items() if env.get(var)}
    loader = _Loader(label, env, Path(os.path.abspath(path)).parent, overrides, local=local)
    config = loader.load(document, source=Path(os.path.abspath(path)))
    warning = exposed_secret_warning(path, document)
    if warning:
        log.warning("%s", warning)
    return config


def config_from_env(env: Mapping[str, str]) -> Config:
    """A configuration with no file: ``KEB_URL`` (required), ``KEB_TOKEN`` and defaults.

    Relative default paths are resolved against the working directory.
    """
    if not env.get("KEB_URL"):
        raise ConfigError("KEB_URL: not set (needed when there is no config file)")
    overrides = {key: var for var, key in _ENV_KEYS.items() if env.get(var)}
    return _Loader(None, env, Path.cwd(), overrides).load({}, source=None)


def _parse_toml(data: bytes, label: str) -> dict[str, Any]:
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{label}: line {line}: invalid TOML: not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError carries the position only in its message.
        message = str(exc)
        found = re.search(r" \(at line (\d+), column \d+\)$", message)
        if found:
            line, message = int(found[1]), message[: found.start()]
        else:
            line, message = text.count("\n") + 1, message.removesuffix(" (at end of document)")
        raise ConfigError(f"{label}: line {line}: invalid TOML: {message}") from None


_REFERENCE: Final = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VARIABLE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHANNEL_ID: Final = re.compile(r"[CGD][A-Z0-9]{6,}")
_CHANNEL_NAME: Final = re.compile(r"#?[\w.-]{1,80}")
_HOST: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")


#: Keys that were once valid, and what replaced them (an error that says so, not "unknown").
RETIRED: Final = {
    "slack.max_attempts": "no longer supported: notifications give up on time, not on a count; "
    'remove it and set slack.give_up_after (a duration, default "24h") if needed',
}


class _Loader:
    """One load: checks the document against :data:`SECTIONS` and builds the dataclasses."""

    def __init__(
        self,
        label: str | None,
        env: Mapping[str, str],
        base: Path,
        overrides: dict[str, str],
        *,
        local: bool = False,
    ) -> None:
        self.label = label
        self.env = env
        self.base = base
        self.overrides = overrides  # dotted key -> the environment variable that replaces it
        self.origins: dict[str, str] = {}
        self.local = local
        #: dotted key -> the error of its unset ${VAR}, for keys a local command leaves unset
        self.unresolved: dict[str, str] = {}

    def where(self, key: str) -> str:
        if key in self.overrides:
            return self.overrides[key]
        return f"{self.label}: {key}" if self.label else key

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where(key)}: {problem}")

    def load(self, document: dict[str, Any], *, source: Path | None) -> Config:
        self.check_names(document)
        # A value the environment replaces is not read, so its ${VAR} need not be set.
        replaced = set(self.overrides)
        if "keb.token" in replaced:
            replaced |= {"keb.token_file", "keb.token_command"}
        tables = {
            name: {
                key: value
                if f"{name}.{key}" in replaced
                else self.interpolate(f"{name}.{key}", value)
                for key, value in table.items()
            }
            for name, table in document.items()
        }
        self.check_token_sources(tables.get("keb", {}))
        self.apply_overrides(tables.setdefault("keb", {}))
        sections = {name: self.section(name, tables.get(name, {})) for name in SECTIONS}
        return Config(
            **sections,
            source=source,
            origins=MappingProxyType(self.origins),
            unresolved=MappingProxyType(self.unresolved),
        )

    # -- names, variables and the environment ------------------------------------------------

    def check_names(self, document: dict[str, Any]) -> None:
        for name, table in document.items():
            if name not in SECTIONS:
                what = "section" if isinstance(table, dict) else "key"
                raise self.error(name, f"unknown {what}{suggest(name, list(SECTIONS), keys=True)}")
            if not isinstance(table, dict):
                raise self.error(name, f"expected a table [{name}], got {type_phrase(table)}")
            known = [f.name for f in dataclasses.fields(SECTIONS[name])]
            for key in table:
                if f"{name}.{key}" in RETIRED:
                    raise self.error(f"{name}.{key}", RETIRED[f"{name}.{key}"])
                if key not in known:
                    raise self.error(
                        f"{name}.{key}", f"unknown key{suggest(key, known, keys=True)}"
                    )

    def interpolate(self, key: str, value: Any) -> Any:
        """Substitute ``${VAR}`` in every string of ``value`` and record where it came from."""
        used: dict[str, None] = {}
        result = self._substitute(key, value, used)
        self.origins[key] = "".join(["file", *(f", ${{{name}}}" for name in used)])
        return result

    def _substitute(self, key: str, value: Any, used: dict[str, None]) -> Any:
        if isinstance(value, list):
            return [self._substitute(key, item, used) for item in value]
        if isinstance(value, dict):
            return {k: self._substitute(f"{key}.{k}", v, used) for k, v in value.items()}
        if not isinstance(value, str):
            return value

        def replace(match: re.Match[str]) -> str:
            if match[0] == "$${":
                return "${"
            name = match[1]
            if name is None:
                raise self.error(key, "unterminated '${' (write '$${' for a literal '${')")
            if not _VARIABLE.fullmatch(name):
                raise self.error(key, "bad '${...}' reference (a variable name is A-Z, 0-9, _)")
            if name not in self.env:
                error = self.error(key, f"${{{name}}} names an unset environment variable")
                if not (self.local and unused_by_local_commands(key)):
                    raise error
                self.unresolved.setdefault(key, str(error))
                return match[0]
            used[name] = None
            return self.env[name]

        return _REFERENCE.sub(replace, value)

    def check_token_sources(self, keb: dict[str, Any]) -> None:
        sources = [key for key in ("token", "token_file", "token_command") if key in keb]
        if len(sources) > 1:
            first, second = sources[:2]
            raise self.error(
                f"keb.{second}",
                f"cannot be combined with keb.{first} (set one of keb.token, keb.token_file, "
                "keb.token_command)",
            )

    def apply_overrides(self, keb: dict[str, Any]) -> None:
        for key, var in self.overrides.items():
            name = key.removeprefix("keb.")
            over = ", overrides the file" if name in keb else ""
            keb[name] = self.env[var]
            self.origins[key] = f"env {var}{over}"
            if key == "keb.token":
                for other in ("token_file", "token_command"):
                    if keb.pop(other, None) is not None:
                        self.origins[f"keb.{other}"] = f"ignored: {var} is set"

    # -- values ------------------------------------------------------------------------------

    def section(self, name: str, table: dict[str, Any]) -> Any:
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(SECTIONS[name]):
            key = f"{name}.{spec.name}"
            if key in self.unresolved:
                # Unset for this command; a required string keeps its ${VAR} text, never used.
                required = spec.default is dataclasses.MISSING
                values[spec.name] = table[spec.name] if required else spec.default
                continue
            if spec.name in table:
                values[spec.name] = self.convert(key, spec.metadata, table[spec.name])
                continue
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise self.error(key, "required key missing")
            self.origins.setdefault(key, "default")
            if spec.metadata["kind"] == "path" and spec.default is not None:
                values[spec.name] = self.path(key, str(spec.default))
        self.check_section(name, table, values)
        return SECTIONS[name](**values)

    def check_section(self, name: str, table: dict[str, Any], values: dict[str, Any]) -> None:
        if name == "poll" and "interval" in table and "cron" in table:
            raise self.error("poll.cron", "cannot be combined with poll.interval (set one)")
        if name != "slack":
            return
        unset = {key.removeprefix("slack.") for key in self.unresolved if key.startswith("slack.")}
        values = {**values, **dict.fromkeys(unset, "")}  # given, though left unset here
        if "token" in values and "webhook_url" in values:
            raise self.error(
                "slack.webhook_url", "cannot be combined with slack.token (bot token or webhook)"
            )
        if "token" in values and "channel" not in values:
            raise self.error("slack.channel", "required key missing (slack.token is set)")
        for key in ("channel", "routes"):
            if values.get(key) and "token" not in values:
                raise self.error(
                    f"slack.{key}", "only used with slack.token (a webhook has its own channel)"
                )

    def convert(self, key: str, meta: Mapping[str, Any], value: Any) -> Any:
        kind = meta["kind"]
        if kind == "secret":
            return Secret(self.secret(key, value))
        if kind == "secret_url":
            return Secret(self.url(key, value, secret=True))
        if kind == "url":
            return self.url(key, value).rstrip("/")
        if kind == "base_url":
            return self.url(key, value).rstrip("/") + "/"
        if kind == "text":
            return self.text(key, value)
        if kind == "path":
            path = self.path(key, self.text(key, value))
            if meta.get("exists") and not path.is_file():
                raise self.error(key, f"{path}: no such file")
            if meta.get("certificates"):
                check_ca_file(path, lambda problem: self.error(key, problem))
            return path
        if kind == "duration":
            seconds = parse_duration(value, key=self.where(key))
            if meta.get("positive") and seconds <= 0:
                raise self.error(key, f"must be more than 0s, got {value!r}")
            return seconds
        if kind in ("count", "number", "bool"):
            return self.scalar(key, kind, value)
        if kind == "cron":
            return self.cron(key, self.text(key, value))
        if kind == "channel":
            return self.channel(key, value)
        if kind in ("states", "types"):
            return self.choices(key, kind, value)
        if kind == "routes":
            return self.routes(key, value)
        if kind == "listen":
            return self.listen(key, self.text(key, value))
        if kind in ("links", "mention"):
            return getattr(messages, kind)(key, value, self.error)
        raise AssertionError(f"{key}: no reader for kind {kind!r}")

    def text(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {type_phrase(value)}")
        if not value.strip():
            raise self.error(key, "must not be empty")
        return value

    def secret(self, key: str, value: Any) -> str:
        text = self.text(key, value).strip()
        if len(text) < MIN_SECRET:
            # Masking a very short secret would mask those characters in every line.
            raise self.error(
                key, f"too short ({len(text)} characters; a real token has at least {MIN_SECRET})"
            )
        return text

    def url(self, key: str, value: Any, *, secret: bool = False) -> str:
        text = self.text(key, value)
        try:
            parts = urlsplit(text)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            valid = valid and parts.port != 0 and not any(c.isspace() for c in text)
        except ValueError:  # bad IPv6 literal or port
            valid = False
        shown = " (value hidden)" if secret else f", got {redact_url(text)!r}"
        if not valid:
            raise self.error(key, f"expected an http(s) URL with a host{shown}")
        if parts.query or parts.fragment:
            raise self.error(key, f"must not have a query or fragment{shown}")
        if parts.username is not None or parts.password is not None:
            raise self.error(
                key, "must not contain credentials (user:password@); use a token setting instead"
            )
        return text

    def path(self, key: str, text: str) -> Path:
        path = _expand_user(text, self.env)
        return path if path.is_absolute() else Path(os.path.normpath(self.base / path))

    def scalar(self, key: str, kind: str, value: Any) -> Any:
        if kind == "bool":
            if not isinstance(value, bool):
                raise self.error(key, f"expected true or false, got {type_phrase(value)}")
            return value
        allowed = int if kind == "count" else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            wanted = "an integer" if kind == "count" else "a number"
            raise self.error(key, f"expected {wanted}, got {type_phrase(value)}")
        if not value > 0 or value == float("inf"):
            raise self.error(key, f"must be more than 0, got {value!r}")
        return value if kind == "count" else float(value)

    def cron(self, key: str, text: str) -> str:
        from apscheduler.triggers.cron import CronTrigger  # only configurations with a cron

        try:
            trigger = CronTrigger.from_crontab(text, timezone=UTC)
        except ValueError as exc:
            raise self.error(key, f"bad cron expression {text!r} ({exc})") from None
        if trigger.get_next_fire_time(None, utcnow()) is None:
            raise self.error(key, f"cron expression {text!r} never fires (no future date matches)")
        return text

    def channel(self, key: str, value: Any) -> str:
        text = self.text(key, value)
        if _CHANNEL_ID.fullmatch(text):
            return text
        if not _CHANNEL_NAME.fullmatch(text):
            raise self.error(
                key, f"bad channel {text!r} (a name like '#kyma-upgrades' or an ID like 'C0123ABC')"
            )
        if text != text.lower():
            raise self.error(key, f"bad channel {text!r} (Slack channel names are lowercase)")
        return text

    def choices(self, key: str, kind: str, value: Any) -> tuple[str, ...]:
        known = KNOWN_STATES if kind == "states" else ORCHESTRATION_TYPES
        noun = "state" if kind == "states" else "orchestration type"
        if not isinstance(value, list):
            raise self.error(key, f"expected a list of strings, got {type_phrase(value)}")
        chosen: list[str] = []
        for item in value:
            if not isinstance(item, str):
                raise self.error(key, f"expected a list of strings, got {type_phrase(item)} in it")
            item = _STATE_ALIASES.get(item, item) if kind == "states" else item
            if item not in known:
                hint = suggest(item, list(known)) or f" (known: {', '.join(known)})"
                raise self.error(key, f"unknown {noun} {item!r}{hint}")
            if item not in chosen:
                chosen.append(item)
        return tuple(chosen)

    def routes(self, key: str, value: Any) -> Mapping[str, str]:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table of kind = channel, got {type_phrase(value)}")
        for kind in value:
            if kind not in NOTIFICATION_KINDS:
                hint = suggest(kind, list(NOTIFICATION_KINDS))
                hint = hint or f" (known: {', '.join(NOTIFICATION_KINDS)})"
                raise self.error(f"{key}.{kind}", f"unknown notification kind{hint}")
        return MappingProxyType({k: self.channel(f"{key}.{k}", v) for k, v in value.items()})

    def listen(self, key: str, text: str) -> str:
        host, colon, port = text.rpartition(":")
        problem = None
        if not colon or not host:
            problem = "expected host:port, e.g. 127.0.0.1:9464, or 0.0.0.0:9464 for every interface"
        elif not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            problem = "the port must be a number from 1 to 65535"
        elif host.startswith("[") and host.endswith("]"):
            problem = None if is_ipv6(host[1:-1]) else "bad IPv6 address in brackets"
        elif ":" in host:
            problem = "write an IPv6 address in brackets, e.g. [::1]:9464"
        elif not _HOST.fullmatch(host):
            problem = "bad host name"
        if problem:
            raise self.error(key, f"bad address {text!r} ({problem})")
        return text


def _expand_user(text: str, env: Mapping[str, str]) -> Path:
    """Expand a leading ``~`` with ``$HOME`` from ``env`` (``~user`` as the OS does)."""
    if text == "~" or text.startswith("~/"):
        home = env.get("HOME") or str(Path.home())
        return Path(home + text[1:])
    return Path(os.path.expanduser(text))
