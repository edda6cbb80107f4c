"""The configuration: the TOML sections and the loader (``schema``), single-value checks (``validators``), rules
spanning keys and warnings (``rules``), secrets from the environment and the env file (``secrets``), where files
live (``paths``), problems with file:line (``problems``), cadence rules (``cadence``)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.config.paths import (
        CONFIG_ENV,
        ENV_FILE_NAME,
        default_config_path,
        default_store_path,
        find_config_path,
        store_path_only,
    )
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
    "store_path_only",
    "webhook_token",
    "webhook_url",
    "write_env_file",
    "write_starter_config",
]

# Each public name's module, imported on first use (PEP 562): `digest status` reads the store path without
# loading pydantic and the validators.
_WHERE = {
    "CONFIG_ENV": "digest.config.paths",
    "Config": "digest.config.schema",
    "ConfigError": "digest.errors",
    "ConfigProblem": "digest.config.problems",
    "ConfigValidationError": "digest.config.problems",
    "DigestSection": "digest.config.schema",
    "ENV_FILE_NAME": "digest.config.paths",
    "FeedSection": "digest.config.schema",
    "MailSection": "digest.config.schema",
    "Profile": "digest.models",
    "STARTER_CONFIG": "digest.config.problems",
    "ServerSection": "digest.config.schema",
    "SmtpSection": "digest.config.schema",
    "UserSection": "digest.config.schema",
    "WEBHOOK_KINDS": "digest.config.schema",
    "WebhookSection": "digest.config.schema",
    "author_notes": "digest.config.rules",
    "default_config_path": "digest.config.paths",
    "default_store_path": "digest.config.paths",
    "environment": "digest.config.secrets",
    "environment_problems": "digest.config.secrets",
    "find_config_path": "digest.config.paths",
    "load_config": "digest.config.schema",
    "organization_warnings": "digest.config.rules",
    "read_env_file": "digest.config.problems",
    "secret": "digest.config.secrets",
    "smtp_password": "digest.config.secrets",
    "store_path_only": "digest.config.paths",
    "webhook_token": "digest.config.secrets",
    "webhook_url": "digest.config.secrets",
    "write_env_file": "digest.config.problems",
    "write_starter_config": "digest.config.problems",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
