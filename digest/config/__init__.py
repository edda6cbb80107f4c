"""The configuration: the TOML sections and the loader (``schema``), single-value checks (``validators``), rules
spanning keys and warnings (``rules``), secrets from the environment and the env file (``secrets``), where files
live (``paths``), problems with file:line (``problems``), cadence rules (``cadence``)."""

from __future__ import annotations

from digest.config.paths import CONFIG_ENV, ENV_FILE_NAME, default_config_path, default_store_path, find_config_path
from digest.config.problems import (
    STARTER_CONFIG,
    ConfigProblem,
    ConfigValidationError,
    read_env_file,
    write_env_file,
    write_starter_config,
)
from digest.config.rules import author_notes, organization_warnings
from digest.config.schema import (
    WEBHOOK_KINDS,
    Config,
    DigestSection,
    FeedSection,
    MailSection,
    ServerSection,
    SmtpSection,
    UserSection,
    WebhookSection,
    load_config,
)
from digest.config.secrets import (
    environment,
    environment_problems,
    secret,
    smtp_password,
    webhook_token,
    webhook_url,
)
from digest.errors import ConfigError
from digest.models import Profile

__all__ = [
    "CONFIG_ENV",
    "ENV_FILE_NAME",
    "STARTER_CONFIG",
    "WEBHOOK_KINDS",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "ConfigValidationError",
    "DigestSection",
    "FeedSection",
    "MailSection",
    "Profile",
    "ServerSection",
    "SmtpSection",
    "UserSection",
    "WebhookSection",
    "author_notes",
    "default_config_path",
    "default_store_path",
    "environment",
    "environment_problems",
    "find_config_path",
    "load_config",
    "organization_warnings",
    "read_env_file",
    "secret",
    "smtp_password",
    "webhook_token",
    "webhook_url",
    "write_env_file",
    "write_starter_config",
]
