"""Send a trial digest: what `digest preview` shows, as the real email, to any address, touching no delivery state.

As listmonk's "send test": the selection is ``pipeline.preview_digest`` (the next digest if the user's period were
due now, or one dump, or stored papers since a date), the message is composed as ``run`` composes it (real
From, List-Id and unsubscribe headers, signed links) but addressed to the given address, with "[test] " before the
subject and a Message-ID of its own (so a mail client never takes it for the real digest), and it goes through the
configured SMTP server with ``send_all`` (the same settings ``run`` uses). Nothing is written: no outbox row,
no delivered papers, the store file is left byte-identical.

This sits beside ``pipeline.py`` for now; the restructure (DESIGN.md) folds it into ``pipeline/`` later.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

from digest import config, pipeline, render
from digest.deliver.email import Outgoing, SendResult, compose, send_all, validate_address
from digest.errors import DeliveryError
from digest.pipeline.settings import mail_settings, smtp_settings

__all__ = ["SUBJECT_PREFIX", "TrialResult", "send_trial"]

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "[test] "


@dataclass(frozen=True, slots=True)
class TrialResult:
    """What one trial send did."""

    user: str
    to: str
    subject: str
    papers: int  # papers the digest shows
    server: str  # host:port that accepted it
    reply: str  # the server's reply to the end of data


def send_trial(
    cfg: config.Config,
    env: Mapping[str, str],
    user: str,
    to: str,
    *,
    now: datetime,
    dump: Path | None = None,
    since: date | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> TrialResult:
    """Render ``user``'s preview as their real email, address it to ``to`` and send it once (no retries, so an
    unreachable server is reported in seconds). Raises ConfigError for a bad address or missing secret and
    DeliveryError when the server cannot be reached or does not accept the message; writes nothing."""
    address = validate_address(to)
    mail = mail_settings(cfg, env)  # the real secret: the links in a trial are the ones the user would get
    sending = replace(smtp_settings(cfg, env), retry_attempts=1, max_connections=1)
    digest, cache, links = pipeline.preview_digest(cfg, env, user, now=now, dump=dump, since=since)
    email = render.render_digest(digest, cache, now=now, links=links)
    trial = replace(
        email,
        to=address,
        subject=SUBJECT_PREFIX + email.subject,
        # Only the Message-ID and the MIME boundary derive from the period: a period of its own keeps the trial
        # apart from the real digest of that period (clients drop a second message with a Message-ID they have).
        period=f"{email.period}-test-{now:%Y%m%d%H%M%S}",
    )
    data = compose(trial, mail, now=now)
    results: list[SendResult] = []
    summary = asyncio.run(
        send_all(
            [Outgoing("trial", cfg.mail.sender, address, data)],
            sending,
            on_result=lambda _msg, result: results.append(result),
            tls_context=tls_context,
        )
    )
    server = f"{sending.host}:{sending.port}"
    if summary.unreachable:
        raise DeliveryError(
            f"cannot reach the SMTP server {server}: {_one_line(summary.unreachable)}",
            "check [smtp] host, port and security, and that the server is running",
        )
    result = results[0] if results else SendResult("failed", None, "no reply")
    if result.status != "sent":
        code = f"{result.code} " if result.code else ""
        raise DeliveryError(
            f"the SMTP server {server} did not accept the test message to {address}: {code}{_one_line(result.reply)}",
            "the reply above is the server's; nothing was recorded, so fix it and send the test again",
        )
    log.info("test digest of %s sent to %s via %s", user, address, server)
    return TrialResult(user, address, trial.subject, len(digest.matches), server, _one_line(result.reply))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
