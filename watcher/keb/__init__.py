"""Talking to the Kyma Environment Broker: the HTTP client, bearer tokens and retry policy.

This package is the only part of keb-watcher that imports httpx; everything it raises is a
:class:`watcher.errors.WatcherError`.
"""

from watcher.keb.auth import CommandToken, FileToken, StaticToken, TokenProvider
from watcher.keb.client import KebClient
from watcher.keb.retry import RetryPolicy, parse_retry_after
from watcher.keb.session import RequestStats

__all__ = [
    "CommandToken",
    "FileToken",
    "KebClient",
    "RequestStats",
    "RetryPolicy",
    "StaticToken",
    "TokenProvider",
    "parse_retry_after",
]
