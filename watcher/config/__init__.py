"""Configuration: frozen settings records (:mod:`~watcher.config.settings`) and the TOML
loader that builds them (:mod:`~watcher.config.loader`)."""

from watcher.config.describe import describe, open_service_warning
from watcher.config.loader import config_from_env, default_config_path, load_config
from watcher.config.settings import (
    NOTIFICATION_KINDS,
    ORCHESTRATION_TYPES,
    SECTIONS,
    Config,
    KebConfig,
    LinksConfig,
    PollConfig,
    Secret,
    ServiceConfig,
    SlackConfig,
    StorageConfig,
    TemplatesConfig,
)

__all__ = [
    "NOTIFICATION_KINDS",
    "ORCHESTRATION_TYPES",
    "SECTIONS",
    "Config",
    "KebConfig",
    "LinksConfig",
    "PollConfig",
    "Secret",
    "ServiceConfig",
    "SlackConfig",
    "StorageConfig",
    "TemplatesConfig",
    "config_from_env",
    "default_config_path",
    "describe",
    "load_config",
    "open_service_warning",
]
