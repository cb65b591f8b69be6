"""The configuration as values: frozen dataclasses, one per section of the TOML file.

Each setting is declared once, as a field whose metadata says how the loader reads it
(``kind``) and what else it checks; :mod:`watcher.config.loader` loads files into these records,
validates them and describes them. :class:`Secret` values print as ``***``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from watcher.core.kinds import ROUTE_KEYS

#: Notification kinds that ``[slack] routes`` may send to their own channel (core/kinds.py).
NOTIFICATION_KINDS: Final = ROUTE_KEYS
#: Orchestration types KEB creates (docs/keb-api.md §3.1), for ``poll.discover_types``.
ORCHESTRATION_TYPES: Final = ("upgradeCluster", "upgradeKyma")
#: ``kcp`` accepts ``inprogress`` for the state with a space (docs/keb-api.md §4.1).


class Secret:
    """A secret string that never shows itself: ``str``, ``repr`` and ``format`` give ``***``.

    >>> token = Secret("xoxb-123")
    >>> f"{token} {token!r}", token.reveal(), bool(Secret(""))
    ('*** ***', 'xoxb-123', False)
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that sends it (an HTTP header)."""
        return self._value

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return "***"

    def __format__(self, format_spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def _kind(kind: str, **rules: Any) -> Mapping[str, Any]:
    """Field metadata: how the loader reads the value (``kind``) and extra ``rules``."""
    return {"kind": kind, **rules}


def _empty_mapping() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class KebConfig:
    """Where KEB is and how to authenticate: at most one of the three token sources."""

    url: str = field(metadata=_kind("url"))  #: http(s), stored without a trailing slash
    token: Secret | None = field(default=None, metadata=_kind("secret"))
    token_file: Path | None = field(default=None, metadata=_kind("path"))
    token_command: str | None = field(default=None, metadata=_kind("text"))
    timeout: float = field(default=30.0, metadata=_kind("duration", positive=True))
    concurrency: int = field(default=8, metadata=_kind("count"))
    retries: int = field(default=4, metadata=_kind("count"))
    name: str | None = field(default=None, metadata=_kind("text"))  #: landscape label: prod-eu
    #: PEM bundle of the CAs to trust for KEB (else $SSL_CERT_FILE, else the system's).
    ca_file: Path | None = field(
        default=None, metadata=_kind("path", exists=True, certificates=True)
    )


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """The SQLite database, and how long history outlives tracking (seconds)."""

    path: Path = field(default=Path("watcher.db"), metadata=_kind("path"))
    retention: float = field(default=30 * 86400.0, metadata=_kind("duration"))


@dataclass(frozen=True, slots=True)
class PollConfig:
    """When and what to poll. ``interval`` and ``cron`` are alternatives; times in seconds.

    ``alert_after``: KEB unreachable or rejecting for longer than this gives one alert.
    ``full_sweep_every`` ``0`` means every cycle. Empty ``discover_*`` tuples mean "any".
    ``retry_window``: a ``failed`` orchestration stays polled this long after its final summary
    was delivered, since operators retry failed orchestrations (docs/keb-api.md §12.4).
    """

    interval: float = field(default=60.0, metadata=_kind("duration", positive=True))
    cron: str | None = field(default=None, metadata=_kind("cron"))
    jitter: float = field(default=5.0, metadata=_kind("duration"))
    full_sweep_every: float = field(default=1800.0, metadata=_kind("duration"))
    concurrency: int = field(default=4, metadata=_kind("count"))  #: orchestrations at once
    discover: bool = field(default=False, metadata=_kind("bool"))
    discover_states: tuple[str, ...] = field(default=(), metadata=_kind("states"))
    discover_types: tuple[str, ...] = field(default=(), metadata=_kind("types"))
    alert_after: float = field(default=600.0, metadata=_kind("duration"))
    retry_window: float = field(default=7 * 86400.0, metadata=_kind("duration"))
    #: An operation ``in progress``, or an orchestration ``canceling``, ``retrying`` or
    #: ``pending``, this long is stuck: one ``stuck`` alert, ``unstuck`` when it moves. 0: off.
    stuck_after: float = field(default=2 * 3600.0, metadata=_kind("duration"))
    #: The same for the operations of a selection (fleet watch): an update may legitimately
    #: take up to three hours, so ``4h`` by default. 0: off.
    fleet_stuck_after: float = field(default=4 * 3600.0, metadata=_kind("duration"))


@dataclass(frozen=True, slots=True)
class SlackConfig:
    """Bot token mode (``token`` + ``channel``, optional ``routes``) or ``webhook_url`` mode.

    ``routes`` maps a kind of :data:`NOTIFICATION_KINDS` to the channel that gets it.
    """

    token: Secret | None = field(default=None, metadata=_kind("secret"))
    channel: str | None = field(default=None, metadata=_kind("channel"))  #: name or ID
    webhook_url: Secret | None = field(default=None, metadata=_kind("secret_url"))
    base_url: str = field(default="https://slack.com/api/", metadata=_kind("base_url"))
    routes: Mapping[str, str] = field(default_factory=_empty_mapping, metadata=_kind("routes"))
    #: a notification failing for a transient reason (not a 429) this long is given up
    give_up_after: float = field(default=86400.0, metadata=_kind("duration"))
    #: at most one failure digest per orchestration this often; 0 = every cycle
    digest_interval: float = field(default=600.0, metadata=_kind("duration"))
    #: a Slack mention put in failed outcomes and the KEB alert only: ``<!subteam^S0123ABC>``
    mention_on_failure: str | None = field(default=None, metadata=_kind("mention"))


@dataclass(frozen=True, slots=True)
class LinksConfig:
    """Links shown in messages: label = URL template with ``{orchestration_id}`` (on the card,
    digests and outcomes) or ``{operation_id}``, ``{runtime_id}``, ``{shoot}`` (per failed
    operation in digests). None without configuration."""

    orchestration: Mapping[str, str] = field(
        default_factory=_empty_mapping, metadata=_kind("links")
    )
    operation: Mapping[str, str] = field(default_factory=_empty_mapping, metadata=_kind("links"))


@dataclass(frozen=True, slots=True)
class TemplatesConfig:
    """A directory of templates that override the packaged ones, file by file."""

    dir: Path | None = field(default=None, metadata=_kind("path"))


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """The HTTP endpoint of ``watcher run`` (``host:port``: health, metrics, the dashboard),
    when it reports ready, and the optional tokens of the dashboard and of ``/metrics``."""

    listen: str | None = field(default=None, metadata=_kind("listen"))
    ready_after_intervals: float = field(default=3.0, metadata=_kind("number"))
    #: When set, the dashboard's pages and API need it (bearer header or the login form).
    dashboard_token: Secret | None = field(default=None, metadata=_kind("secret"))
    #: When set, ``/metrics`` needs it as a bearer token (``/healthz``, ``/readyz`` stay open).
    metrics_token: Secret | None = field(default=None, metadata=_kind("secret"))
    #: Where people reach the dashboard (https://keb-watcher.example.com): Slack messages
    #: link to the orchestration's page there, and https makes the session cookie ``Secure``.
    public_url: str | None = field(default=None, metadata=_kind("url"))


@dataclass(frozen=True, slots=True)
class Config:
    """Everything keb-watcher is configured with. ``source`` is the file, if any.

    ``origins`` maps each dotted key to where its value came from (``file``,
    ``file, ${VAR}``, ``env KEB_URL``, ``default``), for :func:`describe`.

    ``unresolved`` maps each key left unset because its ``${VAR}`` is (a configuration loaded
    for a command that reads only the database and templates) to the one-line error a command
    that needs it raises: :meth:`require`.
    """

    keb: KebConfig
    storage: StorageConfig
    poll: PollConfig
    slack: SlackConfig
    links: LinksConfig
    templates: TemplatesConfig
    service: ServiceConfig
    source: Path | None
    origins: Mapping[str, str] = field(default_factory=_empty_mapping, repr=False, compare=False)
    unresolved: Mapping[str, str] = field(default_factory=_empty_mapping, repr=False, compare=False)

    def require(self, section: str) -> None:
        """Raise the :class:`~watcher.errors.ConfigError` of the first key of ``section``
        whose ``${VAR}`` is unset (see ``unresolved``); a command that uses the section calls
        this before it does."""
        from watcher.errors import ConfigError

        for key, error in self.unresolved.items():
            if key.startswith(f"{section}."):
                raise ConfigError(error)


#: The file's sections and the dataclass each one fills, in file order.
SECTIONS: Final[Mapping[str, type[Any]]] = MappingProxyType(
    {
        "keb": KebConfig,
        "storage": StorageConfig,
        "poll": PollConfig,
        "slack": SlackConfig,
        "links": LinksConfig,
        "templates": TemplatesConfig,
        "service": ServiceConfig,
    }
)
