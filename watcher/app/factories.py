"""What the composition root builds from a configuration: the KEB client and its token, the
Slack destination. Faces do not call these; :class:`watcher.app.Watcher` does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from watcher.config import Config
from watcher.errors import ConfigError
from watcher.keb import CommandToken, FileToken, KebClient, RetryPolicy, StaticToken, TokenProvider
from watcher.keb.timing import ExchangeHook, timed_transport

if TYPE_CHECKING:
    from watcher.keb.runtimes import RuntimesClient
    from watcher.notify.slack import Destination


def token_provider(config: Config) -> TokenProvider:
    config.require("keb")
    keb = config.keb
    if keb.token:
        return StaticToken(keb.token.reveal())
    if keb.token_file is not None:
        return FileToken(keb.token_file)
    if keb.token_command:
        return CommandToken(keb.token_command)
    raise ConfigError(
        "keb: no token configured: set keb.token, keb.token_file or keb.token_command "
        "(or the KEB_TOKEN environment variable)"
    )


def keb_client(config: Config, *, observe: ExchangeHook | None = None) -> KebClient:
    """The KEB client; ``observe`` sees every HTTP exchange (status class, seconds)."""
    transport = timed_transport(observe, config.keb.concurrency) if observe else None
    return KebClient(
        config.keb.url,
        token_provider(config),
        timeout=config.keb.timeout,
        concurrency=config.keb.concurrency,
        retry=RetryPolicy(attempts=config.keb.retries),
        transport=transport,
        ca_file=config.keb.ca_file,
    )


def destination(config: Config) -> Destination | None:
    """The Slack destination the configuration names, or None when Slack is not configured."""
    config.require("slack")
    slack = config.slack
    if not (slack.token or slack.webhook_url):
        return None  # and slack-sdk is never loaded
    from watcher.notify.slack import BotSlack, WebhookSlack

    if slack.token:
        return BotSlack(slack.token.reveal(), slack.base_url)
    assert slack.webhook_url is not None
    return WebhookSlack(slack.webhook_url.reveal())


def runtimes_client(config: Config) -> RuntimesClient:
    """The ``/runtimes`` client (fleet watch) on the same KEB URL and token."""
    from watcher.keb.runtimes import RuntimesClient

    return RuntimesClient(
        config.keb.url,
        token_provider(config),
        timeout=config.keb.timeout,
        concurrency=config.keb.concurrency,
        retry=RetryPolicy(attempts=config.keb.retries),
        ca_file=config.keb.ca_file,
    )
