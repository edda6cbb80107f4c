"""The only orchestrator: it alone knows the order sources -> store -> matching -> render -> deliver.

``ingest`` (dump files, the inbox, quarantine), ``plan`` (who is due, windows, digests), ``queue`` (render and
commit to the outbox), ``send`` (deliver_due, retries, giving up), ``run`` (run_once), ``preview``, ``trial``
(`digest test`), ``publish`` (the run's Atom feeds), ``archive`` (archive pages), ``settings`` (config -> stage
settings). The CLI, the scheduler and the HTTP service call these functions and nothing below them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
    from digest.pipeline.feedback import (
        ImportReport,
        VoteDesk,
        export_ratings,
        import_ratings,
        list_ratings,
        record_vote,
        vote_desk,
    )
    from digest.pipeline.ingest import ingest_paths
    from digest.pipeline.options import RunOptions
    from digest.pipeline.preview import preview_digest
    from digest.pipeline.publish import write_feeds
    from digest.pipeline.queue import render_email
    from digest.pipeline.run import run_once
    from digest.pipeline.send import deliver_due
    from digest.pipeline.settings import preview_mail_settings

__all__ = [
    "ImportReport",
    "IngestSession",
    "RunOptions",
    "RunReport",
    "StatusReport",
    "VoteDesk",
    "check_address",
    "check_query",
    "deliver_due",
    "export_ratings",
    "fetch_listing",
    "import_ratings",
    "ingest_paths",
    "ingest_session",
    "list_papers",
    "list_ratings",
    "match_query",
    "organizations_seen",
    "preview_body",
    "preview_digest",
    "preview_mail_settings",
    "record_vote",
    "render_email",
    "run_once",
    "send_due",
    "set_subscribed",
    "status",
    "user_for_token",
    "vote_desk",
    "write_feeds",
]

# Each public name's module, imported on first use (PEP 562): `digest status` then loads the store and not every
# stage (matching's numpy, render's Jinja and lxml, the mail and HTTP clients).
_WHERE = {
    "ImportReport": "digest.pipeline.feedback",
    "IngestSession": "digest.pipeline.admin",
    "RunOptions": "digest.pipeline.options",
    "RunReport": "digest.models",
    "StatusReport": "digest.pipeline.admin",
    "VoteDesk": "digest.pipeline.feedback",
    "check_address": "digest.pipeline.admin",
    "check_query": "digest.pipeline.admin",
    "deliver_due": "digest.pipeline.send",
    "export_ratings": "digest.pipeline.feedback",
    "fetch_listing": "digest.pipeline.admin",
    "import_ratings": "digest.pipeline.feedback",
    "ingest_paths": "digest.pipeline.ingest",
    "ingest_session": "digest.pipeline.admin",
    "list_papers": "digest.pipeline.admin",
    "list_ratings": "digest.pipeline.feedback",
    "match_query": "digest.pipeline.admin",
    "organizations_seen": "digest.pipeline.admin",
    "preview_body": "digest.pipeline.admin",
    "preview_digest": "digest.pipeline.preview",
    "preview_mail_settings": "digest.pipeline.settings",
    "record_vote": "digest.pipeline.feedback",
    "render_email": "digest.pipeline.queue",
    "run_once": "digest.pipeline.run",
    "send_due": "digest.pipeline.admin",
    "set_subscribed": "digest.pipeline.admin",
    "status": "digest.pipeline.admin",
    "user_for_token": "digest.pipeline.admin",
    "vote_desk": "digest.pipeline.feedback",
    "write_feeds": "digest.pipeline.publish",
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
