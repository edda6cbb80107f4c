"""Settings for the stages, derived from the config and the environment (secrets come only from there: the
process environment, then the env file, both read through ``config.environment``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import urlsplit

from digest import config, render
from digest.deliver.email import MailSettings, SmtpSettings
from digest.models import Profile
from digest.render import atom


def _mail_settings(cfg: config.Config, secret: bytes) -> MailSettings:
    base = cfg.digest.base_url or None
    domain = (urlsplit(base).hostname if base else None) or cfg.mail.sender.rpartition("@")[2]
    return MailSettings(
        sender=cfg.mail.sender,
        sender_name=cfg.mail.sender_name,
        list_id=cfg.mail.list_id or f"paper-digest.{domain}",
        domain=domain,
        secret=secret,
        unsubscribe_mailto=cfg.mail.unsubscribe_mailto or None,
        unsubscribe_base_url=base,
    )


def mail_settings(cfg: config.Config, env: Mapping[str, str]) -> MailSettings:
    """Message addressing and signing, from the config and the secret (environment, then the env file)."""
    return _mail_settings(cfg, config.secret(cfg, env))


PREVIEW_SECRET = "preview-only-secret-not-for-sending"


def preview_mail_settings(cfg: config.Config, env: Mapping[str, str]) -> MailSettings:
    """Mail settings for previews: the real ones, or, when the secret is missing (or the env file unreadable), a
    stand-in secret (a preview is for looking at; its unsubscribe links would not verify)."""
    try:
        return mail_settings(cfg, env)
    except config.ConfigError:
        return _mail_settings(cfg, PREVIEW_SECRET.encode("utf-8"))


def smtp_settings(cfg: config.Config, env: Mapping[str, str]) -> SmtpSettings:
    """SMTP connection settings, the password from its variable (environment, then the env file)."""
    s = cfg.smtp
    return SmtpSettings(
        host=s.host,
        port=s.port,
        security=s.security,
        username=s.username or None,
        password=config.smtp_password(cfg, env),
        allow_insecure=s.allow_insecure,
        timeout=min(s.timeout, 30.0),
        message_timeout=s.timeout,
        max_connections=s.max_connections,
        retry_max_age=timedelta(hours=s.max_retry_age_hours),
    )


def render_options(cfg: config.Config) -> render.RenderOptions:
    """Rendering knobs from the config."""
    return render.RenderOptions(
        abstract_chars=cfg.digest.abstract_chars,
        templates_dir=cfg.digest.templates,
        base_url=cfg.digest.base_url or None,
        thumbnails=cfg.digest.thumbnails,
    )


def feeds_base_url(cfg: config.Config) -> str:
    """Where the feeds folder is served: [feeds].base_url, else <base_url>/feeds, else `digest serve`'s address."""
    if cfg.feeds.base_url:
        return cfg.feeds.base_url.rstrip("/")
    if cfg.digest.base_url:
        return cfg.digest.base_url.rstrip("/") + "/feeds"
    host, port = cfg.server.listen_address
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/feeds"


def feed_url(cfg: config.Config, profile: Profile) -> str | None:
    """The URL of a user's Atom feed, or None when they have none."""
    return f"{feeds_base_url(cfg)}/{atom.feed_file(profile.name)}" if profile.feed else None
