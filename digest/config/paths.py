"""Where the config and the state live: the platform folders, the config file search, paths relative to the file."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import platformdirs

from digest.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import ValidationInfo

__all__ = [
    "APP_NAME", "CONFIG_ENV", "ENV_FILE_NAME", "default_config_path", "default_store_path", "find_config_path",
    "platform_dir", "resolve_path",
]  # fmt: skip

APP_NAME = "paper-digest"
CONFIG_ENV = "DIGEST_CONFIG"
ENV_FILE_NAME = "env"  # the env file's default name, beside the config file


def platform_dir(kind: Literal["config", "data"], env: Mapping[str, str]) -> Path:
    """The per-user folder for ``kind``; an XDG_*_HOME in ``env`` wins over the process environment."""
    xdg = env.get(f"XDG_{kind.upper()}_HOME", "").strip()
    if xdg and sys.platform not in ("win32", "darwin"):
        return Path(xdg) / APP_NAME
    return Path(platformdirs.user_config_dir(APP_NAME) if kind == "config" else platformdirs.user_data_dir(APP_NAME))


def resolve_path(value: Any, info: ValidationInfo, default: str | None) -> Any:
    """A path key's value resolved against the config file's folder (the validation context's ``base``); "" means
    ``default`` under the data dir (None: no path)."""
    ctx = info.context or {}
    if value == "" or value is None:
        if default is None:
            return None
        return platform_dir("data", ctx.get("env", {})) / default
    if isinstance(value, str):
        path = Path(value).expanduser()
        return path if path.is_absolute() else (Path(ctx.get("base", ".")) / path).resolve()
    return value  # not a string: let the type check report it


def default_config_path(env: Mapping[str, str]) -> Path:
    """Where `digest init` writes and the search ends: the platform config dir's config.toml."""
    return platform_dir("config", env) / "config.toml"


def default_store_path(env: Mapping[str, str]) -> Path:
    """The store used when no config names one: the platform data dir's digest.db."""
    return platform_dir("data", env) / "digest.db"


def find_config_path(cli_value: str | None, env: Mapping[str, str]) -> Path:
    """The config file: ``--config``, then ``$DIGEST_CONFIG``, then the platform config dir."""
    for value, origin in ((cli_value, "--config"), (env.get(CONFIG_ENV), f"${CONFIG_ENV}")):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"config file {path} (from {origin}) not found",
                    f"check {origin}, or run `digest init {path}` to write a starter config there",
                )
            return path
    path = default_config_path(env)
    if not path.is_file():
        raise ConfigError(
            f"no config file: not given with --config or ${CONFIG_ENV}, and {path} does not exist",
            f"run `digest init` to write a starter config to {path}",
        )
    return path


def store_path_only(path: Path, env: Mapping[str, str]) -> Path | None:
    """The store a config file names, read without validating the file (for `digest status`, which needs
    nothing else and should answer fast): None when the file cannot tell, so the caller loads it in full and
    reports what is wrong."""
    import tomllib

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    digest = raw.get("digest", {})
    value = digest.get("store", "") if isinstance(digest, dict) else None
    if not isinstance(value, str):
        return None
    if not value:
        return platform_dir("data", env) / "digest.db"
    store = Path(value).expanduser()
    return store if store.is_absolute() else (path.parent / store).resolve()
