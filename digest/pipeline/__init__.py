"""The only orchestrator: it alone knows the order sources -> store -> matching -> render -> deliver.

``ingest`` (dump files, the inbox, quarantine), ``plan`` (who is due, windows, digests), ``queue`` (render and
commit to the outbox), ``send`` (deliver_due, retries, giving up), ``run`` (run_once), ``preview``, ``trial``
(`digest test`), ``publish`` (the run's Atom feeds), ``archive`` (archive pages), ``settings`` (config -> stage
settings). The CLI, the scheduler and the HTTP service call these functions and nothing below them.
"""

from __future__ import annotations

from digest.models import RunReport
from digest.pipeline.admin import (
    IngestSession,
    StatusReport,
    check_address,
    check_query,
    fetch_listing,
    ingest_session,
    list_papers,
    match_query,
    organizations_seen,
    preview_body,
    send_due,
    set_subscribed,
    status,
    user_for_token,
)
from digest.pipeline.ingest import ingest_paths
from digest.pipeline.options import RunOptions
from digest.pipeline.preview import preview_digest
from digest.pipeline.publish import write_feeds
from digest.pipeline.queue import render_email
from digest.pipeline.run import run_once, scratch_copy
from digest.pipeline.send import deliver_due
from digest.pipeline.settings import preview_mail_settings

__all__ = [
    "IngestSession",
    "RunOptions",
    "RunReport",
    "StatusReport",
    "check_address",
    "check_query",
    "deliver_due",
    "fetch_listing",
    "ingest_paths",
    "ingest_session",
    "list_papers",
    "match_query",
    "organizations_seen",
    "preview_body",
    "preview_digest",
    "preview_mail_settings",
    "render_email",
    "run_once",
    "scratch_copy",
    "send_due",
    "set_subscribed",
    "status",
    "user_for_token",
    "write_feeds",
]
