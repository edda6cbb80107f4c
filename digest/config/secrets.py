"""Secrets: the config only names the variables that hold them; their values come from the process environment,
then from the env file ([digest].env_file). Each missing or unusable secret is one message saying which variable,
which env file was read and what to add, without ever echoing a value."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import NoReturn
from urllib.parse import urlsplit

from digest.config.problems import ConfigProblem, ConfigValidationError, Loc, file_text, located, read_env_file
from digest.config.schema import Config, WebhookSection
from digest.deliver.net import is_loopback_host
from digest.errors import ConfigError

__all__ = ["MIN_SECRET_CHARS", "environment", "environment_problems", "secret", "smtp_password", "webhook_token",
           "webhook_url"]  # fmt: skip

MIN_SECRET_CHARS = 16
MAX_WEBHOOK_URL = 2000

# (what is wrong, how to fix it)
_Problem = tuple[str, str]


def environment(config: Config, env: Mapping[str, str]) -> dict[str, str]:
    """The variables secrets are read from: the env file ([digest].env_file), overridden by ``env`` (the real
    process environment wins). cron, systemd and manual runs all read secrets through this one function."""
    required = "env_file" in config.digest.model_fields_set
    return {**read_env_file(config.digest.env_file, required=required), **env}


def _looked(config: Config, name: str, env: Mapping[str, str]) -> str:
    path = config.digest.env_file
    if name in env:
        return f"(from the process environment, which wins over {path})"
    return f"(looked in the environment and in {path}{'' if path.exists() else ', which does not exist'})"


def _env_path(config: Config) -> str:
    return shlex.quote(str(config.digest.env_file))


def _secret_problem(config: Config, merged: Mapping[str, str], env: Mapping[str, str]) -> _Problem | None:
    """What is wrong with the signing secret, or None."""
    name, path = config.digest.secret_env, _env_path(config)
    if not name:
        return "no signing secret configured", "set [digest].secret_env to the name of a variable, e.g. DIGEST_SECRET"
    value = merged.get(name, "")
    if len(value) >= MIN_SECRET_CHARS:
        return None
    problem = "is not set" if not value else f"is shorter than {MIN_SECRET_CHARS} characters"
    fix = (
        "unset it there or set it to 16+ random characters"
        if name in env
        else (
            f"add a line {name}=<16+ random characters> to {path} (mode 600): (umask 077; python3 -c 'import secrets; "
            f'print("{name}=" + secrets.token_urlsafe(32))\' >> {path}); keep it stable, it signs message ids'
        )
    )
    return f"{name} {problem} {_looked(config, name, env)}", fix


def _password_problem(config: Config, merged: Mapping[str, str], env: Mapping[str, str]) -> _Problem | None:
    """What is wrong with the SMTP password, or None (also when no username is set)."""
    name = config.smtp.password_env
    if not config.smtp.username or (name and merged.get(name)):
        return None
    if not name:
        return "[smtp].username is set but no password variable", "set [smtp].password_env, or clear [smtp].username"
    problem = "is empty" if name in merged else "is not set"
    return (
        f"[smtp].username is set but {name} {problem} {_looked(config, name, env)}",
        f"add a line {name}=<the password> to {_env_path(config)} (mode 600), or clear [smtp].username",
    )


def _url_fault(value: str) -> str | None:
    """Why ``value`` is no usable webhook URL, in words that quote nothing of it (it is a secret), or None."""
    if len(value) > MAX_WEBHOOK_URL or not value.isascii() or re.search(r"[\s\x00-\x1f\x7f]", value):
        return f"holds spaces, line breaks or other characters no URL has, or is longer than {MAX_WEBHOOK_URL}"
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return "is not an absolute https:// URL"
    if parts.scheme == "http" and not is_loopback_host(host):
        return "is an http:// URL to a host that is not loopback, and only https:// may carry it across the network"
    return None


def _webhook_key(hook: WebhookSection) -> str:
    """The key of ``hook`` that names its secret."""
    return "token_env" if hook.kind == "matrix" else "url_env"


def _webhook_problem(config: Config, hook: WebhookSection, merged: Mapping[str, str],
                     env: Mapping[str, str]) -> _Problem | None:  # fmt: skip
    """What is wrong with the secret of ``hook`` (the URL or the Matrix access token), or None."""
    name = getattr(hook, _webhook_key(hook))
    what = "the access token" if hook.kind == "matrix" else f"the {hook.kind} webhook URL"
    value = merged.get(name, "")
    if not value:
        problem = "is empty" if name in merged else "is not set"
        return (
            f"{name} {problem} {_looked(config, name, env)}",
            f"add a line {name}=<{what}> to {_env_path(config)} (mode 600), or set it in the environment",
        )
    if hook.kind == "matrix":
        fault = "holds spaces or control characters" if re.search(r"[\s\x00-\x1f\x7f-\x9f]", value) else None
    else:
        fault = _url_fault(value)
    if fault is None:
        return None
    return (
        f"{name} {fault} (value not shown: it is a secret) {_looked(config, name, env)}",
        f"set {name} to {what} alone, as the service gave it",
    )


def _raise(config: Config, problem: _Problem, key: str) -> NoReturn:
    raise ConfigError(f"{problem[0]}; the variable is named by {key} in {config.path}", problem[1])


def secret(config: Config, env: Mapping[str, str]) -> bytes:
    """The signing secret from the variable named by ``[digest].secret_env`` (environment, then env file)."""
    merged = environment(config, env)
    problem = _secret_problem(config, merged, env)
    if problem:
        _raise(config, problem, "[digest].secret_env")
    return merged[config.digest.secret_env].encode("utf-8")


def smtp_password(config: Config, env: Mapping[str, str]) -> str | None:
    """The SMTP password from the variable named by ``[smtp].password_env`` (environment, then env file); None
    when no username is set."""
    if not config.smtp.username:
        return None
    merged = environment(config, env)
    problem = _password_problem(config, merged, env)
    if problem:
        _raise(config, problem, "[smtp].password_env")
    return merged[config.smtp.password_env]


def _webhook_secret(config: Config, env: Mapping[str, str], hook: WebhookSection) -> str:
    merged = environment(config, env)
    problem = _webhook_problem(config, hook, merged, env)
    if problem:
        _raise(config, problem, f"webhooks[{config.webhooks.index(hook)}].{_webhook_key(hook)} ({hook.name})")
    return merged[getattr(hook, _webhook_key(hook))]


def webhook_url(config: Config, env: Mapping[str, str], name: str) -> str:
    """Where the ``[[webhooks]]`` table ``name`` posts: for slack, discord and json the URL in the variable named
    by ``url_env`` (environment, then env file; https://, or http:// to a loopback host), exactly as written; for
    matrix the homeserver's base URL (not a secret). ConfigError for an unknown name or a missing or bad URL."""
    hook = config.webhook(name)
    return hook.homeserver if hook.kind == "matrix" else _webhook_secret(config, env, hook)


def webhook_token(config: Config, env: Mapping[str, str], name: str) -> str | None:
    """The access token of the matrix ``[[webhooks]]`` table ``name`` from the variable named by ``token_env``
    (environment, then env file); None for the other kinds (their URL is the secret)."""
    hook = config.webhook(name)
    return _webhook_secret(config, env, hook) if hook.kind == "matrix" else None


def environment_problems(config: Config, env: Mapping[str, str]) -> list[ConfigProblem]:
    """What `digest check` reports about secrets: an unreadable env file, a missing or short signing secret, a
    missing SMTP password, a missing or bad webhook URL or token (of webhooks some user opted into); each problem
    says which variable, which env file was read and how to fix it."""
    try:
        merged = environment(config, env)
    except ConfigValidationError as exc:  # lines of the env file that are not KEY=VALUE
        return exc.problems
    except ConfigError as exc:  # the env file is unreadable or refused: the secrets cannot be judged yet
        found: list[tuple[Loc, str]] = [(("digest", "env_file"), f"{exc.message}: {exc.hint}")]
        return located(str(config.path), file_text(config.path), found)
    checks: list[tuple[Loc, _Problem | None]] = [
        (("digest", "secret_env"), _secret_problem(config, merged, env)),
        (("smtp", "password_env"), _password_problem(config, merged, env)),
    ]
    chosen = {name for user in config.users for name in user.webhooks}
    checks += [(("webhooks", i, _webhook_key(hook)), _webhook_problem(config, hook, merged, env))
               for i, hook in enumerate(config.webhooks) if hook.name in chosen]  # fmt: skip
    found = [(loc, f"{problem[0]}: {problem[1]}") for loc, problem in checks if problem]
    return located(str(config.path), file_text(config.path), found) if found else []
