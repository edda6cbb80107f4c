"""Ingest: dump files and the inbox into the store; a dump that cannot be read goes to quarantine."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from digest import config, sources, store
from digest.errors import DigestError, DumpError
from digest.models import IngestReport
from digest.pipeline.options import RunOptions
from digest.sources import fetch

log = logging.getLogger(__name__)


def inbox_files(conn: store.Connection, inbox: Path) -> list[tuple[Path, os.stat_result]]:
    """Files in the inbox not ingested yet, in name order, with their stat. A file whose name, size and mtime
    match a file ingested before is skipped unread; any other is hashed and skipped if a dump with its content
    is in the store (and remembered by name, size and mtime, so it is not read again)."""
    if not inbox.is_dir():
        return []
    known = store.known_inbox_files(conn)
    fresh = []
    for path in sorted(inbox.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            stat = path.stat()
        except OSError:
            continue  # gone since the listing
        if known.get(path.name) == (stat.st_size, stat.st_mtime_ns):
            continue
        try:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            fresh.append((path, stat))  # unreadable: reading it as a dump refuses it, named, and moves it aside
            continue
        if store.is_ingested(conn, sha):
            store.record_inbox_file(conn, path.name, stat.st_size, stat.st_mtime_ns, sha)
        else:
            fresh.append((path, stat))
    return fresh


def ingest_paths(
    conn: store.Connection,
    paths: Sequence[Path],
    *,
    now: datetime,
    inbox_stats: Mapping[Path, os.stat_result] | None = None,
) -> tuple[list[IngestReport], list[tuple[Path, str]]]:
    """Ingest each file; a refused dump is returned with its error and the others go on. Files listed in
    ``inbox_stats`` (inbox files, with their stat from before they were read) are remembered as ingested."""
    reports, refused = [], []
    for path in paths:
        try:
            dump = sources.read_dump(path)
            reports.append(store.ingest(conn, dump, now=now))
        except DumpError as exc:
            refused.append((path, str(exc)))
            continue
        stat = (inbox_stats or {}).get(path)
        if stat is not None:
            store.record_inbox_file(conn, path.name, stat.st_size, stat.st_mtime_ns, dump.sha256)
    return reports, refused


def quarantine(path: Path) -> Path:
    """Move a refused dump into the inbox's ``refused/`` folder, so later runs do not refuse it again."""
    folder = path.parent / "refused"
    folder.mkdir(exist_ok=True)
    target, n = folder / path.name, 0
    while target.exists():
        n += 1
        target = folder / f"{path.name}.{n}"
    return path.rename(target)


def ingest_inbox(
    conn: store.Connection, cfg: config.Config, options: RunOptions, *, now: datetime, errors: list[str]
) -> list[IngestReport]:
    found = inbox_files(conn, cfg.digest.inbox)
    stats = dict(found)
    paths = [path for path, _ in found]
    if options.fetch and cfg.digest.source_url:
        try:
            fetched = fetch.fetch_listing(
                cfg.digest.source_url,
                cfg.digest.inbox if options.dry_run is None else options.dry_run,
                timeout=cfg.digest.fetch_timeout,
            )
            if fetched not in paths:
                paths.append(fetched)
        except DigestError as exc:
            errors.append(str(exc))
    reports, refused = ingest_paths(conn, paths, now=now, inbox_stats=stats)
    for path, message in refused:
        # A refused dump left in the inbox would fail every later run too: one report, then it moves.
        if options.dry_run is None and path.parent == cfg.digest.inbox:
            try:
                moved = quarantine(path)
                message += f" (moved to {moved}; fix it and move it back into the inbox to retry)"
            except OSError as exc:
                message += f" (could not move it to {path.parent / 'refused'}: {exc.strerror})"
        log.error("dump refused: %s", message)
        errors.append(message)
    return reports
