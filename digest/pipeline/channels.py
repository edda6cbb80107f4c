"""The channel registry: for each kind of channel a ledger row names (``email``, ``webhook:<name>``: the part
before ":"), how a digest becomes its message when it is queued, how many messages that is, and how the
channel is opened to deliver it. A new kind of channel is its package under ``digest/deliver`` plus one entry
here (and its config section)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from digest import config
from digest.deliver.channel import Channel
from digest.deliver.email import MailSettings, compose
from digest.models import Digest, Match, RenderedEmail
from digest.pipeline import archive
from digest.pipeline.settings import feed_url, smtp_settings

if TYPE_CHECKING:
    from digest.deliver.webhook import WebhookTarget

__all__ = ["CHANNELS", "ChannelKind", "Queueing", "channel_messages", "make_channel", "message_parts"]


@dataclass(frozen=True, slots=True)
class Queueing:
    """What a channel's message is made from: the digest, its email (whose papers every channel shows, so that
    all of them record the same papers) and the run's settings."""

    cfg: config.Config
    digest: Digest
    email: RenderedEmail
    shown: tuple[Match, ...]  # the papers the email shows, in its order
    mail: MailSettings
    now: datetime


@dataclass(frozen=True, slots=True)
class ChannelKind:
    """One kind of channel: its message for a digest, how many sends that message takes, how to open it."""

    message: Callable[[Queueing, str], bytes]  # (what to queue, the target's name after ":") -> stored bytes
    parts: Callable[[bytes], int]
    open: Callable[[config.Config, Mapping[str, str], str, ssl.SSLContext | None], Channel | None]


def _email_message(q: Queueing, _target: str) -> bytes:
    return compose(q.email, q.mail, now=q.now)


def _email_channel(
    cfg: config.Config, env: Mapping[str, str], _target: str, tls_context: ssl.SSLContext | None
) -> Channel | None:
    from digest.deliver.email.channel import EmailChannel

    return EmailChannel(smtp_settings(cfg, env), tls_context=tls_context)


def _webhook_message(q: Queueing, target: str) -> bytes:
    from digest.deliver.webhook import build_parts, parcel_data  # only runs with webhooks pay for the import

    kind = q.cfg.webhook(target).kind
    name = q.digest.profile.name
    view = archive.page_url(q.cfg, name, q.digest.period) if archive.enabled(q.cfg) else None
    parts = build_parts(kind, q.digest, q.shown, view_url=view, feed_url=feed_url(q.cfg, q.digest.profile), now=q.now)
    return parcel_data(parts)


def _webhook_parts(data: bytes) -> int:
    return len(json.loads(data)["parts"])


def webhook_target(cfg: config.Config, env: Mapping[str, str], name: str) -> WebhookTarget | None:
    """The ``[[webhooks]]`` entry ``name`` with its secrets (environment, then the env file); None when the
    config no longer has it."""
    from digest.deliver.webhook import WebhookTarget

    hook = next((h for h in cfg.webhooks if h.name == name), None)
    if hook is None:
        return None
    return WebhookTarget(
        name=hook.name,
        kind=hook.kind,
        url=config.webhook_url(cfg, env, hook.name),
        token=config.webhook_token(cfg, env, hook.name),
        room_id=hook.room_id or None,
        timeout=hook.timeout,
    )


def _webhook_channel(
    cfg: config.Config, env: Mapping[str, str], target: str, _tls_context: ssl.SSLContext | None
) -> Channel | None:
    from digest.deliver.webhook import WebhookChannel

    hook = webhook_target(cfg, env, target)
    return WebhookChannel(hook) if hook is not None else None


CHANNELS: dict[str, ChannelKind] = {
    "email": ChannelKind(_email_message, lambda _data: 1, _email_channel),
    "webhook": ChannelKind(_webhook_message, _webhook_parts, _webhook_channel),
}


def channel_messages(
    cfg: config.Config, digest: Digest, email: RenderedEmail, mail: MailSettings, *, now: datetime
) -> dict[str, bytes]:
    """The digest's message on each channel its user chose (ledger name -> bytes), email first."""
    by_key = {m.paper.key: m for m in (*digest.matches, *digest.overflow, *digest.suggestions)}
    shown = tuple(by_key[key] for key in email.paper_keys if key in by_key)
    queueing = Queueing(cfg, digest, email, shown, mail, now)
    messages = {}
    for name in digest.profile.channels:
        kind, _, target = name.partition(":")
        messages[name] = CHANNELS[kind].message(queueing, target)
    return messages


def message_parts(name: str, data: bytes) -> int:
    """How many sends a queued message takes (a long webhook digest is split; an email is one)."""
    return CHANNELS[name.partition(":")[0]].parts(data)


def make_channel(
    cfg: config.Config, env: Mapping[str, str], name: str, *, tls_context: ssl.SSLContext | None = None
) -> Channel | None:
    """The channel a ledger row names, or None when the config no longer has it (or no such kind exists)."""
    kind, _, target = name.partition(":")
    entry = CHANNELS.get(kind)
    return entry.open(cfg, env, target, tls_context) if entry is not None else None
