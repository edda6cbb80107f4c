"""The only orchestrator: ingest, plan, render, send, run, preview."""

from __future__ import annotations

from digest.pipeline.run import (
    RunOptions,
    RunReport,
    deliver_due,
    ingest_paths,
    preview_digest,
    preview_mail_settings,
    render_email,
    run_once,
    scratch_copy,
    write_feeds,
)

__all__ = [
    "RunOptions",
    "RunReport",
    "deliver_due",
    "ingest_paths",
    "preview_digest",
    "preview_mail_settings",
    "render_email",
    "run_once",
    "scratch_copy",
    "write_feeds",
]
